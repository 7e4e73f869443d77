"""Data and comparisons shared by the engine tests (tests/test_engines.py, tests/test_spark.py).

Every engine must give the statistics of :func:`helpers.design.build_design` on the same rows. The
statistics are compared in the basis of X (the sums of X and y per cluster, X'X, X'y, y'y and the
within-cluster cross-products), which does not depend on the signs a QR decomposition chooses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd

from helpers.design import build_design
from helpers.validate import RowsDroppedWarning

TOL = 1e-10

#: (formula, reference): string and integer cluster labels, missing values, a factor with a chosen
#: reference, an interaction of a number and a factor, a logical predictor, no intercept.
FORMULAS = [
    ("y ~ x * dose + (1 | site)", {"dose": "placebo"}),
    ("y ~ x + dose + flag + (1 | wave)", None),
    ("y ~ 0 + dose + x + (1 | site)", None),
]


def messy_frame(n: int = 2000, seed: int = 3) -> pd.DataFrame:
    """Rows with a far offset in y, string (``site``) and integer (``wave``) cluster labels, a 3-level
    text column with a reference other than the first sorted level, a logical column, and gaps."""
    rng = np.random.default_rng(seed)
    site = rng.integers(0, 25, n)
    frame = pd.DataFrame(
        {
            "y": 1000.0 + 0.5 * rng.standard_normal(25)[site] + rng.standard_normal(n),
            "x": 50.0 + 3.0 * rng.standard_normal(n) + 0.1 * site,
            "dose": rng.choice(["placebo", "High", "low"], n),
            "flag": rng.random(n) < 0.4,
            "site": [f"s{k:02d}" for k in site],
            "wave": rng.integers(1, 9, n),
        }
    )
    frame["y"] += 0.3 * (frame["dose"] == "High") - 0.1 * frame["x"]
    frame.loc[rng.choice(n, 40, replace=False), "x"] = np.nan
    frame.loc[rng.choice(n, 30, replace=False), "y"] = np.nan
    frame["dose"] = frame["dose"].astype(object)
    frame.loc[rng.choice(n, 25, replace=False), "dose"] = None
    return frame


def in_memory(frame: pd.DataFrame, formula: str, reference=None, *, random_slopes: bool = False):
    """The pandas path: build_design on the rows, with the reference level set as the report sets it."""
    data = frame.copy()
    for column, level in (reference or {}).items():
        levels = sorted(data[column].dropna().unique())
        data[column] = pd.Categorical(
            data[column], categories=[level] + [v for v in levels if v != level]
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        return build_design(data, formula, random_slopes=random_slopes)


def x_basis(design) -> dict:
    """The statistics in X's basis: they do not depend on the signs of the QR factor."""
    s = design.stats
    r = s.r_factor
    return {
        "counts": s.counts.astype(float),
        "sum_x": s.sum_x,
        "sum_y": s.sum_y,
        "xtx": r.T @ r,
        "beta_ols": s.beta_ols,
        "ete": np.array([s.ete]),
        "sum_e": s.sum_e,
        "within_xx": r.T @ s.within_qq @ r,
        "within_xe": r.T @ s.within_qe,
        "within_ee": np.array([s.within_ee]),
    }


def assert_same_design(got, expected, tol: float = TOL) -> None:
    """Same terms, levels, labels, counts and dropped rows, and statistics equal to ``tol`` relative
    (to the largest entry of each statistic)."""
    assert got.term_names == expected.term_names
    assert got.reference_levels == expected.reference_levels
    assert [str(v) for v in got.group_labels] == [str(v) for v in expected.group_labels]
    assert got.n_obs == expected.n_obs
    assert got.n_dropped == expected.n_dropped
    assert got.dropped_by_column == expected.dropped_by_column
    a, b = x_basis(got), x_basis(expected)
    for key in a:
        scale = max(float(np.max(np.abs(b[key]), initial=0.0)), 1e-300)
        error = float(np.max(np.abs(a[key] - b[key]), initial=0.0)) / scale
        assert error <= tol, f"{key}: relative difference {error:.2e}"


#: The formula of the command-line runs (a factor with a chosen reference, missing values).
CLI_FORMULA = "y ~ x * dose + (1 | site)"


def pandas_numbers(path, formula: str = CLI_FORMULA, reference=None) -> dict:
    """The report's JSON numbers for the rows in pandas, computed here as the report notebook does."""
    from helpers.report.content import compare, result_dict
    from helpers.report.inputs import check_inputs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        design = check_inputs(path, formula, reference=reference, engine="pandas").design
    return json.loads(json.dumps(result_dict(design, compare(design))))


