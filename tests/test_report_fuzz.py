"""Hostile input to the own-data report command: it fits with the right rows, or exits 2 with one line.

The contract of ``python -m helpers report DATA --formula ...``, checked here on generated files:

- the exit status is 0 or 2 (never 1, never a traceback, never a hang);
- on 2, stderr is exactly one line, ``<prog>: error: <sentence>``, short enough to read;
- on 0, the JSON's ``n_obs + n_dropped`` equals the data rows of the file, ``n_obs`` and ``n_groups``
  equal an independent count of the complete rows, and pooled OLS equals a direct least-squares fit
  of the rows the generator wrote (so a fit never silently reads another column or a shifted one).

The files are made by hypothesis from a known table: wrong delimiters (semicolon, tab), quoted newlines,
mixed numbers and text, unicode, empty, duplicated and very long column names, a UTF-8 BOM, blank lines,
missing-value tokens, ``inf`` text, thousands separators and decimal commas, and formulas that quote
odd names in backticks. Fixed cases add a header-only file, empty files, binary junk and 10 MB single
lines. Each case runs in process, with the report notebook's code cells executed in this process
instead of a kernel (the same code, without the kernel's start-up), and under a time limit. A handful of
real processes (with a timeout) show the same at the process level, two of them through the real
notebook.

The example budget is small in the normal run; ``HYPOTHESIS_PROFILE=deep`` runs many more::

    HYPOTHESIS_PROFILE=deep .venv/bin/python -m pytest tests/test_report_fuzz.py
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import nbformat
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import report
from helpers.validate import DataError

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
DEEP = PROFILE == "deep"
FUZZ = settings(
    max_examples=400 if DEEP else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
    # the normal run tries the same files every time, so CI is reproducible; the deep run searches anew
    derandomize=not DEEP,
)

PROG = "lmm-report"
#: Seconds one in-process case may take (a fit, including the notebook's figures, takes about 1 s).
CASE_SECONDS = 45
#: Seconds a real process may take before the test calls it a hang.
PROCESS_SECONDS = 60
#: A one-line error longer than this is not one a person can read.
MAX_MESSAGE = 1500
TEN_MB = 10 * 1024**2

# Tokens a person writes for "no value"; each must count as missing in both readers.
NA_TOKENS = ["", "NA", "NaN", "nan", "NULL", "n/a", "None", "#N/A"]


# ------------------------------------------------------------------------------------- running


class CaseTookTooLong(Exception):
    """An in-process case ran past its time limit (a hang, for this contract)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`CaseTookTooLong` in the block after ``seconds`` (SIGALRM, main thread)."""
    if not hasattr(signal, "setitimer"):  # no interval timers on this platform: no limit
        yield
        return

    def on_alarm(signum, frame):
        raise CaseTookTooLong(f"the case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cells_in_process(parameters, *, timeout=3600, cwd=None):
    """The report notebook's code cells, run in this process: the same code, no kernel start-up.

    Errors are mapped as :func:`helpers.report.run_notebook` maps them: a :class:`DataError` stays one,
    anything else becomes a ``ReportError`` (exit status 1, which the contract forbids for input).
    """
    import matplotlib.pyplot as plt

    nb = nbformat.read(report.notebook_path(), as_version=4)
    report.inject_parameters(nb, parameters)
    namespace: dict = {}
    printed = io.StringIO()  # what the cells print goes to the notebook, not to the terminal
    try:
        with contextlib.redirect_stdout(printed):
            for cell in nb.cells:
                if cell.cell_type == "code":
                    exec(compile(cell.source, "<report notebook>", "exec"), namespace)
    except DataError:
        raise
    except Exception as exc:
        raise report.ReportError(
            f"the report notebook failed ({type(exc).__name__}: {exc})"
        ) from None
    finally:
        plt.close("all")
    return nb


@dataclasses.dataclass
class Outcome:
    status: int
    out: str
    err: str
    seconds: float
    result: dict | None


def invoke(path, formula, *extra, json_path=None, seconds=CASE_SECONDS) -> Outcome:
    """``lmm-report PATH --formula FORMULA [--json ...] EXTRA`` in process, with stdout and stderr."""
    argv = [str(path), "--formula", formula, *extra]
    if json_path is not None:
        Path(json_path).unlink(missing_ok=True)
        argv += ["--json", str(json_path)]
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    calls = []

    def in_process(parameters, **kwargs):
        calls.append(parameters)
        return run_cells_in_process(parameters, **kwargs)

    with (
        # make_report calls helpers.report.run.run_notebook: patching the package's re-export instead
        # once started a real kernel for every case (6 s each instead of 0.4 s)
        mock.patch.object(report.run, "run_notebook", in_process),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        time_limit(seconds),
    ):
        try:
            status = report.main(argv)
        except SystemExit as exc:  # argparse
            status = exc.code
    if status == 0:
        assert len(calls) == 1, "the report ran without the in-process notebook runner"
    result = None
    if status == 0 and json_path is not None:
        result = json.loads(Path(json_path).read_text())
    return Outcome(status, out.getvalue(), err.getvalue(), time.monotonic() - start, result)


def assert_one_line_error(err: str, prog: str = PROG, pattern: str | None = None) -> str:
    """stderr is exactly ``<prog>: error: <sentence>`` on one line, readable, without a traceback."""
    assert "Traceback" not in err, err[:2000]
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err[:2000]!r}"
    line = lines[0]
    assert line.startswith(f"{prog}: error: "), line[:300]
    message = line[len(f"{prog}: error: ") :]
    assert len(message.strip()) >= 15, line
    assert len(line) <= MAX_MESSAGE, f"a {len(line)}-character error line: {line[:300]}..."
    if pattern is not None:
        assert re.search(pattern, message), message
    return message


# -------------------------------------------------------------------- the table and its file


@dataclasses.dataclass
class Table:
    """What the generator wrote, as a person would read it: the oracle for a successful fit."""

    text: bytes
    suffix: str
    formula: str
    rows: int  # data records in the file
    y: np.ndarray  # float, NaN where missing
    x: np.ndarray
    arm: list  # str or None where missing (empty list when the model has no arm)
    group: list
    expect: str  # "fit", "error" or "either"
    why: str = ""

    def complete(self) -> np.ndarray:
        ok = ~np.isnan(self.y) & ~np.isnan(self.x) & np.array([g is not None for g in self.group])
        if self.arm:
            ok &= np.array([a is not None for a in self.arm])
        return ok

    def degenerate(self) -> bool:
        """Too little complete data for a fit (a refusal is then right even for a clean file)."""
        ok = self.complete()
        n = int(ok.sum())
        groups = {g for g, keep in zip(self.group, ok, strict=True) if keep}
        levels = {a for a, keep in zip(self.arm, ok, strict=True) if keep} if self.arm else {"-"}
        p = 2 + len(levels) - 1
        return n <= p + 1 or not 2 <= len(groups) < n or (bool(self.arm) and len(levels) < 2)

    def ols(self) -> np.ndarray:
        """Pooled OLS of the complete rows, in the formula's term order (Intercept, x, arm[T.*])."""
        ok = self.complete()
        columns = [np.ones(ok.sum()), self.x[ok]]
        if self.arm:
            arms = [a for a, keep in zip(self.arm, ok, strict=True) if keep]
            for level in sorted(set(arms))[1:]:
                columns.append(np.array([a == level for a in arms], dtype=float))
        beta, *_ = np.linalg.lstsq(np.column_stack(columns), self.y[ok], rcond=None)
        return beta


