"""The data sets behind the random-slope reference fits (``random_slopes_reference.R``).

Two kinds of output:

* small sets, committed next to this script (each well under 1 MB)::

      python tests/reference/random_slopes_data.py

  writes ``random_slopes_three_terms.csv``, ``random_slopes_small_clusters.csv`` and
  ``random_slopes_singular.csv``;

* large or derived sets, not committed, written to a directory given on the command line::

      python tests/reference/random_slopes_data.py --generated DIR

  writes ``DIR/question_slopes.csv`` (326,362 rows, a stim effect that varies by cluster),
  ``DIR/seed_question.csv`` (the question's own rows, ``helpers.seed.seed_question``) and
  ``DIR/sleepstudy.csv`` (``helpers.load_dataset("sleepstudy")``, which the R script compares with
  ``lme4::sleepstudy``), and prints each file's SHA-256.

Every set is made with a fixed seed, so the files are the same on every run. Numbers are rounded to a
fixed number of decimals before they are written, so the CSV text reads back to exactly the values in
memory (pandas writes the shortest text that round-trips).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent

#: The committed sets: name -> (file, formula of the random-slope model fitted to it).
COMMITTED = {
    "three_terms": ("random_slopes_three_terms.csv", "y ~ x1 + x2 + (1 + x1 + x2 | g)"),
    "small_clusters": ("random_slopes_small_clusters.csv", "y ~ x + (1 + x | g)"),
    "singular": ("random_slopes_singular.csv", "y ~ x + (1 + x | g)"),
}

#: The generated sets (not committed): name -> file written by ``--generated DIR``.
GENERATED = {
    "question_slopes": "question_slopes.csv",
    "seed_question": "seed_question.csv",
    "sleepstudy": "sleepstudy.csv",
}

#: The per-cluster stim effects added to the question-shaped data: SD and seed.
QUESTION_SLOPE_SD = 0.06
QUESTION_SLOPE_SEED = 1313


def _round(values: np.ndarray, decimals: int = 6) -> np.ndarray:
    return np.round(values, decimals)


def _labels(prefix: str, n: int) -> list[str]:
    width = len(str(n))
    return [f"{prefix}{k + 1:0{width}d}" for k in range(n)]


def three_terms() -> pd.DataFrame:
    """``y ~ x1 + x2 + (1 + x1 + x2 | g)``: 40 clusters of 6 to 30 rows, some values of x2 and y missing.

    Random effects with SDs (1.0, 0.5, 0.3) and correlations (0.3, -0.2, 0.1); residual SD 0.8. About
    5% of x2 and 4% of y are missing (not in the same rows), and one cluster (``g07``) loses all its y.
    """
    rng = np.random.default_rng(20260513)
    n_groups = 40
    sizes = rng.integers(6, 31, size=n_groups)
    codes = np.repeat(np.arange(n_groups), sizes)
    n = codes.size
    sd = np.array([1.0, 0.5, 0.3])
    corr = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 1.0]])
    b = rng.multivariate_normal(np.zeros(3), corr * np.outer(sd, sd), size=n_groups)
    x1 = _round(rng.normal(size=n))
    x2 = _round(rng.uniform(-1.0, 1.0, size=n) + 0.3 * rng.normal(size=n_groups)[codes])
    y = (
        2.0
        + 0.5 * x1
        - 0.7 * x2
        + b[codes, 0]
        + b[codes, 1] * x1
        + b[codes, 2] * x2
        + 0.8 * rng.normal(size=n)
    )
    y = _round(y)
    labels = np.array(_labels("g", n_groups))
    x2[rng.random(n) < 0.05] = np.nan
    y[(rng.random(n) < 0.04) & ~np.isnan(x2)] = np.nan
    y[labels[codes] == "g07"] = np.nan
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": labels[codes]})


def small_clusters() -> pd.DataFrame:
    """``y ~ x + (1 + x | g)``: 2,000 clusters of 2 to 6 rows.

    Random intercept SD 0.8, slope SD 0.4, correlation -0.4; residual SD 1.
    """
    rng = np.random.default_rng(20260514)
    n_groups = 2000
    sizes = rng.integers(2, 7, size=n_groups)
    codes = np.repeat(np.arange(n_groups), sizes)
    n = codes.size
    sd = np.array([0.8, 0.4])
    cov = np.array([[1.0, -0.4], [-0.4, 1.0]]) * np.outer(sd, sd)
    b = rng.multivariate_normal(np.zeros(2), cov, size=n_groups)
    x = _round(rng.normal(size=n), 4)
    y = _round(1.0 + 0.5 * x + b[codes, 0] + b[codes, 1] * x + rng.normal(size=n), 4)
    labels = np.array(_labels("g", n_groups))
    return pd.DataFrame({"y": y, "x": x, "g": labels[codes]})


def singular() -> pd.DataFrame:
    """``y ~ x + (1 + x | g)`` with a singular fit: 5 clusters of 10 rows, and no slope variation at all.

    The intercept varies (SD 1), the slope of x does not; with 5 clusters lme4 puts the fitted slope
    variance, or the correlation, on the boundary (``isSingular`` is TRUE for REML and ML).
    """
    rng = np.random.default_rng(20260515)
    n_groups, size = 5, 10
    codes = np.repeat(np.arange(n_groups), size)
    x = np.tile(np.arange(size, dtype=float), n_groups)
    b = rng.normal(size=n_groups)
    y = _round(3.0 + 0.4 * x + b[codes] + rng.normal(size=codes.size), 4)
    labels = np.array(_labels("s", n_groups))
    return pd.DataFrame({"y": y, "x": x, "g": labels[codes]})


def _question_shaped_module():
    spec = importlib.util.spec_from_file_location("question_shaped", HERE / "question_shaped.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def question_slopes() -> pd.DataFrame:
    """The question-shaped data of ``question_shaped.py`` with a stim effect that varies by cluster.

    The rows of ``question_shaped.question_shaped_data()`` (326,362 rows, 24 clusters, the stim share
    varying by cluster; stim effect -0.1), plus a per-cluster deviation d_i ~ N(0, 0.06^2) of the stim
    effect (seed 1313) added to the stim rows. The response is named ``pSHP2``, as in the question.
    """
    frame = _question_shaped_module().question_shaped_data()
    clusters = frame["cluster"].cat.categories
    rng = np.random.default_rng(QUESTION_SLOPE_SEED)
    deviation = pd.Series(QUESTION_SLOPE_SD * rng.standard_normal(len(clusters)), index=clusters)
    stim = (frame["condition"] == "stim").to_numpy()
    shift = deviation.reindex(frame["cluster"]).to_numpy() * stim
    return pd.DataFrame(
        {
            "pSHP2": frame["y"].to_numpy() + shift,
            "condition": frame["condition"],
            "cluster": frame["cluster"],
        }
    )


def seed_question_rows() -> pd.DataFrame:
    """The question's own rows (``helpers.seed.seed_question``)."""
    from helpers.seed import seed_question

    return seed_question()


