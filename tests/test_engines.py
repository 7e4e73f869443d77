"""The per-cluster sums written once as an Ibis expression (helpers.engines), on embedded DuckDB.

The statistics from an Ibis table equal those of the rows in pandas (build_design) and of today's file
path (helpers.large.design_from_file) to 1e-10, on data with missing values, string and integer cluster
labels, a factor with a chosen reference and a logical predictor; bad input gives the in-memory path's
messages; a missing engine says in one line how to install it. Spark is in tests/test_spark.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings

import ibis
import numpy as np
import pandas as pd
import pytest
from engine_cases import (
    CLI_FORMULA,
    FORMULAS,
    SLOPE_CASES,
    assert_same_design,
    assert_same_fit,
    assert_same_numbers,
    in_memory,
    in_memory_slopes,
    messy_frame,
    pandas_numbers,
    run_report,
    slope_frames,
)

from helpers import engines
from helpers.design import build_design
from helpers.engines import EngineUnavailable, design_from_table, read_table
from helpers.large import design_from_file
from helpers.validate import DataError, RowsDroppedWarning

# ibis.memtable on pandas 3 calls a pandas option that pandas marks as deprecated (Ibis's, not ours)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ibis")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return messy_frame()


@pytest.fixture(scope="module")
def parquet(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("engines") / "messy.parquet"
    frame.to_parquet(path)
    return path


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        return function(*args, **kwargs)


@pytest.mark.parametrize(("formula", "reference"), FORMULAS)
def test_ibis_statistics_equal_pandas_and_the_file_path(frame, parquet, formula, reference):
    expected = in_memory(frame, formula, reference)
    table = ibis.memtable(frame)
    got = _quiet(design_from_table, table, formula, reference=reference)
    assert_same_design(got, expected)
    assert_same_design(got, _quiet(design_from_file, parquet, formula, reference=reference))
    assert got.n_dropped > 0 and got.rows is None


def test_a_duckdb_table_read_from_a_file_or_a_folder(tmp_path, frame):
    formula, reference = FORMULAS[0]
    expected = in_memory(frame, formula, reference)
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:700].to_parquet(folder / "part-0.parquet")
    frame.iloc[700:].to_parquet(folder / "part-1.parquet")
    got = _quiet(design_from_table, read_table(folder), formula, reference=reference)
    assert_same_design(got, expected)
    csv = tmp_path / "messy.csv"
    frame.to_csv(csv, index=False)
    got = _quiet(design_from_table, read_table(csv), formula, reference=reference)
    assert_same_design(got, expected)


def test_dropped_rows_are_counted_and_warned(frame):
    table = ibis.memtable(frame)
    with pytest.warns(RowsDroppedWarning, match=r"Dropped \d+ of 2000 rows"):
        got = design_from_table(table, "y ~ x + dose + (1 | site)")
    complete = frame[["y", "x", "dose", "site"]].dropna()
    assert got.n_obs == len(complete) and got.n_dropped == len(frame) - len(complete)
    assert got.dropped_by_column == {"dose": 25, "x": 40, "y": 30}
    assert got.dropped_by_column == in_memory(frame, "y ~ x + dose + (1 | site)").dropped_by_column


def test_the_centring_shift_need_only_be_near_the_mean(frame):
    formula = "y ~ x + dose + (1 | site)"
    table = ibis.memtable(frame)
    one = _quiet(design_from_table, table, formula, centre_rows=1)
    every = _quiet(design_from_table, table, formula, centre_rows=None)
    assert_same_design(one, every)


def _message(call) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        with pytest.raises(DataError) as info:
            call()
    return str(info.value)


def test_bad_input_gives_the_in_memory_messages(frame):
    table = ibis.memtable(frame)
    cases = [
        "y ~ x + dosage + (1 | site)",  # a column missing from the table
        "y ~ x + (1 | lonely)",  # one cluster
    ]
    data = frame.assign(lonely="only")
    table = ibis.memtable(data)
    for formula in cases:
        expected = _message(lambda f=formula: build_design(data, f))
        assert _message(lambda f=formula: design_from_table(table, f)) == expected
    # a non-numeric response: the same sentence; the type is named as each engine names it
    expected = _message(lambda: build_design(data, "dose ~ x + (1 | site)"))
    got = _message(lambda: design_from_table(table, "dose ~ x + (1 | site)"))
    assert re.sub(r"type \w+", "type T", got) == re.sub(r"type \w+", "type T", expected)
    assert got.startswith("The response 'dose' is not numeric (type string, e.g. ")


def test_an_empty_result_after_dropping_rows():
    data = pd.DataFrame(
        {
            "y": [1.0, np.nan, 2.0, np.nan],
            "z": [np.nan, 1.0, np.nan, 2.0],
            "site": ["a", "a", "b", "b"],
        }
    )
    formula = "y ~ z + (1 | site)"
    expected = _message(lambda: build_design(data, formula))
    assert "No rows are left" in expected
    assert _message(lambda: design_from_table(ibis.memtable(data), formula)) == expected


def test_a_missing_engine_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec

    def without(name, *args, **kwargs):
        return None if name == "pyspark" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without)
    with pytest.raises(EngineUnavailable, match=r"^Spark is not installed; install PySpark"):
        engines.spark_session()
    monkeypatch.setattr(importlib.util, "find_spec", real)
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(EngineUnavailable, match=r"Java 17.*openjdk-17-jre-headless") as info:
        engines.spark_session()
    assert "\n" not in str(info.value)


def test_the_aggregation_is_one_grouped_query(frame):
    """The sums are one GROUP BY with count, sum and covar_pop: the SQL Ibis writes for DuckDB."""
    table = ibis.memtable(frame)
    keys = [engines.RESPONSE, ("x",)]
    expr = engines.cell_sums(
        table,
        keys,
        {engines.RESPONSE: 1000.0, ("x",): 50.0},
        response="y",
        group="site",
        categorical=["dose"],
        flagged={"x": "float", "y": "float"},
    )
    sql = ibis.to_sql(expr, dialect="duckdb")
    assert sql.count("GROUP BY") == 1
    assert "COVAR_POP" in sql and "SUM(" in sql and "COUNT(*)" in sql
    assert {"n_rows", "s0", "s1", "c0_0", "c0_1", "c1_1"} <= set(expr.columns)


def test_is_table_and_as_table():
    assert not engines.is_table(pd.DataFrame({"y": [1.0]}))
    assert engines.is_table(ibis.memtable({"y": [1.0]}))
    with pytest.raises(DataError, match="Expected an Ibis table or a PySpark DataFrame, got list"):
        engines.as_table([1, 2])


def test_fit_lmm_fit_ols_and_decompose_take_a_table(frame):
    from helpers.decompose import decompose
    from helpers.fit import fit_lmm, fit_ols

    data = frame.drop(columns="dose").dropna()
    table = ibis.memtable(data)
    formula = "y ~ x + flag + (1 | site)"
    mem, got = fit_lmm(data, formula), fit_lmm(table, formula)
    np.testing.assert_allclose(got.fe_params, mem.fe_params, rtol=1e-10)
    np.testing.assert_allclose(got.bse, mem.bse, rtol=1e-9)
    assert got.criterion == pytest.approx(mem.criterion, rel=1e-12)
    assert got.sigma2_group == pytest.approx(mem.sigma2_group, rel=1e-9)
    ols_mem = fit_ols(data, "y ~ x + flag", group="site")
    ols = fit_ols(table, "y ~ x + flag", group="site")
    np.testing.assert_allclose(ols.params, ols_mem.params, rtol=1e-10)
    np.testing.assert_allclose(ols.bse, ols_mem.bse, rtol=1e-10)
    dec_mem, dec = decompose(data, formula), decompose(table, formula)
    columns = ["ols", "between", "within", "lmm"]
    np.testing.assert_allclose(dec.estimates[columns], dec_mem.estimates[columns], rtol=1e-8)
    assert dec.reconstruction_error < 1e-8


# --- random slopes: their blocks are sums of the same aggregation ------------------------------------


@pytest.fixture(scope="module")
def slope_data() -> dict:
    return slope_frames()


@pytest.mark.parametrize(("name", "formula", "reference"), SLOPE_CASES)
@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
def test_random_slopes_through_ibis_equal_the_rows(slope_data, name, formula, reference, reml):
    """fit_lmm on an Ibis table (DuckDB) gives the rows' fit to 1e-10: fixed effects, SEs, theta,
    varcorr, the criterion and the conditional modes and variances."""
    from helpers.fit import fit_lmm

    frame = slope_data[name]
    expected = fit_lmm(in_memory_slopes(frame, formula, reference), reml=reml)
    table = ibis.memtable(frame)
    if reference is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RowsDroppedWarning)
            got = fit_lmm(table, formula, reml=reml)
    else:
        got = fit_lmm(_quiet(design_from_table, table, formula, reference=reference), reml=reml)
    assert got.design.source == "duckdb" and got.random.Z is None
    assert got.random.names == expected.random.names
    assert got.random.theta_names == expected.random.theta_names
    assert got.singular == expected.singular
    assert_same_fit(got, expected)


def test_random_slopes_on_the_question_data_equal_the_rows():
    """The question's 326,362 rows, ``(1 + condition | cluster)``, through DuckDB."""
    from helpers.fit import fit_lmm
    from helpers.seed import seed_question

    frame = seed_question()
    formula = "pSHP2 ~ condition + (1 + condition | cluster)"
    expected = fit_lmm(frame, formula)
    table = ibis.memtable(frame.astype({"condition": str, "cluster": str}))
    got = fit_lmm(design_from_table(table, formula, reference={"condition": "unstim"}))
    assert got.n_obs == 326_362 and list(got.fe_params.index) == ["Intercept", "condition[T.stim]"]
    assert_same_fit(got, expected)


