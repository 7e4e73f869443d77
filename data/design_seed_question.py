"""Re-derive the cell design behind ``helpers.seed.seed_question`` (writes ``seed_question_cells.csv``).

The question's two printouts (R's ``lm`` and ``lmer`` on 326,362 rows in 24 clusters) depend on the rows
only through each cluster-by-condition cell's count, mean and standard deviation. This script finds 48 such
cells that reproduce every printed number, in three steps:

0. **The lm plan.** ``lm``'s printout depends on the rows only through the number of ``unstim`` rows,
   the residual SE ``s`` and the two estimates: the SEs are ``s / sqrt(N_unstim)`` and ``s * sqrt(1 /
   N_unstim + 1 / N_stim)``, the t values are estimate / SE, and R-squared, adjusted R-squared and F
   follow from the slope, the counts and ``s``. A grid search picks the count (145,722), ``s``
   (0.740884) and the two estimates that keep all ten printed ``lm`` numbers furthest inside their
   rounding.
1. **Counts.** Cluster sizes are ``exp(a + spread * (z + skew * (z^2 - 1)))``, with ``z`` the normal
   scores of 24 ranks given to the clusters in a seeded order (a log-normal spread); each cluster's share
   of ``stim`` is ``expit(centre + share_spread * v + share_size * z)``, with ``v`` a seeded normal draw.
   The six knobs are solved so that the sizes add up to 326,362 rows, the ``unstim`` rows to the count
   of step 0, and the ``lmer`` standard errors, the correlation of the fixed effects and the count-only
   part of the REML criterion (``sum log(1 + n_i u) + log det A(u)``) match the printout at the printed
   variances. The counts are then rounded to whole rows. (These targets fix, roughly, the geometric and
   harmonic means of the sizes; a log-normal spread with SD of log size about 1.4 has just those, so the
   sizes run from a few hundred to about 100,000. The correlation, -0.022, is roughly minus the plain
   mean of the shares times ``sqrt(J / (u W_xx))``, so it asks for a plain mean share (0.587) above the
   row-weighted one (0.553): ``share_size`` makes small clusters the more stimulated.)
2. **Means and SDs.** Cluster ``i``'s ``unstim`` mean is ``mu + b_i`` and its ``stim`` mean ``mu + b_i +
   delta + d_i``, with ``b_i = size_loading * size_z + share_loading * share_z + noise_scale * e_i *
   exp(hetero * size_z)`` (standardised log size and stim share, and a seeded draw ``e`` made orthogonal
   to them) and ``d_i`` a small seeded deviation (SD 0.03). Each cell's SD is a common scale times a
   seeded factor near 1. The seven knobs (``mu``, ``delta``, the scale, the two loadings, ``noise_scale``,
   ``hetero``) are solved for the seven remaining targets: the ``lm`` and ``lmer`` fixed effects, the
   ``lm`` residual SE, the REML optimum at the aimed ``theta`` (zero slope of the criterion) and the
   residual variance that makes the REML criterion the printed one.

The residual quantiles of both printouts are not targets: they depend on the rows within the cells, and
the lm quartiles also on where the largest clusters sit (set in step 2 for other targets). A trial showed
that a common within-cell shape can match the lmer quartiles exactly, but then misses the lm quartiles by
0.08 to 0.11; matching both needs stages 2 and 3 solved together, which this script does not do.

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
from helpers.seed import PRINTED, QUANTILE_SUFFIXES

HERE = Path(__file__).resolve().parent
OUT = HERE / "seed_question_cells.csv"
MODULE = HERE.parent / "helpers" / "seed.py"  # holds an embedded copy of the CSV

N_OBS = 326_362
N_CLUSTERS = 24
SEED = 20240611
DECIMALS = 10  # means and SDs are stored with this many decimals

# The printed numbers and their printed decimals (the counts are fixed above, not targets; the
# residual quantiles are matched by the rows, stage 3, not by the cells).
TARGETS = {
    k: v
    for k, v in PRINTED.items()
    if k not in {"ols_df_resid", "n_obs", "n_groups"} and not k.endswith(QUANTILE_SUFFIXES)
}
LOG_2PI = float(np.log(2 * np.pi))

# Where inside the rounding intervals the design aims. A printed estimate, its printed SE and its printed
# t value together allow less than each alone (lmer's slope: the estimate in [-0.0976825, -0.0976815),
# the SE in [0.0023745, 0.0023755) and the t value in (-41.145, -41.135] leave SEs up to 0.0023747 only),
# so the aims below sit inside the joint intervals, not at the centre of each. The printed cluster
# variance 0.09619 and its printed square root 0.3101 together allow only [0.096185, 0.096193).
AIM_SIGMA2_GROUP = 0.096189
AIM_LMM = {
    # t = 11.35 needs SE <= estimate / 11.345: with the estimate at 0.7191394 the SE must lie in
    # [0.0633875, 0.0633883], and lme4's default optimiser stops about 2e-7 above the optimum's SE
    "lmm_intercept": 0.7191394,
    "lmm_se_intercept": 0.0633877,
    "lmm_slope": -0.0976823,
    "lmm_se_slope": 0.002374585,
    "lmm_corr": -0.0220,
}

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

    Returns the REML criterion minus its residual term ``(N - p)(1 + log(2 pi sigma^2))``, the two
    standard errors ``sigma * sqrt(diag(A(u)^-1))`` and the correlation of the fixed effects (from
    ``A(u)^-1``), with ``A(u) = X'X - sum_i c_i S_x,i S_x,i'`` and ``c_i = u / (1 + n_i u)``. Written out
    here (rather than through ``helpers.objective``) because stage 1 treats the counts as continuous;
    :func:`check` confirms the rounded design with the package's own code.
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
    a_inv = np.linalg.inv(a)
    se = np.sqrt(sigma2_resid * np.diag(a_inv))
    corr = a_inv[0, 1] / np.sqrt(a_inv[0, 0] * a_inv[1, 1])
    return rest, se, corr


def sigma2_for_criterion(n0, n1):
    """The residual variance that makes the REML criterion the printed one, given the counts."""
    sigma2 = TARGETS["sigma2_resid"][0]
    dof = N_OBS - 2
    for _ in range(4):
        rest, _, _ = count_only(n0, n1, AIM_SIGMA2_GROUP, sigma2)
        sigma2 = float(np.exp((TARGETS["criterion"][0] - rest) / dof - 1.0 - LOG_2PI))
    return sigma2


def _margin(value, name):
    """1 at the centre of the printed number's rounding interval, 0 at its edge, < 0 outside."""
    target, digits = TARGETS[name]
    return 1 - np.abs(value - target) / (0.5 * 10.0**-digits)


