r"""How sure are we? Intervals, a parametric bootstrap, t tests and predictions for a mixed-model fit.

Four functions, each reachable as a method of :class:`helpers.results.LmmResult`:

- :func:`confint`: confidence intervals for sigma_b, sigma and the fixed effects, by profiling the
  likelihood (as lme4's ``confint.merMod``), by Wald's normal approximation, or from the bootstrap;
- :func:`bootstrap`: a parametric bootstrap (as lme4's ``bootMer``), drawn from the sufficient statistics
  without simulating a single row;
- :func:`tests`: t statistics with Satterthwaite degrees of freedom (as lmerTest's ``summary``);
- :func:`predict`: predictions for new rows, with or without the clusters' conditional modes.

Everything works from :class:`helpers.design.SufficientStats`, so it costs the same at 30 rows as at
326,362. The notation follows :mod:`helpers.objective`: u = theta^2, c_i = u / (1 + n_i u),
A(u) = X'X - sum_i c_i S_x,i S_x,i', r2(u) the penalised residual sum of squares, and ``dof`` is N - p for
REML and N for ML.

**The deviance with sigma left free.** Profiling beta out but not sigma,

    D(theta, sigma) = sum_i log(1 + n_i u) [+ log det A(u)] + r2(u) / sigma^2 + dof log(2 pi sigma^2),

with the bracketed term for REML only. Minimising over sigma (sigma^2 = r2 / dof) gives back the profiled
criterion of :func:`helpers.objective.criterion`. This is lme4's ``devfun2`` (ML) and lmerTest's
``devfun_vp`` (ML or REML), in the random-intercept case.

**The ML deviance with one fixed effect held fixed.** For fixed theta, the penalised residual sum of
squares is exactly quadratic in beta: r2(theta, beta) = r2(theta) + (beta - beta(theta))' A (beta -
beta(theta)). Holding beta_j at b and minimising over the other coefficients leaves

    r2_j(theta, b) = r2(theta) + (b - beta_j(theta))^2 / [A(u)^{-1}]_jj,

which is what lme4 gets by refitting with the offset x_j b and column j removed. The profiled ML deviance
is then sum_i log(1 + n_i u) + N [1 + log(2 pi r2_j / N)], minimised over theta >= 0. No rows are needed.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize
import scipy.stats

from .design import SufficientStats
from .formula import r_term_name
from .kernel import (
    LOG_2PI,
    THETA_GRID,
    Blocks,
    Evaluation,
    Response,
    blocks_from_stats,
    evaluate,
    expand_theta,
    minimize_1d,
    optimize,
    optimize_batch,
    theta_size,
)
from .results import OlsResult
from .validate import DataError

__all__ = [
    "confint",
    "bootstrap",
    "satterthwaite_tests",
    "tests",
    "predict",
    "likelihood_profile",
    "varpar_covariance",
]

#: A wide grid (without 0) for the profile over sigma_b, where theta = sigma_b / sigma ranges freely.
_WIDE_GRID = np.logspace(-6, 6, 121)


# --------------------------------------------------------------------------------------------------
# The kernel's input under the names this module (and its tests) use; the algebra is helpers.kernel's
# --------------------------------------------------------------------------------------------------


class _Fixed:
    """The X-side of the kernel's input: :class:`helpers.kernel.Blocks` (``_Fixed.of(stats)``)."""

    def __new__(cls, *args, **kwargs):
        return Blocks(*args, **kwargs)

    @staticmethod
    def of(stats: SufficientStats) -> Blocks:
        return blocks_from_stats(stats)[0]


class _Resid:
    """The y-side: :class:`helpers.kernel.Response` from cluster sums and within cross-products."""

    def __new__(cls, sum_e, within_qe, within_ee):
        return Response.intercept(sum_e, within_qe, within_ee)

    @staticmethod
    def of(stats: SufficientStats) -> Response:
        return blocks_from_stats(stats)[1]


def _core(fx: Blocks, u, res: Response, logdet: bool = True, reml: bool = True) -> Evaluation:
    """The kernel's evaluation at (arrays of) u = theta^2, broadcast against the responses."""
    theta = np.sqrt(np.asarray(u, dtype=float))
    return evaluate(fx, res, theta[..., None], reml, logdet=logdet)


def _deviance_free_sigma(fx: Blocks, core: Evaluation, sigma, reml: bool) -> np.ndarray:
    """D(theta, sigma): the criterion with beta profiled out but sigma left free (see module notes)."""
    sigma2 = np.asarray(sigma, dtype=float) ** 2
    value = core.logdet_v + core.r2 / sigma2 + fx.dof(reml) * np.log(2.0 * np.pi * sigma2)
    if reml:
        value = value + core.logdet_a
    return value


def _optimize_batch(fx: Blocks, res: Response, reml: bool):
    """theta and a converged flag for many responses at once: :func:`helpers.kernel.optimize_batch`."""
    theta, converged, _, _ = optimize_batch(fx, res, reml)
    return theta, converged


# --------------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------------


class _Profiler:
    """Profiled deviances of one fit over sigma_b, sigma and each fixed effect."""

    def __init__(self, stats: SufficientStats, reml: bool):
        self.stats = stats
        self.fx = _Fixed.of(stats)
        self.reml = reml
        self.res = _Resid.of(stats)
        theta, summary = optimize(self.fx, self.res, reml)
        self.theta = float(theta[0])
        self.minimum = summary.criterion
        core = self._core(theta)
        self.sigma = float(np.sqrt(core.sigma2[0]))
        self.sigma_group = self.theta * self.sigma
        self.beta = core.beta[0]

    def _core(self, thetas) -> Evaluation:
        thetas = np.asarray(thetas, dtype=float)
        return evaluate(self.fx, self.res, thetas[..., None], self.reml)

    def _criterion_at(self, thetas):
        return self._core(thetas).criterion

    def at_sigma_group(self, sigma_group: float) -> float:
        """min over sigma of D(sigma_group / sigma, sigma)."""
        if sigma_group <= 0:
            return float(self._criterion_at(np.array([0.0]))[0])

        def fun(thetas):
            core = self._core(thetas)
            return _deviance_free_sigma(self.fx, core, sigma_group / thetas, self.reml)

        return minimize_1d(fun, _WIDE_GRID)[1]

    def at_sigma(self, sigma: float) -> float:
        """min over theta >= 0 of D(theta, sigma)."""

        def fun(thetas):
            return _deviance_free_sigma(self.fx, self._core(thetas), sigma, self.reml)

        return minimize_1d(fun, THETA_GRID)[1]

    def at_beta(self, j: int, value: float) -> float:
        """The ML deviance with beta_j held at ``value``, minimised over theta and the other betas."""
        if self.reml:
            raise ValueError("Fixed effects are profiled on the ML deviance.")
        fx = self.fx
        r_inv_j = fx.r_inv[j]

        def fun(thetas):
            core = self._core(thetas)
            beta_j = self.stats.beta_ols[j] + core.delta @ r_inv_j
            a_inv_jj = np.einsum("k,...kl,l->...", r_inv_j, core.a_inv, r_inv_j)
            r2 = core.r2 + (value - beta_j) ** 2 / a_inv_jj
            n = fx.n_obs
            return core.logdet_v + n * (1.0 + LOG_2PI + np.log(r2 / n))

        return minimize_1d(fun, THETA_GRID)[1]


def _crossing(fun, x_hat: float, step: float, target: float, floor: float | None = None) -> float:
    """The x on the side of ``step`` where the profile ``fun`` (rising away from x_hat) reaches ``target``.

    The search doubles the step until the profile passes the target, then brackets the crossing with
    Brent's root finder. Below ``floor`` the parameter is not defined; if the profile is still under the
    target at the floor, the floor is the limit (sigma_b's lower limit 0 at a boundary).
    """

    def h(x):
        return fun(x) - target

    if floor is not None and step < 0 and h(floor) <= 0:
        return float(floor)
    inner, outer = x_hat, x_hat + step
    for _ in range(80):
        if floor is not None:
            outer = max(outer, floor)
        if h(outer) > 0:
            break
        inner, step = outer, 2.0 * step
        outer = x_hat + step
    else:  # pragma: no cover - the deviance rises without bound in every direction
        raise RuntimeError("The profile never reached the cutoff; the interval is unbounded.")
    lo, hi = sorted((inner, outer))
    return float(
        scipy.optimize.brentq(h, lo, hi, xtol=1e-12 * max(1.0, abs(x_hat)), rtol=1e-15, maxiter=200)
    )


def likelihood_profile(fit, parameter: str = "sigma_group", values=None, *, criterion: str = "ML"):
    """The profiled deviance over one parameter: the curve that :func:`confint` turns into an interval.

    Parameters
    ----------
    fit : LmmResult
    parameter : str, default "sigma_group"
        ``"sigma_group"`` (sigma_b), ``"sigma"``, or a fixed-effect name such as ``"Days"``.
    values : array_like, optional
        Where to evaluate the profile; by default 41 points spanning the 99% profile interval.
    criterion : {"ML", "REML"}, default "ML"
        The deviance to profile. lme4 profiles the ML deviance, even for REML fits; "REML" profiles the
        REML criterion (variance parameters only).

    Returns
    -------
    pandas.DataFrame
        Columns ``value``, ``deviance`` (the profiled criterion), ``rise`` (deviance minus its minimum)
        and ``zeta`` (sign(value - estimate) sqrt(rise), lme4's signed square root).
        ``attrs["estimate"]`` holds the estimate at the minimum.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fit = fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> prof = likelihood_profile(fit, "sigma_group", [20.0, 37.26, 80.0])
    >>> round(prof.attrs["estimate"], 2), prof["rise"].round(3).tolist()
    (37.26, [1.914, 0.0, 3.431])

    Both 20 and 80 lie inside the 95% interval: the rise stays below qchisq(0.95, 1) = 3.84.
    """
    reml = _criterion_flag(criterion)
    prof = _Profiler(fit.stats, reml)
    names = list(fit.fe_params.index)
    if parameter == "sigma_group":
        estimate, fun = prof.sigma_group, prof.at_sigma_group
    elif parameter == "sigma":
        estimate, fun = prof.sigma, prof.at_sigma
    elif parameter in names:
        if reml:
            raise ValueError(
                "The REML criterion does not profile fixed effects; use criterion='ML' for "
                f"{parameter!r}."
            )
        j = names.index(parameter)
        estimate = float(prof.beta[j])

        def fun(b):
            return prof.at_beta(j, b)

    else:
        raise ValueError(
            f"Unknown parameter {parameter!r}; choose 'sigma_group', 'sigma' or one of {names}."
        )
    if values is None:
        ci = confint(fit, "profile", level=0.99, criterion=criterion)
        lo, hi = ci.loc[parameter, ["lower", "upper"]]
        values = np.linspace(lo, hi, 41)
    values = np.asarray(values, dtype=float)
    deviance = np.array([fun(float(v)) for v in values])
    rise = np.maximum(deviance - prof.minimum, 0.0)
    out = pd.DataFrame(
        {
            "value": values,
            "deviance": deviance,
            "rise": rise,
            "zeta": np.sign(values - estimate) * np.sqrt(rise),
        }
    )
    out.attrs["estimate"] = float(estimate)
    out.attrs["parameter"] = parameter
    out.attrs["criterion"] = "REML" if reml else "ML"
    return out


