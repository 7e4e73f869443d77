"""Steps 3 and 4 of a fit: optimise theta on [0, inf) and freeze the result.

:func:`fit_lmm` is the counterpart of lme4's ``lmer`` (``lFormula`` -> ``mkLmerDevfun`` ->
``optimizeLmer`` -> ``mkMerMod``); :func:`fit_ols` of R's ``lm``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ._blas import single_blas_thread
from .design import Design, SufficientStats
from .engines import as_design
from .kernel import (
    THETA_GRID,
    OptSummary,
    blocks_from_stats,
    conditional_modes,
    evaluate,
    optimize,
    within_fit_rss,
)
from .results import LmmResult, OlsResult
from .validate import DataError, check_one_group

__all__ = [
    "fit_ols",
    "fit_lmm",
    "fit_lmm_from_stats",
    "fit_random_terms",
    "ols_from_design",
    "ols_result",
    "optimize_theta",
    "THETA_GRID",
]


def optimize_theta(stats: SufficientStats, reml: bool = True) -> tuple[float, bool]:
    """Minimise the profiled criterion over theta >= 0.

    A grid over 0 and 10^-4 .. 10^4 (:data:`helpers.kernel.THETA_GRID`, evaluated in one vectorised call)
    brackets the global minimum; where the criterion still falls at 10^4 the grid continues to 10^16
    (theta -> infinity is the within fit, reached smoothly in log theta). The minimum is then located as
    the root of the closed-form slope (:func:`helpers.objective.criterion_derivative`), which keeps full
    precision even where the criterion itself is flat. theta = 0 is the estimate, exactly, when the
    criterion rises from there: its slope in theta^2 at 0 is not negative (a boundary, or singular, fit).
    This is :func:`helpers.kernel.optimize`, the package's one optimiser.

    Parameters
    ----------
    stats : SufficientStats
    reml : bool, default True

    Returns
    -------
    theta : float
    converged : bool
        False when no finite theta minimises the criterion (see :func:`helpers.kernel.optimize_batch`).

    Examples
    --------
    Dyestuff2 has no between-batch variance: its REML estimate lies on the boundary.

    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> optimize_theta(build_design(load_dataset("dyestuff2"), "Yield ~ 1 + (1 | Batch)").stats)
    (0.0, True)
    """
    theta, summary = optimize(*blocks_from_stats(stats), reml)
    return float(theta[0]), summary.converged


#: A residual spread below this many units of double precision at the response's magnitude counts as
#: no spread at all (rounding alone leaves spreads of a few units).
_RESOLUTION_ULPS = 64.0


def _resolution(stats: SufficientStats) -> float:
    """The smallest residual spread that means anything at the response's magnitude."""
    n = stats.counts.astype(float)
    magnitude = float(np.max(np.abs(stats.sum_y / n)))
    magnitude = max(magnitude, float(np.sqrt(max(stats.ete, 0.0) / stats.n_obs)))
    return _RESOLUTION_ULPS * float(np.finfo(float).eps) * magnitude


def _check_response_spread(stats: SufficientStats, response: str) -> None:
    """Refuse a response without usable variation once the fixed effects are fitted."""
    resolution = _resolution(stats)
    spread = float(np.sqrt(max(stats.ete, 0.0) / stats.n_obs))
    if spread <= resolution:
        magnitude = resolution / (_RESOLUTION_ULPS * float(np.finfo(float).eps))
        if spread <= 4.0 * float(np.finfo(float).eps) * magnitude:
            raise DataError(
                f"The response {response!r} is fitted exactly by the fixed effects (for example, it is "
                "constant): no variation is left for the random intercept or the residual to explain."
            )
        raise DataError(
            f"The response {response!r} varies by only about {spread:.2g} around values of about "
            f"{magnitude:.2g}, a relative spread of {spread / magnitude:.1g}, below what double "
            "precision resolves; store it as the difference from a baseline near its values, with "
            "more significant digits."
        )