def lm_printout(n0, rse, est0, est1) -> dict:
    """The numbers ``summary(lm(...))`` prints, from the unstim count, residual SE and the two estimates."""
    n0 = np.asarray(n0, dtype=float)
    n1 = N_OBS - n0
    se0 = rse / np.sqrt(n0)
    se1 = rse * np.sqrt(1 / n0 + 1 / n1)
    ssr = est1**2 * n0 * n1 / N_OBS  # the regression sum of squares of a two-group comparison
    rss = rse**2 * (N_OBS - 2)
    r2 = ssr / (ssr + rss)
    return {
        "ols_intercept": est0,
        "ols_se_intercept": se0,
        "ols_t_intercept": est0 / se0,
        "ols_slope": est1,
        "ols_se_slope": se1,
        "ols_t_slope": est1 / se1,
        "ols_sigma": rse,
        "ols_r2": r2,
        "ols_adj_r2": 1 - (1 - r2) * (N_OBS - 1) / (N_OBS - 2),
        "ols_f": ssr / rse**2,
    }


def ols_plan():
    """The unstim count, residual SE and lm estimates that keep every lm number inside its rounding.

    The lm printout depends on the rows only through these four numbers. A grid search maximises the
    smallest margin (1 at the centre of a printed number's rounding interval, 0 at its edge) over the
    ten printed lm numbers: estimates, SEs, t values, residual SE, R-squared, adjusted R-squared, F.
    """
    sigma, digits = TARGETS["ols_sigma"]
    half = 0.5 * 10.0**-digits
    rse = np.linspace(sigma - half, sigma + half, 401)[:, None]
    est0 = TARGETS["ols_intercept"][0] + np.linspace(-4.5e-7, 4.5e-7, 19)[None, :]
    est1 = TARGETS["ols_slope"][0] + np.linspace(-4.5e-7, 4.5e-7, 19)[None, :]
    best = None
    for n0 in range(145_500, 145_900):
        got0 = lm_printout(n0, rse, est0, TARGETS["ols_slope"][0])
        m0 = np.minimum(
            _margin(got0["ols_intercept"], "ols_intercept"),
            _margin(got0["ols_t_intercept"], "ols_t_intercept"),
        )
        got1 = lm_printout(n0, rse, TARGETS["ols_intercept"][0], est1)
        m1 = np.minimum.reduce(
            np.broadcast_arrays(
                *[
                    _margin(got1[k], k)
                    for k in ("ols_slope", "ols_t_slope", "ols_r2", "ols_adj_r2", "ols_f")
                ]
            )
        )
        common = np.minimum.reduce(
            [_margin(got0[k], k) for k in ("ols_se_intercept", "ols_se_slope", "ols_sigma")]
        )[:, 0]  # shape (401,): these depend on the count and the residual SE only
        i0, i1 = m0.argmax(axis=1), m1.argmax(axis=1)
        total = np.minimum.reduce([common, m0.max(axis=1), m1.max(axis=1)])
        k = int(np.argmax(total))
        if best is None or total[k] > best[0]:
            best = (
                float(total[k]),
                n0,
                float(rse[k, 0]),
                float(est0[0, i0[k]]),
                float(est1[0, i1[k]]),
            )
    return best[1:]


# ----------------------------------------------------------------------------------------------------
# Stage 1: counts
# ----------------------------------------------------------------------------------------------------


