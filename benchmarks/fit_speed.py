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
    python benchmarks/fit_speed.py --slopes   # the random-slope table only (see below)

``--slopes`` times random-slope fits instead: ``y ~ condition + (1 + condition | cluster)`` on the
question-shaped data (326,362 rows, 24 clusters) against statsmodels (``re_formula="~condition"``) and
lme4, and ``y ~ x + (1 + x | g)`` on 1e6 rows in 1e5 clusters (random intercepts and slopes with SDs 0.5
and 0.3, residual SD 1) against lme4.

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


SLOPE_CASES = [
    ("question", "y ~ condition + (1 + condition | cluster)", 326_362, 24),
    ("many", "y ~ x + (1 + x | g)", 1_000_000, 100_000),
]

R_SLOPES = r"""
args <- commandArgs(trailingOnly = TRUE)
repeats <- as.integer(args[[1]])
budget <- as.numeric(args[[2]])
suppressPackageStartupMessages(library(lme4))
pairs <- matrix(args[-(1:2)], nrow = 2)
for (k in seq_len(ncol(pairs))) {
  p <- pairs[1, k]
  form <- as.formula(pairs[2, k])
  d <- if (requireNamespace("data.table", quietly = TRUE)) as.data.frame(data.table::fread(p)) else read.csv(p)
  if ("condition" %in% names(d)) d$condition <- factor(d$condition, levels = c("unstim", "stim"))
  for (g in intersect(c("cluster", "g"), names(d))) d[[g]] <- factor(d[[g]])
  times <- numeric(0)
  repeat {
    gc()
    t <- system.time(fit <- suppressMessages(lmer(form, d)))[["elapsed"]]
    times <- c(times, t)
    if (length(times) >= repeats || sum(times) > budget) break
  }
  cat(sprintf("%s,%.6f,%d,%.15g\n", basename(p), median(times), length(times), REMLcrit(fit)))
}
"""


def slope_data(name: str, n_obs: int, n_clusters: int) -> pd.DataFrame:
    """The data of a random-slope case (fixed seeds)."""
    if name == "question":
        return make_data(n_obs, n_clusters)
    rng = np.random.default_rng(13)
    g = rng.integers(0, n_clusters, n_obs)
    x = rng.normal(size=n_obs)
    b = rng.normal(size=(n_clusters, 2)) * [0.5, 0.3]
    y = 1.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=n_obs)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def run_slopes(args) -> None:
    """The random-slope table (``--slopes``)."""
    import statsmodels.formula.api as smf

    use_r = not args.no_r and shutil.which("Rscript") is not None
    repeats = args.repeats or 3
    fit_lmm(slope_data("question", 2_000, 24), SLOPE_CASES[0][1])  # warm-up
    workdir = Path(tempfile.mkdtemp(prefix="fit_speed_slopes_"))
    rows = []
    try:
        pairs = []
        for name, formula, n_obs, n_clusters in SLOPE_CASES:
            df = slope_data(name, n_obs, n_clusters)
            ours, n_ours, fit = time_call(lambda df=df, f=formula: fit_lmm(df, f), repeats, 60)
            row = {"case": f"{formula}: {n_obs:,} rows, {n_clusters:,} clusters", "ours": ours}
            row.update(ours_n=n_ours, criterion=fit.criterion, sm=None, lme4=None)
            if name == "question" and not args.no_statsmodels:

                def sm_fit(df=df):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model = smf.mixedlm(
                            "y ~ condition", df, groups=df["cluster"], re_formula="~condition"
                        )
                        return model.fit()

                row["sm"], row["sm_n"], _ = time_call(sm_fit, 1, 0)
            if use_r:
                path = workdir / f"slopes_{name}.csv"
                df.to_csv(path, index=False)
                pairs += [str(path), formula]
                row["csv"] = path.name
            rows.append(row)
            print(f"  measured {row['case']}: ours {_fmt(ours)}", file=sys.stderr, flush=True)
        if use_r and pairs:
            with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as handle:
                handle.write(R_SLOPES)
                script = handle.name
            try:
                out = subprocess.run(
                    ["Rscript", script, str(repeats), str(args.budget), *pairs],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            finally:
                os.unlink(script)
            timings = {}
            for line in out.strip().splitlines():
                file, median, count, crit = line.split(",")
                timings[file] = (float(median), int(count), float(crit))
            for row in rows:
                if row.get("csv") in timings:
                    row["lme4"], row["lme4_n"], row["lme4_crit"] = timings[row["csv"]]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nMedian wall time of one whole random-slope fit from a DataFrame (REML)")
    for row in rows:
        print(
            f"  {row['case']}\n    fit_lmm {_fmt(row['ours'])} ({row['ours_n']} runs), statsmodels "
            f"{_fmt(row['sm'])}, lme4 {_fmt(row['lme4'])}; sm/fit_lmm {_ratio(row['sm'], row['ours'])}, "
            f"lme4/fit_lmm {_ratio(row['lme4'], row['ours'])}"
        )
        if "lme4_crit" in row:
            print(
                f"    REML criterion: fit_lmm minus lme4 {row['criterion'] - row['lme4_crit']:.2e}"
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
    parser.add_argument(
        "--slopes", action="store_true", help="the random-slope table only (see the docstring)"
    )
    parser.add_argument("--no-r", action="store_true")
    args = parser.parse_args(argv)
    if args.slopes:
        run_slopes(args)
        return

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
