"""The claims notebook 06's prose makes about its computed numbers, checked so they cannot go stale.

Each test recomputes what the notebook computes (same data, same seed) and checks the sentence that
describes it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from helpers.data import load_dataset, seed_question
from helpers.fit import fit_lmm, fit_ols
from helpers.inference import bootstrap, confint, likelihood_profile
from helpers.inference import satterthwaite_tests as satterthwaite
from helpers.plots import plot_bootstrap_scatter, plot_profile_zeta

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_how_sure.ipynb"


def _notebook_seed() -> int:
    source = "".join("".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"])
    return int(re.search(r"^SEED = (\d+)", source, re.M).group(1))


def _prose() -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _flat_prose() -> str:
    return " ".join(_prose().split())


def _question_boot_n() -> int:
    """The number of replicates notebook 06 draws from the question's fit."""
    source = "".join("".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"])
    return int(re.search(r"bootstrap\(q_fit, n=([\d_]+)", source).group(1).replace("_", ""))


def test_bootstrap_pulse_at_zero_matches_the_prose():
    """'about 1,000 of its replicates at zero' and 'more than 2.5% of the replicates land there'."""
    assert "about 1,000" in _prose() and "more than 2.5%" in _prose()
    fit_ml = fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)", reml=False)
    replicates = bootstrap(fit_ml, n=10_000, seed=_notebook_seed())
    n_zero = int((replicates["sigma_group"] == 0).sum())
    assert 800 <= n_zero <= 1200
    assert n_zero / len(replicates) > 0.025


@pytest.fixture(scope="module")
def question_tests():
    data = seed_question()
    lmm = fit_lmm(data, "pSHP2 ~ condition + (1 | cluster)")
    ols = fit_ols(data, "pSHP2 ~ condition")
    return lmm, ols, satterthwaite(lmm)


def test_intercept_df_just_below_the_number_of_clusters(question_tests):
    """'Satterthwaite's degrees of freedom land just below the number of clusters'."""
    lmm, _, sat = question_tests
    assert "just below the number of clusters" in _prose()
    assert lmm.n_groups - 2 < sat.loc["Intercept", "df"] < lmm.n_groups


def test_intercept_se_dozens_of_times_lms(question_tests):
    """'lmer's standard error is dozens of times lm's'."""
    lmm, ols, _ = question_tests
    assert "dozens of times" in _prose()
    assert 24 <= lmm.bse["Intercept"] / ols.bse["Intercept"] < 100


def test_stim_df_in_the_hundreds_of_thousands(question_tests):
    """'Its degrees of freedom are in the hundreds of thousands'."""
    _, _, sat = question_tests
    assert "hundreds of thousands" in _prose()
    assert 1e5 <= sat.loc["condition[T.stim]", "df"] < 1e6


def test_exercise_3_intercept_df_near_and_above_j_minus_1(question_tests):
    """Exercise 3: 'just above' J - 1 here; exactly J - 1 for Dyestuff's equal batches."""
    lmm, _, sat = question_tests
    assert lmm.n_groups - 1 < sat.loc["Intercept", "df"] < lmm.n_groups - 1 + 0.5
    dye = fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    assert satterthwaite(dye).loc["Intercept", "df"] == pytest.approx(5, abs=1e-6)
    assert "lowers the effective number of clusters a little further" not in _prose()


def test_stim_caveat_in_06():
    """Section 4: the stim SE holds only under a common effect; the random-slope notebook is named."""
    text = " ".join(_prose().split())
    assert "if the effect is the same in every cluster" in text
    assert "(08_random_slopes.ipynb)" in text


# --- section 5: the question's own parameters ----------------------------------------------------

FORMULA = "pSHP2 ~ condition + (1 | cluster)"
STIM = "condition[T.stim]"


@pytest.fixture(scope="module")
def question_intervals(question_tests):
    """The intervals of section 5's table, computed as the notebook does (same seed, same n)."""
    lmm, _, sat = question_tests
    replicates = bootstrap(lmm, n=_question_boot_n(), seed=_notebook_seed())
    t_half = scipy.stats.t.ppf(0.975, sat["df"]) * lmm.bse
    return (
        lmm,
        replicates,
        {
            "profile": confint(lmm),
            "profile_reml": confint(lmm, criterion="REML"),
            "wald": confint(lmm, "wald"),
            "t": pd.DataFrame({"lower": lmm.fe_params - t_half, "upper": lmm.fe_params + t_half}),
            "boot": confint(lmm, "bootstrap", replicates=replicates),
        },
    )


def test_the_question_bootstrap_size_is_the_one_the_prose_names():
    """'the 4,000 replicates just drawn', '1,000 replicates per quarter'."""
    n = _question_boot_n()
    assert f"the {n:,} replicates just drawn" in _flat_prose()
    assert f"{n // 4:,} replicates per quarter" in _flat_prose()