def _sizes_shares(knobs, draws):
    a, spread, skew, logit_centre, share_spread, share_size = knobs
    z = draws["size"]
    sizes = np.exp(a + spread * (z + skew * (z**2 - 1)))
    # the stim share falls with size (share_size < 0): the correlation of the fixed effects needs the
    # plain mean of the shares above the row-weighted one
    shares = scipy.special.expit(logit_centre + share_spread * draws["share"] + share_size * z)
    return sizes, shares


def solve_counts(draws, n_unstim):
    """Solve the six count knobs on continuous sizes, then round to whole rows."""
    sigma2_group = AIM_SIGMA2_GROUP
    sigma2_resid = TARGETS["sigma2_resid"][0]
    dof = N_OBS - 2
    rest_target = TARGETS["criterion"][0] - dof * (1.0 + LOG_2PI + np.log(sigma2_resid))

    def residuals(knobs):
        sizes, shares = _sizes_shares(knobs, draws)
        n1 = sizes * shares
        n0 = sizes - n1
        rest, se, corr = count_only(n0, n1, sigma2_group, sigma2_resid)
        return [
            (sizes.sum() - N_OBS) / 1.0,
            (n0.sum() - n_unstim) / 1.0,
            (rest - rest_target) / 0.05,
            (se[0] - AIM_LMM["lmm_se_intercept"]) / 5e-8,
            (se[1] - AIM_LMM["lmm_se_slope"]) / 5e-9,
            (corr - AIM_LMM["lmm_corr"]) / 5e-5,
        ]

    start = [np.log(N_OBS / N_CLUSTERS) - 1.0, 1.45, 0.04, 0.22, 0.12, -0.05]
    sol = scipy.optimize.least_squares(
        residuals, start, x_scale=[1, 0.1, 0.1, 0.1, 0.05, 0.05], xtol=1e-14, ftol=1e-14, gtol=1e-14
    )
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


def mean_residuals(knobs, draws, n0, n1, theta_star, sigma2_star, lm_aims):
    """The seven targets of stage 2, each scaled by its rounding half-width."""
    size_z, share_z = _covariates(draws, n0, n1)
    stats = cell_stats(n0, n1, *_cells(knobs, draws, size_z, share_z))
    prof = profile(stats, theta_star)
    h = 1e-4 * theta_star
    slope = (criterion(stats, theta_star + h) - criterion(stats, theta_star - h)) / (2 * h)
    ols_sigma2 = stats.ete / (stats.n_obs - 2)
    rse, est0, est1 = lm_aims
    return np.array(
        [
            (stats.beta_ols[0] - est0) / 5e-8,
            (stats.beta_ols[1] - est1) / 5e-8,
            (ols_sigma2 - rse**2) / 1e-8,
            (prof.beta[0] - AIM_LMM["lmm_intercept"]) / 5e-8,
            (prof.beta[1] - AIM_LMM["lmm_slope"]) / 5e-8,
            (prof.sigma2 - sigma2_star) / 5e-9,
            slope / 1e-3,
        ]
    )


def solve_means(draws, n0, n1, lm_aims, sigma2_star):
    """Solve the seven knobs of stage 2 (seven equations, seven unknowns)."""
    theta_star = float(np.sqrt(AIM_SIGMA2_GROUP / sigma2_star))
    start = [0.70, -0.10, np.log(0.67), -0.10, -0.05, 0.29, 0.0]
    args = (draws, n0, n1, theta_star, sigma2_star, lm_aims)
    # Levenberg-Marquardt from the fixed start, then a trust-region polish from where it stopped
    sol = scipy.optimize.least_squares(
        mean_residuals,
        start,
        args=args,
        method="lm",
        x_scale=[0.1, 0.01, 0.1, 0.1, 0.1, 0.1, 0.1],
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    sol = scipy.optimize.least_squares(
        mean_residuals,
        sol.x,
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
    lm = lm_printout(n0.sum(), np.sqrt(sigma2_ols), stats.beta_ols[0], stats.beta_ols[1])
    assert np.allclose([lm["ols_se_intercept"], lm["ols_se_slope"]], se_ols, rtol=1e-12, atol=0)
    return {
        **lm,
        "lmm_intercept": prof.beta[0],
        "lmm_slope": prof.beta[1],
        "lmm_se_intercept": se_lmm[0],
        "lmm_se_slope": se_lmm[1],
        "lmm_t_intercept": prof.beta[0] / se_lmm[0],
        "lmm_t_slope": prof.beta[1] / se_lmm[1],
        "lmm_corr": prof.cov_beta[0, 1] / (se_lmm[0] * se_lmm[1]),
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
    n_unstim, rse, est0, est1 = ols_plan()
    n0, n1, _ = solve_counts(draws, n_unstim)
    sigma2_star = sigma2_for_criterion(n0, n1)
    (m0, m1, sd0, sd1), _ = solve_means(draws, n0, n1, (rse, est0, est1), sigma2_star)
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