PLAIN_NAMES = ["y", "x", "g", "arm", "response", "Days", "cluster"]
ODD_NAMES = [
    "log radon",  # a space: needs backticks
    "county.name",  # a dot
    "réponse",  # accented
    "größe",
    "反应",  # CJK
    "émoji 😀",
    "1st",  # starts with a digit
    "a-b",  # an operator inside
    "price $",  # math markup in the report
    "50%",
    "x y z " * 30,  # long (180 characters)
    "n" * 900,  # very long, still below the header limit
]
HOSTILE_NAMES = [
    "Intercept",  # the name formulaic gives the intercept: refused as a predictor
    "a`b",  # a backtick inside a backticked name
    "a|b",
    "y ~ x",
    "(1 | g)",
    'say "hi"',
    "comma, inside",
    "line\nbreak",
    " padded ",
    "",
    "\t",
]


def number_text(value: float, style: str) -> str:
    if style == "repr":
        return repr(float(value))
    if style == "fixed":
        return f"{value:.4f}"
    if style == "sci":
        return f"{value:.6e}"
    if style == "plus":
        return f"{value:+.3f}"
    if style == "thousands":
        return f"{value:,.2f}"
    if style == "decimal_comma":
        return f"{value:.3f}".replace(".", ",")
    if style == "spaces":
        return f" {value:.3f} "
    raise AssertionError(style)