def _criterion_flag(criterion: str) -> bool:
    key = str(criterion).upper()
    if key not in {"ML", "REML"}:
        raise ValueError(f"criterion must be 'ML' or 'REML', got {criterion!r}.")
    return key == "REML"


# --------------------------------------------------------------------------------------------------
# The covariance of the variance parameters and the derivatives Satterthwaite needs
# --------------------------------------------------------------------------------------------------


def _derivatives(fx: _Fixed, res: _Resid, theta: float, sigma: float, reml: bool):
    """Analytic Hessian of D(theta, sigma) and the Jacobian of Cov(beta) = sigma^2 A^{-1}.

    In the rotated basis (X = QR and y replaced by its OLS residual e), with a_i the per-cluster sums of
    Q's rows and s_i those of e, write a dot for d/du (u = theta^2) and two dots for d^2/du^2:

        c_i. = 1/(1 + n_i u)^2,  c_i.. = -2 n_i/(1 + n_i u)^3
        A. = -sum_i c_i. a_i a_i',  A.. = -sum_i c_i.. a_i a_i',  b. = -sum_i c_i. a_i s_i (b.. likewise)
        (log det A). = tr(A^-1 A.),  (log det A).. = tr(A^-1 A..) - tr(A^-1 A. A^-1 A.)
        f = b' A^-1 b,  delta = A^-1 b,  delta. = A^-1 (b. - A. delta)
        f. = 2 b.' delta - delta' A. delta
        f.. = 2 b..' delta + 2 b.' delta. - 2 delta' A. delta. - delta' A.. delta
        r2. = -sum_i c_i. s_i^2 - f.,  r2.. = -sum_i c_i.. s_i^2 - f..

    and the chain rule d/dtheta = 2 theta d/du, d^2/dtheta^2 = 2 d/du + 4 theta^2 d^2/du^2. With
    D = F(theta) + r2/sigma^2 + dof log(2 pi sigma^2), where F = sum_i log(1 + n_i u) [+ log det A]:

        D_theta,theta = F'' + r2''/sigma^2,  D_theta,sigma = -2 r2'/sigma^3,
        D_sigma,sigma = 6 r2/sigma^4 - 2 dof/sigma^2   (primes: d/dtheta).
    """
    u = theta * theta
    n = fx.counts
    a_vec = fx.sum_q
    s = np.asarray(res.sum_e, dtype=float)
    w = 1.0 + n * u
    c1, c2 = 1.0 / w**2, -2.0 * n / w**3

    def outer_sum(weights):
        return (a_vec * weights[:, None]).T @ a_vec

    core = evaluate(fx, res, [theta], reml)
    a_inv, delta, r2 = core.a_inv, core.delta, float(core.r2)
    a1, a2 = -outer_sum(c1), -outer_sum(c2)
    b1, b2 = -(a_vec.T @ (c1 * s)), -(a_vec.T @ (c2 * s))
    delta1 = a_inv @ (b1 - a1 @ delta)
    f1 = 2.0 * b1 @ delta - delta @ a1 @ delta
    f2 = 2.0 * b2 @ delta + 2.0 * b1 @ delta1 - 2.0 * delta @ a1 @ delta1 - delta @ a2 @ delta
    r2_1 = -float(c1 @ (s * s)) - f1
    r2_2 = -float(c2 @ (s * s)) - f2
    fixed_1 = float(np.sum(n / w))
    fixed_2 = -float(np.sum(n * n / w**2))
    if reml:
        fixed_1 += float(np.trace(a_inv @ a1))
        fixed_2 += float(np.trace(a_inv @ a2) - np.trace(a_inv @ a1 @ a_inv @ a1))

    def d1(h1):  # chain rule from u to theta
        return 2.0 * theta * h1

    def d2(h1, h2):
        return 2.0 * h1 + 4.0 * u * h2

    sigma2 = sigma * sigma
    hessian = np.empty((2, 2))
    hessian[0, 0] = d2(fixed_1, fixed_2) + d2(r2_1, r2_2) / sigma2
    hessian[0, 1] = hessian[1, 0] = -2.0 * d1(r2_1) / sigma**3
    hessian[1, 1] = 6.0 * r2 / sigma2**2 - 2.0 * fx.dof(reml) / sigma2
    # Cov(beta) = sigma^2 R^-1 A^-1 R^-T and its derivatives in theta and sigma
    r_inv = fx.r_inv
    cov_q = r_inv @ a_inv @ r_inv.T
    d_cov_theta = sigma2 * d1(r_inv @ (-a_inv @ a1 @ a_inv) @ r_inv.T)
    d_cov_sigma = 2.0 * sigma * cov_q
    return hessian, (d_cov_theta, d_cov_sigma), sigma2 * cov_q


def _varpar_units(fit):
    """The kernel's input for the variance-parameter derivatives, and the unit of y it is expressed in.

    In the fit's own units unless sigma is below 1e-60 or above 1e60, where sigma^4 (which the
    Satterthwaite denominator carries) leaves double precision; then the response's statistics are
    divided by ``unit``, the power of 2 nearest sigma (an exact rescaling). Returns (blocks, response,
    unit).
    """
    blocks, resp = blocks_from_stats(fit.stats)
    sigma = fit.sigma_resid
    if 1e-60 < sigma < 1e60 or not np.isfinite(sigma) or sigma == 0:
        return blocks, resp, 1.0
    unit = float(2.0 ** np.round(np.log2(sigma)))
    scaled = Response.intercept(resp.sum_e / unit, resp.within_qe / unit, resp.within_ee / unit**2)
    return blocks, scaled, unit