def test_sigma_b_interval_is_lopsided_and_the_wald_and_bootstrap_ones_sit_lower(question_intervals):
    """'from the REML criterion it runs from 0.238 to 0.427, reaching about 1.6 times as far above the
    estimate as below it'; Wald: 'both of its ends lie below both profile intervals' ends'; the bootstrap
    percentile interval 'also sits lower'."""
    lmm, _, ci = question_intervals
    text = _flat_prose()
    lo, hi = ci["profile_reml"].loc["sigma_group", ["lower", "upper"]]
    assert f"runs from {lo:.3f} to {hi:.3f}" in text
    assert (f"{lo:.3f}", f"{hi:.3f}") == ("0.238", "0.427")  # the numbers, still true
    ratio = (hi - lmm.sigma_group) / (lmm.sigma_group - lo)
    assert 1.5 < ratio < 1.7 and "about 1.6 times as far above the estimate as below it" in text
    assert text.count("about 1.6 times as far above") == 2  # the section and the summary
    profiles = [ci["profile"].loc["sigma_group"], ci["profile_reml"].loc["sigma_group"]]
    for lower_one in (ci["wald"].loc["sigma_group"], ci["boot"].loc["sigma_group"]):
        for prof in profiles:
            assert lower_one["lower"] < prof["lower"] and lower_one["upper"] < prof["upper"]
    # 'about as wide': the Wald width within 10% of the profile widths
    wald_width = ci["wald"].loc["sigma_group", "upper"] - ci["wald"].loc["sigma_group", "lower"]
    for prof in profiles:
        assert prof["upper"] - prof["lower"] == pytest.approx(wald_width, rel=0.1)


def test_sigma_known_to_the_fourth_decimal_by_every_method(question_intervals):
    """'it is known to about +-0.0016, and every method gives the same interval to four decimals'."""
    lmm, _, ci = question_intervals
    assert "$\\pm 0.0016$" in _prose()
    rounded = {
        method: tuple(np.round(frame.loc["sigma", ["lower", "upper"]].to_numpy(float), 4))
        for method, frame in ci.items()
        if "sigma" in frame.index
    }
    assert len(rounded) == 4 and len(set(rounded.values())) == 1
    half = (ci["profile"].loc["sigma", "upper"] - ci["profile"].loc["sigma", "lower"]) / 2
    assert f"{half:.4f}" == "0.0016"
    assert lmm.n_obs == 326_362 and "326,362 rows" in _prose()


def test_intercept_intervals_differ_by_a_few_percent_and_t_is_widest(question_intervals):
    """'Every interval reaches 0.12 to 0.13 either side of 0.719', 'differ by a few percent of that
    width', 'The t interval is the widest (5.5% wider than Wald): with 23 degrees of freedom'."""
    lmm, _, ci = question_intervals
    text = _flat_prose()
    assert f"0.12 to 0.13 either side of {lmm.fe_params['Intercept']:.3f}" in text
    widths = {m: f.loc["Intercept", "upper"] - f.loc["Intercept", "lower"] for m, f in ci.items()}
    widths.pop("profile_reml")  # the same ML profile for a fixed effect
    assert {round(w / 2, 2) for w in widths.values()} == {0.12, 0.13}
    assert max(widths.values()) / min(widths.values()) < 1.1
    assert max(widths, key=widths.get) == "t"
    excess = widths["t"] / widths["wald"] - 1
    assert f"({excess:.1%} wider than Wald)" in text
    df = satterthwaite(lmm).loc["Intercept", "df"]
    assert round(df) == 23 and "with 23 degrees of freedom" in text


def test_stim_interval_the_same_by_every_method(question_intervals):
    """'Every method gives -0.1023 to -0.0930, the bootstrap within 0.0002 of it'."""
    _, _, ci = question_intervals
    text = _flat_prose()
    ends = ci["profile"].loc[STIM, ["lower", "upper"]].to_numpy(float)
    assert f"${ends[0]:.4f}$ to ${ends[1]:.4f}$" in text
    for method in ("wald", "t"):
        other = ci[method].loc[STIM, ["lower", "upper"]].to_numpy(float)
        assert np.array_equal(np.round(other, 4), np.round(ends, 4))
    boot = ci["boot"].loc[STIM, ["lower", "upper"]].to_numpy(float)
    assert np.abs(boot - ends).max() < 2e-4 and "the bootstrap within 0.0002 of it" in text


