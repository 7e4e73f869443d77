"""How long does a random-intercept fit take? This package, statsmodels MixedLM and lme4, side by side.

Every fit is a whole call from a DataFrame, the way a reader would make it:

- ``helpers.fit_lmm(df, "y ~ condition + (1 | cluster)")`` (REML);
- ``statsmodels.formula.api.mixedlm("y ~ condition", df, groups=df["cluster"]).fit()`` (its default,
  REML);
- ``lme4::lmer(y ~ condition + (1 | cluster), d)`` (REML), timed inside R with ``system.time`` over
  repeats; R's start-up and the reading of the CSV file are excluded. lme4 runs only when ``Rscript``
  is on the PATH.

The data are the question's shape (``tests/reference/question_shaped.py``: very unequal clusters, a
share of ``stim`` that differs by cluster) at 1e4, 1e5, 326,362 and 1e6 rows, with 24 and with 10,000
clusters. The floor is one grouped-sum pass over the same columns: ``numpy.bincount`` of y and of the
row counts by cluster x condition, which any method has to do at least once.

Usage::

    python benchmarks/fit_speed.py            # the full table (about 10 to 20 minutes on 2 cores)
    python benchmarks/fit_speed.py --quick    # 1e4 and 1e5 rows only, fewer repeats

Each time is the median over repeats; slow fits are repeated fewer times (see ``--budget``), and a
statsmodels fit whose time, extrapolated linearly in rows from the previous size, exceeds
``--sm-budget`` seconds is skipped and listed as such. This script is not part of the test run.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package in this checkout, wherever the script is started from

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from helpers.data import simulate_clustered  # noqa: E402
from helpers.fit import fit_lmm  # noqa: E402

FORMULA = "y ~ condition + (1 | cluster)"
SIZES = [10_000, 100_000, 326_362, 1_000_000]
QUICK_SIZES = [10_000, 100_000]
CLUSTERS = [24, 10_000]

R_TIMER = r"""
args <- commandArgs(trailingOnly = TRUE)
repeats <- as.integer(args[[1]])
budget <- as.numeric(args[[2]])
paths <- args[-(1:2)]
suppressPackageStartupMessages(library(lme4))
read <- function(p) {
  if (requireNamespace("data.table", quietly = TRUE)) {
    as.data.frame(data.table::fread(p))
  } else {
    read.csv(p)
  }
}
for (p in paths) {
  d <- read(p)
  d$condition <- factor(d$condition, levels = c("unstim", "stim"))
  d$cluster <- factor(d$cluster)
  times <- numeric(0)
  repeat {
    gc()
    t <- system.time(fit <- suppressMessages(lmer(y ~ condition + (1 | cluster), d)))[["elapsed"]]
    times <- c(times, t)
    if (length(times) >= repeats || sum(times) > budget) break
  }
  slope <- unname(fixef(fit)[2])
  cat(sprintf("%s,%.6f,%d,%.15g\n", basename(p), median(times), length(times), slope))
}
"""


def _question_shape() -> dict:
    path = ROOT / "tests" / "reference" / "question_shaped.py"
    spec = importlib.util.spec_from_file_location("question_shaped", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.QUESTION_SHAPE)


def make_data(n_obs: int, n_clusters: int) -> pd.DataFrame:
    """The question-shaped data at another size."""
    shape = _question_shape()
    shape.update(n_obs=n_obs, n_clusters=n_clusters)
    return simulate_clustered(**shape)


def time_call(fn, repeats: int, budget: float) -> tuple[float, int, object]:
    """Median wall time of fn() over up to ``repeats`` calls, stopping once ``budget`` s are spent."""
    times, result = [], None
    while True:
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        if len(times) >= repeats or sum(times) > budget:
            return statistics.median(times), len(times), result


def grouped_sum_floor(df: pd.DataFrame):
    """One pass: sums of y and row counts by cluster x condition."""
    cells = (
        df["cluster"].cat.codes.to_numpy().astype(np.int64) * 2
        + df["condition"].cat.codes.to_numpy()
    )
    size = 2 * len(df["cluster"].cat.categories)
    return np.bincount(cells, weights=df["y"].to_numpy(), minlength=size), np.bincount(
        cells, minlength=size
    )


def fit_statsmodels(df: pd.DataFrame):
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.mixedlm("y ~ condition", df, groups=df["cluster"]).fit()


def run_lme4(paths: list[Path], repeats: int, budget: float) -> dict[str, tuple[float, int, float]]:
    """Time lmer in one R session; returns {file name: (median s, repeats, slope)}."""
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as handle:
        handle.write(R_TIMER)
        script = handle.name
    try:
        out = subprocess.run(
            ["Rscript", script, str(repeats), str(budget), *map(str, paths)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(script)
    results = {}
    for line in out.strip().splitlines():
        name, median, count, slope = line.split(",")
        results[name] = (float(median), int(count), float(slope))
    return results


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.0f}x" if a / b >= 10 else f"{a / b:.1f}x"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1e4 and 1e5 rows, fewer repeats")
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats per fit (default 5, quick 3)"
    )
    parser.add_argument(
        "--budget", type=float, default=30.0, help="seconds per timing before stopping repeats"
    )
    parser.add_argument(
        "--sm-budget",
        type=float,
        default=None,
        help="skip a statsmodels fit predicted to take longer (default 150 s, quick 40 s)",
    )
    parser.add_argument("--no-statsmodels", action="store_true")
    parser.add_argument("--no-r", action="store_true")
    args = parser.parse_args(argv)

    sizes = QUICK_SIZES if args.quick else SIZES
    repeats = args.repeats or (3 if args.quick else 5)
    sm_budget = args.sm_budget or (40.0 if args.quick else 150.0)
    use_r = not args.no_r and shutil.which("Rscript") is not None

    import scipy
    import statsmodels

    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"pandas {pd.__version__}, statsmodels {statsmodels.__version__}; {os.cpu_count()} CPUs"
    )
    if use_r:
        version = subprocess.run(
            ["Rscript", "-e", 'cat(R.version.string, "lme4", format(packageVersion("lme4")))'],
            capture_output=True,
            text=True,
        ).stdout
        print(version.strip())
    else:
        print("lme4: skipped (Rscript is not on the PATH, or --no-r)")

    # warm-up: imports and first-call costs are not part of any timing
    warm = make_data(2_000, 24)
    fit_lmm(warm, FORMULA)
    if not args.no_statsmodels:
        fit_statsmodels(warm)

    rows, skipped = [], []
    last_sm: dict[int, tuple[int, float]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="fit_speed_"))
    csv_paths = []
    try:
        for n_clusters in CLUSTERS:
            for n_obs in sizes:
                label = f"{n_obs:,} rows, {n_clusters:,} clusters"
                if n_obs < 2 * n_clusters:
                    skipped.append(f"{label}: fewer than 2 rows per cluster")
                    continue
                df = make_data(n_obs, n_clusters)
                floor, _, _ = time_call(lambda df=df: grouped_sum_floor(df), max(repeats, 7), 5)
                ours, n_ours, fit = time_call(
                    lambda df=df: fit_lmm(df, FORMULA), repeats, args.budget
                )
                row = {
                    "n_obs": n_obs,
                    "n_clusters": n_clusters,
                    "floor": floor,
                    "ours": ours,
                    "ours_n": n_ours,
                    "slope": float(fit.fe_params.iloc[1]),
                    "sm": None,
                    "lme4": None,
                }
                if not args.no_statsmodels:
                    predicted = None
                    if n_clusters in last_sm:
                        prev_n, prev_t = last_sm[n_clusters]
                        predicted = prev_t * n_obs / prev_n
                    if predicted is not None and predicted > sm_budget:
                        skipped.append(
                            f"statsmodels at {label}: predicted ~{predicted:.0f} s > {sm_budget:.0f} s"
                        )
                    else:
                        sm_time, row["sm_n"], sm_fit = time_call(
                            lambda df=df: fit_statsmodels(df), repeats, sm_budget / 2
                        )
                        row["sm"] = sm_time
                        row["sm_slope"] = float(sm_fit.fe_params.iloc[1])
                        last_sm[n_clusters] = (n_obs, sm_time)
                if use_r:
                    path = workdir / f"q_{n_obs}_{n_clusters}.csv"
                    df.to_csv(path, index=False)
                    csv_paths.append(path)
                    row["csv"] = path.name
                rows.append(row)
                print(f"  measured {label}: ours {_fmt(ours)}", file=sys.stderr, flush=True)
        if use_r and csv_paths:
            print("  timing lme4 in R ...", file=sys.stderr, flush=True)
            timings = run_lme4(csv_paths, repeats, args.budget)
            for row in rows:
                if row.get("csv") in timings:
                    row["lme4"], row["lme4_n"], row["lme4_slope"] = timings[row["csv"]]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    header = [
        "rows",
        "clusters",
        "floor",
        "fit_lmm",
        "statsmodels",
        "lme4",
        "fit_lmm/floor",
        "sm/fit_lmm",
        "lme4/fit_lmm",
    ]
    table = [
        [
            f"{r['n_obs']:,}",
            f"{r['n_clusters']:,}",
            _fmt(r["floor"]),
            _fmt(r["ours"]),
            _fmt(r["sm"]),
            _fmt(r["lme4"]),
            _ratio(r["ours"], r["floor"]),
            _ratio(r["sm"], r["ours"]),
            _ratio(r["lme4"], r["ours"]),
        ]
        for r in rows
    ]
    widths = [max(len(line[k]) for line in [header, *table]) for k in range(len(header))]
    print()
    print(
        "Median wall time of one whole fit from a DataFrame (REML, y ~ condition + (1 | cluster))"
    )
    for line in [header, *table]:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
    print()
    print("Repeats: fit_lmm", ", ".join(str(r["ours_n"]) for r in rows), end="")
    if any(r["sm"] is not None for r in rows):
        print("; statsmodels", ", ".join(str(r.get("sm_n", "-")) for r in rows), end="")
    if any(r["lme4"] is not None for r in rows):
        print("; lme4", ", ".join(str(r.get("lme4_n", "-")) for r in rows), end="")
    print(" (in table order)")
    for key, name in (("sm_slope", "statsmodels"), ("lme4_slope", "lme4")):
        gaps = [abs(r[key] - r["slope"]) for r in rows if key in r]
        if gaps:
            print(f"Largest |slope - fit_lmm's slope|, {name}: {max(gaps):.1e}")
    if any(r["lme4"] is not None for r in rows):
        print("lme4 is timed inside R: R start-up and reading the CSV are excluded.")
    if skipped:
        print("Skipped:")
        for line in skipped:
            print(f"  {line}")


if __name__ == "__main__":
    main()