def _pseudo_inverse(hessian: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """lmerTest's inverse: eigenvalues at most ``tol`` are dropped."""
    values, vectors = np.linalg.eigh(hessian)
    keep = values > tol
    return (vectors[:, keep] / values[keep]) @ vectors[:, keep].T


def varpar_covariance(fit, scale: str = "sd") -> pd.DataFrame:
    """The asymptotic covariance of the variance parameters: twice the inverse Hessian of the criterion.

    The Hessian is that of the fit's own criterion (REML or ML) with sigma left free, at the estimates,
    computed analytically from the sufficient statistics; lmerTest computes the same matrix numerically
    (``vcov_varpar``) for its Satterthwaite degrees of freedom.

    Parameters
    ----------
    fit : LmmResult
    scale : {"sd", "theta"}, default "sd"
        ``"sd"`` for (sigma_group, sigma); ``"theta"`` for lmerTest's (theta, sigma).

    Returns
    -------
    pandas.DataFrame
        A 2 x 2 covariance matrix.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fit = fit_lmm(load_dataset("sleepstudy"), "Reaction ~ Days + (1 | Subject)")
    >>> varpar_covariance(fit, "theta").round(4).to_numpy().tolist()
    [[0.0534, -0.1233], [-0.1233, 2.9828]]
    """
    fx, res, unit = _varpar_units(fit)
    hessian, _, _ = _derivatives(fx, res, fit.theta, fit.sigma_resid / unit, fit.reml)
    cov = 2.0 * _pseudo_inverse(hessian)
    cov = cov * np.outer(
        [1.0, unit], [1.0, unit]
    )  # back from (theta, sigma / unit) to (theta, sigma)
    if scale == "theta":
        names = ["theta", "sigma"]
    elif scale == "sd":
        # sigma_group = theta * sigma: the delta method with the Jacobian [[sigma, theta], [0, 1]]
        jac = np.array([[fit.sigma_resid, fit.theta], [0.0, 1.0]])
        cov = jac @ cov @ jac.T
        names = ["sigma_group", "sigma"]
    else:
        raise ValueError(f"scale must be 'sd' or 'theta', got {scale!r}.")
    return pd.DataFrame(cov, index=names, columns=names)


# --------------------------------------------------------------------------------------------------
# confint
# --------------------------------------------------------------------------------------------------


def _interval_frame(fit, lower, upper, method: str, level: float) -> pd.DataFrame:
    terms = list(fit.fe_params.index)
    index = pd.Index(["sigma_group", "sigma", *terms], name="parameter")
    out = pd.DataFrame(
        {
            "lower": np.asarray(lower, dtype=float),
            "upper": np.asarray(upper, dtype=float),
            "r_name": [".sig01", ".sigma", *[r_term_name(t) for t in terms]],
        },
        index=index,
    )
    out.attrs["method"] = method
    out.attrs["level"] = level
    return out


def confint(
    fit,
    method: str = "profile",
    level: float = 0.95,
    *,
    criterion: str = "ML",
    n: int = 1000,
    seed=None,
    replicates: pd.DataFrame | None = None,
    progress=None,
) -> pd.DataFrame:
    r"""Confidence intervals for sigma_b, sigma and the fixed effects, as lme4's ``confint.merMod``.

    Parameters
    ----------
    fit : LmmResult
    method : {"profile", "wald", "bootstrap"}, default "profile"
        - ``"profile"``: invert the likelihood-ratio test. For each parameter, the deviance is minimised
          over all the others; the limits are where it exceeds its minimum by ``qchisq(level, 1)``. As in
          lme4, the deviance is the **ML** deviance even for a REML fit (lme4's ``profile`` calls
          ``refitML``), so the intervals are centred on the ML estimates. When the profile at
          sigma_b = 0 is still below the cutoff, the lower limit of sigma_b is exactly 0.
        - ``"wald"``: estimate +- z se. For the fixed effects this is lme4's ``method = "Wald"``. lme4
          gives no Wald limits for the variance parameters; here they come from
          :func:`varpar_covariance` (the inverse Hessian of the fit's criterion, on the SD scale), to show
          how badly a symmetric interval fits a variance: the lower limit can be negative.
        - ``"bootstrap"``: percentile intervals from :func:`bootstrap` (lme4's ``method = "boot"`` with
          ``boot.type = "perc"``; quantiles interpolate linearly between order statistics).
    level : float, default 0.95
    criterion : {"ML", "REML"}, default "ML"
        Profile only. ``"REML"`` profiles the REML criterion for sigma_b and sigma instead (so the
        intervals surround the REML estimates); the fixed effects are still profiled on the ML deviance,
        as the REML criterion does not depend on them.
    n, seed, progress : optional
        Bootstrap only: passed to :func:`bootstrap`.
    replicates : pandas.DataFrame, optional
        Bootstrap only: replicates from an earlier :func:`bootstrap` call, reused instead of new draws.

    Returns
    -------
    pandas.DataFrame
        Index ``sigma_group``, ``sigma`` and the fixed-effect names; columns ``lower``, ``upper`` and
        ``r_name`` (lme4's row names: ``.sig01``, ``.sigma``, ``(Intercept)``, ...).

    Notes
    -----
    For a random-slopes fit, ``"profile"`` profiles the ML deviance (after refitting by ML, as lme4) over
    each SD, correlation, sigma and fixed effect, the rows named as lme4's ``oldNames = FALSE``
    (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ...); ``"wald"`` gives the fixed
    effects only; ``"bootstrap"`` gives percentile intervals for all of them from :func:`bootstrap`
    (a correlation's quantiles skip the replicates where one of its SDs is 0, as they have none).

    A profile limit is found by doubling a step away from the estimate until the profiled deviance passes
    the cutoff and then by Brent's root finder, to about 1e-12 relative. lme4 instead evaluates the
    profile at a few points and interpolates with splines, which moves its limits by up to about 1e-3.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fit = fit_lmm(load_dataset("dyestuff2"), "Yield ~ 1 + (1 | Batch)")
    >>> confint(fit).round(4)[["lower", "upper"]]
                  lower   upper
    parameter
    sigma_group  0.0000  2.0840
    sigma        2.8928  4.8158
    Intercept    4.3128  7.0184
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}.")
    key = str(method).lower()
    terms = list(fit.fe_params.index)
    if getattr(fit, "random", None) is not None:
        if key == "wald":
            return _slope_wald(fit, level)
        if key == "profile" and str(criterion).upper() == "ML":
            return _slope_profile(fit, level)
        if key in {"bootstrap", "boot"}:
            if replicates is None:
                replicates = bootstrap(fit, n=n, seed=seed, progress=progress)
            columns = [*varpar_names(fit), *terms]
            tail = (1.0 - level) / 2.0
            q = replicates[columns].quantile([tail, 1.0 - tail]).to_numpy()
            return _slope_frame(fit, q[0], q[1], "bootstrap", level)
        raise NotImplementedError(
            f"confint(method={method!r}, criterion={criterion!r}) is not available for random slopes "
            "yet (the profile is of the ML deviance, as lme4's); use method='profile', 'wald' or "
            "'bootstrap'."
        )
    if key == "wald":
        z = scipy.stats.norm.ppf(0.5 + level / 2.0)
        est = np.concatenate([[fit.sigma_group, fit.sigma_resid], fit.fe_params.to_numpy()])
        cov_var = varpar_covariance(fit, "sd").to_numpy()
        se = np.concatenate([np.sqrt(np.diag(cov_var)), fit.bse.to_numpy()])
        return _interval_frame(fit, est - z * se, est + z * se, "wald", level)
    if key in {"bootstrap", "boot"}:
        if replicates is None:
            replicates = bootstrap(fit, n=n, seed=seed, progress=progress)
        columns = ["sigma_group", "sigma", *terms]
        tail = (1.0 - level) / 2.0
        q = replicates[columns].quantile([tail, 1.0 - tail]).to_numpy()
        return _interval_frame(fit, q[0], q[1], "bootstrap", level)
    if key != "profile":
        raise ValueError(f"method must be 'profile', 'wald' or 'bootstrap', got {method!r}.")

    cutoff = float(scipy.stats.chi2.ppf(level, 1))
    var_prof = _Profiler(fit.stats, _criterion_flag(criterion))
    ml_prof = var_prof if not var_prof.reml else _Profiler(fit.stats, reml=False)
    lower, upper = [], []

    target = var_prof.minimum + cutoff
    scale = var_prof.sigma + var_prof.sigma_group
    sb = var_prof.sigma_group
    lower.append(_crossing(var_prof.at_sigma_group, sb, -0.1 * scale, target, floor=0.0))
    upper.append(_crossing(var_prof.at_sigma_group, sb, 0.1 * scale, target))

    def at_log_sigma(log_sigma):
        return var_prof.at_sigma(float(np.exp(log_sigma)))

    log_s = float(np.log(var_prof.sigma))
    lower.append(float(np.exp(_crossing(at_log_sigma, log_s, -0.05, target))))
    upper.append(float(np.exp(_crossing(at_log_sigma, log_s, 0.05, target))))

    target = ml_prof.minimum + cutoff
    fx = ml_prof.fx
    cov_ml = ml_prof.sigma**2 * fx.r_inv @ ml_prof._core([ml_prof.theta]).a_inv[0] @ fx.r_inv.T
    for j in range(len(terms)):
        se = float(np.sqrt(cov_ml[j, j]))
        b = float(ml_prof.beta[j])

        def at_beta(value, j=j):
            return ml_prof.at_beta(j, value)

        lower.append(_crossing(at_beta, b, -se, target))
        upper.append(_crossing(at_beta, b, se, target))
    return _interval_frame(fit, lower, upper, "profile", level)


# --------------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------------


def _replicate_resid(fx: _Fixed, gram_basis, v_extra, resid_ss):
    """The residual statistics of replicates, from their random intercepts and their error parts.

    ``v_extra`` is G^+ g (one row per replicate) and ``resid_ss`` is ||(I - P_W) e*||^2; see the Notes of
    :func:`bootstrap`. With v = b* + G^+ g and w = sum_q' v:

        sum_e = G v,   W_qe = -W_qq w,   W_ee = w' W_qq w + ||(I - P_W) e*||^2,

    the within cross-products written without subtracting large numbers.
    """
    vec, lam, b_star = gram_basis
    v = b_star + v_extra
    sum_e = ((v @ vec) * lam) @ vec.T
    w = v @ fx.sum_q
    within_qe = -(w @ fx.within_xx)
    within_ee = np.einsum("mp,pq,mq->m", w, fx.within_xx, w) + resid_ss
    ete = np.sum((v @ vec) ** 2 * lam, axis=1) + resid_ss
    return _Resid(sum_e=sum_e, within_qe=within_qe, within_ee=within_ee), ete


def _gram(fx: _Fixed, n_groups: int):
    """G = Z'MZ = diag(n) - sum_q sum_q' over its positive eigenvalues: (U, L, rank)."""
    gram = np.diag(fx.counts) - fx.sum_q @ fx.sum_q.T
    eigval, eigvec = np.linalg.eigh(gram)
    keep = eigval > eigval.max() * n_groups * 1e-12
    return eigvec[:, keep], eigval[keep], int(keep.sum())


class _Progress:
    """A progress bar for a loop over ``n`` replicates: forced on (True), off (False), or by default
    (None) shown once the run looks slower than 2 seconds."""

    def __init__(self, n: int, progress, desc: str = "bootstrap"):
        self.n, self.progress, self.desc = n, progress, desc
        self.done, self.bar = 0, None
        self.started = time.perf_counter()

    def __enter__(self):
        return self

    def update(self, m: int) -> None:
        self.done += m
        if self.bar is not None:
            self.bar.update(m)
        elif self.done < self.n:
            expected = (time.perf_counter() - self.started) / self.done * self.n
            if self.progress or (self.progress is None and expected > 2.0):
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.n, initial=self.done, desc=self.desc, unit="replicate")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def _intercept_replicates(fit):
    """The column names and a chunk function for a random-intercept fit (see :func:`bootstrap`'s Notes)."""
    stats = fit.stats
    fx = _Fixed.of(stats)
    terms = list(fit.fe_params.index)
    p, n_groups = fx.n_params, stats.n_groups
    sigma, sigma_group = fit.sigma_resid, fit.sigma_group
    vec, lam, rank_g = _gram(fx, n_groups)
    df_chi = fx.n_obs - p - rank_g
    gamma = fx.r_factor @ fit.fe_params.to_numpy()
    dof = fx.dof(fit.reml)

    def chunk(rng, m, tick):
        b_star = sigma_group * rng.standard_normal((m, n_groups))
        h = sigma * rng.standard_normal((m, p))
        z = rng.standard_normal((m, rank_g))
        chi2 = rng.chisquare(df_chi, m) if df_chi > 0 else np.zeros(m)
        v_extra = (sigma * z / np.sqrt(lam)) @ vec.T  # G^+ g
        res, _ = _replicate_resid(fx, (vec, lam, b_star), v_extra, sigma * sigma * chi2)
        beta_ols = (gamma + b_star @ fx.sum_q + h) @ fx.r_inv.T
        theta, converged = _optimize_batch(fx, res, fit.reml)
        core = evaluate(fx, res, theta[:, None], fit.reml)
        sigma2 = core.r2 / dof
        block = np.empty((m, p + 3))
        block[:, :p] = beta_ols + core.delta @ fx.r_inv.T
        block[:, p] = theta * np.sqrt(sigma2)
        block[:, p + 1] = np.sqrt(sigma2)
        block[:, p + 2] = theta
        tick(m)
        return block, int((~converged).sum())

    return [*terms, "sigma_group", "sigma", "theta"], chunk


class _SlopeSimulator:
    r"""Draws the kernel's response of y* = X beta + Z b* + e* for any q, exactly, without rows.

    With G_i = Z_i'Z_i, F_i = Z_i'Q_i (the blocks' basis, Q = X R^{-1}) and e = y* - X beta (the
    response's ``beta_ols`` is beta), a refit needs Z_i'e = G_i b_i + g_i, Q'e = sum_i F_i'b_i + h and
    e'e = sum_i b_i'G_i b_i + 2 sum_i b_i'g_i + e*'e*, with g_i = Z_i'e* and h = Q'e*. The noise parts
    are drawn from independent pieces (see :func:`bootstrap`'s Notes): per cluster, G_i = U_i L_i U_i'
    over its positive eigenvalues and g_i = sigma U_i L_i^{1/2} z_i; h = sum_i F_i'G_i^+ g_i + eta with
    eta ~ N(0, sigma^2 S), S = Q'Q - sum_i F_i'G_i^+ F_i = V M V' (positive eigenvalues),
    eta = sigma V M^{1/2} w; and e*'e* = sigma^2 (sum_i |z_i|^2 + |w|^2 + chi^2), the chi-square on
    N - sum_i rank G_i - rank S degrees of freedom. An eigenvalue dropped as zero moves its part of
    e*'e* into the chi-square (one more degree of freedom), so the rank decisions cannot bias e'e.

    ``factor`` is T (q x q; b_i = sigma T u_i, u_i ~ N(0, I)); any q x q matrix with the wanted T T'.
    """

    def __init__(self, blocks: Blocks, factor: np.ndarray, sigma: float, beta: np.ndarray):
        self.blocks = blocks
        self.factor = np.asarray(factor, dtype=float)
        self.sigma = float(sigma)
        self.beta = np.asarray(beta, dtype=float)
        gram, cross = blocks.ztz, blocks.ztx
        lam, vec = np.linalg.eigh(gram)  # (J, q), (J, q, q)
        top = np.maximum(lam.max(axis=-1, keepdims=True), 0.0)
        self.keep = lam > 1e-10 * top
        safe = np.where(self.keep, lam, 1.0)
        self.half = vec * np.where(self.keep, np.sqrt(safe), 0.0)[:, None, :]  # U L^{1/2}
        pinv_half = vec * np.where(self.keep, 1.0 / np.sqrt(safe), 0.0)[:, None, :]  # U L^{-1/2}
        self.k = np.swapaxes(pinv_half, -1, -2) @ cross  # L^{-1/2} U'F_i: F_i'G_i^+ g_i = sigma k'z
        schur = blocks.xtx - np.einsum("jka,jkb->ab", self.k, self.k)
        mu, v = np.linalg.eigh(0.5 * (schur + schur.T))
        scale = max(1.0, float(np.abs(np.diag(blocks.xtx)).max()))
        keep_s = mu > 1e-9 * scale
        self.eta_half = v[:, keep_s] * np.sqrt(mu[keep_s])  # V M^{1/2}
        self.df = int(blocks.n_obs - self.keep.sum() - keep_s.sum())

    def parts(self, rng, m: int):
        """The standard normal and chi-square draws of m replicates: (u, z, w, chi2)."""
        n_groups, q = self.blocks.n_groups, self.blocks.q
        u = rng.standard_normal((m, n_groups, q))
        z = rng.standard_normal((m, n_groups, q)) * self.keep
        w = rng.standard_normal((m, self.eta_half.shape[1]))
        chi2 = rng.chisquare(self.df, m) if self.df > 0 else np.zeros(m)
        return u, z, w, chi2

    def draw(self, rng, m: int) -> Response:
        """The responses of m replicates (a leading batch axis of length m)."""
        return self.response(*self.parts(rng, m))

    def response(self, u, z, w, chi2) -> Response:
        blocks, sigma = self.blocks, self.sigma
        b = sigma * (u @ self.factor.T)  # (m, J, q): b_i = sigma T u_i
        g = sigma * np.einsum("jab,mjb->mja", self.half, z)  # Z_i'e*
        gb = np.einsum("jab,mjb->mja", blocks.ztz, b)  # G_i b_i
        xty = np.einsum("jqp,mjq->mp", blocks.ztx, b) + sigma * (
            np.einsum("jqp,mjq->mp", self.k, z) + w @ self.eta_half.T
        )
        noise = np.sum(z * z, axis=(1, 2)) + np.sum(w * w, axis=1) + chi2
        yty = np.sum(b * (gb + 2.0 * g), axis=(1, 2)) + sigma * sigma * noise
        m = len(chi2)
        return Response(
            zty=gb + g, xty=xty, yty=yty, beta_ols=np.broadcast_to(self.beta, (m, len(self.beta)))
        )


def _refit_thetas(blocks: Blocks, resp: Response, reml: bool, free, tick=None):
    """lme4's theta of each of a batch of responses (free elements), and whether each refit converged:
    one :func:`helpers.kernel.optimize` call per response (all at once for a scalar theta)."""
    if blocks.q == 1:
        theta, converged = _optimize_batch(blocks, resp, reml)
        if tick is not None:
            tick(len(theta))
        return theta[:, None], converged
    m = resp.zty.shape[0]
    out = np.empty((m, len(free)))
    converged = np.ones(m, dtype=bool)
    for k in range(m):
        out[k], summary = optimize(blocks, resp.take(k), reml, free=free)
        converged[k] = summary.converged
        if tick is not None:
            tick(1)
    return out, converged


def _slope_replicates(fit):
    """The column names and a chunk function for a random-terms fit (see :func:`bootstrap`)."""
    random = fit.random
    blocks = random.blocks
    terms = list(fit.fe_params.index)
    sim = _SlopeSimulator(
        blocks, random.factor(fit.theta), fit.sigma_resid, fit.fe_params.to_numpy()
    )
    names = varpar_names(fit)

    def chunk(rng, m, tick):
        resp = sim.draw(rng, m)
        theta, converged = _refit_thetas(blocks, resp, fit.reml, random.free, tick)
        ev = evaluate(blocks, resp, random.full_theta(theta), fit.reml)
        sigma = np.sqrt(ev.sigma2)
        block = np.column_stack([ev.beta, _sd_cor(random, theta, sigma), sigma, theta])
        return block, int((~converged).sum())

    return [*terms, *names, *random.theta_names], chunk


def _sd_cor(random, theta: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Each term's SDs and correlations in :func:`varpar_names`' order (without sigma), for a batch of
    (theta, sigma); a correlation with an SD of 0 is NaN, as in lme4."""
    factor = random.factor(theta)
    rel = factor @ np.swapaxes(factor, -1, -2)
    out, start = [], 0
    for term in random.terms:
        for j in range(term.size):
            for i in range(j, term.size):
                a, b = start + i, start + j
                if i == j:
                    out.append(sigma * np.sqrt(np.maximum(rel[:, a, a], 0.0)))
                else:
                    denom = np.sqrt(rel[:, a, a] * rel[:, b, b])
                    with np.errstate(invalid="ignore", divide="ignore"):
                        corr = np.where(denom > 0, rel[:, a, b] / denom, np.nan)
                    out.append(np.clip(corr, -1.0, 1.0))
        start += term.size
    return np.column_stack(out)


def bootstrap(fit, n: int = 1000, seed=None, progress=None, *, chunk: int = 2000) -> pd.DataFrame:
    r"""A parametric bootstrap, as lme4's ``bootMer``, drawn exactly from the sufficient statistics.

    Each replicate simulates y* = X beta + Z b* + e* from the fitted model (new b* ~ N(0, sigma_b^2), or
    b*_i ~ N(0, sigma^2 T T') for random slopes, and e* ~ N(0, sigma^2), lme4's ``use.u = FALSE``),
    refits it with the fit's criterion (REML or ML), and records the estimates. No rows are simulated: the statistics a fit needs are drawn directly, with
    exactly the distribution they would have if the rows had been simulated.

    Parameters
    ----------
    fit : LmmResult
    n : int, default 1000
        The number of replicates.
    seed : int or numpy.random.Generator, optional
    progress : bool, optional
        Show a progress bar. By default (None) it appears only when the run looks slower than 2 seconds.
    chunk : int, default 2000
        Replicates drawn and refitted together (bounds the memory used).

    Returns
    -------
    pandas.DataFrame
        One row per replicate: the fixed effects (by term name), ``sigma_group``, ``sigma`` and
        ``theta``. For a random-slopes fit: the fixed effects, each term's SDs and correlations named
        as lme4's ``confint`` names them (:func:`varpar_names`: ``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sd_Days|Subject``, in theta's order), ``sigma``, and the
        elements of theta (``fit.random.theta_names``); a correlation whose SD is 0 is NaN. ``attrs``
        records ``n``, ``seed``, ``method`` and how many refits did not converge.

    Notes
    -----
    **Derivation.** Let X = QR (Q orthonormal), M = I - QQ' the residual maker, Z the N x J cluster
    indicators, a_i the per-cluster sums of Q's rows and G = Z'MZ = diag(n) - sum_q sum_q'. A fit needs,
    besides quantities fixed by X, only Q'y*, the cluster sums s* = Z'My* of the OLS residuals, and their
    within-cluster cross-products (or e'e* = ||My*||^2). Since MX = 0,

        Q'y* = R beta + sum_q' b* + Q'e*,   s* = G b* + Z'Me*,   My* = MZ b* + Me*.

    h = Q'e* and g = Z'Me* are jointly Gaussian with Cov(h, g) = sigma^2 Q'MZ = 0, so they are
    independent, h ~ N(0, sigma^2 I_p) and g ~ N(0, sigma^2 G). Let W = [X, Z]; its column space splits
    orthogonally into col(X) and col(MZ), so Me* = P_MZ e* + (I - P_W) e* with P_MZ e* = MZ G^+ g, and

        My* = MZ v + (I - P_W) e*,   v = b* + G^+ g.

    The two parts are orthogonal and (I - P_W) e* is independent of P_W e* (hence of h and g), with
    ||(I - P_W) e*||^2 ~ sigma^2 chi^2 on N - rank W = N - p - rank G degrees of freedom. So

        s* = G v,   e'e* = v'G v + sigma^2 chi^2,
        within cross-products: W_qe = -W_qq w and W_ee = w' W_qq w + sigma^2 chi^2, with w = sum_q' v,

    (the within part of MZ v is -(I - P_Z) Q Q'Z v, whose cross-products with Q are those of W_qq). With
    G = U L U' over its positive eigenvalues, G^+ g = sigma U L^(-1/2) z for z ~ N(0, I). Each replicate
    costs O(J p), whatever N: draw b*, h, z and one chi-square.

    The refits run for all replicates at once (a grid brackets each minimum, then a vectorised bisection
    finds the root of the closed-form slope), following :func:`helpers.fit.optimize_theta`.

    **Random slopes (any q).** With G_i = Z_i'Z_i and F_i = Z_i'Q_i per cluster, a refit needs
    Z_i'e, Q'e and e'e for e = y* - X beta: Z_i'e = G_i b*_i + g_i, Q'e = sum_i F_i'b*_i + h and
    e'e = sum_i b*_i'G_i b*_i + 2 sum_i b*_i'g_i + e*'e*, with g_i = Z_i'e* and h = Q'e*. The g_i are
    independent across clusters, g_i ~ N(0, sigma^2 G_i). The part of h they explain is
    sum_i F_i'G_i^+ g_i (F_i lies in G_i's column space, so Cov(h, g_i) = F_i' as it should); the rest,
    eta ~ N(0, sigma^2 S) with S = Q'Q - sum_i F_i'G_i^+ F_i, is independent of them (S is 0 when every
    column of X lies in each cluster's Z, as in ``Reaction ~ Days + (Days | Subject)``). Projecting e*
    on the columns of [Q, Z_1, ..., Z_J] splits e*'e* into sum_i g_i'G_i^+ g_i + eta'S^+ eta and an
    independent sigma^2 chi^2 on N - sum_i rank G_i - rank S degrees of freedom. Rank-deficient G_i
    (a cluster with one row, or a slope variable constant within it) are handled by their positive
    eigenvalues; a direction dropped as 0 moves its share of e*'e* into the chi-square. Each replicate
    costs O(J q^3) to draw, whatever N; its refit is one :func:`helpers.kernel.optimize` call on the
    clusters' sums (about 10 ms for sleepstudy's ``(Days | Subject)``).

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fit = fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> reps = bootstrap(fit, n=200, seed=1)
    >>> reps.shape, list(reps.columns)
    ((200, 4), ['Intercept', 'sigma_group', 'sigma', 'theta'])
    >>> bool((reps["sigma_group"] >= 0).all())
    True
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be a positive number of replicates, got {n!r}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    slopes = getattr(fit, "random", None) is not None
    columns, draw = _slope_replicates(fit) if slopes else _intercept_replicates(fit)
    out = np.empty((n, len(columns)))
    not_converged = 0
    with _Progress(n, progress) as bar:
        while bar.done < n:
            m = min(int(chunk), n - bar.done)
            at = bar.done
            out[at : at + m], failed = draw(rng, m, bar.update)
            not_converged += failed
    if not_converged:
        detail = (
            "did not pass the optimiser's convergence test; their estimates are its last point"
            if slopes
            else "have no finite optimum (no variation within clusters is left once the fixed "
            "effects are fitted, or theta beyond 1e16); their theta is the end of the search grid"
        )
        warnings.warn(
            f"{not_converged} of {n} bootstrap refits {detail}.", RuntimeWarning, stacklevel=2
        )
    frame = pd.DataFrame(out, columns=columns)
    frame.attrs["n"] = n
    frame.attrs["seed"] = None if isinstance(seed, np.random.Generator) else seed
    frame.attrs["method"] = fit.method
    frame.attrs["not_converged"] = not_converged
    return frame


# --------------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------------


def satterthwaite_tests(fit) -> pd.DataFrame:
    r"""t tests of the fixed effects with Satterthwaite's degrees of freedom, as lmerTest's ``summary``.

    For coefficient k with variance C_kk = [sigma^2 A(u)^{-1}]_kk, Satterthwaite's approximation is

    $$\nu_k = \frac{2\, C_{kk}^2}{\nabla C_{kk}'\, V\, \nabla C_{kk}},$$

    where the gradient is taken with respect to the variance parameters (theta, sigma) and V = 2 H^{-1}
    is their asymptotic covariance, H the Hessian of the fit's criterion with sigma left free. lmerTest
    computes H and the gradient by numerical differentiation; here both are analytic (see
    :func:`varpar_covariance`), from the sufficient statistics.

    Parameters
    ----------
    fit : LmmResult or OlsResult
        A REML fit, as lmerTest's default. For an ML fit the same formulas are applied to the ML deviance,
        as lmerTest does for ``lmer(..., REML = FALSE)``. An :class:`helpers.results.OlsResult` gets the
        classical t tests on N - p degrees of freedom (R's ``summary.lm``), which treat every row as
        independent: the naive table to set beside the mixed model's.

    Returns
    -------
    pandas.DataFrame
        Index: the fixed-effect names; columns ``estimate``, ``std_error``, ``df``, ``t_value`` and
        ``p_value`` (two-sided).

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm, fit_ols
    >>> sleep = load_dataset("sleepstudy")
    >>> satterthwaite_tests(fit_lmm(sleep, "Reaction ~ Days + (1 | Subject)"))["df"].round(3).tolist()
    [22.81, 161.0]
    >>> satterthwaite_tests(fit_ols(sleep, "Reaction ~ Days"))["df"].tolist()
    [178.0, 178.0]
    """
    if isinstance(fit, OlsResult):
        t_value = (fit.params / fit.bse).to_numpy()
        df = np.full(len(t_value), float(fit.df_resid))
        return pd.DataFrame(
            {
                "estimate": fit.params.to_numpy(),
                "std_error": fit.bse.to_numpy(),
                "df": df,
                "t_value": t_value,
                "p_value": 2.0 * scipy.stats.t.sf(np.abs(t_value), df),
            },
            index=fit.params.index,
        )
    if getattr(fit, "random", None) is not None:
        return _slope_tests(fit)
    # in units of sigma when sigma^4 would leave double precision: the degrees of freedom are unit-free
    fx, res, unit = _varpar_units(fit)
    hessian, (d_theta, d_sigma), cov = _derivatives(
        fx, res, fit.theta, fit.sigma_resid / unit, fit.reml
    )
    vcov_varpar = 2.0 * _pseudo_inverse(hessian)
    variance = np.diag(cov)
    grad = np.stack([np.diag(d_theta), np.diag(d_sigma)], axis=1)  # (p, 2)
    denominator = np.einsum("ki,ij,kj->k", grad, vcov_varpar, grad)
    with np.errstate(divide="ignore"):
        df = 2.0 * variance**2 / denominator
    estimate = fit.fe_params.to_numpy()
    std_error = fit.bse.to_numpy()
    t_value = estimate / std_error
    p_value = 2.0 * scipy.stats.t.sf(np.abs(t_value), df)
    return pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": std_error,
            "df": df,
            "t_value": t_value,
            "p_value": p_value,
        },
        index=fit.fe_params.index,
    )


# --------------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------------


def tests(fit) -> pd.DataFrame:
    """The former name of :func:`satterthwaite_tests` (deprecated: pytest collects a public ``tests``)."""
    warnings.warn(
        "helpers.inference.tests is renamed satterthwaite_tests", DeprecationWarning, stacklevel=2
    )
    return satterthwaite_tests(fit)


def _match_groups(labels: pd.Index, values: pd.Series) -> np.ndarray:
    """Positions of ``values`` among the fit's group labels (-1 for unseen or missing)."""
    codes = labels.get_indexer(pd.Index(values.astype(object)))
    unmatched = codes < 0
    if unmatched.any():
        # tolerate a type mismatch such as 308 vs "308"
        by_text = {str(label): k for k, label in enumerate(labels)}
        texts = values.astype(object).to_numpy()[unmatched]
        codes[unmatched] = [by_text.get(str(v), -1) if not pd.isna(v) else -1 for v in texts]
    return codes


def predict(fit, data: pd.DataFrame, include_random: bool = True) -> pd.Series:
    """Predictions for the rows of ``data``.

    Parameters
    ----------
    fit : LmmResult
        A fit made from rows (``fit_lmm``), which keeps the formula's model spec.
    data : pandas.DataFrame
        New (or the same) rows, with the fixed-effect columns, the columns of any ``offset()`` term
        (added to the prediction, as lme4 does) and, for ``include_random=True``, the grouping column.
    include_random : bool, default True
        If True, add each row's cluster's conditional mode b_i (lme4's ``predict(fit, newdata,
        allow.new.levels = TRUE)``): a cluster the fit never saw, or a missing cluster, gets 0, its
        expected value, so its prediction is the fixed-effect one. If False, give X beta alone (lme4's
        ``re.form = NA``).

    Returns
    -------
    pandas.Series
        Indexed like ``data``. A row with a missing predictor gets NaN.

    Raises
    ------
    helpers.validate.DataError
        For a missing column, or a category level the fit never saw.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fit = fit_lmm(load_dataset("sleepstudy"), "Reaction ~ Days + (1 | Subject)")
    >>> new = pd.DataFrame({"Days": [0.0, 0.0], "Subject": [308, 999]})
    >>> predict(fit, new).round(2).tolist()
    [292.19, 251.41]
    >>> predict(fit, new, include_random=False).round(2).tolist()
    [251.41, 251.41]
    """
    design = fit.design
    if design is None or getattr(design, "model_spec", None) is None:
        raise ValueError(
            "This fit was made from aggregates and has no formula spec to build new rows; refit it "
            "with fit_lmm on the rows."
        )
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"Expected a pandas DataFrame of new rows, got {type(data).__name__}.")
    from formulaic.errors import FormulaicError  # formulaic loads slowly; only predict needs it

    spec = design.model_spec
    # the offsets are part of the prediction, as in lme4's predict()
    offsets = sorted(str(v) for v in getattr(spec, "offset_variables", ()))
    required = sorted({str(v) for v in spec.required_variables} | set(offsets))
    needed = required + ([fit.group] if include_random else [])
    for column in needed:
        if column not in data.columns:
            hint = (
                " Pass include_random=False for predictions without the random effects."
                if column == fit.group
                else ""
            )
            raise DataError(
                f"Column {column!r} is needed for the predictions but is not in the data.{hint}"
            )
    for name, (kind, state) in spec.encoder_state.items():
        if str(getattr(kind, "value", kind)) != "categorical" or name not in data.columns:
            continue
        known = list(state.get("categories", []))
        present = pd.unique(data[name].dropna())
        new = [v for v in present if v not in known]
        if new:
            raise DataError(
                f"Column {name!r} has the level {new[0]!r}, which the fit never saw (it knows "
                f"{', '.join(repr(k) for k in known)}); predictions need one of those levels."
            )
    missing = (
        data[required].isna().any(axis=1).to_numpy() if required else np.zeros(len(data), bool)
    )
    complete = data.loc[~missing]
    value = np.full(len(data), np.nan)
    if len(complete):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                matrix = spec.get_model_matrix(complete)
            except Warning as exc:
                raise DataError(
                    f"The new rows do not fit the model's terms: {str(exc).splitlines()[0]}"
                ) from None
            except (FormulaicError, ValueError, TypeError, KeyError) as exc:
                # what formulaic and pandas raise for values the terms cannot take (e.g. text in a
                # numeric column); anything else is a bug and propagates as it is
                raise DataError(
                    f"The model's terms could not be built for the new rows: {exc}"
                ) from None
        value[~missing] = np.asarray(matrix, dtype=float) @ fit.fe_params.to_numpy()
        if offsets:
            value[~missing] += spec.offset(complete)
    if include_random and getattr(fit, "random", None) is not None:
        value = value + _slope_random_part(fit, data)
    elif include_random:
        codes = _match_groups(fit.ranef.index, data[fit.group])
        ranef = np.append(fit.ranef.to_numpy(), 0.0)
        value = value + ranef[codes]  # code -1 picks the appended 0: unseen or missing clusters
    return pd.Series(value, index=data.index, name="prediction")


# --------------------------------------------------------------------------------------------------
# Random slopes (several random terms of one grouping factor)
# --------------------------------------------------------------------------------------------------


def varpar_names(fit) -> list[str]:
    """lme4's names of the variance parameters of a random-terms fit, in theta's order, then sigma.

    ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sd_Days|Subject``, ``sigma`` (the
    names ``confint.merMod`` prints with ``oldNames = FALSE``).
    """
    random = fit.random
    out = []
    for term in random.terms:
        for j in range(term.size):
            for i in range(j, term.size):
                a, b = term.names[i], term.names[j]
                out.append(f"sd_{a}|{random.group}" if i == j else f"cor_{a}.{b}|{random.group}")
    return out + ["sigma"]


def _varpar_deviance(fit, points: np.ndarray):
    """D(theta, sigma) at a batch of (theta, sigma) points, and sigma^2 A^{-1} in X's basis there.

    D is the fit's criterion with beta profiled out and sigma left free (lmerTest's ``devfun_vp``):
    sum_i log det M_i [+ log det A] + r2 / sigma^2 + dof log(2 pi sigma^2).
    """
    random = fit.random
    blocks, resp = random.blocks, random.response
    theta, sigma = points[..., :-1], points[..., -1]
    ev = evaluate(blocks, resp, random.full_theta(theta), fit.reml)
    dof = blocks.dof(fit.reml)
    s2 = sigma * sigma
    value = ev.logdet_l + ev.r2 / s2 + dof * np.log(2.0 * np.pi * s2)
    if fit.reml:
        value = value + ev.logdet_a
    r_inv = blocks.r_inv
    cov = s2[..., None, None] * (r_inv @ ev.a_inv @ r_inv.T)
    return value, cov


def _richardson_derivatives(fun, x: np.ndarray, step: np.ndarray):
    """Gradient-free second-order information by central differences with one Richardson step.

    Returns the Hessian of the scalar part of ``fun`` and the Jacobian of its array part (both
    extrapolated from steps h and h/2, error O(h^4)), all points evaluated in one batch.
    """
    k = len(x)
    eye = np.eye(k)

    def hess_jac(h):
        pts = [x]
        for i in range(k):
            pts += [x + h[i] * eye[i], x - h[i] * eye[i]]
        for i in range(k):
            for j in range(i + 1, k):
                for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                    pts.append(x + si * h[i] * eye[i] + sj * h[j] * eye[j])
        values, arrays = fun(np.array(pts))
        f0 = values[0]
        hess = np.empty((k, k))
        jac = np.empty((k,) + arrays.shape[1:])
        for i in range(k):
            fp, fm = values[1 + 2 * i], values[2 + 2 * i]
            hess[i, i] = (fp - 2.0 * f0 + fm) / h[i] ** 2
            jac[i] = (arrays[1 + 2 * i] - arrays[2 + 2 * i]) / (2.0 * h[i])
        pos = 1 + 2 * k
        for i in range(k):
            for j in range(i + 1, k):
                fpp, fpm, fmp, fmm = values[pos : pos + 4]
                hess[i, j] = hess[j, i] = (fpp - fpm - fmp + fmm) / (4.0 * h[i] * h[j])
                pos += 4
        return hess, jac

    h1, j1 = hess_jac(step)
    h2, j2 = hess_jac(step / 2.0)
    return (4.0 * h2 - h1) / 3.0, (4.0 * j2 - j1) / 3.0


def _slope_varpar_derivatives(fit):
    x = np.concatenate([np.asarray(fit.theta, dtype=float), [fit.sigma_resid]])
    step = 1e-3 * np.maximum(np.abs(x), 0.05 * max(1.0, float(np.max(np.abs(x[:-1])))))
    step[-1] = 1e-3 * fit.sigma_resid
    return _richardson_derivatives(lambda pts: _varpar_deviance(fit, pts), x, step)


def _slope_tests(fit) -> pd.DataFrame:
    """Satterthwaite's df for a random-terms fit, as lmerTest: the Hessian of D(theta, sigma) and the
    Jacobian of Cov(beta) in (theta, sigma) by central differences with Richardson extrapolation."""
    hessian, jac = _slope_varpar_derivatives(fit)
    vcov_varpar = 2.0 * _pseudo_inverse(hessian)
    cov = fit.cov_fe.to_numpy()
    variance = np.diag(cov)
    grad = np.stack([np.diag(j) for j in jac], axis=1)  # (p, k)
    denominator = np.einsum("ki,ij,kj->k", grad, vcov_varpar, grad)
    with np.errstate(divide="ignore"):
        df = 2.0 * variance**2 / denominator
    estimate = fit.fe_params.to_numpy()
    std_error = fit.bse.to_numpy()
    t_value = estimate / std_error
    return pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": std_error,
            "df": df,
            "t_value": t_value,
            "p_value": 2.0 * scipy.stats.t.sf(np.abs(t_value), df),
        },
        index=fit.fe_params.index,
    )


