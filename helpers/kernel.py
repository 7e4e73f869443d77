r"""The one likelihood kernel: the profiled criterion and everything that follows from theta, for a batch.

Every fit, profile, bootstrap refit, Satterthwaite derivative and point of the fixed-effect path in this
package goes through :func:`evaluate` (and the optimiser :func:`optimize`). It is written for one grouping
factor with q random terms per cluster (lme4's formulation, JSS 2015, section 3), and for a batch of theta
values at once.

The input
---------
For cluster i with rows X_i, y_i and random-effects model matrix Z_i (n_i x q), the kernel needs only the
per-cluster blocks and the global cross-products:

- :class:`Blocks` (what depends on X and the clusters only): Z_i'Z_i (J, q, q), Z_i'X_i (J, q, p), X'X
  (p, p), N;
- :class:`Response` (what depends on y; any number of leading batch axes, e.g. bootstrap replicates):
  Z_i'y_i (..., J, q), X'y (..., p), y'y (...).

The X-blocks may be of Q = X R^{-1} instead of X (``Blocks.r_factor`` = R), and the y-blocks of the OLS
residual e = y - X beta_ols instead of y (``Response.beta_ols``): that is how
:func:`blocks_from_stats` passes :class:`helpers.design.SufficientStats`, whose sums are of residual-sized,
well-scaled numbers. With R = I and beta_ols = 0 the blocks are the raw ones.

theta is the lower triangle of the q x q relative covariance factor T, column by column (lme4's
``getME(m, "theta")`` order); Var(b_i) = sigma^2 T T'. For q = 1, theta = sigma_b / sigma.

The formulas
------------
With M_i = T'Z_i'Z_i T + I_q = L_i L_i', P_i = L_i^{-1} T'Z_i'X_i and c_i = L_i^{-1} T'Z_i'y_i:

    A = X'X - sum_i P_i'P_i,   b = X'y - sum_i P_i'c_i,   beta = A^{-1} b,
    r2 = y'y - sum_i c_i'c_i - b'beta,
    ML deviance    = sum_i log det M_i + N [1 + log(2 pi r2 / N)],
    REML criterion = sum_i log det M_i + log det A + (N - p) [1 + log(2 pi r2 / (N - p))],
    sigma^2 = r2 / N (ML) or r2 / (N - p) (REML),  Cov(beta) = sigma^2 A^{-1},
    conditional modes b_i = T M_i^{-1} T'(Z_i'y_i - Z_i'X_i beta), their covariance sigma^2 T M_i^{-1} T'.

**The random-intercept fast path (q = 1).** With u = theta^2, 1 - n_i u / (1 + n_i u) = 1/(1 + n_i u), so
A = W_xx + sum_i d_i S_x,i S_x,i' with d_i = 1/(n_i (1 + n_i u)) and W_xx the within-cluster
cross-products (likewise b and r2). Nothing cancels in this form as theta grows, which keeps the criterion
exact far beyond theta = 1e4. :func:`blocks_from_stats` supplies the within cross-products, and
:func:`evaluate` uses this form whenever q = 1 and they are present; the general path gives the same
numbers (to rounding) at moderate theta. For one response, the per-cluster products it sums (S_x S_x',
s S_x and s^2, s the cluster sums of y) are formed once per (blocks, response) and, when
:attr:`Blocks.size_classes` applies, summed within classes of equal cluster size, so that each theta
costs O(number of sizes) in the criterion and in :func:`slope_u`.
"""

from __future__ import annotations

import functools
import math
import time
import weakref
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ._blas import single_blas_thread

__all__ = [
    "LOG_2PI",
    "THETA_GRID",
    "THETA_EXTENSION",
    "Blocks",
    "Response",
    "Evaluation",
    "OptSummary",
    "blocks_from_stats",
    "blocks_from_rows",
    "theta_size",
    "theta_to_factor",
    "theta_lower_bounds",
    "expand_theta",
    "evaluate",
    "slope_u",
    "gradient",
    "gradient_numeric",
    "value_and_gradient",
    "conditional_modes",
    "optimize",
    "optimize_batch",
    "minimize_1d",
    "within_fit_rss",
    "WITHIN_TOL",
]

LOG_2PI = float(np.log(2.0 * np.pi))

#: The grid that brackets a scalar optimum before the 1-D refinement: 0 and 10^-4 .. 10^4.
THETA_GRID = np.concatenate([[0.0], np.logspace(-4, 4, 81)])
#: Where the search continues when the criterion still falls at 10^4 (theta -> infinity is the within
#: fit; the criterion is smooth in log theta): 10^4 .. 10^16, ten points per decade.
THETA_EXTENSION = np.logspace(4, 16, 121)[1:]


# --------------------------------------------------------------------------------------------------
# The input
# --------------------------------------------------------------------------------------------------


def _readonly(value):
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    return value


@dataclass(frozen=True, eq=False)
class Blocks:
    """The X- and Z-side of the kernel's input (nothing here depends on y).

    Attributes
    ----------
    ztz : ndarray, shape (J, q, q)
        Z_i'Z_i per cluster (for a random intercept: n_i).
    ztx : ndarray, shape (J, q, p)
        Z_i'X_i per cluster (for a random intercept: the cluster's column sums of X), or of Q = X R^{-1}.
    xtx : ndarray, shape (p, p)
        X'X (the identity when the blocks are of Q).
    n_obs : int
        N.
    r_factor : ndarray, shape (p, p)
        R with X = Q R when the blocks are of Q; the identity for raw blocks.
    within_xx : ndarray, shape (p, p), optional
        q = 1 only: the within-cluster cross-products of X (or Q), for the cancellation-free fast path.
    """

    ztz: np.ndarray
    ztx: np.ndarray
    xtx: np.ndarray
    n_obs: int
    r_factor: np.ndarray
    within_xx: np.ndarray | None = None

    @property
    def n_groups(self) -> int:
        """J."""
        return int(self.ztz.shape[0])

    @property
    def q(self) -> int:
        """The number of random terms per cluster."""
        return int(self.ztz.shape[-1])

    @property
    def n_params(self) -> int:
        """p, the number of fixed effects."""
        return int(self.xtx.shape[0])

    @property
    def n_theta(self) -> int:
        """The length of theta, q (q + 1) / 2."""
        return theta_size(self.q)

    def dof(self, reml: bool) -> int:
        """N - p for REML, N for ML."""
        return self.n_obs - self.n_params if reml else self.n_obs

    @property
    def counts(self) -> np.ndarray:
        """q = 1: the cluster sizes n_i (shape (J,))."""
        self._need_intercept()
        return self.ztz[:, 0, 0]

    @property
    def sum_q(self) -> np.ndarray:
        """q = 1: the per-cluster column sums of X or Q (shape (J, p))."""
        self._need_intercept()
        return self.ztx[:, 0, :]

    @property
    def r_inv(self) -> np.ndarray:
        """R^{-1}."""
        return self._cache("r_inv", lambda: np.linalg.inv(self.r_factor))

    @property
    def logdet_r(self) -> float:
        """2 log |det R| (log det X'X - log det Q'Q)."""
        return self._cache(
            "logdet_r", lambda: 2.0 * float(np.log(np.abs(np.diag(self.r_factor))).sum())
        )

    @property
    def outer_q(self) -> np.ndarray:
        """q = 1: the flattened outer products S_x,i S_x,i' (shape (J, p * p))."""
        p = self.n_params
        s = self.sum_q
        return self._cache(
            "outer_q", lambda: (s[:, :, None] * s[:, None, :]).reshape(s.shape[0], p * p)
        )

    @property
    def size_classes(self):
        """q = 1: the clusters grouped by their size n_i, or None when sizes are hardly shared.

        A random intercept's criterion depends on n_i only through functions of n_i (1 / (1 + n_i u),
        log(1 + n_i u)) that multiply per-cluster sums: summed first within each class of equal n_i,
        every evaluation then costs O(number of distinct sizes) instead of O(J) per theta. Taken when
        there are at most a quarter as many distinct sizes as clusters.

        Returns
        -------
        (inverse, sizes, clusters, outer) or None
            Each cluster's class (J,), the sizes (D,), the clusters of each size (D,) and the
            class sums of :attr:`outer_q` (D, p * p).
        """
        if self.q != 1:
            return None

        def make():
            sizes, inverse, clusters = np.unique(
                self.counts, return_inverse=True, return_counts=True
            )
            if 4 * len(sizes) > self.n_groups:
                return ()
            outer = np.stack(
                [np.bincount(inverse, weights=col, minlength=len(sizes)) for col in self.outer_q.T],
                axis=-1,
            )
            return inverse, sizes.astype(float), clusters.astype(float), outer

        store = self.__dict__.setdefault("_cached", {})
        if "size_classes" not in store:
            made = make()
            for item in made:
                item.setflags(write=False)
            store["size_classes"] = made
        return store["size_classes"] or None

    @property
    def fast(self) -> bool:
        """Whether :func:`evaluate` takes the random-intercept fast path."""
        return self.q == 1 and self.within_xx is not None

    def _need_intercept(self):
        if self.q != 1:
            raise ValueError("counts and sum_q are defined for a random intercept (q = 1) only.")

    def _cache(self, name, make):
        store = self.__dict__.setdefault("_cached", {})
        if name not in store:
            store[name] = _readonly(make())
        return store[name]