def assert_same_numbers(got, expected, tol: float = 1e-10, where: str = "") -> None:
    """Equal JSON values, numbers to ``tol`` relative (to the larger of 1 and the value)."""
    if isinstance(expected, dict):
        assert sorted(got) == sorted(expected), where
        for key in expected:
            assert_same_numbers(got[key], expected[key], tol, f"{where}/{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for k, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same_numbers(a, b, tol, f"{where}[{k}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert abs(got - expected) <= tol * max(1.0, abs(expected)), f"{where}: {got} != {expected}"
    else:
        assert got == expected, where


def run_report(*argv: str) -> subprocess.CompletedProcess:
    """``python -m helpers report ...`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "helpers", "report", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def question_frame(n: int = 6000, seed: int = 5) -> pd.DataFrame:
    """Question-shaped rows: a response far from 0, a two-level ``condition`` (text, reference
    ``unstim``, which is not the first sorted level) whose effect varies by ``cluster`` (24 string
    labels of unequal sizes), an integer ``batch`` label, and gaps in the response and the condition."""
    rng = np.random.default_rng(seed)
    sizes = rng.dirichlet(np.full(24, 0.8))
    cluster = rng.choice(24, n, p=sizes)
    stim = rng.random(n) < 0.45
    effect = -0.08 + 0.05 * rng.standard_normal(24)
    frame = pd.DataFrame(
        {
            "y": 7.0
            + 0.2 * rng.standard_normal(24)[cluster]
            + effect[cluster] * stim
            + 0.3 * rng.standard_normal(n),
            "condition": np.where(stim, "stim", "unstim").astype(object),
            "cluster": [f"donor{k + 1:02d}" for k in cluster],
            "batch": 1 + cluster % 7,
        }
    )
    frame.loc[rng.choice(n, 50, replace=False), "y"] = np.nan
    frame["condition"] = frame["condition"].astype(object)  # None stays None (not NaN) for Spark
    frame.loc[rng.choice(n, 20, replace=False), "condition"] = None
    return frame


#: (data set, formula, reference) of the random-slope cases: sleepstudy's correlated and uncorrelated
#: slopes, a factor slope on question-shaped data (string labels, a chosen reference, gaps), a numeric
#: slope with far offsets and missing values, and a factor's full dummy coding on integer labels.
SLOPE_CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", None),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)", None),
    ("question", "y ~ condition + (1 + condition | cluster)", {"condition": "unstim"}),
    ("messy", "y ~ x * dose + (1 + x | site)", {"dose": "placebo"}),
    ("messy", "y ~ x + (0 + dose | wave)", None),
]


def slope_frames() -> dict:
    """The data sets of :data:`SLOPE_CASES`."""
    from helpers.data import load_dataset

    return {
        "sleepstudy": load_dataset("sleepstudy"),
        "question": question_frame(),
        "messy": messy_frame(),
    }


def in_memory_slopes(frame: pd.DataFrame, formula: str, reference=None):
    """The rows path for a random-slope formula (:func:`in_memory` with random slopes)."""
    return in_memory(frame, formula, reference, random_slopes=True)


def assert_same_fit(got, expected, tol: float = TOL) -> None:
    """Two fits of the same model agree to ``tol`` relative (to the largest entry of each quantity):
    fixed effects, SEs, theta, varcorr, the criterion, and the conditional modes and variances."""
    assert list(got.fe_params.index) == list(expected.fe_params.index)
    assert list(got.varcorr["var1"]) == list(expected.varcorr["var1"])
    assert [str(v) for v in got.ranef.index] == [str(v) for v in expected.ranef.index]
    assert list(got.ranef.columns) == list(expected.ranef.columns)
    assert (got.n_obs, got.n_groups, got.n_dropped) == (
        expected.n_obs,
        expected.n_groups,
        expected.n_dropped,
    )
    pairs = {
        "fe_params": (got.fe_params, expected.fe_params),
        "bse": (got.bse, expected.bse),
        "theta": (got.theta, expected.theta),
        "vcov": (got.varcorr["vcov"], expected.varcorr["vcov"]),
        "sdcor": (got.varcorr["sdcor"], expected.varcorr["sdcor"]),
        "criterion": (got.criterion, expected.criterion),
        "sigma2_resid": (got.sigma2_resid, expected.sigma2_resid),
        "ranef": (got.ranef, expected.ranef),
    }
    for key, (a, b) in pairs.items():
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
        error = float(np.max(np.abs(a - b), initial=0.0)) / scale
        assert error <= tol, f"{key}: relative difference {error:.2e}"