def sleepstudy_rows() -> pd.DataFrame:
    """The package's copy of sleepstudy (``helpers.load_dataset``)."""
    from helpers.data import load_dataset

    return load_dataset("sleepstudy")[["Reaction", "Days", "Subject"]]


def csv_text(frame: pd.DataFrame) -> str:
    """The CSV text written for R (no index; floats written so they read back exactly)."""
    return frame.to_csv(index=False, lineterminator="\n")


def load_committed(name: str) -> pd.DataFrame:
    """Read a committed set back (the cluster column as strings)."""
    return pd.read_csv(HERE / COMMITTED[name][0], dtype={"g": str})


def _write(path: Path, frame: pd.DataFrame) -> None:
    text = csv_text(frame)
    path.write_bytes(text.encode())
    print(path.name, len(frame), hashlib.sha256(text.encode()).hexdigest())


def write_committed() -> None:
    makers = {"three_terms": three_terms, "small_clusters": small_clusters, "singular": singular}
    for name, (file, _) in COMMITTED.items():
        _write(HERE / file, makers[name]())


def write_generated(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    makers = {
        "question_slopes": question_slopes,
        "seed_question": seed_question_rows,
        "sleepstudy": sleepstudy_rows,
    }
    for name, file in GENERATED.items():
        _write(directory / file, makers[name]())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--generated":
        write_generated(Path(sys.argv[2]))
    elif len(sys.argv) == 1:
        write_committed()
    else:
        sys.exit("usage: random_slopes_data.py [--generated DIR]")