def _slope_wald(fit, level: float) -> pd.DataFrame:
    """lme4's ``confint(method = "Wald")`` for a random-terms fit: the fixed effects' limits, and no
    limits (NaN) for the variance parameters, as lme4 gives none."""
    z = scipy.stats.norm.ppf(0.5 + level / 2.0)
    est, se = fit.fe_params.to_numpy(), fit.bse.to_numpy()
    nan = np.full(len(varpar_names(fit)), np.nan)
    lower = np.concatenate([nan, est - z * se])
    upper = np.concatenate([nan, est + z * se])
    return _slope_frame(fit, lower, upper, "wald", level)


def _slope_frame(fit, lower, upper, method: str, level: float) -> pd.DataFrame:
    """Intervals of a random-terms fit: the variance parameters (:func:`varpar_names`), then the fixed
    effects, with lme4's row names in ``r_name``."""
    names = varpar_names(fit)
    terms = list(fit.fe_params.index)
    out = pd.DataFrame(
        {
            "lower": np.asarray(lower, dtype=float),
            "upper": np.asarray(upper, dtype=float),
            "r_name": names + [r_term_name(t) for t in terms],
        },
        index=pd.Index(names + terms, name="parameter"),
    )
    out.attrs["method"] = method
    out.attrs["level"] = level
    return out


