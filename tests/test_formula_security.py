"""A formula is data: no formula, reference level or column name may run code.

Each payload below tries to create a marker file. It goes through the library (``fit_lmm``, ``fit_ols``,
``decompose``, ``build_design``) and through the report command as a real process, with the default
reader and with ``--large`` (DuckDB). Every one must be refused with a :class:`DataError` (exit status 2
and one line on stderr) and the marker must not exist afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import build_design, fit_lmm, fit_ols
from helpers.decompose import decompose
from helpers.validate import DataError

ROOT = Path(__file__).resolve().parent.parent
MARK = "MARKER"  # replaced by the marker file's path in each test

# {run} is a Python expression that would create the marker file if it were ever evaluated
RUN = '__import__("os").system("touch MARKER")'
PAYLOADS = [
    ("center", f"y ~ x + center({RUN}) + (1 | g)"),
    ("scale", f"y ~ x + scale({RUN}) + (1 | g)"),
    ("scale-keyword", f"y ~ x + scale(x, center = {RUN}) + (1 | g)"),
    ("poly", f"y ~ x + poly({RUN}, 2) + (1 | g)"),
    ("poly-degree", f"y ~ poly(x, {RUN}) + (1 | g)"),
    ("factor", f"y ~ x + factor({RUN}) + (1 | g)"),
    ("C", f"y ~ x + C({RUN}) + (1 | g)"),
    ("I", f"y ~ x + I({RUN}) + (1 | g)"),
    ("log", f"y ~ x + log({RUN}) + (1 | g)"),
    ("exp", f"y ~ x + exp({RUN}) + (1 | g)"),
    ("sqrt", f"y ~ x + sqrt({RUN}) + (1 | g)"),
    ("np.log", f"y ~ x + np.log({RUN}) + (1 | g)"),
    ("offset", f"y ~ x + offset({RUN}) + (1 | g)"),
    ("nested-transform", f"y ~ x + log(scale(center({RUN}))) + (1 | g)"),
    ("response", f"{RUN} ~ x + (1 | g)"),
    ("response-transform", f"log({RUN}) ~ x + (1 | g)"),
    ("group", f"y ~ x + (1 | {RUN})"),
    ("random-term", f"y ~ x + ({RUN} | g)"),
    ("bare-call", f"y ~ x + {RUN} + (1 | g)"),
    ("eval", 'y ~ x + eval(\'__import__("os").system("touch MARKER")\') + (1 | g)'),
    ("exec", "y ~ x + I(exec('import os; os.system(\"touch MARKER\")')) + (1 | g)"),
    ("lambda", "y ~ x + I((lambda: __import__('os').system('touch MARKER'))()) + (1 | g)"),
    (
        "comprehension",
        "y ~ x + center([__import__('os').system('touch MARKER') for _ in [1]][0]) + (1 | g)",
    ),
    ("attribute", "y ~ x + center(x.__class__.__init__.__globals__) + (1 | g)"),
    ("np-attribute", "y ~ x + np.os.system('touch MARKER') + (1 | g)"),
    ("dunder-name", "y ~ x + center(__builtins__) + (1 | g)"),
    ("subscript", "y ~ x + center(x[__import__('os').system('touch MARKER')]) + (1 | g)"),
    ("string-argument", "y ~ x + C(x, 'touch MARKER') + (1 | g)"),
    ("unknown-keyword", f"y ~ x + center(x, how = {RUN}) + (1 | g)"),
    ("newline", f"y ~ x\n + center({RUN}) + (1 | g)"),
    ("backtick-then-call", f"y ~ `x` + center({RUN}) + (1 | g)"),
    ("statement", 'y ~ x + (1 | g); __import__("os").system("touch MARKER")'),
]
assert len(PAYLOADS) >= 20


def _data(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(8), rows // 8)
    return pd.DataFrame(
        {
            "y": rng.normal(size=rows) + rng.normal(size=8)[g],
            "x": rng.normal(size=rows),
            "g": [f"g{k}" for k in g],
            "arm": rng.choice(["a", "b"], size=rows),
        }
    )


def _with_marker(text: str, marker: Path) -> str:
    return text.replace(MARK, str(marker))


LIBRARY = {
    "fit_lmm": lambda data, formula: fit_lmm(data, formula),
    "fit_ols": lambda data, formula: fit_ols(data, formula),
    "decompose": lambda data, formula: decompose(data, formula),
    "build_design": lambda data, formula: build_design(data, formula),
}


@pytest.mark.parametrize("entry", sorted(LIBRARY))
@pytest.mark.parametrize(("name", "formula"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_library_refuses_the_payload(tmp_path, entry, name, formula):
    marker = tmp_path / "marker"
    with pytest.raises(DataError) as info:
        LIBRARY[entry](_data(), _with_marker(formula, marker))
    assert not marker.exists(), f"{name}: the formula ran code"
    assert "\n" not in str(info.value)


def _command(tmp_path: Path, data: Path, formula: str, *extra: str):
    out = tmp_path / "out.json"
    run = subprocess.run(
        [sys.executable, "-m", "helpers", "report", str(data), "--formula", formula]
        + ["--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    return run, out


def _assert_refused(run, out: Path, marker: Path, name: str) -> None:
    assert not marker.exists(), f"{name}: the command ran code"
    assert run.returncode == 2, (name, run.returncode, run.stderr[-2000:])
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], run.stderr[-2000:]
    assert not out.exists()


@pytest.mark.parametrize("large", [False, True], ids=["rows", "large"])
@pytest.mark.parametrize(("name", "formula"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_command_refuses_the_payload(tmp_path, large, name, formula):
    marker = tmp_path / "marker"
    data = tmp_path / "data.csv"
    _data().to_csv(data, index=False)
    extra = ["--large"] if large else []
    run, out = _command(tmp_path, data, _with_marker(formula, marker), *extra)
    _assert_refused(run, out, marker, name)


REFERENCES = [
    ("level", f"arm={RUN}"),
    ("column", f"{RUN}=a"),
    ("column-attribute", "arm.__class__=a"),
]


@pytest.mark.parametrize("large", [False, True], ids=["rows", "large"])
@pytest.mark.parametrize(("name", "reference"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_command_reference_option_runs_no_code(tmp_path, large, name, reference):
    marker = tmp_path / "marker"
    data = tmp_path / "data.csv"
    _data().to_csv(data, index=False)
    extra = ["--reference", _with_marker(reference, marker)] + (["--large"] if large else [])
    run, out = _command(tmp_path, data, "y ~ x + arm + (1 | g)", *extra)
    _assert_refused(run, out, marker, name)


def _payload_column(marker: Path) -> str:
    return _with_marker(f"center({RUN})", marker)


@pytest.mark.parametrize("large", [False, True], ids=["rows", "large"])
def test_command_column_named_like_code_is_not_run(tmp_path, large):
    """A column named like code, written bare in the formula, is parsed as a call and refused."""
    marker = tmp_path / "marker"
    column = _payload_column(marker)
    data = tmp_path / "data.csv"
    _data().rename(columns={"x": column}).to_csv(data, index=False)
    extra = ["--large"] if large else []
    run, out = _command(tmp_path, data, f"y ~ {column} + (1 | g)", *extra)
    _assert_refused(run, out, marker, "column name")


@pytest.mark.parametrize("large", [False, True], ids=["rows", "large"])
def test_command_column_named_like_code_in_backticks_is_a_column(tmp_path, large):
    """In backticks the same name is only a column name: it fits, and nothing runs."""
    marker = tmp_path / "marker"
    column = _payload_column(marker)
    data = tmp_path / "data.csv"
    frame = _data().rename(columns={"x": column})
    frame.to_csv(data, index=False)
    extra = ["--large"] if large else []
    run, out = _command(tmp_path, data, f"y ~ `{column}` + (1 | g)", *extra)
    assert not marker.exists()
    assert run.returncode == 0, run.stderr[-2000:]
    direct = fit_ols(_data(), "y ~ x")
    import json

    params = json.loads(out.read_text())["ols"]["params"]
    assert params[column] == pytest.approx(direct.params["x"], rel=1e-9)


def test_library_column_named_like_code_in_backticks_is_a_column(tmp_path):
    marker = tmp_path / "marker"
    column = _payload_column(marker)
    data = _data().rename(columns={"x": column})
    fit = fit_lmm(data, f"y ~ `{column}` + (1 | g)")
    assert not marker.exists()
    assert fit.fe_params[column] == pytest.approx(
        fit_lmm(_data(), "y ~ x + (1 | g)").fe_params["x"]
    )
    with pytest.raises(DataError):
        fit_lmm(data, f"y ~ {column} + (1 | g)")
    assert not marker.exists()
