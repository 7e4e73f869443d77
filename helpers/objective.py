r"""Step 2 of a fit: the profiled REML or ML criterion as a function of theta = sigma_b / sigma alone.

This is the counterpart of lme4's ``mkLmerDevfun``. For the random-intercept model
y_ij = x_ij' beta + b_i + e_ij, with b_i ~ N(0, sigma_b^2) and e_ij ~ N(0, sigma^2), write u = theta^2 and
c_i = u / (1 + n_i u). With S_x,i and S_y,i the per-cluster sums of x and y:

    A(u) = X'X - sum_i c_i S_x,i S_x,i'
    b(u) = X'y - sum_i c_i S_x,i S_y,i
    beta(u) = A(u)^{-1} b(u)
    r2(u) = y'y - sum_i c_i S_y,i^2 - b(u)' beta(u)

The ML deviance and the REML criterion, with beta and sigma^2 profiled out, are

    deviance(u) = sum_i log(1 + n_i u) + N [1 + log(2 pi r2 / N)]
    REML(u)     = sum_i log(1 + n_i u) + log det A(u) + (N - p) [1 + log(2 pi r2 / (N - p))]

exactly on the scale of lme4's ``deviance()`` and ``REMLcrit()``. One evaluation costs O(J p^2) for J
clusters and p fixed effects, whatever the number of rows.

The code evaluates these in the rotated basis of :class:`helpers.design.SufficientStats` (X = Q R, y replaced
by its OLS residual e), where log det A(u) = log det A_Q(u) + 2 sum_k log |R_kk|. Since 1 - n_i c_i =
1/(1 + n_i u), the matrix A_Q(u) = I - sum_i c_i s_q,i s_q,i' equals W_qq + sum_i d_i s_q,i s_q,i' with
d_i = 1/(n_i (1 + n_i u)) and W_qq the within-cluster cross-products; the code uses this second form, in
which nothing cancels as u grows.

This module is the documented face of the computation; the algebra itself lives once, in
:mod:`helpers.kernel`, which evaluates it for a whole batch of theta values and also for random slopes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .design import SufficientStats
from .kernel import blocks_from_stats, evaluate, slope_u

__all__ = ["Profile", "profile", "criterion", "criterion_derivative", "make_objective"]


@dataclass(frozen=True, eq=False)
class Profile:
    """Everything that follows from one value of theta.

    Attributes
    ----------
    theta : float
    criterion : float
        The REML criterion or the ML deviance.
    beta : ndarray, shape (p,)
        The GLS fixed effects at this theta.
    cov_beta : ndarray, shape (p, p)
        sigma^2 A(u)^{-1}, lme4's ``vcov``.
    sigma2 : float
        The profiled residual variance: r2 / (N - p) for REML, r2 / N for ML.
    sigma2_group : float
        theta^2 sigma2.
    r2 : float
        The penalised residual sum of squares.
    cluster_resid_sum : ndarray, shape (J,)
        S_y,i - S_x,i' beta, per cluster.
    """

    theta: float
    reml: bool
    criterion: float
    beta: np.ndarray
    cov_beta: np.ndarray
    sigma2: float
    sigma2_group: float
    r2: float
    cluster_resid_sum: np.ndarray


def _thetas(theta) -> np.ndarray:
    thetas = np.asarray(theta, dtype=float)
    bad = thetas[~np.isfinite(thetas) | (thetas < 0)]
    if bad.size:
        raise ValueError(f"theta must be a finite number >= 0, got {float(bad.flat[0])!r}")
    return thetas


def criterion(stats: SufficientStats, theta, reml: bool = True):
    """The profiled REML criterion (or ML deviance) at one theta or an array of thetas.

    Parameters
    ----------
    stats : SufficientStats
        From :func:`helpers.design.build_design` (``design.stats``).
    theta : float or array_like
        sigma_b / sigma, at least 0.
    reml : bool, default True
        REML criterion (lme4's ``REMLcrit``) if True, else the ML deviance (lme4's ``deviance``).

    Returns
    -------
    float or ndarray

    Examples
    --------
    Dyestuff's batches of 5: lme4's pinned REML criterion at theta = 0 is 326.023232155879.

    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> stats = build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)").stats
    >>> round(float(criterion(stats, 0.0)), 9)
    326.023232156
    """
    thetas = _thetas(theta)
    values = evaluate(*blocks_from_stats(stats), thetas[..., None], reml).criterion
    return float(values) if thetas.ndim == 0 else values


def criterion_derivative(stats: SufficientStats, theta: float, reml: bool = True) -> float:
    r"""The derivative of the profiled criterion with respect to u = theta^2, in closed form.

    With c_i' = dc_i/du = 1/(1 + n_i u)^2 and rho_i = S_y,i - S_x,i' beta(u) (the cluster sums of the GLS
    residuals), the envelope theorem gives dr2/du = -sum_i c_i' rho_i^2, and

        d REML / du     = sum_i n_i/(1 + n_i u) - sum_i c_i' S_x,i' A^{-1} S_x,i - (N - p) sum_i c_i' rho_i^2 / r2
        d deviance / du = sum_i n_i/(1 + n_i u) - N sum_i c_i' rho_i^2 / r2.

    The derivative with respect to theta is 2 theta times this, so it is 0 at theta = 0 whatever the data;
    the sign of the derivative in u at u = 0 is what decides a boundary fit. Computing the slope directly,
    rather than differencing criterion values, keeps full relative precision where the criterion is flat.

    Parameters
    ----------
    stats : SufficientStats
    theta : float
    reml : bool, default True

    Returns
    -------
    float

    Examples
    --------
    Dyestuff2's REML criterion rises from theta = 0, so its fit sits on the boundary:

    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> stats = build_design(load_dataset("dyestuff2"), "Yield ~ 1 + (1 | Batch)").stats
    >>> criterion_derivative(stats, 0.0) > 0
    True
    """
    theta = float(_thetas(theta))
    return float(slope_u(*blocks_from_stats(stats), [theta], reml))


def make_objective(stats: SufficientStats, reml: bool = True):
    """Return the objective as a function of theta alone, as lme4's ``mkLmerDevfun`` does.

    Parameters
    ----------
    stats : SufficientStats
    reml : bool, default True

    Returns
    -------
    callable
        ``f(theta) -> float``.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> f = make_objective(build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)").stats)
    >>> round(f(1.0), 9)
    319.792389042
    """

    def objective(theta: float) -> float:
        return criterion(stats, theta, reml)

    objective.reml = reml
    return objective


def profile(stats: SufficientStats, theta: float, reml: bool = True) -> Profile:
    """Everything that follows from one theta: the criterion, beta, its covariance and the variances.

    Parameters
    ----------
    stats : SufficientStats
    theta : float
    reml : bool, default True

    Returns
    -------
    Profile

    Examples
    --------
    At theta = 0 the fixed effects are pooled OLS.

    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> stats = build_design(load_dataset("sleepstudy"), "Reaction ~ Days + (1 | Subject)").stats
    >>> bool(np.allclose(profile(stats, 0.0).beta, stats.beta_ols))
    True
    """
    theta = float(_thetas(theta))
    ev = evaluate(*blocks_from_stats(stats), [theta], reml)
    sigma2 = float(ev.sigma2)
    return Profile(
        theta=theta,
        reml=reml,
        criterion=float(ev.criterion),
        beta=ev.beta,
        cov_beta=ev.cov_beta,
        sigma2=sigma2,
        sigma2_group=theta * theta * sigma2,
        r2=float(ev.r2),
        cluster_resid_sum=stats.sum_e - stats.sum_q @ ev.delta,
    )
