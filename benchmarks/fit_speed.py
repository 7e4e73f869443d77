"""How long does a fit take? This package, statsmodels MixedLM and lme4, side by side, as ratios.

One run prints every goal of the fit's speed (issues 12 and 13) as a ratio of medians measured in that
run:

- random intercept, ``y ~ condition + (1 | cluster)`` (REML), on question-shaped data
  (``tests/reference/question_shaped.py``: very unequal clusters, a share of ``stim`` that differs by
  cluster) at 326,362 rows in 24 clusters: ``fit_lmm`` against one grouped-sum pass (goal: within 2x),
  statsmodels (goal: at least 50x faster) and lme4 (goal: at least 80x faster);
- the same model at 1e6 rows in 1e5 clusters: ``fit_lmm`` against the grouped-sum pass (goal: within 4x);
- the same model at 1e7 rows in 24 clusters: the fit's peak memory above the DataFrame, as a multiple of
  the DataFrame's size (goal: at most 1.5x), measured with ``tracemalloc`` (numpy and pandas report
  their buffers to it; the DataFrame is made before tracing starts, so only the fit's own allocations
  count);
- random slopes, ``y ~ condition + (1 + condition | cluster)`` at 326,362 rows in 24 clusters, against
  statsmodels (``re_formula="~condition"``) and lme4 (goal: at least 100x faster than each), and
  ``y ~ x + (1 + x | g)`` at 1e6 rows in 1e5 clusters (random intercepts and slopes with SDs 0.5 and 0.3,
  residual SD 1) against lme4 (reported, no goal).

Every fit is a whole call from a DataFrame already in memory, the way a reader makes it:
``helpers.fit_lmm(df, formula)``; ``statsmodels.formula.api.mixedlm(...).fit()`` (its default, REML);
``lme4::lmer(formula, d)`` (REML), timed inside R with ``system.time`` over repeats (R's start-up and
reading the CSV file excluded). The grouped-sum pass ("floor") is what any method has to do at least
once: factorising the cluster labels (``pandas.factorize``) and three ``numpy.bincount`` s by cluster x
condition (the row counts, the sums of y and the sums of y^2). A peer that is not installed
(statsmodels, or R with lme4) is skipped, and the output says so.

Usage::

    python benchmarks/fit_speed.py            # the goals (about 5 minutes on 2 cores, most of it the peers)
    python benchmarks/fit_speed.py --table    # the table over sizes (1e4 .. 1e6 rows, 24 and 10,000
                                              # clusters; about 10 minutes)
    python benchmarks/fit_speed.py --table --quick   # 1e4 and 1e5 rows only, fewer repeats

Each time is the median over repeats; slow fits are repeated fewer times (see ``--budget``). In the
table, a statsmodels fit whose time, extrapolated linearly in rows from the previous size, exceeds
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
import tracemalloc
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package in this checkout, wherever the script is started from

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from helpers.data import simulate_clustered  # noqa: E402
from helpers.fit import fit_lmm  # noqa: E402

FORMULA = "y ~ condition + (1 | cluster)"
SLOPES = "y ~ condition + (1 + condition | cluster)"
MANY_SLOPES = "y ~ x + (1 + x | g)"
SIZES = [10_000, 100_000, 326_362, 1_000_000]
QUICK_SIZES = [10_000, 100_000]
CLUSTERS = [24, 10_000]

#: Times one lmer fit per (CSV file, formula) pair in one R session; prints file, median, repeats,
#: REML criterion, and the second fixed effect.
R_TIMER = r"""
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
  cat(sprintf("%s,%.6f,%d,%.15g,%.15g\n", basename(p), median(times), length(times), REMLcrit(fit),
              unname(fixef(fit)[2])))
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


def slope_data(n_obs: int, n_clusters: int) -> pd.DataFrame:
    """Random intercepts and slopes on a numeric x in many clusters (fixed seed)."""
    rng = np.random.default_rng(13)
    g = rng.integers(0, n_clusters, n_obs)
    x = rng.normal(size=n_obs)
    b = rng.normal(size=(n_clusters, 2)) * [0.5, 0.3]
    y = 1.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=n_obs)
    return pd.DataFrame({"y": y, "x": x, "g": g})


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


def time_pair(floor, fit, repeats: int, budget: float) -> tuple[float, float, int, object]:
    """Medians of floor() and fit() timed in alternation (floor, fit, floor, fit, ...), so that both
    see the same state of a shared machine, whose speed drifts by tens of percent over minutes; the
    ratio of the two is then read from one stretch of time. Returns (floor, fit, runs, fit's result)."""
    floors, fits, result = [], [], None
    while True:
        gc.collect()
        start = time.perf_counter()
        floor()
        floors.append(time.perf_counter() - start)
        gc.collect()
        start = time.perf_counter()
        result = fit()
        fits.append(time.perf_counter() - start)
        if len(fits) >= repeats or sum(fits) > budget:
            return statistics.median(floors), statistics.median(fits), len(fits), result


