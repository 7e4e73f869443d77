"""Cross-checks against statsmodels: MixedLM where it converges tightly, and OLS.

MixedLM is compared only where its optimiser is told to converge tightly (``method=["bfgs"]`` with
``gtol=1e-8``; Powell at the boundary, where gradient methods stall). Its default fit stops early on
large data sets (it minimises -llf / nobs with gtol 1e-5), so the default is only checked one way: our
fit's log-likelihood is never below its own.

MixedLM's fixed-effect standard errors are NOT compared: statsmodels takes them from the joint Hessian
of the fixed effects and the variance parameters, whereas lme4 (and this package) report
sigma^2 (X' V^-1 X)^-1 at the estimates. The two differ by design on unbalanced data.

Everything here stays small (at most a few thousand rows) to keep the run fast.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from helpers.data import load_dataset, simulate_clustered
from helpers.design import build_design
from helpers.fit import fit_lmm, fit_ols

RTOL = 1e-4
GTOL = 1e-8


def _simulated():
    return simulate_clustered(
        n_clusters=30,
        n_obs=3000,
        size_imbalance=1.0,
        share_spread=0.8,
        effect_size_correlation=-0.5,
        seed=3,
    )


CASES = {
    "dyestuff": (lambda: load_dataset("dyestuff"), "Yield ~ 1", "Batch"),
    "sleepstudy": (lambda: load_dataset("sleepstudy"), "Reaction ~ Days", "Subject"),
    "radon": (lambda: load_dataset("radon"), "log_radon ~ floor", "county"),
    "simulated": (_simulated, "y ~ condition", "cluster"),
}

_cache: dict = {}


def _case(name):
    if name not in _cache:
        make, formula, group = CASES[name]
        _cache[name] = (make(), formula, group)
    return _cache[name]


def _mixedlm(data, formula, group, reml, **fit_kwargs):
    model = smf.mixedlm(formula, data, groups=data[group])
    with warnings.catch_warnings():
        # statsmodels warns about its own optimiser and boundary; the assertions judge the result
        warnings.simplefilter("ignore")
        return model.fit(reml=reml, **fit_kwargs)


both_methods = pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
all_cases = pytest.mark.parametrize("name", list(CASES))


@all_cases
@both_methods
def test_mixedlm_tight_fit_agrees(name, reml):
    data, formula, group = _case(name)
    ours = fit_lmm(data, formula, group=group, reml=reml)
    theirs = _mixedlm(data, formula, group, reml, method=["bfgs"], gtol=GTOL)
    assert theirs.converged
    np.testing.assert_allclose(
        ours.fe_params.to_numpy(), theirs.fe_params[ours.fe_params.index].to_numpy(), rtol=RTOL
    )
    assert ours.sigma2_group == pytest.approx(float(theirs.cov_re.iloc[0, 0]), rel=RTOL)
    assert ours.sigma2_resid == pytest.approx(theirs.scale, rel=RTOL)
    # statsmodels' llf is on lme4's scale: the REML log-likelihood for REML fits
    assert ours.loglik == pytest.approx(theirs.llf, abs=1e-6)
    # conditional modes (statsmodels' random_effects), relative to their spread
    modes = pd.Series({k: float(v.iloc[0]) for k, v in theirs.random_effects.items()})
    scale = float(np.abs(modes).max())
    np.testing.assert_allclose(
        ours.ranef[modes.index].to_numpy(), modes.to_numpy(), rtol=0, atol=RTOL * scale
    )


@all_cases
@both_methods
def test_our_loglik_is_never_below_mixedlm_default_fit(name, reml):
    data, formula, group = _case(name)
    ours = fit_lmm(data, formula, group=group, reml=reml)
    theirs = _mixedlm(data, formula, group, reml)
    assert ours.loglik >= theirs.llf - 1e-9


@both_methods
def test_mixedlm_powell_agrees_at_the_boundary(reml):
    data = load_dataset("dyestuff2")
    ours = fit_lmm(data, "Yield ~ 1 + (1 | Batch)", reml=reml)
    theirs = _mixedlm(data, "Yield ~ 1", "Batch", reml, method=["powell"])
    assert ours.sigma2_group == 0.0
    # statsmodels stops a hair inside the boundary; compare on the scale of the residual variance
    assert float(theirs.cov_re.iloc[0, 0]) == pytest.approx(0.0, abs=1e-6 * ours.sigma2_resid)
    assert ours.sigma2_resid == pytest.approx(theirs.scale, rel=RTOL)
    assert ours.fe_params["Intercept"] == pytest.approx(theirs.fe_params["Intercept"], rel=RTOL)
    assert ours.loglik == pytest.approx(theirs.llf, abs=1e-6)


def _statsmodels_ols(name):
    data, formula, group = _case(name)
    design = build_design(data, formula, group)
    model = sm.OLS(design.y, design.X)
    plain = model.fit()
    robust = model.fit(cov_type="cluster", cov_kwds={"groups": design.group_codes})
    return design, plain, robust


@all_cases
def test_ols_agrees_with_statsmodels(name):
    data, formula, group = _case(name)
    ours = fit_ols(data, formula, group=group)
    design, plain, robust = _statsmodels_ols(name)
    assert list(ours.params.index) == design.term_names
    np.testing.assert_allclose(ours.params.to_numpy(), plain.params, rtol=1e-10)
    np.testing.assert_allclose(ours.bse.to_numpy(), plain.bse, rtol=1e-10)
    assert ours.sigma2_resid == pytest.approx(plain.scale, rel=1e-10)
    assert ours.df_resid == int(plain.df_resid)
    # CR1: statsmodels' default small-sample factor G/(G-1) (N-1)/(N-p)
    np.testing.assert_allclose(ours.bse_cluster.to_numpy(), robust.bse, rtol=1e-10)
    np.testing.assert_allclose(ours.cov_cluster.to_numpy(), robust.cov_params(), rtol=1e-10)


def test_ols_from_a_formula_agrees_with_statsmodels_formula_api():
    data, formula, group = _case("simulated")
    ours = fit_ols(data, formula)
    theirs = smf.ols(formula, data).fit()
    assert ours.bse_cluster is None
    np.testing.assert_allclose(ours.params.to_numpy(), theirs.params.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.bse.to_numpy(), theirs.bse.to_numpy(), rtol=1e-10)
