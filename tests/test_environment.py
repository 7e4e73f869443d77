"""The set-up files agree: pyproject.toml, requirements.lock, environment.yml, .ci/run and the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few packages differently from PyPI
CONDA_TO_PYPI = {"python-duckdb": "duckdb"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        names |= {_name(r) for r in extra}
    return names


def _conda_names() -> set[str]:
    names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)", line)
        if not m or line.strip().startswith("- -"):
            continue
        name = _name(m.group(1))
        if name in {"python", "pip"}:
            continue
        names.add(CONDA_TO_PYPI.get(name, name))
    return names


def test_environment_yml_names_the_same_packages_as_pyproject():
    pyproject, conda = _pyproject_names(), _conda_names()
    assert pyproject - conda == set(), f"missing from environment.yml: {sorted(pyproject - conda)}"
    assert conda - pyproject == set(), f"missing from pyproject.toml: {sorted(conda - pyproject)}"


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
