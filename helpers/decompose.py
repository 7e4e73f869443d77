r"""Why pooled OLS and the random-intercept model give different fixed effects.

The mixed model's fixed effects are generalised least squares (GLS) with the fitted variances plugged in.
GLS can be read in three equivalent ways, and this module computes each of them from the per-cluster
sufficient statistics (never by refitting per cluster from rows):

1. **Quasi-demeaning.** With lambda_i = 1 - sqrt(sigma^2 / (sigma^2 + n_i sigma_b^2)), GLS is OLS of
   y_ij - lambda_i ybar_i on x_ij - lambda_i xbar_i (the intercept column becomes 1 - lambda_i).
   lambda_i = 0 gives pooled OLS; lambda_i = 1 gives the within (fixed-effects) estimator.
2. **A within/between blend.** With W_xx the within-cluster cross-products,
   w_i = 1 / (sigma_b^2 + sigma^2 / n_i) and B_w = sum_i w_i xbar_i xbar_i',

       beta = (W_xx + sigma^2 B_w)^{-1} (W_xx beta_W + sigma^2 B_w beta_B,w),

   exactly, for unbalanced data too. beta_W is the within estimator, beta_B,w the between regression of
   the cluster means weighted by w_i.
3. **Cluster weights.** In the intercept-only model the estimate is sum_i w_i ybar_i / sum_i w_i: OLS
   weighs cluster i by n_i / N, the mixed model by w_i / sum w, which tends to 1 / J when n_i sigma_b^2 is
   much larger than sigma^2.

:func:`decompose` fits both models and returns all of these side by side.

Numerics
--------
Every estimator is written as pooled OLS plus a correction built from the per-cluster sums of the OLS
residuals, in the QR basis of :class:`helpers.design.SufficientStats`, so the sums stay residual-sized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg

from .design import Design, SufficientStats
from .engines import as_design
from .fit import fit_lmm, ols_from_design
from .kernel import blocks_from_stats, evaluate
from .objective import profile
from .results import LmmResult, OlsResult, PandasCopies
from .validate import DataError

__all__ = [
    "Decomposition",
    "WithinBetweenBlend",
    "decompose",
    "assemble_decomposition",
    "within_estimator",
    "between_estimator",
    "large_theta_limit",
    "within_between_blend",
    "cluster_table",
    "quasi_demean",
    "fixed_effect_path",
    "default_thetas",
    "RANDOM_SLOPES_NOTE",
]

#: Why a model with random slopes has no within/between decomposition (the report prints it instead).
RANDOM_SLOPES_NOTE = (
    "With random slopes the mixed model's fixed effects are not a blend of the within and between "
    "estimators (each cluster's weight differs from term to term), so the within/between "
    "decomposition, the cluster weights, the design effect and the one-theta figures are not shown."
)

# A coefficient counts as identified by a cross-product matrix when its unit vector lies in the matrix's
# row space up to this tolerance (after scaling the columns to unit norm).
_RANK_TOL = 1e-9


def _names(stats: SufficientStats, term_names) -> list[str]:
    p = stats.n_params
    names = list(term_names) if term_names is not None else [f"x{k}" for k in range(p)]
    if len(names) != p:
        raise ValueError(f"term_names has {len(names)} names for {p} fixed effects.")
    return names


def _check_theta(theta) -> float:
    theta = float(theta)
    if not np.isfinite(theta) or theta < 0:
        raise ValueError(f"theta must be a finite number >= 0, got {theta!r}")
    return theta


def _cluster_means(stats: SufficientStats):
    """Cluster means of x (J, p) and of the OLS residual (J,)."""
    n = stats.counts.astype(float)
    return stats.sum_x / n[:, None], stats.sum_e / n


def _within_cross(stats: SufficientStats):
    """W_xx = sum_ij (x_ij - xbar_i)(x_ij - xbar_i)' and W_xe = sum_ij (x_ij - xbar_i) e_ij."""
    r = stats.r_factor
    w_xx = r.T @ stats.within_qq @ r
    w_xe = r.T @ stats.within_qe
    return 0.5 * (w_xx + w_xx.T), w_xe