@dataclass(frozen=True, eq=False)
class Response:
    """The y-side of the kernel's input; every field may carry the same leading batch axes.

    Attributes
    ----------
    zty : ndarray, shape (..., J, q)
        Z_i'y_i per cluster (for a random intercept: the cluster sums of y), or of e = y - X beta_ols.
    xty : ndarray, shape (..., p)
        X'y (or Q'e, which is 0).
    yty : ndarray, shape (...)
        y'y (or e'e).
    beta_ols : ndarray, shape (..., p)
        The coefficients subtracted from y (zeros for raw blocks); beta = beta_ols + R^{-1} delta.
    within_xy, within_yy : ndarray, optional
        q = 1 only: the within-cluster cross-products of X (or Q) with y (or e), and of y (or e).
    """

    zty: np.ndarray
    xty: np.ndarray
    yty: np.ndarray
    beta_ols: np.ndarray
    within_xy: np.ndarray | None = None
    within_yy: np.ndarray | None = None

    @classmethod
    def intercept(cls, sum_e, within_qe, within_ee, beta_ols=None, ete=None) -> Response:
        """A random-intercept response from its cluster sums and within cross-products (any batch axes).

        In the rotated basis Q'e = 0, so ``xty`` is zero. ``ete`` (e'e) is read by the general path only;
        without it ``yty`` is NaN, which the fast path never reads.
        """
        sum_e = np.asarray(sum_e, dtype=float)
        within_qe = np.asarray(within_qe, dtype=float)
        within_ee = np.asarray(within_ee, dtype=float)
        p = within_qe.shape[-1]
        batch = within_qe.shape[:-1]
        return cls(
            zty=sum_e[..., None],
            xty=np.zeros(batch + (p,)),
            yty=np.full(batch, np.nan) if ete is None else np.asarray(ete, dtype=float),
            beta_ols=np.zeros(batch + (p,)) if beta_ols is None else np.asarray(beta_ols, float),
            within_xy=within_qe,
            within_yy=within_ee,
        )

    @property
    def sum_e(self) -> np.ndarray:
        """q = 1: the cluster sums of y (or e), shape (..., J)."""
        return self.zty[..., 0]

    @property
    def within_qe(self) -> np.ndarray:
        """q = 1: the within cross-products of X (or Q) with y (or e)."""
        return self.within_xy

    @property
    def within_ee(self) -> np.ndarray:
        """q = 1: the within sum of squares of y (or e)."""
        return self.within_yy

    def take(self, rows) -> Response:
        """The responses at positions ``rows`` of the (one) leading batch axis."""

        def pick(a):
            return None if a is None else a[rows]

        return Response(
            zty=self.zty[rows],
            xty=self.xty[rows],
            yty=self.yty[rows],
            beta_ols=self.beta_ols[rows] if self.beta_ols.ndim > 1 else self.beta_ols,
            within_xy=pick(self.within_xy),
            within_yy=pick(self.within_yy),
        )


_FROM_STATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def blocks_from_stats(stats) -> tuple[Blocks, Response]:
    """The kernel's input for a random intercept (q = 1) from :class:`helpers.design.SufficientStats`.

    Z_i'Z_i = n_i, Z_i'X_i = the cluster sums of Q's rows, Z_i'y_i = the cluster sums of the OLS
    residuals, X'X = I (Q'Q), X'y = 0 (Q'e), y'y = e'e, with R and beta_ols to map back, and the within
    cross-products for the fast path.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> blocks, resp = blocks_from_stats(build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)").stats)
    >>> blocks.ztz.shape, blocks.ztx.shape, resp.zty.shape, blocks.n_theta
    ((6, 1, 1), (6, 1, 1), (6, 1), 1)

    The result is cached per statistics object (they are read-only), so repeated calls cost nothing.
    """
    try:
        return _FROM_STATS[stats]
    except KeyError:
        made = _FROM_STATS[stats] = _build_from_stats(stats)
        return made
    except TypeError:  # not weak-referenceable: no cache
        return _build_from_stats(stats)


def _build_from_stats(stats) -> tuple[Blocks, Response]:
    p = stats.n_params
    counts = stats.counts.astype(float)
    blocks = Blocks(
        ztz=_readonly(counts[:, None, None]),
        ztx=_readonly(np.asarray(stats.sum_q, dtype=float)[:, None, :]),
        xtx=_readonly(np.eye(p)),
        n_obs=stats.n_obs,
        r_factor=stats.r_factor,
        within_xx=np.asarray(stats.within_qq, dtype=float),
    )
    blocks._cache("r_inv", lambda: stats.r_inverse)
    resp = Response(
        zty=np.asarray(stats.sum_e, dtype=float)[:, None],
        xty=np.zeros(p),
        yty=np.asarray(float(stats.ete)),
        beta_ols=np.asarray(stats.beta_ols, dtype=float),
        within_xy=np.asarray(stats.within_qe, dtype=float),
        within_yy=np.asarray(float(stats.within_ee)),
    )
    return blocks, resp