def test_zeta_plot_covers_every_parameter_and_shows_which_bend(question_tests):
    """Figure 4: one panel for each of the fit's parameters; 'The sigma and stim panels are straight
    lines, the intercept's bends only slightly at its ends, and sigma_b's is clearly curved: steep below
    the estimate and flatter above it'."""
    lmm, _, _ = question_tests
    parameters = ["sigma_group", "sigma", *lmm.fe_params.index]
    fig = plot_profile_zeta(lmm)
    assert len(fig.axes) == len(parameters) == 4
    assert fig.axes[-1].get_xlabel() == STIM
    bend = {}
    for p in parameters:
        prof = likelihood_profile(lmm, p)
        x, zeta = prof["value"].to_numpy(), prof["zeta"].to_numpy()
        line = np.polyval(np.polyfit(x, zeta, 1), x)
        bend[p] = np.abs(zeta - line).max()  # in zeta units; the panels span -2.6 to 2.6
        if p == "sigma_group":
            slopes = np.diff(zeta) / np.diff(x)
            assert slopes[0] > 2 * slopes[-1]  # steep below, flatter above
    assert bend["sigma"] < 0.01 and bend[STIM] < 0.01
    assert 0.02 < bend["Intercept"] < 0.15
    assert bend["sigma_group"] > 0.3
    assert "the intercept's bends only slightly at its ends" in _flat_prose()


def test_bootstrap_scatter_beta_uncorrelated_with_sigma_b(question_intervals):
    """'Both correlations are within Monte Carlo error of 0'; 'no replicate at sigma_b = 0'; the spread
    'changes by less than 5% from quarter to quarter'; the replicates reproduce lmer's correlation of
    fixed effects 'within Monte Carlo error'."""
    lmm, reps, _ = question_intervals
    text = _flat_prose()
    n = len(reps)
    mc = 1 / np.sqrt(n)
    corr = reps[["Intercept", STIM, "sigma_group"]].corr()
    for term in ("Intercept", STIM):
        assert abs(corr.loc[term, "sigma_group"]) < 2 * mc
        fig = plot_bootstrap_scatter(reps, term, lmm)
        legend = fig.axes[0].get_legend().get_texts()[0].get_text()
        assert legend.startswith(f"{n} replicates (0 with")
    assert "Both correlations are within Monte Carlo error of 0" in text
    assert (
        int((reps["sigma_group"] == 0).sum()) == 0
        and "no replicate at $\\hat\\sigma_b = 0$" in text
    )
    quarter = pd.qcut(reps["sigma_group"], 4, labels=False)
    spread = reps.groupby(quarter)[["Intercept", STIM]].std()
    assert (spread.max() / spread.min()).max() < 1.05 and "by less than 5% from quarter" in text
    printed = lmm.corr_fe.loc["Intercept", STIM]
    assert round(printed, 3) == -0.022
    assert abs(corr.loc["Intercept", STIM] - printed) < 2 * mc


def test_sign_change_gives_the_same_sigma_b_and_the_mirrored_beta():
    """'Changing the sign of every simulated random part ... gives ... the same sigma_b and sigma, while
    its beta - beta is the first's with its sign changed': checked on the question's data itself,
    mirrored about the fitted fixed part."""
    data = seed_question()
    fit = fit_lmm(data, FORMULA)
    fixed_part = fit.fitted(include_random=False)
    mirrored = data.copy()
    mirrored["pSHP2"] = 2 * fixed_part - data["pSHP2"].to_numpy()
    fit2 = fit_lmm(mirrored, FORMULA)
    assert fit2.sigma_group == pytest.approx(fit.sigma_group, rel=1e-6)
    assert fit2.sigma_resid == pytest.approx(fit.sigma_resid, rel=1e-6)
    np.testing.assert_allclose(fit2.fe_params, fit.fe_params, rtol=1e-6)  # beta-hat is the centre
    shifted = data.copy()
    shifted["pSHP2"] = data["pSHP2"] + 0.1 * (data["condition"] == "stim")
    fit3 = fit_lmm(shifted, FORMULA)
    mirrored3 = data.copy()
    mirrored3["pSHP2"] = 2 * fixed_part - shifted["pSHP2"].to_numpy()
    fit4 = fit_lmm(mirrored3, FORMULA)
    # mirrored about the same beta, a data set whose estimate is beta + d gets beta - d
    np.testing.assert_allclose(
        fit4.fe_params - fit.fe_params, -(fit3.fe_params - fit.fe_params), atol=1e-8
    )
    assert fit4.sigma_group == pytest.approx(fit3.sigma_group, rel=1e-6)


def test_exercise_5_dyestuff_intercept_independent_of_sigma_b():
    """Exercise 5: for Dyestuff's ML bootstrap the correlation is near 0 and the intercept's spread in
    the pulse at sigma_b = 0 is about the same as elsewhere."""
    fit_ml = fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)", reml=False)
    reps = bootstrap(fit_ml, n=10_000, seed=_notebook_seed())
    assert abs(reps[["Intercept", "sigma_group"]].corr().iloc[0, 1]) < 2 / np.sqrt(len(reps))
    at_zero = reps["sigma_group"] == 0
    ratio = reps.loc[at_zero, "Intercept"].std() / reps.loc[~at_zero, "Intercept"].std()
    assert 0.9 < ratio < 1.1
    assert "The spread is about the same in the pulse as elsewhere" in _flat_prose()
