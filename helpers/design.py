"""Step 1 of a fit: rows become model matrices and per-cluster sufficient statistics.

This is the counterpart of lme4's ``lFormula``. The random-intercept likelihood depends on the rows only
through the cluster sizes, the per-cluster sums of the model matrix and of the response, and the global
cross-products. :func:`build_design` computes those once; every later step (the objective, the optimiser,
the widgets, the bootstrap) works from them and never touches the rows again.

Numerics
--------
The statistics are stored in a rotated basis. With the thin QR decomposition ``X = Q R``, the columns of
``Q`` are orthonormal, and the response is replaced by its OLS residual ``e = y - X beta_ols``. The sums are
then of residual-sized, well-scaled numbers, whatever the offsets and units of the data; ``R`` and
``beta_ols`` carry the scale back at the end. See :mod:`helpers.objective` for the formulas.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg
from numpy.typing import ArrayLike

from ._blas import single_blas_thread
from .formula import Factor, ModelSpec, Name, ParsedFormula, level_name, parse_formula
from .validate import (
    DataError,
    RowsDroppedWarning,
    check_columns,
    check_enough_rows,
    check_finite,
    check_groups,
    drop_missing,
)

__all__ = [
    "RowsDroppedWarning",
    "RowsUnavailable",
    "ENGINE_NAMES",
    "model_columns",
    "SufficientStats",
    "Design",
    "Rows",
    "build_design",
    "sufficient_stats",
    "stats_from_cross_products",
]


@dataclass(frozen=True, eq=False)
class SufficientStats:
    """Everything the random-intercept likelihood needs, in a numerically safe basis.

    With ``X = Q R`` (thin QR, ``Q'Q = I``) and ``e = y - X beta_ols``:

    Attributes
    ----------
    counts : ndarray, shape (J,)
        Cluster sizes n_i.
    sum_q : ndarray, shape (J, p)
        Per-cluster sums of the rows of ``Q``.
    sum_e : ndarray, shape (J,)
        Per-cluster sums of the OLS residuals.
    ete : float
        The OLS residual sum of squares e'e.
    r_factor : ndarray, shape (p, p)
        The upper-triangular ``R``.
    beta_ols : ndarray, shape (p,)
        The pooled OLS coefficients.
    within_qq, within_qe, within_ee : ndarray (p, p), ndarray (p,), float
        The within-cluster cross-products of ``Q`` and ``e`` (deviations from their cluster means). They
        equal ``I - sum_i s_q,i s_q,i' / n_i`` and so on, but are summed from the deviations directly, which
        keeps the objective accurate when theta is large and between-cluster information nearly vanishes.

    The statistics are read-only by construction: every array is made non-writeable when the object is
    made (an array that owns its memory is frozen in place, any other is copied first, since it could
    be changed through the array it views), and the scalars are stored as floats. Unpickling goes
    through the constructor too.
    """

    counts: np.ndarray
    sum_q: np.ndarray
    sum_e: np.ndarray
    ete: float
    r_factor: np.ndarray
    beta_ols: np.ndarray
    within_qq: np.ndarray
    within_qe: np.ndarray
    within_ee: float

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, np.ndarray):
                if value.base is not None:
                    value = value.copy()
                value.setflags(write=False)
            else:
                value = float(value)
            object.__setattr__(self, item.name, value)

    def __reduce__(self) -> tuple:
        return (type(self), tuple(getattr(self, item.name) for item in fields(self)))

    @property
    def n_obs(self) -> int:
        """The number of rows N."""
        return int(self.counts.sum())

    @functools.cached_property
    def r_inverse(self) -> np.ndarray:
        """R^{-1}, computed once (a p x p inverse; it maps the rotated basis back to X's)."""
        inverse = np.linalg.inv(self.r_factor)
        inverse.setflags(write=False)
        return inverse

    @property
    def n_groups(self) -> int:
        """The number of clusters J."""
        return int(self.counts.shape[0])

    @property
    def n_params(self) -> int:
        """The number of fixed effects p."""
        return int(self.r_factor.shape[0])

    @property
    def sum_x(self) -> np.ndarray:
        """Per-cluster sums of the rows of X (shape (J, p))."""
        return self.sum_q @ self.r_factor

    @property
    def sum_y(self) -> np.ndarray:
        """Per-cluster sums of the response (shape (J,))."""
        return self.sum_e + self.sum_x @ self.beta_ols


def _grouped_sums(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    if values.ndim == 1:
        return np.bincount(codes, weights=values, minlength=n_groups)
    return np.column_stack(
        [
            np.bincount(codes, weights=values[:, k], minlength=n_groups)
            for k in range(values.shape[1])
        ]
    ).reshape(n_groups, values.shape[1])


def _qr(
    X: np.ndarray, term_names: Sequence[str], n_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Thin QR of X, with a rank check that names aliased terms (``n_rows``: the rows X stands for)."""
    n, p = X.shape
    n = n if n_rows is None else n_rows
    if p == 0:
        raise DataError("The formula has no fixed effects; keep at least an intercept ('y ~ 1').")
    check_enough_rows(n, p)
    q, r = np.linalg.qr(X, mode="reduced")
    # R with a positive diagonal (Q's columns flipped to match): X = QR is then unique, so every path
    # (rows, cells, sums from an engine, whose R is the Cholesky factor of X'X) gives the same R and the
    # same rotated sums, whatever signs LAPACK's reflections happened to leave
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    r *= signs[:, None]
    q *= signs
    norms = np.linalg.norm(r, axis=0)  # X's column norms (Q is orthonormal): no pass over X
    tol = max(X.shape[0], p) * np.finfo(float).eps * 10
    relative = np.abs(np.diag(r)) / np.where(norms > 0, norms, 1.0)
    if (norms == 0).any() or (relative < tol).any():
        # as R's lm: keep the columns in order, and call a column aliased when it adds nothing to the
        # columns kept before it (so the later of two collinear terms is named); only paid for here
        scaled = X / np.where(norms > 0, norms, 1.0)
        kept_idx, aliased_idx = [], []
        for k in range(p):
            if norms[k] > 0:
                r_k = np.linalg.qr(scaled[:, kept_idx + [k]], mode="r")
                if abs(r_k[-1, -1]) >= tol:
                    kept_idx.append(k)
                    continue
            aliased_idx.append(k)
        if not aliased_idx:  # the in-place check was marginal; the ordered one passes
            return q, r
        aliased = [term_names[i] for i in aliased_idx]
        kept = [term_names[i] for i in kept_idx]
        raise DataError(
            "The fixed effects are rank deficient: "
            + ", ".join(repr(a) for a in aliased)
            + (" is" if len(aliased) == 1 else " are")
            + " a linear combination of "
            + (", ".join(repr(k) for k in kept) if kept else "nothing (all zero)")
            + ". Remove the aliased term(s) or combine the levels that never occur."
        )
    return q, r


def sufficient_stats(
    X: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    term_names: Sequence[str] | None = None,
) -> SufficientStats:
    """Compute :class:`SufficientStats` from row-level arrays.

    Parameters
    ----------
    X : ndarray, shape (N, p)
        The fixed-effects model matrix.
    y : ndarray, shape (N,)
        The response.
    codes : ndarray of int, shape (N,)
        The cluster of each row, coded 0 .. J - 1.
    n_groups : int
        J.
    term_names : list of str, optional
        Column names, used in the rank-deficiency message.

    Returns
    -------
    SufficientStats

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), [0.0, 1.0, 0.0, 1.0]])
    >>> stats = sufficient_stats(X, np.array([1.0, 2.0, 3.0, 5.0]), np.array([0, 0, 1, 1]), 2)
    >>> stats.counts.tolist(), np.round(stats.sum_y, 12).tolist()
    ([2, 2], [3.0, 8.0])
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    names = list(term_names) if term_names is not None else [f"x{k}" for k in range(X.shape[1])]
    with single_blas_thread():
        q, r = _qr(X, names)
        # column-major: every per-column pass below reads contiguous memory
        q = np.asfortranarray(q)
        qty = q.T @ y
        e = y - q @ qty
        correction = q.T @ e  # one step of re-orthogonalisation for offsets such as y + 1e6
        e -= q @ correction
        beta_ols = scipy.linalg.solve_triangular(r, qty + correction)
        counts = np.bincount(codes, minlength=n_groups)
        inv_n = 1.0 / np.maximum(counts, 1)
        p = q.shape[1]
        sum_e = np.bincount(codes, weights=e, minlength=n_groups)
        e_within = e - (sum_e * inv_n)[codes]
        sum_q = np.empty((n_groups, p))
        q_within = np.empty_like(q)
        for k in range(p):
            sum_q[:, k] = np.bincount(codes, weights=q[:, k], minlength=n_groups)
            q_within[:, k] = q[:, k] - (sum_q[:, k] * inv_n)[codes]
        return SufficientStats(
            counts=counts.astype(np.int64),
            sum_q=sum_q,
            sum_e=sum_e,
            ete=float(e @ e),
            r_factor=r,
            beta_ols=beta_ols,
            within_qq=q_within.T @ q_within,
            within_qe=q_within.T @ e_within,
            within_ee=float(e_within @ e_within),
        )


def cell_sufficient_stats(
    cell_rows: np.ndarray,
    cell_id: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    term_names: Sequence[str],
) -> SufficientStats:
    """:class:`SufficientStats` when X has only a few distinct rows (every predictor categorical).

    All rows of one cluster-by-cell combination share their row of X, so the statistics follow from the
    count, the mean of y and the within-combination sum of squares of each combination: one pass of
    grouped sums over the rows (plus one for the squares, taken about each combination's mean so nothing
    cancels), then arithmetic on at most J x C numbers. This is sufficiency at work, and it gives the same
    numbers as :func:`sufficient_stats`.

    Parameters
    ----------
    cell_rows : ndarray, shape (C, p)
        The distinct rows of X.
    cell_id : ndarray of int, shape (N,)
        Which distinct row each data row has.
    y : ndarray, shape (N,)
    codes : ndarray of int, shape (N,)
        The cluster of each row.
    n_groups : int
    term_names : list of str

    Returns
    -------
    SufficientStats

    Examples
    --------
    >>> cells = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> cell_id = np.array([0, 1, 0, 1, 1])
    >>> y, codes = np.array([1.0, 2.0, 3.0, 5.0, 4.0]), np.array([0, 0, 1, 1, 1])
    >>> a = cell_sufficient_stats(cells, cell_id, y, codes, 2, ["Intercept", "arm"])
    >>> b = sufficient_stats(cells[cell_id], y, codes, 2)
    >>> bool(np.isclose(a.ete, b.ete) and np.allclose(a.beta_ols, b.beta_ols))
    True
    """
    n_cells = cell_rows.shape[0]
    key = np.asarray(codes, dtype=np.int64) * n_cells + cell_id
    count, mean, squares, shift = _cell_pass(lambda rows: key[rows], y, n_groups * n_cells)
    used = np.flatnonzero(count)
    group, cell = used // n_cells, used % n_cells
    stats, _ = _cell_stats(
        cell_rows, cell, group, count[used], mean[used], squares[used], n_groups, term_names, shift
    )
    return stats


#: Rows per chunk of the grouped pass: its temporaries stay a few MiB, whatever the number of rows.
_CHUNK = 1 << 17


def _cell_pass(
    key_of: Callable[[slice], np.ndarray], y: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Count, mean of y and sum of squares about that mean per key, in chunks of rows.

    Returns ``(count, mean - shift, squares, shift)``: the means are kept relative to the shift c, so
    that they keep their digits whatever the offset of y (:func:`_cell_stats` takes them so).

    ``key_of(rows)`` gives the key (0 .. size - 1) of the rows of the slice ``rows``. One pass sums, per
    key, the rows and the first and second powers of y - c, with c the mean of the first rows (which
    removes any common offset of y); the squares about each key's mean are then
    sum (y - c)^2 - n (mean - c)^2. That difference keeps its accuracy as long as the keys' means are
    not far apart compared with the spread within them; where the sum of (y - c)^2 exceeds
    ``_ONE_PASS_MARGIN`` times the sum of the squares, a second pass takes the squares about each key's
    mean directly, so nothing cancels, and refines the means. Chunks of cache-sized slices are faster
    than whole-array passes and keep the temporaries to a few MiB whatever the number of rows.
    """
    n = len(y)
    chunks = [slice(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)] or [
        slice(0, 0)
    ]
    shift = float(np.mean(y[: min(n, 4096)])) if n else 0.0
    count = np.zeros(size, dtype=np.int64)
    total = np.zeros(size)
    raw = np.zeros(size)
    for rows in chunks:
        key = key_of(rows)
        deviation = y[rows] - shift
        count += np.bincount(key, minlength=size)
        total += np.bincount(key, weights=deviation, minlength=size)
        deviation *= deviation
        raw += np.bincount(key, weights=deviation, minlength=size)
    offset = total / np.maximum(count, 1)  # each key's mean minus the shift
    squares = np.maximum(raw - total * offset, 0.0)
    if raw.sum() <= _ONE_PASS_MARGIN * squares.sum():
        return count, offset, squares, shift
    squares = np.zeros(size)
    residual = np.zeros(size)
    for rows in chunks:
        key = key_of(rows)
        deviation = y[rows] - shift
        deviation -= np.take(offset, key)
        residual += np.bincount(key, weights=deviation, minlength=size)
        deviation *= deviation
        squares += np.bincount(key, weights=deviation, minlength=size)
    # the means refined by what the rows still differ from them by (as a two-pass mean is)
    correction = residual / np.maximum(count, 1)
    squares = np.maximum(squares - residual * correction, 0.0)
    return count, offset + correction, squares, shift


#: The one-pass squares of :func:`_cell_pass` lose about log10 of this many digits to cancellation at
#: most (the second-pass squares are taken beyond it).
_ONE_PASS_MARGIN = 16.0


def _cell_stats(
    cell_rows: np.ndarray,
    cell: np.ndarray,
    group: np.ndarray,
    count: np.ndarray,
    ybar: np.ndarray,
    within_ss: np.ndarray,
    n_groups: int,
    term_names: Sequence[str],
    shift: float = 0.0,
) -> tuple[SufficientStats, np.ndarray]:
    """:class:`SufficientStats` from the cluster x cell combinations that occur: each one's cell (a row
    of ``cell_rows``, the distinct rows of X), cluster, count, mean of y minus ``shift`` and sum of
    squares about that mean (arithmetic on at most J x C numbers).

    R and beta_ols depend on the rows only through each cell's total count and sum of y, so the QR is of
    the C cells (weighted by the square roots of their counts), not of the combinations. When the
    constant is in the column space of X (an intercept, or a factor's full coding), the residuals of
    y - shift are those of y and beta_ols moves by shift times the constant's coefficients; the means
    then never carry the offset, and keep their digits. Otherwise the shift is added back first.

    Also returns each combination's mean OLS residual (the random-slope blocks are sums of it)."""
    p = cell_rows.shape[1]
    n = count.astype(float)
    n_cell = np.bincount(cell, weights=n, minlength=cell_rows.shape[0])
    ybar_cell = np.bincount(cell, weights=n * ybar, minlength=cell_rows.shape[0]) / np.maximum(
        n_cell, 1.0
    )
    root = np.sqrt(n_cell)
    weighted = root[:, None] * cell_rows
    n_cells = len(weighted)
    if n_cells < p:  # fewer cells than terms (then aliased): rows of zeros make R square
        weighted = np.vstack([weighted, np.zeros((p - n_cells, p))])
    q_weighted, r = _qr(weighted, list(term_names), n_rows=int(n.sum()))
    q_weighted = q_weighted[:n_cells]

    def ols(values: np.ndarray) -> np.ndarray:
        """OLS coefficients of per-cell means, re-orthogonalised as for rows."""
        gamma = q_weighted.T @ (root * values)
        gamma += q_weighted.T @ (root * values - q_weighted @ gamma)
        return scipy.linalg.solve_triangular(r, gamma)

    beta_one = None
    if shift != 0.0:
        beta_one = ols(np.ones(n_cells))
        if np.abs(root - root * (cell_rows @ beta_one)).max() > 1e-9 * np.sqrt(n_cell.sum()):
            ybar, ybar_cell, beta_one = ybar + shift, ybar_cell + shift, None  # not in X's span
    beta_ols = ols(ybar_cell)
    # each cell's row of Q = X R^{-1} (cells without rows have none: their weight is 0); below, the
    # combinations' values are kept as p x K rows, so that each pass reads contiguous memory
    q_cell = q_weighted / np.where(root > 0, root, 1.0)[:, None]
    q_t = np.take(q_cell.T, cell, axis=1)  # (p, K)
    ebar = ybar - np.take(cell_rows @ beta_ols, cell)
    counts = np.bincount(group, weights=n, minlength=n_groups)
    inv_counts = 1.0 / counts
    nq_t = q_t * n
    sum_q_t = np.stack([np.bincount(group, weights=row, minlength=n_groups) for row in nq_t])
    sum_e = np.bincount(group, weights=n * ebar, minlength=n_groups)
    dq_t = q_t - np.take(sum_q_t * inv_counts, group, axis=1)
    de = ebar - np.take(sum_e * inv_counts, group)
    ndq_t = dq_t * n
    within_ss = float(within_ss.sum())
    if beta_one is not None:
        beta_ols = beta_ols + shift * beta_one
    stats = SufficientStats(
        counts=counts.astype(np.int64),
        sum_q=sum_q_t.T.reshape(n_groups, p),
        sum_e=sum_e,
        ete=within_ss + float(n @ (ebar * ebar)),
        r_factor=r,
        beta_ols=beta_ols,
        within_qq=ndq_t @ dq_t.T,
        within_qe=ndq_t @ de,
        within_ee=within_ss + float(n @ (de * de)),
    )
    return stats, ebar


def _cells(values: dict, n_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each row's combination of factor levels ("cell"), and one row of each cell.

    Returns None when a variable is numeric, or when there are too many combinations for the shortcut
    to pay.
    """
    if any(not isinstance(v, Factor) for v in values.values()):
        return None
    sizes = [len(v.levels) for v in values.values()]
    total = int(np.prod(sizes)) if sizes else 1
    if total > 100_000:
        return None
    combined = np.zeros(n_rows, dtype=np.int64)
    for value, size in zip(values.values(), sizes, strict=True):
        combined = combined * size + value.codes
    present, first = np.unique(combined, return_index=True)
    if len(present) * 2 > n_rows:
        return None
    return np.searchsorted(present, combined), first


def stats_from_cross_products(
    counts: ArrayLike,
    sum_x: ArrayLike,
    sum_y: ArrayLike,
    xtx: ArrayLike,
    xty: ArrayLike,
    yty: float,
    term_names: Sequence[str] | None = None,
) -> SufficientStats:
    """Build :class:`SufficientStats` from aggregates, without rows.

    This is the entry point for data too large to load: a database computes the cluster counts, the
    per-cluster sums of X and y, and the global cross-products X'X, X'y and y'y.

    Parameters
    ----------
    counts : array_like, shape (J,)
    sum_x : array_like, shape (J, p)
    sum_y : array_like, shape (J,)
    xtx : array_like, shape (p, p)
    xty : array_like, shape (p,)
    yty : float

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), [0.0, 1.0, 0.0, 1.0]])
    >>> y = np.array([1.0, 2.0, 3.0, 5.0])
    >>> codes = np.array([0, 0, 1, 1])
    >>> a = sufficient_stats(X, y, codes, 2)
    >>> b = stats_from_cross_products([2, 2], [[2, 1], [2, 1]], [3, 8], X.T @ X, X.T @ y, y @ y)
    >>> bool(np.allclose(a.beta_ols, b.beta_ols) and np.isclose(a.ete, b.ete))
    True
    """
    raw_counts = np.asarray(counts, dtype=float)
    if (
        raw_counts.ndim != 1
        or not np.all(raw_counts == np.round(raw_counts))
        or (raw_counts < 1).any()
    ):
        raise DataError("Cluster counts must be whole numbers of at least 1, one per cluster.")
    counts = raw_counts.astype(np.int64)
    sum_x = np.asarray(sum_x, dtype=float)
    sum_y = np.asarray(sum_y, dtype=float)
    xtx = np.asarray(xtx, dtype=float)
    xty = np.asarray(xty, dtype=float)
    p = xtx.shape[0]
    try:
        chol = scipy.linalg.cholesky(xtx, lower=False)
    except np.linalg.LinAlgError:
        names = list(term_names) if term_names is not None else [f"x{k}" for k in range(p)]
        raise DataError(
            "The fixed effects are rank deficient (X'X is singular); check the terms "
            + ", ".join(repr(n) for n in names)
            + " for a column that is constant or a combination of others."
        ) from None
    # X = Q R with R = chol(X'X); sums of Q are R^{-T} applied to sums of X.
    beta_ols = scipy.linalg.cho_solve((chol, False), xty)
    ete = float(yty - xty @ beta_ols)
    # np.linalg.solve, not scipy's triangular solve: on a matrix right-hand side OpenBLAS hands the
    # latter to a second thread that then spins for ~0.1 s, doubling the CPU cost of small fits
    sum_q = np.linalg.solve(chol.T, sum_x.T).T.reshape(counts.shape[0], p)
    sum_e = sum_y - sum_x @ beta_ols
    inv_n = 1.0 / np.maximum(counts, 1)
    # Q'Q = I and Q'e = 0, so the within cross-products follow from the sums (rows are not at hand here)
    return SufficientStats(
        counts=counts,
        sum_q=sum_q,
        sum_e=sum_e,
        ete=max(ete, 0.0),
        r_factor=chol,
        beta_ols=beta_ols,
        within_qq=np.eye(p) - (sum_q * inv_n[:, None]).T @ sum_q,
        within_qe=-(sum_q.T @ (inv_n * sum_e)),
        within_ee=max(ete - float(inv_n @ (sum_e * sum_e)), 0.0),
    )


#: How messages name the engines that compute sums where the data live (other Ibis backends by name).
ENGINE_NAMES = {"rows": "pandas", "duckdb": "DuckDB", "spark": "Spark", "pyspark": "Spark"}


class RowsUnavailable(ValueError):
    """Row-level data were asked of a design whose sums were computed where the data live (by DuckDB,
    Spark or another engine): no rows were loaded."""


class Rows:
    """The row-level arrays of a design whose rows were in memory.

    Attributes
    ----------
    X : ndarray, shape (N, p)
        The fixed-effects model matrix.
    y : ndarray, shape (N,)
        The response (minus any offsets).
    group_codes : ndarray of int, shape (N,), or None
        The cluster of each row, 0 .. J - 1 (None without a grouping column).
    cell_rows, cell_id : ndarray (C, p) and ndarray of int (N,), or None
        When every predictor is categorical: the C distinct rows of X and which one each row has
        (``X`` is ``cell_rows[cell_id]``). None otherwise.

    When every predictor is categorical, :func:`build_design` keeps only the response and the factors'
    and the cluster's codes in their small integer types; ``X``, ``group_codes`` and ``cell_id`` are
    built from them the first time they are asked for (and kept). The fit itself never asks: it needs
    only the sufficient statistics.
    """

    def __init__(
        self, X: np.ndarray | None, y: np.ndarray, group_codes: np.ndarray | None = None
    ) -> None:
        self._X = X
        self.y = y
        self._group_codes = group_codes
        self._cells: _CellCodes | None = None

    @classmethod
    def _from_cells(cls, y: np.ndarray, cells: _CellCodes) -> Rows:
        rows = cls(None, y, None)
        rows._cells = cells
        return rows

    @property
    def X(self) -> np.ndarray:  # noqa: N802 (the model matrix is X everywhere)
        if self._X is None:
            self._X = np.take(self._cells.cell_rows, self.cell_id, axis=0)
        return self._X

    @property
    def group_codes(self) -> np.ndarray | None:
        if self._group_codes is None and self._cells is not None:
            self._group_codes = self._cells.group_codes()
        return self._group_codes

    @property
    def cell_rows(self) -> np.ndarray | None:
        return None if self._cells is None else self._cells.cell_rows

    @property
    def cell_id(self) -> np.ndarray | None:
        return None if self._cells is None else self._cells.cell_id()

    def __repr__(self) -> str:
        return f"Rows(n={len(self.y)}, built={'X' if self._X is not None else 'codes only'})"


@dataclass(eq=False)
class _CellCodes:
    """How to rebuild each row's cell and cluster from the codes a categorical design keeps.

    ``factor_codes`` are the factors' codes on the rows used (small integer types, as the data had
    them), ``radices`` their numbers of categories; a row's combination is their mixed-radix number,
    and ``cell_of[combination]`` its cell (a row of ``cell_rows``). ``raw_group`` are the cluster codes
    and ``group_of`` maps them to 0 .. J - 1 (unused categories dropped).
    """

    cell_rows: np.ndarray
    factor_codes: list
    radices: list
    cell_of: np.ndarray
    raw_group: np.ndarray
    group_of: np.ndarray
    y_owner: pd.Series | None = (
        None  # the Series y views (held so that pandas copies before a change)
    )
    _cell_id: np.ndarray | None = None

    def combination(self, rows: slice = slice(None), *, with_group: bool = False) -> np.ndarray:
        """Each row's combination of the factors' codes as a mixed-radix number; ``with_group``
        puts the cluster's code first (the key of the grouped pass: cluster x combination)."""
        if with_group:
            out = self.raw_group[rows].astype(np.intp)
        else:
            out = np.zeros(len(self.raw_group[rows]), dtype=np.intp)
        for codes, size in zip(self.factor_codes, self.radices, strict=True):
            out *= size
            out += codes[rows]
        return out

    def cell_id(self) -> np.ndarray:
        if self._cell_id is None:
            self._cell_id = np.take(self.cell_of, self.combination())
        return self._cell_id

    def group_codes(self) -> np.ndarray:
        return np.take(self.group_of, self.raw_group)


