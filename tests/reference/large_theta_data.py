"""The data behind ``large_theta_reference.R``: a random intercept that dwarfs the residual.

15 clusters of 5 rows, sigma_b = 1 and sigma = 3e-5, so theta = sigma_b / sigma is about 3e4, beyond the
old cap of 1e4 (issue 10). Two responses share the clusters: ``y`` (intercept only) and ``y_x`` (with a
within-cluster predictor ``x``). Made with a fixed seed; the values are written with 17 significant digits,
so the CSV reads back to exactly the numbers in memory (in R as well)::

    python tests/reference/large_theta_data.py     # writes large_theta.csv next to this script
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CSV = HERE / "large_theta.csv"
SEED = 20240610


def large_theta_data() -> pd.DataFrame:
    """The data set, regenerated from its seed."""
    rng = np.random.default_rng(SEED)
    codes = np.repeat(np.arange(15), 5)
    x = rng.normal(size=codes.size)
    b = 1.0 * rng.normal(size=15)
    e = 3e-5 * rng.normal(size=codes.size)
    return pd.DataFrame(
        {
            "g": [f"c{k:02d}" for k in codes],
            "x": x,
            "y": 2.0 + b[codes] + e,
            "y_x": 2.0 + 0.5 * x + b[codes] + e,
        }
    )


if __name__ == "__main__":
    large_theta_data().to_csv(CSV, index=False, float_format="%.17g")
    print(f"wrote {CSV.name}")