def _varpar_to_theta(random, phi: np.ndarray) -> np.ndarray:
    """lme4's theta from the variance parameters (per term: SDs and correlations in theta's order,
    then sigma): each term's T block is diag(sd) chol(R) / sigma, R the correlation matrix (NaN where
    R is not positive definite)."""
    sigma = phi[-1]
    out, pos = [], 0
    for term in random.terms:
        s = term.size
        block = phi[pos : pos + theta_size(s)]
        pos += theta_size(s)
        sd, corr = np.zeros(s), np.eye(s)
        k = 0
        for j in range(s):
            for i in range(j, s):
                if i == j:
                    sd[i] = block[k]
                else:
                    corr[i, j] = corr[j, i] = block[k]
                k += 1
        try:
            lower = np.linalg.cholesky(corr)
        except np.linalg.LinAlgError:
            return np.full(random.n_theta, np.nan)
        t = sd[:, None] * lower / sigma
        out += [t[i, j] for j in range(s) for i in range(j, s)]
    return np.array(out)


class _SlopeProfiler:
    """Profiled ML deviances of a random-terms fit over each variance parameter (SD, correlation,
    sigma) and each fixed effect, as lme4's ``profile`` (after ``refitML``): for one parameter held at a
    value, the ML deviance D(theta, sigma) (beta profiled out) minimised over all the others."""

    def __init__(self, fit):
        random = fit.random
        self.random = random
        self.blocks, self.resp = random.blocks, random.response
        theta, summary = optimize(self.blocks, self.resp, False, free=random.free)
        self.theta = theta
        self.minimum = summary.criterion
        ev = evaluate(self.blocks, self.resp, random.full_theta(theta), False)
        self.sigma = float(np.sqrt(ev.sigma2))
        self.beta = np.asarray(ev.beta, dtype=float)
        self.cov_beta = np.asarray(ev.cov_beta, dtype=float)
        # the variance parameters at the ML estimate, in lme4's order (SDs and correlations, sigma)
        from .random_terms import varcorr_frame

        vc = varcorr_frame(random, theta, self.sigma**2, random.group)
        self.phi = np.asarray(vc["sdcor"], dtype=float)
        self.kinds = ["sd" if v is None else "cor" for v in vc["var2"][:-1]] + ["sigma"]
        # varcorr lists each term's SDs first, then its correlations; theta's order interleaves them
        names = varpar_names(fit)
        vc_names = [
            f"sd_{r.var1}|{random.group}"
            if r.var2 is None
            else f"cor_{r.var2}.{r.var1}|{random.group}"
            for r in vc.iloc[:-1].itertuples()
        ] + ["sigma"]
        order = [vc_names.index(n) for n in names]
        self.phi = self.phi[order]
        self.kinds = [self.kinds[i] for i in order]
        self.names = names

    def deviance(self, phi: np.ndarray) -> float:
        """D(theta, sigma), the ML deviance with beta profiled out and sigma free, at variance
        parameters ``phi``."""
        theta = _varpar_to_theta(self.random, phi)
        sigma = phi[-1]
        if not np.all(np.isfinite(theta)) or sigma <= 0:
            return np.inf
        ev = evaluate(self.blocks, self.resp, self.random.full_theta(theta), False)
        n = self.blocks.n_obs
        return float(ev.logdet_l + ev.r2 / sigma**2 + n * np.log(2.0 * np.pi * sigma**2))

    def _to_free(self, phi):
        out = np.array(phi, dtype=float)
        for k, kind in enumerate(self.kinds):
            out[k] = (
                np.arctanh(np.clip(out[k], -0.999999, 0.999999))
                if kind == "cor"
                else np.log(max(out[k], 1e-12))
            )
        return out

    def _from_free(self, z):
        return np.array(
            [
                np.tanh(v) if kind == "cor" else np.exp(v)
                for v, kind in zip(z, self.kinds, strict=True)
            ]
        )

    def at_varpar(self, k: int, value: float, start=None) -> float:
        """The deviance with variance parameter k held at ``value``, minimised over the others."""
        others = [i for i in range(len(self.phi)) if i != k]
        z0 = self._to_free(self.phi if start is None else start)[others]

        def fun(z):
            phi = np.empty(len(self.phi))
            phi[others] = self._from_free(np.insert(z, k, 0.0))[others]
            phi[k] = value
            return self.deviance(phi)

        best = scipy.optimize.minimize(fun, z0, method="BFGS", options={"gtol": 1e-6})
        return float(best.fun)

    def at_beta(self, j: int, value: float) -> float:
        """The ML deviance with beta_j held at ``value``, minimised over theta (and the other betas)."""
        blocks, resp, random = self.blocks, self.resp, self.random
        r_inv_j = blocks.r_inv[j]
        n = blocks.n_obs
        lower = random.theta_lower

        def fun(theta):
            ev = evaluate(blocks, resp, random.full_theta(theta), False)
            beta_j = float(ev.beta[j])
            a_inv_jj = float(r_inv_j @ ev.a_inv @ r_inv_j)
            r2 = float(ev.r2) + (value - beta_j) ** 2 / a_inv_jj
            return float(ev.logdet_l) + n * (1.0 + LOG_2PI + np.log(r2 / n))

        bounds = [(0.0 if lo == 0 else None, None) for lo in lower]
        best = scipy.optimize.minimize(
            fun, self.theta, method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-14, "gtol": 1e-8}
        )
        return float(best.fun)