@dataclass(frozen=True, eq=False)
class Design:
    """A checked model: its terms, levels, counts and dropped rows, and its sufficient statistics.

    One class for both front ends. :func:`build_design` makes it from rows in memory and keeps the
    row-level arrays (``rows``: ``X``, ``y`` and ``group_codes``). :func:`helpers.large.design_from_file`
    makes it from a file whose rows DuckDB reduced to sums without loading them: then ``rows`` is None,
    and asking for ``X``, ``y`` or ``group_codes`` raises :class:`RowsUnavailable`, saying so. Every fit,
    decomposition and figure needs only ``stats``; residuals, fitted values, cluster-robust standard
    errors and the quasi-demeaned refit need the rows.

    Attributes
    ----------
    term_names : list of str
        Fixed-effect names in the package's convention (``Intercept``, ``condition[T.stim]``,
        ``scale(age)``; :func:`helpers.formula.r_term_name` gives R's names).
    response : str
    formula : str
        The formula as given.
    group : str or None
    group_labels : pandas.Index or None
        The cluster labels, in code order.
    stats : SufficientStats or None
        The per-cluster sufficient statistics (None without a grouping column); read-only.
    n_dropped : int
        Rows dropped for missing values.
    dropped_by_column : dict
        Missing values per model column, among the dropped rows.
    model_spec : helpers.formula.ModelSpec or None
        The parsed formula with the levels and transform coefficients learned from the data, to build
        the same columns for new data.
    reference_levels : dict
        Each factor coded by treatment contrasts -> its reference (first) level, as R prints it
        (``{"condition": "unstim"}``). Levels are sorted as R sorts them in the C locale.
    levels : dict
        Each categorical variable -> its levels in model order (the first is the reference).
    rows : Rows or None
        The row-level arrays; None when the sums came from a file.
    path : str or None
        The file the sums came from (None for rows in memory, or for a table that lives elsewhere).
    random : helpers.random_terms.RandomEffects or None
        Random slopes or several random terms (``(1 + x | g)``, ``(x || g)``, ...): Z, theta's
        structure and the per-cluster blocks Z_i'Z_i, Z_i'X_i, Z_i'y_i. None for one random
        intercept, which ``stats`` describes completely.
    engine : str or None
        What computed the sums of a design without rows: ``"duckdb"``, ``"spark"``, or the name of
        another Ibis backend (None with rows, and read as ``"duckdb"`` for a design made before this
        field existed).
    """

    term_names: list[str]
    response: str
    formula: str
    group: str | None
    group_labels: pd.Index | None
    stats: SufficientStats | None
    n_dropped: int = 0
    dropped_by_column: dict[str, int] = field(default_factory=dict)
    model_spec: ModelSpec | None = None
    reference_levels: dict[str, object] = field(default_factory=dict)
    levels: dict[str, list] = field(default_factory=dict)
    rows: Rows | None = None
    path: str | None = None
    random: object = None  # helpers.random_terms.RandomEffects
    engine: str | None = None

    def _rows(self, what: str) -> Rows:
        if self.rows is None:
            where = repr(Path(self.path).name) if self.path else "a table"
            raise RowsUnavailable(
                f"This design has no {what}: its sums were computed from {where} by "
                f"{ENGINE_NAMES.get(self.source, self.source)} without loading the rows. Build it "
                "from the rows (read the data with pandas and call build_design, or run the report "
                "with --engine pandas) for row-level results."
            )
        return self.rows

    @property
    def has_rows(self) -> bool:
        """Whether the row-level arrays are at hand (False when the sums came from a file)."""
        return self.rows is not None

    @property
    def source(self) -> str:
        """Where the sums came from: ``"rows"`` (rows in memory), or the engine that computed them
        where the data live (``"duckdb"``, ``"spark"``, or another Ibis backend's name)."""
        if self.rows is not None:
            return "rows"
        return self.engine or "duckdb"

    @property
    def X(self) -> np.ndarray:  # noqa: N802 (the model matrix is X everywhere in the notebooks)
        """The fixed-effects model matrix (N, p); :class:`RowsUnavailable` without rows."""
        return self._rows("model matrix X").X

    @property
    def y(self) -> np.ndarray:
        """The response (N,); :class:`RowsUnavailable` without rows."""
        return self._rows("response vector y").y

    @property
    def group_codes(self) -> np.ndarray | None:
        """The cluster of each row, 0 .. J - 1; :class:`RowsUnavailable` without rows."""
        return self._rows("row-level cluster codes").group_codes

    @property
    def n_obs(self) -> int:
        """Rows used by the fit (complete rows)."""
        if self.rows is not None:
            return int(self.rows.y.shape[0])
        return self.stats.n_obs

    @property
    def n_rows(self) -> int:
        """Rows before the drop of rows with missing values."""
        return self.n_obs + int(self.n_dropped)

    @property
    def n_groups(self) -> int:
        """Clusters (0 without a grouping column)."""
        return 0 if self.group_labels is None else len(self.group_labels)


