"""The numbers and claims in the prose of notebooks 00, 01 and 02 hold for the data they describe.

The notebooks print what they compute; their markdown still quotes the question's numbers, counts of rows
and clusters, and words such as "about thirty-fold". These tests read the markdown, find every such number,
and recompute it from the data, so an edit to the data or the prose that breaks one fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from helpers import fit_lmm, fit_ols, load_dataset
from helpers.decompose import between_estimator, within_between_blend, within_estimator
from helpers.seed import seed_question, stim_effect_heterogeneity

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["00_question", "01_pooled_ols", "02_no_pooling_fixed_effects"]
SLOPE = "condition[T.stim]"


def _prose(name: str) -> str:
    """The markdown of a notebook without its References, code blocks and inline code."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.split(r"^#+\s*References", text, flags=re.M)[0]
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    return re.sub(r"`[^`]*`", " ", text)


@pytest.fixture(scope="module")
def seed():
    df = seed_question()
    ols = fit_ols(df, "pSHP2 ~ condition", group="cluster")
    lmm = fit_lmm(df, "pSHP2 ~ condition + (1 | cluster)")
    codes = df["cluster"].cat.codes.to_numpy()
    x = (df["condition"] == "stim").to_numpy(dtype=float)
    y = df["pSHP2"].to_numpy()
    return {"df": df, "ols": ols, "lmm": lmm, "codes": codes, "x": x, "y": y}


@pytest.fixture(scope="module")
def prose():
    return {name: _prose(name) for name in NAMES}


def _decimals(literal: str) -> int:
    return len(literal.split(".")[1]) if "." in literal else 0


# Every decimal number the prose may quote, and the fitted quantity it stands for.
QUOTED = {
    "0.584": lambda s: s["ols"].params["Intercept"],
    "0.0019": lambda s: s["ols"].bse["Intercept"],
    "-0.106": lambda s: s["ols"].params[SLOPE],
    "0.719": lambda s: s["lmm"].fe_params["Intercept"],
    "0.063": lambda s: s["lmm"].bse["Intercept"],
    "-0.098": lambda s: s["lmm"].fe_params[SLOPE],
    "-0.022": lambda s: s["lmm"].corr_fe.loc["Intercept", SLOPE],
}


@pytest.mark.parametrize("name", NAMES)
def test_every_decimal_in_the_prose_is_a_checked_fit_value(name, prose, seed):
    found = re.findall(r"(?<![\w.§])-?\d+\.\d+(?!\w)(?!\.\d)", prose[name])
    assert found or name != "00_question", "the question's numbers should appear in notebook 00"
    unknown = sorted(set(found) - set(QUOTED))
    assert not unknown, f"{name} quotes {unknown}: compute them in a cell, or add a check here"
    for literal in found:
        value = QUOTED[literal](seed)
        assert round(value, _decimals(literal)) == pytest.approx(float(literal), abs=1e-12), (
            f"{name} says {literal}, the fit gives {value:.6f}"
        )


@pytest.mark.parametrize("name", NAMES)
def test_row_and_cluster_counts(name, prose, seed):
    text = prose[name]
    n_obs, n_groups = seed["lmm"].n_obs, seed["lmm"].n_groups
    for literal in re.findall(r"\b\d{1,3}(?:,\d{3})+\b", text):
        assert int(literal.replace(",", "")) == n_obs, f"{name}: {literal} rows?"
    pattern = r"\b(\d+)(?:-| )(?:clusters?|intercepts|slopes|answers|numbers|score sums)\b"
    counts = re.findall(pattern, text)
    assert counts, f"{name} never names the number of clusters"
    assert {int(c) for c in counts} == {n_groups}


def test_radon_and_sleepstudy_counts(prose):
    text = prose["02_no_pooling_fixed_effects"]
    radon = load_dataset("radon")
    homes, counties = re.search(r"(\d+) homes in (\d+) counties", text).groups()
    assert (int(homes), int(counties)) == (len(radon), radon["county"].nunique())
    first, last = re.search(r"days (\d+) to (\d+)", text).groups()
    days = load_dataset("sleepstudy")["Days"]
    assert (int(first), int(last)) == (days.min(), days.max())


