"""Why the estimates moved: within, between, quasi-demeaning, the blend, weights and the path.

Each estimator computed from sufficient statistics in helpers.decompose is checked against the same
estimator computed independently from the rows (dummy regressions, group means, explicit covariance
matrices), and the mixed model's fixed effects against lme4's committed reference values.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data import simulate_clustered
from helpers.decompose import (
    Decomposition,
    between_estimator,
    cluster_table,
    decompose,
    default_thetas,
    fixed_effect_path,
    large_theta_limit,
    quasi_demean,
    within_between_blend,
    within_estimator,
)
from helpers.design import build_design
from helpers.fit import fit_lmm, fit_ols
from helpers.objective import profile
from helpers.validate import DataError

REFERENCE = json.loads((Path(__file__).parent / "reference" / "lme4_reference.json").read_text())[
    "datasets"
]

RADON = "log_radon ~ floor + (1 | county)"


@pytest.fixture(scope="module")
def radon_dec(radon):
    return decompose(radon, RADON)


@pytest.fixture(scope="module")
def question_shaped():
    """Question-shaped rows: 326,362 rows in 24 clusters of very unequal size."""
    return simulate_clustered(
        n_clusters=24,
        n_obs=326_362,
        size_imbalance=1.5,
        sigma_group=0.31,
        sigma_resid=0.67,
        intercept=0.72,
        slope=-0.098,
        share_spread=0.1,
        effect_size_correlation=-0.5,
        seed=3,
    )


def _dummy_regression(frame, response, covariates, group):
    """OLS with one dummy per cluster (no common intercept), from rows."""
    dummies = pd.get_dummies(frame[group], dtype=float).to_numpy()
    X = np.column_stack([frame[c].to_numpy(float) for c in covariates] + [dummies])
    coef, *_ = np.linalg.lstsq(X, frame[response].to_numpy(float), rcond=None)
    return coef[: len(covariates)]


# --- the mixed model side, against lme4 -------------------------------------------------------------


def test_radon_lmm_matches_lme4(radon_dec):
    ref = REFERENCE["radon"]["reml"]
    np.testing.assert_allclose(radon_dec.lmm["Intercept"], ref["fixef"]["(Intercept)"], rtol=1e-6)
    np.testing.assert_allclose(radon_dec.lmm["floor"], ref["fixef"]["floor"], rtol=1e-6)
    assert radon_dec.ols["floor"] == pytest.approx(
        REFERENCE["radon"]["lm"]["coef"]["floor"], rel=1e-9
    )


# --- quasi-demeaning ---------------------------------------------------------------------------------


def test_reconstruction_equals_lmm_on_radon(radon_dec):
    np.testing.assert_allclose(radon_dec.reconstructed, radon_dec.lmm, rtol=1e-8, atol=0)
    assert radon_dec.reconstruction_error < 1e-8


@pytest.mark.slow
def test_reconstruction_equals_lmm_on_question_shaped_data(question_shaped):
    dec = decompose(question_shaped, "y ~ condition + (1 | cluster)")
    np.testing.assert_allclose(dec.reconstructed, dec.lmm, rtol=1e-8, atol=0)
    # the mixed model puts nearly equal weight on every cluster here, pooled OLS does not
    assert dec.table["weight_lmm"].max() / dec.table["weight_lmm"].min() < 1.5
    assert dec.table["weight_ols"].max() / dec.table["weight_ols"].min() > 100
    # and the condition slope is essentially the within slope
    assert dec.lmm.iloc[1] == pytest.approx(
        dec.within.iloc[1], abs=5 * dec.lmm_fit.bse.iloc[1] / 100
    )


def test_quasi_demean_intercept_column_becomes_one_minus_lambda(radon_dec):
    design = radon_dec.lmm_fit.design
    lam = radon_dec.table["lambda"].to_numpy()
    x_star, _ = quasi_demean(design.X, design.y, design.group_codes, lam)
    np.testing.assert_allclose(x_star[:, 0], 1.0 - lam[design.group_codes], rtol=0, atol=1e-14)


def test_quasi_demean_extremes_are_ols_and_within(radon):
    design = build_design(radon, RADON)
    J = len(design.group_labels)
    x0, y0 = quasi_demean(design.X, design.y, design.group_codes, np.zeros(J))
    np.testing.assert_array_equal(x0, design.X)
    np.testing.assert_array_equal(y0, design.y)
    x1, y1 = quasi_demean(design.X, design.y, design.group_codes, np.ones(J))
    slope = np.linalg.lstsq(x1[:, 1:], y1, rcond=None)[0][0]
    assert slope == pytest.approx(
        within_estimator(design.stats, design.term_names)["floor"], rel=1e-10
    )


# --- within and between --------------------------------------------------------------------------------


def test_within_equals_cluster_dummy_regression(radon):
    d = build_design(radon, "log_radon ~ floor + uranium + (1 | county)")
    within = within_estimator(d.stats, d.term_names)
    expected = _dummy_regression(radon, "log_radon", ["floor"], "county")[0]
    assert within["floor"] == pytest.approx(expected, rel=1e-10)
    # not identified within clusters: the intercept, and uranium (one value per county)
    assert within[["Intercept", "uranium"]].isna().all()


def test_between_equals_regression_of_cluster_means(radon):
    d = build_design(radon, "log_radon ~ floor + uranium + (1 | county)")
    means = radon.groupby("county", observed=True)[["log_radon", "floor", "uranium"]].mean()
    X = np.column_stack([np.ones(len(means)), means["floor"], means["uranium"]])
    expected, *_ = np.linalg.lstsq(X, means["log_radon"].to_numpy(), rcond=None)
    np.testing.assert_allclose(between_estimator(d.stats, d.term_names), expected, rtol=1e-10)


def test_between_weighted_matches_weighted_least_squares(radon):
    d = build_design(radon, RADON)
    weights = np.linspace(1.0, 3.0, d.stats.n_groups)
    means = radon.groupby("county", observed=True)[["log_radon", "floor"]].mean()
    X = np.column_stack([np.ones(len(means)), means["floor"]]) * np.sqrt(weights)[:, None]
    y = means["log_radon"].to_numpy() * np.sqrt(weights)
    expected, *_ = np.linalg.lstsq(X, y, rcond=None)
    got = between_estimator(d.stats, d.term_names, weights=weights)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_balanced_design_between_not_identified_within_equals_pooled(sleepstudy):
    dec = decompose(sleepstudy, "Reaction ~ Days + (1 | Subject)")
    # every subject has days 0..9: the cluster means of Days are all equal
    assert dec.between.isna().all()
    assert dec.within["Days"] == pytest.approx(dec.ols["Days"], rel=1e-10)
    assert dec.lmm["Days"] == pytest.approx(
        REFERENCE["sleepstudy"]["reml"]["fixef"]["Days"], rel=1e-6
    )


# --- the exact within/between blend --------------------------------------------------------------------


def test_blend_equals_lmm(radon_dec):
    blend = radon_dec.blend
    np.testing.assert_allclose(blend.beta, radon_dec.lmm, rtol=1e-8, atol=0)
    # M_W + M_B = I
    total = blend.weight_within.to_numpy() + blend.weight_between.to_numpy()
    np.testing.assert_allclose(total, np.eye(2), atol=1e-12)


def test_blend_recombines_its_own_parts(radon):
    d = build_design(radon, "log_radon ~ floor + uranium + (1 | county)")
    theta = 0.37
    blend = within_between_blend(d.stats, theta, d.term_names)
    w = blend.within_cross.to_numpy()
    b = blend.between_cross.to_numpy()
    beta_w = blend.beta_within.fillna(0.0).to_numpy()  # unidentified columns of W are zero
    beta_b = blend.beta_between.to_numpy()
    recombined = np.linalg.solve(w + b, w @ beta_w + b @ beta_b)
    np.testing.assert_allclose(recombined, profile(d.stats, theta).beta, rtol=1e-8)
    # W_xx from sums equals the within cross-products computed from demeaned rows
    demeaned = d.X - pd.DataFrame(d.X).groupby(d.group_codes).transform("mean").to_numpy()
    np.testing.assert_allclose(w, demeaned.T @ demeaned, rtol=1e-9, atol=1e-9)


def test_blend_extremes(radon):
    d = build_design(radon, RADON)
    at_zero = within_between_blend(d.stats, 0.0, d.term_names)
    np.testing.assert_allclose(at_zero.beta, d.stats.beta_ols, rtol=1e-10)
    far = within_between_blend(d.stats, 1e3, d.term_names)
    assert far.weight_within.loc["floor", "floor"] > 0.9999


def test_large_theta_limit_is_approached(radon):
    d = build_design(radon, "log_radon ~ floor + uranium + (1 | county)")
    limit = large_theta_limit(d.stats, d.term_names)
    gaps = [
        np.abs(profile(d.stats, t).beta - limit.to_numpy()).max() for t in (10.0, 100.0, 1000.0)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-6
    assert limit["floor"] == pytest.approx(
        within_estimator(d.stats, d.term_names)["floor"], rel=1e-12
    )


# --- the cluster table ---------------------------------------------------------------------------------


def test_table_intercept_only_weights_reproduce_both_estimates(radon):
    formula = "log_radon ~ 1 + (1 | county)"
    dec = decompose(radon, formula)
    table = dec.table
    means = radon.groupby("county", observed=True)["log_radon"].agg(["mean", "size"])
    np.testing.assert_array_equal(table["n"].to_numpy(), means["size"].to_numpy())
    np.testing.assert_allclose(table["mean_response"], means["mean"], rtol=1e-12)
    assert table["weight_ols"].sum() == pytest.approx(1.0, abs=1e-12)
    assert table["weight_lmm"].sum() == pytest.approx(1.0, abs=1e-12)
    assert float(table["weight_ols"] @ means["mean"]) == pytest.approx(
        dec.ols["Intercept"], rel=1e-12
    )
    assert float(table["weight_lmm"] @ means["mean"]) == pytest.approx(
        dec.lmm["Intercept"], rel=1e-10
    )


def test_table_lambda_shrinkage_and_modes(radon_dec):
    fit = radon_dec.lmm_fit
    table = radon_dec.table
    n = table["n"].to_numpy(float)
    s2, sb2 = fit.sigma2_resid, fit.sigma2_group
    np.testing.assert_allclose(table["lambda"], 1 - np.sqrt(s2 / (s2 + n * sb2)), rtol=1e-12)
    np.testing.assert_allclose(table["shrinkage"], n * sb2 / (n * sb2 + s2), rtol=1e-12)
    np.testing.assert_allclose(table["shrinkage"], 1 - (1 - table["lambda"]) ** 2, rtol=1e-12)
    np.testing.assert_allclose(table["pooling_factor"], 1 - table["shrinkage"], atol=1e-15)
    np.testing.assert_allclose(table["ranef"], fit.ranef, rtol=1e-10, atol=1e-14)
    w = 1.0 / (sb2 + s2 / n)
    np.testing.assert_allclose(table["weight_lmm"], w / w.sum(), rtol=1e-12)
    assert list(table.index) == list(fit.ranef.index)


def test_cluster_table_without_labels_defaults_to_codes(dyestuff):
    fit = fit_lmm(dyestuff, "Yield ~ 1 + (1 | Batch)")
    table = cluster_table(fit.stats, fit.theta)
    assert list(table.index) == list(range(6))
    np.testing.assert_allclose(table["ranef"], fit.ranef.to_numpy(), rtol=1e-10)


# --- design effect ---------------------------------------------------------------------------------------


def test_design_effect_is_variance_ratio_of_the_pooled_mean(radon):
    """1 + (sum n_i^2 / N - 1) ICC equals 1' V 1 / N^2 divided by (sigma_b^2 + sigma^2) / N."""
    small = radon[radon["county"].isin(radon["county"].cat.categories[:12])].copy()
    small["county"] = small["county"].cat.remove_unused_categories()
    dec = decompose(small, "log_radon ~ 1 + (1 | county)")
    fit = dec.lmm_fit
    codes = small["county"].cat.codes.to_numpy()
    same = (codes[:, None] == codes[None, :]).astype(float)
    V = fit.sigma2_group * same + fit.sigma2_resid * np.eye(len(codes))
    N = len(codes)
    var_mean = V.sum() / N**2
    var_srs = (fit.sigma2_group + fit.sigma2_resid) / N
    assert dec.design_effect == pytest.approx(var_mean / var_srs, rel=1e-10)


