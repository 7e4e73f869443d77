"""The set-up files agree: pyproject.toml, requirements.lock, environment.yml, .ci/run and the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        names |= {_name(r) for r in extra}
    return names


def _lock_lines() -> list[str]:
    text = (ROOT / "requirements.lock").read_text()
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_environment_yml_is_the_lock_for_conda():
    """environment.yml (made by 'make environment.yml'): conda's Python, then exactly the lock's pins."""
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    dependencies = environment["dependencies"]
    conda = [d for d in dependencies if isinstance(d, str)]
    (pip,) = [d["pip"] for d in dependencies if isinstance(d, dict)]
    assert conda == ["python=3.11", "pip"], conda
    assert pip[:-1] == _lock_lines(), (
        "environment.yml differs from requirements.lock; regenerate it with 'make environment.yml'"
    )
    assert pip[-1] == "-e ."
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", line) for line in pip[:-1])
    # conda's Python is one the project supports
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains("3.11"), requires
    # the Makefile makes it, and 'make lock' remakes it
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^environment\.yml: requirements\.lock$", makefile, re.M)
    assert "$(MAKE) environment.yml" in makefile


def test_lock_pins_every_dependency_exactly():
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock line {line!r} is not an exact pin"
            pins[_name(name)] = version
    missing = _pyproject_names() - set(pins)
    assert not missing, f"dependencies without a pin in requirements.lock: {sorted(missing)}"


def test_installed_versions_match_the_lock():
    from importlib.metadata import PackageNotFoundError, version

    mismatched = []
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, pinned = line.partition("==")
        try:
            got = version(name)
        except PackageNotFoundError:
            mismatched.append(f"{name} (not installed)")
            continue
        if got != pinned:
            mismatched.append(f"{name} {got} != {pinned}")
    assert not mismatched, "the environment drifted from requirements.lock: " + ", ".join(
        mismatched
    )


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^(make \w+)\s*$", readme, re.M)
    assert "make test" in commands and "make html" in commands
    assert re.search(r"^exec make test$", ci, re.M)


def test_readme_and_landing_page_say_how_to_start_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    landing = (ROOT / "index.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make lab" in re.findall(r"^(make \w+)\s*$", readme, re.M)
    assert "make lab" in re.findall(r"^(make \w+)\s*$", landing, re.M)
    recipe = re.search(r"^lab: env\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "the Makefile has no 'lab' target that creates the environment first"
    assert "--ServerApp.ip=127.0.0.1" in recipe.group(1)
    assert "--ServerApp.root_dir=notebooks" in recipe.group(1)
