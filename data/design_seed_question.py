"""Re-derive the cell design behind ``helpers.seed.seed_question`` (writes ``seed_question_cells.csv``).

The question's two printouts (R's ``lm`` and ``lmer`` on 326,362 rows in 24 clusters) depend on the rows
only through each cluster-by-condition cell's count, mean and standard deviation. This script finds 48 such
cells that reproduce every printed number, in three steps:

0. **The lm plan.** ``lm``'s standard errors are ``s / sqrt(N_unstim)`` and ``s * sqrt(1/N_unstim +
   1/N_stim)``, so the printed SEs and residual SE ``s`` fix how many rows are ``unstim``. A grid search
   picks the count (145,691) and ``s`` (0.7409112) that keep all three furthest inside their rounding.
1. **Counts.** Cluster sizes are ``exp(a + spread * (z + skew * (z^2 - 1)))``, with ``z`` the normal
   scores of 24 ranks given to the clusters in a seeded order (a log-normal spread); each cluster's share
   of ``stim`` is ``expit(centre + share_spread * v)``, with ``v`` a seeded normal draw. The five knobs
   are solved so that the sizes add up to 326,362 rows, the ``unstim`` rows to the count of step 0, and
   the ``lmer`` standard errors and the count-only part of the REML criterion (``sum log(1 + n_i u) +
   log det A(u)``) match the printout at the printed variances. The counts are then rounded to whole
   rows. (These targets fix, roughly, the geometric and harmonic means of the sizes; a log-normal spread
   with SD of log size about 1.4 has just those, so the sizes run from a few hundred to about 100,000.)
2. **Means and SDs.** Cluster ``i``'s ``unstim`` mean is ``mu + b_i`` and its ``stim`` mean ``mu + b_i +
   delta + d_i``, with ``b_i = size_loading * size_z + share_loading * share_z + noise_scale * e_i *
   exp(hetero * size_z)`` (standardised log size and stim share, and a seeded draw ``e`` made orthogonal
   to them) and ``d_i`` a small seeded deviation (SD 0.03). Each cell's SD is a common scale times a
   seeded factor near 1. The seven knobs (``mu``, ``delta``, the scale, the two loadings, ``noise_scale``,
   ``hetero``) are solved for the seven remaining targets: the ``lm`` and ``lmer`` fixed effects, the
   ``lm`` residual SE, the REML optimum at the aimed ``theta`` (zero slope of the criterion) and the
   residual variance that makes the REML criterion the printed one.

Every evaluation works from sufficient statistics (``helpers.design.stats_from_cross_products`` and
``helpers.objective.profile``), never from rows, so a candidate costs well under a millisecond. Means and
SDs are stored with 10 decimals; :func:`check` then refits the stored table with
``helpers.fit.optimize_theta`` and prints each printed number next to the achieved one.

Run it from the repository root::

    python data/design_seed_question.py            # prints the check table, writes the CSV
    python data/design_seed_question.py --embed    # ... and updates the copy in helpers/seed.py
    python data/design_seed_question.py --check    # prints the check table only

The result is deterministic (fixed seeds, no random restarts).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.special
import scipy.stats

from helpers.design import SufficientStats, stats_from_cross_products
from helpers.fit import optimize_theta
from helpers.objective import criterion, profile
from helpers.seed import PRINTED

HERE = Path(__file__).resolve().parent
OUT = HERE / "seed_question_cells.csv"
MODULE = HERE.parent / "helpers" / "seed.py"  # holds an embedded copy of the CSV

N_OBS = 326_362
N_CLUSTERS = 24
SEED = 20240611
DECIMALS = 10  # means and SDs are stored with this many decimals

# The printed numbers and their printed decimals (the counts are fixed above, not targets).
TARGETS = {k: v for k, v in PRINTED.items() if k not in {"ols_df_resid", "n_obs", "n_groups"}}
LOG_2PI = float(np.log(2 * np.pi))

# Where inside each rounding interval the design aims. The centre of the interval, except for the
# cluster variance: the printed 0.09619 and its printed square root 0.3101 together allow only
# [0.096185, 0.096193), whose centre is 0.096189.
AIM_SIGMA2_GROUP = 0.096189

EFFECT_SD = 0.03  # SD of the clusters' own deviations from the common stim effect
SD_SPREAD = 0.08  # SD of the log cell SDs around their common scale


def _draws():
    """The seeded raw material of the design, drawn once in a fixed order."""
    rng = np.random.default_rng(SEED)

    def standardised(k):
        x = rng.standard_normal(k)
        return (x - x.mean()) / x.std()

    # cluster sizes: normal scores (Blom) of 24 ranks, assigned to the clusters in a seeded order
    ranks = rng.permutation(N_CLUSTERS) + 1
    return {
        "size": scipy.stats.norm.ppf((ranks - 0.375) / (N_CLUSTERS + 0.25)),
        "share": standardised(N_CLUSTERS),
        "intercept": standardised(N_CLUSTERS),
        "effect": standardised(N_CLUSTERS),
        "sd": rng.standard_normal((N_CLUSTERS, 2)),
    }


# ----------------------------------------------------------------------------------------------------
# Sufficient statistics of a cell design
# ----------------------------------------------------------------------------------------------------


def cell_stats(n0, n1, m0, m1, sd0, sd1) -> SufficientStats:
    """SufficientStats of ``y ~ condition + (1 | cluster)`` from per-cell counts, means and SDs."""
    n0 = np.asarray(n0, dtype=float)
    n1 = np.asarray(n1, dtype=float)
    counts = n0 + n1
    s0, s1 = n0 * m0, n1 * m1
    sum_x = np.column_stack([counts, n1])
    sum_y = s0 + s1
    xtx = np.array([[counts.sum(), n1.sum()], [n1.sum(), n1.sum()]])
    xty = np.array([sum_y.sum(), s1.sum()])
    yty = float(np.sum((n0 - 1) * sd0**2 + n0 * m0**2 + (n1 - 1) * sd1**2 + n1 * m1**2))
    return stats_from_cross_products(counts.round().astype(np.int64), sum_x, sum_y, xtx, xty, yty)


def count_only(n0, n1, sigma2_group, sigma2_resid):
    """The parts of the lmer printout that depend on the counts alone, at given variances.

    Returns the REML criterion minus its residual term ``(N - p)(1 + log(2 pi sigma^2))`` and the two
    standard errors ``sigma * sqrt(diag(A(u)^-1))``, with ``A(u) = X'X - sum_i c_i S_x,i S_x,i'`` and
    ``c_i = u / (1 + n_i u)``. Written out here (rather than through ``helpers.objective``) because stage 1
    treats the counts as continuous; :func:`check` confirms the rounded design with the package's own
    code.
    """
    n0 = np.asarray(n0, dtype=float)
    n1 = np.asarray(n1, dtype=float)
    n = n0 + n1
    u = sigma2_group / sigma2_resid
    c = u / (1.0 + n * u)
    sum_x = np.column_stack([n, n1])
    xtx = np.array([[n.sum(), n1.sum()], [n1.sum(), n1.sum()]])
    a = xtx - (sum_x * c[:, None]).T @ sum_x
    rest = float(np.log1p(n * u).sum() + np.linalg.slogdet(a)[1])
    se = np.sqrt(sigma2_resid * np.diag(np.linalg.inv(a)))
    return rest, se


def sigma2_for_criterion(n0, n1):
    """The residual variance that makes the REML criterion the printed one, given the counts."""
    sigma2 = TARGETS["sigma2_resid"][0]
    dof = N_OBS - 2
    for _ in range(4):
        rest, _ = count_only(n0, n1, AIM_SIGMA2_GROUP, sigma2)
        sigma2 = float(np.exp((TARGETS["criterion"][0] - rest) / dof - 1.0 - LOG_2PI))
    return sigma2


def _margin(value, name):
    """1 at the centre of the printed number's rounding interval, 0 at its edge, < 0 outside."""
    target, digits = TARGETS[name]
    return 1 - np.abs(value - target) / (0.5 * 10.0**-digits)