def test_design_effect_balanced_form(dyestuff):
    dec = decompose(dyestuff, "Yield ~ 1 + (1 | Batch)")
    icc = dec.lmm_fit.sigma2_group / (dec.lmm_fit.sigma2_group + dec.lmm_fit.sigma2_resid)
    assert dec.icc == pytest.approx(icc)
    assert dec.design_effect == pytest.approx(1 + (5 - 1) * icc, rel=1e-12)
    assert dec.se_ratio["Intercept"] == pytest.approx(
        REFERENCE["dyestuff"]["reml"]["se"]["(Intercept)"]
        / REFERENCE["dyestuff"]["lm"]["se"]["(Intercept)"],
        rel=1e-6,
    )


# --- the result object ---------------------------------------------------------------------------------


def test_decomposition_is_frozen_and_complete(radon_dec):
    assert isinstance(radon_dec, Decomposition)
    with pytest.raises(dataclasses.FrozenInstanceError):
        radon_dec.design_effect = 1.0
    assert list(radon_dec.estimates.columns) == ["ols", "between", "within", "lmm", "reconstructed"]
    assert list(radon_dec.table.columns[:5]) == [
        "n",
        "lambda",
        "weight_ols",
        "weight_lmm",
        "shrinkage",
    ]
    assert radon_dec.ols_fit.bse_cluster is not None  # cluster-robust SEs for the grouping column
    assert "design effect" in repr(radon_dec)


