"""The per-cluster sums computed by Spark (local mode, 2 cores) equal those of pandas and DuckDB.

One Spark session serves the whole test run (its start-up is the main cost): local[2], no web UI, the
driver on 127.0.0.1, scratch folders in pytest's temporary folder. The same Ibis expression that runs
on DuckDB (tests/test_engines.py) runs here on a PySpark DataFrame, on a folder of Parquet files and on
a CSV file read by Spark, and bad input gives the in-memory path's messages.
"""

from __future__ import annotations

import json
import re
import warnings

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
    question_frame,
    run_report,
    slope_frames,
)

from helpers.design import RowsUnavailable, build_design
from helpers.engines import design_from_table, read_table, spark_session
from helpers.large import design_from_file
from helpers.validate import DataError, RowsDroppedWarning

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning:pyspark"),
]


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    session = spark_session(
        "local[2]",
        app_name="helpers-tests",
        config={
            "spark.local.dir": str(tmp_path_factory.mktemp("spark-local")),
            "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse")),
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return messy_frame()


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        return function(*args, **kwargs)


def test_spark_statistics_equal_pandas_and_duckdb(spark, frame, tmp_path):
    parquet = tmp_path / "messy.parquet"
    frame.to_parquet(parquet)
    rows = spark.createDataFrame(frame)
    for formula, reference in FORMULAS:
        expected = in_memory(frame, formula, reference)
        got = _quiet(design_from_table, rows, formula, reference=reference)
        assert_same_design(got, expected)
        assert_same_design(got, _quiet(design_from_file, parquet, formula, reference=reference))
        assert got.n_dropped > 0


def test_spark_reads_a_parquet_folder_and_a_csv_file(spark, frame, tmp_path):
    formula, reference = FORMULAS[1]  # integer cluster labels
    expected = in_memory(frame, formula, reference)
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:900].to_parquet(folder / "part-0.parquet")
    frame.iloc[900:].to_parquet(folder / "part-1.parquet")
    table = read_table(folder, "spark", session=spark)
    assert_same_design(_quiet(design_from_table, table, formula, reference=reference), expected)
    # a CSV file with pandas' missing-value markers: 'NA' in a numeric column, 'NULL' in a text one
    data = frame.copy()
    data["x"] = data["x"].astype(object).where(data["x"].notna(), "NA")
    data["dose"] = data["dose"].where(data["dose"].notna(), "NULL")
    csv = tmp_path / "messy.csv"
    data.to_csv(csv, index=False)
    table = read_table(csv, "spark", session=spark)
    got = _quiet(design_from_table, table, formula, reference=reference, text_numbers=True)
    assert_same_design(got, expected)


def _message(call) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        with pytest.raises(DataError) as info:
            call()
    return str(info.value)


def test_bad_input_on_spark_gives_the_in_memory_messages(spark, frame):
    data = frame.assign(lonely="only")
    rows = spark.createDataFrame(data)
    for formula in ("y ~ x + dosage + (1 | site)", "y ~ x + (1 | lonely)"):
        expected = _message(lambda f=formula: build_design(data, f))
        assert _message(lambda f=formula: design_from_table(rows, f)) == expected
    expected = _message(lambda: build_design(data, "dose ~ x + (1 | site)"))
    got = _message(lambda: design_from_table(rows, "dose ~ x + (1 | site)"))
    assert re.sub(r"type \w+", "type T", got) == re.sub(r"type \w+", "type T", expected)


