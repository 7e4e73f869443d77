"""The question's data (helpers.seed) reproduces both printouts, here and in lme4.

lme4's values are in ``tests/reference/seed_question_lme4.json``, written by
``tests/reference/seed_question.R`` (R 4.2, lme4 1.1-31), which fits the rows this package generates;
the JSON records the SHA-256 of those rows as CSV, and a test here checks it against a fresh copy.

Tolerances against lme4: fixed effects 1e-6 relative; standard errors and variances 1e-5 relative (the
criterion is so flat in theta that lme4's own optimisers disagree by about 1e-5 there); the criterion
1e-6 absolute.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from helpers.fit import fit_lmm, fit_ols
from helpers.objective import criterion
from helpers.seed import (
    NOT_REPRODUCED,
    PRINTED,
    printed_values,
    seed_question,
    seed_question_cells,
)

ROOT = Path(__file__).resolve().parents[1]
CELLS_CSV = ROOT / "data" / "seed_question_cells.csv"
DESIGN_SCRIPT = ROOT / "data" / "design_seed_question.py"
LME4 = json.loads((ROOT / "tests" / "reference" / "seed_question_lme4.json").read_text())

FORMULA_OLS = "pSHP2 ~ condition"
FORMULA_LMM = "pSHP2 ~ condition + (1 | cluster)"
TERMS = {"Intercept": "(Intercept)", "condition[T.stim]": "conditionstim"}

FE_RTOL = 1e-6
SE_RTOL = 1e-5
VAR_RTOL = 1e-5
CRIT_ATOL = 1e-6


@pytest.fixture(scope="module")
def rows():
    return seed_question()


@pytest.fixture(scope="module")
def fits(rows):
    return fit_ols(rows, FORMULA_OLS), fit_lmm(rows, FORMULA_LMM)


def _achieved(ols, lmm) -> dict:
    return printed_values(ols, lmm)


def _csv_text(frame: pd.DataFrame) -> str:
    # exactly what tests/reference/seed_question.R asks the package to write
    return frame.to_csv(index=False, lineterminator="\n")


# ---- the rows -------------------------------------------------------------------------------------------


def test_shape_and_columns(rows):
    assert rows.shape == (326_362, 3)
    assert list(rows.columns) == ["pSHP2", "condition", "cluster"]
    assert rows["pSHP2"].dtype == np.float64
    assert np.isfinite(rows["pSHP2"].to_numpy()).all()
    assert isinstance(rows["condition"].dtype, pd.CategoricalDtype)
    assert list(rows["condition"].cat.categories) == ["unstim", "stim"]
    assert isinstance(rows["cluster"].dtype, pd.CategoricalDtype)
    assert list(rows["cluster"].cat.categories) == [f"donor{k:02d}" for k in range(1, 25)]
    assert rows["cluster"].nunique() == 24
    assert not rows[["condition", "cluster"]].isna().any().any()


def test_cell_counts_means_and_sds_equal_the_design(rows):
    cells = seed_question_cells()
    got = (
        rows.groupby(["cluster", "condition"], observed=True)["pSHP2"]
        .agg(n="size", mean="mean", sd=lambda x: x.std(ddof=1))
        .reset_index()
    )
    merged = cells.merge(got, on=["cluster", "condition"], suffixes=("_design", "_rows"))
    assert len(merged) == 48
    np.testing.assert_array_equal(merged["n_rows"], merged["n_design"])
    np.testing.assert_allclose(merged["mean_rows"], merged["mean_design"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged["sd_rows"], merged["sd_design"], rtol=1e-12)


def test_within_cell_noise_is_right_skewed(rows):
    cells = seed_question_cells().set_index(["cluster", "condition"])
    key = pd.MultiIndex.from_arrays([rows["cluster"], rows["condition"]])
    z = (rows["pSHP2"].to_numpy() - cells["mean"].reindex(key).to_numpy()) / cells["sd"].reindex(
        key
    ).to_numpy()
    # a standardised gamma with shape 4 has skewness 1
    assert 0.9 < scipy.stats.skew(z) < 1.1


def test_generation_is_deterministic(rows):
    again = seed_question()
    assert list(again.columns) == list(rows.columns)
    np.testing.assert_array_equal(again["pSHP2"].to_numpy(), rows["pSHP2"].to_numpy())
    for column in ("condition", "cluster"):
        assert again[column].dtype == rows[column].dtype
        np.testing.assert_array_equal(again[column].cat.codes, rows[column].cat.codes)
    assert again is not rows  # a fresh frame each call: changing one cannot change the next


def test_cluster_sizes_and_shares_are_unequal():
    cells = seed_question_cells()
    sizes = cells.groupby("cluster", observed=True)["n"].sum()
    stim = cells[cells["condition"] == "stim"].set_index("cluster")["n"]
    share = stim / sizes
    assert sizes.sum() == 326_362
    assert sizes.min() < 500 and sizes.max() > 100_000
    assert share.max() - share.min() > 0.1
    assert (cells["n"] >= 2).all()  # every cell has a sample SD


def test_embedded_cells_agree_with_the_csv():
    from_csv = pd.read_csv(CELLS_CSV)
    embedded = seed_question_cells()
    assert list(from_csv.columns) == list(embedded.columns)
    assert from_csv["cluster"].tolist() == embedded["cluster"].astype(str).tolist()
    assert from_csv["condition"].tolist() == embedded["condition"].astype(str).tolist()
    np.testing.assert_array_equal(from_csv["n"], embedded["n"])
    np.testing.assert_array_equal(from_csv["mean"], embedded["mean"])
    np.testing.assert_array_equal(from_csv["sd"], embedded["sd"])


# ---- the printout -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def achieved(fits):
    return _achieved(*fits)


@pytest.mark.parametrize("name", [n for n in PRINTED if n not in NOT_REPRODUCED])
def test_printed_number_is_reproduced(achieved, name):
    printed, digits = PRINTED[name]
    value = float(achieved[name])
    assert round(value, digits) == printed, f"{name}: {value!r} does not round to {printed}"


@pytest.mark.parametrize("name", list(NOT_REPRODUCED))
def test_numbers_listed_as_not_reproduced_are_not(achieved, name):
    """The list the notebook shows stays true: once a listed number is reproduced, remove it there."""
    printed, digits = PRINTED[name]
    assert round(float(achieved[name]), digits) != printed
    assert NOT_REPRODUCED[name]  # a reason is given


def test_every_number_of_both_printouts_is_listed():
    """PRINTED holds every data-dependent number R prints for the two fits (35 in all)."""
    lm = {"intercept", "slope", "se_intercept", "se_slope", "t_intercept", "t_slope", "sigma"}
    lm |= {"df_resid", "r2", "adj_r2", "f"}
    lmer = {"intercept", "slope", "se_intercept", "se_slope", "t_intercept", "t_slope", "corr"}
    quantiles = {"min", "q1", "median", "q3", "max"}
    expected = {f"ols_{k}" for k in lm} | {f"lmm_{k}" for k in lmer}
    expected |= {f"{p}_resid_{q}" for p in ("ols", "lmm") for q in quantiles}
    expected |= {"sigma2_group", "sd_group", "sigma2_resid", "sd_resid", "criterion"}
    expected |= {"n_obs", "n_groups"}
    assert set(PRINTED) == expected


def test_lmm_fit_is_regular(fits):
    _, lmm = fits
    assert lmm.converged and not lmm.singular
    assert lmm.reml


@pytest.mark.slow
def test_design_script_rederives_the_cells():
    spec = importlib.util.spec_from_file_location("design_seed_question", DESIGN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    derived = module.design()
    stored = pd.read_csv(CELLS_CSV)
    pd.testing.assert_frame_equal(
        derived[["cluster", "condition", "n"]].astype({"n": np.int64}),
        stored[["cluster", "condition", "n"]].astype({"n": np.int64}),
    )
    # The solver's path moves with last-bit changes in the objective's arithmetic (seen: 1.5e-8), so
    # the means and SDs agree to 1e-6; the printed digits are checked exactly by check() below.
    np.testing.assert_allclose(derived["mean"], stored["mean"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(derived["sd"], stored["sd"], rtol=0, atol=1e-6)
    assert module.check(stored, out=io.StringIO())


# ---- lme4 on the same rows ------------------------------------------------------------------------------


def test_lme4_fitted_these_rows(rows):
    text = _csv_text(rows)
    assert hashlib.sha256(text.encode()).hexdigest() == LME4["data"]["sha256"], (
        "The generated rows differ from those lme4 fitted; rerun tests/reference/seed_question.R."
    )
    assert LME4["data"]["n_obs"] == len(rows)
    assert LME4["data"]["n_groups"] == rows["cluster"].nunique()


def test_lm_agrees_with_r(fits):
    ols, _ = fits
    for ours, theirs in TERMS.items():
        assert ols.params[ours] == pytest.approx(LME4["lm"]["coef"][theirs], rel=1e-9)
        assert ols.bse[ours] == pytest.approx(LME4["lm"]["se"][theirs], rel=1e-9)
    assert np.sqrt(ols.sigma2_resid) == pytest.approx(LME4["lm"]["sigma"], rel=1e-9)
    assert ols.df_resid == LME4["lm"]["df_resid"]


def test_lm_summary_numbers_agree_with_r(achieved):
    ref = LME4["lm"]
    assert achieved["ols_t_intercept"] == pytest.approx(ref["t"]["(Intercept)"], rel=1e-9)
    assert achieved["ols_t_slope"] == pytest.approx(ref["t"]["conditionstim"], rel=1e-9)
    assert achieved["ols_r2"] == pytest.approx(ref["r_squared"], rel=1e-9)
    assert achieved["ols_adj_r2"] == pytest.approx(ref["adj_r_squared"], rel=1e-9)
    assert achieved["ols_f"] == pytest.approx(ref["f_statistic"], rel=1e-9)
    for q in ("min", "q1", "median", "q3", "max"):
        assert achieved[f"ols_resid_{q}"] == pytest.approx(ref["resid_quantiles"][q], abs=1e-9)


def test_lmer_agrees_with_lme4(fits):
    _, lmm = fits
    ref = LME4["lmer"]
    for ours, theirs in TERMS.items():
        assert lmm.fe_params[ours] == pytest.approx(ref["fixef"][theirs], rel=FE_RTOL)
        assert lmm.bse[ours] == pytest.approx(ref["se"][theirs], rel=SE_RTOL)
    assert lmm.sigma2_group == pytest.approx(ref["sigma2_group"], rel=VAR_RTOL)
    assert lmm.sigma2_resid == pytest.approx(ref["sigma2_resid"], rel=VAR_RTOL)
    assert lmm.theta == pytest.approx(ref["theta"], rel=VAR_RTOL)
    assert lmm.criterion == pytest.approx(ref["criterion"], abs=CRIT_ATOL)
    assert lmm.loglik == pytest.approx(ref["loglik"], abs=CRIT_ATOL)


def test_lmer_summary_numbers_agree_with_lme4(achieved):
    ref = LME4["lmer"]
    assert achieved["lmm_t_intercept"] == pytest.approx(ref["t"]["(Intercept)"], rel=SE_RTOL)
    assert achieved["lmm_t_slope"] == pytest.approx(ref["t"]["conditionstim"], rel=SE_RTOL)
    assert achieved["lmm_corr"] == pytest.approx(ref["corr_fixef"], rel=SE_RTOL)
    for q in ("min", "q1", "median", "q3", "max"):
        assert achieved[f"lmm_resid_{q}"] == pytest.approx(
            ref["scaled_resid_quantiles"][q], abs=1e-4
        )


def test_our_optimum_is_at_least_as_good_as_lme4s(fits):
    """lme4's default and tight optimisers stop at thetas about 5e-7 and 5e-6 from ours; by the
    package's criterion both are (slightly) worse, and by less than lme4's own criterion resolves."""
    _, lmm = fits
    for key in ("lmer", "lmer_tight"):
        at_theirs = criterion(lmm.stats, LME4[key]["theta"])
        assert at_theirs >= lmm.criterion - 1e-9
        assert at_theirs - lmm.criterion < CRIT_ATOL
        assert LME4[key]["criterion"] == pytest.approx(lmm.criterion, abs=CRIT_ATOL)


def _squeeze(lines) -> str:
    return "\n".join(re.sub(r"\s+", " ", line).strip() for line in lines)


def test_lme4_prints_the_questions_numbers():
    """lme4's and lm()'s own printouts of these rows show the question's numbers, digit for digit."""
    lmer_text = _squeeze(LME4["lmer"]["printed"])
    lm_text = _squeeze(LME4["lm"]["printed"])
    p = {name: value for name, (value, _) in PRINTED.items()}
    assert f"REML criterion at convergence: {p['criterion']}" in lmer_text
    assert f"cluster (Intercept) {p['sigma2_group']} {p['sd_group']}" in lmer_text
    assert f"Residual {p['sigma2_resid']} {p['sd_resid']}" in lmer_text
    assert f"(Intercept) {p['lmm_intercept']} {p['lmm_se_intercept']}" in lmer_text
    assert f"conditionstim {p['lmm_slope']} {p['lmm_se_slope']}" in lmer_text
    assert f"Number of obs: {p['n_obs']}, groups: cluster, {p['n_groups']}" in lmer_text
    assert f"(Intercept) {p['ols_intercept']} {p['ols_se_intercept']}" in lm_text
    assert f"conditionstim {p['ols_slope']} {p['ols_se_slope']}" in lm_text
    assert (
        f"Residual standard error: {p['ols_sigma']} on {p['ols_df_resid']} degrees of freedom"
        in lm_text
    )
    # the numbers added to the design for the full printouts
    assert f"(Intercept) {p['lmm_intercept']} {p['lmm_se_intercept']} {p['lmm_t_intercept']}" in (
        lmer_text
    )
    assert f"conditionstim {p['lmm_slope']} {p['lmm_se_slope']} {p['lmm_t_slope']}" in lmer_text
    assert f"conditinstm {p['lmm_corr']}" in lmer_text
    assert f"(Intercept) {p['ols_intercept']} {p['ols_se_intercept']} {p['ols_t_intercept']}" in (
        lm_text
    )
    assert f"conditionstim {p['ols_slope']} {p['ols_se_slope']} {p['ols_t_slope']}" in lm_text
    assert f"Multiple R-squared: {p['ols_r2']}, Adjusted R-squared: {p['ols_adj_r2']}" in lm_text
    assert f"F-statistic: {p['ols_f']} on 1 and {p['ols_df_resid']} DF" in lm_text