def test_row_level_results_of_a_slope_fit_name_the_engine(slope_data):
    from helpers.design import RowsUnavailable
    from helpers.fit import fit_lmm

    frame = slope_data["sleepstudy"]
    formula = "Reaction ~ Days + (Days | Subject)"
    got = fit_lmm(ibis.memtable(frame), formula)
    for call in (got.resid, got.fitted):
        with pytest.raises(RowsUnavailable, match=r"computed from a table by DuckDB"):
            call()
    # what needs no rows works: predictions for new rows with the conditional modes
    expected = fit_lmm(frame, formula)
    new = frame.iloc[::17]
    np.testing.assert_allclose(
        got.predict(new, include_random=True),
        expected.predict(new, include_random=True),
        rtol=1e-10,
    )


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + (1 + wave | site)",  # wave is constant within some sites only: fine
        "y ~ x + (1 + wave | wave)",  # a slope constant within every cluster
        "y ~ x + (1 + x + flag | wave)",  # 3 random effects per cluster, and 8 clusters: fine
        "y ~ x + (1 | site) + (1 | wave)",  # crossed
        "y ~ x + (log(x) | site)",  # a transformation the engine cannot compute
    ],
)
def test_bad_random_slopes_give_the_in_memory_messages(slope_data, formula):
    frame = slope_data["messy"].assign(wave=lambda d: d["wave"].astype(float))
    table = ibis.memtable(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        try:
            build_design(frame, formula, random_slopes=True)
        except DataError as error:
            expected = str(error)
        else:
            expected = None
        if "log(" in formula:
            with pytest.raises(DataError, match=r"cannot compute 'log\(x\)'"):
                design_from_table(table, formula)
        elif expected is None:
            assert design_from_table(table, formula).random is not None
        else:
            assert _message(lambda: design_from_table(table, formula)) == expected


# --- the command line: --engine, --spark-master, --large ---------------------------------------------


def test_the_command_line_engine_duckdb_on_a_parquet_folder_matches_pandas(tmp_path, frame):
    """``--engine duckdb`` on a folder of two Parquet files writes the JSON of the rows in pandas."""
    whole = tmp_path / "messy.parquet"
    frame.to_parquet(whole)
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:700].to_parquet(folder / "a.parquet")
    frame.iloc[700:].to_parquet(folder / "b.parquet")
    out = tmp_path / "duckdb.json"
    done = run_report(
        folder, "--formula", CLI_FORMULA, "--reference", "dose=placebo", "--engine", "duckdb",
        "--json", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "with DuckDB" in done.stderr
    got = json.loads(out.read_text())
    expected = pandas_numbers(whole, reference={"dose": "placebo"})
    assert (got.pop("source"), expected.pop("source")) == ("duckdb", "rows")
    assert got["n_dropped"] > 0 and got["reference_levels"] == expected["reference_levels"]
    assert_same_numbers(got, expected)


def test_the_command_line_fits_random_slopes_with_duckdb_as_with_pandas(tmp_path, slope_data):
    """``--engine duckdb`` and ``--large`` with a random slope write the JSON of the rows in pandas."""
    path = tmp_path / "question.parquet"
    slope_data["question"].to_parquet(path)
    formula = "y ~ condition + (1 + condition | cluster)"
    expected = pandas_numbers(path, formula, reference={"condition": "unstim"})
    for option in (["--engine", "duckdb"], ["--large"]):
        out = tmp_path / "duckdb.json"
        done = run_report(
            path, "--formula", formula, "--reference", "condition=unstim", *option, "--json", out
        )
        assert done.returncode == 0, done.stderr
        got = json.loads(out.read_text())
        assert got.pop("source") == "duckdb"
        assert_same_numbers(got, {k: v for k, v in expected.items() if k != "source"})


def test_check_inputs_fits_random_slopes_from_a_parquet_folder(tmp_path, slope_data):
    """A folder of Parquet files (read through helpers.engines) with a factor slope: the rows' fit."""
    from helpers.fit import fit_lmm
    from helpers.report.inputs import check_inputs

    frame = slope_data["question"]
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:2500].to_parquet(folder / "a.parquet")
    frame.iloc[2500:].to_parquet(folder / "b.parquet")
    formula, reference = "y ~ condition + (1 + condition | cluster)", {"condition": "unstim"}
    checked = _quiet(check_inputs, folder, formula, reference=reference, engine="duckdb")
    assert checked.design.source == "duckdb" and checked.design.random is not None
    assert_same_fit(fit_lmm(checked.design), fit_lmm(in_memory_slopes(frame, formula, reference)))