def ols_plan():
    """The ``unstim`` count and the residual SE that centre the three lm numbers in their rounding."""
    best = None
    sigma, digits = TARGETS["ols_sigma"]
    half = 0.5 * 10.0**-digits
    rse_grid = np.linspace(sigma - half, sigma + half, 1001)
    for n0 in range(145_400, 146_000):
        se0 = rse_grid / np.sqrt(n0)
        se1 = rse_grid * np.sqrt(1 / n0 + 1 / (N_OBS - n0))
        margin = np.minimum.reduce(
            [
                _margin(rse_grid, "ols_sigma"),
                _margin(se0, "ols_se_intercept"),
                _margin(se1, "ols_se_slope"),
            ]
        )
        k = int(np.argmax(margin))
        if best is None or margin[k] > best[0]:
            best = (float(margin[k]), n0, float(rse_grid[k]))
    return best[1], best[2]


# ----------------------------------------------------------------------------------------------------
# Stage 1: counts
# ----------------------------------------------------------------------------------------------------


def _sizes_shares(knobs, draws):
    a, spread, skew, logit_centre, share_spread = knobs
    z = draws["size"]
    sizes = np.exp(a + spread * (z + skew * (z**2 - 1)))
    shares = scipy.special.expit(logit_centre + share_spread * draws["share"])
    return sizes, shares


