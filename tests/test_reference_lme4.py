"""The fitting core agrees with R's lme4 (lmer, REML and ML) and with lm() on five data sets.

The reference values are in ``tests/reference/lme4_reference.json``, written by
``tests/reference/lme4_reference.R`` (R 4.2, lme4 1.1-31); the header of that script says how to
regenerate them. The data sets: Dyestuff, Dyestuff2 (a boundary fit), sleepstudy, Minnesota radon
(the rows in ``tests/reference/radon.csv``) and a simulated set shaped like the motivating question
(326,362 rows in 24 clusters of 137 to 61,179 rows; ``tests/reference/question_shaped.py``).

Tolerances: fixed effects 1e-6 relative; standard errors, both variances, theta and the conditional
SDs 1e-5 relative (absolute 1e-8 when lme4 gives 0); conditional modes 1e-5 relative to their scale;
the criterion and logLik 1e-6 absolute.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data import load_dataset
from helpers.fit import fit_lmm, fit_ols
from helpers.objective import criterion
from helpers.results import r_term_name

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCE = json.loads((REFERENCE_DIR / "lme4_reference.json").read_text())
SETS = REFERENCE["datasets"]
NAMES = list(SETS)

FE_RTOL = 1e-6
SE_RTOL = 1e-5
VAR_RTOL = 1e-5
ZERO_ATOL = 1e-8
CRIT_ATOL = 1e-6
RANEF_RTOL = 1e-5

# lme4's Dyestuff REML criterion at three points (R 4.2.2, lme4 1.1-31), from the project's notes.
DYESTUFF_REML = {0.0: 326.023232155879, 1.0: 319.792389042002}
DYESTUFF_REML_OPTIMUM = 319.654276842342


def _load_module(name: str):
    spec = importlib.util.spec_from_file_location(name, REFERENCE_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _data(name: str) -> pd.DataFrame:
    if name == "question_shaped":
        return _load_module("question_shaped").question_shaped_data()
    return load_dataset(name)


@cache
def _lmm(name: str, reml: bool):
    return fit_lmm(_data(name), SETS[name]["formula"], reml=reml)


@cache
def _ols(name: str):
    ref = SETS[name]
    return fit_ols(_data(name), ref["formula"], group=ref["group"])


def _by_r_name(series: pd.Series) -> pd.Series:
    return series.rename(index=r_term_name)


def _method(reml: bool) -> str:
    return "reml" if reml else "ml"


both_methods = pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
all_sets = pytest.mark.parametrize("name", NAMES)


# --- the data are the same rows R fitted ---------------------------------------------------------


def test_reference_records_its_provenance():
    assert REFERENCE["generated_by"] == "tests/reference/lme4_reference.R"
    assert (REFERENCE_DIR / "lme4_reference.R").is_file()
    assert REFERENCE["versions"]["lme4"].startswith("1.1")
    assert REFERENCE["versions"]["R"].startswith("R version 4.")
    assert set(NAMES) == {"dyestuff", "dyestuff2", "sleepstudy", "radon", "question_shaped"}


@all_sets
def test_data_match_the_rows_r_fitted(name):
    ref, data = SETS[name], _data(name)
    assert len(data) == ref["data"]["n_obs"]
    assert data[ref["group"]].nunique() == ref["data"]["n_groups"]
    total = data[ref["response"]].sum()
    assert total == pytest.approx(ref["data"]["sum_response"], rel=1e-12)


def test_question_shaped_csv_hash_matches_what_r_read():
    module = _load_module("question_shaped")
    assert module.csv_sha256(_data("question_shaped")) == SETS["question_shaped"]["data"]["sha256"]


def test_question_shaped_has_the_question_s_shape():
    data = _data("question_shaped")
    sizes = data.groupby("cluster", observed=True).size()
    share = (data["condition"] == "stim").groupby(data["cluster"], observed=True).mean()
    assert len(sizes) == 24 and 320_000 <= len(data) <= 330_000
    assert sizes.min() < 200 and sizes.max() > 60_000
    assert share.max() - share.min() > 0.3


def test_radon_csv_is_the_rows_the_package_loads():
    module = _load_module("radon_rows")
    text = module.radon_csv_text()
    expected = SETS["radon"]["data"]["sha256"]
    assert hashlib.sha256(text.encode()).hexdigest() == expected
    assert hashlib.sha256(module.CSV_PATH.read_bytes()).hexdigest() == expected


# --- lmer, REML and ML ---------------------------------------------------------------------------


@all_sets
@both_methods
def test_fixed_effects_match_lmer(name, reml):
    ref = SETS[name][_method(reml)]
    ours = _by_r_name(_lmm(name, reml).fe_params)
    expected = pd.Series(ref["fixef"])
    assert list(ours.index) == list(expected.index)
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=FE_RTOL, atol=0)


@all_sets
@both_methods
def test_standard_errors_and_vcov_match_lmer(name, reml):
    ref = SETS[name][_method(reml)]
    fit = _lmm(name, reml)
    expected_se = pd.Series(ref["se"])
    np.testing.assert_allclose(
        _by_r_name(fit.bse)[expected_se.index].to_numpy(), expected_se.to_numpy(), rtol=SE_RTOL
    )
    p = len(expected_se)
    expected_cov = np.asarray(ref["vcov"], dtype=float).reshape(p, p)
    scale = np.outer(expected_se.to_numpy(), expected_se.to_numpy())
    # covariances relative to the product of the SEs, so near-zero correlations are not over-weighted
    np.testing.assert_allclose(fit.cov_fe.to_numpy() / scale, expected_cov / scale, atol=SE_RTOL)


def _assert_close_or_zero(ours: float, expected: float, rtol: float):
    if expected == 0:
        assert abs(ours) <= ZERO_ATOL
    else:
        assert ours == pytest.approx(expected, rel=rtol, abs=0)


@all_sets
@both_methods
def test_variances_and_theta_match_lmer(name, reml):
    ref = SETS[name][_method(reml)]
    fit = _lmm(name, reml)
    _assert_close_or_zero(fit.sigma2_group, ref["sigma2_group"], VAR_RTOL)
    _assert_close_or_zero(fit.sigma2_resid, ref["sigma2"], VAR_RTOL)
    _assert_close_or_zero(fit.theta, ref["theta"], VAR_RTOL)
    assert fit.singular == ref["singular"]


@all_sets
@both_methods
def test_criterion_and_loglik_match_lmer(name, reml):
    ref = SETS[name][_method(reml)]
    fit = _lmm(name, reml)
    assert fit.reml is reml
    assert fit.criterion == pytest.approx(ref["criterion"], abs=CRIT_ATOL, rel=0)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=CRIT_ATOL, rel=0)


@all_sets
@both_methods
def test_conditional_modes_and_sds_match_lmer(name, reml):
    ref = SETS[name][_method(reml)]
    fit = _lmm(name, reml)
    ours = fit.ranef.rename(index=str)
    ours_sd = fit.ranef_sd.rename(index=str)
    expected = pd.Series(ref["ranef"])
    expected_sd = pd.Series(ref["ranef_sd"])
    assert sorted(ours.index) == sorted(expected.index)
    scale = float(np.abs(expected).max())
    if scale == 0:  # a boundary fit: every mode is 0
        assert np.abs(ours.to_numpy()).max() <= ZERO_ATOL
        assert np.abs(ours_sd.to_numpy()).max() <= ZERO_ATOL
        return
    np.testing.assert_allclose(
        ours[expected.index].to_numpy(), expected.to_numpy(), rtol=0, atol=RANEF_RTOL * scale
    )
    np.testing.assert_allclose(
        ours_sd[expected_sd.index].to_numpy(), expected_sd.to_numpy(), rtol=RANEF_RTOL
    )


@all_sets
@both_methods
def test_criterion_function_matches_lme4_devfun_at_fixed_theta(name, reml):
    grid = SETS[name]["criterion_at"]
    stats = _lmm(name, reml).stats
    ours = criterion(stats, np.asarray(grid["theta"]), reml=reml)
    np.testing.assert_allclose(ours, grid[_method(reml)], rtol=0, atol=CRIT_ATOL)


@all_sets
@both_methods
def test_our_optimum_is_no_worse_than_any_lme4_candidate(name, reml):
    ref = SETS[name][_method(reml)]
    fit = _lmm(name, reml)
    slack = 1e-10 + 1e-13 * abs(fit.criterion)  # rounding of the criterion itself
    for candidate in ref["candidates"]:
        assert fit.criterion <= criterion(fit.stats, candidate["theta"], reml) + slack, candidate


# --- lm ------------------------------------------------------------------------------------------


@all_sets
def test_ols_matches_lm(name):
    ref = SETS[name]["lm"]
    ols = _ols(name)
    expected = pd.Series(ref["coef"])
    assert list(_by_r_name(ols.params).index) == list(expected.index)
    np.testing.assert_allclose(_by_r_name(ols.params).to_numpy(), expected.to_numpy(), rtol=FE_RTOL)
    np.testing.assert_allclose(
        _by_r_name(ols.bse)[expected.index].to_numpy(),
        pd.Series(ref["se"]).to_numpy(),
        rtol=SE_RTOL,
    )
    assert np.sqrt(ols.sigma2) == pytest.approx(ref["sigma"], rel=VAR_RTOL)
    assert ols.df_resid == ref["df_resid"]


@all_sets
def test_cluster_robust_ses_match_sandwich_vcovcl(name):
    ref = SETS[name]["lm"]
    ols = _ols(name)
    expected = pd.Series(ref["se_cluster"])
    np.testing.assert_allclose(
        _by_r_name(ols.bse_cluster)[expected.index].to_numpy(), expected.to_numpy(), rtol=SE_RTOL
    )


# --- pinned values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("theta", sorted(DYESTUFF_REML))
def test_dyestuff_reml_criterion_at_fixed_theta_is_lme4_s(theta):
    stats = _lmm("dyestuff", True).stats
    assert criterion(stats, theta, reml=True) == pytest.approx(DYESTUFF_REML[theta], abs=CRIT_ATOL)
    grid = SETS["dyestuff"]["criterion_at"]
    from_script = dict(zip(grid["theta"], grid["reml"], strict=True))[theta]
    assert from_script == pytest.approx(DYESTUFF_REML[theta], abs=CRIT_ATOL)


def test_dyestuff_reml_optimum_is_lme4_s():
    fit = _lmm("dyestuff", True)
    assert fit.criterion == pytest.approx(DYESTUFF_REML_OPTIMUM, abs=CRIT_ATOL)
    assert fit.theta == pytest.approx(0.848324, abs=5e-7)
    assert fit.bse["Intercept"] == pytest.approx(19.38341, abs=5e-6)


def test_dyestuff_ml_deviance_and_se_are_lme4_s():
    fit = _lmm("dyestuff", False)
    assert fit.criterion == pytest.approx(327.327059881135, abs=CRIT_ATOL)
    assert fit.theta == pytest.approx(0.752581, abs=5e-7)
    assert fit.bse["Intercept"] == pytest.approx(17.69455, abs=5e-6)


@both_methods
def test_dyestuff2_is_a_boundary_fit_equal_to_lm(reml):
    fit, ols = _lmm("dyestuff2", reml), _ols("dyestuff2")
    ref = SETS["dyestuff2"][_method(reml)]
    assert ref["singular"] is True and ref["sigma2_group"] == 0
    assert fit.singular is True
    assert fit.sigma2_group == 0.0
    assert fit.theta == 0.0
    assert fit.fe_params["Intercept"] == pytest.approx(ols.params["Intercept"], rel=1e-12)
    assert fit.fe_params["Intercept"] == pytest.approx(5.6656, abs=5e-5)
    if reml:  # REML at theta = 0 is lm: the same residual variance, so the same SE
        assert fit.bse["Intercept"] == pytest.approx(ols.bse["Intercept"], rel=1e-10)
        assert fit.bse["Intercept"] == pytest.approx(0.678388, abs=5e-7)


def test_radon_numbers():
    fit, ols = _lmm("radon", True), _ols("radon")
    assert (fit.n_obs, fit.n_groups) == (919, 85)
    sizes = fit.stats.counts
    assert (sizes.min(), sizes.max()) == (1, 116)
    assert ols.params["Intercept"] == pytest.approx(1.327, abs=5e-4)
    assert ols.bse["Intercept"] == pytest.approx(0.030, abs=5e-4)
    assert ols.params["floor"] == pytest.approx(-0.613, abs=5e-4)
    assert fit.fe_params["Intercept"] == pytest.approx(1.462, abs=5e-4)
    assert fit.bse["Intercept"] == pytest.approx(0.052, abs=5e-4)
    assert fit.fe_params["floor"] == pytest.approx(-0.693, abs=5e-4)
    assert fit.bse["floor"] == pytest.approx(0.070, abs=5e-4)
    assert fit.sigma_group == pytest.approx(0.328, abs=5e-4)
    assert fit.sigma_resid == pytest.approx(0.756, abs=5e-4)


def test_sleepstudy_numbers():
    fit, ols = _lmm("sleepstudy", True), _ols("sleepstudy")
    np.testing.assert_allclose(fit.fe_params, [251.40510, 10.46729], atol=5e-6)
    np.testing.assert_allclose(fit.bse, [9.7467163, 0.8042214], atol=5e-8)
    np.testing.assert_allclose(ols.bse, [6.610154, 1.238195], atol=5e-7)
    # balanced data: the estimates are exactly lm's, only the SEs move
    np.testing.assert_allclose(fit.fe_params, ols.params, rtol=1e-10)
    assert fit.criterion == pytest.approx(1786.465, abs=5e-4)