def test_engine_choice(tmp_path):
    from helpers.report.inputs import LARGE_FILE_BYTES, choose_engine

    path = tmp_path / "small.csv"
    path.write_text("y,g\n1,a\n")
    assert choose_engine(path) == "pandas"
    assert choose_engine(path, large=True) == choose_engine(path, "duckdb") == "duckdb"
    assert choose_engine(path, "spark", large=True) == "spark"
    assert choose_engine(tmp_path) == "duckdb"  # a folder
    big = tmp_path / "big.csv"
    with open(big, "wb") as handle:
        handle.truncate(LARGE_FILE_BYTES + 1)
    assert choose_engine(big) == "duckdb" and choose_engine(big, "pandas") == "pandas"
    with pytest.raises(DataError, match="give one of the two"):
        choose_engine(path, "pandas", large=True)


def test_check_inputs_records_the_engine(parquet):
    from helpers.report.inputs import Engine, check_inputs

    rows = _quiet(check_inputs, parquet, CLI_FORMULA, engine="pandas")
    duck = _quiet(check_inputs, parquet, CLI_FORMULA, engine="duckdb")
    alias = _quiet(check_inputs, parquet, CLI_FORMULA, large=Engine("duckdb"))
    assert (rows.engine, rows.large, rows.design.source) == ("pandas", False, "rows")
    assert (duck.engine, duck.large, duck.design.source) == ("duckdb", True, "duckdb")
    assert alias.engine == "duckdb"
    assert_same_design(duck.design, rows.design)


