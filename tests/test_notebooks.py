"""Every notebook is stored clean, has the agreed anatomy, and runs top to bottom without errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


def _markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 1, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_without_outputs(path):
    raw = json.loads(path.read_text())
    dirty = [
        i
        for i, cell in enumerate(raw["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_anatomy(path):
    nb = nbformat.read(path, as_version=4)
    text = _markdown(nb)
    first = nb.cells[0].source if nb.cells else ""
    assert re.search(r"^# ", first, re.M), f"{path.name} must open with a title"
    head = "\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
    assert re.search(r"learning goals", head, re.I), (
        f"{path.name} must open with its learning goals"
    )
    assert re.search(r"^#+\s*Summary", text, re.M | re.I), f"{path.name} lacks a Summary section"
    assert re.search(r"key point", text, re.I), (
        f"{path.name}'s summary lacks its one-sentence key point"
    )
    assert re.search(r"^#+\s*Exercises", text, re.M | re.I), f"{path.name} lacks Exercises"
    assert re.search(r"<details>|```\{dropdown\}|:class: dropdown", text), (
        f"{path.name}: exercise solutions should be collapsible"
    )
    assert re.search(r"^#+\s*References", text, re.M | re.I), f"{path.name} lacks References"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executes_without_errors(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    env_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        client.execute()
    finally:
        if env_backend is None:
            os.environ.pop("MPLBACKEND", None)
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
