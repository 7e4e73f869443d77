"""The parametric bootstrap of a random-slopes fit, drawn from the per-cluster sums (issue 13).

:func:`helpers.inference.bootstrap` draws, for each replicate, the statistics a refit needs (Z_i'y*,
X'y*, y*'y*) with exactly the distribution they have when the rows y* = X beta + Z b* + e* are simulated.
Checked here:

- the algebra: the statistics assembled from (b*, the parts of e*) equal the sums of the rows simulated
  with the same b* and e*, on a design where X has a column outside every cluster's Z (so eta is not 0)
  and with a cluster whose Z_i'Z_i is singular;
- the distribution: a two-sample Kolmogorov-Smirnov test per parameter between replicates from the sums
  and replicates simulated row by row and refitted with ``fit_lmm`` (fixed seeds), for sleepstudy
  ``(Days | Subject)``, ``(Days || Subject)``, a design with an extra covariate and a singular fit;
- the test's power: dropping eta or the chi-square part of e*'e* makes it fail;
- the table's shape, reproducibility, chunks, the progress bar, ``confint(method="bootstrap")`` and
  the bootstrap likelihood-ratio test of ``anova`` from the sums.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from helpers import anova, fit_lmm, inference
from helpers.data import load_dataset
from helpers.random_terms import block_sums

SINGULAR_CSV = Path(__file__).resolve().parent / "reference" / "random_slopes_singular.csv"
N_REPS = 250  # enough for the KS tests and for the broken draws to fail them (checked)


def _sleep_with_covariate() -> pd.DataFrame:
    sleep = load_dataset("sleepstudy")
    return sleep.assign(x=np.random.default_rng(0).normal(size=len(sleep)))


CASES = {
    "slope": (load_dataset("sleepstudy"), "Reaction ~ Days + (Days | Subject)"),
    "uncorrelated": (load_dataset("sleepstudy"), "Reaction ~ Days + (Days || Subject)"),
    "covariate": (_sleep_with_covariate(), "Reaction ~ Days + x + (Days | Subject)"),
    "singular": (pd.read_csv(SINGULAR_CSV, dtype={"g": str}), "y ~ x + (1 + x | g)"),
}

_CACHE: dict = {}


def _fit(case: str):
    if case not in _CACHE:
        data, formula = CASES[case]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[case] = fit_lmm(data, formula)
    return _CACHE[case]


def _varpar_values(refit) -> dict:
    """SDs, correlations and sigma of a fit, named as :func:`helpers.inference.varpar_names`, read from
    its ``varcorr`` (not from theta, as the bootstrap computes them)."""
    group = refit.random.group
    out = {}
    for row in refit.varcorr.itertuples():
        if row.grp == "Residual":
            out["sigma"] = row.sdcor
        elif row.var2 is None:
            out[f"sd_{row.var1}|{group}"] = row.sdcor
        else:
            out[f"cor_{row.var2}.{row.var1}|{group}"] = row.sdcor
    return out


def _rows_bootstrap(case: str, n: int, seed: int) -> pd.DataFrame:
    """The slow way: simulate every row of y* = X beta + Z b* + e*, then refit with fit_lmm."""
    key = ("rows", case, n, seed)
    if key in _CACHE:
        return _CACHE[key]
    fit = _fit(case)
    data, formula = CASES[case]
    assert fit.n_obs == len(data)  # no rows dropped: the design's rows are the data's
    design, random = fit.design, fit.random
    X, Z, codes = design.X, random.Z, design.group_codes
    factor = random.factor(fit.theta)
    sigma, beta = fit.sigma_resid, fit.fe_params.to_numpy()
    rng = np.random.default_rng(seed)
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            b = sigma * rng.standard_normal((fit.n_groups, random.q)) @ factor.T
            y = X @ beta + np.sum(Z * b[codes], axis=1) + sigma * rng.standard_normal(len(X))
            refit = fit_lmm(data.assign(**{fit.response: y}), formula, reml=fit.reml)
            record = dict(refit.fe_params)
            record.update(_varpar_values(refit))
            record.update(zip(random.theta_names, refit.theta, strict=True))
            records.append(record)
    _CACHE[key] = pd.DataFrame(records)[_sums_bootstrap(case, 1, seed=0).columns]
    return _CACHE[key]


def _sums_bootstrap(case: str, n: int, seed: int) -> pd.DataFrame:
    key = ("sums", case, n, seed)
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[key] = inference.bootstrap(_fit(case), n=n, seed=seed, progress=False)
    return _CACHE[key]


def _ks_pvalues(fast: pd.DataFrame, slow: pd.DataFrame) -> dict:
    out = {}
    for column in slow.columns:
        a, b = fast[column].dropna(), slow[column].dropna()
        out[column] = scipy.stats.ks_2samp(a, b).pvalue
    return out


# ---------------------------------------------------------------------------------------------------
# the algebra
# ---------------------------------------------------------------------------------------------------


def test_statistics_from_the_parts_equal_the_sums_of_the_rows():
    """Given b* and e*, the parts (z, w, chi-square) computed from the rows rebuild exactly the blocks
    ``block_sums`` takes from the simulated rows. The first subject keeps one row only, so its
    Z_i'Z_i has rank 1; x is outside every Z_i, so S (and eta) is not 0."""
    data = _sleep_with_covariate()
    data = data.drop(index=data.index[(data["Subject"] == data["Subject"].iloc[0])][1:])
    fit = fit_lmm(data, "Reaction ~ Days + x + (Days | Subject)")
    design, random = fit.design, fit.random
    X, Z, codes, n_groups = design.X, random.Z, design.group_codes, fit.n_groups
    blocks = random.blocks
    factor = random.factor(fit.theta)
    sigma, beta = fit.sigma_resid, fit.fe_params.to_numpy()
    sim = inference._SlopeSimulator(blocks, factor, sigma, beta)
    assert sim.keep.sum() == 2 * n_groups - 1  # the one-row subject: rank 1
    assert sim.eta_half.shape[1] == 1  # x: one direction of X outside the Z_i
    assert sim.df == len(X) - (2 * n_groups - 1) - 1

    rng = np.random.default_rng(5)
    u = rng.standard_normal((n_groups, random.q))
    e = sigma * rng.standard_normal(len(X))
    y = X @ beta + np.sum(Z * (sigma * u @ factor.T)[codes], axis=1) + e

    # the parts of e*, computed from the rows: z_i = L_i^{-1/2} U_i'Z_i'e / sigma, w from
    # eta = Q'e - sum_i F_i'G_i^+ g_i, and the chi-square from the residual of e on [Q, Z_blocks]
    qmat = X @ blocks.r_inv
    g = np.zeros((n_groups, random.q))
    np.add.at(g, codes, Z * e[:, None])
    lam, vec = np.linalg.eigh(blocks.ztz)
    safe = np.where(sim.keep, lam, 1.0)
    z = np.where(sim.keep, np.einsum("jab,ja->jb", vec, g) / np.sqrt(safe), 0.0) / sigma
    eta = qmat.T @ e - sigma * np.einsum("jqp,jq->p", sim.k, z)
    w = np.linalg.lstsq(sim.eta_half, eta / sigma, rcond=None)[0]
    np.testing.assert_allclose(sim.eta_half @ w, eta / sigma, atol=1e-9)  # eta lies in S's range
    z_blocks = np.zeros((len(X), n_groups * random.q))
    for k in range(random.q):
        z_blocks[np.arange(len(X)), codes * random.q + k] = Z[:, k]
    W = np.column_stack([qmat, z_blocks])
    resid = e - W @ np.linalg.lstsq(W, e, rcond=None)[0]
    chi2 = np.array([resid @ resid]) / sigma**2

    drawn = sim.response(u[None], z[None], w[None], chi2)
    direct_blocks, direct = block_sums(Z, X, y, codes, n_groups, design.stats.r_factor, beta)
    np.testing.assert_allclose(direct_blocks.ztz, blocks.ztz, rtol=1e-12)
    np.testing.assert_allclose(drawn.zty[0], direct.zty, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(drawn.xty[0], direct.xty, rtol=1e-9, atol=1e-8)
    assert drawn.yty[0] == pytest.approx(float(direct.yty), rel=1e-10)


# ---------------------------------------------------------------------------------------------------
# the distribution
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["slope", "covariate"])
def test_bootstrap_from_sums_has_the_distribution_of_row_simulation(case):
    fast = _sums_bootstrap(case, N_REPS, seed=1)
    slow = _rows_bootstrap(case, N_REPS, seed=2)
    assert list(slow.columns) == list(fast.columns)
    pvalues = _ks_pvalues(fast, slow)
    assert min(pvalues.values()) > 1e-3, pvalues