def solve_counts(draws, n_unstim):
    """Solve the five count knobs on continuous sizes, then round to whole rows."""
    sigma2_group = AIM_SIGMA2_GROUP
    sigma2_resid = TARGETS["sigma2_resid"][0]
    dof = N_OBS - 2
    rest_target = TARGETS["criterion"][0] - dof * (1.0 + LOG_2PI + np.log(sigma2_resid))

    def residuals(knobs):
        sizes, shares = _sizes_shares(knobs, draws)
        n1 = sizes * shares
        n0 = sizes - n1
        rest, se = count_only(n0, n1, sigma2_group, sigma2_resid)
        return [
            (sizes.sum() - N_OBS) / 1.0,
            (n0.sum() - n_unstim) / 1.0,
            (rest - rest_target) / 0.05,
            (se[0] - TARGETS["lmm_se_intercept"][0]) / 5e-7,
            (se[1] - TARGETS["lmm_se_slope"][0]) / 5e-7,
        ]

    start = [np.log(N_OBS / N_CLUSTERS) - 1.0, 1.45, 0.04, 0.22, 0.12]
    sol = scipy.optimize.least_squares(residuals, start, x_scale=[1, 0.1, 0.1, 0.1, 0.05])
    sizes, shares = _sizes_shares(sol.x, draws)

    n = np.round(sizes).astype(np.int64)
    n[np.argmax(n)] += N_OBS - n.sum()
    n1 = np.round(n * shares).astype(np.int64)
    n0 = n - n1
    # put the rounding remainder of the unstim total on the largest clusters, one row each
    diff = n_unstim - int(n0.sum())
    order = np.argsort(-n)
    for k in range(abs(diff)):
        i = order[k % N_CLUSTERS]
        n0[i] += np.sign(diff)
        n1[i] -= np.sign(diff)
    return n0, n1, sol


# ----------------------------------------------------------------------------------------------------
# Stage 2: means and SDs
# ----------------------------------------------------------------------------------------------------


def _covariates(draws, n0, n1):
    """Standardised log size and stim share of each cluster (the structured part of the means)."""
    n = n0 + n1
    log_n = np.log(n)
    share = n1 / n
    return (log_n - log_n.mean()) / log_n.std(), (share - share.mean()) / share.std()