def test_decompose_with_group_argument_matches_formula_term(radon):
    a = decompose(radon, "log_radon ~ floor", group="county")
    b = decompose(radon, RADON)
    pd.testing.assert_series_equal(a.lmm, b.lmm)
    pd.testing.assert_series_equal(a.within, b.within)


def test_decompose_without_group_is_a_clear_error(radon):
    with pytest.raises(DataError, match="grouping column"):
        decompose(radon, "log_radon ~ floor")


# --- the fixed-effect path ----------------------------------------------------------------------------


def test_path_equals_profile_pointwise(radon):
    d = build_design(radon, "log_radon ~ floor + uranium + (1 | county)")
    thetas = default_thetas(d.stats, num=15, theta_hat=0.4)
    for reml in (True, False):
        path = fixed_effect_path(d.stats, d.term_names, thetas, reml=reml)
        assert list(path.columns) == ["theta", "term", "estimate", "std_error"]
        assert len(path) == len(thetas) * 3
        for theta in thetas[::4]:
            prof = profile(d.stats, theta, reml)
            rows = path[path["theta"] == theta].set_index("term").loc[d.term_names]
            np.testing.assert_allclose(rows["estimate"], prof.beta, rtol=1e-10)
            np.testing.assert_allclose(
                rows["std_error"], np.sqrt(np.diag(prof.cov_beta)), rtol=1e-9
            )