def _solve_psd(matrix: np.ndarray, rhs: np.ndarray, scale: np.ndarray):
    """Minimum-norm solution of matrix @ d = rhs, and which coordinates it identifies.

    The columns are scaled to ``scale`` first, so the rank decision does not depend on units. Coordinate j
    is identified when the unit vector e_j lies in the row space of the matrix.
    """
    d_inv = 1.0 / scale
    scaled = matrix * np.outer(d_inv, d_inv)
    values, vectors = np.linalg.eigh(0.5 * (scaled + scaled.T))
    top = max(values.max(), 0.0)
    keep = values > _RANK_TOL * top if top > 0 else np.zeros_like(values, dtype=bool)
    basis = vectors[:, keep]
    solution = d_inv * (basis @ ((basis.T @ (d_inv * rhs)) / values[keep]))
    identified = np.einsum("jk,jk->j", basis, basis) > 1.0 - 1e-6
    return solution, identified


def _solve_lstsq(design: np.ndarray, rhs: np.ndarray, scale: np.ndarray):
    """Minimum-norm least squares of rhs on design, and which coefficients are estimable.

    Rank decisions are made after dividing each column by ``scale``, the size an informative column
    would have (for cluster means: the column's root mean square in X times the root of the summed
    weights), not by the column's own norm: a column of cluster means that are all rounding noise
    (a predictor centred within clusters, means ~1e-16 of its scale) is then recognised as empty rather
    than blown up to 1e15.
    """
    scaled = design / scale
    u, s, vt = np.linalg.svd(scaled, full_matrices=False)
    top = max(float(s.max()), 1.0) if s.size else 1.0
    keep = s > _RANK_TOL**0.5 * top
    v = vt[keep].T
    coef = (v @ ((u[:, keep].T @ rhs) / s[keep])) / scale
    identified = np.einsum("jk,jk->j", v, v) > 1.0 - 1e-6
    empty = np.linalg.norm(scaled, axis=0) <= _RANK_TOL**0.5 * top
    return coef, identified, empty


def _between_reasons(names, identified, empty) -> dict:
    """Why each coefficient the between regression cannot estimate is NaN."""
    reasons = {}
    for name, ok, zero in zip(names, identified, empty, strict=True):
        if ok:
            continue
        reasons[name] = (
            "its cluster means are zero up to rounding (the column is centred within clusters), so the "
            "cluster means carry no information about it"
            if zero
            else "its cluster means are a linear combination of the other terms' cluster means"
        )
    return reasons


def _column_scale(stats: SufficientStats) -> np.ndarray:
    scale = np.sqrt(np.einsum("ij,ij->j", stats.r_factor, stats.r_factor))  # column norms of X
    return np.where(scale > 0, scale, 1.0)


def _within_full(stats: SufficientStats):
    w_xx, w_xe = _within_cross(stats)
    delta, identified = _solve_psd(w_xx, w_xe, _column_scale(stats))
    return stats.beta_ols + delta, identified, w_xx


def within_estimator(stats: SufficientStats, term_names=None) -> pd.Series:
    """The within (fixed-effects) estimator: OLS with one dummy per cluster, from sufficient statistics.

    Only coefficients of covariates that vary within clusters are identified. The others (always the
    intercept, and any covariate that is constant within every cluster, such as a county-level
    measurement) are returned as NaN, so the Series lines up with the mixed model's fixed effects.

    Parameters
    ----------
    stats : SufficientStats
    term_names : list of str, optional

    Returns
    -------
    pandas.Series
        Named ``"within"``.

    Examples
    --------
    Sleepstudy is balanced (every subject has days 0 to 9), so the within slope equals the pooled slope.

    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("sleepstudy"), "Reaction ~ Days + (1 | Subject)")
    >>> within_estimator(d.stats, d.term_names).round(5).to_dict()
    {'Intercept': nan, 'Days': 10.46729}
    """
    beta, identified, _ = _within_full(stats)
    return pd.Series(
        np.where(identified, beta, np.nan), index=_names(stats, term_names), name="within"
    )