def _cells(knobs, draws, size_z, share_z):
    """Cell means and SDs from the seven knobs of stage 2.

    ``b_i = size_loading * size_z + share_loading * share_z + noise_scale * e_i * exp(hetero * size_z)``
    is the cluster's shift, ``d_i`` (fixed, small) its own deviation from the common stim effect.
    """
    mu, delta, log_scale, size_loading, share_loading, noise_scale, hetero = knobs
    # the noise draw, made orthogonal to the structured part so that each knob means what it says
    basis = np.column_stack([np.ones_like(size_z), size_z, share_z])
    e = draws["intercept"] - basis @ np.linalg.lstsq(basis, draws["intercept"], rcond=None)[0]
    noise = e / e.std() * np.exp(hetero * size_z)
    b = size_loading * size_z + share_loading * share_z + noise_scale * noise
    d = EFFECT_SD * draws["effect"]
    m0 = mu + b
    m1 = mu + b + delta + d
    sd_pattern = np.exp(SD_SPREAD * draws["sd"])
    scale = np.exp(log_scale)
    return m0, m1, scale * sd_pattern[:, 0], scale * sd_pattern[:, 1]


def mean_residuals(knobs, draws, n0, n1, theta_star, sigma2_star, rse):
    """The seven targets of stage 2, each scaled by its rounding half-width."""
    size_z, share_z = _covariates(draws, n0, n1)
    stats = cell_stats(n0, n1, *_cells(knobs, draws, size_z, share_z))
    prof = profile(stats, theta_star)
    h = 1e-4 * theta_star
    slope = (criterion(stats, theta_star + h) - criterion(stats, theta_star - h)) / (2 * h)
    ols_sigma2 = stats.ete / (stats.n_obs - 2)
    return np.array(
        [
            (stats.beta_ols[0] - TARGETS["ols_intercept"][0]) / 5e-7,
            (stats.beta_ols[1] - TARGETS["ols_slope"][0]) / 5e-7,
            (ols_sigma2 - rse**2) / 1e-7,
            (prof.beta[0] - TARGETS["lmm_intercept"][0]) / 5e-7,
            (prof.beta[1] - TARGETS["lmm_slope"][0]) / 5e-7,
            (prof.sigma2 - sigma2_star) / 5e-9,
            slope / 1e-3,
        ]
    )