def test_path_at_zero_is_lm(dyestuff, radon):
    d = build_design(radon, RADON)
    ols = fit_ols(radon, RADON)
    path = fixed_effect_path(d.stats, d.term_names, [0.0]).set_index("term")
    np.testing.assert_allclose(path.loc[d.term_names, "estimate"], ols.params, rtol=1e-10)
    np.testing.assert_allclose(path.loc[d.term_names, "std_error"], ols.bse, rtol=1e-10)
    dy = build_design(dyestuff, "Yield ~ 1 + (1 | Batch)")
    lm_se = REFERENCE["dyestuff"]["lm"]["se"]["(Intercept)"]
    theta_hat = REFERENCE["dyestuff"]["reml"]["theta"]
    reml_se = REFERENCE["dyestuff"]["reml"]["se"]["(Intercept)"]
    path = fixed_effect_path(dy.stats, dy.term_names, [0.0, theta_hat])
    np.testing.assert_allclose(path["std_error"], [lm_se, reml_se], rtol=1e-6)


def test_path_rejects_bad_input(radon):
    d = build_design(radon, RADON)
    with pytest.raises(ValueError, match="thetas"):
        fixed_effect_path(d.stats, d.term_names, [0.1, -1.0])
    with pytest.raises(ValueError, match="term_names"):
        fixed_effect_path(d.stats, ["only_one"], [0.1])


