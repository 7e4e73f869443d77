"""Write formula_data.csv: a small, fixed data set for the formula reference (formula_reference.R).

Run from the repository root: ``.venv/bin/python tests/reference/formula_data.py``. The columns cover
every transform the formula parser supports: a numeric ``age``, a positive ``dose_mg``, a wave number
``wave`` (for ``factor(wave)``), an ordered ``dose`` (low < mid < high, listed in ``DOSE_LEVELS``), a
text ``arm``, a logical ``flag``, a positive response ``score`` (for ``log(score)``), and the group both
as ``site`` and as ``site (id)`` (a name that needs backticks). Four responses are missing, so the
transforms of rows that are later dropped are part of the check (R computes ``scale()`` and ``poly()``
before it drops them).
"""

from pathlib import Path

import numpy as np
import pandas as pd

DOSE_LEVELS = ["low", "mid", "high"]


def make() -> pd.DataFrame:
    rng = np.random.default_rng(20240917)
    n_sites, per_site = 12, 9
    site = np.repeat(np.arange(n_sites), per_site)
    n = len(site)
    age = np.round(rng.uniform(20, 70, n), 1)
    wave = np.tile(np.arange(1, 4), n // 3)
    dose = rng.choice(DOSE_LEVELS, n)
    arm = rng.choice(["b", "a", "c"], n)
    flag = rng.random(n) < 0.4
    dose_mg = np.round(rng.uniform(0.5, 3.0, n), 2)
    u = rng.normal(0, 1.5, n_sites)[site]
    y = (
        2.0
        + 0.03 * age
        + 0.0004 * (age - 45) ** 2
        + 0.4 * (wave == 2)
        - 0.3 * (wave == 3)
        + 0.5 * (dose == "mid")
        + 0.9 * (dose == "high")
        + 0.6 * (arm == "b")
        - 0.2 * flag
        + u
        + rng.normal(0, 1.0, n)
    )
    score = np.exp(0.5 + 0.01 * age + 0.3 * u + rng.normal(0, 0.2, n))
    y[[5, 40, 41, 99]] = np.nan
    return pd.DataFrame(
        {
            "y": np.round(y, 4),
            "score": np.round(score, 4),
            "age": age,
            "dose_mg": dose_mg,
            "wave": wave,
            "dose": dose,
            "arm": arm,
            "flag": np.where(flag, "TRUE", "FALSE"),
            "site": [f"s{k:02d}" for k in site],
            "site (id)": [f"s{k:02d}" for k in site],
        }
    )


def load() -> pd.DataFrame:
    """The committed file, with ``dose`` as the ordered categorical R's script makes of it."""
    data = pd.read_csv(Path(__file__).with_name("formula_data.csv"))
    data["dose"] = pd.Categorical(data["dose"], categories=DOSE_LEVELS, ordered=True)
    assert data["flag"].dtype == bool
    return data


if __name__ == "__main__":
    make().to_csv(Path(__file__).with_name("formula_data.csv"), index=False)