@st.composite
def tables(draw) -> Table:
    """A clustered table, written as a CSV file in one of many hostile ways."""
    n_groups = draw(st.integers(3, 6))  # 2 clusters: see test_two_clusters_fit
    sizes = draw(st.lists(st.integers(2, 9), min_size=n_groups, max_size=n_groups))
    n = int(sum(sizes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_groups), sizes)
    use_arm = draw(st.booleans())
    label_kind = draw(st.sampled_from(["plain", "odd", "int"]))
    odd_labels = ["site, 1", 'say "hi"', "line\nbreak", "ünï", "g 2", "Ω", "x;y", "tab\there"]
    if label_kind == "plain":
        labels = [f"g{k}" for k in range(n_groups)]
    elif label_kind == "odd":
        labels = odd_labels[:n_groups]
    else:
        labels = [str(10 * k + 3) for k in range(n_groups)]

    names_pool = draw(st.sampled_from(["plain", "odd", "hostile"]))
    pool = {
        "plain": PLAIN_NAMES,
        "odd": PLAIN_NAMES + ODD_NAMES,
        "hostile": ODD_NAMES + HOSTILE_NAMES,
    }
    wanted = 4 if use_arm else 3
    chosen = draw(st.lists(st.sampled_from(pool[names_pool]), min_size=wanted, max_size=wanted))
    if len(set(chosen)) < wanted:
        chosen = ["y", "x", "g", "arm"][:wanted]
        names_pool = "plain"
    y_name, x_name, g_name = chosen[:3]
    arm_name = chosen[3] if use_arm else None

    scale = draw(st.sampled_from([1.0, 1.0, 1000.0, 1e6]))
    x_true = rng.normal(size=n) * scale
    arm_true = list(rng.choice(["a", "b", "c"], size=n)) if use_arm else []
    effect = rng.normal(size=n_groups)[codes]
    y_true = 2.0 + 0.5 * x_true / scale + effect + rng.normal(size=n)
    if arm_true:
        y_true = y_true + np.array([{"a": 0.0, "b": 0.4, "c": -0.3}[a] for a in arm_true])

    y_style = draw(st.sampled_from(["repr", "fixed", "sci", "plus", "repr", "thousands"]))
    x_style = draw(
        st.sampled_from(
            ["repr", "fixed", "sci", "plus", "repr", "thousands", "decimal_comma", "spaces"]
        )
    )
    expect, why = "fit", []

    # the cells as text, and the values a person reads in them
    y_text = [number_text(v, y_style) for v in y_true]
    x_text = [number_text(v, x_style) for v in x_true]
    y_val = np.array([float(t.replace(",", "")) for t in y_text])
    x_val = np.array(
        [
            v if x_style == "decimal_comma" else float(t.replace(",", ""))
            for t, v in zip(x_text, x_true, strict=True)
        ]
    )
    if y_style == "thousands" and any("," in t for t in y_text):
        expect, why = "error", why + ["thousands separators in the response"]
    if x_style == "thousands" and any("," in t for t in x_text):
        expect, why = "error", why + ["thousands separators in x"]
    if x_style == "decimal_comma":
        expect, why = "error", why + ["decimal commas in x"]
    if x_style == "spaces":
        expect, why = "either", why + ["padded numbers"]
    g_text = [labels[c] for c in codes]
    g_val: list = list(g_text)
    arm_text = list(arm_true)
    arm_val: list = list(arm_true)

    # missing values, written as the tokens people use
    for column in ("y", "x", "g", "arm"):
        if column == "arm" and not use_arm:
            continue
        share = draw(st.sampled_from([0.0, 0.0, 0.1, 0.3]))
        if not share:
            continue
        token = draw(st.sampled_from(NA_TOKENS))
        for i in np.flatnonzero(rng.random(n) < share):
            if column == "y":
                y_text[i], y_val[i] = token, np.nan
            elif column == "x":
                x_text[i], x_val[i] = token, np.nan
            elif column == "g":
                g_text[i], g_val[i] = token, None
            else:
                arm_text[i], arm_val[i] = token, None

    # poison: text in a numeric column, or an infinite value
    poison = draw(st.sampled_from([None] * 6 + ["text_x", "text_y", "inf_x", "inf_y"]))
    if poison is not None:
        i = int(rng.integers(n))
        token = draw(
            st.sampled_from(["abc", "?", ".", "-", "1.2.3", "#VALUE!"])
            if poison.startswith("text")
            else st.sampled_from(["inf", "-inf", "Infinity", "-Infinity", "INF"])
        )
        if poison.endswith("x"):
            x_text[i], x_val[i] = token, float(token) if poison.startswith("inf") else np.nan
        else:
            y_text[i], y_val[i] = token, float(token) if poison.startswith("inf") else np.nan
        expect, why = "error", why + [f"{token!r} in {poison[-1]}"]
        others_missing = (
            np.isnan(y_val[i] if poison.endswith("x") else x_val[i])
            or g_val[i] is None
            or (use_arm and arm_val[i] is None)
        )
        if poison.startswith("inf") and others_missing:
            # a row dropped for another missing value: refusing it (as R's lm does not) or fitting
            # without it are both right
            expect = "either"

    # the file's layout
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t", "tsv"]))
    suffix = ".tsv" if delimiter == "tsv" else ".csv"
    sep = "\t" if delimiter == "tsv" else delimiter
    if sep != ",":
        if suffix == ".csv":
            expect, why = "error", why + [f"{sep!r} as delimiter in a .csv"]
        elif x_style == "decimal_comma" and poison is None and y_style != "thousands":
            expect = "either"  # a .tsv with decimal commas is text, caught as such or not
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.booleans())
    blank_lines = draw(st.sampled_from(["none", "end", "middle"]))
    note = draw(st.booleans())  # a free-text column with newlines, quotes and delimiters
    duplicate = draw(st.sampled_from([None, None, None, "x", "empty"]))

    header = [y_name, x_name, g_name] + ([arm_name] if use_arm else [])
    columns = [y_text, x_text, g_text] + ([arm_text] if use_arm else [])
    if note:
        header.append("note")
        columns.append([f'row {i}, "quoted"\nsecond line; {sep}' for i in range(n)])
    if duplicate == "x":
        header.append(x_name)
        columns.append(list(x_text))
        expect, why = "error", why + ["a duplicated column name"]
    elif duplicate == "empty":
        header.append("")
        columns.append(["1"] * n)

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, quoting=quoting, lineterminator=newline)
    writer.writerow(header)
    records = list(zip(*columns, strict=True))
    middle = n // 2
    for i, record in enumerate(records):
        if blank_lines == "middle" and i == middle:
            buffer.write(newline)
        writer.writerow(record)
    if blank_lines == "end":
        buffer.write(newline * 2)
    text = ("\ufeff" if bom else "") + buffer.getvalue()

    def quoted(name):
        return name if name.isidentifier() else f"`{name}`"

    terms = [quoted(x_name)] + ([quoted(arm_name)] if use_arm else [])
    formula = f"{quoted(y_name)} ~ {' + '.join(terms)} + (1 | {quoted(g_name)})"
    if names_pool == "hostile" and expect == "fit":
        expect = "either"
    if expect == "fit" and quoting == csv.QUOTE_NONNUMERIC:
        expect = "either"  # quoted numbers are numbers for pandas, but not for every reader

    table = Table(
        text=text.encode("utf-8"),
        suffix=suffix,
        formula=formula,
        rows=n,
        y=y_val,
        x=x_val,
        arm=arm_val,
        group=g_val,
        expect=expect,
        why="; ".join(why),
    )
    return table


