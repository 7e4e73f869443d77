"""Sufficient statistics straight from files (DuckDB) give the same fit as the rows in memory.

Each case writes a file, fits it once from the rows (pandas -> build_design -> fit_lmm) and once from
DuckDB's sums (helpers.large), and compares fixed effects, standard errors, variances and the criterion to
1e-8 relative, with the same rows dropped for missing values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from engine_cases import assert_same_fit

import helpers
from helpers.design import RowsDroppedWarning
from helpers.large import (
    check_file,
    design_from_file,
    file_columns,
    file_format,
    fit_lmm_file,
    ols_from_stats,
)
from helpers.report import apply_reference, read_table
from helpers.validate import DataError

REL = 1e-8


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    """Clustered data with a binary condition, a numeric covariate, a 3-level text column and gaps."""
    rng = np.random.default_rng(7)
    frame = helpers.simulate_clustered(
        n_clusters=30, n_obs=3000, size_imbalance=1.0, sigma_group=0.4, share_spread=0.6, seed=5
    )
    frame["y"] = frame["y"] + 1000.0
    frame["x"] = rng.normal(size=len(frame)) + 0.2 * frame["cluster"].cat.codes
    frame["dose"] = rng.choice(["placebo", "low", "high"], size=len(frame))
    frame["y"] = frame["y"] + 0.3 * (frame["dose"] == "high") - 0.1 * frame["x"]
    for column, k in (("x", 40), ("dose", 25), ("y", 10)):
        frame.loc[rng.choice(len(frame), k, replace=False), column] = np.nan
    frame["dose"] = frame["dose"].astype(object)
    return frame


def _write(frame: pd.DataFrame, path) -> None:
    if str(path).endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)


def _in_memory(path, formula, reference=None, reml=True):
    data = apply_reference(read_table(path), reference or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        return helpers.fit_lmm(data, formula, reml=reml)


def _from_file(path, formula, reference=None, reml=True, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        return fit_lmm_file(path, formula, reference=reference, reml=reml, **kwargs)


def _assert_same_fit(duck, mem):
    assert list(duck.fe_params.index) == list(mem.fe_params.index)
    np.testing.assert_allclose(duck.fe_params, mem.fe_params, rtol=REL, atol=0)
    np.testing.assert_allclose(duck.bse, mem.bse, rtol=REL, atol=0)
    assert duck.sigma2_resid == pytest.approx(mem.sigma2_resid, rel=REL)
    assert duck.sigma2_group == pytest.approx(mem.sigma2_group, rel=REL)
    assert duck.criterion == pytest.approx(mem.criterion, rel=REL)
    assert duck.n_obs == mem.n_obs and duck.n_groups == mem.n_groups
    assert duck.n_dropped == mem.n_dropped
    assert duck.singular == mem.singular
    ranef = duck.ranef.copy()
    ranef.index = ranef.index.astype(str)
    expected = mem.ranef.copy()
    expected.index = expected.index.astype(str)
    ranef = ranef.reindex(expected.index)
    np.testing.assert_allclose(ranef, expected, rtol=0, atol=REL * float(expected.abs().max()))


CASES = [
    ("radon.csv", "log_radon ~ floor + (1 | county)", None, True),
    ("radon.parquet", "log_radon ~ floor + uranium + (1 | county)", None, False),
    ("messy.parquet", "y ~ condition + x + dose + (1 | cluster)", None, True),
    ("messy.csv", "y ~ condition + x + dose + (1 | cluster)", {"dose": "placebo"}, True),
    ("messy.parquet", "y ~ condition * x + dose + (1 | cluster)", None, False),
    ("messy.csv", "y ~ 0 + dose + x + (1 | cluster)", None, True),
    ("messy.parquet", "y ~ 1 + (1 | cluster)", None, True),
]


@pytest.mark.parametrize(("name", "formula", "reference", "reml"), CASES)
def test_duckdb_fit_equals_in_memory_fit(tmp_path, radon, messy, name, formula, reference, reml):
    frame = radon if name.startswith("radon") else messy
    path = tmp_path / name
    _write(frame, path)
    mem = _in_memory(path, formula, reference, reml)
    duck = _from_file(path, formula, reference, reml)
    _assert_same_fit(duck, mem)


@pytest.mark.parametrize(
    ("name", "formula", "reference"),
    [
        ("radon.csv", "log_radon ~ floor + (floor | county)", None),
        ("radon.parquet", "log_radon ~ floor + uranium + (floor || county)", None),
        ("messy.parquet", "y ~ condition * x + (1 + condition | cluster)", None),
        ("messy.csv", "y ~ x + dose + (0 + x | cluster) + (1 | cluster)", {"dose": "placebo"}),
    ],
)
def test_random_slopes_from_a_file_equal_the_rows(tmp_path, radon, messy, name, formula, reference):
    """DuckDB's sums carry the random-slope blocks too: the same fit as the rows, to 1e-10."""
    frame = radon if name.startswith("radon") else messy
    path = tmp_path / name
    _write(frame, path)
    data = read_table(path)
    if reference:
        data = apply_reference(data, reference, list(reference))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        mem = helpers.fit_lmm(data, formula)
        duck = fit_lmm_file(path, formula, reference=reference)
    assert duck.design.source == "duckdb" and duck.random is not None and duck.random.Z is None
    assert_same_fit(duck, mem)