def _between_full(stats: SufficientStats, weights=None):
    xbar, ebar = _cluster_means(stats)
    w = np.ones(len(ebar)) if weights is None else np.asarray(weights, dtype=float)
    sqrt_w = np.sqrt(w)
    scale = _column_scale(stats) / np.sqrt(stats.n_obs) * np.sqrt(w.sum())
    delta, identified, empty = _solve_lstsq(xbar * sqrt_w[:, None], ebar * sqrt_w, scale)
    return stats.beta_ols + delta, identified, empty


def between_estimator(stats: SufficientStats, term_names=None, weights=None) -> pd.Series:
    """The between estimator: least squares of the cluster means of y on the cluster means of x.

    Each cluster is one row (unweighted unless ``weights`` is given), whatever its size. Coefficients that
    the cluster means cannot separate (for example a covariate whose mean is the same in every cluster,
    as in a balanced design, or one centred within clusters, whose means are rounding noise) are returned
    as NaN, and ``attrs["not_identified"]`` maps each such term to the reason. Rank decisions are made
    relative to each column's own scale in X, so they do not depend on units.

    Parameters
    ----------
    stats : SufficientStats
    term_names : list of str, optional
    weights : array_like, shape (J,), optional
        Per-cluster weights (``w_i`` gives the weighted between regression of the blend).

    Returns
    -------
    pandas.Series
        Named ``"between"``.

    Examples
    --------
    In an intercept-only model the between estimate is the unweighted mean of the cluster means.

    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> df = load_dataset("radon")
    >>> d = build_design(df, "log_radon ~ 1 + (1 | county)")
    >>> means = df.groupby("county", observed=True)["log_radon"].mean()
    >>> bool(np.isclose(between_estimator(d.stats, d.term_names)["Intercept"], means.mean()))
    True
    """
    beta, identified, empty = _between_full(stats, weights)
    names = _names(stats, term_names)
    out = pd.Series(np.where(identified, beta, np.nan), index=names, name="between")
    out.attrs["not_identified"] = _between_reasons(names, identified, empty)
    return out


def large_theta_limit(stats: SufficientStats, term_names=None) -> pd.Series:
    """The fixed effects as theta = sigma_b / sigma grows without bound.

    For terms that vary within clusters the limit is the within estimator. The remaining terms (the
    intercept and cluster-level covariates) come from the unweighted between regression of the cluster
    means, adjusted for the within-cluster terms: with equal cluster weights, the intercept of an
    intercept-only model tends to the plain mean of the cluster means.

    Parameters
    ----------
    stats : SufficientStats
    term_names : list of str, optional

    Returns
    -------
    pandas.Series
        Named ``"theta_infinity"``; NaN for terms identified by neither part.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> from helpers.objective import profile
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> limit = large_theta_limit(d.stats, d.term_names)
    >>> bool(np.allclose(profile(d.stats, 1e3).beta, limit, atol=1e-4))
    True
    """
    names = _names(stats, term_names)
    beta_w, within_ok, _ = _within_full(stats)
    xbar, ebar = _cluster_means(stats)
    beta = np.full(stats.n_params, np.nan)
    beta[within_ok] = beta_w[within_ok]
    rest = ~within_ok
    if rest.any():
        # y-bar_i = xbar_i' beta_ols + ebar_i; move the within-identified part to the left-hand side
        target = ebar - xbar[:, within_ok] @ (beta_w[within_ok] - stats.beta_ols[within_ok])
        scale = _column_scale(stats)[rest] / np.sqrt(stats.n_obs) * np.sqrt(len(ebar))
        delta, ok, _ = _solve_lstsq(xbar[:, rest], target, scale)
        beta[np.flatnonzero(rest)[ok]] = (stats.beta_ols[rest] + delta)[ok]
    return pd.Series(beta, index=names, name="theta_infinity")


