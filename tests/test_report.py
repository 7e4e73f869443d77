"""The own-data report: input checks, parameter injection, the JSON, and a self-contained HTML page.

Bad input exits with status 2 and one line on stderr, before the notebook runs. Two end-to-end runs (rows
in memory, and the DuckDB path) execute the template notebook and check the report against direct fits.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import helpers
from helpers import report
from helpers.__main__ import main as package_main
from helpers.decompose import decompose
from helpers.design import RowsDroppedWarning
from helpers.large import design_from_file
from helpers.plots import new_figure
from helpers.validate import DataError

FORMULA = "`log radon` ~ floor + (1 | `county.name`)"


@pytest.fixture(scope="module")
def files(tmp_path_factory, radon):
    """A folder of data files: good ones, and one for each kind of bad input."""
    folder = tmp_path_factory.mktemp("report_inputs")
    rng = np.random.default_rng(3)
    gappy = radon.rename(columns={"log_radon": "log radon", "county": "county.name"})
    gappy.loc[rng.choice(len(gappy), 12, replace=False), "floor"] = np.nan
    gappy.loc[rng.choice(len(gappy), 4, replace=False), "log radon"] = np.nan
    gappy.to_csv(folder / "gappy.csv", index=False)
    radon.to_csv(folder / "radon.csv", index=False)
    radon.assign(one="a", empty=np.nan, label="x").to_csv(folder / "odd.csv", index=False)
    (folder / "empty.csv").write_text("")
    (folder / "header.csv").write_text("y,x,g\n")
    (folder / "broken.parquet").write_bytes(b"not a parquet file")
    (folder / "book.xlsx").write_text("not data")
    (folder / "binary.csv").write_bytes(bytes(range(256)) * 8)
    # a .gz whose compressed body is damaged (zlib.error, which escaped as a traceback)
    packed = gzip.compress(radon.to_csv(index=False).encode())
    noise = np.random.default_rng(4).integers(0, 256, len(packed) - 20, dtype=np.uint8).tobytes()
    (folder / "corrupt.csv.gz").write_bytes(packed[:20] + noise)
    # Parquet columns a model cannot use (they crashed with TypeError or UnicodeDecodeError)
    n = len(radon)
    small = radon[["log_radon", "floor", "county"]].copy()
    small.assign(county=[[k % 3] for k in range(n)]).to_parquet(folder / "list_group.parquet")
    small.assign(floor=[b"\x00\xff"] * n).to_parquet(folder / "bytes_x.parquet")
    small.assign(floor=pd.to_timedelta(radon["floor"], unit="s")).to_parquet(
        folder / "duration.parquet"
    )
    small.assign(
        floor=pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(n), unit="D")
    ).to_parquet(folder / "dates.parquet")
    return folder


BAD_INPUTS = [
    ("nofile.csv", "log_radon ~ floor + (1 | county)", [], r"does not exist"),
    ("empty.csv", "y ~ x + (1 | g)", [], r"is empty"),
    ("header.csv", "y ~ x + (1 | g)", [], r"no data rows"),
    ("broken.parquet", "y ~ x + (1 | g)", [], r"could not be read as Parquet"),
    ("binary.csv", "y ~ x + (1 | g)", [], r"could not be read as CSV"),
    ("book.xlsx", "y ~ x + (1 | g)", [], r"unknown format \('\.xlsx'\)"),
    (
        "radon.csv",
        "log_radon ~ flor + (1 | county)",
        [],
        r"'flor' is not in the data\. Did you mean 'floor'",
    ),
    ("radon.csv", "log_radon ~ floor +* (1 | county)", [], r"'\*' where a column name"),
    (
        "radon.csv",
        "log_radon ~ floor + (1 | county) + (1 | floor)",
        [],
        r"crossed groupings are not",
    ),
    ("radon.csv", "log_radon ~ floor", [], r"no random intercept"),
    ("odd.csv", "label ~ floor + (1 | county)", [], r"response 'label' is not numeric"),
    ("odd.csv", "log_radon ~ floor + (1 | one)", [], r"'one' has 1 distinct value"),
    ("odd.csv", "log_radon ~ empty + (1 | county)", [], r"'empty' is entirely missing"),
    (
        "radon.csv",
        "log_radon ~ floor + (1 | county)",
        ["county=NOWHERE"],
        r"'NOWHERE' is not a value",
    ),
    ("radon.csv", "log_radon ~ floor + (1 | county)", ["floor=1"], r"'floor', which is numeric"),
    ("radon.csv", "log_radon ~ floor + (1 | county)", ["county"], r"not of the form column=level"),
    (
        "odd.csv",
        "log_radon ~ floor + (1 | county)",
        ["label=x"],
        r"'label', which the formula does not",
    ),
    ("corrupt.csv.gz", "log_radon ~ floor + (1 | county)", [], r"could not be read as CSV"),
    ("list_group.parquet", "log_radon ~ floor + (1 | county)", [], r"'county' holds .*cannot use"),
    ("bytes_x.parquet", "log_radon ~ floor + (1 | county)", [], r"'floor' holds .*cannot use"),
    ("duration.parquet", "log_radon ~ floor + (1 | county)", [], r"'floor' holds dates or times"),
    ("dates.parquet", "log_radon ~ floor + (1 | county)", [], r"'floor' holds dates or times"),
]


@pytest.mark.parametrize(("name", "formula", "references", "message"), BAD_INPUTS)
@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_bad_input_exits_2_with_one_line(files, capsys, name, formula, references, message, large):
    if large and name == "duration.parquet":
        pytest.skip("DuckDB reads a pandas duration column as its integers (BIGINT): a number")
    argv = [str(files / name), "--formula", formula]
    for item in references:
        argv += ["--reference", item]
    if large:
        argv.append("--large")
    status = report.main(argv)
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lmm-report: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in err


def test_bad_input_from_a_real_process_is_one_line(files):
    """The process itself: exit status 2, one stderr line, nothing on stdout, before any notebook runs."""
    run = subprocess.run(
        [sys.executable, "-m", "helpers", "report", str(files / "radon.csv"), "--formula", "x ~ y"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("python -m helpers report: error: ")


def test_console_script_and_missing_output_folder(files, tmp_path):
    script = Path(sys.executable).with_name("lmm-report")
    if not script.exists():
        pytest.skip("the lmm-report console script is not installed in this environment")
    run = subprocess.run(
        [
            str(script),
            str(files / "radon.csv"),
            "--formula",
            "log_radon ~ floor + (1 | county)",
            "--html",
            str(tmp_path / "no" / "such" / "folder" / "r.html"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "its folder does not exist" in run.stderr


def test_missing_notebook_is_a_clear_error(files, monkeypatch, capsys):
    monkeypatch.setattr(report.run, "NOTEBOOK", "99_not_there.ipynb")
    status = report.main(
        [str(files / "radon.csv"), "--formula", "log_radon ~ floor + (1 | county)"]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and "99_not_there.ipynb was not found" in err


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main(["data.csv"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "--formula" in err
    assert package_main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert package_main([]) == 2


def test_parse_and_apply_reference():
    assert report.parse_reference(["a=x", " b = y z "]) == {"a": "x", "b": "y z"}
    for bad in ["a", "=x", "a="]:
        with pytest.raises(DataError, match="column=level"):
            report.parse_reference([bad])
    frame = pd.DataFrame({"arm": ["b", "a", "c"], "x": [1.0, 2.0, 3.0]})
    assert list(report.apply_reference(frame, {"arm": "b"})["arm"].cat.categories) == [
        "b",
        "a",
        "c",
    ]
    with pytest.raises(DataError, match="numeric"):
        report.apply_reference(frame, {"x": "1"})


def test_large_path_is_chosen_by_size(files, monkeypatch):
    small = report.check_inputs(files / "radon.csv", "log_radon ~ floor + (1 | county)")
    assert not small.large
    monkeypatch.setattr(report.inputs, "LARGE_FILE_BYTES", 100)
    big = report.check_inputs(files / "radon.csv", "log_radon ~ floor + (1 | county)")
    assert big.large and big.design.stats.n_obs == small.design.stats.n_obs == 919


def test_notebook_parameters_match_what_the_report_injects():
    """The report injects exactly the names the template's parameters cell defines."""
    nb = nbformat.read(report.notebook_path(), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    defined = set(re.findall(r"^(\w+)\s*=", tagged[0].source, re.M))
    assert defined == {
        "data_path",
        "formula",
        "group",
        "reference",
        "reml",
        "large",
        "json_path",
        "design_path",
    }
    injected = report.inject_parameters(nb, {"formula": "y ~ 1 + (1 | g)", "reml": False})
    again = report.inject_parameters(injected, {"reml": True})
    marks = [c for c in again.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(marks) == 1 and marks[0].source.endswith("reml = True")
    position = again.cells.index(tagged[0])
    assert again.cells[position + 1] is marks[0]
    with pytest.raises(ValueError, match="parameters"):
        report.inject_parameters(nbformat.v4.new_notebook(), {"x": 1})


def test_default_example_moves_both_intercept_and_slope(radon):
    """The template's default (radon) makes the question's point: lm and lmer differ in both."""
    dec = decompose(radon, "log_radon ~ floor + (1 | county)")
    moves = (dec.lmm - dec.ols).abs() / dec.ols_fit.bse
    assert (moves > 1.0).all(), moves


def test_warnings_in_plain_language():
    frame = helpers.simulate_clustered(n_clusters=3, n_obs=300, sigma_group=0.0, seed=2)
    frame = pd.concat(
        [frame, pd.DataFrame({"y": [0.5], "condition": ["stim"], "cluster": ["lonely"]})],
        ignore_index=True,
    )
    frame["site_level"] = frame["cluster"].astype(str).map(lambda s: float(len(s) + (s == "c1")))
    formula = "y ~ condition + site_level + (1 | cluster)"
    design = helpers.build_design(frame, formula)
    lmm = helpers.fit_lmm(frame, formula)
    text = " ".join(report.plain_warnings(design, lmm))
    assert lmm.singular and "singular" in text
    assert "Only 4 clusters ('cluster')" in text
    assert "1 of the 4 clusters has a single row" in text
    assert "'site_level' does not vary within any cluster ('cluster')" in text
    assert report.warning_list(design, lmm).count("- **Warning.**") == 4


def test_explain_moves_is_plain_text_and_says_where_the_rest_comes_from(radon):
    """Issue 15: no raw TeX in an output the site shows as it is; issue 14: 'carry it the rest of the
    way' replaced by the exact contribution of each other term, which adds up to the gap."""
    formula = "log_radon ~ floor + uranium + (1 | county)"
    dec = decompose(radon, formula)
    text = report.explain_moves(dec)
    assert "$" not in text and "rest of the way" not in text
    blend = dec.blend
    for term in ("Intercept", "uranium"):
        line = next(x for x in text.splitlines() if x.startswith(f"- `{term}`"))
        gap = float(dec.lmm_fit.fe_params[term] - blend.beta_between[term])
        w = float(blend.weight_within.loc[term, "floor"])
        part = w * float(blend.beta_within["floor"] - blend.beta_between["floor"])
        assert part == pytest.approx(gap, rel=1e-9)  # the identity the sentence states
        assert f"= {part:+#.4g}" in line and f"is {gap:+#.4g} away" in line, line
        assert f"{w:#.3g} \u00d7 (" in line


def test_html_has_no_remote_resources_and_draws_math(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# T\nInline $\\sigma_b^2$ and $$\\hat\\beta = 1$$, [a link](04_x.ipynb)."
        ),
        nbformat.v4.new_markdown_cell("taught only", metadata={"tags": ["notebook-only"]}),
    ]
    out = report.export_html(nb, tmp_path / "t.html")
    text = out.read_text()
    assert not re.search(r"https?://", text)
    assert text.count('<img alt="') == 2 and text.count('class="math"') == 2
    assert "$" not in re.sub(r"<style.*?</style>|<script.*?</script>", "", text, flags=re.S)
    assert "taught only" not in text and "04_x.ipynb" not in text and "a link" in text


def _assert_report_html(path: Path):
    text = path.read_text()
    assert not re.search(r"https?://", text), "the report must not reference remote resources"
    assert "<script src" not in text
    assert len(re.findall(r'src="data:image/png;base64,', text)) >= 3
    assert "plot_pooling(" not in text and "import warnings" not in text  # code is hidden
    assert "Learning goals" not in text and "Exercises" not in text  # teaching cells left out
    for caption in ("Figure 1.", "Figure 2.", "Figure 3.", "rows dropped (missing values)"):
        assert caption in text
    return text


@pytest.fixture(scope="module")
def rows_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("report_rows")
    argv = [
        str(files / "gappy.csv"),
        "--formula",
        FORMULA,
        "--html",
        str(out / "r.html"),
        "--json",
        str(out / "r.json"),
    ]
    run = subprocess.run(
        [sys.executable, "-m", "helpers", "report", *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return run, out


@pytest.mark.slow
def test_report_from_rows(rows_run, files):
    run, out = rows_run
    assert run.returncode == 0, run.stderr
    assert "Dropped 16 of 919 rows" in run.stderr  # never silently
    result = json.loads((out / "r.json").read_text())

    data = pd.read_csv(files / "gappy.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        dec = decompose(data, FORMULA)
    lmm, ols = dec.lmm_fit, dec.ols_fit
    assert result["n_obs"] == lmm.n_obs == 903
    assert result["n_groups"] == lmm.n_groups
    assert result["n_dropped"] == 16 and sum(result["dropped_by_column"].values()) >= 16
    assert result["source"] == "rows"
    assert result["ols"]["params"] == ols.params.to_dict()
    assert result["ols"]["bse"] == ols.bse.to_dict()
    assert result["ols"]["sigma2"] == ols.sigma2_resid
    assert result["lmm"]["method"] == "REML"
    assert result["lmm"]["params"] == lmm.fe_params.to_dict()
    assert result["lmm"]["bse"] == lmm.bse.to_dict()
    for key in ("sigma2_group", "sigma2_resid", "theta", "criterion", "singular"):
        assert result["lmm"][key] == getattr(lmm, key)
    assert result["decompose"]["within"]["Intercept"] is None
    assert result["decompose"]["within"]["floor"] == dec.within["floor"]
    assert result["decompose"]["between"] == dec.between.to_dict()
    assert result["decompose"]["reconstructed"] == dec.reconstructed.to_dict()
    assert result["decompose"]["design_effect"] == dec.design_effect
    assert any("single row" in w for w in result["warnings"])

    text = _assert_report_html(out / "r.html")
    assert "Dropped 16 of 919 rows" in text
    assert "never loaded into memory" not in text
    assert "<code>`log radon` ~ floor + (1 | `county.name`)</code>" in text


@pytest.mark.slow
def test_report_from_duckdb_matches_rows(rows_run, files, tmp_path):
    _, out = rows_run
    status = report.main(
        [
            str(files / "gappy.csv"),
            "--formula",
            FORMULA,
            "--large",
            "--html",
            str(tmp_path / "big.html"),
            "--json",
            str(tmp_path / "big.json"),
        ]
    )
    assert status == 0
    rows = json.loads((out / "r.json").read_text())
    duck = json.loads((tmp_path / "big.json").read_text())
    assert duck["source"] == "duckdb"

    def compare(a, b, where):
        if isinstance(a, dict):
            assert set(a) == set(b), where
            for key in a:
                compare(a[key], b[key], f"{where}/{key}")
        elif isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-8), where
        elif where != "/source":
            assert a == b, where

    compare(rows, duck, "")
    text = _assert_report_html(tmp_path / "big.html")
    assert "never loaded into memory" in text and "skipped" in text
    # the model checks say why the residual plots are missing, and draw none
    assert "residual plots need the rows" in text and "Figure 4." not in text
    assert "Figure 4." in (out / "r.html").read_text()


@pytest.mark.slow
def test_ml_option(files, tmp_path):
    assert (
        report.main(
            [
                str(files / "radon.csv"),
                "--formula",
                "log_radon ~ floor + (1 | county)",
                "--ml",
                "--json",
                str(tmp_path / "ml.json"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "ml.json").read_text())
    fit = helpers.fit_lmm(
        helpers.load_dataset("radon"), "log_radon ~ floor + (1 | county)", reml=False
    )
    assert result["lmm"]["method"] == "ML"
    assert result["lmm"]["criterion"] == pytest.approx(fit.criterion, rel=1e-12)
    assert result["lmm"]["params"]["floor"] == pytest.approx(fit.fe_params["floor"], rel=1e-12)


# --- outputs that are inputs ----------------------------------------------------------------------


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("option", "spelling"),
    [("--json", "same"), ("--html", "symlink"), ("--json", "dotdot"), ("--html", "hardlink")],
)
def test_an_output_that_is_the_data_file_is_refused(files, tmp_path, option, spelling):
    """The report never overwrites its data: the same file by any name is refused, exit 2."""
    data = tmp_path / "data.csv"
    data.write_bytes((files / "radon.csv").read_bytes())
    before = _digest(data)
    if spelling == "same":
        target = str(data)
    elif spelling == "symlink":
        (tmp_path / "link.csv").symlink_to(data)
        target = str(tmp_path / "link.csv")
    elif spelling == "dotdot":
        (tmp_path / "sub").mkdir()
        target = os.path.join(str(tmp_path), "sub", "..", "data.csv")
    else:
        os.link(data, tmp_path / "hard.csv")
        target = str(tmp_path / "hard.csv")
    run = subprocess.run(
        [sys.executable, "-m", "helpers", "report", str(data), "--formula",
         "log_radon ~ floor + (1 | county)", option, target],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stdout == "" and run.stderr.count("\n") == 1
    assert f"error: {option} " in run.stderr and "is the data file 'data.csv'" in run.stderr
    assert _digest(data) == before


def test_outputs_that_collide_or_are_folders_or_the_notebook_are_refused(
    files, tmp_path, monkeypatch, capsys
):
    notebook = tmp_path / "template.ipynb"
    notebook.write_text(report.notebook_path().read_text())
    monkeypatch.setattr(report.run, "notebook_path", lambda: notebook)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the notebook ran")

    monkeypatch.setattr(report.run, "run_notebook", must_not_run)
    data = str(files / "radon.csv")
    cases = [
        (["--html", str(tmp_path / "r.out"), "--json", str(tmp_path / "r.out")], "the same file"),
        (["--html", str(tmp_path)], "is a folder"),
        (["--html", str(notebook)], "is the report notebook 'template.ipynb'"),
    ]
    for extra, message in cases:
        status = report.main([data, "--formula", "log_radon ~ floor + (1 | county)", *extra])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and message in err, err
    assert notebook.read_text() == report.notebook_path().read_text()


# --- unexpected failures are bugs, not bad data ----------------------------------------------------


def _boom(*args, **kwargs):
    raise ZeroDivisionError("division by zero")


def test_an_unexpected_error_is_one_line_asking_for_a_report(files, monkeypatch, capsys):
    monkeypatch.setattr(report.inputs, "_check_fit", _boom)
    argv = [str(files / "radon.csv"), "--formula", "log_radon ~ floor + (1 | county)"]
    assert report.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("lmm-report: internal error (ZeroDivisionError: division by zero, at ")
    assert "helpers/report/inputs.py:" in err
    assert "not a problem with your data" in err and "please report it" in err
    assert "issue tracker" in err and "--debug" in err

    assert report.main([*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("lmm-report: internal error (ZeroDivisionError")
    assert "Traceback (most recent call last)" in err and "in _boom" in err


def test_a_failing_notebook_cell_is_reported_as_a_bug_with_its_traceback(
    files, monkeypatch, capsys
):
    def failing(parameters, **kwargs):
        raise report.ReportError(
            "the report notebook failed (KeyError: 'theta')",
            "Cell In[9], line 3\nKeyError: 'theta'",
        )

    monkeypatch.setattr(report.run, "run_notebook", failing)
    argv = [str(files / "radon.csv"), "--formula", "log_radon ~ floor + (1 | county)"]
    assert report.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError: 'theta', in the report notebook" in err
    assert report.main([*argv, "--debug"]) == 1
    assert "Cell In[9], line 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "large"),
    [
        ("pandas.read_csv", False),
        ("helpers.large._scan", True),
        ("helpers.large.source_sql", True),  # patched where design_from_file looks it up,
    ],
)
def test_a_bug_while_reading_is_not_called_bad_data(files, monkeypatch, capsys, target, large):
    """Only the reader errors that mean a damaged file become 'could not be read' (exit 2)."""
    if target.endswith("source_sql"):
        # SQL that DuckDB cannot parse is our bug (a ParserException), not a bad file
        monkeypatch.setattr(target, lambda *args, **kwargs: "(SELECT FROM WHERE")
    else:
        monkeypatch.setattr(target, _boom)
    argv = [str(files / "radon.csv"), "--formula", "log_radon ~ floor + (1 | county)"]
    status = report.main(argv + (["--large"] if large else []))
    err = capsys.readouterr().err
    assert status == 1, err
    assert "internal error" in err and "could not be read" not in err


def test_an_unexpected_error_in_a_real_process_is_one_line(files):
    code = (
        "import sys\n"
        "import helpers.report as r\n"
        "def boom(*a, **k):\n"
        "    raise ZeroDivisionError('division by zero')\n"
        "r.inputs._check_fit = boom\n"
        "sys.exit(r.main(sys.argv[1:], prog='python -m helpers report'))\n"
    )
    argv = [str(files / "radon.csv"), "--formula", "log_radon ~ floor + (1 | county)"]
    run = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("python -m helpers report: internal error (ZeroDivisionError")
    debug = subprocess.run(
        [sys.executable, "-c", code, *argv, "--debug"], capture_output=True, text=True, timeout=300
    )
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


# --- reference levels -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_case(radon, tmp_path_factory):
    """Radon with a categorical predictor whose labels differ in case (R's C locale: 'B' < 'a')."""
    rng = np.random.default_rng(8)
    frame = radon.assign(arm=rng.choice(["b", "a", "B", "A_x"], len(radon)))
    path = tmp_path_factory.mktemp("mixed_case") / "mixed case.csv"
    frame.to_csv(path, index=False)
    return frame, path


def test_reference_levels_follow_r_in_the_c_locale(mixed_case):
    frame, path = mixed_case
    formula = "log_radon ~ floor + arm + (1 | county)"
    rows = helpers.build_design(frame, formula)
    duck = design_from_file(path, formula)
    assert report.reference_levels(rows) == report.reference_levels(duck) == {"arm": "A_x"}
    chosen = helpers.build_design(report.apply_reference(frame, {"arm": "b"}), formula)
    assert report.reference_levels(chosen) == {"arm": "b"}
    duck_b = design_from_file(path, formula, reference={"arm": "b"})
    assert report.reference_levels(duck_b) == {"arm": "b"}
    ordered = frame.assign(arm=pd.Categorical(frame["arm"], categories=["a", "b", "B", "A_x"]))
    assert report.reference_levels(helpers.build_design(ordered, formula)) == {"arm": "a"}
    assert (
        report.reference_levels(helpers.build_design(frame, "log_radon ~ floor + (1 | county)"))
        == {}
    )

    text = report.describe_model(rows, path)
    assert "`arm`: `A_x`" in text and "C locale" in text and "--reference column=level" in text
    result = report.result_dict(rows, decompose(rows))
    assert result["reference_levels"] == {"arm": "A_x"}


# --- tables, figures and titles as a command-line user reads them ---------------------------------


def _png_images(text: str) -> list:
    """(alt text, PNG bytes) of each embedded PNG image of an HTML page, in order."""
    from html.parser import HTMLParser

    found = []

    class Images(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            src = attrs.get("src") or ""
            if tag == "img" and src.startswith("data:image/png;base64,"):
                found.append((attrs.get("alt"), base64.b64decode(src.split(",", 1)[1])))

    Images().feed(text)
    return found


def test_undefined_values_show_as_a_dash_and_figures_carry_their_description(tmp_path):
    html = report.show_table(pd.DataFrame({"within": [np.nan, -0.7214123]})).to_html()
    assert "\u2014" in html and "nan" not in html.lower() and "-0.7214" in html
    nb = nbformat.v4.new_notebook()
    fig = new_figure()[0]
    png, meta = report.show_figure(fig, 'Figure 9: a "quoted" <panel>.')._repr_png_()
    output = nbformat.v4.new_output(
        "display_data",
        data={"image/png": base64.b64encode(png).decode()},
        metadata={"image/png": meta},
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 07 · Generic title\nbody"),
        nbformat.v4.new_code_cell("x", outputs=[output]),
    ]
    text = report.export_html(nb, tmp_path / "f.html", heading="# Report: `data.csv`").read_text()
    assert [alt for alt, _ in _png_images(text)] == ['Figure 9: a "quoted" <panel>.']
    assert "No description has been provided" not in text
    # on a narrow screen the figure scrolls sideways instead of shrinking below width / 1.5
    (tag,) = re.findall(r"<img [^>]*>", text)
    width = struct.unpack(">I", png[16:20])[0]
    assert f'style="min-width:{math.ceil(width / 1.5)}px"' in tag and tag.count("class=") == 1
    assert "overflow-x: auto" in text
    assert "Generic title" not in text and "<code>data.csv</code>" in text and "body" in text


@pytest.fixture(scope="module")
def styled_run(mixed_case, tmp_path_factory):
    """The command on a file with six fixed effects and a mixed-case factor, by ML."""
    _, path = mixed_case
    out = tmp_path_factory.mktemp("report_styled")
    run = subprocess.run(
        [sys.executable, "-m", "helpers", "report", str(path), "--formula",
         "log_radon ~ floor + uranium + arm + (1 | county)", "--ml",
         "--html", str(out / "r.html"), "--json", str(out / "r.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    return run, out


@pytest.mark.slow
def test_report_reads_well_from_the_command_line(styled_run):
    run, out = styled_run
    assert run.returncode == 0, run.stderr
    text = _assert_report_html(out / "r.html")
    result = json.loads((out / "r.json").read_text())
    assert result["reference_levels"] == {"arm": "A_x"}
    body = re.sub(r"<style.*?</style>", "", text, flags=re.S)
    # titled by the user's file and formula, not by the template
    assert "07 · Your own data" not in body
    assert "<title>Mixed-model report: mixed case.csv" in text
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", body, re.S).group(1)
    assert "mixed case.csv" in heading
    assert "<code>log_radon ~ floor + uranium + arm + (1 | county)</code>" in body
    assert "<code>arm</code>: <code>A_x</code>" in body and "C locale" in body
    # the warnings come before the estimates and the figures, as the summary says
    warnings_at = body.index("<strong>Warning.</strong>")
    assert warnings_at < body.index("Three estimates side by side") < body.index("Figure 1.")
    assert "come right after the data" in body
    # figure 3's caption speaks to a command-line user
    caption = body[body.index("Figure 3.") :]
    assert "<code>--ml</code>" in caption[: caption.index("</p>")]
    # an undefined within estimate is a dash, as the text says
    assert re.search(r">\s*NaN\s*<", body) is None and "shown as a dash" in body
    assert re.search(r"<td[^>]*>\s*\u2014\s*</td>", body)
    # each figure has its own description
    assert "No description has been provided" not in text
    images = _png_images(text)
    assert [alt.split(":")[0] for alt, _ in images] == [
        "Figure 1",
        "Figure 2",
        "Figure 3",
        "Figure 4",
    ]
    assert "residual diagnostics" in images[3][0] and "Figure 4." in body  # the model checks
    assert "6 panels" in images[1][0] and "arm[T.B]" in images[1][0]
    # the path figure wraps its six panels (3 + 3) instead of one row of six
    png = images[1][1]
    width, height = struct.unpack(">II", png[16:24])
    assert width / height < 2.5, (width, height)


# --- notebook 07 on its own -------------------------------------------------------------------------


def test_a_missing_relative_data_path_names_the_folder_it_was_looked_for_in(monkeypatch):
    """The notebook runs in notebooks/: the error says so, not just 'check the path'."""
    nb = nbformat.read(report.notebook_path(), as_version=4)
    report.inject_parameters(nb, {"data_path": "my_data.csv"})
    folder = report.notebook_path().parent
    monkeypatch.chdir(folder)
    namespace: dict = {}
    with pytest.raises(DataError) as info:
        for cell in nb.cells:
            if cell.cell_type == "code":
                exec(compile(cell.source, "<notebook 07>", "exec"), namespace)
    message = str(info.value)
    assert "'my_data.csv' does not exist in the folder " + str(folder) in message
    assert "relative path" in message


# --- random slopes (issue 13) ---------------------------------------------------------------------

SLOPES = "Reaction ~ Days + (Days | Subject)"


@pytest.mark.slow
def test_report_fits_random_slopes_and_says_the_decomposition_does_not_apply(tmp_path):
    sleep = helpers.load_dataset("sleepstudy")
    sleep.to_csv(tmp_path / "sleep.csv", index=False)
    argv = [str(tmp_path / "sleep.csv"), "--formula", SLOPES, "--json", str(tmp_path / "r.json")]
    argv += ["--html", str(tmp_path / "r.html")]
    run = subprocess.run(
        [sys.executable, "-m", "helpers", "report", *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    fit = helpers.fit_lmm(sleep, SLOPES)
    assert result["lmm"]["theta"] == fit.theta.tolist()
    assert result["lmm"]["params"] == fit.fe_params.to_dict()
    assert result["lmm"]["sigma2_group"] is None
    varcorr = pd.DataFrame(result["varcorr"] if "varcorr" in result else result["lmm"]["varcorr"])
    assert list(varcorr.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    np.testing.assert_allclose(varcorr["vcov"], fit.varcorr["vcov"], rtol=1e-12)
    assert varcorr["grp"].tolist() == ["Subject", "Subject", "Subject", "Residual"]
    assert result["decompose"]["design_effect"] is None
    assert result["decompose"]["reconstructed"] is None
    assert "not a blend of the within and between" in result["decompose"]["note"]
    html = (tmp_path / "r.html").read_text()
    assert "not a blend of the within and between" in html
    assert "weight_lmm" not in html  # no one-theta figure or weights
    # no one-theta figure, and no caption left behind without its figure
    for gone in (
        "Figure 1: for each",
        "Figure 2",
        "Figure 3",
        "shrinkage k",
        "quasi-demeaning factor λ",
    ):
        assert gone not in html, gone
    # the model checks apply to random slopes: the residual plots, as the page's only figure
    images = _png_images(html)
    assert [alt.split(":")[0] for alt, _ in images] == ["Figure 1"]
    assert "residual diagnostics" in images[0][0] and "Figure 1." in html


def test_random_slopes_from_a_large_file_are_fitted_from_duckdbs_sums(files, tmp_path, capsys):
    """Random slopes with --large: the sums come from DuckDB and the numbers are the rows' numbers."""
    argv = [str(files / "radon.csv"), "--formula", "log_radon ~ floor + (floor | county)"]
    out = {name: tmp_path / f"{name}.json" for name in ("large", "rows")}
    assert report.main([*argv, "--large", "--json", str(out["large"])]) == 0
    assert report.main([*argv, "--engine", "pandas", "--json", str(out["rows"])]) == 0
    got, expected = (json.loads(out[name].read_text()) for name in ("large", "rows"))
    assert (got.pop("source"), expected.pop("source")) == ("duckdb", "rows")
    from engine_cases import assert_same_numbers

    assert_same_numbers(got, expected)
    capsys.readouterr()
    # a slope the data cannot support is still one line and exit 2
    bad = [str(files / "radon.csv"), "--formula", "log_radon ~ floor + (uranium | county)"]
    assert report.main([*bad, "--large"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "constant within every group of 'county'" in err


def test_the_report_names_the_engine_that_computed_the_sums(tmp_path):
    """The report said 'computed from the file by DuckDB' on a Spark run as well."""
    import dataclasses

    from helpers.large import design_from_file
    from helpers.report.content import describe_model

    path = tmp_path / "sleep.parquet"
    helpers.load_dataset("sleepstudy").to_parquet(path)
    design = design_from_file(path, "Reaction ~ Days + (1 | Subject)")
    assert "computed from the file by DuckDB;" in describe_model(design, path)
    on_spark = dataclasses.replace(design, engine="spark")
    text = describe_model(on_spark, path)
    assert "computed from the file by Spark;" in text and "DuckDB" not in text
