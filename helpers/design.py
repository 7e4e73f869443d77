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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg

from ._blas import single_blas_thread
from .validate import DataError, check_columns, check_finite, parse_formula

__all__ = [
    "RowsDroppedWarning",
    "SufficientStats",
    "Design",
    "build_design",
    "sufficient_stats",
    "stats_from_cross_products",
]


class RowsDroppedWarning(UserWarning):
    """Rows were dropped because a model variable was missing in them."""


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


def _qr(X: np.ndarray, term_names) -> tuple[np.ndarray, np.ndarray]:
    """Thin QR of X, with a rank check that names aliased terms."""
    n, p = X.shape
    if p == 0:
        raise DataError("The formula has no fixed effects; keep at least an intercept ('y ~ 1').")
    if n <= p:
        raise DataError(
            f"Only {n} complete rows for {p} fixed effects; the model needs more rows than coefficients."
        )
    q, r = np.linalg.qr(X, mode="reduced")
    norms = np.linalg.norm(X, axis=0)
    tol = max(n, p) * np.finfo(float).eps * 10
    relative = np.abs(np.diag(r)) / np.where(norms > 0, norms, 1.0)
    if (norms == 0).any() or (relative < tol).any():
        # pivoted QR names the aliased columns reliably; only paid for in the failing case
        _, r_piv, piv = scipy.linalg.qr(
            X / np.where(norms > 0, norms, 1.0), mode="economic", pivoting=True
        )
        diag = np.abs(np.diag(r_piv))
        rank = int((diag > tol * max(diag[0], 1e-300)).sum()) if diag[0] > 0 else 0
        rank = min(rank, p - 1)
        aliased = [term_names[i] for i in sorted(piv[rank:])]
        kept = [term_names[i] for i in sorted(piv[:rank])]
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
    X: np.ndarray, y: np.ndarray, codes: np.ndarray, n_groups: int, term_names=None
):
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
        return _frozen(
            SufficientStats(
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
        )


def _frozen(stats: SufficientStats) -> SufficientStats:
    """Make the arrays read-only, so no later call can change the statistics a result rests on."""
    for value in list(vars(stats).values()):
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return stats


def stats_from_cross_products(
    counts, sum_x, sum_y, xtx, xty, yty, term_names=None
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
    return _frozen(
        SufficientStats(
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
    )


@dataclass(frozen=True, eq=False)
class Design:
    """The model matrices of a fit, and (with a grouping column) its sufficient statistics.

    Attributes
    ----------
    X : ndarray, shape (N, p)
    y : ndarray, shape (N,)
    term_names : list of str
        Fixed-effect names in the formulaic convention (``Intercept``, ``condition[T.stim]``).
    response : str
    formula : str
        The formula as given.
    group : str or None
    group_codes : ndarray of int or None
        The cluster of each row, 0 .. J - 1.
    group_labels : pandas.Index or None
        The cluster labels, in code order.
    stats : SufficientStats or None
    n_dropped : int
        Rows dropped for missing values.
    dropped_by_column : dict
        Missing values per model column, among the dropped rows.
    model_spec : object
        formulaic's model spec, to build the same columns for new data.
    """

    X: np.ndarray
    y: np.ndarray
    term_names: list
    response: str
    formula: str
    group: str | None
    group_codes: np.ndarray | None
    group_labels: pd.Index | None
    stats: SufficientStats | None
    n_dropped: int
    dropped_by_column: dict = field(default_factory=dict)
    model_spec: object = None

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])


def _required_columns(fixed: str, original: str) -> list[str]:
    import formulaic

    try:
        parsed = formulaic.Formula(fixed)
        # the union over factors, not Formula.required_variables, which reads `county.name` as `county`
        required = {
            name
            for part in (parsed.lhs, parsed.rhs)
            for term in part
            for factor in term.factors
            for name in factor.required_variables
        }
    except formulaic.errors.FormulaSyntaxError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(
            f"The formula {original!r} has a syntax error ({first}); check its brackets and operators."
        ) from None
    except Exception as exc:  # formulaic raises several types for malformed input
        raise DataError(f"The formula {original!r} could not be parsed: {exc}") from None
    # formulaic leaves out its own transforms (np, log, C, center, ...): what remains are data columns
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


def build_design(data: pd.DataFrame, formula: str, group: str | None = None) -> Design:
    """Turn a DataFrame and a formula into model matrices and sufficient statistics.

    Parameters
    ----------
    data : pandas.DataFrame
    formula : str
        A fixed-effects formula, optionally with one ``(1 | group)`` term.
    group : str, optional
        The grouping column, when the formula has no ``(1 | group)`` term. Without either, the design has
        no clusters (as pooled OLS needs).

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
    import formulaic

    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"Expected the data as a pandas DataFrame, got {type(data).__name__}; "
            "convert it with pandas.DataFrame(...) first."
        )
    parsed = parse_formula(formula, group)
    columns = _required_columns(parsed.fixed, formula)
    if parsed.group is not None and parsed.group not in columns:
        columns = columns + [parsed.group]
    plain_response = parsed.response if parsed.response in data.columns else None
    check_columns(data, columns, response=plain_response, group=parsed.group, check_infinite=False)

    frame = data[columns]
    missing = frame.isna()
    keep = ~missing.any(axis=1).to_numpy()
    n_dropped = int((~keep).sum())
    dropped_by_column = {c: int(missing[c].to_numpy()[~keep].sum()) for c in columns}
    dropped_by_column = {c: k for c, k in dropped_by_column.items() if k}
    if n_dropped:
        detail = ", ".join(f"{c}: {k}" for c, k in dropped_by_column.items())
        warnings.warn(
            f"Dropped {n_dropped} of {len(frame)} rows with missing values ({detail}).",
            RowsDroppedWarning,
            stacklevel=3,
        )
        frame = frame.loc[keep]
    check_finite(
        frame, columns
    )  # after the drop, as R: an infinite value in a dropped row is no error
    if len(frame) == 0:
        raise DataError(
            "No rows are left after dropping rows with missing values in "
            + ", ".join(repr(c) for c in columns)
            + "; check which columns are empty."
        )
    for col in columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            tidy = _drop_unused(frame[col])
            if tidy is not frame[col]:
                frame = frame.assign(**{col: tidy})

    try:
        matrices = formulaic.model_matrix(parsed.fixed, frame, na_action="raise")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"The formula {parsed.fixed!r} could not be applied to the data: {exc}"
        ) from None
    if matrices.lhs.shape[1] != 1:
        raise DataError(
            f"The response {parsed.response!r} is not a single numeric column; convert it to numbers first."
        )
    X = np.asarray(matrices.rhs, dtype=float)
    y = np.asarray(matrices.lhs, dtype=float).reshape(-1)
    if not np.isfinite(y).all():
        raise DataError(
            f"The response {parsed.response!r} has infinite or undefined values after transformation "
            "(for example log of 0); remove those rows or change the transformation."
        )
    term_names = list(matrices.rhs.columns)
    if not np.isfinite(X).all():
        raise DataError(
            "The model matrix has infinite values; check transformed predictors such as log(x)."
        )

    codes = labels = stats = None
    if parsed.group is None:
        with single_blas_thread():
            _qr(X, term_names)  # rank check only
    else:
        codes, labels = _encode_groups(frame[parsed.group])
        if len(labels) < 2:
            raise DataError(
                f"The grouping column {parsed.group!r} has {len(labels)} distinct value(s) after dropping "
                "rows with missing values; a random intercept needs at least 2 groups."
            )
        if len(labels) >= len(y):
            raise DataError(
                f"The grouping column {parsed.group!r} has as many groups ({len(labels)}) as rows; with one "
                "row per group the group and residual variances cannot be told apart. Check the grouping "
                "column."
            )
        stats = sufficient_stats(X, y, codes, len(labels), term_names)
    return Design(
        X=X,
        y=y,
        term_names=term_names,
        response=parsed.response,
        formula=formula,
        group=parsed.group,
        group_codes=codes,
        group_labels=labels,
        stats=stats,
        n_dropped=n_dropped,
        dropped_by_column=dropped_by_column,
        model_spec=matrices.rhs.model_spec,
    )