def solve_means(draws, n0, n1, rse, sigma2_star):
    """Solve the seven knobs of stage 2 (seven equations, seven unknowns)."""
    theta_star = float(np.sqrt(AIM_SIGMA2_GROUP / sigma2_star))
    start = [0.70, -0.10, np.log(0.67), -0.10, -0.05, 0.29, 0.0]
    args = (draws, n0, n1, theta_star, sigma2_star, rse)
    sol = scipy.optimize.least_squares(
        mean_residuals,
        start,
        args=args,
        x_scale=[0.1, 0.01, 0.1, 0.1, 0.1, 0.1, 0.1],
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    size_z, share_z = _covariates(draws, n0, n1)
    return _cells(sol.x, draws, size_z, share_z), sol


# ----------------------------------------------------------------------------------------------------
# Checks and output
# ----------------------------------------------------------------------------------------------------


def printout(table: pd.DataFrame) -> dict:
    """Every printed number, computed from a cell table (cluster, condition, n, mean, sd)."""
    wide = table.pivot(index="cluster", columns="condition", values=["n", "mean", "sd"])
    n0 = wide[("n", "unstim")].to_numpy()
    n1 = wide[("n", "stim")].to_numpy()
    stats = cell_stats(
        n0,
        n1,
        wide[("mean", "unstim")].to_numpy(),
        wide[("mean", "stim")].to_numpy(),
        wide[("sd", "unstim")].to_numpy(),
        wide[("sd", "stim")].to_numpy(),
    )
    theta, _ = optimize_theta(stats)
    prof = profile(stats, theta)
    n_obs = stats.n_obs
    sigma2_ols = stats.ete / (n_obs - 2)
    xtx = np.array([[n_obs, n1.sum()], [n1.sum(), n1.sum()]], dtype=float)
    se_ols = np.sqrt(sigma2_ols * np.diag(np.linalg.inv(xtx)))
    se_lmm = np.sqrt(np.diag(prof.cov_beta))
    return {
        "ols_intercept": stats.beta_ols[0],
        "ols_slope": stats.beta_ols[1],
        "ols_se_intercept": se_ols[0],
        "ols_se_slope": se_ols[1],
        "ols_sigma": np.sqrt(sigma2_ols),
        "lmm_intercept": prof.beta[0],
        "lmm_slope": prof.beta[1],
        "lmm_se_intercept": se_lmm[0],
        "lmm_se_slope": se_lmm[1],
        "sigma2_group": prof.sigma2_group,
        "sd_group": np.sqrt(prof.sigma2_group),
        "sigma2_resid": prof.sigma2,
        "sd_resid": np.sqrt(prof.sigma2),
        "criterion": prof.criterion,
    }


def check(table: pd.DataFrame, out=sys.stdout) -> bool:
    """Print each achieved number next to its target; True when every one rounds to the printout.

    The margin is 1 at the centre of the printed number's rounding interval and 0 at its edge.
    """
    got = printout(table)
    ok = True
    print(f"{'quantity':18} {'target':>12} {'achieved':>16} {'margin':>7}", file=out)
    for name, (target, digits) in TARGETS.items():
        value = float(got[name])
        hit = round(value, digits) == target
        ok &= hit
        margin = _margin(value, name)
        flag = "" if hit else "  MISSED"
        print(f"{name:18} {target:12.{digits}f} {value:16.10f} {margin:7.2f}{flag}", file=out)
    return ok


def design() -> pd.DataFrame:
    """Derive the cell table (cluster, condition, n, mean, sd), rounded as stored."""
    draws = _draws()
    n_unstim, rse = ols_plan()
    n0, n1, _ = solve_counts(draws, n_unstim)
    sigma2_star = sigma2_for_criterion(n0, n1)
    (m0, m1, sd0, sd1), _ = solve_means(draws, n0, n1, rse, sigma2_star)
    labels = [f"donor{k + 1:02d}" for k in range(N_CLUSTERS)]
    rows = []
    for i, label in enumerate(labels):
        rows.append((label, "unstim", int(n0[i]), m0[i], sd0[i]))
        rows.append((label, "stim", int(n1[i]), m1[i], sd1[i]))
    table = pd.DataFrame(rows, columns=["cluster", "condition", "n", "mean", "sd"])
    table["mean"] = table["mean"].round(DECIMALS)
    table["sd"] = table["sd"].round(DECIMALS)
    return table


def embed(csv_text: str, module: Path = MODULE) -> None:
    """Replace the embedded copy of the cell table in ``helpers/seed.py`` with ``csv_text``."""
    source = module.read_text()
    opening = '_CELLS_CSV = """\\\n'
    start = source.index(opening) + len(opening)
    end = source.index('"""', start)
    module.write_text(source[:start] + csv_text + source[end:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check only; write nothing")
    parser.add_argument(
        "--embed", action="store_true", help="also update the copy embedded in helpers/seed.py"
    )
    args = parser.parse_args(argv)
    table = design()
    ok = check(table)
    if not args.check:
        text = table.to_csv(index=False, float_format=f"%.{DECIMALS}f", lineterminator="\n")
        OUT.write_text(text)
        print(f"wrote {OUT.name} ({len(table)} cells)")
        if args.embed:
            embed(text)
            print(f"updated the copy in {MODULE.parent.name}/{MODULE.name}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