def check_outcome(table: Table, outcome: Outcome):
    """The contract, with the generator's table as the oracle."""
    note = f"[{table.why or 'clean'}] formula {table.formula!r}"
    assert outcome.status in (0, 2), f"exit {outcome.status} {note}: {outcome.err[:2000]}"
    assert outcome.seconds < CASE_SECONDS
    if outcome.status == 2:
        if table.expect == "fit" and not table.degenerate():
            raise AssertionError(f"a clean file was refused {note}: {outcome.err[:600]}")
        assert_one_line_error(outcome.err)
        assert outcome.out == ""
        return
    assert table.expect != "error", f"a file that should be refused was fitted {note}"
    assert "Traceback" not in outcome.err
    result = outcome.result
    complete = table.complete()
    assert result["n_obs"] + result["n_dropped"] == table.rows, note
    assert result["n_obs"] == int(complete.sum()), note
    groups = {g for g, keep in zip(table.group, complete, strict=True) if keep}
    assert result["n_groups"] == len(groups), note
    if result["n_dropped"]:
        assert sum(result["dropped_by_column"].values()) >= result["n_dropped"], note
        assert f"Dropped {result['n_dropped']} of {table.rows} rows" in outcome.err
    params = np.array(list(result["ols"]["params"].values()), dtype=float)
    expected = table.ols()
    assert params.shape == expected.shape, f"{list(result['ols']['params'])} {note}"
    np.testing.assert_allclose(params, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
@FUZZ
@given(table=tables())
def test_generated_files_fit_with_the_right_rows_or_fail_in_one_line(
    tmp_path_factory, table, large
):
    folder = tmp_path_factory.mktemp("fuzz", numbered=True)
    path = folder / f"data{table.suffix}"
    path.write_bytes(table.text)
    extra = ["--large"] if large else []
    outcome = invoke(path, table.formula, *extra, json_path=folder / "out.json")
    check_outcome(table, outcome)


# ------------------------------------------------------------------ fixed hostile files


def _rows(n=24, groups=4, seed=0):
    rng = np.random.default_rng(seed)
    g = [f"g{k % groups}" for k in range(n)]
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(size=n)
    return y, x, g


def _csv(header, rows, sep=",", newline="\n") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _clean(sep=",", decimal="."):
    y, x, g = _rows()
    rows = [
        (f"{a:.4f}".replace(".", decimal), f"{b:.4f}".replace(".", decimal), c)
        for a, b, c in zip(y, x, g, strict=True)
    ]
    return _csv(["y", "x", "g"], rows, sep=sep)


def _with(column: str, index: int, token: str) -> str:
    y, x, g = _rows()
    rows = [[f"{a:.4f}", f"{b:.4f}", c] for a, b, c in zip(y, x, g, strict=True)]
    rows[index][["y", "x", "g"].index(column)] = token
    return _csv(["y", "x", "g"], rows)


FORMULA = "y ~ x + (1 | g)"

# (id, file name, content (str or bytes), formula, regex the one-line message must match)
REFUSED = [
    ("semicolon", "semi.csv", _clean(";"), FORMULA, r"';'"),
    ("semicolon-decimal-comma", "euro.csv", _clean(";", ","), FORMULA, r"';'"),
    ("tab-in-csv", "tabs.csv", _clean("\t"), FORMULA, r"tab"),
    ("header-only", "header.csv", "y,x,g\n", FORMULA, r"no data rows"),
    ("header-only-bom-crlf", "header2.csv", "\ufeffy,x,g\r\n", FORMULA, r"no data rows"),
    ("empty", "empty.csv", "", FORMULA, r"empty"),
    ("blank-lines-only", "blank.csv", "\n\n\r\n", FORMULA, r"(no columns|no data|empty)"),
    ("spaces-only", "spaces.csv", "   \n  \n", FORMULA, r"."),
    ("binary-junk", "junk.csv", bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8)), FORMULA, r"junk\.csv"),
    ("nul-bytes", "nul.csv", b"y,x,g\n" + b"\x00" * 2000, FORMULA, r"."),
    ("utf16", "utf16.csv", _clean().encode("utf-16"), FORMULA, r"utf16\.csv"),
    ("gzip-named-csv", "packed.csv", gzip.compress(_clean().encode()), FORMULA, r"packed\.csv"),
    ("duplicated-x", "dup.csv", _csv(["y", "x", "x", "g"], [(1, 2, 3, "a")] * 6), FORMULA, r"'x'.*(more than once|2 times)"),
    ("text-in-x", "textx.csv", _with("x", 7, "abc"), FORMULA, r"'x'.*'abc'"),
    ("dot-missing-in-x", "dotx.csv", _with("x", 3, "."), FORMULA, r"'x'.*'\.'"),
    ("text-in-y", "texty.csv", _with("y", 7, "oops"), FORMULA, r"'y'.*'oops'"),
    ("thousands-in-x", "thousands.csv", _with("x", 2, "1,234.5"), FORMULA, r"'x'.*'1,234\.5'"),
    ("decimal-comma-in-y", "comma.csv", _with("y", 2, "0,5"), FORMULA, r"'y'.*'0,5'"),
    ("inf-in-x", "infx.csv", _with("x", 4, "inf"), FORMULA, r"'x'.*infinite"),
    ("minus-infinity-in-y", "infy.csv", _with("y", 4, "-Infinity"), FORMULA, r"'y'.*infinite"),
    ("absent-column", "clean.csv", _clean(), "y ~ z + (1 | g)", r"'z' is not in the data"),
    ("absent-backticked", "clean.csv", _clean(), "y ~ `my x` + (1 | g)", r"'my x' is not in the data"),
    ("absent-group", "clean.csv", _clean(), "y ~ x + (1 | `site id`)", r"'site id' is not in the data"),
    ("unclosed-backtick", "clean.csv", _clean(), "y ~ `x + (1 | g)", r"formula"),
    ("backtick-in-name", "clean.csv", _clean(), "y ~ `a`b` + (1 | g)", r"formula|not in the data"),
    ("empty-backticks", "clean.csv", _clean(), "y ~ `` + (1 | g)", r"empty backticks"),
    ("formula-on-empty-name", "clean.csv", _clean(), "y ~ x + (1 | ``)", r"formula|not in the data|group"),
    ("two-tildes", "clean.csv", _clean(), "y ~ x ~ g + (1 | g)", r"formula"),
    ("no-response", "clean.csv", _clean(), " ~ x + (1 | g)", r"response"),
    ("column-named-intercept", "icpt.csv", _csv(["y", "Intercept", "g"], [(a, b, c) for a, b, c in zip(*_rows(), strict=True)]), "y ~ Intercept + (1 | g)", r"'Intercept'"),
    ("no-random-intercept", "clean.csv", _clean(), "y ~ x", r"random intercept"),
    ("very-long-name", "long.csv", _csv(["y", "v" * 5000, "g"], [(1, 2, "a"), (2, 3, "b"), (3, 5, "a"), (4, 4, "b")]), "y ~ " + "v" * 5000 + " + (1 | g)", r"long"),
    ("truncated-gzip", "cut.csv.gz", gzip.compress(_clean().encode())[:60], FORMULA, r"cut\.csv\.gz"),
    ("ten-mb-one-name", "line1.csv", "y" * TEN_MB, FORMULA, r"line1\.csv"),
    ("ten-mb-one-record", "line2.csv", "y,x,g\n1,2," + "a" * TEN_MB, FORMULA, r"line2\.csv|'g'"),
]  # fmt: skip


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
@pytest.mark.parametrize(
    ("name", "content", "formula", "pattern"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_hostile_file_is_refused_in_one_line(tmp_path, name, content, formula, pattern, large):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    extra = ["--large"] if large else []
    outcome = invoke(path, formula, *extra, json_path=tmp_path / "out.json")
    assert outcome.status == 2, f"exit {outcome.status}: {outcome.err[:1000]}"
    assert_one_line_error(outcome.err, pattern=pattern)
    assert outcome.out == ""
    assert not (tmp_path / "out.json").exists()


def _fits(tmp_path, name, text, formula, *, rows, complete, groups, large):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    extra = ["--large"] if large else []
    outcome = invoke(path, formula, *extra, json_path=tmp_path / "out.json")
    assert outcome.status == 0, outcome.err[:2000]
    result = outcome.result
    assert (result["n_obs"], result["n_dropped"], result["n_groups"]) == (
        complete,
        rows - complete,
        groups,
    )
    return result


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_bom_crlf_quoted_newlines_and_na_tokens_fit_with_the_right_counts(tmp_path, large):
    y, x, g = _rows(n=30, groups=5, seed=3)
    records = []
    missing = 0
    for i, (a, b, c) in enumerate(zip(y, x, g, strict=True)):
        token = NA_TOKENS[i % len(NA_TOKENS)] if i % 4 == 0 else None
        missing += token is not None
        records.append(
            (
                f"{a:.6f}" if token is None else token,
                f"{b:.6f}",
                f"{c}, site\nwing",
                f'free "text", {i}\r\nmore',
            )
        )
    text = "\ufeff" + _csv(["réponse", "dose mg", "site id", "note"], records, newline="\r\n")
    formula = "réponse ~ `dose mg` + (1 | `site id`)"
    _fits(tmp_path, "bom.csv", text, formula, rows=30, complete=30 - missing, groups=5, large=large)


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_blank_lines_are_not_rows(tmp_path, large):
    text = _clean()
    lines = text.splitlines(keepends=True)
    text = lines[0] + "\n" + "".join(lines[1:12]) + "\n\n" + "".join(lines[12:]) + "\n\n"
    _fits(tmp_path, "blank.csv", text, FORMULA, rows=24, complete=24, groups=4, large=large)


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_tab_separated_tsv_and_an_empty_column_name_fit(tmp_path, large):
    y, x, g = _rows()
    text = _csv(["y", "", "x", "g"], [(a, 1, b, c) for a, b, c in zip(y, x, g, strict=True)], "\t")
    _fits(tmp_path, "data.tsv", text, FORMULA, rows=24, complete=24, groups=4, large=large)


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_columns_differing_only_in_case_use_the_named_one(tmp_path, large):
    """'Y' and 'y' are different columns; the fit must use the one the formula names."""
    y, x, g = _rows()
    text = _csv(["Y", "y", "x", "g"], [(100 + a, a, b, c) for a, b, c in zip(y, x, g, strict=True)])
    path = tmp_path / "case.csv"
    path.write_text(text)
    outcome = invoke(path, FORMULA, *(["--large"] if large else []), json_path=tmp_path / "o.json")
    if outcome.status == 2:
        assert_one_line_error(outcome.err, pattern=r"'y'")
        return
    assert outcome.status == 0, outcome.err
    design = np.column_stack([np.ones(24), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    got = list(outcome.result["ols"]["params"].values())
    np.testing.assert_allclose(got, beta, rtol=1e-6)


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_a_long_but_sane_column_name_fits(tmp_path, large):
    y, x, g = _rows()
    name = "dose in milligrams per kilogram of body weight, " * 10  # 490 characters
    text = _csv(["y", name, "g"], list(zip(y, x, g, strict=True)))
    _fits(tmp_path, "long.csv", text, f"y ~ `{name}` + (1 | g)", rows=24, complete=24, groups=4, large=large)  # fmt: skip


def test_nan_text_counts_as_missing_and_names_its_column(tmp_path):
    y, x, g = _rows()
    rows = [[f"{a:.4f}", f"{b:.4f}", c] for a, b, c in zip(y, x, g, strict=True)]
    for i, token in zip([1, 5, 9], ["nan", "NaN", "-nan"], strict=True):
        rows[i][1] = token
    outcome = invoke(_write(tmp_path, "nan.csv", _csv(["y", "x", "g"], rows)), FORMULA, json_path=tmp_path / "o.json")  # fmt: skip
    assert outcome.status == 0, outcome.err
    assert outcome.result["n_dropped"] == 3 and outcome.result["dropped_by_column"] == {"x": 3}
    assert "Dropped 3 of 24 rows" in outcome.err and "'x'" in outcome.err


def _write(folder, name, text):
    path = Path(folder) / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


# --------------------------------------------------------------------- real processes


def _process(argv, timeout=PROCESS_SECONDS):
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "helpers", "report", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    return run, time.monotonic() - start


PROCESS_CASES = [
    ("ten-mb-of-one-repeated-name", "wide.csv", ",".join(["1.5"] * (TEN_MB // 4)), []),
    (
        "ten-mb-of-distinct-names",
        "names.csv",
        ",".join(f"c{k}" for k in range(TEN_MB // 8)),
        ["--large"],
    ),  # fmt: skip
    ("binary-junk", "junk.csv", bytes(range(256)) * 64, []),
    ("semicolons", "semi.csv", _clean(";", ","), ["--large"]),
]


@pytest.mark.parametrize(
    ("name", "content", "extra"),
    [case[1:] for case in PROCESS_CASES],
    ids=[case[0] for case in PROCESS_CASES],
)
def test_a_real_process_refuses_in_one_line_without_hanging(tmp_path, name, content, extra):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    run, seconds = _process([str(path), "--formula", FORMULA, "--json", str(tmp_path / "o.json"), *extra])  # fmt: skip
    assert run.returncode == 2, run.stderr[:2000]
    assert run.stdout == ""
    assert_one_line_error(run.stderr, prog="python -m helpers report")
    assert seconds < PROCESS_SECONDS


@pytest.mark.slow
@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_a_real_process_fits_a_hostile_but_valid_file_with_the_right_counts(tmp_path, large):
    """Through the real notebook and kernel: BOM, CRLF, quoted newlines, NA tokens, unicode names."""
    y, x, g = _rows(n=40, groups=5, seed=11)
    records, complete = [], 0
    for i, (a, b, c) in enumerate(zip(y, x, g, strict=True)):
        token = NA_TOKENS[i % len(NA_TOKENS)] if i % 8 == 1 else None  # one row in each cluster
        complete += token is None
        records.append((f"{c}\nwing", f"{b:.5f}" if token is None else token, f"{a:.5f}"))
    path = tmp_path / "hostile.csv"
    path.write_bytes(
        ("\ufeff" + _csv(["site id", "größe", "反应"], records, newline="\r\n")).encode()
    )
    argv = [
        str(path),
        "--formula",
        "反应 ~ größe + (1 | `site id`)",
        "--json",
        str(tmp_path / "o.json"),
    ]
    run, seconds = _process(argv + (["--large"] if large else []), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    result = json.loads((tmp_path / "o.json").read_text())
    assert (result["n_obs"], result["n_dropped"], result["n_groups"]) == (
        complete,
        40 - complete,
        5,
    )
    assert result["dropped_by_column"] == {"größe": 40 - complete}


# ------------------------------------------------- ordinary files the report must fit (regressions)


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_an_intercept_only_model_fits(tmp_path, large):
    _fits(tmp_path, "clean.csv", _clean(), "y ~ (1 | g)", rows=24, complete=24, groups=4, large=large)  # fmt: skip


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_three_fixed_effects_fit(tmp_path, large):
    """The model summary prints the correlation of three or more fixed effects."""
    y, x, g = _rows(n=30, groups=5, seed=4)
    arm = ["a", "b", "c"] * 10
    text = _csv(["y", "x", "arm", "g"], list(zip(y, x, arm, g, strict=True)))
    formula = "y ~ x + arm + (1 | g)"
    result = _fits(tmp_path, "arm.csv", text, formula, rows=30, complete=30, groups=5, large=large)
    assert sorted(result["ols"]["params"]) == ["Intercept", "arm[T.b]", "arm[T.c]", "x"]
    assert len(result["lmm"]["params"]) == 4


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_two_clusters_fit(tmp_path, large):
    """Two clusters are few (the report warns), but they are a model the report must fit."""
    text = _csv(["y", "x", "g"], list(zip(*_rows(n=20, groups=2, seed=6), strict=True)))
    result = _fits(tmp_path, "two.csv", text, FORMULA, rows=20, complete=20, groups=2, large=large)
    assert any("Only 2 clusters" in w for w in result["warnings"])


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_a_dotted_backticked_predictor_fits(tmp_path, large):
    y, x, g = _rows()
    text = _csv(["y", "dose.mg", "g"], list(zip(y, x, g, strict=True)))
    formula = "y ~ `dose.mg` + (1 | g)"
    _fits(tmp_path, "dots.csv", text, formula, rows=24, complete=24, groups=4, large=large)


@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_a_gzipped_csv_fits(tmp_path, large):
    text = gzip.compress(("\ufeff" + _clean()).encode())
    _fits(tmp_path, "data.csv.gz", text, FORMULA, rows=24, complete=24, groups=4, large=large)


TRAILING = "y,x,g\n" + "".join(f"{a:.3f},{b:.3f},{c},\n" for a, b, c in zip(*_rows(), strict=True))
ROW_NAMES = "y,x,g\n" + "".join(
    f"{i},{a:.3f},{b:.3f},{c}\n" for i, (a, b, c) in enumerate(zip(*_rows(), strict=True))
)


@pytest.mark.parametrize("text", [TRAILING, ROW_NAMES], ids=["trailing-comma", "row-names"])
@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_more_fields_than_header_names_never_shift_the_columns(tmp_path, text, large):
    """pandas reads extra leading fields as row names; a trailing comma would shift every column."""
    path = _write(tmp_path, "extra.csv", text)
    outcome = invoke(path, FORMULA, *(["--large"] if large else []), json_path=tmp_path / "o.json")
    if outcome.status == 2:
        assert_one_line_error(outcome.err)
        if not large:
            assert "more fields in its data rows than names in its header" in outcome.err
        return
    assert outcome.status == 0, outcome.err
    y, x, _ = _rows()
    y, x = np.round(y, 3), np.round(x, 3)
    beta, *_ = np.linalg.lstsq(np.column_stack([np.ones(24), x]), y, rcond=None)
    got = list(outcome.result["ols"]["params"].values())
    np.testing.assert_allclose(got, beta, rtol=1e-6)
