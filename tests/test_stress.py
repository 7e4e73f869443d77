"""Numerical stress: awkward offsets, units, collinearity and shapes fit exactly as well-scaled data do.

Each case compares a fit of awkward data with a fit of the same information after centring and scaling,
mapped back to the awkward parametrisation, to 1e-6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers.objective import criterion_derivative

TOL = 1e-6


@pytest.fixture(scope="module")
def base():
    rng = np.random.default_rng(20261126)
    frame = helpers.simulate_clustered(
        n_clusters=40, n_obs=4000, size_imbalance=1.2, sigma_group=0.4, share_spread=0.8, seed=11
    )
    frame["z"] = rng.normal(size=len(frame)) + 0.3 * frame["cluster"].cat.codes / 40
    return frame


def _same_variances(a, b, scale2=1.0):
    assert a.sigma2_resid == pytest.approx(scale2 * b.sigma2_resid, rel=TOL)
    assert a.sigma2_group == pytest.approx(scale2 * b.sigma2_group, rel=TOL)
    assert a.theta == pytest.approx(b.theta, rel=TOL)


@pytest.mark.parametrize("reml", [True, False])
def test_response_offset_by_a_million(base, reml):
    formula = "y ~ condition + z + (1 | cluster)"
    plain = helpers.fit_lmm(base, formula, reml=reml)
    far = helpers.fit_lmm(base.assign(y=base["y"] + 1e6), formula, reml=reml)
    shifted = far.fe_params.copy()
    shifted["Intercept"] -= 1e6
    assert np.allclose(shifted, plain.fe_params, rtol=TOL, atol=TOL * plain.bse.min())
    assert np.allclose(far.bse, plain.bse, rtol=TOL)
    _same_variances(far, plain)
    assert far.criterion == pytest.approx(plain.criterion, abs=1e-6)
    assert np.allclose(far.ranef, plain.ranef, rtol=TOL, atol=TOL * plain.ranef.abs().max())


@pytest.mark.parametrize("factor", [1e-6, 1e6])
def test_response_in_tiny_or_huge_units(base, factor):
    formula = "y ~ condition + z + (1 | cluster)"
    plain = helpers.fit_lmm(base, formula)
    scaled = helpers.fit_lmm(base.assign(y=base["y"] * factor), formula)
    assert np.allclose(scaled.fe_params / factor, plain.fe_params, rtol=TOL)
    assert np.allclose(scaled.bse / factor, plain.bse, rtol=TOL)
    _same_variances(scaled, plain, factor**2)
    dof = plain.n_obs - len(plain.fe_params)
    assert scaled.criterion == pytest.approx(plain.criterion + 2 * dof * np.log(factor), abs=1e-6)


@pytest.mark.parametrize("reml", [True, False])
def test_predictor_with_tiny_spread_and_huge_mean(base, reml):
    """x = 1e4 + 1e-4 z: a reparametrisation of z, so everything maps back exactly."""
    awkward = base.assign(x=1e4 + 1e-4 * base["z"])
    fit_x = helpers.fit_lmm(awkward, "y ~ condition + x + (1 | cluster)", reml=reml)
    fit_z = helpers.fit_lmm(base, "y ~ condition + z + (1 | cluster)", reml=reml)
    assert fit_x.fe_params["x"] * 1e-4 == pytest.approx(fit_z.fe_params["z"], rel=TOL)
    assert fit_x.bse["x"] * 1e-4 == pytest.approx(fit_z.bse["z"], rel=TOL)
    assert fit_x.fe_params["condition[T.stim]"] == pytest.approx(
        fit_z.fe_params["condition[T.stim]"], rel=TOL
    )
    assert np.allclose(fit_x.fitted(), fit_z.fitted(), rtol=TOL, atol=TOL)
    _same_variances(fit_x, fit_z)
    # REML's log det(X'V^{-1}X) term changes by 2 log|det T| under x = 1e4 + 1e-4 z; ML's does not
    offset = 2 * np.log(1e-4) if reml else 0.0
    assert fit_x.criterion == pytest.approx(fit_z.criterion + offset, abs=1e-5)


def test_near_collinear_predictors_fit_or_fail_clearly(base):
    """x2 = z + 1e-8 e: condition number about 1e8. Either a correct fit or a clear DataError."""
    rng = np.random.default_rng(3)
    noise = rng.normal(size=len(base))
    awkward = base.assign(x1=base["z"], x2=base["z"] + 1e-8 * noise)
    X = np.column_stack([np.ones(len(base)), awkward["x1"], awkward["x2"]])
    assert np.linalg.cond(X) > 1e7
    try:
        fit = helpers.fit_lmm(awkward, "y ~ x1 + x2 + (1 | cluster)")
    except helpers.DataError as err:
        assert "x2" in str(err) or "x1" in str(err)
        return
    # the same model in a well-conditioned basis: x1 and d = (x2 - x1) / 1e-8
    good = helpers.fit_lmm(base.assign(x1=base["z"], d=noise), "y ~ x1 + d + (1 | cluster)")
    _same_variances(fit, good)
    assert fit.criterion == pytest.approx(good.criterion - 2 * np.log(1e8), abs=1e-4)
    assert fit.fe_params["x2"] * 1e-8 == pytest.approx(good.fe_params["d"], rel=1e-4)
    assert np.allclose(fit.fitted(), good.fitted(), rtol=1e-6, atol=1e-6)


def test_exactly_collinear_predictors_name_the_aliased_term(base):
    with pytest.raises(helpers.DataError, match="'x2'"):
        helpers.fit_lmm(base.assign(x2=2 * base["z"] + 1), "y ~ z + x2 + (1 | cluster)")


def test_twenty_thousand_tiny_clusters():
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 3, size=20_000)
    codes = np.repeat(np.arange(sizes.size), sizes)
    x = rng.normal(size=codes.size)
    y = 2.0 + 0.5 * x + 0.7 * rng.normal(size=sizes.size)[codes] + rng.normal(size=codes.size)
    frame = pd.DataFrame({"y": y, "x": x, "g": codes})
    fit = helpers.fit_lmm(frame, "y ~ x + (1 | g)")
    assert fit.n_groups == 20_000 and fit.converged
    # the true values are recovered to within a few standard errors
    assert abs(fit.fe_params["x"] - 0.5) < 5 * fit.bse["x"]
    assert fit.sigma_group == pytest.approx(0.7, rel=0.15)
    scaled = helpers.fit_lmm(
        frame.assign(y=(y - y.mean()) / y.std(), x=(x - 5) * 1e3), "y ~ x + (1 | g)"
    )
    assert scaled.fe_params["x"] * 1e3 * y.std() == pytest.approx(fit.fe_params["x"], rel=TOL)
    _same_variances(scaled, fit, 1 / y.std() ** 2)


def _boundary_data(extra_sd: float) -> pd.DataFrame:
    """Clusters whose means are identical by construction, plus an optional tiny cluster effect."""
    rng = np.random.default_rng(8)
    rows = []
    for g in range(12):
        e = rng.normal(size=10)
        e -= e.mean()  # every cluster mean is exactly 0: no between-cluster variation
        rows.append(pd.DataFrame({"y": 5 + e + extra_sd * (g - 5.5), "g": f"g{g:02d}"}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("reml", [True, False])
def test_exact_boundary_fit(reml):
    frame = _boundary_data(0.0)
    fit = helpers.fit_lmm(frame, "y ~ 1 + (1 | g)", reml=reml)
    assert fit.theta == 0.0 and fit.sigma2_group == 0.0 and fit.singular
    ols = helpers.fit_ols(frame, "y ~ 1")
    assert fit.fe_params["Intercept"] == pytest.approx(ols.params["Intercept"], rel=1e-12)
    if reml:
        assert fit.bse["Intercept"] == pytest.approx(ols.bse["Intercept"], rel=1e-10)
    scaled = helpers.fit_lmm(frame.assign(y=(frame["y"] - 5) * 1e3), "y ~ 1 + (1 | g)", reml=reml)
    assert scaled.singular
    assert scaled.sigma2_resid == pytest.approx(fit.sigma2_resid * 1e6, rel=TOL)


def test_near_boundary_fit():
    """A between-cluster spread just large enough to move the estimate off 0."""
    frame = _boundary_data(0.1)
    stats = helpers.build_design(frame, "y ~ 1 + (1 | g)").stats
    assert criterion_derivative(stats, 0.0) < 0  # the criterion falls away from 0
    fit = helpers.fit_lmm(frame, "y ~ 1 + (1 | g)")
    assert 0 < fit.theta < 0.2 and not fit.singular and fit.converged
    assert abs(criterion_derivative(stats, fit.theta)) < 1e-6
    scaled = helpers.fit_lmm(frame.assign(y=(frame["y"] - 5) * 1e-3), "y ~ 1 + (1 | g)")
    _same_variances(scaled, fit, 1e-6)
    assert (scaled.fe_params["Intercept"] + 5e-3) * 1e3 == pytest.approx(
        fit.fe_params["Intercept"], rel=TOL
    )


def test_very_unbalanced_question_shape_fits_at_large_theta():
    """Regression: the subtracted form of A(u) once lost positive definiteness near theta = 1e4 here."""
    frame = helpers.simulate_clustered(
        n_clusters=24, n_obs=326_362, size_imbalance=1.2, share_spread=0.5, seed=3
    )
    stats = helpers.build_design(frame, "y ~ condition + (1 | cluster)").stats
    values = helpers.criterion(stats, np.array([1e2, 1e3, 1e4]))
    assert np.isfinite(values).all()
    fit = helpers.fit_lmm(frame, "y ~ condition + (1 | cluster)")
    assert fit.converged and 0 < fit.theta < 10