def test_missing_values_are_dropped_and_counted_as_in_memory(tmp_path, messy):
    path = tmp_path / "messy.parquet"
    _write(messy, path)
    formula = "y ~ condition + x + dose + (1 | cluster)"
    with pytest.warns(RowsDroppedWarning, match=r"Dropped \d+ of 3000 rows"):
        design = design_from_file(path, formula)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        expected = helpers.build_design(read_table(path), formula)
    complete = messy[["y", "condition", "x", "dose", "cluster"]].dropna()
    assert design.n_dropped == expected.n_dropped == len(messy) - len(complete)
    assert design.dropped_by_column == expected.dropped_by_column
    assert design.n_rows == len(messy)
    assert design.n_obs == len(complete)


@pytest.mark.parametrize("via", ["file", "table"])
def test_nan_in_a_parquet_file_is_dropped_as_missing_as_pandas_drops_it(tmp_path, via):
    """A float NaN stored as a value (not a NULL) in a Parquet file: DuckDB's statistics leave NaN out
    of a column's range, so a NaN test folded to false once let NaN into the sums ('overflow'). Now it
    is dropped as missing, NULLs beside it, in the response, a predictor and an interaction, with
    the same count, statistics and fit as pandas on the same file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from helpers.engines import read_table as engine_table

    rng = np.random.default_rng(31)
    n = 400
    y = rng.normal(size=n) + np.repeat(rng.normal(size=20), 20)
    x = rng.normal(size=n)
    y[[3, 50, 77]] = np.nan  # NaN values
    x[[5, 120]] = np.nan
    mask_y = np.zeros(n, dtype=bool)
    mask_y[[9, 200]] = True  # NULLs
    table = pa.table(
        {
            "y": pa.array(y, mask=mask_y),
            "x": pa.array(x),
            "arm": pa.array(rng.choice(["a", "b"], n)),
            "g": pa.array(np.repeat([f"g{k:02d}" for k in range(20)], 20)),
        }
    )
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path)
    formula = "y ~ x * arm + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        expected = helpers.fit_lmm(pd.read_parquet(path), formula)
        data = path if via == "file" else engine_table(path)
        got = fit_lmm_file(path, formula) if via == "file" else helpers.fit_lmm(data, formula)
    assert got.design.source == "duckdb"
    assert got.n_dropped == expected.n_dropped == 7
    assert got.n_obs == expected.n_obs == n - 7
    _assert_same_fit(got, expected)


def test_level_order_matches_the_in_memory_design(tmp_path, messy):
    """CSV text columns take sorted levels; a Parquet categorical keeps its stored order."""
    csv, parquet = tmp_path / "m.csv", tmp_path / "m.parquet"
    _write(messy, csv)
    _write(messy, parquet)
    formula = "y ~ condition + dose + (1 | cluster)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        from_csv = design_from_file(csv, formula)
        from_parquet = design_from_file(parquet, formula)
        with_reference = design_from_file(csv, formula, reference={"dose": "placebo"})
    assert from_csv.term_names == [
        "Intercept",
        "condition[T.unstim]",
        "dose[T.low]",
        "dose[T.placebo]",
    ]
    assert from_parquet.levels["condition"] == ["unstim", "stim"]
    assert from_parquet.term_names[1] == "condition[T.stim]"
    assert with_reference.levels["dose"] == ["placebo", "high", "low"]


def test_columns_with_spaces_and_dots(tmp_path, radon):
    frame = radon.rename(columns={"log_radon": "log radon", "county": "county.name"})
    path = tmp_path / "spaces.csv"
    _write(frame, path)
    formula = "`log radon` ~ floor + (1 | `county.name`)"
    _assert_same_fit(_from_file(path, formula), _in_memory(path, formula))


def test_far_offsets_keep_full_precision(tmp_path, messy):
    """y + 1e6 and x + 1e4: the file fit matches the well-scaled fit mapped back, to 1e-6 of an SE."""
    formula = "y ~ condition + x + dose + (1 | cluster)"
    frame = messy.dropna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        plain = helpers.fit_lmm(frame, formula)
    path = tmp_path / "far.parquet"
    _write(frame.assign(y=frame["y"] + 1e6, x=frame["x"] + 1e4), path)
    far = _from_file(path, formula)
    expected = plain.fe_params.copy()
    expected["Intercept"] += 1e6 - 1e4 * plain.fe_params["x"]
    assert np.all(np.abs(far.fe_params - expected) < 1e-6 * plain.bse)
    assert far.sigma2_group == pytest.approx(plain.sigma2_group, rel=1e-7)
    assert far.sigma2_resid == pytest.approx(plain.sigma2_resid, rel=1e-7)


def test_centring_shift_need_only_be_near_the_mean(tmp_path, messy):
    """Shifts from the first 5 rows instead of all of them give the same fit."""
    path = tmp_path / "m.parquet"
    _write(messy, path)
    formula = "y ~ condition + x + dose + (1 | cluster)"
    rough = _from_file(path, formula, centre_rows=5)
    exact = _from_file(path, formula, centre_rows=None)
    _assert_same_fit(rough, exact)


def test_ols_from_stats_equals_fit_ols(radon):
    formula = "log_radon ~ floor + uranium + (1 | county)"
    design = helpers.build_design(radon, formula)
    from_stats = ols_from_stats(design.stats, design.term_names)
    direct = helpers.fit_ols(radon, formula)
    np.testing.assert_allclose(from_stats.params, direct.params, rtol=1e-10)
    np.testing.assert_allclose(from_stats.bse, direct.bse, rtol=1e-10)
    assert from_stats.sigma2_resid == pytest.approx(direct.sigma2_resid, rel=1e-10)
    assert from_stats.df_resid == direct.df_resid


def test_file_columns_reads_the_schema_only(tmp_path, radon):
    path = tmp_path / "r.parquet"
    _write(radon, path)
    assert file_columns(path) == {
        "log_radon": "DOUBLE",
        "floor": "DOUBLE",
        "uranium": "DOUBLE",
        "county": "VARCHAR",
    }


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        (
            "log_radon ~ flor + (1 | county)",
            r"Column 'flor' is not in the data\. Did you mean 'floor'\?",
        ),
        ("county ~ floor + (1 | county)", r"response 'county' is not numeric"),
        ("log_radon ~ log(floor) + (1 | county)", r"cannot compute 'log\(floor\)'"),
        ("log_radon ~ floor + (1 | one)", r"'one' has 1 distinct value"),
        ("log_radon ~ empty + (1 | county)", r"Column 'empty' is entirely missing"),
        ("log_radon ~ spike + (1 | county)", r"Column 'spike' has 1 infinite value"),
        ("log_radon ~ floor", r"no random intercept"),
        ("log_radon ~ floor + (log(uranium) | county)", r"cannot compute 'log\(uranium\)'"),
        ("log_radon ~ floor + (uranium | county)", r"constant within every group of 'county'"),
        ("log_radon ~ floor + (1 | county) + (1 | floor)", r"crossed groupings are not supported"),
        ("log_radon ~ floor + (floor | one)", r"'one' has 1 distinct value"),
    ],
)
def test_bad_formulas_and_columns_raise_one_clear_error(tmp_path, radon, formula, message):
    frame = radon.assign(one="a", empty=np.nan, spike=1.0)
    frame.loc[3, "spike"] = np.inf
    path = tmp_path / "r.parquet"
    _write(frame, path)
    with pytest.raises(DataError, match=message):
        design_from_file(path, formula)


def test_reference_level_must_exist(tmp_path, messy):
    path = tmp_path / "m.csv"
    _write(messy, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        with pytest.raises(
            DataError, match=r"Reference level 'none' is not a value of column 'dose'"
        ):
            design_from_file(path, "y ~ dose + (1 | cluster)", reference={"dose": "none"})
    with pytest.raises(DataError, match=r"'x', which is numeric"):
        design_from_file(path, "y ~ x + dose + (1 | cluster)", reference={"x": "1"})
    with pytest.raises(DataError, match=r"'dose', which the formula does not use"):
        design_from_file(path, "y ~ x + (1 | cluster)", reference={"dose": "low"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        with pytest.raises(DataError, match=r"'c99' is not a value of column 'cluster'"):
            design_from_file(path, "y ~ x + (1 | cluster)", reference={"cluster": "c99"})


def test_bad_files_raise_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"does not exist"):
        check_file(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"is empty"):
        check_file(empty)
    with pytest.raises(DataError, match=r"unknown format \('\.xlsx'\)"):
        file_format("book.xlsx")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match=r"could not be read as Parquet"):
        design_from_file(broken, "y ~ 1 + (1 | g)")
    header = tmp_path / "header.csv"
    header.write_text("y,g\n")
    with pytest.raises(DataError, match=r"has no data rows"):
        design_from_file(header, "y ~ 1 + (1 | g)")
    assert file_format("big.csv.gz") == "csv" and file_format("t.tsv") == "tsv"
