"""The installed package finds the report notebook: a wheel ships notebook 07 as package data.

The wheel is built from a copy of the package's sources (never in the working tree), unpacked, and
imported from there in a fresh interpreter: helpers.report.notebook_path() must point inside it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import helpers

ROOT = Path(helpers.__file__).resolve().parent.parent
NOTEBOOK = "07_your_own_data.ipynb"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "helpers", source / "helpers", ignore=shutil.ignore_patterns("__pycache__")
    )
    (source / "notebooks").mkdir()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(notebook, source / "notebooks" / notebook.name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("helpers-*.whl")
    return built


def test_the_wheel_ships_the_report_notebook_and_only_that_one(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert f"helpers/notebooks/{NOTEBOOK}" in names
    assert [n for n in names if n.endswith(".ipynb")] == [f"helpers/notebooks/{NOTEBOOK}"]
    assert "helpers/report/cli.py" in names and "helpers/report/run.py" in names
    shipped = zipfile.ZipFile(wheel).read(f"helpers/notebooks/{NOTEBOOK}")
    assert shipped == (ROOT / "notebooks" / NOTEBOOK).read_bytes()


def test_an_installed_package_finds_its_notebook(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import helpers.report as r\n"
        "print(r.notebook_path())\n"
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", code, str(site)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    found = Path(run.stdout.strip())
    assert found == site / "helpers" / "notebooks" / NOTEBOOK and found.is_file()


def test_the_readme_module_map_lists_every_module_of_the_package():
    """README's Layout names each module of helpers/ once (and nothing that is not one)."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("helpers/             the package") :]
    block = block[: block.index("\ndata/")]
    named = set()
    for line in block.splitlines()[1:]:
        first = line[:37].strip()  # the names column of the map
        if first:
            named.update(part.strip() for part in first.split(","))
    modules = {p.stem for p in (ROOT / "helpers").glob("*.py")} - {"__init__", "__main__"}
    modules |= {f"{p.name}/" for p in (ROOT / "helpers").iterdir() if (p / "__init__.py").exists()}
    assert named == modules