def test_default_thetas_span_the_path(radon):
    d = build_design(radon, RADON)
    grid = default_thetas(d.stats, theta_hat=0.43)
    assert grid[0] == 0.0 and 0.43 in grid
    n = d.stats.counts
    lam = 1 - 1 / np.sqrt(1 + np.outer(grid[[1, -1]] ** 2, n))
    assert lam[0].max() < 0.01  # starts near pooled OLS for every cluster
    assert lam[1].min() > 0.95  # ends near the within estimator for every cluster


# --- rank decisions relative to each column's scale (issue 10) --------------------------------------


def _centred_frame():
    rng = np.random.default_rng(31)
    codes = np.repeat(np.arange(12), 9)
    x = rng.normal(size=codes.size)
    frame = pd.DataFrame({"g": codes, "x": x})
    frame["z"] = rng.normal(size=12)[codes] + 0.3 * rng.normal(size=codes.size)
    # centred within clusters: the cluster means are rounding noise (~1e-16), not exactly 0
    frame["xc"] = frame["x"] - frame.groupby("g")["x"].transform("mean")
    frame["y"] = (
        1.0 + 0.5 * frame["xc"] + 0.3 * frame["z"] + rng.normal(size=12)[codes]
    ) + rng.normal(size=codes.size)
    return frame


def test_between_estimator_of_a_predictor_centred_within_clusters_is_nan_with_a_reason():
    frame = _centred_frame()
    means = frame.groupby("g")["xc"].mean().abs()
    assert 0 < means.max() < 1e-14  # not exactly zero: the case that once gave +-1e15
    d = build_design(frame, "y ~ xc + z + (1 | g)")
    between = between_estimator(d.stats, d.term_names)
    assert np.isnan(between["xc"])
    assert "centred within clusters" in between.attrs["not_identified"]["xc"]
    assert set(between.attrs["not_identified"]) == {"xc"}
    # the other coefficients are those of the between regression without the empty column
    without = build_design(frame, "y ~ z + (1 | g)")
    reference = between_estimator(without.stats, without.term_names)
    np.testing.assert_allclose(between[["Intercept", "z"]], reference, rtol=1e-10)
    # the whole decomposition carries NaN, never a huge number, and the blend still reproduces the fit
    dec = decompose(frame, "y ~ xc + z + (1 | g)")
    assert np.isnan(dec.between["xc"])
    assert np.isfinite(dec.between.drop("xc")).all()
    assert dec.reconstruction_error < 1e-8
    np.testing.assert_allclose(dec.blend.beta, dec.lmm, rtol=1e-9)


def test_between_rank_decision_does_not_depend_on_units():
    frame = _centred_frame()
    frame["z_small"] = frame["z"] * 1e-12  # a real cluster-level predictor in tiny units
    d = build_design(frame, "y ~ z_small + (1 | g)")
    between = between_estimator(d.stats, d.term_names)
    plain = build_design(frame, "y ~ z + (1 | g)")
    reference = between_estimator(plain.stats, plain.term_names)
    assert between["z_small"] * 1e-12 == pytest.approx(reference["z"], rel=1e-9)
    assert between.attrs["not_identified"] == {}