def blocks_from_rows(X, y, Z, codes, n_groups: int, *, rotate: bool = True):
    """The kernel's input from rows, for any q: per-cluster Z_i'Z_i, Z_i'X_i, Z_i'y_i and the globals.

    Parameters
    ----------
    X : ndarray, shape (N, p)
    y : ndarray, shape (N,)
    Z : ndarray, shape (N, q)
        The random-effects columns of each row (a column of ones for a random intercept).
    codes : ndarray of int, shape (N,)
        The cluster of each row, 0 .. J - 1.
    n_groups : int
    rotate : bool, default True
        Sum Q = X R^{-1} and the OLS residuals instead of X and y (as :mod:`helpers.design` does), so the
        sums are well scaled; False gives the raw blocks.

    Returns
    -------
    (Blocks, Response)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([np.ones(6), rng.normal(size=6)])
    >>> blocks, resp = blocks_from_rows(X, rng.normal(size=6), X, np.repeat([0, 1, 2], 2), 3)
    >>> blocks.ztz.shape, blocks.ztx.shape, resp.zty.shape, blocks.n_theta
    ((3, 2, 2), (3, 2, 2), (3, 2), 3)
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    Z = np.asarray(Z, dtype=float).reshape(len(y), -1)
    codes = np.asarray(codes)
    p, q = X.shape[1], Z.shape[1]
    if rotate:
        qmat, r = np.linalg.qr(X, mode="reduced")
        e = y - qmat @ (qmat.T @ y)
        e -= qmat @ (qmat.T @ e)
        beta_ols = np.linalg.solve(r, qmat.T @ (y - e))
        xmat, ymat = qmat, e
    else:
        r, beta_ols, xmat, ymat = np.eye(p), np.zeros(p), X, y
    ztz = np.zeros((n_groups, q, q))
    ztx = np.zeros((n_groups, q, p))
    zty = np.zeros((n_groups, q))
    np.add.at(ztz, codes, Z[:, :, None] * Z[:, None, :])
    np.add.at(ztx, codes, Z[:, :, None] * xmat[:, None, :])
    np.add.at(zty, codes, Z * ymat[:, None])
    blocks = Blocks(ztz=ztz, ztx=ztx, xtx=xmat.T @ xmat, n_obs=len(y), r_factor=r)
    resp = Response(
        zty=zty, xty=xmat.T @ ymat, yty=np.asarray(float(ymat @ ymat)), beta_ols=beta_ols
    )
    return blocks, resp


# --------------------------------------------------------------------------------------------------
# theta and T
# --------------------------------------------------------------------------------------------------


def theta_size(q: int) -> int:
    """The length of theta for q random terms: q (q + 1) / 2."""
    return q * (q + 1) // 2


def _lower_index(q: int):
    # the lower triangle column by column, as lme4 lists theta
    rows, cols = [], []
    for j in range(q):
        for i in range(j, q):
            rows.append(i)
            cols.append(j)
    return np.array(rows), np.array(cols)


def theta_to_factor(theta, q: int) -> np.ndarray:
    """T (..., q, q), lower triangular, from theta (..., q (q + 1) / 2) in lme4's order.

    Examples
    --------
    >>> theta_to_factor([0.9, 0.1, 0.2], 2).tolist()
    [[0.9, 0.0], [0.1, 0.2]]
    """
    theta = np.asarray(theta, dtype=float)
    if theta.shape[-1] != theta_size(q):
        raise ValueError(
            f"theta needs {theta_size(q)} elements for q = {q}, got {theta.shape[-1]}."
        )
    rows, cols = _lower_index(q)
    out = np.zeros(theta.shape[:-1] + (q, q))
    out[..., rows, cols] = theta
    return out


def theta_lower_bounds(q: int) -> np.ndarray:
    """0 for the diagonal elements of T, -inf for the others (lme4's ``lower``)."""
    rows, cols = _lower_index(q)
    return np.where(rows == cols, 0.0, -np.inf)


# --------------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Everything that follows from a batch of theta values (leading axes: the broadcast batch).

    Attributes
    ----------
    theta : ndarray, shape (..., n_theta)
    reml : bool
    criterion : ndarray, shape (...)
        The REML criterion or ML deviance (lme4's scale); inf where it is not defined.
    r2 : ndarray, shape (...)
        The penalised residual sum of squares.
    delta : ndarray, shape (..., p)
        beta - beta_ols in the blocks' basis (beta itself for raw blocks).
    a_inv : ndarray, shape (..., p, p)
        A^{-1} in the blocks' basis.
    sigma2 : ndarray, shape (...)
        r2 / (N - p) (REML) or r2 / N (ML).
    logdet_a : ndarray, shape (...) or None
        log det A in X's basis (None when not asked for).
    logdet_l : ndarray, shape (...)
        sum_i log det M_i (sum_i log(1 + n_i theta^2) for a random intercept).
    r_inv, beta_ols : ndarray
        From the input, to map ``delta`` back: ``beta`` (..., p) and ``cov_beta`` (..., p, p) are
        computed on first use.
    """

    theta: np.ndarray
    reml: bool
    criterion: np.ndarray
    r2: np.ndarray
    delta: np.ndarray
    a_inv: np.ndarray
    sigma2: np.ndarray
    logdet_a: np.ndarray | None
    logdet_l: np.ndarray
    r_inv: np.ndarray
    beta_ols: np.ndarray

    @property
    def logdet_v(self) -> np.ndarray:
        """Alias of ``logdet_l`` (log det V / sigma^2)."""
        return self.logdet_l

    @functools.cached_property
    def beta(self) -> np.ndarray:
        """The GLS fixed effects, shape (..., p)."""
        return self.beta_ols + self.delta @ self.r_inv.T

    @functools.cached_property
    def cov_beta(self) -> np.ndarray:
        """sigma^2 R^{-1} A^{-1} R^{-T}, lme4's ``vcov``, shape (..., p, p)."""
        r_inv = self.r_inv
        cov = self.sigma2[..., None, None] * (r_inv @ self.a_inv @ r_inv.T)
        return 0.5 * (cov + np.swapaxes(cov, -1, -2))


def _chol_batch(a: np.ndarray) -> np.ndarray:
    """Batched lower Cholesky factors; an item that is not positive definite gets NaN (not an error)."""
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        flat = a.reshape((-1,) + a.shape[-2:])
        out = np.full(flat.shape, np.nan)
        for k, item in enumerate(flat):
            try:
                out[k] = np.linalg.cholesky(item)
            except np.linalg.LinAlgError:
                pass
        return out.reshape(a.shape)


def _cholesky_elements(a, b, sqrt, log):
    """A = L L' written out element by element: A^{-1}, A^{-1} b, |L^{-1} b|^2 and log det A.

    ``a`` (p x p nested lists) and ``b`` (p) hold either numbers or arrays over a batch (the same
    arithmetic, vectorised); ``sqrt`` and ``log`` act on them. Returns (A^{-1} as nested lists, delta,
    fitted, logdet), each element of the type given.
    """
    p = len(b)
    low = [[0.0] * p for _ in range(p)]
    for j in range(p):
        d = a[j][j]
        for k in range(j):
            d = d - low[j][k] * low[j][k]
        low[j][j] = sqrt(d)
        for i in range(j + 1, p):
            off = a[i][j]
            for k in range(j):
                off = off - low[i][k] * low[j][k]
            low[i][j] = off / low[j][j]
    half = []
    for i in range(p):
        acc = b[i]
        for k in range(i):
            acc = acc - low[i][k] * half[k]
        half.append(acc / low[i][i])
    delta = [0.0] * p
    for i in reversed(range(p)):
        acc = half[i]
        for k in range(i + 1, p):
            acc = acc - low[k][i] * delta[k]
        delta[i] = acc / low[i][i]
    inv = [[0.0] * p for _ in range(p)]  # L^{-1}, lower triangular
    for j in range(p):
        inv[j][j] = 1.0 / low[j][j]
        for i in range(j + 1, p):
            acc = low[i][j] * inv[j][j]
            for k in range(j + 1, i):
                acc = acc + low[i][k] * inv[k][j]
            inv[i][j] = -acc / low[i][i]
    a_inv = [[None] * p for _ in range(p)]  # L^{-T} L^{-1}
    for i in range(p):
        for j in range(i + 1):
            acc = inv[i][i] * inv[i][j]
            for k in range(i + 1, p):
                acc = acc + inv[k][i] * inv[k][j]
            a_inv[i][j] = a_inv[j][i] = acc
    fitted = half[0] * half[0]
    logdet = log(low[0][0])
    for i in range(1, p):
        fitted = fitted + half[i] * half[i]
        logdet = logdet + log(low[i][i])
    return a_inv, delta, fitted, 2.0 * logdet


def _sqrt_or_nan(x: float) -> float:
    return math.sqrt(x) if x > 0 else math.nan


def _solve_a(a: np.ndarray, b: np.ndarray):
    """For a batch of positive definite A: A^{-1}, delta = A^{-1} b, b' delta and log det A.

    b' delta is formed as |L^{-1} b|^2 (A = L L'), a sum of squares, which keeps r2 = r2_0 - b' delta
    accurate when A is ill-conditioned (theta far beyond 1e4). Items where A is not positive definite
    get NaN, not an error. Up to p = SMALL_Q the factor and the substitutions are written out element
    by element (:func:`_cholesky_elements`), on Python floats for a batch of one and vectorised over a
    larger batch: numpy's batched LAPACK calls cost tens of microseconds on a 2 x 2 A, most of a
    whole evaluation.
    """
    p = a.shape[-1]
    if p > SMALL_Q or p == 0:
        return _solve_a_lapack(a, b)
    batch_a = a.shape[:-2]
    batch = np.broadcast_shapes(batch_a, b.shape[:-1])
    if a.size == p * p and b.size == p:  # one A: Python floats
        a_inv, delta, fitted, logdet = _cholesky_elements(
            a.reshape(p, p).tolist(), b.reshape(p).tolist(), _sqrt_or_nan, _log_or_nan
        )
        flat = np.array([v for row in a_inv for v in row] + delta + [fitted, logdet])
        if not math.isfinite(logdet):
            flat[:] = math.nan
        pp = p * p
        return (
            flat[:pp].reshape(batch_a + (p, p)),
            flat[pp : pp + p].reshape(batch + (p,)),
            flat[-2:-1].reshape(batch),
            flat[-1:].reshape(batch_a),
        )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        elems, delta_e, fitted, logdet = _cholesky_elements(
            [[a[..., i, j] for j in range(p)] for i in range(p)],
            [b[..., i] for i in range(p)],
            np.sqrt,
            np.log,
        )
    a_inv = np.empty(batch_a + (p, p))
    delta = np.empty(batch + (p,))
    for i in range(p):
        delta[..., i] = delta_e[i]
        for j in range(p):
            a_inv[..., i, j] = elems[i][j]
    fitted = np.broadcast_to(fitted, batch)
    good = np.isfinite(logdet)  # every diagonal element of L finite and > 0: A positive definite
    if not good.all():
        nan = np.where(good, 0.0, np.nan)
        return a_inv + nan[..., None, None], delta + nan[..., None], fitted + nan, logdet + nan
    return a_inv, delta, fitted + 0.0, logdet


def _log_or_nan(x: float) -> float:
    return math.log(x) if x > 0 else (math.nan if x != 0 else -math.inf)


def _solve_a_lapack(a: np.ndarray, b: np.ndarray):
    """:func:`_solve_a` through numpy's batched LAPACK calls (p > SMALL_Q)."""
    chol = _chol_batch(a)
    diag = np.diagonal(chol, axis1=-2, axis2=-1)
    good = np.isfinite(chol).all(axis=(-2, -1)) & (diag > 0).all(axis=-1)
    eye = np.eye(a.shape[-1])
    chol = np.where(good[..., None, None], chol, eye)
    half = np.linalg.solve(chol, b[..., None])  # broadcasts A's batch axes against b's
    delta = np.linalg.solve(np.swapaxes(chol, -1, -2), half)[..., 0]
    chol_inv = np.linalg.inv(chol)
    a_inv = np.swapaxes(chol_inv, -1, -2) @ chol_inv
    nan = np.where(good, 0.0, np.nan)
    fitted = np.sum(half[..., 0] ** 2, axis=-1) + nan
    logdet = 2.0 * np.sum(np.log(np.where(good[..., None], diag, 1.0)), axis=-1) + nan
    return a_inv + nan[..., None, None], delta + nan[..., None], fitted, logdet


def _check_theta(theta, n_theta: int) -> np.ndarray:
    theta = np.asarray(theta, dtype=float)
    if theta.ndim == 0 or theta.shape[-1] != n_theta:
        raise ValueError(
            f"theta must have a last axis of length {n_theta}, got shape {theta.shape}."
        )
    if not np.isfinite(theta).all():
        raise ValueError(f"theta must be finite, got {theta[~np.isfinite(theta)][0]!r}.")
    return theta


def _intercept_sums(blocks: Blocks, resp: Response):
    """q = 1, one response: what the fast path sums, by unit (a class of equal cluster sizes when
    :attr:`Blocks.size_classes` applies, else a cluster), computed once per (blocks, response).

    Returns (n, clusters, sums): the units' cluster sizes (U,), how many clusters each holds (U,), and
    per unit the sums of S_x S_x' (flattened), s S_x and s^2 with s the cluster sums of y (or e), as the
    columns of ``sums`` (U, p * p + p + 1). Nothing here depends on theta, so an evaluation then costs
    O(U) and one product with ``sums`` gives A, b and r2_0 together.
    """
    store = resp.__dict__.setdefault("_cached", {})
    held = store.get("intercept_sums")
    if held is not None and held[0]() is blocks:
        return held[1]
    s = resp.sum_e
    by_response = np.column_stack([s[:, None] * blocks.sum_q, s * s])  # s S_x, s^2
    classes = blocks.size_classes
    if classes is None:
        made = blocks.counts, np.ones(blocks.n_groups), np.hstack([blocks.outer_q, by_response])
    else:
        inverse, n, clusters, outer = classes
        by_class = [np.bincount(inverse, weights=col, minlength=len(n)) for col in by_response.T]
        made = n, clusters, np.column_stack([outer] + by_class)
    for item in made:
        _readonly(item)
    store["intercept_sums"] = (weakref.ref(blocks), made)
    return made


def _parts_intercept(blocks: Blocks, resp: Response, theta: np.ndarray):
    """q = 1 fast path: A, b, r2 before the fixed effects are removed, and sum_i log(1 + n_i u)."""
    u = (theta[..., 0] * theta[..., 0])[..., None]
    p = blocks.n_params
    s = resp.sum_e
    if s.ndim == 1:  # one response: the sums by unit (cluster, or class of equal sizes) are cached
        n, clusters, sums = _intercept_sums(blocks, resp)
        nu = n * u
        d = 1.0 / (n * (1.0 + nu))  # 1/n_i - c_i, in a form where nothing cancels as u grows
        total = d @ sums
        pp = p * p
        a = blocks.within_xx + total[..., :pp].reshape(total.shape[:-1] + (p, p))
        b = resp.within_xy + total[..., pp : pp + p]
        r2_0 = resp.within_yy + total[..., -1]
        logdet_l = np.log1p(nu) @ clusters
        return a, b, r2_0, logdet_l
    n = blocks.counts
    d = 1.0 / (n * (1.0 + n * u))
    a = blocks.within_xx + (d @ blocks.outer_q).reshape(d.shape[:-1] + (p, p))
    b = resp.within_xy + (d * s) @ blocks.sum_q
    r2_0 = resp.within_yy + np.sum(d * s * s, axis=-1)
    logdet_l = np.sum(np.log1p(n * u), axis=-1)
    return a, b, r2_0, logdet_l


def _chol_small(m: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a batch of small positive definite matrices, vectorised over the batch
    (numpy's batched LAPACK calls cost microseconds per 2 x 2 matrix; these loops run over q only)."""
    q = m.shape[-1]
    chol = np.zeros_like(m)
    for j in range(q):
        d = m[..., j, j]
        if j:
            d = d - np.sum(chol[..., j, :j] ** 2, axis=-1)
        root = chol[..., j, j] = np.sqrt(d)
        for i in range(j + 1, q):
            off = m[..., i, j]
            if j:
                off = off - np.sum(chol[..., i, :j] * chol[..., j, :j], axis=-1)
            chol[..., i, j] = off / root
    return chol


def _solve_lower_small(chol: np.ndarray, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
    """chol^{-1} rhs (or chol'^{-1} rhs with ``transpose``) for batches of small lower-triangular
    ``chol`` (..., q, q) and ``rhs`` (..., q, r): forward (back) substitution, vectorised over the batch."""
    q = chol.shape[-1]
    out = np.empty(np.broadcast_shapes(chol.shape[:-2], rhs.shape[:-2]) + rhs.shape[-2:])
    for i in reversed(range(q)) if transpose else range(q):
        acc = rhs[..., i, :]
        if transpose and i < q - 1:
            acc = acc - np.sum(chol[..., i + 1 :, i, None] * out[..., i + 1 :, :], axis=-2)
        elif not transpose and i:
            acc = acc - np.sum(chol[..., i, :i, None] * out[..., :i, :], axis=-2)
        out[..., i, :] = acc / chol[..., i, i, None]
    return out


#: Up to this many random terms per cluster, the per-cluster Cholesky factors and solves are written
#: out (vectorised over clusters and thetas) instead of numpy's batched LAPACK calls.
SMALL_Q = 4

#: From this many elements in a factor, products of batches of small matrices are written out
#: (:func:`_mm`); below it numpy's matmul costs less than the loop's own overhead.
_MM_ELEMENTS = 4096


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for large batches of small matrices (inner size up to SMALL_Q), written out element by
    element and vectorised over the batch: numpy's matmul takes about 50 ns per 2 x 2 product, five
    times the written-out sums. Small batches, large matrices and vectors go to matmul."""
    if (a.size < _MM_ELEMENTS and b.size < _MM_ELEMENTS) or a.ndim < 3 or b.ndim < 2:
        return a @ b
    n, k, r = a.shape[-2], a.shape[-1], b.shape[-1]
    if k > SMALL_Q or n * r > SMALL_Q * SMALL_Q:
        return a @ b
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = np.empty(batch + (n, r))
    for i in range(n):
        for j in range(r):
            acc = a[..., i, 0] * b[..., 0, j]
            for m in range(1, k):
                acc = acc + a[..., i, m] * b[..., m, j]
            out[..., i, j] = acc
    return out


def _parts_general(blocks: Blocks, resp: Response, theta: np.ndarray):
    """Any q: A, b, r2 before the fixed effects are removed, and sum_i log det M_i."""
    q = blocks.q
    t = theta_to_factor(theta, q)[..., None, :, :]  # (..., 1, q, q)
    tt = np.swapaxes(t, -1, -2)
    m = _mm(_mm(tt, blocks.ztz), t) + np.eye(q)  # (..., J, q, q)
    if q <= SMALL_Q:
        chol = _chol_small(m)  # M >= I, always positive definite
        p_mat = _solve_lower_small(chol, _mm(tt, blocks.ztx))  # (..., J, q, p)
        c_vec = _solve_lower_small(chol, _mm(tt, resp.zty[..., None]))[..., 0]  # (..., J, q)
    else:
        chol = np.linalg.cholesky(m)  # M >= I, always positive definite
        p_mat = np.linalg.solve(chol, tt @ blocks.ztx)  # (..., J, q, p)
        c_vec = np.linalg.solve(chol, (tt @ resp.zty[..., None]))[..., 0]  # (..., J, q)
    a = blocks.xtx - np.einsum("...jka,...jkb->...ab", p_mat, p_mat)
    b = resp.xty - np.einsum("...jka,...jk->...a", p_mat, c_vec)
    r2_0 = resp.yty - np.sum(c_vec * c_vec, axis=(-2, -1))
    logdet_l = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=(-2, -1))
    return a, b, r2_0, logdet_l


def evaluate(
    blocks: Blocks, resp: Response, theta, reml: bool = True, *, logdet: bool = True
) -> Evaluation:
    """The profiled criterion, beta, sigma^2 and Cov(beta) at a batch of theta values.

    Parameters
    ----------
    blocks : Blocks
    resp : Response
    theta : array_like, shape (..., n_theta)
        Its leading axes broadcast against the response's batch axes.
    reml : bool, default True
    logdet : bool, default True
        Compute log det A (needed for the REML criterion; an ML-only or slope-only caller may skip it).

    Returns
    -------
    Evaluation

    Examples
    --------
    Dyestuff's REML criterion at theta = 0 and 1, in one call (lme4: 326.023232155879, 319.792389042002):

    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> blocks, resp = blocks_from_stats(build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)").stats)
    >>> evaluate(blocks, resp, [[0.0], [1.0]]).criterion.round(9).tolist()
    [326.023232156, 319.792389042]
    """
    theta = _check_theta(theta, blocks.n_theta)
    if blocks.fast and resp.within_xy is not None:
        a, b, r2_0, logdet_l = _parts_intercept(blocks, resp, theta)
    else:
        a, b, r2_0, logdet_l = _parts_general(blocks, resp, theta)
    a_inv, delta, fitted, logdet_a_q = _solve_a(a, b)
    r2 = r2_0 - fitted
    dof = blocks.dof(reml)
    logdet_a = logdet_a_q + blocks.logdet_r if (logdet or reml) else None
    with np.errstate(invalid="ignore", divide="ignore"):
        # log of r2 <= 0 is -inf or NaN: the criterion is then inf (not defined)
        value = logdet_l + dof * (1.0 + LOG_2PI + np.log(r2 / dof))
        if reml:
            value = value + logdet_a
    value = np.where(np.isfinite(value), value, np.inf)
    return Evaluation(
        theta=theta,
        reml=reml,
        criterion=value,
        r2=r2,
        delta=delta,
        a_inv=a_inv,
        sigma2=r2 / dof,
        logdet_a=logdet_a,
        logdet_l=logdet_l,
        r_inv=blocks.r_inv,
        beta_ols=resp.beta_ols,
    )


def slope_u(blocks: Blocks, resp: Response, theta, reml: bool = True) -> np.ndarray:
    r"""q = 1: the derivative of the criterion with respect to u = theta^2, in closed form.

    With c_i' = 1/(1 + n_i u)^2 and rho_i the cluster sums of the GLS residuals, the envelope theorem gives

        d REML / du     = sum_i n_i/(1 + n_i u) - sum_i c_i' S_x,i' A^{-1} S_x,i - (N - p) sum_i c_i' rho_i^2 / r2
        d deviance / du = sum_i n_i/(1 + n_i u) - N sum_i c_i' rho_i^2 / r2.

    Parameters
    ----------
    theta : array_like, shape (..., 1)

    Returns
    -------
    ndarray, shape (...)
    """
    return _slope_u_and_evaluation(blocks, resp, theta, reml)[0]


def _slope_u_and_evaluation(blocks: Blocks, resp: Response, theta, reml: bool):
    """:func:`slope_u` and the :class:`Evaluation` it was computed from (log det A only for REML)."""
    ev = evaluate(blocks, resp, theta, reml, logdet=False)
    u = (ev.theta[..., 0] * ev.theta[..., 0])[..., None]
    p = blocks.n_params
    pp = p * p
    dof = blocks.dof(reml)
    a_inv = ev.a_inv.reshape(ev.a_inv.shape[:-2] + (pp,))
    if resp.sum_e.ndim == 1:  # one response: the cached sums by unit, as in the criterion
        n, clusters, sums = _intercept_sums(blocks, resp)
        v = 1.0 / (1.0 + n * u)
        dc = v * v
        weighted = dc @ sums  # (..., p * p + p + 1): sums of c_i' S_x S_x', c_i' s S_x, c_i' s^2
        slope = (n * v) @ clusters
        if blocks.size_classes is not None:
            # the units are classes of equal size: sum rho_i^2 over a class is
            # S_ss - 2 delta . S_sq + delta' S_qq delta (the criterion's r2 is of the same form)
            delta = ev.delta
            quad = np.sum(
                weighted[..., :pp].reshape(weighted.shape[:-1] + (p, p))
                * delta[..., :, None]
                * delta[..., None, :],
                axis=(-2, -1),
            )
            resid = weighted[..., -1] - 2.0 * np.sum(weighted[..., pp : pp + p] * delta, -1) + quad
        else:
            rho = resp.sum_e - ev.delta @ blocks.sum_q.T
            resid = np.sum(dc * rho * rho, axis=-1)
        slope = slope - dof * resid / ev.r2
        if reml:  # sum_i c_i' S_x,i' A^{-1} S_x,i
            slope = slope - np.sum(weighted[..., :pp] * a_inv, axis=-1)
        return slope, ev
    n = blocks.counts
    rho = resp.sum_e - ev.delta @ blocks.sum_q.T
    v = 1.0 / (1.0 + n * u)
    dc = v * v
    slope = np.sum(n * v, axis=-1) - dof * np.sum(dc * rho * rho, axis=-1) / ev.r2
    if reml:
        slope = slope - np.sum(dc * (a_inv @ blocks.outer_q.T), axis=-1)
    return slope, ev


def expand_theta(theta, free, q: int) -> np.ndarray:
    """The full theta of a q x q lower-triangular T from the free elements of a block-diagonal T.

    Several random-effects terms of one grouping factor (``(1 | g) + (0 + x | g)``, or ``(x || g)``)
    make T block-diagonal: only the lower triangle of each diagonal block is estimated. ``free`` lists
    the positions of those elements in the full theta (column by column); because the blocks follow
    one another down the diagonal, the free elements in that order are lme4's theta (the blocks' thetas
    one after another).

    Examples
    --------
    >>> expand_theta([0.9, 0.2], [0, 2], 2).tolist()
    [0.9, 0.0, 0.2]
    """
    theta = np.asarray(theta, dtype=float)
    if free is None:
        return theta
    out = np.zeros(theta.shape[:-1] + (theta_size(q),))
    out[..., np.asarray(free)] = theta
    return out


def _inverse_small(chol: np.ndarray) -> np.ndarray:
    """M^{-1} from the lower Cholesky factors of a batch of small matrices (M = L L')."""
    q = chol.shape[-1]
    eye = np.broadcast_to(np.eye(q), chol.shape)
    l_inv = _solve_lower_small(chol, eye) if q <= SMALL_Q else np.linalg.inv(chol)
    return _mm(np.swapaxes(l_inv, -1, -2), l_inv)


def value_and_gradient(blocks: Blocks, resp: Response, theta, reml: bool = True, free=None):
    r"""The criterion and its analytic gradient with respect to theta, for any q, in one pass.

    With G_i = Z_i'Z_i, F_i = Z_i'X_i, M_i = T'G_i T + I, K_i = T M_i^{-1} T' and the GLS residual sums
    rho_i = Z_i'y_i - F_i beta, the criterion is sum_i log det M_i [+ log det A] + dof log r2 + const,
    with A = X'X - sum_i F_i'K_i F_i and r2 = min over beta of the penalised residual sum of squares,
    whose derivative at the optimum is -sum_i rho_i' dK_i rho_i (the envelope theorem). From
    d log det M = tr(M^{-1} dM), dM = dT'G T + T'G dT and dK = dT M^{-1}T' + T M^{-1} dT' -
    T M^{-1} dM M^{-1} T', for any symmetric S

        d log det M_i = 2 tr(M_i^{-1} T'G_i dT),
        tr(S dK_i)    = 2 tr(M_i^{-1} T'S (I - K_i G_i) dT),

    so, with S_i = [F_i A^{-1} F_i'] + (dof / r2) rho_i rho_i' (the bracket for REML only),

        d criterion / dT = 2 sum_i [G_i T M_i^{-1} - (I - G_i K_i) S_i T M_i^{-1}],

    read off at T's lower-triangular positions (lme4's theta order). For q = 1 this is 2 theta times
    :func:`slope_u`. Every piece is invariant to the blocks' basis (Q or X, e or y).

    Parameters
    ----------
    theta : array_like, shape (..., k)
        The full theta, or with ``free`` the free elements only (:func:`expand_theta`).

    Returns
    -------
    criterion : ndarray, shape (...)
    gradient : ndarray, shape (..., k)
    """
    q = blocks.q
    free = np.arange(blocks.n_theta) if free is None else np.asarray(free)
    theta = _check_theta(theta, len(free))
    full = expand_theta(theta, free, q)
    ev = evaluate(blocks, resp, full, reml)
    t = theta_to_factor(full, q)[..., None, :, :]  # (..., 1, q, q)
    tt = np.swapaxes(t, -1, -2)
    g = blocks.ztz
    m = _mm(_mm(tt, g), t) + np.eye(q)
    chol = _chol_small(m) if q <= SMALL_Q else np.linalg.cholesky(m)
    tm = _mm(t, _inverse_small(chol))  # T M^{-1}, (..., J, q, q)
    k = _mm(tm, tt)
    rho = resp.zty - _mm(blocks.ztx, ev.delta[..., None, :, None])[..., 0]  # (..., J, q)
    scale = (blocks.dof(reml) / ev.r2)[..., None, None, None]
    s = scale * (rho[..., :, None] * rho[..., None, :])
    if reml:
        fa = _mm(blocks.ztx, ev.a_inv[..., None, :, :])
        s = s + _mm(fa, np.swapaxes(blocks.ztx, -1, -2))
    gk = _mm(g, k)
    inner = _mm(g, tm) - _mm(s - _mm(gk, s), tm)
    grad = 2.0 * inner.sum(axis=-3)
    rows, cols = _lower_index(q)
    out = grad[..., rows, cols][..., free]
    bad = ~np.isfinite(ev.criterion)
    if np.any(bad):
        out = np.where(bad[..., None], np.nan, out)
    return ev.criterion, out


def gradient(blocks: Blocks, resp: Response, theta, reml: bool = True, free=None) -> np.ndarray:
    """The gradient of the criterion with respect to theta, shape (..., n_theta), analytic for any q.

    For q = 1 it is 2 theta times :func:`slope_u` (so 0 at theta = 0); otherwise
    :func:`value_and_gradient`. With ``free`` (see :func:`expand_theta`), ``theta`` holds the free
    elements only and the gradient is with respect to them.
    """
    q = blocks.q
    if free is None:
        free = np.arange(blocks.n_theta)
    free = np.asarray(free)
    theta = _check_theta(theta, len(free))
    if q == 1:
        return 2.0 * theta * slope_u(blocks, resp, theta, reml)[..., None]
    return value_and_gradient(blocks, resp, theta, reml, free)[1]


def gradient_numeric(blocks: Blocks, resp: Response, theta, reml: bool = True, free=None):
    """The central-difference gradient (one-sided at a lower bound of 0), all 2 k points in one
    batched evaluation: the check on :func:`value_and_gradient`."""
    q = blocks.q
    if free is None:
        free = np.arange(blocks.n_theta)
    free = np.asarray(free)
    theta = _check_theta(theta, len(free))
    k = len(free)
    step = 2e-5 * np.maximum(np.abs(theta), 0.05)  # (..., k)
    eye = np.eye(k)
    lower = theta_lower_bounds(q)[free]
    up = theta[..., None, :] + step[..., :, None] * eye
    down = theta[..., None, :] - step[..., :, None] * eye
    one_sided = (theta - step) < lower  # only where a diagonal element sits near 0
    down = np.where(one_sided[..., :, None] * eye > 0, theta[..., None, :], down)
    points = expand_theta(np.stack([up, down], axis=-3), free, q)
    values = evaluate(blocks, resp, points, reml).criterion
    f_up, f_down = values[..., 0, :], values[..., 1, :]
    return (f_up - f_down) / np.where(one_sided, step, 2.0 * step)


def conditional_modes(blocks: Blocks, resp: Response, theta, delta, sigma2):
    """The conditional modes b_i and their conditional covariances (lme4's ``ranef`` and ``condVar``).

    Parameters
    ----------
    theta : array_like, shape (n_theta,)
    delta : ndarray, shape (p,)
        From :class:`Evaluation`.
    sigma2 : float

    Returns
    -------
    modes : ndarray, shape (J, q)
    cond_cov : ndarray, shape (J, q, q)
        sigma^2 T M_i^{-1} T' (for a random intercept: sigma^2 theta^2 / (1 + n_i theta^2)).
    """
    theta = _check_theta(theta, blocks.n_theta)
    rho = resp.zty - blocks.ztx @ np.asarray(delta, dtype=float)  # (J, q)
    if blocks.q == 1:
        u = float(theta[0]) ** 2
        n = blocks.counts
        c = u / (1.0 + n * u)
        return (c * rho[:, 0])[:, None], (sigma2 * c)[:, None, None]
    t = theta_to_factor(theta, blocks.q)
    m = t.T @ blocks.ztz @ t + np.eye(blocks.q)
    m_inv = np.linalg.inv(m)
    modes = (t @ m_inv @ (t.T @ rho[..., None]))[..., 0]
    return modes, sigma2 * (t @ m_inv @ t.T)


# --------------------------------------------------------------------------------------------------
# The optimiser
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptSummary:
    """A record of one optimisation, after MixedModels.jl's ``OptSummary``.

    Attributes
    ----------
    initial : tuple of float
        The starting theta (for a scalar theta: the best point of the bracketing grid).
    final : tuple of float
        The estimate.
    n_evaluations : int
        Evaluations of the criterion or its slope (a vectorised grid counts each of its points).
    criterion : float
        The criterion at ``final``.
    gradient_norm : float
        The largest absolute component of the gradient in theta at ``final``, over the components that
        are free (a component held at its bound 0 with a rising criterion does not count). For a scalar
        theta at 0 the slope in theta^2 decided the boundary; it is ``boundary_slope``.
    at_bound : bool
        Whether some diagonal element of T is exactly 0 (a singular fit).
    elapsed : float
        Seconds spent.
    method : str
    converged : bool
    boundary_slope : float or None
        Scalar theta only: the slope of the criterion in theta^2 at 0 (>= 0 on a boundary fit).
    """

    initial: tuple
    final: tuple
    n_evaluations: int
    criterion: float
    gradient_norm: float
    at_bound: bool
    elapsed: float
    method: str
    converged: bool
    boundary_slope: float | None = None


def _golden(fun, lo: np.ndarray, hi: np.ndarray, iterations: int = 80) -> np.ndarray:
    """Vectorised golden-section minimisation of ``fun`` on [lo, hi], one interval per item."""
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = fun(x1), fun(x2)
    for _ in range(iterations):
        left = f1 <= f2
        hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
        new_x1 = np.where(left, hi - ratio * (hi - lo), x2)
        new_x2 = np.where(left, x1, lo + ratio * (hi - lo))
        f_new = fun(np.where(left, new_x1, new_x2))
        f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
        x1, x2 = new_x1, new_x2
    return np.where(f1 <= f2, x1, x2)


def _root_bracketed(fun, a: np.ndarray, b: np.ndarray, fa: np.ndarray, fb: np.ndarray):
    """Vectorised root of ``fun`` in [a, b] with fa < 0 < fb: Illinois steps, bisection as a safeguard.

    Stops for each item when the bracket is within 4 machine epsilons of its upper end (or the slope is
    exactly 0). Returns the roots and the number of evaluations each item took.
    """
    tol = 4.0 * np.finfo(float).eps
    a, b, fa, fb = (np.array(v, dtype=float) for v in (a, b, fa, fb))
    if a.shape == (1,):
        return _root_bracketed_one(fun, float(a[0]), float(b[0]), float(fa[0]), float(fb[0]), tol)
    evals = np.zeros(a.shape, dtype=np.int64)
    side = np.zeros(a.shape, dtype=np.int64)  # which end was kept last: -1 a, +1 b
    width = b - a
    exact = np.full(a.shape, np.nan)
    for it in range(200):
        active = ((b - a) > tol * b) & np.isnan(exact)
        if not active.any():
            break
        idx = np.flatnonzero(active)
        aa, bb, ffa, ffb = a[idx], b[idx], fa[idx], fb[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            x = bb - ffb * (bb - aa) / (ffb - ffa)
        halve = (it % 3 == 2) & ((bb - aa) > 0.5 * width[idx])  # too slow: bisect
        x = np.where(~np.isfinite(x) | halve, 0.5 * (aa + bb), x)
        # as Brent's method does: step at least a tolerance away from either end, so that once the
        # estimate is next to the root the following evaluation lands on the root's other side
        nudge = 0.5 * tol * bb
        x = np.minimum(np.maximum(x, aa + nudge), bb - nudge)
        if it % 3 == 2:
            width[idx] = bb - aa
        fx = fun(x, idx)
        evals[idx] += 1
        zero = fx == 0
        exact[idx[zero]] = x[zero]
        neg = fx < 0
        # Illinois: halve the value at the end that stays twice in a row
        keep_b = neg & (side[idx] == 1)
        keep_a = ~neg & (side[idx] == -1)
        fb[idx[keep_b]] *= 0.5
        fa[idx[keep_a]] *= 0.5
        a[idx[neg]], fa[idx[neg]] = x[neg], fx[neg]
        b[idx[~neg]], fb[idx[~neg]] = x[~neg], fx[~neg]
        side[idx] = np.where(neg, 1, -1)
    root = np.where(np.isnan(exact), 0.5 * (a + b), exact)
    return root, evals


def _root_bracketed_one(fun, a: float, b: float, fa: float, fb: float, tol: float):
    """:func:`_root_bracketed` for one item, step for step the same, on Python floats (the vectorised
    bookkeeping costs more than a slope evaluation at few clusters)."""
    idx = np.zeros(1, dtype=np.int64)
    evals, side, width, exact = 0, 0, b - a, None
    for it in range(200):
        if not (b - a) > tol * b or exact is not None:
            break
        denominator = fb - fa
        x = b - fb * (b - a) / denominator if denominator != 0 else math.nan
        halve = it % 3 == 2 and (b - a) > 0.5 * width  # too slow: bisect
        if not math.isfinite(x) or halve:
            x = 0.5 * (a + b)
        nudge = 0.5 * tol * b  # at least a tolerance away from either end
        x = min(max(x, a + nudge), b - nudge)
        if it % 3 == 2:
            width = b - a
        fx = float(fun(np.array([x]), idx)[0])
        evals += 1
        if fx == 0:
            exact = x
        neg = fx < 0
        if neg and side == 1:  # Illinois
            fb *= 0.5
        if not neg and side == -1:
            fa *= 0.5
        if neg:
            a, fa = x, fx
        else:
            b, fb = x, fx
        side = 1 if neg else -1
    root = 0.5 * (a + b) if exact is None else exact
    return np.array([root]), np.array([evals], dtype=np.int64)


#: A response counts as having no within-cluster variation left once the fixed effects are fitted when
#: the within fit's residual sum of squares is below this fraction of the within sum of squares (the
#: rounding error of that difference is a few machine epsilons of it).
WITHIN_TOL = 1e-12


def within_fit_rss(blocks: Blocks, resp: Response) -> np.ndarray:
    """q = 1: the residual sum of squares of the within (cluster-dummy) fit, the theta -> infinity limit.

    Returns an array over the response's batch axes; 0 where the within fit is exact to rounding (then
    the criterion falls without bound as theta grows, and no finite theta is a minimum).
    """
    values, vectors = np.linalg.eigh(blocks.within_xx)
    top = values.max()
    keep = values > top * blocks.n_params * 1e-12 if top > 0 else values > 0
    proj = resp.within_xy @ vectors[:, keep]
    rss = resp.within_yy - np.sum(proj * proj / values[keep], axis=-1)
    return np.where(rss > WITHIN_TOL * resp.within_yy, rss, 0.0)


def _theta_grid_values(blocks, resp, reml, m):
    """The criterion on THETA_GRID for m responses, extended past 10^4 where it still falls there."""
    grid = THETA_GRID
    values = evaluate(blocks, resp, grid[:, None, None], reml).criterion  # (K, m)
    values = np.broadcast_to(values, (len(grid), m))
    k = np.argmin(values, axis=0)
    evals = np.full(m, len(grid), dtype=np.int64)
    edge = np.flatnonzero(k == len(grid) - 1)
    if edge.size and blocks.fast:
        # with no within-cluster variation the criterion falls for ever: no extension (not converged)
        rss = np.broadcast_to(within_fit_rss(blocks, resp), (m,))
        edge = edge[rss[edge] > 0]
    grids = {}
    if edge.size:
        sub = resp.take(edge) if resp.sum_e.ndim > 1 else resp
        ext = np.concatenate([grid[-1:], THETA_EXTENSION])
        more = evaluate(blocks, sub, ext[:, None, None], reml).criterion
        more = np.broadcast_to(more, (len(ext), edge.size))
        evals[edge] += len(ext) - 1
        grids["ext"] = (edge, ext, more)
    return grid, values, k, evals, grids


def optimize_batch(blocks: Blocks, resp: Response, reml: bool = True):
    """Minimise the profiled criterion over a scalar theta >= 0 for a batch of responses at once.

    The steps, for every response in the batch together:

    1. the criterion on the grid 0, 10^-4 .. 10^4 (one vectorised evaluation) brackets the minimum; where
       it still falls at 10^4 the grid continues to 10^16 (the limit theta -> infinity is the within fit,
       approached smoothly in log theta);
    2. theta = 0 is the estimate, exactly, when the minimum is at the grid's first points and the slope of
       the criterion in u = theta^2 at 0 is not negative (a boundary, or singular, fit);
    3. otherwise the root of the closed-form slope between the two grid neighbours of the minimum is found
       (for one response where a point is cheap, after one evaluation at 17 points across that bracket
       narrows it 16-fold) to 4 machine epsilons (Illinois steps with bisection as a safeguard), which
       keeps full precision
       where the criterion itself is flat; where the slope shows no sign change, a golden-section search
       on the values stands in;
    4. theta = 0 still wins if its criterion is no higher.

    Parameters
    ----------
    blocks : Blocks
        With q = 1.
    resp : Response
        With no batch axis (one fit) or one (m responses).
    reml : bool, default True

    Returns
    -------
    theta : ndarray, shape (m,)
    converged : ndarray of bool, shape (m,)
        False where the criterion still falls at 10^16 (no within-cluster variation to speak of).
        Also False, with theta = 10^4, where the within-cluster fit is exact (:func:`within_fit_rss`):
        the criterion then falls without bound and no finite theta is a minimum.
    n_evaluations : ndarray of int, shape (m,)
    initial : ndarray, shape (m,)
        The best grid point, where the refinement started.
    """
    if blocks.q != 1:
        raise ValueError("optimize_batch handles a scalar theta (q = 1); use optimize for q > 1.")
    batched = resp.sum_e.ndim > 1
    m = resp.sum_e.shape[0] if batched else 1

    def sub(rows):
        return resp.take(rows) if batched else resp

    grid, values, k, evals, grids = _theta_grid_values(blocks, resp, reml, m)
    lo = grid[np.maximum(k - 1, 0)]
    hi = grid[np.minimum(k + 1, len(grid) - 1)]
    converged = k < len(grid) - 1
    if "ext" in grids:
        edge, ext, more = grids["ext"]
        j = np.argmin(more, axis=0)
        lo[edge] = ext[np.maximum(j - 1, 0)]
        hi[edge] = ext[np.minimum(j + 1, len(ext) - 1)]
        converged[edge] = j < len(ext) - 1
    initial = grid[k].astype(float)
    if "ext" in grids:
        initial[edge] = ext[j]
    theta = np.where(converged, np.nan, hi)
    near_zero = np.flatnonzero(converged & (k <= 1))
    if near_zero.size:
        slope0 = slope_u(blocks, sub(near_zero), np.zeros((near_zero.size, 1)), reml)
        slope0 = np.broadcast_to(slope0, (near_zero.size,))
        evals[near_zero] += 1
        theta[near_zero[slope0 >= 0]] = 0.0
    todo = np.flatnonzero(np.isnan(theta))
    if todo.size:
        part = sub(todo)
        a, b = lo[todo], hi[todo]

        def slope_at(t):
            return np.broadcast_to(slope_u(blocks, part, t[:, None], reml), t.shape)

        cheap = blocks.size_classes is not None or blocks.n_groups <= 2_000
        if not batched and cheap:
            # one call at 17 points across the bracket narrows it 16-fold (where a point costs
            # little, calls cost more than points), then fewer root steps are needed
            t = a[0] + (b[0] - a[0]) * np.linspace(0.0, 1.0, 17)
            slopes = slope_at(t)
            evals[todo] += len(t)
            slope_a, slope_b = slopes[:1], slopes[-1:]
            rising = np.flatnonzero(slopes > 0)
            if slope_a[0] < 0 < slope_b[0] and rising.size and slopes[rising[0] - 1] < 0:
                i = rising[0]
                a, b = t[i - 1 : i], t[i : i + 1]
                slope_a, slope_b = slopes[i - 1 : i], slopes[i : i + 1]
        else:
            slope_a, slope_b = slope_at(a), slope_at(b)
            evals[todo] += 2
        sign_change = (slope_a < 0) & (slope_b > 0)
        found = np.empty(todo.size)
        if sign_change.any():
            rows = np.flatnonzero(sign_change)
            sub_part = part.take(rows) if batched else part

            def fun(t, idx):
                r = sub_part.take(idx) if batched else sub_part
                return np.broadcast_to(slope_u(blocks, r, t[:, None], reml), t.shape)

            found[rows], n_root = _root_bracketed(
                fun, a[rows], b[rows], slope_a[rows], slope_b[rows]
            )
            evals[todo[rows]] += n_root
        if not sign_change.all():
            rows = np.flatnonzero(~sign_change)
            flat = part.take(rows) if batched else part

            def crit(t):
                out = evaluate(blocks, flat, t[:, None], reml).criterion
                return np.broadcast_to(out, t.shape)

            found[rows] = _golden(crit, a[rows], b[rows])
            evals[todo[rows]] += 82
        ends = np.stack([np.zeros(todo.size), found])[..., None]  # (2, n, 1)
        at = np.broadcast_to(evaluate(blocks, part, ends, reml).criterion, (2, todo.size))
        evals[todo] += 2
        theta[todo] = np.where(at[0] <= at[1], 0.0, found)
    return theta, converged, evals, initial


def _newton(vg, x0: np.ndarray, lower: np.ndarray, max_iter: int = 200):
    """Bounded Newton on theta with the analytic gradient and a difference Hessian of it.

    ``vg`` maps a batch of points (m, k) to values (m,) and gradients (m, k). Each iteration evaluates
    the point and the 2 k points of a central difference of the gradient in one batched call; the step
    is Newton's on the free components (those not held at a bound of 0 by a rising criterion), with the
    Hessian's eigenvalues taken in absolute value, plus a step along a direction of negative curvature
    where there is one (the criterion is even in a diagonal element of T whose column is the last one,
    so its gradient at 0 vanishes although 0 may be a maximum in that direction, where a quasi-Newton
    method stalls). Steps are projected onto the bounds and halved until the criterion falls.

    Returns (x, value, number of points evaluated, converged).
    """
    x = np.maximum(np.asarray(x0, dtype=float), lower)
    k = len(x)
    eye = np.eye(k)
    n_points = polish = 0
    converged = False
    for _ in range(max_iter):
        h = 1e-5 * np.maximum(np.abs(x), 0.05)
        pts = np.concatenate([x[None], x + h[:, None] * eye, x - h[:, None] * eye])
        values, grads = vg(pts)
        n_points += len(pts)
        f, g = float(values[0]), grads[0]
        if not np.isfinite(f):
            break
        hess = (grads[1 : k + 1] - grads[k + 1 :]) / (2.0 * h[:, None])
        hess = 0.5 * (hess + hess.T)
        scale = max(1.0, abs(f))
        at_bound = x <= lower
        hold = at_bound & ((g > 1e-12 * scale) | ((g >= 0) & (np.diag(hess) >= 0)))
        idx = np.flatnonzero(~hold)
        if idx.size == 0:
            converged = True
            break
        gf, hf = g[idx], hess[np.ix_(idx, idx)]
        lam, vec = np.linalg.eigh(hf)
        top = max(float(np.abs(lam).max()), 1e-300)
        floor = 1e-10 * top
        lam_abs = np.maximum(np.abs(lam), floor)
        newton = -vec @ ((vec.T @ gf) / lam_abs)
        decrement = float(gf @ (vec @ ((vec.T @ gf) / lam_abs)))
        negative = lam[0] < -floor
        if decrement < 1e-18 * scale and not negative:
            converged = True
            break
        if decrement < 1e-8 * scale and not negative:
            # the quadratic model holds and the criterion's rounding (~1e-14 of it) hides the
            # remaining decrease: full Newton steps on the (analytic) gradient, while the value
            # stays within its rounding
            polish += 1
            step = np.zeros(k)
            step[idx] = newton
            trial = np.maximum(x + step, lower)
            value = float(vg(trial[None])[0][0])
            n_points += 1
            if value > f + 1e-13 * scale or polish > 8:
                converged = True
                break
            x = trial
            continue
        directions = [newton]
        if negative:
            v = vec[:, 0] * np.sign(vec[:, 0] @ -gf if vec[:, 0] @ gf != 0 else 1.0)
            # a step that the quadratic model says lowers the criterion by a useful amount
            length = 0.1 * (1.0 + float(np.abs(x[idx]).max()))
            directions += [length * v, -length * v] if v @ gf == 0 else [length * v]
        best_x, best_f = None, f
        for d in directions:
            step = np.zeros(k)
            step[idx] = d
            alphas = 0.5 ** np.arange(0, 30)
            trial = np.maximum(x + alphas[:, None] * step, lower)
            # evaluate the full step first; the shorter ones only when it does not lower the criterion
            first = float(vg(trial[:1])[0][0])
            n_points += 1
            if first < best_f:
                best_x, best_f = trial[0], first
                continue
            vals = vg(trial[1:])[0]
            n_points += len(trial) - 1
            j = int(np.argmin(vals))
            if vals[j] < best_f:
                best_x, best_f = trial[1 + j], float(vals[j])
        if best_x is None:
            converged = not negative and decrement < 1e-8 * scale
            break
        x = best_x
    values = vg(x[None])[0]
    return x, float(values[0]), n_points + 1, converged


def _optimize_vector(blocks: Blocks, resp: Response, reml: bool, start=None, free=None):
    """Bounded Newton (:func:`_newton`) on a vector theta; failing that, quasi-Newton (L-BFGS-B) and a
    derivative-free polish (Powell) when it did not converge or a diagonal element of T ends next to
    its bound 0. With ``free``, over the free
    elements of a block-diagonal T (:func:`expand_theta`)."""
    q = blocks.q
    if free is None:
        free = np.arange(blocks.n_theta)
    free = np.asarray(free)
    lower = theta_lower_bounds(q)[free]
    rows, cols = _lower_index(q)
    diag = (rows == cols)[free]
    x0 = np.where(diag, 1.0, 0.0) if start is None else np.asarray(start, dtype=float)
    count = [0]

    def fun(x):
        count[0] += 1
        return float(evaluate(blocks, resp, expand_theta(x, free, q), reml).criterion)

    def fun_grad(x):
        count[0] += 1
        value, grad = value_and_gradient(blocks, resp, x, reml, free)
        return float(value), grad

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]

    def batch(points):
        values, grads = value_and_gradient(blocks, resp, points, reml, free)
        return np.atleast_1d(values), np.atleast_2d(grads)

    # Quasi-Newton first (one point per evaluation), without the bounds: the criterion depends on T
    # only through T T', so flipping the sign of a column of T changes nothing, and a step across a
    # bound of 0 is a step to the mirror image (where a bounded search would stop, as the gradient
    # vanishes at 0 in a diagonal element of T's last column). The columns are then flipped to a
    # diagonal >= 0, and the Newton iterations, whose difference Hessian costs 2 k gradients, only
    # finish (a few iterations) or step off a saddle at a bound.
    first = scipy.optimize.minimize(
        fun_grad,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-12, "gtol": 1e-7, "maxiter": 2000},
    )
    start = _positive_diagonal(np.asarray(first.x, dtype=float), free, q)
    x, value, n_points, ok = _newton(batch, start, lower)
    count[0] += n_points
    if ok:
        x = _snap_to_bounds(x, diag, fun, fun_grad, bounds)
        return x0, x, count[0], True, "L-BFGS-B + Newton"
    first = scipy.optimize.minimize(
        fun_grad,
        first.x,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000},
    )
    best, method = first, "L-BFGS-B"
    near_bound = np.any(diag & (np.abs(first.x) < 1e-4))
    if not first.success or near_bound:
        # gradient methods can stall next to the boundary (lme4's singular fits): a derivative-free
        # polish within the bounds, kept only if it is lower
        polish = scipy.optimize.minimize(
            fun,
            first.x,
            method="Powell",
            bounds=bounds,
            options={"xtol": 1e-10, "ftol": 1e-15, "maxiter": 20000},
        )
        method = "L-BFGS-B + Powell"
        if polish.fun <= first.fun:
            best = polish
    x = _snap_to_bounds(np.asarray(best.x, dtype=float), diag, fun, fun_grad, bounds)
    return x0, x, count[0], bool(best.success), method


def _positive_diagonal(x: np.ndarray, free: np.ndarray, q: int) -> np.ndarray:
    """The same T T' with T's diagonal >= 0: each column with a negative diagonal element flipped."""
    full = expand_theta(x, free, q)
    rows, cols = _lower_index(q)
    diagonal = full[rows == cols]  # T's diagonal, column by column
    signs = np.where(diagonal < 0, -1.0, 1.0)
    return (full * signs[cols])[free]


def _snap_to_bounds(x, diag, fun, fun_grad, bounds):
    """A diagonal element next to its bound is put on it (lme4 reports singular fits with exact zeros)
    when that changes the criterion by no more than its rounding; the others are then refined."""
    snapped = np.where(diag & (np.abs(x) < 1e-6), 0.0, x)
    if np.any(snapped != x):
        at_x = fun(x)
        if fun(snapped) <= at_x + 1e-12 * max(1.0, abs(at_x)):
            # and the other elements are refined with those held at 0
            held = [
                (0.0, 0.0) if v == 0.0 and d else bd
                for v, d, bd in zip(snapped, diag, bounds, strict=True)
            ]
            again = scipy.optimize.minimize(
                fun_grad,
                snapped,
                jac=True,
                method="L-BFGS-B",
                bounds=held,
                options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000},
            )
            x = np.asarray(again.x, dtype=float) if again.fun <= fun(snapped) else snapped
    return x


def optimize(blocks: Blocks, resp: Response, reml: bool = True, *, start=None, free=None):
    """Minimise the profiled criterion over theta (diagonal of T >= 0); the one optimiser of the package.

    A scalar theta (q = 1) goes through :func:`optimize_batch` (grid, then the root of the analytic slope;
    exactly 0 on a boundary fit; with many clusters of shared sizes each theta costs O(distinct sizes),
    :attr:`Blocks.size_classes`). A vector theta goes from lme4's starting point (T = I) through
    L-BFGS-B with the analytic gradient of :func:`value_and_gradient`, one point per evaluation and
    without bounds (T T' does not change when a column of T changes sign; the columns are then flipped
    to a diagonal >= 0), and a bounded Newton method finishes (:func:`_newton`: the analytic gradient and
    a difference Hessian of it, which also steps off a saddle at a bound of 0). Should Newton not
    converge, L-BFGS-B within the bounds, polished by Powell's method when it did not converge or a
    diagonal element of T ends next to 0. The whole optimisation runs on one BLAS thread (its products
    are small; :mod:`helpers._blas`). A vector fit counts as converged when
    the method says so or, failing that, when the largest free component of the gradient is below 1e-6
    of the criterion (at least 1e-6): line searches can stall next to the bound at a singular fit.

    Parameters
    ----------
    blocks : Blocks
    resp : Response
        One response (no batch axis).
    reml : bool, default True
    start : array_like, optional
        Vector theta only: the starting point (default T = I, as lme4).
    free : array_like of int, optional
        For a block-diagonal T (several random-effects terms of one grouping factor): the positions
        of the estimated elements in the full theta (:func:`expand_theta`). theta, the start, the
        gradient and the summary are then of those elements only, in lme4's order.

    Returns
    -------
    theta : ndarray, shape (n_theta,) or (len(free),)
    summary : OptSummary

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> stats = build_design(load_dataset("dyestuff2"), "Yield ~ 1 + (1 | Batch)").stats
    >>> theta, summary = optimize(*blocks_from_stats(stats))
    >>> theta.tolist(), summary.at_bound, summary.converged
    ([0.0], True, True)
    """
    started = time.perf_counter()
    with single_blas_thread():  # small products: a second BLAS thread only spins (helpers._blas)
        return _optimize(blocks, resp, reml, start, free, started)


def _optimize(blocks, resp, reml, start, free, started):
    rows, cols = _lower_index(blocks.q)
    if free is not None:
        rows, cols = rows[np.asarray(free)], cols[np.asarray(free)]
    boundary_slope = None
    if blocks.q == 1:
        theta, converged, evals, start_at = optimize_batch(blocks, resp, reml)
        initial = (float(start_at[0]),)
        x = np.array([float(theta[0])])
        n_evals, converged, method = int(evals[0]), bool(converged[0]), "grid + slope root"
        slope, ev = _slope_u_and_evaluation(blocks, resp, x, reml)
        grad = 2.0 * x * slope  # gradient(): 0 at theta = 0, where the slope in u decides
        if x[0] == 0.0:
            boundary_slope = float(slope)
    else:
        x0, x, n_evals, converged, method = _optimize_vector(blocks, resp, reml, start, free)
        initial = tuple(float(v) for v in x0)
        ev = evaluate(blocks, resp, expand_theta(x, free, blocks.q), reml)
        grad = gradient(blocks, resp, x, reml, free)
    free = ~((rows == cols) & (x == 0.0) & (grad >= 0))
    gradient_norm = float(np.max(np.abs(grad[free]), initial=0.0))
    if blocks.q > 1 and not converged:
        # the method's own test can fail next to the bound (a line search that stalls at a singular
        # fit) although the point is a minimum: the gradient over the free components decides then
        converged = gradient_norm <= 1e-6 * max(1.0, abs(float(ev.criterion)))
    summary = OptSummary(
        initial=initial,
        final=tuple(float(v) for v in x),
        n_evaluations=n_evals,
        criterion=float(ev.criterion),
        gradient_norm=gradient_norm,
        at_bound=bool(np.any(x[rows == cols] == 0.0)),
        elapsed=time.perf_counter() - started,
        method=method,
        converged=converged,
        boundary_slope=boundary_slope,
    )
    return x, summary


def minimize_1d(fun, grid=THETA_GRID) -> tuple[float, float]:
    """Minimise any function of a scalar theta >= 0 (e.g. a profiled deviance): grid, then Brent.

    ``fun`` takes an array of thetas. A grid that starts at 0 allows the boundary, compared by value. When
    the minimum is at the grid's upper end, the search continues over ``THETA_EXTENSION``.

    Returns
    -------
    (theta, value)
    """
    grid = np.asarray(grid, dtype=float)
    values = np.asarray(fun(grid), dtype=float)
    k = int(np.argmin(values))
    if k == len(grid) - 1 and grid[-1] < THETA_EXTENSION[-1]:
        grid = np.concatenate([grid, THETA_EXTENSION[THETA_EXTENSION > grid[-1]]])
        values = np.concatenate([values, np.asarray(fun(grid[k + 1 :]), dtype=float)])
        k = int(np.argmin(values))
    if k == len(grid) - 1:
        return float(grid[-1]), float(values[-1])
    lower, upper = float(grid[max(k - 1, 0)]), float(grid[k + 1])
    result = scipy.optimize.minimize_scalar(
        lambda t: float(fun(np.array([t]))[0]),
        bounds=(lower, upper),
        method="bounded",
        options={"xatol": 1e-13 * upper, "maxiter": 500},
    )
    best_x, best = float(result.x), float(result.fun)
    if values[k] < best:
        best_x, best = float(grid[k]), float(values[k])
    if grid[0] == 0.0 and values[0] <= best:
        best_x, best = 0.0, float(values[0])
    return best_x, best