@dataclass(frozen=True, eq=False)
class WithinBetweenBlend(PandasCopies):
    """The mixed model's fixed effects as a matrix-weighted blend of the within and between estimators.

    beta = M_W beta_W + M_B beta_B,w, with M_W = (W_xx + sigma^2 B_w)^{-1} W_xx and
    M_B = (W_xx + sigma^2 B_w)^{-1} sigma^2 B_w, so that M_W + M_B = I.

    Attributes
    ----------
    theta : float
    within_cross : pandas.DataFrame
        W_xx, the within-cluster cross-products of X.
    between_cross : pandas.DataFrame
        sigma^2 B_w = sum_i n_i / (1 + n_i theta^2) xbar_i xbar_i' (it depends on theta only).
    beta_within : pandas.Series
        The within estimator (NaN where not identified; those columns of ``weight_within`` are zero).
    beta_between : pandas.Series
        The between regression weighted by w_i (NaN where not identified).
    weight_within, weight_between : pandas.DataFrame
        M_W and M_B. Row j says how term j's estimate draws on each term's within and between estimate.
    beta : pandas.Series
        The blend; equal to the mixed model's fixed effects at this theta.
    """

    theta: float
    within_cross: pd.DataFrame
    between_cross: pd.DataFrame
    beta_within: pd.Series
    beta_between: pd.Series
    weight_within: pd.DataFrame
    weight_between: pd.DataFrame
    beta: pd.Series


def within_between_blend(
    stats: SufficientStats, theta: float, term_names=None
) -> WithinBetweenBlend:
    """Write the GLS fixed effects at ``theta`` as a blend of the within and between estimators.

    Parameters
    ----------
    stats : SufficientStats
    theta : float
        sigma_b / sigma, for example a fit's ``theta``.
    term_names : list of str, optional

    Returns
    -------
    WithinBetweenBlend

    Notes
    -----
    beta = (W_xx + sigma^2 B_w)^{-1} (W_xx beta_W + sigma^2 B_w beta_B,w), with
    w_i = 1 / (sigma_b^2 + sigma^2 / n_i). The within and between estimates enter only through
    W_xx beta_W and B_w beta_B,w, which are unique even where a coefficient is not identified, so the
    identity is exact for unbalanced data and for cluster-level covariates.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fit = fit_lmm(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> blend = within_between_blend(fit.stats, fit.theta, list(fit.fe_params.index))
    >>> bool(np.allclose(blend.beta, fit.fe_params, rtol=1e-8, atol=0))
    True
    >>> round(float(blend.weight_within.loc["floor", "floor"]), 3)
    0.92
    """
    theta = _check_theta(theta)
    names = _names(stats, term_names)
    u = theta * theta
    n = stats.counts.astype(float)
    xbar, _ = _cluster_means(stats)
    g = n / (1.0 + n * u)  # sigma^2 w_i
    beta_w, within_ok, w_xx = _within_full(stats)
    beta_b, between_ok, _ = _between_full(stats, weights=g)
    b_cross = (xbar * g[:, None]).T @ xbar
    total = w_xx + b_cross
    chol = scipy.linalg.cho_factor(total)
    m_w = scipy.linalg.cho_solve(chol, w_xx)
    m_b = scipy.linalg.cho_solve(chol, b_cross)
    # Where a coefficient is not identified, its column of M is zero, so any solution works: use the
    # minimum-norm ones internally and report NaN.
    beta = m_w @ beta_w + m_b @ beta_b

    def frame(a):
        return pd.DataFrame(a, index=names, columns=names)

    return WithinBetweenBlend(
        theta=theta,
        within_cross=frame(w_xx),
        between_cross=frame(b_cross),
        beta_within=pd.Series(np.where(within_ok, beta_w, np.nan), index=names, name="within"),
        beta_between=pd.Series(
            np.where(between_ok, beta_b, np.nan), index=names, name="between_weighted"
        ),
        weight_within=frame(m_w),
        weight_between=frame(m_b),
        beta=pd.Series(beta, index=names, name="blend"),
    )