def grouped_sum_floor(df: pd.DataFrame):
    """One pass: factorise the cluster labels, then counts, sums of y and of y^2 by cluster x condition."""
    codes, labels = pd.factorize(df["cluster"])
    cells = codes.astype(np.int64) * 2 + df["condition"].cat.codes.to_numpy()
    size = 2 * len(labels)
    y = df["y"].to_numpy()
    return (
        np.bincount(cells, minlength=size),
        np.bincount(cells, weights=y, minlength=size),
        np.bincount(cells, weights=y * y, minlength=size),
    )


def fit_memory(df: pd.DataFrame, formula: str) -> tuple[int, int]:
    """(peak bytes allocated during fit_lmm(df, formula) above what was allocated before, DataFrame bytes)."""
    size = int(df.memory_usage(deep=True).sum())
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fit_lmm(df, formula)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - before, size


def fit_statsmodels(df: pd.DataFrame, slopes: bool = False):
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extra = {"re_formula": "~condition"} if slopes else {}
        return smf.mixedlm("y ~ condition", df, groups=df["cluster"], **extra).fit()


def _peers(args) -> tuple[bool, bool, list[str]]:
    """Which peers run: (statsmodels, lme4, lines saying what was skipped and why)."""
    notes = []
    use_sm = not args.no_statsmodels
    if use_sm and importlib.util.find_spec("statsmodels") is None:
        use_sm = False
        notes.append("statsmodels: skipped (not installed)")
    elif not use_sm:
        notes.append("statsmodels: skipped (--no-statsmodels)")
    use_r = not args.no_r
    if not use_r:
        notes.append("lme4: skipped (--no-r)")
    elif shutil.which("Rscript") is None:
        use_r = False
        notes.append("lme4: skipped (Rscript is not on the PATH)")
    else:
        check = subprocess.run(
            ["Rscript", "-e", "suppressPackageStartupMessages(library(lme4))"],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            use_r = False
            notes.append("lme4: skipped (R has no lme4 package)")
    return use_sm, use_r, notes


def run_lme4(pairs: list[tuple[Path, str]], repeats: int, budget: float) -> dict[str, tuple]:
    """Time lmer in one R session; returns {file name: (median s, repeats, REML criterion, slope)}."""
    if not pairs:
        return {}
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as handle:
        handle.write(R_TIMER)
        script = handle.name
    try:
        out = subprocess.run(
            ["Rscript", script, str(repeats), str(budget)]
            + [item for path, formula in pairs for item in (str(path), formula)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(script)
    results = {}
    for line in out.strip().splitlines():
        name, median, count, crit, slope = line.split(",")
        results[name] = (float(median), int(count), float(crit), float(slope))
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


def _versions(use_r: bool) -> None:
    import scipy

    line = (
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"pandas {pd.__version__}"
    )
    if importlib.util.find_spec("statsmodels") is not None:
        import statsmodels

        line += f", statsmodels {statsmodels.__version__}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{line}; {os.cpu_count()} CPUs, load average {load:.2f} at the start")
    if use_r:
        version = subprocess.run(
            ["Rscript", "-e", 'cat(R.version.string, "lme4", format(packageVersion("lme4")))'],
            capture_output=True,
            text=True,
        ).stdout
        print(version.strip())


def run_goals(args) -> None:
    """The default run: every goal as a ratio measured in this run."""
    use_sm, use_r, notes = _peers(args)
    _versions(use_r)
    repeats = args.repeats or 7
    warm = make_data(2_000, 24)
    fit_lmm(warm, FORMULA)
    fit_lmm(warm, SLOPES)
    if use_sm:
        fit_statsmodels(warm)

    def say(text):
        print(f"  {text}", file=sys.stderr, flush=True)

    cases = {}  # name -> dict of measurements
    workdir = Path(tempfile.mkdtemp(prefix="fit_speed_"))
    r_pairs = []
    try:
        # random intercept, the question's size
        df = make_data(326_362, 24)
        case = cases["ri"] = {}
        case["floor"], case["ours"], case["ours_n"], fit = time_pair(
            lambda: grouped_sum_floor(df), lambda: fit_lmm(df, FORMULA), 3 * repeats, args.budget
        )
        case["slope"] = float(fit.fe_params.iloc[1])
        case["crit"] = fit.criterion
        if use_sm:
            case["sm"], case["sm_n"], sm = time_call(
                lambda: fit_statsmodels(df), max(repeats // 2, 1), args.budget
            )
            case["sm_slope"] = float(sm.fe_params.iloc[1])
        if use_r:
            path = workdir / "ri.csv"
            df.to_csv(path, index=False)
            r_pairs.append((path, FORMULA))
        say(f"random intercept, 326,362 rows: fit_lmm {_fmt(case['ours'])}")

        # random slopes, the question's size
        case = cases["rs"] = {}
        case["ours"], case["ours_n"], fit = time_call(
            lambda: fit_lmm(df, SLOPES), repeats, args.budget
        )
        case["crit"] = fit.criterion
        if use_sm:
            case["sm"], case["sm_n"], _ = time_call(lambda: fit_statsmodels(df, slopes=True), 1, 0)
        if use_r:
            r_pairs.append((workdir / "ri.csv", SLOPES))
        say(f"random slopes, 326,362 rows: fit_lmm {_fmt(case['ours'])}")
        df = None  # freed before the next data set

        # random intercept, many clusters
        df = make_data(1_000_000, 100_000)
        case = cases["ri_many"] = {}
        case["floor"], case["ours"], case["ours_n"], _ = time_pair(
            lambda: grouped_sum_floor(df), lambda: fit_lmm(df, FORMULA), 3 * repeats, args.budget
        )
        say(f"random intercept, 1e6 rows in 1e5 clusters: fit_lmm {_fmt(case['ours'])}")
        df = None  # freed before the next data set

        # random slopes, many clusters
        df = slope_data(1_000_000, 100_000)
        case = cases["rs_many"] = {}
        case["ours"], case["ours_n"], fit = time_call(
            lambda: fit_lmm(df, MANY_SLOPES), min(repeats, 3), args.budget
        )
        case["crit"] = fit.criterion
        if use_r:
            path = workdir / "rs_many.csv"
            df.to_csv(path, index=False)
            r_pairs.append((path, MANY_SLOPES))
        say(f"random slopes, 1e6 rows in 1e5 clusters: fit_lmm {_fmt(case['ours'])}")
        df = None  # freed before the next data set

        # memory at 1e7 rows
        df = make_data(10_000_000, 24)
        case = cases["memory"] = {}
        case["peak"], case["size"] = fit_memory(df, FORMULA)
        say(f"memory at 1e7 rows: peak {case['peak'] / 2**20:.0f} MiB above the data")
        df = None  # freed before the next data set

        if use_r:
            say("timing lme4 in R ...")
            # one R session per file, so that each formula reads its own file
            for path, formula in r_pairs:
                key = "ri" if formula == FORMULA else "rs" if formula == SLOPES else "rs_many"
                result = run_lme4([(path, formula)], 3, args.budget)[path.name]
                cases[key]["lme4"], cases[key]["lme4_n"] = result[0], result[1]
                cases[key]["lme4_crit"], cases[key]["lme4_slope"] = result[2], result[3]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def goal(text: str, value: float | None, target: float, at_most: bool) -> str:
        if value is None:
            return f"{text}: - (peer skipped)"
        met = value <= target if at_most else value >= target
        sign = "<=" if at_most else ">="
        shown = f"{value:.2f}x" if value < 10 else f"{value:.0f}x"
        return f"{text}: {shown} (goal {sign} {target:g}x: {'met' if met else 'NOT met'})"

    def ratio(a, b):
        return None if a is None or b is None else a / b

    ri, rs, many, rs_many, mem = (
        cases["ri"],
        cases["rs"],
        cases["ri_many"],
        cases["rs_many"],
        cases["memory"],
    )
    print("\nMedians of whole fits from a DataFrame (REML); ratios of times measured in this run")
    print(f"\n{FORMULA}: 326,362 rows, 24 clusters")
    print(
        f"  floor {_fmt(ri['floor'])}, fit_lmm {_fmt(ri['ours'])} ({ri['ours_n']} runs), statsmodels "
        f"{_fmt(ri.get('sm'))} ({ri.get('sm_n', 0)}), lme4 {_fmt(ri.get('lme4'))} ({ri.get('lme4_n', 0)})"
    )
    print("  " + goal("fit_lmm / floor", ratio(ri["ours"], ri["floor"]), 2, True))
    print("  " + goal("statsmodels / fit_lmm", ratio(ri.get("sm"), ri["ours"]), 50, False))
    print("  " + goal("lme4 / fit_lmm", ratio(ri.get("lme4"), ri["ours"]), 80, False))
    for key, name in (("sm_slope", "statsmodels"), ("lme4_slope", "lme4")):
        if key in ri:
            print(f"  |{name}'s stim slope - fit_lmm's|: {abs(ri[key] - ri['slope']):.1e}")
    print(f"\n{FORMULA}: 1,000,000 rows, 100,000 clusters")
    print(f"  floor {_fmt(many['floor'])}, fit_lmm {_fmt(many['ours'])} ({many['ours_n']} runs)")
    print("  " + goal("fit_lmm / floor", ratio(many["ours"], many["floor"]), 4, True))
    print(f"\n{FORMULA}: 10,000,000 rows, 24 clusters, memory (tracemalloc)")
    print(
        f"  DataFrame {mem['size'] / 2**20:.0f} MiB; the fit's peak above it "
        f"{mem['peak'] / 2**20:.0f} MiB"
    )
    print("  " + goal("peak / DataFrame", mem["peak"] / mem["size"], 1.5, True))
    print(f"\n{SLOPES}: 326,362 rows, 24 clusters")
    print(
        f"  fit_lmm {_fmt(rs['ours'])} ({rs['ours_n']} runs), statsmodels {_fmt(rs.get('sm'))} "
        f"({rs.get('sm_n', 0)}), lme4 {_fmt(rs.get('lme4'))} ({rs.get('lme4_n', 0)})"
    )
    print("  " + goal("statsmodels / fit_lmm", ratio(rs.get("sm"), rs["ours"]), 100, False))
    print("  " + goal("lme4 / fit_lmm", ratio(rs.get("lme4"), rs["ours"]), 100, False))
    if "lme4_crit" in rs:
        print(f"  REML criterion, fit_lmm minus lme4: {rs['crit'] - rs['lme4_crit']:.2e}")
    print(f"\n{MANY_SLOPES}: 1,000,000 rows, 100,000 clusters")
    print(
        f"  fit_lmm {_fmt(rs_many['ours'])} ({rs_many['ours_n']} runs), lme4 "
        f"{_fmt(rs_many.get('lme4'))} ({rs_many.get('lme4_n', 0)}); lme4 / fit_lmm "
        f"{_ratio(rs_many.get('lme4'), rs_many['ours'])}"
    )
    if "lme4_crit" in rs_many:
        print(f"  REML criterion, fit_lmm minus lme4: {rs_many['crit'] - rs_many['lme4_crit']:.2e}")
    if use_r:
        print("\nlme4 is timed inside R: R start-up and reading the CSV are excluded.")
    for line in notes:
        print(line)


def run_table(args) -> None:
    """``--table``: the random-intercept fit over sizes and cluster counts."""
    sizes = QUICK_SIZES if args.quick else SIZES
    repeats = args.repeats or (3 if args.quick else 5)
    sm_budget = args.sm_budget or (40.0 if args.quick else 150.0)
    use_sm, use_r, notes = _peers(args)
    _versions(use_r)

    # warm-up: imports and first-call costs are not part of any timing
    warm = make_data(2_000, 24)
    fit_lmm(warm, FORMULA)
    if use_sm:
        fit_statsmodels(warm)

    rows, skipped = [], []
    last_sm: dict[int, tuple[int, float]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="fit_speed_"))
    r_pairs = []
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
                if use_sm:
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
                    r_pairs.append((path, FORMULA))
                    row["csv"] = path.name
                rows.append(row)
                print(f"  measured {label}: ours {_fmt(ours)}", file=sys.stderr, flush=True)
        if use_r and r_pairs:
            print("  timing lme4 in R ...", file=sys.stderr, flush=True)
            timings = run_lme4(r_pairs, repeats, args.budget)
            for row in rows:
                if row.get("csv") in timings:
                    row["lme4"], row["lme4_n"], _, row["lme4_slope"] = timings[row["csv"]]
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
    print(f"Median wall time of one whole fit from a DataFrame (REML, {FORMULA})")
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
    for line in notes:
        print(line)
    if skipped:
        print("Skipped:")
        for line in skipped:
            print(f"  {line}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--table", action="store_true", help="the random-intercept table over sizes instead"
    )
    parser.add_argument("--quick", action="store_true", help="--table: 1e4 and 1e5 rows only")
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats per fit (goals 7; table 5, quick 3)"
    )
    parser.add_argument(
        "--budget", type=float, default=30.0, help="seconds per timing before stopping repeats"
    )
    parser.add_argument(
        "--sm-budget",
        type=float,
        default=None,
        help="--table: skip a statsmodels fit predicted to take longer (default 150 s, quick 40 s)",
    )
    parser.add_argument("--no-statsmodels", action="store_true")
    parser.add_argument("--no-r", action="store_true")
    args = parser.parse_args(argv)
    if args.table:
        run_table(args)
    else:
        run_goals(args)


if __name__ == "__main__":
    main()
