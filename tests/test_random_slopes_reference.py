"""The random-slope reference values are complete and internally consistent.

``tests/reference/random_slopes_reference.json`` (lme4 and lmerTest, written by
``tests/reference/random_slopes_reference.R``) and ``tests/reference/random_slopes_statsmodels.json``
(statsmodels' MixedLM, written by ``tests/reference/random_slopes_statsmodels.py``) are the values the
random-slope implementation will be tested against. These tests check only the files themselves: that
every fit has every field, that the fields agree with one another (theta, VarCorr, sigma, the criterion,
logLik, the conditional modes and variances, the comparisons and intervals), that sleepstudy matches the
values pinned in the project's notes to their printed digits, and that the committed data files are the
ones R read. No package code is tested here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REF = json.loads((REFERENCE_DIR / "random_slopes_reference.json").read_text())
SM = json.loads((REFERENCE_DIR / "random_slopes_statsmodels.json").read_text())
FITS = REF["fits"]
FIT_CASES = [(key, method) for key in FITS for method in ("reml", "ml")]
FIT_IDS = [f"{key}-{method}" for key, method in FIT_CASES]

MODELS = {
    "sleepstudy_slope": "Reaction ~ Days + (Days | Subject)",
    "sleepstudy_uncorrelated": "Reaction ~ Days + (Days || Subject)",
    "sleepstudy_two_terms": "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
    "sleepstudy_slope_only": "Reaction ~ Days + (0 + Days | Subject)",
    "sleepstudy_intercept": "Reaction ~ Days + (1 | Subject)",
    "three_terms": "y ~ x1 + x2 + (1 + x1 + x2 | g)",
    "small_clusters": "y ~ x + (1 + x | g)",
    "singular": "y ~ x + (1 + x | g)",
    "singular_uncorrelated": "y ~ x + (x || g)",
    "question_slopes": "pSHP2 ~ condition + (1 + condition | cluster)",
    "question_slopes_intercept": "pSHP2 ~ condition + (1 | cluster)",
    "seed_question": "pSHP2 ~ condition + (1 + condition | cluster)",
    "seed_question_intercept": "pSHP2 ~ condition + (1 | cluster)",
}
FIT_FIELDS = {
    "formula", "REML", "winner", "spread", "default_minus_best", "optimisers", "theta",
    "theta_lower", "fixef", "se", "vcov", "varcorr", "criterion_name", "criterion", "devcomp_cmp",
    "loglik", "loglik_df", "AIC", "BIC", "sigma", "singular", "n_obs", "n_groups", "ranef",
}  # fmt: skip
OPTIMISERS = ["default", "bobyqa", "Nelder_Mead", "nloptwrap"]
REL = 1e-10


def _close(a: float, b: float, rtol: float = REL, atol: float = 1e-12) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def _blocks(fit: dict) -> list[tuple[str, list[str]]]:
    """The random-effect terms, grouped as lme4 groups them: (VarCorr grp, its variance names)."""
    vc = fit["varcorr"]
    out: dict[str, list[str]] = {}
    for grp, var1, var2 in zip(vc["grp"], vc["var1"], vc["var2"], strict=True):
        if grp != "Residual" and var2 is None:
            out.setdefault(grp, []).append(var1)
    return list(out.items())


def _relative_cov(fit: dict) -> list[np.ndarray]:
    """T T' for each block, from theta (lower triangle, column by column)."""
    theta = list(fit["theta"].values())
    out, pos = [], 0
    for _, names in _blocks(fit):
        q = len(names)
        t = np.zeros((q, q))
        for j in range(q):
            for i in range(j, q):
                t[i, j] = theta[pos]
                pos += 1
        out.append(t @ t.T)
    assert pos == len(theta)
    return out


# ---- structure ---------------------------------------------------------------------------------------
def test_top_level_and_models():
    assert {"versions", "datasets", "fits", "anova", "confint", "predict"} <= set(REF)
    assert {"R", "lme4", "lmerTest", "Matrix"} <= set(REF["versions"])
    assert {k: v["formula"] for k, v in FITS.items()} == MODELS
    assert set(REF["anova"]) == {"sleepstudy", "question_slopes", "seed_question"}
    assert set(REF["confint"]) == {"sleepstudy_slope", "sleepstudy_uncorrelated"}
    assert REF["datasets"]["sleepstudy"]["identical_to_package_copy"] is True


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_fields(key, method):
    fit = FITS[key][method]
    assert FIT_FIELDS <= set(fit)
    assert fit["REML"] is (method == "reml")
    assert fit["formula"] == MODELS[key]
    assert ("satterthwaite" in fit) is (method == "reml")
    assert fit["criterion_name"] == ("REML" if method == "reml" else "deviance")
    assert list(fit["optimisers"]) == OPTIMISERS