def cluster_table(
    stats: SufficientStats,
    theta: float,
    group_labels=None,
    beta=None,
) -> pd.DataFrame:
    """One row per cluster: its size, quasi-demeaning factor, weights and shrinkage.

    Parameters
    ----------
    stats : SufficientStats
    theta : float
        sigma_b / sigma. The table depends on sigma^2 and sigma_b^2 only through their ratio theta^2.
    group_labels : sequence, optional
        The index; 0 .. J - 1 by default.
    beta : array_like, optional
        Fixed effects for the ``ranef`` column; by default the GLS estimate at ``theta``.

    Returns
    -------
    pandas.DataFrame
        Columns:

        - ``n``: the cluster size n_i;
        - ``lambda``: 1 - sqrt(sigma^2 / (sigma^2 + n_i sigma_b^2)), the quasi-demeaning factor;
        - ``weight_ols``: n_i / N, the cluster's share of the pooled OLS intercept (intercept-only model);
        - ``weight_lmm``: w_i / sum(w), with w_i = 1 / (sigma_b^2 + sigma^2 / n_i), its share of the
          mixed model's intercept (intercept-only model);
        - ``shrinkage``: k_i = n_i sigma_b^2 / (n_i sigma_b^2 + sigma^2) = 1 - (1 - lambda_i)^2, the share of
          the cluster's raw deviation that its conditional mode keeps (1 = no shrinkage);
        - ``pooling_factor``: 1 - k_i, the pull toward the overall estimate (1 = complete pooling);
        - ``mean_response``: the cluster mean of y (the no-pooling estimate of an intercept-only model);
        - ``ranef``: the conditional mode k_i (ybar_i - xbar_i' beta).

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fit = fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> table = cluster_table(fit.stats, fit.theta, fit.ranef.index)
    >>> table[["n", "lambda", "weight_lmm", "shrinkage"]].iloc[0].round(4).to_dict()
    {'n': 5.0, 'lambda': 0.5337, 'weight_lmm': 0.1667, 'shrinkage': 0.7825}
    >>> bool(np.allclose(table["ranef"], fit.ranef))
    True
    """
    theta = _check_theta(theta)
    u = theta * theta
    n = stats.counts.astype(float)
    lam = 1.0 - 1.0 / np.sqrt(1.0 + n * u)
    w = n / (1.0 + n * u)  # proportional to 1 / (sigma_b^2 + sigma^2 / n_i)
    k = n * u / (1.0 + n * u)
    if beta is None:
        beta = profile(stats, theta).beta
    beta = np.asarray(beta, dtype=float)
    resid_mean = (stats.sum_y - stats.sum_x @ beta) / n
    index = pd.Index(np.arange(stats.n_groups) if group_labels is None else group_labels)
    return pd.DataFrame(
        {
            "n": stats.counts.astype(np.int64),
            "lambda": lam,
            "weight_ols": n / n.sum(),
            "weight_lmm": w / w.sum(),
            "shrinkage": k,
            "pooling_factor": 1.0 / (1.0 + n * u),
            "mean_response": stats.sum_y / n,
            "ranef": k * resid_mean,
        },
        index=index,
    )