def _slope_profile(fit, level: float) -> pd.DataFrame:
    """lme4's ``confint(method = "profile")`` for a random-terms fit (ML deviance, after refitting by
    ML): each limit is where the profiled deviance rises by qchisq(level, 1) (Brent's root finder; lme4
    interpolates its profile with splines, which moves its limits by up to ~1e-3 of the width)."""
    prof = _SlopeProfiler(fit)
    cutoff = float(scipy.stats.chi2.ppf(level, 1))
    target = prof.minimum + cutoff
    lower, upper = [], []
    for k, kind in enumerate(prof.kinds):
        est = float(prof.phi[k])

        def fun(x, k=k):
            return prof.at_varpar(k, x)

        if kind == "cor":

            def on_z(z, k=k):
                return prof.at_varpar(k, float(np.tanh(z)))

            z_hat = float(np.arctanh(est))
            lo = float(np.tanh(_crossing(on_z, z_hat, -0.1, target)))
            hi = float(np.tanh(_crossing(on_z, z_hat, 0.1, target)))
        elif kind == "sigma":

            def on_log(v, k=k):
                return prof.at_varpar(k, float(np.exp(v)))

            lo = float(np.exp(_crossing(on_log, np.log(est), -0.05, target)))
            hi = float(np.exp(_crossing(on_log, np.log(est), 0.05, target)))
        else:
            step = 0.1 * (est + prof.sigma)
            lo = _crossing(fun, est, -step, target, floor=0.0)
            hi = _crossing(fun, est, step, target)
        lower.append(lo)
        upper.append(hi)
    terms = list(fit.fe_params.index)
    for j in range(len(terms)):
        se = float(np.sqrt(prof.cov_beta[j, j]))
        b = float(prof.beta[j])

        def at_beta(value, j=j):
            return prof.at_beta(j, value)

        lower.append(_crossing(at_beta, b, -se, target))
        upper.append(_crossing(at_beta, b, se, target))
    names = prof.names
    out = pd.DataFrame(
        {
            "lower": np.asarray(lower, dtype=float),
            "upper": np.asarray(upper, dtype=float),
            "r_name": names + [r_term_name(t) for t in terms],
        },
        index=pd.Index(names + terms, name="parameter"),
    )
    out.attrs["method"] = "profile"
    out.attrs["level"] = level
    return out