# ---- theta and VarCorr ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_theta_length_and_bounds(key, method):
    fit = FITS[key][method]
    sizes = [len(names) for _, names in _blocks(fit)]
    assert len(fit["theta"]) == sum(q * (q + 1) // 2 for q in sizes)
    # lower bounds: 0 on the diagonal of each block, -Inf (written as null) below it
    expected = []
    for q in sizes:
        for j in range(q):
            expected += [0] + [None] * (q - j - 1)
    assert fit["theta_lower"] == expected
    for value, lower in zip(fit["theta"].values(), expected, strict=True):
        assert lower is None or value >= 0


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_varcorr_matches_theta_and_sigma(key, method):
    fit = FITS[key][method]
    vc = fit["varcorr"]
    rows = list(zip(vc["grp"], vc["var1"], vc["var2"], vc["vcov"], vc["sdcor"], strict=True))
    # lme4's order: per grp, variances then covariances; Residual last
    assert rows[-1][:3] == ("Residual", None, None)
    assert _close(rows[-1][3], fit["sigma"] ** 2)
    assert _close(rows[-1][4], fit["sigma"])
    s2 = fit["sigma"] ** 2
    for (grp, names), rel in zip(_blocks(fit), _relative_cov(fit), strict=True):
        block = [r for r in rows if r[0] == grp]
        q = len(names)
        assert [r[2] for r in block[:q]] == [None] * q
        assert all(r[2] is not None for r in block[q:])
        assert len(block) == q + q * (q - 1) // 2
        sd = {}
        for _, v1, v2, vcov, sdcor in block:
            if v2 is None:
                i = names.index(v1)
                assert _close(vcov, s2 * rel[i, i], atol=1e-12 * s2)
                assert _close(sdcor, math.sqrt(vcov))
                sd[v1] = sdcor
        for _, v1, v2, vcov, sdcor in block:
            if v2 is not None:
                i, j = names.index(v1), names.index(v2)
                assert i < j
                assert _close(vcov, s2 * rel[i, j], rtol=1e-8, atol=1e-12 * s2)
                if sd[v1] > 0 and sd[v2] > 0:
                    assert _close(sdcor, vcov / (sd[v1] * sd[v2]), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_singular_flag_is_lme4s_rule(key, method):
    # lme4's isSingular: some theta with lower bound 0 is below 1e-4
    fit = FITS[key][method]
    diagonal = [
        v for v, lo in zip(fit["theta"].values(), fit["theta_lower"], strict=True) if lo == 0
    ]
    assert fit["singular"] is (min(diagonal) < 1e-4)


def test_singular_cases_are_singular():
    for key in ("singular", "singular_uncorrelated"):
        for method in ("reml", "ml"):
            assert FITS[key][method]["singular"] is True
    for key in FITS:
        if not key.startswith("singular"):
            assert FITS[key]["reml"]["singular"] is False


# ---- criterion, likelihood, fixed effects --------------------------------------------------------------
@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_criterion_and_loglik(key, method):
    fit = FITS[key][method]
    # lme4: logLik of a REML fit is -REMLcrit / 2; of an ML fit, -deviance / 2
    assert _close(fit["criterion"], -2 * fit["loglik"])
    cmp = fit["devcomp_cmp"]
    assert _close(fit["criterion"], cmp["REML"] if method == "reml" else cmp["dev"])
    df = fit["loglik_df"]
    assert df == len(fit["fixef"]) + len(fit["theta"]) + 1
    assert _close(fit["AIC"], -2 * fit["loglik"] + 2 * df)
    assert _close(fit["BIC"], -2 * fit["loglik"] + math.log(fit["n_obs"]) * df)
    assert _close(fit["sigma"], cmp["sigmaREML"] if method == "reml" else cmp["sigmaML"])


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_fixed_effects_se_vcov(key, method):
    fit = FITS[key][method]
    names = list(fit["fixef"])
    assert list(fit["se"]) == names
    assert fit["vcov"]["names"] == names
    v = np.array(fit["vcov"]["rows"])
    assert v.shape == (len(names), len(names))
    np.testing.assert_allclose(v, v.T, rtol=1e-12, atol=0)
    assert np.all(np.linalg.eigvalsh(v) > 0)
    np.testing.assert_allclose(np.sqrt(np.diag(v)), list(fit["se"].values()), rtol=1e-12)
    if method == "reml":
        sat = fit["satterthwaite"]
        assert sat["terms"] == names
        np.testing.assert_allclose(sat["estimate"], list(fit["fixef"].values()), rtol=1e-12)
        np.testing.assert_allclose(sat["se"], list(fit["se"].values()), rtol=1e-12)
        t = np.array(sat["estimate"]) / np.array(sat["se"])
        np.testing.assert_allclose(sat["t"], t, rtol=1e-12)
        p = 2 * stats.t.sf(np.abs(t), np.array(sat["df"]))
        np.testing.assert_allclose(sat["p"], p, rtol=1e-6, atol=1e-300)
        assert all(d > 0 for d in sat["df"])


# ---- polishing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_winner_is_the_lowest_criterion(key, method):
    fit = FITS[key][method]
    crit = {k: v["criterion"] for k, v in fit["optimisers"].items()}
    # (ties closer than the 15 digits written can print either way)
    assert crit[fit["winner"]] <= min(crit.values()) * (1 + 1e-14)
    assert _close(fit["criterion"], crit[fit["winner"]], rtol=1e-12)
    digits = 1e-13 * abs(fit["criterion"])  # the criteria are written with 15 significant digits
    assert _close(fit["spread"], max(crit.values()) - min(crit.values()), rtol=0, atol=digits)
    assert fit["default_minus_best"] >= 0
    np.testing.assert_allclose(
        fit["optimisers"][fit["winner"]]["theta"], list(fit["theta"].values()), rtol=1e-12
    )
    # every optimiser found the same optimum, up to its stopping rule
    assert fit["spread"] < 1e-5


# ---- conditional modes and variances ----------------------------------------------------------------
@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_ranef(key, method):
    fit = FITS[key][method]
    re = fit["ranef"]
    n_groups = list(fit["n_groups"].values())
    assert len(n_groups) == 1 and len(re["levels"]) == n_groups[0]
    assert re["group"] == next(iter(fit["n_groups"]))
    terms = [name for _, names in _blocks(fit) for name in names]
    assert re["terms"] == terms
    assert list(re["modes"]) == terms and list(re["condsd"]) == terms
    cov = np.array(re["condcov"])
    q = len(terms)
    assert cov.shape == (len(re["levels"]), q, q)
    np.testing.assert_allclose(cov, np.transpose(cov, (0, 2, 1)), rtol=1e-10, atol=1e-14)
    for k, term in enumerate(terms):
        assert len(re["modes"][term]) == len(re["levels"])
        np.testing.assert_allclose(
            np.sqrt(np.maximum(cov[:, k, k], 0)), re["condsd"][term], rtol=1e-8, atol=1e-12
        )
    assert np.all(np.linalg.eigvalsh(cov) > -1e-10 * np.abs(cov).max())


# ---- pinned sleepstudy values (the project's notes, lme4 1.1 on R 4.2.2) -------------------------------
def _printed(value: float, pinned: float, decimals: int) -> bool:
    return abs(value - pinned) <= 0.5 * 10.0**-decimals + 1e-12


def _sd(fit: dict, var1: str) -> float:
    vc = fit["varcorr"]
    hits = [
        s
        for v1, v2, s in zip(vc["var1"], vc["var2"], vc["sdcor"], strict=True)
        if v1 == var1 and v2 is None
    ]
    assert len(hits) == 1
    return hits[0]


def test_sleepstudy_slope_matches_the_notes():
    fit = FITS["sleepstudy_slope"]["reml"]
    assert _printed(fit["criterion"], 1743.628, 3)
    assert _printed(fit["fixef"]["(Intercept)"], 251.4051, 4)
    assert _printed(fit["fixef"]["Days"], 10.4673, 4)
    assert _printed(fit["se"]["(Intercept)"], 6.8246, 4)
    assert _printed(fit["se"]["Days"], 1.5458, 4)
    assert _printed(_sd(fit, "(Intercept)"), 24.740, 3)
    assert _printed(_sd(fit, "Days"), 5.922, 3)
    assert _printed(fit["varcorr"]["sdcor"][2], 0.066, 3)
    assert _printed(fit["sigma"], 25.592, 3)
    for value, pinned in zip(fit["theta"].values(), [0.96673, 0.01517, 0.23091], strict=True):
        assert _printed(value, pinned, 5)
    assert list(fit["theta"]) == [
        "Subject.(Intercept)",
        "Subject.Days.(Intercept)",
        "Subject.Days",
    ]


def test_sleepstudy_uncorrelated_matches_the_notes():
    fit = FITS["sleepstudy_uncorrelated"]["reml"]
    assert _printed(fit["criterion"], 1743.669, 3)
    assert _printed(_sd(fit, "(Intercept)"), 25.051, 3)
    assert _printed(_sd(fit, "Days"), 5.988, 3)
    assert _printed(fit["sigma"], 25.565, 3)
    assert fit["varcorr"]["grp"] == ["Subject", "Subject.1", "Residual"]


def test_sleepstudy_intercept_matches_the_notes():
    fit = FITS["sleepstudy_intercept"]["reml"]
    assert _printed(fit["criterion"], 1786.465, 3)
    assert _printed(fit["fixef"]["(Intercept)"], 251.40510, 5)
    assert _printed(fit["se"]["(Intercept)"], 9.7467163, 7)
    assert _printed(fit["se"]["Days"], 0.8042214, 7)
    assert _printed(_sd(fit, "(Intercept)"), 37.124, 3)
    assert _printed(fit["sigma"], 30.991, 3)


def test_two_spellings_of_the_uncorrelated_model_agree():
    for method in ("reml", "ml"):
        a = FITS["sleepstudy_uncorrelated"][method]
        b = FITS["sleepstudy_two_terms"][method]
        assert _close(a["criterion"], b["criterion"], rtol=1e-9)
        np.testing.assert_allclose(list(a["theta"].values()), list(b["theta"].values()), rtol=1e-5)
        assert a["varcorr"]["var1"] == b["varcorr"]["var1"]


def test_sleepstudy_balanced_fixed_effects():
    # balanced data: every sleepstudy model gives the same fixed effects as lm
    for key in FITS:
        if key.startswith("sleepstudy"):
            for method in ("reml", "ml"):
                fe = FITS[key][method]["fixef"]
                assert _close(fe["(Intercept)"], 251.405104848485, rtol=1e-9)
                assert _close(fe["Days"], 10.4672859595960, rtol=1e-9)


# ---- data --------------------------------------------------------------------------------------------
def test_data_sizes():
    ds = REF["datasets"]
    for entry in FITS.values():
        data = ds[entry["dataset"]]
        for method in ("reml", "ml"):
            fit = entry[method]
            if entry["dataset"] == "three_terms":
                # rows with a missing x2 or y are dropped, and one cluster loses all its rows
                assert fit["n_obs"] < data["n_rows"]
                assert list(fit["n_groups"].values()) == [data["n_groups"] - 1]
            else:
                assert fit["n_obs"] == data["n_rows"]
                assert list(fit["n_groups"].values()) == [data["n_groups"]]
    assert ds["small_clusters"]["n_groups"] == 2000
    assert ds["singular"]["n_groups"] == 5
    for name in ("question_slopes", "seed_question"):
        assert ds[name]["n_rows"] == 326_362 and ds[name]["n_groups"] == 24


@pytest.mark.parametrize("name", ["three_terms", "small_clusters", "singular"])
def test_committed_csv_is_the_one_r_read(name):
    path = REFERENCE_DIR / f"random_slopes_{name}.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == REF["datasets"][name]["sha256"]
    assert path.stat().st_size < 1_000_000


def test_generated_question_slopes_is_the_one_r_read():
    spec = importlib.util.spec_from_file_location(
        "random_slopes_data", REFERENCE_DIR / "random_slopes_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.csv_text(module.question_slopes())
    sha = hashlib.sha256(text.encode()).hexdigest()
    assert sha == REF["datasets"]["question_slopes"]["sha256"]


# ---- model comparison ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sleepstudy", "question_slopes", "seed_question"])
def test_anova(name):
    entry = REF["anova"][name]
    small, big = entry["models"]
    a = entry["anova"]
    n = FITS[big]["ml"]["n_obs"]
    for k in range(2):
        assert _close(a["deviance"][k], -2 * a["logLik"][k])
        assert _close(a["AIC"][k], a["deviance"][k] + 2 * a["npar"][k])
        assert _close(a["BIC"][k], a["deviance"][k] + math.log(n) * a["npar"][k])
    assert a["Chisq"][0] is None and a["Df"][0] is None and a["p"][0] is None
    assert a["npar"] == [FITS[small]["ml"]["loglik_df"], FITS[big]["ml"]["loglik_df"]]
    assert a["Df"][1] == a["npar"][1] - a["npar"][0] == 2
    assert _close(a["Chisq"][1], a["deviance"][0] - a["deviance"][1], rtol=1e-9)
    assert _close(a["p"][1], stats.chi2.sf(a["Chisq"][1], 2), rtol=1e-6, atol=1e-300)
    # anova's refits use lme4's default optimiser; the polished ML fits are at most a little lower
    lrt = entry["polished_lrt"]
    assert lrt["deviance"] == [FITS[small]["ml"]["criterion"], FITS[big]["ml"]["criterion"]]
    for k in range(2):
        assert lrt["deviance"][k] <= a["deviance"][k] + 1e-9
        assert a["deviance"][k] - lrt["deviance"][k] < 1e-5
    assert _close(lrt["chisq"], lrt["deviance"][0] - lrt["deviance"][1])
    assert lrt["df"] == 2
    assert _close(lrt["p_chisq"], stats.chi2.sf(lrt["chisq"], 2), rtol=1e-6, atol=1e-300)
    mixture = 0.5 * stats.chi2.sf(lrt["chisq"], 1) + 0.5 * stats.chi2.sf(lrt["chisq"], 2)
    assert _close(lrt["p_mixture_chisq1_chisq2"], mixture, rtol=1e-6, atol=1e-300)
    assert lrt["p_mixture_chisq1_chisq2"] < lrt["p_chisq"]


# ---- intervals and predictions -------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["sleepstudy_slope", "sleepstudy_uncorrelated"])
@pytest.mark.parametrize("method", ["reml", "ml"])
def test_confint(key, method):
    fit = FITS[key][method]
    ci = REF["confint"][key][method]
    z = stats.norm.ppf(0.975)
    wald = ci["wald"]
    for name, lo, hi in zip(wald["names"], wald["lower"], wald["upper"], strict=True):
        if name in fit["fixef"]:
            assert _close((lo + hi) / 2, fit["fixef"][name], rtol=1e-12)
            assert _close((hi - lo) / 2, z * fit["se"][name], rtol=1e-9)
        else:
            assert lo is None and hi is None  # lme4 gives no Wald interval for variance parameters
    prof = ci["profile"]
    assert prof["names"] == wald["names"]
    vc = fit["varcorr"]
    estimate = dict(fit["fixef"])
    estimate["sigma"] = fit["sigma"]
    for grp, v1, v2, sdcor in zip(vc["grp"], vc["var1"], vc["var2"], vc["sdcor"], strict=True):
        if grp == "Residual":
            continue
        base = grp.split(".")[0]
        label = f"sd_{v1}|{base}" if v2 is None else f"cor_{v2}.{v1}|{base}"
        estimate[label] = sdcor
    assert set(prof["names"]) == set(estimate)
    for name, lo, hi in zip(prof["names"], prof["lower"], prof["upper"], strict=True):
        assert lo < estimate[name] < hi


def test_predict():
    entry = REF["predict"]
    assert entry["model"] == "sleepstudy_slope"
    days = np.arange(10.0)  # the first 10 rows: subject 308, days 0 to 9
    for method in ("reml", "ml"):
        fit = FITS["sleepstudy_slope"][method]
        values = entry["values"][method]
        fe = fit["fixef"]
        fixed = fe["(Intercept)"] + fe["Days"] * days
        np.testing.assert_allclose(values["fixed_only"], fixed, rtol=1e-12)
        re = fit["ranef"]
        j = re["levels"].index("308")
        with_re = fixed + re["modes"]["(Intercept)"][j] + re["modes"]["Days"][j] * days
        np.testing.assert_allclose(values["with_random"], with_re, rtol=1e-10)


# ---- statsmodels beside lme4 ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["question_slopes", "seed_question"])
def test_statsmodels_record(name):
    sm = SM["fits"][name]
    fit = FITS[name]["reml"]
    assert {"statsmodels", "lme4"} <= set(SM["versions"])
    assert SM["versions"]["lme4"] == REF["versions"]["lme4"]
    assert sm["sha256"] == REF["datasets"][name]["sha256"]
    assert isinstance(sm["converged"], bool)
    assert len(sm["fe_params"]) == len(sm["bse_fe"]) == 2
    assert sm["lme4"]["fe_params"] == list(fit["fixef"].values())
    assert sm["lme4"]["se"] == list(fit["se"].values())
    assert sm["lme4"]["criterion"] == fit["criterion"]
    # statsmodels' profiled REML log-likelihood is lme4's criterion on the same scale
    assert abs(sm["minus_2_loglike_at_lme4"] - fit["criterion"]) < 1e-5
    higher = (
        "lme4"
        if sm["profiled_loglike_at_lme4"] > sm["profiled_loglike_at_statsmodels"]
        else "statsmodels"
    )
    assert sm["higher_loglike"] == higher