def model_columns(
    formula: str,
    group: str | None = None,
    *,
    predictors_only: bool = False,
    random_slopes: bool = False,
) -> list[str]:
    """The data columns a model formula uses: response, predictors and grouping column.

    Parameters
    ----------
    formula : str
        As :func:`build_design` takes it.
    group : str, optional
    predictors_only : bool, default False
        Only the fixed-effect predictors (no response, no offsets, no grouping column).
    random_slopes : bool, default False
        Accept random slopes (:func:`helpers.formula.parse_formula`) and include their columns.

    Returns
    -------
    list of str
        Sorted; the columns inside transforms are found (``scale(age)`` uses ``age``), and the
        transforms themselves are not columns.

    Raises
    ------
    DataError
        For anything the formula parser refuses, or a predictor column named ``Intercept`` (it would
        silently replace the intercept's own column).

    Examples
    --------
    >>> model_columns("log(y) ~ C(arm) + scale(age) + `dose.mg` + (1 | site)")
    ['age', 'arm', 'dose.mg', 'site', 'y']
    >>> model_columns("y ~ arm + (1 | site)", predictors_only=True)
    ['arm']
    """
    parsed = parse_formula(formula, group, random_slopes=random_slopes)
    return _columns_of(parsed, predictors_only=predictors_only, random_slopes=random_slopes)


