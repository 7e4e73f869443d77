"""The claims notebook 06's prose makes about its computed numbers, checked so they cannot go stale.

Each test recomputes what the notebook computes (same data, same seed) and checks the sentence that
describes it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.data import load_dataset, seed_question
from helpers.fit import fit_lmm, fit_ols
from helpers.inference import bootstrap
from helpers.inference import tests as satterthwaite

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_how_sure.ipynb"


def _notebook_seed() -> int:
    source = "".join("".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"])
    return int(re.search(r"^SEED = (\d+)", source, re.M).group(1))


def _prose() -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


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