def quasi_demean(X, y, codes, lam):
    """Quasi-demean rows: x_ij - lambda_i xbar_i and y_ij - lambda_i ybar_i.

    Parameters
    ----------
    X : ndarray, shape (N, p)
    y : ndarray, shape (N,)
    codes : ndarray of int, shape (N,)
        Cluster codes 0 .. J - 1.
    lam : array_like, shape (J,)
        lambda_i per cluster.

    Returns
    -------
    X_star, y_star : ndarray
        OLS of ``y_star`` on ``X_star`` is the GLS estimate; an intercept column becomes 1 - lambda_i.

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), [0.0, 1.0, 1.0, 1.0]])
    >>> X_star, y_star = quasi_demean(X, np.array([1.0, 3.0, 5.0, 7.0]), np.array([0, 0, 1, 1]), [0.5, 1.0])
    >>> X_star[:, 0].tolist(), y_star.tolist()
    ([0.5, 0.5, 0.0, 0.0], [0.0, 2.0, -1.0, 1.0])
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    codes = np.asarray(codes)
    lam = np.asarray(lam, dtype=float)
    n_groups = lam.shape[0]
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    safe = np.where(counts > 0, counts, 1.0)
    xbar = np.column_stack(
        [np.bincount(codes, weights=X[:, k], minlength=n_groups) / safe for k in range(X.shape[1])]
    ).reshape(n_groups, X.shape[1])
    ybar = np.bincount(codes, weights=y, minlength=n_groups) / safe
    lam_rows = lam[codes]
    return X - lam_rows[:, None] * xbar[codes], y - lam_rows * ybar[codes]


@dataclass(frozen=True, eq=False)
class Decomposition(PandasCopies):
    """Pooled OLS and the mixed model side by side, with the pieces that explain the difference.

    Attributes
    ----------
    ols, lmm : pandas.Series
        The pooled OLS and the mixed model's fixed effects.
    within : pandas.Series
        The within (fixed-effects, cluster-dummy) estimator; NaN for the intercept and for covariates that
        are constant within every cluster, which it cannot identify.
    between : pandas.Series
        Unweighted OLS of the cluster means of y on the cluster means of x (NaN where not identified).
    reconstructed : pandas.Series
        The mixed model's fixed effects recomputed, from the rows, as OLS on quasi-demeaned data.
    table : pandas.DataFrame
        One row per cluster; see :func:`cluster_table`.
    design_effect : float
        1 + (sum_i n_i^2 / N - 1) ICC: the variance of the pooled (row-weighted) mean under the fitted
        model, relative to N independent rows. sum_i n_i^2 / N is the size-weighted mean cluster size,
        which is the exact form for unbalanced clusters.
    icc : float
        sigma_b^2 / (sigma_b^2 + sigma^2), from the mixed model.
    se_ratio : pandas.Series
        The mixed model's standard errors divided by pooled OLS's.
    blend : WithinBetweenBlend
        The exact within/between decomposition of ``lmm``.
    ols_fit : OlsResult
        With cluster-robust standard errors for the grouping column.
    lmm_fit : LmmResult
    """

    ols: pd.Series
    lmm: pd.Series
    within: pd.Series
    between: pd.Series
    reconstructed: pd.Series
    table: pd.DataFrame
    design_effect: float
    icc: float
    se_ratio: pd.Series
    blend: WithinBetweenBlend
    ols_fit: OlsResult
    lmm_fit: LmmResult

    @property
    def estimates(self) -> pd.DataFrame:
        """One row per term, one column per estimator (``ols``, ``between``, ``within``, ``lmm``)."""
        return pd.DataFrame(
            {
                "ols": self.ols,
                "between": self.between,
                "within": self.within,
                "lmm": self.lmm,
                "reconstructed": self.reconstructed,
            }
        )

    @property
    def reconstruction_error(self) -> float:
        """The largest relative difference between ``reconstructed`` and ``lmm``."""
        diff = (self.reconstructed - self.lmm).abs() / self.lmm.abs().clip(lower=1e-300)
        return float(diff.max())

    def __repr__(self) -> str:
        lines = [
            f"Decomposition({self.lmm_fit.formula!r}: {self.lmm_fit.n_obs} rows in "
            f"{self.lmm_fit.n_groups} clusters; design effect {self.design_effect:.4g}, "
            f"ICC {self.icc:.4g})",
            self.estimates.to_string(float_format=lambda v: f"{v:.6g}"),
        ]
        return "\n".join(lines)


def decompose(
    data: pd.DataFrame | Design,
    formula: str | None = None,
    group: str | None = None,
    reml: bool = True,
) -> Decomposition:
    """Fit pooled OLS and the mixed model, and explain why their fixed effects differ.

    Parameters
    ----------
    data : pandas.DataFrame, helpers.design.Design, Ibis table or PySpark DataFrame
        A Design is used as it is (:func:`helpers.engines.as_design`). Without rows (a design summed
        from a file, or a table aggregated where it lives) ``reconstructed`` is the exact
        within/between blend, as there are no rows to refit, and pooled OLS has no cluster-robust
        errors.
    formula : str, optional
        ``"y ~ x + (1 | g)"``, or ``"y ~ x"`` together with ``group="g"``; may be left out for a Design.
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    reml : bool, default True

    Returns
    -------
    Decomposition

    Notes
    -----
    ``reconstructed`` is the one estimator computed from rows (OLS on quasi-demeaned data), as an
    independent check of the identity; everything else comes from the per-cluster sums.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> dec = decompose(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> dec.estimates.round(3)
                 ols  between  within    lmm  reconstructed
    Intercept  1.327    1.445     NaN  1.462          1.462
    floor     -0.613   -0.463  -0.721 -0.693         -0.693
    >>> dec.reconstruction_error < 1e-8
    True
    """
    design = as_design(data, formula, group)
    if design.random is not None:
        raise DataError(
            f"decompose explains a random intercept only: {RANDOM_SLOPES_NOTE[0].lower()}"
            f"{RANDOM_SLOPES_NOTE[1:-1]}; fit it with fit_lmm, or decompose the '(1 | group)' model."
        )
    lmm_fit = fit_lmm(design, reml=reml)
    ols_fit = ols_from_design(design)  # same rows, no second design
    stats = lmm_fit.stats
    names = list(lmm_fit.fe_params.index)
    if not design.has_rows:  # a table aggregated where it lives: the exact blend stands in
        return assemble_decomposition(lmm_fit, ols_fit)

    lam = cluster_table(stats, lmm_fit.theta, lmm_fit.ranef.index, lmm_fit.fe_params)["lambda"]
    x_star, y_star = quasi_demean(design.X, design.y, design.group_codes, lam.to_numpy())
    coef, *_ = np.linalg.lstsq(x_star, y_star, rcond=None)
    return assemble_decomposition(lmm_fit, ols_fit, pd.Series(coef, index=names))


def assemble_decomposition(
    lmm_fit, ols_fit, reconstructed: pd.Series | None = None
) -> Decomposition:
    """Put a :class:`Decomposition` together from the two fits, using their sufficient statistics only.

    Parameters
    ----------
    lmm_fit : helpers.results.LmmResult
    ols_fit : helpers.results.OlsResult
    reconstructed : pandas.Series, optional
        The LMM fixed effects recomputed independently (by :func:`decompose`, as OLS on quasi-demeaned
        rows). Without rows, the exact within/between blend stands in for it.

    Returns
    -------
    Decomposition

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm, fit_ols
    >>> radon = load_dataset("radon")
    >>> lmm = fit_lmm(radon, "log_radon ~ floor + (1 | county)")
    >>> dec = assemble_decomposition(lmm, fit_ols(radon, "log_radon ~ floor"))
    >>> bool(dec.reconstruction_error < 1e-8)
    True
    """
    stats = lmm_fit.stats
    names = list(lmm_fit.fe_params.index)
    table = cluster_table(stats, lmm_fit.theta, lmm_fit.ranef.index, lmm_fit.fe_params)
    blend = within_between_blend(stats, lmm_fit.theta, names)
    if reconstructed is None:
        reconstructed = blend.beta
    n = stats.counts.astype(float)
    total_var = lmm_fit.sigma2_group + lmm_fit.sigma2_resid
    icc = lmm_fit.sigma2_group / total_var if total_var > 0 else 0.0
    design_effect = 1.0 + (float((n * n).sum() / n.sum()) - 1.0) * icc
    return Decomposition(
        ols=ols_fit.params.rename("ols"),
        lmm=lmm_fit.fe_params.rename("lmm"),
        within=within_estimator(stats, names),
        between=between_estimator(stats, names),
        reconstructed=reconstructed.rename("reconstructed"),
        table=table,
        design_effect=float(design_effect),
        icc=float(icc),
        se_ratio=(lmm_fit.bse / ols_fit.bse).rename("se_ratio"),
        blend=blend,
        ols_fit=ols_fit,
        lmm_fit=lmm_fit,
    )


def default_thetas(stats: SufficientStats, num: int = 61, theta_hat: float | None = None):
    """A grid of theta values that spans the path from pooled OLS to the within estimator.

    lambda_i moves from 0 to 1 as n_i theta^2 goes from small to large, so the grid runs from
    0.1 / sqrt(max n_i) to 30 / sqrt(min n_i) on a log scale (widened to include ``theta_hat``), with
    theta = 0 (pooled OLS) in front.

    Parameters
    ----------
    stats : SufficientStats
    num : int, default 61
        The number of positive grid points.
    theta_hat : float, optional
        A value the grid must cover (and contain).

    Returns
    -------
    ndarray
        Sorted, starting with 0.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> grid = default_thetas(build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)").stats)
    >>> float(grid[0]), len(grid), bool(np.all(np.diff(grid) > 0))
    (0.0, 62, True)
    """
    n = stats.counts.astype(float)
    lo = 0.1 / np.sqrt(n.max())
    hi = 30.0 / np.sqrt(max(n.min(), 1.0))
    extra = []
    if theta_hat is not None and np.isfinite(theta_hat) and theta_hat > 0:
        lo, hi = min(lo, theta_hat / 10), max(hi, theta_hat * 10)
        extra = [float(theta_hat)]
    grid = np.concatenate([[0.0], np.logspace(np.log10(lo), np.log10(hi), num), extra])
    return np.unique(grid)


def fixed_effect_path(
    stats: SufficientStats, term_names, thetas, reml: bool = True
) -> pd.DataFrame:
    """The fixed effects and their standard errors as functions of theta = sigma_b / sigma.

    The values are those of :func:`helpers.objective.profile` at each theta, computed for all thetas at
    once. theta = 0 gives pooled OLS; large theta approaches the within estimator for covariates that vary
    within clusters. At each theta, beta is the GLS estimate and the standard error is
    sqrt(diag(sigma^2 A(theta)^{-1})) with sigma^2 profiled (REML or ML) at that theta: the standard
    error the model would report if theta were fixed there.

    Parameters
    ----------
    stats : SufficientStats
    term_names : list of str
    thetas : array_like
        Values >= 0.
    reml : bool, default True

    Returns
    -------
    pandas.DataFrame
        Long format, one row per (theta, term): columns ``theta``, ``term``, ``estimate``, ``std_error``.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> path = fixed_effect_path(d.stats, d.term_names, [0.0, 0.848324])
    >>> path.round(4)
        theta       term  estimate  std_error
    0  0.0000  Intercept    1527.5    11.5065
    1  0.8483  Intercept    1527.5    19.3834
    """
    names = _names(stats, term_names)
    thetas = np.atleast_1d(np.asarray(thetas, dtype=float)).ravel()
    bad = thetas[~np.isfinite(thetas) | (thetas < 0)]
    if bad.size:
        raise ValueError(f"thetas must be finite and >= 0; got {bad[0]!r}.")
    estimates, errors = _path_arrays(stats, thetas, reml)
    p = len(names)
    return pd.DataFrame(
        {
            "theta": np.repeat(thetas, p),
            "term": np.tile(np.array(names, dtype=object), len(thetas)),
            "estimate": estimates.ravel(),
            "std_error": errors.ravel(),
        }
    )


def _path_arrays(stats: SufficientStats, thetas: np.ndarray, reml: bool):
    """beta(theta) and its standard errors for many thetas at once: one batched call of the kernel
    (:func:`helpers.kernel.evaluate`), the same algebra as :func:`helpers.objective.profile`."""
    ev = evaluate(*blocks_from_stats(stats), thetas[:, None], reml)
    variances = np.diagonal(ev.cov_beta, axis1=-2, axis2=-1)
    return ev.beta, np.sqrt(np.maximum(variances, 0.0))
