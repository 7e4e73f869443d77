"""Write the peer-suite data sets (small CSVs, committed) that peer_reference.R fits with lme4.

Modelled on the kind of cases statsmodels' MixedLM tests check against R (simulated random-intercept data
sets and a growth-curve panel), plus awkward cases of our own. Run from the repository root:

    .venv/bin/python tests/peer/make_peer_data.py && Rscript tests/peer/peer_reference.R
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CASES = {
    # name: formula (lme4 syntax, also ours)
    "balanced_two_covariates": "y ~ x1 + x2 + (1 | g)",
    "unbalanced_three_covariates": "y ~ x1 + x2 + x3 + (1 | g)",
    "large_group_variance": "y ~ x1 + (1 | g)",
    "small_group_variance": "y ~ x1 + (1 | g)",
    "growth_panel": "weight ~ time + (1 | pig)",
    "no_intercept": "y ~ 0 + x1 + x2 + (1 | g)",
    "one_giant_cluster": "y ~ x1 + (1 | g)",
    "rare_level": "y ~ arm + x1 + (1 | g)",
    "missing_in_predictor": "y ~ x1 + (1 | g)",
}


def _frame(rng, sizes, n_cov, sigma_group, sigma=1.0, beta=None):
    codes = np.repeat(np.arange(len(sizes)), sizes)
    n = codes.size
    X = rng.normal(size=(n, n_cov))
    beta = np.arange(1, n_cov + 1) * 0.5 if beta is None else np.asarray(beta)
    y = (
        1.0
        + X @ beta
        + sigma_group * rng.normal(size=len(sizes))[codes]
        + sigma * rng.normal(size=n)
    )
    frame = pd.DataFrame(X, columns=[f"x{k + 1}" for k in range(n_cov)])
    frame.insert(0, "y", y)
    frame["g"] = [f"g{c:03d}" for c in codes]
    return frame


def make() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(20261126)
    out = {}
    out["balanced_two_covariates"] = _frame(rng, [10] * 20, 2, 1.0)
    out["unbalanced_three_covariates"] = _frame(rng, rng.integers(2, 31, size=25), 3, 0.7)
    out["large_group_variance"] = _frame(rng, rng.integers(3, 12, size=15), 1, 3.0)
    out["small_group_variance"] = _frame(rng, rng.integers(5, 15, size=30), 1, 0.15)
    pigs, times = 72, 12
    pig = np.repeat(np.arange(pigs), times)
    time = np.tile(np.arange(1, times + 1), pigs).astype(float)
    weight = 15 + 6.9 * time + 4.0 * rng.normal(size=pigs)[pig] + 2.5 * rng.normal(size=pig.size)
    out["growth_panel"] = pd.DataFrame({"weight": weight, "time": time, "pig": pig + 4601})
    out["no_intercept"] = _frame(rng, rng.integers(4, 10, size=18), 2, 0.8)
    giant = _frame(rng, [900] + [10] * 10, 1, 0.6)
    out["one_giant_cluster"] = giant
    rare = _frame(rng, rng.integers(5, 12, size=20), 1, 0.5)
    arm = rng.choice(["a", "b", "c"], size=len(rare))
    arm[rng.choice(len(rare), size=3, replace=False)] = "d"  # a level with 3 rows
    rare["arm"] = arm
    rare["y"] += np.select([arm == "b", arm == "c", arm == "d"], [0.3, -0.2, 1.0], 0.0)
    out["rare_level"] = rare
    missing = _frame(rng, rng.integers(6, 12, size=16), 1, 0.9)
    first = missing.index[missing["g"] == "g003"]
    missing.loc[first[:4], "x1"] = np.nan  # one cluster loses some of its predictor values
    missing.loc[missing.index[missing["g"] == "g007"], "x1"] = np.nan  # another loses all of them
    out["missing_in_predictor"] = missing
    return out


if __name__ == "__main__":
    (HERE / "data").mkdir(exist_ok=True)
    for name, frame in make().items():
        frame.to_csv(HERE / "data" / f"{name}.csv", index=False, float_format="%.17g")
    print(f"wrote {len(CASES)} data sets")