def test_worded_ratios(prose, seed):
    """00: "over thirty times"; 01: "about thirty-fold" and "a squared ratio of about a thousand"."""
    ratio = seed["lmm"].bse["Intercept"] / seed["ols"].bse["Intercept"]
    assert "over thirty times" in prose["00_question"]
    assert ratio > 30
    assert "about thirty-fold" in prose["01_pooled_ols"]
    assert 25 < ratio < 35
    assert re.search(r"squared ratio of about\s+a\s+thousand", prose["01_pooled_ols"])
    assert 750 < ratio**2 < 1500


def test_question_claims_in_00(seed):
    ols, lmm = seed["ols"], seed["lmm"]
    shift = (lmm.fe_params - ols.params) / ols.bse
    assert abs(shift["Intercept"]) > 10  # "moves by many lm standard errors"
    assert 2 < abs(shift[SLOPE]) < 10  # "and the slope by several"
    assert lmm.bse[SLOPE] < ols.bse[SLOPE]  # "barely moves, and even shrinks"
    df = seed["df"]
    # "the big clusters sit lower on average"
    unstim = df[df["condition"] == "unstim"].groupby("cluster", observed=True)["pSHP2"]
    assert np.corrcoef(np.log(unstim.size()), unstim.mean())[0, 1] < 0
    # "the lmer intercept stays near the plain mean" of the cluster means, for unstim and for stim
    for level, target in [("unstim", lmm.fe_params["Intercept"]), ("stim", lmm.fe_params.sum())]:
        part = df[df["condition"] == level]
        means = part.groupby("cluster", observed=True)["pSHP2"].mean()
        rows = part.groupby("cluster", observed=True).size()
        plain, weighted = means.mean(), np.average(means, weights=rows)
        assert abs(plain - target) < 0.1 * abs(weighted - target)


def _moment_icc(seed):
    """01 section 3: the equal-weight moment estimate of the ICC from lm's residuals."""
    codes, resid = seed["codes"], seed["ols"].resid
    counts = np.bincount(codes)
    means = np.bincount(codes, weights=resid) / counts
    msw = ((resid - means[codes]) ** 2).sum() / (len(resid) - len(counts))
    sigma2_b = means.var(ddof=1) - msw * np.mean(1 / counts)
    return sigma2_b / (sigma2_b + msw)


def test_moment_icc_agrees_with_lmer(seed):
    """01 exercise 5: the moment estimate and REML "agree closely"; the size-weighted one does not."""
    lmm = seed["lmm"]
    icc = _moment_icc(seed)
    assert icc == pytest.approx(lmm.sigma2_group / (lmm.sigma2_group + lmm.sigma2_resid), rel=0.01)


def test_design_effect_claims_in_01(seed):
    ols, lmm, codes, x = seed["ols"], seed["lmm"], seed["codes"], seed["x"]
    icc = _moment_icc(seed)
    m = np.bincount(codes, weights=1 - x)
    balanced = 1 + (m.mean() - 1) * icc
    unbalanced = 1 + ((m**2).sum() / m.sum() - 1) * icc
    lmer_ratio2 = (lmm.bse["Intercept"] / ols.bse["Intercept"]) ** 2
    robust_ratio2 = (ols.bse_cluster["Intercept"] / ols.bse["Intercept"]) ** 2
    assert lmer_ratio2 == pytest.approx(balanced, rel=0.05)
    assert 1 / 1.5 < robust_ratio2 / unbalanced < 1.5  # "scatters around it"
    assert ols.bse_cluster["Intercept"] > lmm.bse["Intercept"]  # "as the intercept's does here"
    slope_ratio2 = (lmm.bse[SLOPE] / ols.bse[SLOPE]) ** 2
    assert slope_ratio2 == pytest.approx(1 - icc, rel=0.02)  # "near 1 - rho"
    # the headline table: the all-rows design effect of section 4 is "roughly twice the second row"
    n = np.bincount(codes)
    rows_deff = 1 + ((n**2).sum() / n.sum() - 1) * icc
    assert 1.7 < rows_deff / unbalanced < 2.3
    # exercise 2: the effective sample size of lmer's intercept is about J / ICC
    assert ols.sigma2_resid / lmm.bse["Intercept"] ** 2 == pytest.approx(
        lmm.n_groups / icc, rel=0.05
    )


