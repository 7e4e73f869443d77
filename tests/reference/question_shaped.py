"""A simulated data set shaped like the motivating question, for the lme4 reference fits.

24 clusters of very unequal size (137 to 61,179 rows, 326,362 rows in all), a binary ``condition``
whose share of ``stim`` differs by cluster (from about a quarter to about nine tenths), and cluster
intercepts that are lower in the big clusters, so pooled OLS and the mixed model disagree.

The data are not committed (they are too big). The generator's arguments and seed are fixed below;
``lme4_reference.json`` records the SHA-256 of the CSV text that R read, and the tests recompute it,
so a change in the generator fails loudly instead of silently comparing different data.

Run ``python tests/reference/question_shaped.py [DIR]`` to write ``question_shaped.csv`` into DIR (a
fresh temporary directory by default) and print its path and SHA-256.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import pandas as pd

from helpers.data import simulate_clustered

#: The fixed arguments of :func:`helpers.data.simulate_clustered`.
QUESTION_SHAPE = {
    "n_clusters": 24,
    "n_obs": 326_362,
    "size_imbalance": 1.6,
    "sigma_group": 0.31,
    "sigma_resid": 0.67,
    "intercept": 0.72,
    "slope": -0.1,
    "share_stim": 0.5,
    "share_spread": 0.8,
    "effect_size_correlation": -0.5,
    "seed": 8,
}

FORMULA = "y ~ condition + (1 | cluster)"
CSV_NAME = "question_shaped.csv"


def question_shaped_data() -> pd.DataFrame:
    """The question-shaped data set: columns ``y``, ``condition`` and ``cluster``."""
    return simulate_clustered(**QUESTION_SHAPE)


def csv_text(frame: pd.DataFrame) -> str:
    """The CSV text handed to R (no index; floats written so they read back exactly)."""
    return frame.to_csv(index=False, lineterminator="\n")


def csv_sha256(frame: pd.DataFrame) -> str:
    """The SHA-256 of :func:`csv_text`."""
    return hashlib.sha256(csv_text(frame).encode()).hexdigest()


def write_csv(directory: str | Path | None = None) -> Path:
    """Write the data to ``directory / question_shaped.csv`` and return the path."""
    directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CSV_NAME
    path.write_bytes(csv_text(question_shaped_data()).encode())
    return path


if __name__ == "__main__":
    out = write_csv(sys.argv[1] if len(sys.argv) > 1 else None)
    print(out)
    print(hashlib.sha256(out.read_bytes()).hexdigest())