def _estimate_theta(stats: SufficientStats, reml: bool, response: str):
    """Refuse responses without usable variation, optimise theta, and warn if it did not converge."""
    _check_response_spread(stats, response)
    blocks, resp = blocks_from_stats(stats)
    theta, summary = optimize(blocks, resp, reml)
    if not summary.converged:
        if float(within_fit_rss(blocks, resp)) == 0.0:
            message = (
                f"The response {response!r} has no variation within clusters once the fixed effects "
                "are fitted (the within-cluster fit is exact): the residual variance is 0, theta is "
                "infinite and the criterion has no minimum; the result stops at theta = 1e4 and its "
                "variances are not estimates."
            )
        else:
            message = (
                "The optimiser did not converge: the criterion still falls at theta = 1e16. The group "
                "variance dwarfs the residual variance; check that the response varies within groups."
            )
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return float(theta[0]), summary


def _lmm_result(
    stats: SufficientStats,
    theta: float,
    optsum: OptSummary | None,
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
    blocks, resp = blocks_from_stats(stats)
    ev = evaluate(blocks, resp, [theta], reml)
    sigma2 = float(ev.sigma2)
    modes, cond_cov = conditional_modes(blocks, resp, [theta], ev.delta, sigma2)
    names = pd.Index(list(term_names))  # one Index for every field (each built from a list costs)
    labels = pd.Index(group_labels, name=group)
    cov = ev.cov_beta
    return LmmResult(
        fe_params=pd.Series(ev.beta, index=names, name="estimate"),
        bse=pd.Series(np.sqrt(np.diag(cov)), index=names, name="std_error"),
        cov_fe=pd.DataFrame(cov, index=names, columns=names),
        sigma2_group=theta * theta * sigma2,
        sigma2_resid=sigma2,
        theta=float(theta),
        criterion=float(ev.criterion),
        loglik=-0.5 * float(ev.criterion),
        reml=reml,
        ranef=pd.Series(modes[:, 0], index=labels, name="ranef"),
        ranef_sd=pd.Series(np.sqrt(cond_cov[:, 0, 0]), index=labels, name="ranef_sd"),
        n_obs=stats.n_obs,
        n_groups=stats.n_groups,
        n_dropped=n_dropped,
        singular=bool(theta == 0.0),
        converged=True if optsum is None else optsum.converged,
        formula=formula,
        response=response,
        group=group,
        stats=stats,
        design=design,
        optsum=optsum,
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
    """Fit the random-intercept model from sufficient statistics alone (no rows, no design).

    The lower-level step under :func:`fit_lmm`, for statistics made without a
    :class:`helpers.design.Design` (such as a simulation's); a Design is fitted with ``fit_lmm(design)``.

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
    theta, optsum = _estimate_theta(stats, reml, response)
    return _lmm_result(
        stats,
        theta,
        optsum,
        reml,
        term_names,
        group_labels,
        formula=formula,
        response=response,
        group=group,
        n_dropped=n_dropped,
    )


def fit_lmm(
    data: pd.DataFrame | Design,
    formula: str | None = None,
    *,
    group: str | None = None,
    reml: bool = True,
) -> LmmResult:
    """Fit a linear mixed model with one grouping factor, as ``lme4::lmer`` does.

    Parameters
    ----------
    data : pandas.DataFrame, helpers.design.Design, Ibis table or PySpark DataFrame
        A Design (:func:`helpers.design.build_design`, :func:`helpers.large.design_from_file`) is
        fitted as it is, without building it again (``formula`` may then be left out). An Ibis table
        (any backend) or a PySpark DataFrame stays where it is: the engine computes the per-cluster
        sums (:func:`helpers.engines.design_from_table`; plain columns and interactions, a random
        intercept or random slopes of plain columns) and only those travel. See :func:`helpers.engines.as_design`.
    formula : str, optional
        ``"y ~ x + (1 | g)"``, or a fixed-effects formula ``"y ~ x"`` together with ``group="g"``.
        Random slopes of one grouping factor are fitted too: ``(1 + x | g)``, ``(x | g)`` (the
        intercept is implied, as in R), ``(0 + x | g)``, ``(x || g)`` (uncorrelated, expanded as lme4
        expands it into ``(1 | g) + (0 + x | g)``), several terms such as ``(1 | g) + (0 + x | g)``, a
        factor ``x`` (its columns coded as in the fixed part) and any number of terms
        (``(1 + x1 + x2 | g)``); see :func:`fit_random_terms`.
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
    >>> slopes = fit_lmm(load_dataset("sleepstudy"), "Reaction ~ Days + (Days | Subject)")
    >>> slopes.theta.round(5).tolist(), round(slopes.criterion, 3)
    ([0.96673, 0.01517, 0.23091], 1743.628)
    """
    # every product in a fit is tall and skinny or tiny: a second BLAS thread only spins, and on a
    # loaded machine made the random-slope design three times slower (helpers._blas)
    with single_blas_thread():
        return _fit_lmm(as_design(data, formula, group), reml)


def _fit_lmm(design: Design, reml: bool) -> LmmResult:
    if design.group is None:
        raise DataError(
            "fit_lmm needs a grouping column: add '(1 | group)' to the formula or pass group='column'."
        )
    if design.random is not None:
        return fit_random_terms(design, reml)
    theta, optsum = _estimate_theta(design.stats, reml, design.response)
    return _lmm_result(
        design.stats,
        theta,
        optsum,
        reml,
        design.term_names,
        design.group_labels,
        formula=design.formula,
        response=design.response,
        group=design.group,
        n_dropped=design.n_dropped,
        design=design,
    )


def fit_random_terms(design: Design, reml: bool = True) -> LmmResult:
    """Fit a design with random slopes or several random terms (``design.random``), as lme4 does.

    The per-cluster blocks Z_i'Z_i, Z_i'X_i, Z_i'y_i of :class:`helpers.random_terms.RandomEffects`
    feed the one likelihood kernel (:func:`helpers.kernel.evaluate`); :func:`helpers.kernel.optimize`
    minimises the profiled REML criterion or ML deviance over lme4's theta (the lower triangle of each
    term's block of T, diagonal >= 0) from lme4's start T = I.

    The result differs from a random-intercept fit in these fields: ``theta`` is a 1-D array in lme4's
    order (``getME(m, "theta")``; the names are ``fit.random.theta_names``); ``sigma2_group`` is NaN
    (there is no single group variance: see ``varcorr``); ``ranef`` is a DataFrame (one row per group,
    one column per random term, R's names, then the conditional variances ``condvar <term>``), and
    ``ranef_sd`` a DataFrame of the conditional SDs; ``ranef_cov`` holds the full conditional
    covariances (J, q, q); ``singular`` is lme4's ``isSingular`` (an element of theta with lower bound 0
    below 1e-4).

    Parameters
    ----------
    design : helpers.design.Design
        With ``random`` (from ``build_design(..., random_slopes=True)``).
    reml : bool, default True

    Returns
    -------
    LmmResult
    """
    random = design.random
    stats = design.stats
    _check_response_spread(stats, design.response)
    blocks, resp = random.blocks, random.response
    theta, optsum = optimize(blocks, resp, reml, free=random.free)
    if not optsum.converged:
        warnings.warn(
            "The optimiser did not converge for the random-effects terms; the estimates may not be "
            "the maximum. Check the scaling of the random-slope variables.",
            RuntimeWarning,
            stacklevel=3,
        )
    return random_terms_result(design, theta, reml, optsum)


def random_terms_result(design: Design, theta, reml: bool, optsum=None) -> LmmResult:
    """The :class:`LmmResult` of a random-terms design at lme4's ``theta`` (see :func:`fit_random_terms`)."""
    random = design.random
    stats = design.stats
    theta = np.array(theta, dtype=float)
    blocks, resp = random.blocks, random.response
    full = random.full_theta(theta)
    ev = evaluate(blocks, resp, full, reml)
    sigma2 = float(ev.sigma2)
    modes, cond_cov = conditional_modes(blocks, resp, full, ev.delta, sigma2)
    names = pd.Index(list(design.term_names))  # one Index for every field
    labels = pd.Index(design.group_labels, name=design.group)
    cov = ev.cov_beta
    terms = pd.Index(random.names)
    frame = pd.DataFrame(modes, index=labels, columns=terms)
    for k, term in enumerate(terms):
        frame[f"condvar {term}"] = cond_cov[:, k, k]
    theta.setflags(write=False)
    cond_cov.setflags(write=False)
    return LmmResult(
        fe_params=pd.Series(ev.beta, index=names, name="estimate"),
        bse=pd.Series(np.sqrt(np.diag(cov)), index=names, name="std_error"),
        cov_fe=pd.DataFrame(cov, index=names, columns=names),
        sigma2_group=float("nan"),
        sigma2_resid=sigma2,
        theta=theta,
        criterion=float(ev.criterion),
        loglik=-0.5 * float(ev.criterion),
        reml=reml,
        ranef=frame,
        ranef_sd=pd.DataFrame(
            np.sqrt(np.diagonal(cond_cov, axis1=1, axis2=2)), index=labels, columns=terms
        ),
        n_obs=stats.n_obs,
        n_groups=stats.n_groups,
        n_dropped=design.n_dropped,
        singular=random.singular(theta),
        converged=True if optsum is None else optsum.converged,
        formula=design.formula,
        response=design.response,
        group=design.group,
        stats=stats,
        design=design,
        optsum=optsum,
        random=random,
        ranef_cov=cond_cov,
    )


def fit_ols(
    data: pd.DataFrame | Design,
    formula: str | None = None,
    *,
    group: str | None = None,
    cluster: str | None = None,
) -> OlsResult:
    """Pooled ordinary least squares, as R's ``lm`` fits it.

    Parameters
    ----------
    data : pandas.DataFrame, helpers.design.Design, Ibis table or PySpark DataFrame
        A Design is used as it is (:func:`ols_from_design`); a table is aggregated where it lives (it
        needs a ``(1 | g)`` term or ``group``, whose sums it is grouped by; the result then has no
        residuals and no cluster-robust errors). See :func:`helpers.engines.as_design`.
    formula : str, optional
        A fixed-effects formula. A ``(1 | g)`` term is ignored for the fit (its column still counts for
        dropping missing rows), so the same formula serves ``fit_ols`` and ``fit_lmm``. It may be left
        out for a Design.
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term: the result then also carries
        cluster-robust (CR1) standard errors, clustered on it.
    cluster : str, optional
        The former name of ``group`` (deprecated).

    Returns
    -------
    OlsResult

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> ols = fit_ols(load_dataset("sleepstudy"), "Reaction ~ Days", group="Subject")
    >>> ols.bse.round(6).to_dict()
    {'Intercept': 6.610154, 'Days': 1.238195}
    >>> bool((ols.bse_cluster > ols.bse).all())
    True
    """
    if cluster is not None:
        warnings.warn(
            "fit_ols(cluster=...) is renamed group=..., as in fit_lmm",
            DeprecationWarning,
            stacklevel=2,
        )
        check_one_group(group, cluster)
        group = cluster
    design = as_design(data, formula, group, random_slopes=False)
    return ols_from_design(design, formula)


def ols_from_design(design: Design, formula: str | None = None) -> OlsResult:
    """Pooled OLS from a :class:`helpers.design.Design`, without building it again.

    With sufficient statistics at hand (a grouped design), the coefficients, R and the residual sum of
    squares come from them and only the residuals need one more pass over the rows; otherwise a QR of
    the rows gives them. With a grouping column, cluster-robust (CR1) standard errors are added.

    Parameters
    ----------
    design : helpers.design.Design
    formula : str, optional
        Recorded in the result; defaults to ``design.formula``.

    Returns
    -------
    OlsResult

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("sleepstudy"), "Reaction ~ Days + (1 | Subject)")
    >>> ols_from_design(d).params.round(5).to_dict()
    {'Intercept': 251.4051, 'Days': 10.46729}
    """
    if not design.has_rows:  # sums only (a file or a table elsewhere): no residuals, no CR1 errors
        stats = design.stats
        return ols_result(
            design.term_names,
            stats.beta_ols,
            stats.r_inverse,
            stats.ete,
            stats.n_obs,
            formula=design.formula if formula is None else formula,
            n_dropped=design.n_dropped,
            reference_levels=getattr(design, "reference_levels", None),
        )
    X, y = design.X, design.y
    n, p = X.shape
    with single_blas_thread():
        if design.stats is not None:
            beta, r_inv = design.stats.beta_ols, design.stats.r_inverse
            resid = y - X @ beta
            rss = design.stats.ete
        else:
            q, r = np.linalg.qr(X, mode="reduced")
            qty = q.T @ y
            resid = y - q @ qty
            correction = q.T @ resid
            resid -= q @ correction
            beta = np.linalg.solve(r, qty + correction)
            r_inv = np.linalg.inv(r)
            rss = float(resid @ resid)
        centre = float(y.mean()) if "Intercept" in design.term_names else 0.0
        tss = float(np.sum((y - centre) ** 2))
        cluster = None
        if design.group is not None:
            cluster = (design.group_codes, len(design.group_labels), X * resid[:, None])
    return ols_result(
        design.term_names,
        beta,
        r_inv,
        rss,
        n,
        formula=design.formula if formula is None else formula,
        n_dropped=design.n_dropped,
        resid=resid,
        group=design.group,
        cluster=cluster,
        tss=tss,
        reference_levels=getattr(design, "reference_levels", None),
    )


def ols_result(
    term_names,
    beta,
    r_inv,
    rss: float,
    n_obs: int,
    *,
    formula: str = "",
    n_dropped: int = 0,
    resid=None,
    group: str | None = None,
    cluster=None,
    tss: float | None = None,
    reference_levels: dict | None = None,
) -> OlsResult:
    """Assemble an :class:`OlsResult` from beta, R^{-1} (X = Q R) and the residual sum of squares.

    ``cluster``, if given, is ``(codes, n_clusters, scores)`` with ``scores`` the rows' x_ij e_ij; it adds
    cluster-robust (CR1) standard errors with the small-sample factor G/(G-1) (N-1)/(N-p).

    Examples
    --------
    >>> ols_result(["Intercept"], np.array([2.0]), np.array([[0.5]]), 12.0, 4).bse.to_dict()
    {'Intercept': 1.0}
    """
    names = pd.Index(list(term_names))  # one Index for every field
    p = len(names)
    df_resid = n_obs - p
    sigma2 = float(rss) / df_resid
    bread = r_inv @ r_inv.T
    cov = sigma2 * bread
    cov = 0.5 * (cov + cov.T)
    bse_cluster = cov_cluster = n_clusters = None
    if cluster is not None:
        codes, n_clusters, scores = cluster
        summed = np.column_stack(
            [np.bincount(codes, weights=scores[:, k], minlength=n_clusters) for k in range(p)]
        )
        factor = n_clusters / (n_clusters - 1) * (n_obs - 1) / (n_obs - p)
        vc = factor * bread @ (summed.T @ summed) @ bread
        cov_cluster = pd.DataFrame(vc, index=names, columns=names)
        bse_cluster = pd.Series(np.sqrt(np.diag(vc)), index=names, name="std_error_cluster")
    return OlsResult(
        params=pd.Series(np.asarray(beta, dtype=float), index=names, name="estimate"),
        bse=pd.Series(np.sqrt(np.diag(cov)), index=names, name="std_error"),
        cov_params=pd.DataFrame(cov, index=names, columns=names),
        sigma2_resid=sigma2,
        n_obs=n_obs,
        df_resid=df_resid,
        n_dropped=n_dropped,
        resid=np.empty(0) if resid is None else resid,
        formula=formula,
        cluster=group if cluster is not None else None,
        bse_cluster=bse_cluster,
        cov_cluster=cov_cluster,
        n_clusters=n_clusters,
        tss=tss,
        reference=tuple((str(k), str(v)) for k, v in (reference_levels or {}).items()),
    )