def test_blend_identity_and_claims_in_02(seed):
    ols, lmm, codes, x, y = seed["ols"], seed["lmm"], seed["codes"], seed["x"], seed["y"]
    n = np.bincount(codes).astype(float)
    x_bar, y_bar = np.bincount(codes, weights=x) / n, np.bincount(codes, weights=y) / n
    x_dev, y_dev = x - x_bar[codes], y - y_bar[codes]
    w_xx = x_dev @ x_dev
    beta_w = (x_dev @ y_dev) / w_xx
    xc, yc = x_bar - np.average(x_bar, weights=n), y_bar - np.average(y_bar, weights=n)
    b_xx = (n * xc**2).sum()
    beta_b = (n * xc * yc).sum() / b_xx
    blend = (w_xx * beta_w + b_xx * beta_b) / (w_xx + b_xx)
    assert abs(blend - ols.params[SLOPE]) < 1e-10
    assert w_xx / (w_xx + b_xx) > 0.99  # "close to 1"
    # "lmer's slope is almost exactly the within slope"
    assert abs(lmm.fe_params[SLOPE] - beta_w) < 0.01 * abs(ols.params[SLOPE] - beta_w)
    names = list(lmm.fe_params.index)
    assert within_estimator(lmm.stats, names)[SLOPE] == pytest.approx(beta_w, rel=1e-10)
    assert within_between_blend(lmm.stats, lmm.theta, names).weight_within.loc[SLOPE, SLOPE] > 0.999


def test_no_pooling_heterogeneity_claims_in_02(seed):
    """Intercepts: Q enormous; slopes: Q "still well above its degrees of freedom"."""
    df = seed["df"]
    rows = []
    for _, part in df.groupby("cluster", observed=True):
        fit = fit_ols(part, "pSHP2 ~ condition")
        rows.append([*fit.params, *fit.bse])
    est = pd.DataFrame(rows, columns=["a", "b", "se_a", "se_b"])
    dof = len(est) - 1
    for term, se, floor in [("a", "se_a", 100), ("b", "se_b", 2)]:
        w = 1 / est[se] ** 2
        q = (w * (est[term] - np.average(est[term], weights=w)) ** 2).sum()
        assert q / dof > floor, (term, q / dof)


def test_radon_claims_in_02():
    radon = load_dataset("radon")
    lmm = fit_lmm(radon, "log_radon ~ floor + (1 | county)")
    names = list(lmm.fe_params.index)
    # "the mixed model does not sit at the within slope"
    assert (
        within_between_blend(lmm.stats, lmm.theta, names).weight_within.loc["floor", "floor"] < 0.95
    )
    # "weighted equally and weighted by rows ... give very different between slopes"
    equal = between_estimator(lmm.stats, names)["floor"]
    by_rows = within_between_blend(lmm.stats, 0.0, names).beta_between["floor"]
    assert abs(equal - by_rows) > 0.2
    # sleepstudy: every subject has the same mean day, so B_xx = 0
    sleep = load_dataset("sleepstudy")
    assert sleep.groupby("Subject", observed=True)["Days"].mean().nunique() == 1


