"""The own-data report: input checks, parameter injection, the JSON, and a self-contained HTML page.

Bad input exits with status 2 and one line on stderr, before the notebook runs. Two end-to-end runs (rows
in memory, and the DuckDB path) execute the template notebook and check the report against direct fits.
"""

from __future__ import annotations

import json
import re
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
    ("radon.csv", "log_radon ~ floor +* (1 | county)", [], r"syntax error"),
    ("radon.csv", "log_radon ~ floor + (floor | county)", [], r"not supported.*'\(1 \| group\)'"),
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
]


@pytest.mark.parametrize(("name", "formula", "references", "message"), BAD_INPUTS)
@pytest.mark.parametrize("large", [False, True], ids=["rows", "duckdb"])
def test_bad_input_exits_2_with_one_line(files, capsys, name, formula, references, message, large):
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
    monkeypatch.setattr(report, "NOTEBOOK", "99_not_there.ipynb")
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
    monkeypatch.setattr(report, "LARGE_FILE_BYTES", 100)
    big = report.check_inputs(files / "radon.csv", "log_radon ~ floor + (1 | county)")
    assert big.large and big.design.stats.n_obs == small.design.stats.n_obs == 919


def test_notebook_parameters_match_what_the_report_injects():
    """The report injects exactly the names the template's parameters cell defines."""
    nb = nbformat.read(report.notebook_path(), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    defined = set(re.findall(r"^(\w+)\s*=", tagged[0].source, re.M))
    assert defined == {"data_path", "formula", "group", "reference", "reml", "large", "json_path"}
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
    assert result["ols"]["sigma2"] == ols.sigma2
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