def _columns_of(
    parsed: ParsedFormula, *, predictors_only: bool = False, random_slopes: bool = False
) -> list[str]:
    """:func:`model_columns` of a formula already parsed."""
    model = parsed.model
    predictors = {c for var in model.predictors for c in var.columns}
    if "Intercept" in predictors:
        raise DataError(
            "A column named 'Intercept' clashes with the name the model gives its intercept (the "
            "column would silently replace it); rename the column."
        )
    required = set(predictors) if predictors_only else set(model.columns)
    if parsed.group is not None and not predictors_only:
        required.add(parsed.group)
    if random_slopes and not predictors_only:  # the random slopes' columns (helpers.random_terms)
        from .random_terms import bar_columns

        required.update(bar_columns(model))
    return sorted(required, key=str)


def _drop_unused(values: pd.Series) -> pd.Series:
    """Drop categories without rows (as R's droplevels), without sorting when none are unused."""
    codes = values.cat.codes.to_numpy()
    used = np.bincount(codes[codes >= 0], minlength=len(values.cat.categories)) > 0
    if used.all():
        return values
    return values.cat.remove_unused_categories()


def _encode_groups(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = _drop_unused(values)
        return values.cat.codes.to_numpy().astype(np.int64), pd.Index(values.cat.categories)
    codes, labels = pd.factorize(values, sort=True)
    return codes.astype(np.int64), pd.Index(labels)


def build_design(
    data: pd.DataFrame,
    formula: str,
    group: str | None = None,
    *,
    method: str = "auto",
    path: str | None = None,
    random_slopes: bool = False,
) -> Design:
    """Turn a DataFrame and a formula into model matrices and sufficient statistics.

    Parameters
    ----------
    data : pandas.DataFrame
    formula : str
        A fixed-effects formula, optionally with one ``(1 | group)`` term.
    group : str, optional
        The grouping column, when the formula has no ``(1 | group)`` term. Without either, the design has
        no clusters (as pooled OLS needs).
    method : {"auto", "rows", "cells"}, default "auto"
        How the sufficient statistics are summed. When every predictor is categorical, X has only a few
        distinct rows ("cells"), and the statistics follow from one pass of counts, sums and squares per
        cluster and cell; "auto" takes that path whenever it applies. The pass runs on the factors' and
        the cluster's own codes (a mixed-radix number, in cache-sized chunks), the levels and clusters
        that occur are read from its counts, and the design keeps those codes instead of X (``X``,
        ``group_codes`` and ``rows.cell_id`` are built when first asked for), so it holds less memory
        than the data. "rows" forces the general row-level path (:func:`sufficient_stats`); both give
        the same numbers.
    path : str, optional
        The former name of ``method`` (deprecated: elsewhere ``path`` means a file).

    random_slopes : bool, default False
        Accept any random-effects terms of one grouping factor (``(1 + x | g)``, ``(x || g)``,
        ``(1 | g) + (0 + x | g)``, ...): the design then also carries ``random``
        (:func:`helpers.random_terms.build_random_effects`). Without it such terms are refused.

    Returns
    -------
    Design

    Notes
    -----
    Rows with a missing value in any model column are dropped, as R's ``na.omit`` does, with a
    :class:`RowsDroppedWarning` that says how many. Unused categories are dropped, so a cluster that loses
    all its rows disappears. String columns take their levels in sorted order (R's default in the C
    locale); categorical columns keep their category order, so the first category is the reference level.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 5.0], "arm": ["b", "a", "b", "a"], "g": [1, 1, 2, 2]})
    >>> d = build_design(df, "y ~ arm + (1 | g)")
    >>> d.term_names, d.group, d.stats.counts.tolist()
    (['Intercept', 'arm[T.b]'], 'g', [2, 2])
    """
    if path is not None:
        warnings.warn(
            "build_design(path=...) is renamed method=...", DeprecationWarning, stacklevel=2
        )
        method = path
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"Expected the data as a pandas DataFrame, got {type(data).__name__}; "
            "convert it with pandas.DataFrame(...) first."
        )
    parsed = parse_formula(formula, group, random_slopes=random_slopes)
    model = parsed.model
    columns = _columns_of(parsed, random_slopes=random_slopes)
    plain_response = parsed.response if isinstance(model.response.node, Name) else None
    missing = check_columns(
        data, columns, response=plain_response, group=parsed.group, check_infinite=False
    )

    frame = data  # read by column name only (a data[columns] copy cost a millisecond: arrow-string index)
    # column by column, so that one column's mask is alive at a time (every missing value drops its row)
    keep = np.ones(len(frame), dtype=bool)
    dropped_by_column = {}
    for column in columns:
        n_missing = missing[column]
        if n_missing:
            keep &= ~frame[column].isna().to_numpy()
            dropped_by_column[column] = n_missing
    n_dropped = len(keep) - int(np.count_nonzero(keep))
    drop_missing(len(frame), dropped_by_column, n_dropped, columns, stacklevel=3)
    complete = frame[columns].loc[keep] if n_dropped else frame
    # after the drop, as R does: an infinite value in a dropped row is no error
    check_finite(complete, columns)

    # the variables are computed on every row before the drop, as R's model.frame computes them (so
    # scale() and poly() see the same rows as in R); the levels then come from the rows kept
    spec = ModelSpec(model)
    scan = None
    if method != "rows" and parsed.group is not None:
        scan = _scan_cells(spec, frame, keep, n_dropped, parsed.group)
    if scan is None:
        values = spec.learn(spec.values(frame), keep)
        if n_dropped:
            values = {k: _subset(v, keep) for k, v in values.items()}
        y = spec.response(frame)[keep]
    else:  # the levels were learned from the cells that occur, which the scan found
        values, y = scan.values, scan.y
    if not np.isfinite(y).all():
        raise DataError(
            f"The response {parsed.response!r} has infinite or undefined values after transformation "
            "(for example log of 0); remove those rows or change the transformation."
        )
    for label, value in values.items():
        if not isinstance(value, Factor) and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).reshape(len(value), -1).any(axis=1).sum())
            raise DataError(
                f"The predictor {label!r} is infinite or undefined in {bad} of the {len(y)} rows used "
                "(for example log of 0 or of a negative number); change the transformation or remove "
                "those rows."
            )
    term_names = list(spec.column_names)
    if not term_names:
        raise DataError(
            f"The formula {formula!r} has no fixed effects (no intercept and no predictors); add 1 or a "
            "predictor."
        )
    cells = cell_rows = X = None
    if scan is not None:
        # the distinct rows of X, one per cell; X itself is built only when asked for (Rows)
        cell_rows = scan.codes.cell_rows = spec.matrix(values, scan.n_cells)
        if scan.n_cells * 2 > len(y):  # too many cells for the shortcut: the row path, as before
            X = np.take(cell_rows, scan.codes.cell_id(), axis=0)
    elif method != "rows" and parsed.group is not None:
        cells = _cells(values, len(y))
    if method == "cells" and cells is None and (scan is None or X is not None):
        raise ValueError("method='cells' needs only categorical predictors")
    if scan is None and cells is None:
        X = spec.matrix(values, len(y))
    elif scan is None:
        # every row of X is one of a few distinct rows: build those, then index them
        cell_rows = spec.matrix({k: _subset(v, cells[1]) for k, v in values.items()}, len(cells[1]))
        X = np.take(cell_rows, cells[0], axis=0)
    if not np.isfinite(X if X is not None else cell_rows).all():
        raise DataError(
            "The model matrix has infinite values (a product of very large predictors); rescale them."
        )

    codes = labels = stats = None
    if parsed.group is None:
        with single_blas_thread():
            _qr(X, term_names)  # rank check only
    elif scan is not None:
        labels = scan.labels
        check_groups(parsed.group, len(labels), len(y))
        if X is not None:
            codes = scan.codes.group_codes()
            stats = sufficient_stats(X, y, codes, len(labels), term_names)
        else:
            with single_blas_thread():
                stats = scan.stats(cell_rows, term_names)
    else:
        codes, labels = _encode_groups(complete[parsed.group])
        check_groups(parsed.group, len(labels), len(y))
        if cells is None:
            stats = sufficient_stats(X, y, codes, len(labels), term_names)
        else:
            stats = cell_sufficient_stats(cell_rows, cells[0], y, codes, len(labels), term_names)
    if scan is not None and X is None:
        rows = Rows._from_cells(y, scan.codes)
    else:
        rows = Rows(X, y, codes)
    random = None
    if random_slopes and parsed.group is not None:  # slopes, '||', several terms (random_terms)
        from .random_terms import (
            build_random_effects,
            needs_random_terms,
            random_effects_from_cells,
        )

        if needs_random_terms(model.bars):
            if scan is not None and X is None:  # Z's columns from the cells, when they are factors
                random = random_effects_from_cells(
                    model, scan.raw_values, cell_rows, scan, stats, parsed.group, rows
                )
            if random is None:
                random = build_random_effects(
                    model, frame[columns], keep, rows.X, y, rows.group_codes, stats, parsed.group
                )
    return Design(
        term_names=term_names,
        response=parsed.response,
        formula=formula,
        group=parsed.group,
        group_labels=labels,
        stats=stats,
        n_dropped=n_dropped,
        dropped_by_column=dropped_by_column,
        model_spec=spec,
        reference_levels=dict(spec.reference_levels),
        random=random,
        levels=spec_levels(spec),
        rows=rows,
    )