@pytest.mark.parametrize("case", ["uncorrelated", "singular"])
def test_uncorrelated_and_singular_fits(case):
    fit = _fit(case)
    if case == "singular":
        assert fit.singular
    n = 200
    fast = _sums_bootstrap(case, n, seed=3)
    slow = _rows_bootstrap(case, n, seed=4)
    assert list(slow.columns) == list(fast.columns)
    pvalues = _ks_pvalues(fast, slow)
    assert min(pvalues.values()) > 1e-3, pvalues
    # the share of singular refits (lme4's isSingular: a diagonal element of T below 1e-4) agrees too
    names, lower = fit.random.theta_names, fit.random.theta_lower
    diagonal = [name for name, lo in zip(names, lower, strict=True) if lo == 0]
    share_fast = (fast[diagonal] < 1e-4).any(axis=1).mean()
    share_slow = (slow[diagonal] < 1e-4).any(axis=1).mean()
    spread = np.sqrt(max(share_slow, 0.01) * (1 - min(share_slow, 0.99)) * 2 / n)
    assert abs(share_fast - share_slow) < 4 * spread, (share_fast, share_slow)
    if case == "singular":
        assert share_slow > 0.1  # the check above has something to compare


@pytest.mark.parametrize("part", ["eta", "chi2", "chi2_df"])
def test_dropping_a_part_of_the_noise_is_detected(monkeypatch, part):
    """The distribution test has power. Without eta (the part of X'e* not explained by the Z_i'e*) the
    covariate's coefficient is too narrow. Without the chi-square part of e*'e*, y* would lie in the
    span of [X, Z] exactly: the refits have no finite optimum (the kernel fails) or sigma is far too
    small. With the chi-square on N - p degrees of freedom (forgetting the ranks of the Z_i'Z_i), sigma
    is too large."""
    original = inference._SlopeSimulator.parts

    def ablated(self, rng, m):
        u, z, w, chi2 = original(self, rng, m)
        if part == "eta":
            return u, z, w * 0.0, chi2
        if part == "chi2":
            return u, z, w, chi2 * 0.0
        return u, z, w, chi2 + rng.chisquare(int(self.keep.sum()), m)

    monkeypatch.setattr(inference._SlopeSimulator, "parts", ablated)
    slow = _rows_bootstrap("covariate", N_REPS, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            broken = inference.bootstrap(_fit("covariate"), n=N_REPS, seed=1, progress=False)
        except np.linalg.LinAlgError:
            assert part == "chi2"
            return
    pvalues = _ks_pvalues(broken, slow)
    column = "x" if part == "eta" else "sigma"
    assert pvalues[column] < 1e-3, pvalues
    if part == "eta":
        assert broken["x"].std() < 0.8 * slow["x"].std()
    elif part == "chi2":
        assert broken["sigma"].median() < 0.5 * slow["sigma"].median()
    else:
        assert broken["sigma"].median() > slow["sigma"].median()


# ---------------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------------


def test_columns_reproducibility_chunks_and_progress(capsys):
    fit = _fit("slope")
    a = inference.bootstrap(fit, n=30, seed=42)
    b = fit.bootstrap(n=30, seed=42)
    c = inference.bootstrap(fit, n=30, seed=43)
    expected = [
        "Intercept",
        "Days",
        "sd_(Intercept)|Subject",
        "cor_Days.(Intercept)|Subject",
        "sd_Days|Subject",
        "sigma",
        *fit.random.theta_names,
    ]
    assert list(a.columns) == expected
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert a.attrs["n"] == 30 and a.attrs["seed"] == 42 and a.attrs["not_converged"] == 0
    # the SDs and correlation follow from theta and sigma as varcorr computes them
    for row in a.head(3).itertuples(index=False):
        theta = np.array(row[-3:])
        t = fit.random.factor(theta)
        cov = row.sigma**2 * t @ t.T
        assert row[2] == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-12)
        assert row[4] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-12)
        assert row[3] == pytest.approx(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]), rel=1e-10)
    chunked = inference.bootstrap(fit, n=30, seed=42, chunk=7, progress=True)
    assert chunked.shape == a.shape
    assert "bootstrap" in capsys.readouterr().err
    again = inference.bootstrap(fit, n=30, seed=42, chunk=7, progress=False)
    pd.testing.assert_frame_equal(chunked, again)  # the same chunks draw the same replicates
    quiet = inference.bootstrap(fit, n=5, seed=1, progress=False)
    assert capsys.readouterr().err == "" and len(quiet) == 5