def test_honest_shift_claims(prose, seed):
    """01: the moves are "dozens" of naive SEs but "of the order of one" cluster-robust SE."""
    ols, lmm = seed["ols"], seed["lmm"]
    shift = lmm.fe_params - ols.params
    assert "jumped by dozens" in prose["01_pooled_ols"]
    assert abs(shift["Intercept"] / ols.bse["Intercept"]) > 24
    assert (shift / ols.bse_cluster).abs().between(0.5, 2.0).all()


def test_intercept_degrees_of_freedom_claim(prose, seed):
    """00: a test of the intercept has "about J - 1 degrees of freedom, not N - 2"."""
    assert re.search(r"about \$J - 1\$ degrees of freedom", prose["00_question"])
    lmm = seed["lmm"]
    df_intercept = lmm.satterthwaite_tests().loc["Intercept", "df"]
    assert abs(df_intercept - (lmm.n_groups - 1)) < 1.0


def test_correlation_of_fixed_effects_claims_in_00(seed):
    """00: under lm the correlation is -sqrt(N_stim / N) exactly; under lmer it is close to 0."""
    ols, lmm, x = seed["ols"], seed["lmm"], seed["x"]
    cov = ols.cov_params.to_numpy()
    corr_lm = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert corr_lm == pytest.approx(-np.sqrt(x.mean()), rel=1e-12)
    assert round(corr_lm, 3) == -0.744
    corr_lmer = lmm.corr_fe.loc["Intercept", SLOPE]
    assert abs(corr_lmer) < 0.05 and round(corr_lmer, 3) == -0.022


def test_stim_effect_heterogeneity_caveat(seed, prose):
    """00, 01: Q "far above its degrees of freedom"; the meta-analytic SE "several times larger"."""
    het = stim_effect_heterogeneity(seed["df"])
    assert het["df"] == seed["lmm"].n_groups - 1
    assert het["q"] > 3 * het["df"] and het["p_value"] < 1e-6
    assert 2 < het["se_random"] / seed["lmm"].bse[SLOPE] < 4
    # the per-cluster slopes and SEs are those of 24 separate lm fits
    first = seed["df"][seed["df"]["cluster"] == "donor01"]
    own = fit_ols(first, "pSHP2 ~ condition")
    assert het["slopes"].iloc[0] == pytest.approx(own.params[SLOPE], rel=1e-10)
    assert het["ses"].iloc[0] == pytest.approx(own.bse[SLOPE], rel=1e-10)
    for name in ("00_question", "01_pooled_ols"):
        text = " ".join(prose[name].lower().split())
        assert "(08_random_slopes.ipynb)" in text
    assert "far above its degrees of freedom" in prose["00_question"]


def test_short_answer_on_the_landing_page(seed):
    """index.md's short answer quotes only fit values, each to its printed digits."""
    text = (NOTEBOOKS.parent / "index.md").read_text()
    section = text.split("## The short answer")[1].split("\n## ")[0]
    section = re.sub(r"`[^`]*`", " ", section)
    found = re.findall(r"(?<![\w.§])[-−]?\d+\.\d+(?!\w)(?!\.\d)", section)
    assert found
    for literal in found:
        literal = literal.replace("−", "-")
        assert literal in QUOTED, literal
        value = QUOTED[literal](seed)
        assert round(value, _decimals(literal)) == pytest.approx(float(literal), abs=1e-12)


def test_intercept_row_weight_in_02(seed):
    """02: the intercept row's weight on the within slope is minus the overall stim share times w."""
    lmm, codes, x = seed["lmm"], seed["codes"], seed["x"]
    names = list(lmm.fe_params.index)
    n = np.bincount(codes).astype(float)
    x_bar = np.bincount(codes, weights=x) / n
    w_xx = ((x - x_bar[codes]) ** 2).sum()
    b_xx = (n * (x_bar - np.average(x_bar, weights=n)) ** 2).sum()
    weight = within_between_blend(lmm.stats, 0.0, names).weight_within.loc["Intercept", SLOPE]
    assert weight == pytest.approx(-x.mean() * w_xx / (w_xx + b_xx), rel=1e-9)