def _slope_random_part(fit, data: pd.DataFrame) -> np.ndarray:
    """Z b for new rows of a random-terms fit: each row's cluster's modes times its Z columns (0 for a
    cluster the fit never saw; NaN where a random-term column is missing)."""
    random = fit.random
    columns = sorted({str(c) for term in random.terms for c in term.spec.required_variables})
    for column in columns:
        if column not in data.columns:
            raise DataError(
                f"Column {column!r} (a random slope's variable) is needed for the predictions with "
                "the random effects but is not in the data. Pass include_random=False for "
                "predictions without them."
            )
    ok = ~data[columns].isna().any(axis=1).to_numpy() if columns else np.ones(len(data), bool)
    z = np.full((len(data), random.q), np.nan)
    if ok.any():
        z[ok] = random.z_matrix(data.loc[ok])
    codes = _match_groups(fit.ranef.index, data[fit.group])
    modes = np.vstack([fit.ranef[random.names].to_numpy(), np.zeros(random.q)])
    return np.sum(z * modes[codes], axis=1)


# --------------------------------------------------------------------------------------------------
# Model comparison
# --------------------------------------------------------------------------------------------------


def _n_theta(fit) -> int:
    return 1 if getattr(fit, "random", None) is None else int(fit.random.n_theta)


def _ml(fit):
    """The fit refitted by maximum likelihood (itself when it is an ML fit), as lme4's ``refitML``."""
    if not fit.reml:
        return fit
    from .fit import _estimate_theta, _lmm_result, fit_random_terms

    design = fit.design
    if design is None:
        raise ValueError("anova needs fits made from rows (fit_lmm), to refit them by ML.")
    if getattr(fit, "random", None) is not None:
        return fit_random_terms(design, reml=False)
    theta, optsum = _estimate_theta(design.stats, False, design.response)
    return _lmm_result(
        design.stats,
        theta,
        optsum,
        False,
        design.term_names,
        design.group_labels,
        formula=fit.formula,
        response=design.response,
        group=design.group,
        n_dropped=design.n_dropped,
        design=design,
    )


def _random_columns(fit) -> list[tuple[str, ...]]:
    if getattr(fit, "random", None) is None:
        return [("(Intercept)",)]
    return [tuple(term.names) for term in fit.random.terms]


def _mixture_p(small, big, chisq: float, df: int) -> float:
    """Stram and Lee's boundary-corrected p-value, where it applies (else NaN); see :func:`anova`."""
    same_fixed = list(small.fe_params.index) == list(big.fe_params.index)
    a, b = _random_columns(small), _random_columns(big)
    one_more = False
    if same_fixed and len(a) == len(b):
        grown = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        one_more = (
            len(grown) == 1
            and len(grown[0][1]) == len(grown[0][0]) + 1
            and set(grown[0][0]) <= set(grown[0][1])
        )
    elif same_fixed and len(b) == len(a) + 1:
        one_more = len(b[-1]) == 1 and b[:-1] == a  # one more uncorrelated term, e.g. (x || g)
    if not one_more:
        return float("nan")
    upper = float(scipy.stats.chi2.sf(chisq, df))
    lower = float(scipy.stats.chi2.sf(chisq, df - 1)) if df > 1 else float(chisq <= 0)
    return 0.5 * upper + 0.5 * lower