def test_confint_bootstrap_for_random_slopes():
    fit = _fit("slope")
    reps = _sums_bootstrap("slope", N_REPS, seed=1)
    table = inference.confint(fit, "bootstrap", level=0.9, replicates=reps)
    names = inference.varpar_names(fit) + list(fit.fe_params.index)
    assert list(table.index) == names
    assert table.attrs["method"] == "bootstrap"
    for name in names:
        lo, hi = reps[name].dropna().quantile([0.05, 0.95])
        assert table.loc[name, "lower"] == pytest.approx(lo)
        assert table.loc[name, "upper"] == pytest.approx(hi)
    # the profile interval names its rows the same way, and both contain the estimates
    profile = inference.confint(fit, "profile")
    assert list(profile.index) == names
    assert (table["lower"] < table["upper"]).all()
    est = fit.fe_params
    assert (table.loc[est.index, "lower"] < est).all() and (
        est < table.loc[est.index, "upper"]
    ).all()


# ---------------------------------------------------------------------------------------------------
# anova's bootstrap likelihood-ratio test
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("small_term", ["(1 | Subject)", "(Days || Subject)"])
def test_bootstrap_lrt_from_sums_has_the_distribution_of_row_refits(small_term):
    sleep = load_dataset("sleepstudy")
    small = fit_lmm(sleep, f"Reaction ~ Days + {small_term}", reml=False)
    big = fit_lmm(sleep, "Reaction ~ Days + (Days | Subject)", reml=False)
    idx = inference._nested_columns(small, big)
    assert idx.tolist() == ([0] if small_term == "(1 | Subject)" else [0, 1])
    n = 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = inference._lrt_from_sums(small, big, idx, n, np.random.default_rng(1))
        rng = np.random.default_rng(2)
        slow = []
        for _ in range(n):
            y = inference._simulate_rows(small, rng)
            slow.append(inference._ml_deviance(small, y) - inference._ml_deviance(big, y))
    assert scipy.stats.ks_2samp(fast, np.array(slow)).pvalue > 1e-3
    assert (fast > -1e-6).all()  # the larger model's deviance is never above the smaller's
    # Pr(boot) counts the replicates at least as large as the observed statistic
    table = anova(small, big, bootstrap=n, seed=1)
    observed = table["Chisq"].iloc[1]
    expected = (1 + np.sum(fast >= observed)) / (1 + n)
    assert table["Pr(boot)"].iloc[1] == pytest.approx(expected)


def test_nested_columns_only_for_models_the_sums_can_serve():
    sleep = load_dataset("sleepstudy")
    intercept = fit_lmm(sleep, "Reaction ~ Days + (1 | Subject)", reml=False)
    slope = fit_lmm(sleep, "Reaction ~ Days + (Days | Subject)", reml=False)
    slope_only = fit_lmm(sleep, "Reaction ~ Days + (0 + Days | Subject)", reml=False)
    other_fixed = fit_lmm(sleep, "Reaction ~ 1 + (Days | Subject)", reml=False)
    assert inference._nested_columns(intercept, slope).tolist() == [0]
    assert inference._nested_columns(slope_only, slope).tolist() == [1]
    assert inference._nested_columns(slope, intercept) is None  # the larger model has no slopes
    assert inference._nested_columns(other_fixed, slope) is None  # other fixed effects: rows