def _cli_error(capsys, argv) -> tuple[int, str]:
    from helpers.report import main

    try:
        status = main([str(a) for a in argv])
    except SystemExit as stop:  # a usage error, from argparse
        status = stop.code
    err = capsys.readouterr().err
    return status, err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--engine", "pandas", "--large"], "give one of the two"),
        (["--spark-master", "local[2]"], "--spark-master goes with --engine spark"),
        (
            ["--engine", "duckdb", "--formula", "y ~ x + (1 + x | site) + (1 | wave)"],
            "crossed groupings are not supported",
        ),
        (["--engine", "flink"], "invalid choice: 'flink'"),
    ],
)
def test_command_line_engine_mistakes_are_one_line(capsys, parquet, extra, message):
    status, err = _cli_error(capsys, [parquet, "--formula", CLI_FORMULA, *extra])
    assert status == 2 and err.count("\n") == 1 and message in err, err


def test_a_folder_needs_an_engine_that_reads_one(capsys, tmp_path):
    status, err = _cli_error(capsys, [tmp_path, "--formula", CLI_FORMULA, "--engine", "pandas"])
    assert status == 2 and err.count("\n") == 1 and "is a folder" in err, err
    status, err = _cli_error(capsys, [tmp_path, "--formula", CLI_FORMULA, "--engine", "duckdb"])
    assert status == 2 and err.count("\n") == 1 and "holds no .parquet files" in err, err


def test_no_spark_or_no_java_on_the_command_line_says_how_to_install_it(
    capsys, monkeypatch, parquet
):
    argv = [parquet, "--formula", CLI_FORMULA, "--engine", "spark"]
    real = importlib.util.find_spec

    def without(name, *args, **kwargs):
        return None if name == "pyspark" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without)
    status, err = _cli_error(capsys, argv)
    assert status == 2 and err.count("\n") == 1 and "pip install" in err, err
    monkeypatch.setattr(importlib.util, "find_spec", real)
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    status, err = _cli_error(capsys, argv)
    assert status == 2 and err.count("\n") == 1 and "openjdk-17-jre-headless" in err, err


def test_a_design_names_where_its_sums_came_from(frame):
    from helpers.design import RowsUnavailable

    table = ibis.memtable(frame)
    design = _quiet(design_from_table, table, CLI_FORMULA)
    assert design.source == "duckdb" and design.path is None
    with pytest.raises(RowsUnavailable, match=r"computed from a table by DuckDB without loading"):
        _ = design.X


def test_the_readme_lists_the_command_line_engines():
    """The README's usage line names the parser's engines and options, and its JSON table every
    source a design can record for the command line."""
    from pathlib import Path

    from helpers.report.cli import _parser
    from helpers.report.inputs import ENGINES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"[--engine {{{','.join(ENGINES)}}}]" in readme
    options = {o for action in _parser("x")._actions for o in action.option_strings}
    assert {"--engine", "--spark-master", "--large"} <= options
    assert "[--spark-master URL]" in readme
    row = next(line for line in readme.splitlines() if line.startswith("| `source` |"))
    assert all(f'`"{name}"`' in row for name in ("rows", "duckdb", "spark"))
