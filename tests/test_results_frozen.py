"""Results are really frozen: changing a Series or DataFrame read from a result never changes it.

frozen=True stops rebinding a field; these tests check the pandas objects themselves, for LmmResult,
OlsResult, the Decomposition and its within/between blend.
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers.decompose import decompose

FORMULA = "Reaction ~ Days + (1 | Subject)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return helpers.load_dataset("sleepstudy")


def _pandas_fields(obj) -> dict:
    return {
        f.name: getattr(obj, f.name)
        for f in dataclasses.fields(obj)
        if isinstance(getattr(obj, f.name), pd.Series | pd.DataFrame)
    }


def _assert_frozen(obj, expected_fields):
    fields = _pandas_fields(obj)
    assert set(fields) >= set(expected_fields)
    for name, value in fields.items():
        before = value.copy()
        changed = getattr(obj, name)
        if isinstance(changed, pd.Series):
            changed.iloc[0] = 12345.0
            changed.index = [f"z{k}" for k in range(len(changed))]
        else:
            changed.iloc[0, 0] = 12345.0
            changed[changed.columns[0]] = -1.0
        after = getattr(obj, name)
        if isinstance(before, pd.Series):
            pd.testing.assert_series_equal(after, before, obj=name)
        else:
            pd.testing.assert_frame_equal(after, before, obj=name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, next(iter(fields)), None)


def test_lmm_result_is_frozen(sleep):
    fit = helpers.fit_lmm(sleep, FORMULA)
    intercept = float(fit.fe_params.iloc[0])
    with warnings.catch_warnings():  # pandas 3 warns that this sets a value on a copy: it does
        warnings.simplefilter("ignore")
        fit.fe_params.iloc[0] = 0  # the example of the issue: it must not reach the fit
    assert float(fit.fe_params.iloc[0]) == intercept
    _assert_frozen(fit, ["fe_params", "bse", "cov_fe", "ranef", "ranef_sd"])
    assert float(fit.tvalues.iloc[0]) == pytest.approx(intercept / float(fit.bse.iloc[0]))


def test_ols_result_is_frozen(sleep):
    ols = helpers.fit_ols(sleep, "Reaction ~ Days", group="Subject")
    _assert_frozen(ols, ["params", "bse", "cov_params", "bse_cluster", "cov_cluster"])


def test_decomposition_is_frozen(sleep):
    dec = decompose(sleep, FORMULA)
    _assert_frozen(dec, ["ols", "lmm", "within", "between", "reconstructed", "table", "se_ratio"])
    _assert_frozen(dec.blend, ["beta", "beta_within", "weight_within", "within_cross"])
    # the lmm Series stays the fit's estimates, whatever a reader does to a copy
    np.testing.assert_array_equal(dec.lmm.to_numpy(), dec.lmm_fit.fe_params.to_numpy())


def test_a_result_keeps_its_own_copy_of_what_it_was_made_with():
    params = pd.Series({"Intercept": 2.0})
    ols = helpers.results.OlsResult(
        params, pd.Series({"Intercept": 1.0}), pd.DataFrame(), 1.0, 4, 3, 0, np.zeros(4), "y ~ 1"
    )
    params.iloc[0] = -7.0
    assert float(ols.params.iloc[0]) == 2.0
    again = pickle.loads(pickle.dumps(ols))
    assert float(again.params.iloc[0]) == 2.0