def anova(m0, m1, *, bootstrap: int = 0, seed=None) -> pd.DataFrame:
    r"""Compare two nested mixed models as lme4's ``anova(m0, m1)``, with a boundary-corrected p-value.

    Both fits are refitted by maximum likelihood when they are REML fits (lme4's ``refitML``), and
    ordered by their number of parameters (fixed effects + theta + sigma). The table has lme4's columns
    ``npar``, ``AIC``, ``BIC``, ``logLik``, ``deviance``, ``Chisq``, ``Df`` and ``Pr(>Chisq)`` (the naive
    chi-square p-value lme4 prints), and two more:

    - ``Pr(mixture)``: the p-value under Stram and Lee's (1994) reference distribution for a variance
      tested on its boundary, a 50:50 mixture of chi-square with ``Df`` and ``Df - 1`` degrees of freedom
      (chi-square with 0 degrees of freedom is the point mass at 0). It is given when the larger model
      adds exactly one random-effects column to the smaller one, with its covariances with the other
      columns of its term (``(1 | g)`` -> ``(1 + x | g)``: a 50:50 mixture of chi-square(1) and (2)), or
      adds one uncorrelated term (``(1 | g)`` -> ``(x || g)``: of chi-square(0) and (1)), and has the same
      fixed effects. Otherwise (several added columns, other fixed effects) the mixture is not this
      simple and the column is NaN.
    - ``Pr(boot)`` (only with ``bootstrap`` > 0): a parametric-bootstrap p-value: ``bootstrap`` responses
      are simulated from the smaller model's ML fit (y* = X beta + Z b* + e*, new b* and e*), both
      models are refitted by ML to each, and the p-value is (1 + #{LRT* >= LRT}) / (1 + bootstrap), as
      pbkrtest's ``PBmodcomp`` computes it. When both models have the same fixed effects and the
      larger model's random-effects columns include the smaller's (``(1 | g)`` in ``(1 + x | g)``,
      ``(x || g)`` in ``(x | g)``), the responses are drawn from the larger model's per-cluster sums
      as in :func:`bootstrap`, without rows; otherwise they are simulated row by row. Fits whose sums
      were computed where the data live (an engine's, without rows) take the first way, the nesting
      read from the names of the random-effects columns and the fixed-effects sums; other pairs of
      such fits are refused with a :class:`DataError` that says so.

    Parameters
    ----------
    m0, m1 : LmmResult
        Fits of the same rows (the same response and number of observations), one nested in the other.
    bootstrap : int, default 0
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    pandas.DataFrame
        One row per model (index: the formulas), smaller model first; ``attrs['fits']`` holds the ML
        fits.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> sleep = load_dataset("sleepstudy")
    >>> table = anova(fit_lmm(sleep, "Reaction ~ Days + (1 | Subject)"),
    ...               fit_lmm(sleep, "Reaction ~ Days + (Days | Subject)"))
    >>> table[["npar", "deviance", "Chisq", "Df"]].round(3).to_numpy().tolist()
    [[4.0, 1794.079, nan, nan], [6.0, 1751.939, 42.139, 2.0]]
    """
    fits = [_ml(m0), _ml(m1)]
    if fits[0].n_obs != fits[1].n_obs or fits[0].response != fits[1].response:
        raise DataError(
            "The two models are not fitted to the same rows (a different response or number of "
            "observations, e.g. rows dropped for missing values in one model only); compare models "
            "of the same rows."
        )
    npar = [len(f.fe_params) + _n_theta(f) + 1 for f in fits]
    if npar[1] < npar[0]:
        fits, npar = fits[::-1], npar[::-1]
    n = fits[0].n_obs
    deviance = np.array([f.criterion for f in fits])
    chisq = max(float(deviance[0] - deviance[1]), 0.0)
    df = npar[1] - npar[0]
    table = pd.DataFrame(
        {
            "npar": np.array(npar, dtype=float),
            "AIC": deviance + 2.0 * np.array(npar),
            "BIC": deviance + np.log(n) * np.array(npar),
            "logLik": -0.5 * deviance,
            "deviance": deviance,
            "Chisq": [np.nan, chisq],
            "Df": [np.nan, float(df)],
            "Pr(>Chisq)": [np.nan, float(scipy.stats.chi2.sf(chisq, df)) if df > 0 else np.nan],
            "Pr(mixture)": [np.nan, _mixture_p(fits[0], fits[1], chisq, df) if df > 0 else np.nan],
        },
        index=pd.Index([f.formula for f in fits], name="model"),
    )
    if bootstrap:
        table["Pr(boot)"] = [np.nan, _bootstrap_lrt(fits, chisq, int(bootstrap), seed)]
    table.attrs["fits"] = tuple(fits)
    return table


def _simulate_rows(fit, rng) -> np.ndarray:
    """One response simulated from a fit made from rows: X beta + Z b* + e*."""
    design = fit.design
    X = design.X
    codes = design.group_codes
    sigma = fit.sigma_resid
    mean = X @ fit.fe_params.to_numpy()
    if getattr(fit, "random", None) is None:
        b = rng.normal(scale=np.sqrt(fit.sigma2_group), size=fit.n_groups)
        return mean + b[codes] + rng.normal(scale=sigma, size=len(mean))
    factor = fit.random.factor(fit.theta)
    b = sigma * rng.standard_normal((fit.n_groups, fit.random.q)) @ factor.T
    return mean + np.sum(fit.random.Z * b[codes], axis=1) + rng.normal(scale=sigma, size=len(mean))


def _ml_deviance(fit, y: np.ndarray) -> float:
    """The ML deviance of the fit's model refitted to the response ``y`` (same rows, no formula)."""
    from .design import sufficient_stats
    from .random_terms import block_sums

    design = fit.design
    codes, n_groups = design.group_codes, len(design.group_labels)
    if getattr(fit, "random", None) is None:
        stats = sufficient_stats(design.X, y, codes, n_groups, design.term_names)
        return optimize(*blocks_from_stats(stats), False)[1].criterion
    stats = design.stats
    blocks, resp = block_sums(
        fit.random.Z, design.X, y, codes, n_groups, stats.r_factor, stats.beta_ols
    )
    return optimize(blocks, resp, False, free=fit.random.free)[1].criterion


def _nested_columns(small, big):
    """Where the smaller model's random-effects columns sit among the larger model's, when the two have
    the same rows and fixed-effects matrix and the larger model's columns include all of the smaller's
    (then both refits can be drawn from the larger model's sums); else None."""
    if getattr(big, "random", None) is None:
        return None
    small_design, big_design = small.design, big.design
    if small_design is None or big_design is None:
        return None
    if not (small_design.has_rows and big_design.has_rows):
        return _nested_by_name(small, big)
    x_small, x_big = small_design.X, big_design.X
    if x_small.shape != x_big.shape or not np.array_equal(x_small, x_big):
        return None
    if not np.array_equal(small_design.group_codes, big_design.group_codes):
        return None
    z_big = big.random.Z
    random = getattr(small, "random", None)
    z_small = np.ones((len(x_small), 1)) if random is None else random.Z
    idx: list[int] = []
    for k in range(z_small.shape[1]):
        match = [
            c
            for c in range(z_big.shape[1])
            if c not in idx and np.array_equal(z_small[:, k], z_big[:, c])
        ]
        if not match:
            return None
        idx.append(match[0])
    return np.array(idx)


def _nested_by_name(small, big):
    """:func:`_nested_columns` for designs whose sums were computed where the data live (no rows): the
    same fixed effects (names, and the same X'X, X'y and clusters, i.e. the same R, beta_ols and
    counts), and the larger model's random-effects columns include the smaller's by name (both are
    built from the same variables by the same formula machinery); else None."""
    a, b = small.design, big.design
    if a.term_names != b.term_names or list(a.group_labels) != list(b.group_labels):
        return None
    sa, sb = a.stats, b.stats
    if not (
        np.array_equal(sa.counts, sb.counts)
        and np.allclose(sa.r_factor, sb.r_factor, rtol=1e-12, atol=0.0)
        and np.allclose(sa.beta_ols, sb.beta_ols, rtol=1e-12, atol=1e-300)
    ):
        return None
    random = getattr(small, "random", None)
    names_small = ["(Intercept)"] if random is None else list(random.names)
    names_big = list(big.random.names)
    if len(set(names_small)) != len(names_small) or not set(names_small) <= set(names_big):
        return None
    return np.array([names_big.index(name) for name in names_small])


def _sub_blocks(blocks: Blocks, resp: Response, idx: np.ndarray) -> tuple[Blocks, Response]:
    """The kernel's input for the random-effects columns ``idx`` of Z only (same X and response)."""
    sub = Blocks(
        ztz=blocks.ztz[:, idx][:, :, idx],
        ztx=blocks.ztx[:, idx],
        xtx=blocks.xtx,
        n_obs=blocks.n_obs,
        r_factor=blocks.r_factor,
    )
    sub._cache("r_inv", lambda: blocks.r_inv)
    part = Response(zty=resp.zty[..., idx], xty=resp.xty, yty=resp.yty, beta_ols=resp.beta_ols)
    return sub, part


def _ml_deviances(blocks: Blocks, resp: Response, free) -> np.ndarray:
    """The ML deviance of each of a batch of responses at its own optimum."""
    theta, _ = _refit_thetas(blocks, resp, False, free)
    full = theta if free is None else expand_theta(theta, free, blocks.q)
    return evaluate(blocks, resp, full, False, logdet=False).criterion


def _lrt_from_sums(small, big, idx: np.ndarray, n: int, rng, chunk: int = 500) -> np.ndarray:
    """n bootstrap likelihood-ratio statistics from the larger model's sums (see :func:`anova`)."""
    blocks = big.random.blocks
    q = blocks.q
    factor = np.zeros((q, q))
    small_factor = (
        np.array([[float(small.theta)]])
        if getattr(small, "random", None) is None
        else small.random.factor(small.theta)
    )
    factor[np.ix_(idx, idx)] = small_factor
    sim = _SlopeSimulator(blocks, factor, small.sigma_resid, small.fe_params.to_numpy())
    small_free = None if getattr(small, "random", None) is None else small.random.free
    out = np.empty(n)
    done = 0
    while done < n:
        m = min(chunk, n - done)
        resp = sim.draw(rng, m)
        sub_blocks, sub_resp = _sub_blocks(blocks, resp, idx)
        dev_small = _ml_deviances(sub_blocks, sub_resp, small_free)
        dev_big = _ml_deviances(blocks, resp, big.random.free)
        out[done : done + m] = dev_small - dev_big
        done += m
    return out


def _bootstrap_lrt(fits, observed: float, n: int, seed) -> float:
    small, big = fits
    if small.design is None or big.design is None:
        raise ValueError("The bootstrap LRT needs fits made from rows (fit_lmm).")
    rng = np.random.default_rng(seed)
    idx = _nested_columns(small, big)
    if idx is None and not (small.design.has_rows and big.design.has_rows):
        raise DataError(
            "The bootstrap LRT of fits whose sums were computed where the data live needs the "
            "smaller model's random effects among the larger model's and the same fixed effects "
            "(e.g. (1 | g) against (1 + x | g)); for other pairs fit both models from the rows."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if idx is not None:
            count = int(np.sum(_lrt_from_sums(small, big, idx, n, rng) >= observed))
        else:
            count = 0
            for _ in range(n):
                y = _simulate_rows(small, rng)
                count += (_ml_deviance(small, y) - _ml_deviance(big, y)) >= observed
    return (1.0 + count) / (1.0 + n)
