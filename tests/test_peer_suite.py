"""A peer suite: simulated random-intercept data sets fitted by lme4 (tests/peer/), and awkward cases.

The data and lme4's values are committed (tests/peer/data/*.csv, tests/peer/peer_reference.json); the R
script that produced the values is tests/peer/peer_reference.R.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers.results import r_term_name

PEER = Path(__file__).resolve().parent / "peer"
REFERENCE = json.loads((PEER / "peer_reference.json").read_text())
CASES = sorted(REFERENCE["cases"])


def _load(name: str) -> pd.DataFrame:
    return pd.read_csv(PEER / "data" / f"{name}.csv")


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("name", CASES)
def test_matches_lme4(name, method):
    case = REFERENCE["cases"][name]
    ref = case[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", helpers.RowsDroppedWarning)
        fit = helpers.fit_lmm(_load(name), case["formula"], reml=(method == "REML"))
    assert fit.n_obs == ref["n_obs"] and fit.n_groups == ref["n_groups"]
    fixef = pd.Series(ref["fixef"])
    ours = fit.fe_params.rename(index=r_term_name)
    assert list(ours.index) == list(fixef.index)
    assert np.allclose(ours, fixef, rtol=1e-6, atol=1e-6 * fit.bse.min())
    assert np.allclose(fit.bse.rename(index=r_term_name), pd.Series(ref["se"]), rtol=1e-5)
    assert fit.sigma2_resid == pytest.approx(ref["sigma2_resid"], rel=1e-5)
    assert fit.sigma2_group == pytest.approx(ref["sigma2_group"], rel=1e-5, abs=1e-8)
    assert fit.criterion == pytest.approx(ref["criterion"], abs=1e-6)
    ranef = pd.Series(ref["ranef"])
    ours_re = fit.ranef.rename(index=str).reindex(ranef.index)
    scale = max(np.abs(ranef).max(), 1e-8)
    assert np.allclose(ours_re, ranef, rtol=1e-5, atol=1e-5 * scale)
    ranef_sd = pd.Series(ref["ranef_sd"])
    assert np.allclose(fit.ranef_sd.rename(index=str).reindex(ranef_sd.index), ranef_sd, rtol=1e-5)


def test_missing_predictor_rows_are_dropped_and_counted():
    frame = _load("missing_in_predictor")
    n_missing = int(frame["x1"].isna().sum())
    with pytest.warns(
        helpers.RowsDroppedWarning, match=f"Dropped {n_missing} of {len(frame)} rows"
    ):
        fit = helpers.fit_lmm(frame, "y ~ x1 + (1 | g)")
    assert fit.n_dropped == n_missing
    assert "g007" not in fit.ranef.index  # the cluster that lost every row disappears
    assert fit.n_groups == frame["g"].nunique() - 1


def test_the_rare_level_is_estimated_not_dropped():
    frame = _load("rare_level")
    assert (frame["arm"] == "d").sum() == 3
    fit = helpers.fit_lmm(frame, "y ~ arm + x1 + (1 | g)")
    assert "arm[T.d]" in fit.fe_params.index
    # three rows make a wide interval: its SE exceeds every other level's
    others = fit.bse[["arm[T.b]", "arm[T.c]"]]
    assert (fit.bse["arm[T.d]"] > 3 * others).all()