#: At most this many combinations of factor levels for the cell path (beyond, X is built row by row).
_MAX_COMBINATIONS = 100_000


@dataclass(eq=False)
class _Scan:
    """What :func:`_scan_cells` found: the cells' values (levels learned), the response, the clusters
    and, per cluster x cell combination that occurs, its cluster, cell, count, mean of y minus
    ``shift`` and squares about that mean."""

    values: dict
    raw_values: dict  # the cells' factors over all their categories, before levels are learned
    y: np.ndarray
    labels: pd.Index
    codes: _CellCodes
    n_cells: int
    group: np.ndarray
    cell: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    squares: np.ndarray
    shift: float = 0.0
    residual: np.ndarray | None = None

    def stats(self, cell_rows: np.ndarray, term_names: Sequence[str]) -> SufficientStats:
        """The statistics; each combination's mean OLS residual is kept as ``residual``."""
        stats, self.residual = _cell_stats(
            cell_rows,
            self.cell,
            self.group,
            self.count,
            self.mean,
            self.squares,
            len(self.labels),
            term_names,
            self.shift,
        )
        return stats


def _small_codes(codes: np.ndarray, n_levels: int, keep: np.ndarray | None) -> np.ndarray:
    """A copy of ``codes`` (of the rows kept) in the smallest signed integer type that holds them."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_levels < np.iinfo(dtype).max:
            break
    else:
        dtype = np.int64
    return (codes if keep is None else codes[keep]).astype(dtype)


def _raw_factors(spec: ModelSpec, frame: pd.DataFrame) -> dict | None:
    """Each predictor as a :class:`Factor` over all its categories (a categorical column's own codes,
    not copied), or None when one is numeric."""
    out = {}
    for var in spec.formula.predictors:
        if isinstance(var.node, Name):
            column = spec._column(frame, var.node.id)
            if isinstance(column.dtype, pd.CategoricalDtype) and var.label not in spec.levels:
                levels = list(column.cat.categories)
                names = [level_name(v) for v in levels]
                codes = column.cat.codes.to_numpy()
                out[var.label] = Factor(codes, levels, names, bool(column.dtype.ordered))
                continue
        factor = spec._factor(var, frame)
        if factor is None:
            return None
        out[var.label] = factor
    return out


def _scan_cells(
    spec: ModelSpec, frame: pd.DataFrame, keep: np.ndarray, n_dropped: int, group: str
) -> _Scan | None:
    """When every predictor is categorical: one grouped pass over the rows by cluster x combination of
    the factors' codes (counts, means and squares about the means), from which the clusters, the
    levels and the cells that occur are read; the levels are then learned from the cells (as they would
    be from the rows: the same levels occur). None, with ``spec`` untouched, when a predictor is
    numeric, the combinations are too many, or a value would raise an error: the general path then
    runs, and raises it where it always did.
    """
    try:
        factors = _raw_factors(spec, frame)
        if factors is None:
            return None
        radices = [len(f.levels) for f in factors.values()]
        n_combinations = int(np.prod(radices)) if radices else 1
        if n_combinations > _MAX_COMBINATIONS:
            return None
        column = frame[group]
        if isinstance(column.dtype, pd.CategoricalDtype):
            raw_group, labels = column.cat.codes.to_numpy(), pd.Index(column.cat.categories)
        else:
            raw_group, labels = pd.factorize(column, sort=True)
            labels = pd.Index(labels)
        y = spec.response(frame)
    except DataError:
        return None
    owner = None  # the Series whose buffer y views: held, so that pandas copies before any change
    response = spec.formula.response.node
    if not n_dropped and isinstance(response, Name) and not spec.formula.offsets:
        column = frame[response.id]
        if column.dtype == np.float64:
            owner, y = column, column.to_numpy()
    size = len(labels) * n_combinations
    rows_kept = keep if n_dropped else None
    if size > max(4 * (len(frame) - n_dropped), 1 << 20):
        return None
    if owner is None:
        y = y[keep] if n_dropped else np.array(y, dtype=float)
    y.setflags(write=False)
    codes = _CellCodes(
        cell_rows=None,
        factor_codes=[_small_codes(f.codes, len(f.levels), rows_kept) for f in factors.values()],
        radices=radices,
        cell_of=None,
        raw_group=_small_codes(raw_group, len(labels), rows_kept),
        group_of=None,
        y_owner=owner,
    )

    count, mean, squares, shift = _cell_pass(
        functools.partial(codes.combination, with_group=True), y, size
    )
    used = np.flatnonzero(count)
    raw_cluster, combination = np.divmod(used, n_combinations)
    # the clusters and the combinations of levels that occur, in code order
    cluster_used = np.zeros(len(labels), dtype=bool)
    cluster_used[raw_cluster] = True
    combination_used = np.zeros(n_combinations, dtype=bool)
    combination_used[combination] = True
    present = np.flatnonzero(combination_used)
    codes.group_of = np.cumsum(cluster_used) - 1
    codes.cell_of = np.cumsum(combination_used) - 1
    cell_values, rest = {}, present
    for (label, factor), radix in reversed(list(zip(factors.items(), radices, strict=True))):
        rest, digit = np.divmod(rest, radix)
        cell_values[label] = Factor(digit, factor.levels, factor.names, factor.ordered)
    cell_values = {label: cell_values[label] for label in factors}
    values = spec.learn(cell_values, np.ones(len(present), dtype=bool))
    return _Scan(
        values=values,
        raw_values=cell_values,
        y=y,
        labels=labels[cluster_used] if not cluster_used.all() else labels,
        codes=codes,
        n_cells=len(present),
        group=codes.group_of[raw_cluster],
        cell=codes.cell_of[combination],
        count=count[used],
        mean=mean[used],
        squares=squares[used],
        shift=shift,
    )


def spec_levels(spec: ModelSpec) -> dict[str, list]:
    """Each categorical variable of a fitted :class:`helpers.formula.ModelSpec` -> its levels in order."""
    return {label: list(found[0]) for label, found in spec.levels.items()}


def _subset(value: Factor | np.ndarray, rows: np.ndarray) -> Factor | np.ndarray:
    if isinstance(value, Factor):
        return Factor(value.codes[rows], value.levels, value.names, value.ordered)
    return value[rows]
