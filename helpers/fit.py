"""Steps 3 and 4 of a fit: optimise theta on [0, inf) and freeze the result.

:func:`fit_lmm` is the counterpart of lme4's ``lmer`` (``lFormula`` -> ``mkLmerDevfun`` ->
``optimizeLmer`` -> ``mkMerMod``); :func:`fit_ols` of R's ``lm``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.optimize

from ._blas import single_blas_thread
from .design import Design, SufficientStats, build_design
from .objective import criterion, criterion_derivative, profile
from .results import LmmResult, OlsResult
from .validate import DataError

__all__ = ["fit_ols", "fit_lmm", "fit_lmm_from_stats", "optimize_theta", "THETA_GRID"]

#: The grid that brackets the optimum before the 1-D refinement: 0 and 10^-4 .. 10^4.
THETA_GRID = np.concatenate([[0.0], np.logspace(-4, 4, 81)])


def optimize_theta(stats: SufficientStats, reml: bool = True) -> tuple[float, bool]:
    """Minimise the profiled criterion over theta >= 0.

    A grid over 0 and 10^-4 .. 10^4 brackets the global minimum. The minimum is then located as the root of
    the closed-form slope (:func:`helpers.objective.criterion_derivative`) by Brent's method, which keeps
    full precision even where the criterion itself is flat. theta = 0 is the estimate, exactly, when the
    criterion rises from there: its slope in theta^2 at 0 is not negative (a boundary, or singular, fit).

    Parameters
    ----------
    stats : SufficientStats
    reml : bool, default True

    Returns
    -------
    theta : float
    converged : bool

    Examples
    --------
    Dyestuff2 has no between-batch variance: its REML estimate lies on the boundary.

    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> optimize_theta(build_design(load_dataset("dyestuff2"), "Yield ~ 1 + (1 | Batch)").stats)
    (0.0, True)
    """
    values = np.array([criterion(stats, t, reml) for t in THETA_GRID])
    k = int(np.argmin(values))
    if k == len(THETA_GRID) - 1:
        return float(THETA_GRID[-1]), False
    if k <= 1 and criterion_derivative(stats, 0.0, reml) >= 0:
        return 0.0, True
    lower, upper = THETA_GRID[max(k - 1, 0)], THETA_GRID[k + 1]

    def slope(theta: float) -> float:
        return criterion_derivative(stats, theta, reml)

    slope_lower, slope_upper = slope(lower), slope(upper)
    if slope_lower < 0 < slope_upper:
        theta, info = scipy.optimize.brentq(
            slope, lower, upper, xtol=1e-300, rtol=4 * np.finfo(float).eps, full_output=True
        )
        theta, converged = float(theta), bool(info.converged)
    else:  # no sign change (a flat stretch): fall back on minimising the values themselves
        result = scipy.optimize.minimize_scalar(
            lambda t: criterion(stats, t, reml),
            bounds=(lower, upper),
            method="bounded",
            options={"xatol": 1e-12 * max(upper, 1e-3), "maxiter": 500},
        )
        theta, converged = float(result.x), bool(result.success)
    if criterion(stats, 0.0, reml) <= criterion(stats, theta, reml):
        return 0.0, True
    return theta, converged


def _estimate_theta(stats: SufficientStats, reml: bool, response: str) -> tuple[float, bool]:
    """Refuse exact fits, optimise theta, and warn if the optimiser ran off the grid."""
    between = float((stats.sum_y**2 / np.maximum(stats.counts, 1)).sum())
    if stats.ete <= 1e-24 * max(stats.ete + between, 1e-300):
        raise DataError(
            f"The response {response!r} is fitted exactly by the fixed effects (for example, it is "
            "constant): no variation is left for the random intercept or the residual to explain."
        )
    theta, converged = optimize_theta(stats, reml)
    if not converged:
        warnings.warn(
            "The optimiser did not converge: the criterion still falls at theta = 1e4. The group variance "
            "dwarfs the residual variance; check that the response varies within groups.",
            RuntimeWarning,
            stacklevel=3,
        )
    return theta, converged


def _lmm_result(
    stats: SufficientStats,
    theta: float,
    converged: bool,
    reml: bool,
    term_names,
    group_labels,
    *,
    formula: str,
    response: str,
    group: str,
    n_dropped: int = 0,
    design: Design | None = None,
) -> LmmResult:
    prof = profile(stats, theta, reml)
    names = list(term_names)
    n = stats.counts.astype(float)
    u = theta * theta
    c = u / (1.0 + n * u)
    ranef = c * prof.cluster_resid_sum
    ranef_sd = np.sqrt(prof.sigma2 * c)
    labels = pd.Index(group_labels, name=group)
    return LmmResult(
        fe_params=pd.Series(prof.beta, index=names, name="estimate"),
        bse=pd.Series(np.sqrt(np.diag(prof.cov_beta)), index=names, name="std_error"),
        cov_fe=pd.DataFrame(prof.cov_beta, index=names, columns=names),
        sigma2_group=prof.sigma2_group,
        sigma2_resid=prof.sigma2,
        theta=float(theta),
        criterion=prof.criterion,
        loglik=-0.5 * prof.criterion,
        reml=reml,
        ranef=pd.Series(ranef, index=labels, name="ranef"),
        ranef_sd=pd.Series(ranef_sd, index=labels, name="ranef_sd"),
        n_obs=stats.n_obs,
        n_groups=stats.n_groups,
        n_dropped=n_dropped,
        singular=bool(theta == 0.0),
        converged=converged,
        formula=formula,
        response=response,
        group=group,
        stats=stats,
        design=design,
    )


def fit_lmm_from_stats(
    stats: SufficientStats,
    term_names,
    group_labels=None,
    *,
    reml: bool = True,
    formula: str = "",
    response: str = "y",
    group: str = "group",
    n_dropped: int = 0,
) -> LmmResult:
    """Fit the random-intercept model from sufficient statistics alone (no rows).

    Parameters
    ----------
    stats : SufficientStats
    term_names : list of str
    group_labels : sequence, optional
        Defaults to 0 .. J - 1.
    reml : bool, default True

    Returns
    -------
    LmmResult
        With ``design=None``.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> round(fit_lmm_from_stats(d.stats, d.term_names).criterion, 6)
    319.654277
    """
    if group_labels is None:
        group_labels = np.arange(stats.n_groups)
    theta, converged = _estimate_theta(stats, reml, response)
    return _lmm_result(
        stats,
        theta,
        converged,
        reml,
        term_names,
        group_labels,
        formula=formula,
        response=response,
        group=group,
        n_dropped=n_dropped,
    )


def fit_lmm(
    data: pd.DataFrame, formula: str, *, group: str | None = None, reml: bool = True
) -> LmmResult:
    """Fit a linear mixed model with one random intercept, as ``lme4::lmer`` does.

    Parameters
    ----------
    data : pandas.DataFrame
    formula : str
        ``"y ~ x + (1 | g)"``, or a fixed-effects formula ``"y ~ x"`` together with ``group="g"``.
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    reml : bool, default True
        REML (lme4's default) if True, maximum likelihood if False.

    Returns
    -------
    LmmResult

    Raises
    ------
    helpers.validate.DataError
        With one sentence naming the column or term at fault.

    Notes
    -----
    The fit runs in four visible steps: :func:`helpers.design.build_design` (rows -> sufficient
    statistics), :func:`helpers.objective.make_objective` (the profiled criterion as a function of
    theta), :func:`optimize_theta` (1-D, bounded at theta = 0), and the frozen :class:`LmmResult`.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> fit = fit_lmm(load_dataset("sleepstudy"), "Reaction ~ Days + (1 | Subject)")
    >>> fit.fe_params.round(5).to_dict()
    {'Intercept': 251.4051, 'Days': 10.46729}
    >>> round(fit.criterion, 3)
    1786.465
    """
    design = build_design(data, formula, group)
    if design.group is None:
        raise DataError(
            "fit_lmm needs a grouping column: add '(1 | group)' to the formula or pass group='column'."
        )
    theta, converged = _estimate_theta(design.stats, reml, design.response)
    return _lmm_result(
        design.stats,
        theta,
        converged,
        reml,
        design.term_names,
        design.group_labels,
        formula=formula,
        response=design.response,
        group=design.group,
        n_dropped=design.n_dropped,
        design=design,
    )


def fit_ols(data: pd.DataFrame, formula: str, *, cluster: str | None = None) -> OlsResult:
    """Pooled ordinary least squares, as R's ``lm`` fits it.

    Parameters
    ----------
    data : pandas.DataFrame
    formula : str
        A fixed-effects formula. A ``(1 | g)`` term is ignored for the fit (its column still counts for
        dropping missing rows), so the same formula serves ``fit_ols`` and ``fit_lmm``.
    cluster : str, optional
        A column to cluster on: the result then also carries cluster-robust (CR1) standard errors.

    Returns
    -------
    OlsResult

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> ols = fit_ols(load_dataset("sleepstudy"), "Reaction ~ Days", cluster="Subject")
    >>> ols.bse.round(6).to_dict()
    {'Intercept': 6.610154, 'Days': 1.238195}
    >>> bool((ols.bse_cluster > ols.bse).all())
    True
    """
    design = build_design(data, formula, cluster)
    with single_blas_thread():
        X, y = design.X, design.y
        q, r = np.linalg.qr(X, mode="reduced")
        qty = q.T @ y
        resid = y - q @ qty
        correction = q.T @ resid
        resid -= q @ correction
        beta = np.linalg.solve(r, qty + correction)
        n, p = X.shape
        df_resid = n - p
        sigma2 = float(resid @ resid) / df_resid
        r_inv = np.linalg.solve(r, np.eye(p))
        bread = r_inv @ r_inv.T
        names = design.term_names
        cov = pd.DataFrame(sigma2 * bread, index=names, columns=names)
        bse_cluster = cov_cluster = None
        n_clusters = None
        if design.group is not None:
            codes = design.group_codes
            n_clusters = len(design.group_labels)
            scores = np.column_stack(
                [
                    np.bincount(codes, weights=X[:, k] * resid, minlength=n_clusters)
                    for k in range(p)
                ]
            )
            meat = scores.T @ scores
            factor = n_clusters / (n_clusters - 1) * (n - 1) / (n - p)
            vc = factor * bread @ meat @ bread
            cov_cluster = pd.DataFrame(vc, index=names, columns=names)
            bse_cluster = pd.Series(np.sqrt(np.diag(vc)), index=names, name="std_error_cluster")
    return OlsResult(
        params=pd.Series(beta, index=names, name="estimate"),
        bse=pd.Series(np.sqrt(np.diag(cov.to_numpy())), index=names, name="std_error"),
        cov_params=cov,
        sigma2=sigma2,
        n_obs=n,
        df_resid=df_resid,
        n_dropped=design.n_dropped,
        resid=resid,
        formula=formula,
        cluster=design.group,
        bse_cluster=bse_cluster,
        cov_cluster=cov_cluster,
        n_clusters=n_clusters,
    )