def test_the_command_line_on_spark_writes_the_pandas_json(frame, tmp_path):
    """``--engine spark`` on a CSV file, in a process of its own on local[2], writes the JSON of the
    rows in pandas (the one Spark run of the command; its start is most of its time)."""
    csv = tmp_path / "messy.csv"
    frame.to_csv(csv, index=False)
    out = tmp_path / "spark.json"
    done = run_report(
        csv, "--formula", CLI_FORMULA, "--reference", "dose=placebo", "--engine", "spark",
        "--spark-master", "local[2]", "--json", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "computing from the file with Spark" in done.stderr
    got = json.loads(out.read_text())
    expected = pandas_numbers(csv, reference={"dose": "placebo"})
    assert (got.pop("source"), expected.pop("source")) == ("spark", "rows")
    assert got["n_dropped"] > 0
    assert_same_numbers(got, expected)


def test_the_report_checks_on_spark_give_the_in_memory_messages(spark, frame, tmp_path):
    """check_inputs with engine='spark' (the command line's check) on a Parquet file: a missing
    column, a non-numeric response and one cluster give the pandas path's messages; a session that
    was already running is left running."""
    from helpers.report.inputs import check_inputs

    path = tmp_path / "lonely.parquet"
    frame.assign(lonely="only").to_parquet(path)
    for formula in ("y ~ x + dosage + (1 | site)", "y ~ x + (1 | lonely)"):
        expected = _message(lambda f=formula: check_inputs(path, f, engine="pandas"))
        assert _message(lambda f=formula: check_inputs(path, f, engine="spark")) == expected
    formula = "dose ~ x + (1 | site)"
    expected = _message(lambda: check_inputs(path, formula, engine="pandas"))
    got = _message(lambda: check_inputs(path, formula, engine="spark"))
    assert re.sub(r"type \w+", "type T", got) == re.sub(r"type \w+", "type T", expected)
    checked = _quiet(check_inputs, path, "y ~ x + (1 | site)", engine="spark")
    assert (checked.engine, checked.large, checked.design.source) == ("spark", True, "spark")
    with pytest.raises(RowsUnavailable, match=r"from 'lonely.parquet' by Spark without loading"):
        _ = checked.design.y
    assert spark.range(3).count() == 3  # still running


def test_random_slopes_on_spark_equal_the_rows(spark):
    """fit_lmm on a PySpark DataFrame with random slopes gives the rows' fit to 1e-10 (fixed effects,
    SEs, theta, varcorr, criterion, conditional modes); row-level results name Spark. The cases of
    tests/test_engines.py but two, to keep this file's time: the factor slope on question-shaped data
    is the next test's, and the numeric slope with gaps differs from sleepstudy's only in numpy."""
    from helpers.fit import fit_lmm

    frames = slope_frames()
    cases = [
        case for case in SLOPE_CASES if case[0] != "question" and "(1 + x | site)" not in case[1]
    ]
    assert len(cases) == 3
    for name, formula, reference in cases:
        frame = frames[name]
        expected = fit_lmm(in_memory_slopes(frame, formula, reference))
        rows = spark.createDataFrame(frame)
        if reference is None:
            got = _quiet(fit_lmm, rows, formula)
        else:
            got = fit_lmm(_quiet(design_from_table, rows, formula, reference=reference))
        assert got.design.source == "spark" and got.random.Z is None
        assert got.random.theta_names == expected.random.theta_names
        assert_same_fit(got, expected)
    with pytest.raises(RowsUnavailable, match=r"computed from a table by Spark without loading"):
        got.resid()


def test_the_report_fits_random_slopes_on_spark_as_with_pandas(spark, tmp_path):
    """check_inputs with engine='spark' and a factor slope on question-shaped data (string labels, a
    chosen reference, gaps; the command line's design, on this test's session): the report's JSON
    numbers (fits, SEs, varcorr, criterion) equal those of the rows in pandas; a slope on a variable
    constant within every cluster gives the pandas path's message."""
    from helpers.report.content import compare, result_dict
    from helpers.report.inputs import check_inputs

    path = tmp_path / "question.parquet"
    question_frame().to_parquet(path)
    formula = "y ~ condition + (1 + condition | cluster)"
    reference = {"condition": "unstim"}
    checked = _quiet(check_inputs, path, formula, reference=reference, engine="spark")
    got = json.loads(json.dumps(result_dict(checked.design, compare(checked.design))))
    expected = pandas_numbers(path, formula, reference=reference)
    assert (got.pop("source"), expected.pop("source")) == ("spark", "rows")
    assert got["n_dropped"] > 0
    assert_same_numbers(got, expected)
    bad = "y ~ condition + (1 + batch | cluster)"
    expected = _message(lambda: check_inputs(path, bad, engine="pandas"))
    assert "constant within every group" in expected
    assert _message(lambda: check_inputs(path, bad, engine="spark")) == expected


def test_the_page_beyond_one_machine_runs_and_its_fits_equal_pandas(spark, tmp_path):
    """Every Python block of notebooks/09_beyond_one_machine.md runs (on the test session), the fits
    equal the fit to the rows in pandas, and the page's counts and options are the code's."""
    from pathlib import Path

    from helpers import fit_lmm
    from helpers.data import load_dataset
    from helpers.report.inputs import LARGE_FILE_BYTES

    page = Path(__file__).resolve().parent.parent / "notebooks" / "09_beyond_one_machine.md"
    text = page.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    # the file in this test's folder, named in full: the JVM keeps the folder it started in
    where = f'"{(tmp_path / "radon.parquet").as_posix()}"'
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        for block in blocks:
            code = block.replace('"radon.parquet"', where)
            exec(compile(code, str(page), "exec"), namespace)
    data = load_dataset("radon")
    expected = fit_lmm(data, "log_radon ~ floor + (1 | county)")
    assert (namespace["fit"].design.source, namespace["design"].source) == ("duckdb", "spark")
    for fit in (namespace["fit"], namespace["spark_fit"]):
        assert fit.design.rows is None
        assert np.allclose(fit.fe_params, expected.fe_params, rtol=1e-10, atol=0)
        assert np.isclose(fit.criterion, expected.criterion, rtol=1e-10, atol=0)
    assert_same_design(namespace["design"], expected.design)
    homes, counties = len(data), data["county"].nunique()
    assert f"({homes} homes in {counties} counties)" in text
    assert f"up to {LARGE_FILE_BYTES // 1024**2} MiB" in text
    assert re.search(r"--engine spark --spark-master", text)
