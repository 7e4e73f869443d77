"""How fast is the parametric bootstrap? This package's ``bootstrap`` beside lme4's ``bootMer``.

The data are the question's own (``helpers.seed.seed_question``: 326,362 rows in 24 clusters), fitted by
REML with ``pSHP2 ~ condition + (1 | cluster)``.

- ``helpers.inference.bootstrap(fit, n)`` draws every replicate's sufficient statistics directly (no rows
  are simulated) and refits all replicates at once. It is timed for ``--n`` replicates (default 1000),
  best of ``--repeats`` runs, after one warm-up run.
- ``lme4::bootMer(fit, FUN, nsim)`` simulates all 326,362 rows for each replicate and refits them with
  lmer. That is slow, so it is timed with a **smaller** ``nsim`` (``--nsim-r``, default 20) on the same
  data, inside R with ``system.time`` (R's start-up, reading the CSV and the first fit are excluded), and
  the time per replicate is scaled up linearly to the same number of replicates, which the table says.
  It runs only when ``Rscript`` is on the PATH.

Usage::

    python benchmarks/bootstrap_speed.py              # about a minute, most of it in R
    python benchmarks/bootstrap_speed.py --no-r       # this package only

This script is not part of the test run.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package in this checkout, wherever the script is started from

import numpy as np  # noqa: E402

from helpers.fit import fit_lmm  # noqa: E402
from helpers.inference import bootstrap  # noqa: E402

FORMULA = "pSHP2 ~ condition + (1 | cluster)"

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[[1]])
d$condition <- factor(d$condition, levels = c("unstim", "stim"))
d$cluster <- factor(d$cluster)
nsim <- as.integer(args[[2]])
fit <- lmer(pSHP2 ~ condition + (1 | cluster), d)
stat <- function(m) c(fixef(m), sigma_group = sqrt(VarCorr(m)[[1]][1, 1]), sigma = sigma(m))
elapsed <- system.time(b <- bootMer(fit, stat, nsim = nsim, seed = 1))[["elapsed"]]
cat(sprintf("%.6f\n", elapsed))
"""


def question_data():
    """The question's data, or a simulated stand-in of the same shape if the seed module is absent."""
    try:
        from helpers.seed import seed_question
    except ImportError:  # pragma: no cover - the seed module is part of the package
        from helpers.data import simulate_clustered

        frame = simulate_clustered(n_clusters=24, n_obs=326_362, size_imbalance=1.6, seed=8)
        return frame.rename(columns={"y": "pSHP2"}), "simulated stand-in (helpers.seed missing)"
    return seed_question(), "helpers.seed.seed_question()"


def time_package(fit, n: int, repeats: int) -> float:
    bootstrap(fit, n=n, seed=0)  # warm-up
    best = np.inf
    for k in range(repeats):
        started = time.perf_counter()
        bootstrap(fit, n=n, seed=k + 1)
        best = min(best, time.perf_counter() - started)
    return float(best)


def time_bootmer(frame, nsim: int) -> float | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "question.csv"
        frame.to_csv(csv, index=False)
        script = Path(tmp) / "bootmer.R"
        script.write_text(R_SCRIPT)
        out = subprocess.run(
            [rscript, str(script), str(csv), str(nsim)],
            capture_output=True,
            text=True,
            check=True,
        )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="replicates for this package")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the best is kept)")
    parser.add_argument("--nsim-r", type=int, default=20, help="replicates for lme4's bootMer")
    parser.add_argument("--no-r", action="store_true", help="skip lme4")
    args = parser.parse_args(argv)

    frame, source = question_data()
    fit = fit_lmm(frame, FORMULA)
    print(f"data: {source}: {fit.n_obs:,} rows, {fit.n_groups} clusters; {FORMULA} (REML)")
    print(f"machine: {platform.platform()}, Python {platform.python_version()}")

    seconds = time_package(fit, args.n, args.repeats)
    rate = args.n / seconds
    print(
        f"helpers.inference.bootstrap: {args.n} replicates in {seconds:.3f} s "
        f"({rate:,.0f} replicates per second; best of {args.repeats})"
    )
    if args.no_r:
        return
    r_seconds = time_bootmer(frame, args.nsim_r)
    if r_seconds is None:
        print("lme4::bootMer: skipped (Rscript not found)")
        return
    per = r_seconds / args.nsim_r
    print(
        f"lme4::bootMer: {args.nsim_r} replicates in {r_seconds:.1f} s ({per:.2f} s per replicate; "
        f"measured with nsim = {args.nsim_r}, not {args.n})"
    )
    print(
        f"  scaled linearly to {args.n} replicates: about {per * args.n / 60:.0f} minutes, "
        f"{per * rate:,.0f} times as long as this package"
    )


if __name__ == "__main__":
    main()
