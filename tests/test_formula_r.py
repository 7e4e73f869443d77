"""Formulas as R users write them, against lme4 (tests/reference/formula_reference.R).

Every transform the parser supports is fitted on ``tests/reference/formula_data.csv`` and must match
lme4's fixed effects (1e-6 relative), standard errors (1e-5 relative) and REML criterion (1e-6
absolute), with the term names exactly as R prints them and in R's order.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import fit_lmm
from helpers.design import RowsDroppedWarning
from helpers.results import r_term_name

HERE = Path(__file__).resolve().parent / "reference"
sys.path.insert(0, str(HERE))
import formula_data  # noqa: E402

REFERENCE = json.loads((HERE / "formula_reference.json").read_text())
FITS = REFERENCE["fits"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return formula_data.load()


def _fit(data, formula):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        return fit_lmm(data, formula)


@pytest.mark.parametrize("ref", FITS, ids=[f["formula"] for f in FITS])
def test_formula_matches_lme4(data, ref):
    fit = _fit(data, ref["formula"])
    names = [r_term_name(n) for n in fit.fe_params.index]
    assert names == ref["names"]
    assert fit.n_obs == ref["n_obs"]
    expected = np.array([ref["fixef"][n] for n in names])
    se = np.array([ref["se"][n] for n in names])
    np.testing.assert_allclose(fit.fe_params.to_numpy(), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.bse.to_numpy(), se, rtol=1e-5)
    assert fit.criterion == pytest.approx(ref["reml_criterion"], abs=1e-6)
    # the summary prints R's names
    text = fit.summary()
    for name in ref["names"]:
        assert f"\n{name} " in text


def test_every_supported_function_is_checked_against_r():
    from helpers.formula import FUNCTIONS

    tried = " ".join(f["formula"] for f in FITS)
    # C() is factor() by another name, and np.* are the numpy spellings of log, exp and sqrt
    untested = [f for f in FUNCTIONS if f + "(" not in tried and f not in ("C",) and "np." not in f]
    assert untested == []


@pytest.mark.parametrize(
    ("ours", "r_form"),
    [
        ("np.log(score) ~ np.sqrt(dose_mg) + np.exp(dose_mg) + np.log(age) + (1 | site)", None),
        ("y ~ C(wave) + age + (1 | site)", "y ~ factor(wave) + age + (1 | site)"),
    ],
)
def test_other_spellings_give_the_same_fit(data, ours, r_form):
    fit = _fit(data, ours)
    if r_form is None:
        ref = next(f for f in FITS if f["formula"].startswith("log(score)"))
        expected = {
            n.replace("log(", "np.log(").replace("sqrt(", "np.sqrt(").replace("exp(", "np.exp("): v
            for n, v in ref["fixef"].items()
        }
    else:
        ref = next(f for f in FITS if f["formula"] == r_form)
        expected = {n.replace("factor(", "C("): v for n, v in ref["fixef"].items()}
    got = fit.fe_params.rename(index=r_term_name)
    assert sorted(got.index) == sorted(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-6)
    assert fit.criterion == pytest.approx(ref["reml_criterion"], abs=1e-6)
