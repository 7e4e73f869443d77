r"""Random-effects terms for one grouping factor: bars -> Z, names, theta's structure and block sums.

This is the counterpart of lme4's ``mkReTrms`` for one grouping factor. A formula's random-effects
terms (``(1 + x | g)``, ``(x | g)``, ``(0 + x | g)``, ``(x || g)``, or several terms for the same group
such as ``(1 | g) + (0 + x | g)``) become:

- the random-effects model matrix Z (N x q), built by the package's one formula machinery
  (:class:`helpers.formula.ModelSpec`), so a factor gets the same codings as in the fixed part and
  the columns are named as R names them (``(Intercept)``, ``Days``, ``conditionstim``);
- the structure of the relative covariance factor T: one lower-triangular block per term, in the
  order written (``(x || g)`` is expanded as lme4 expands it, into ``(1 | g) + (0 + x | g)``), hence
  lme4's theta (each block's lower triangle, column by column, the blocks one after another), its
  names (``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ...) and lower bounds (0 on T's
  diagonal, -inf below it);
- the per-cluster blocks Z_i'Z_i, Z_i'X_i, Z_i'y_i and the global cross-products, summed once over
  the rows, which are all :mod:`helpers.kernel` needs: after this pass each evaluation of the
  criterion costs O(J q^3).

Numerics
--------
As for the random intercept (:mod:`helpers.design`), the X-side sums are of Q = X R^{-1} and the
y-side sums of the OLS residual e = y - X beta_ols, with R and beta_ols of the design's
:class:`helpers.design.SufficientStats`: residual-sized, well-scaled numbers whatever the offsets and
units of the data (``Blocks.r_factor`` and ``Response.beta_ols`` map back).

What is supported
-----------------
One grouping factor, written as a column (``g``), with any random terms for it. Crossed groupings
(``(1 | a) + (1 | b)``) and nested ones (``(1 | a/b)``, ``(1 | a:b)``) are refused with a
:class:`helpers.validate.DataError`. The model must also leave something to estimate:

- fewer random effects than observations, q J < N (lme4's ``check.nobs.vs.nRE``);
- more clusters than random terms per cluster, J > q: with J <= q clusters the q x q covariance
  matrix cannot be estimated (its estimate is necessarily singular), so it is refused rather than
  fitted on its boundary (lme4 fits it and reports a singular fit);
- no random slope on a variable that is constant within every cluster (its slope cannot vary
  between clusters: the column is a multiple of the random intercept within each cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg

from ._blas import single_blas_thread
from .formula import RANDOM_TERMS_SUPPORTED, Formula, ModelSpec, check_bars, r_term_name
from .kernel import Blocks, Response, expand_theta, theta_lower_bounds, theta_size
from .validate import DataError

__all__ = [
    "RandomTerm",
    "RandomEffects",
    "check_bars",
    "needs_random_terms",
    "bar_columns",
    "expand_bars",
    "build_random_effects",
    "block_sums",
    "distinct_rows",
    "check_support",
    "random_term_columns",
    "random_effects_from_sums",
    "random_effects_from_cells",
    "combination_sums",
    "varcorr_frame",
    "SUPPORTED",
    "SINGULAR_TOL",
]

#: What the package fits, for error messages (:data:`helpers.formula.RANDOM_TERMS_SUPPORTED`).
SUPPORTED = RANDOM_TERMS_SUPPORTED

#: lme4's ``isSingular`` tolerance: a fit is singular when an element of theta with lower bound 0 (a
#: diagonal element of T) is below it.
SINGULAR_TOL = 1e-4


def expand_bars(bars) -> list[tuple[bool, tuple]]:
    """The random-effects terms as lme4 keeps them: one (intercept, terms) block per term.

    ``(x || g)`` becomes ``(1 | g) + (0 + x | g)`` (lme4's ``expandDoubleVerts``: one block for the
    intercept and one per term, each without an intercept). Terms are ordered by degree, as R's
    ``model.matrix`` orders them.

    Examples
    --------
    >>> from helpers.formula import parse
    >>> expand_bars(parse("y ~ x + (x + z || g)").bars)
    [(True, ()), (False, (('x',),)), (False, (('z',),))]
    >>> expand_bars(parse("y ~ x + (0 + x | g)").bars)
    [(False, (('x',),))]
    """
    out: list[tuple[bool, tuple]] = []
    for bar in bars:
        terms = tuple(sorted(bar.terms, key=len))
        if bar.double:
            if bar.intercept:
                out.append((True, ()))
            out += [(False, (term,)) for term in terms]
        else:
            out.append((bar.intercept, terms))
    for intercept, terms in out:
        if not intercept and not terms:
            raise DataError(
                "A random-effects term has no random effects (it removes the intercept and has no "
                "variables, as '(0 | g)'); remove it or write '(1 | g)'."
            )
    return out


def needs_random_terms(bars) -> bool:
    """Whether the random part is more than one random intercept ``(1 | g)`` (which the random-intercept
    path fits, from :class:`helpers.design.SufficientStats`).

    Examples
    --------
    >>> from helpers.formula import parse
    >>> needs_random_terms(parse("y ~ x + (1 | g)").bars), needs_random_terms(parse("y ~ x + (x | g)").bars)
    (False, True)
    """
    return bool(bars) and expand_bars(bars) != [(True, ())]


def bar_columns(model: Formula) -> list[str]:
    """The data columns the random-effects terms use (besides the grouping column)."""
    out: list[str] = []
    for bar in model.bars:
        for term in bar.terms:
            for label in term:
                out += [c for c in model.variables[label].columns if c not in out]
    return out


@dataclass(frozen=True, eq=False)
class RandomTerm:
    """One random-effects term (one diagonal block of T), as lme4 keeps it.

    Attributes
    ----------
    group : str
        The grouping column.
    names : tuple of str
        The term's columns of Z, named as R names them (``(Intercept)``, ``Days``, ``conditionstim``).
    spec : helpers.formula.ModelSpec
        Builds the term's columns for new rows (levels and transform coefficients of the fit).
    """

    group: str
    names: tuple
    spec: ModelSpec

    @property
    def size(self) -> int:
        """The number of columns of Z (random effects per cluster) of this term."""
        return len(self.names)


@dataclass(frozen=True, eq=False)
class RandomEffects:
    """The random-effects structure of a design and its per-cluster block statistics.

    Attributes
    ----------
    group : str
    terms : tuple of RandomTerm
        The blocks of T, in lme4's order.
    blocks : helpers.kernel.Blocks
        Z_i'Z_i, Z_i'Q_i per cluster and Q'Q, with R (:mod:`helpers.kernel`).
    response : helpers.kernel.Response
        Z_i'e_i per cluster, Q'e, e'e, with beta_ols.
    z_source : ndarray, callable or None
        Z itself, or a function that builds it the first time :attr:`Z` is asked for (a categorical
        design keeps Z's few distinct rows and each row's cell, as it keeps X's); None when the blocks
        were summed where the data live (by DuckDB, Spark, ...: :func:`random_effects_from_sums`),
        which leaves the fit, its inference from sums and the conditional modes, but no row-level
        results.
    """

    group: str
    terms: tuple
    blocks: Blocks
    response: Response
    z_source: object = None

    @property
    def Z(self) -> np.ndarray | None:  # noqa: N802 (the random-effects model matrix is Z everywhere)
        """The random-effects model matrix of the rows used, shape (N, q), read-only; None without rows."""
        if callable(self.z_source):
            cache = self.__dict__
            if "_z" not in cache:
                z = np.asarray(self.z_source())
                z.setflags(write=False)
                cache["_z"] = z
            return cache["_z"]
        return self.z_source

    @property
    def q(self) -> int:
        """Random effects per cluster."""
        return int(sum(self.sizes))

    @property
    def has_rows(self) -> bool:
        """Whether Z (the rows) is at hand."""
        return self.z_source is not None

    @property
    def names(self) -> list[str]:
        """The columns of Z, R's names, in order."""
        return [n for term in self.terms for n in term.names]

    @property
    def sizes(self) -> list[int]:
        return [term.size for term in self.terms]

    @property
    def free(self) -> np.ndarray:
        """The positions of lme4's theta in the full theta of the q x q T (:func:`helpers.kernel.expand_theta`)."""
        q = self.q
        pos, out, start = 0, [], 0
        for size in self.sizes:
            for j in range(q):
                for i in range(j, q):
                    if start <= j < start + size and i < start + size:
                        out.append(pos)
                    pos += 1
            start += size
            pos = 0
        return np.array(sorted(out), dtype=np.int64)

    @property
    def n_theta(self) -> int:
        return sum(theta_size(s) for s in self.sizes)

    @property
    def theta_names(self) -> list[str]:
        """lme4's names of theta: ``g.(Intercept)``, ``g.x.(Intercept)`` (row, column), ``g.x``."""
        out = []
        for term in self.terms:
            for j in range(term.size):
                for i in range(j, term.size):
                    a, b = term.names[i], term.names[j]
                    out.append(f"{self.group}.{a}" if i == j else f"{self.group}.{a}.{b}")
        return out

    @property
    def theta_lower(self) -> np.ndarray:
        """0 for the diagonal elements of T, -inf for the others (lme4's ``lower``)."""
        return np.concatenate([theta_lower_bounds(s) for s in self.sizes])

    @property
    def varcorr_groups(self) -> list[str]:
        """Each term's ``grp`` in ``as.data.frame(VarCorr(m))``: the group, then ``g.1``, ``g.2``, ..."""
        return [self.group if k == 0 else f"{self.group}.{k}" for k in range(len(self.terms))]

    def full_theta(self, theta) -> np.ndarray:
        """The kernel's full theta (q (q + 1) / 2 elements) from lme4's theta."""
        return expand_theta(np.asarray(theta, dtype=float), self.free, self.q)

    def factor(self, theta) -> np.ndarray:
        """The relative covariance factor T (q x q, lower triangular, block-diagonal)."""
        from .kernel import theta_to_factor

        return theta_to_factor(self.full_theta(theta), self.q)

    def singular(self, theta) -> bool:
        """lme4's ``isSingular``: some element of theta with lower bound 0 is below 1e-4."""
        theta = np.asarray(theta, dtype=float)
        return bool(np.any(theta[self.theta_lower == 0] < SINGULAR_TOL))

    def z_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """Z for new rows, with the levels and transform coefficients of the fit."""
        parts = [term.spec.get_model_matrix(data).to_numpy() for term in self.terms]
        return np.hstack(parts) if parts else np.zeros((len(data), 0))


def _block_formula(model: Formula, intercept: bool, terms: tuple) -> Formula:
    labels = {label for term in terms for label in term}
    variables = {k: v for k, v in model.variables.items() if k in labels}
    return Formula(
        text=model.text, response=None, variables=variables, terms=terms, intercept=intercept
    )


def _grouped(codes: np.ndarray, weights: np.ndarray | None, n_groups: int) -> np.ndarray:
    return np.bincount(codes, weights=weights, minlength=n_groups)


#: The cell path (:func:`distinct_rows`) is taken when clusters x distinct rows of [X Z] are at most
#: this share of the rows; otherwise the sums are taken row by row.
CELL_SHARE = 0.5

#: Fixed weights of the projection that labels the distinct rows (any generic values do).
_HASH_WEIGHTS = np.random.default_rng(20240611).uniform(1.0, 2.0, 64)


def distinct_rows(X, Z, n_groups: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each row's distinct row of [X Z] ("cell") and the first row of each cell, or None.

    When every predictor of X and Z is categorical, [X Z] has only a few distinct rows, and all rows of
    one cluster x cell combination share their rows of X and Z: the block sums then follow from the
    count and the sum of the residual per combination (as :func:`helpers.design.cell_sufficient_stats`
    does for the random intercept). The rows are labelled by a fixed linear projection of [X Z],
    factorised in one hash pass; the labelling is then checked column by column (each row must equal
    its cell's row exactly), so a collision of the projection can only send the sums down the row path.

    Returns None when the cluster x cell combinations could exceed ``CELL_SHARE`` of the rows (numeric
    predictors), or when the check fails.

    Examples
    --------
    >>> X = np.column_stack([np.ones(6), [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]])
    >>> cell_id, first = distinct_rows(X, X[:, :1], 1)
    >>> cell_id.tolist(), first.tolist()
    ([0, 1, 1, 0, 1, 0], [0, 1])
    """
    n, p = X.shape
    q = Z.shape[1]
    limit = int(CELL_SHARE * n) // max(n_groups, 1)
    if limit < 1 or p + q > len(_HASH_WEIGHTS):
        return None
    projection = X @ _HASH_WEIGHTS[:p] + Z @ _HASH_WEIGHTS[p : p + q]
    # hashed as their bits (three times faster than as floats; a -0.0 beside a 0.0 would only make
    # one more cell, with the same sums)
    cell_id, uniques = pd.factorize(projection.view(np.int64))
    if len(uniques) > limit:
        return None
    cell_id = cell_id.astype(np.int64, copy=False)
    # pandas numbers the cells in order of first appearance
    running = np.maximum.accumulate(cell_id)
    first = np.flatnonzero(np.concatenate([[True], running[1:] > running[:-1]]))
    for matrix in (X, Z):
        rows = matrix[first]
        for k in range(matrix.shape[1]):
            if not np.array_equal(rows[:, k][cell_id], matrix[:, k]):
                return None
    return cell_id, first


def _cell_block_sums(Z, X, e, codes, n_groups: int, r_factor, cells):
    """:func:`block_sums` by cluster x cell combination: two grouped sums over the rows."""
    cell_id, first = cells
    n_cells = len(first)
    key = codes * n_cells + cell_id
    size = n_groups * n_cells
    count = np.bincount(key, minlength=size)
    sum_e = np.bincount(key, weights=e, minlength=size)
    used = np.flatnonzero(count)
    group, cell = used // n_cells, used % n_cells
    q_cells = scipy.linalg.solve_triangular(r_factor, X[first].T, trans="T", lower=False).T
    return combination_sums(Z[first], q_cells, cell, group, count[used], sum_e[used], n_groups)


def combination_sums(z_cells, q_cells, cell, group, count, sum_e, n_groups: int):
    """The blocks from the cluster x cell combinations that occur, when every row of a cell shares its
    rows of Z and of Q = X R^{-1}.

    Parameters
    ----------
    z_cells, q_cells : ndarray, shapes (C, q) and (C, p)
        Each cell's row of Z and of Q.
    cell, group : ndarray of int, shape (K,)
        Each combination's cell and cluster.
    count, sum_e : ndarray, shape (K,)
        Each combination's rows and sum of the OLS residuals e = y - X beta_ols.
    n_groups : int

    Returns
    -------
    (Z_i'Z_i (J, q, q), Z_i'Q_i (J, q, p), Z_i'e_i (J, q), Q'Q (p, p), Q'e (p,))
    """
    m = np.asarray(count, dtype=float)
    z = z_cells[cell]  # (K, q)
    qrow = q_cells[cell]  # (K, p)
    se = sum_e
    q, p = z_cells.shape[1], q_cells.shape[1]

    def grouped(weights):
        return np.bincount(group, weights=weights, minlength=n_groups)

    ztz = np.empty((n_groups, q, q))
    for a in range(q):
        for b in range(a, q):
            ztz[:, a, b] = grouped(m * z[:, a] * z[:, b])
            ztz[:, b, a] = ztz[:, a, b]
    ztx = np.empty((n_groups, q, p))
    zty = np.empty((n_groups, q))
    for a in range(q):
        for k in range(p):
            ztx[:, a, k] = grouped(m * z[:, a] * qrow[:, k])
        zty[:, a] = grouped(z[:, a] * se)
    xtx = (qrow * m[:, None]).T @ qrow
    xty = qrow.T @ se
    return ztz, ztx, zty, xtx, xty


def block_sums(
    Z, X, y, codes, n_groups: int, r_factor, beta_ols, cells=None
) -> tuple[Blocks, Response]:
    """The kernel's input for any q from rows, in one pass of grouped sums.

    Parameters
    ----------
    Z : ndarray, shape (N, q)
    X : ndarray, shape (N, p)
    y : ndarray, shape (N,)
    codes : ndarray of int, shape (N,)
    n_groups : int
    r_factor, beta_ols : ndarray
        R (X = Q R) and the OLS coefficients (from :class:`helpers.design.SufficientStats`): the sums are
        of Q = X R^{-1} and e = y - X beta_ols.
    cells : tuple of ndarray, optional
        :func:`distinct_rows` of X and Z: the sums are then taken per cluster x cell combination (two
        grouped sums over the rows instead of one per element of the blocks); the same numbers up to
        rounding.

    Returns
    -------
    (helpers.kernel.Blocks, helpers.kernel.Response)

    Examples
    --------
    >>> X = np.column_stack([np.ones(6), np.arange(6.0)])
    >>> y = np.array([1.0, 2.0, 2.5, 4.0, 4.0, 7.0])
    >>> r = np.linalg.qr(X, mode="r")
    >>> beta = np.linalg.lstsq(X, y, rcond=None)[0]
    >>> blocks, resp = block_sums(X, X, y, np.repeat([0, 1, 2], 2), 3, r, beta)
    >>> blocks.ztz.shape, blocks.ztx.shape, resp.zty.shape, bool(np.allclose(blocks.xtx, np.eye(2)))
    ((3, 2, 2), (3, 2, 2), (3, 2), True)
    """
    Z = np.asarray(Z, dtype=float)
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    r_factor = np.asarray(r_factor, dtype=float)
    beta_ols = np.asarray(beta_ols, dtype=float)
    n, q = Z.shape
    p = X.shape[1]
    codes = np.asarray(codes)
    e = y - X @ beta_ols
    if cells is not None:
        ztz, ztx, zty, xtx, xty = _cell_block_sums(Z, X, e, codes, n_groups, r_factor, cells)
        blocks = Blocks(ztz=ztz, ztx=ztx, xtx=xtx, n_obs=n, r_factor=r_factor)
        resp = Response(zty=zty, xty=xty, yty=np.asarray(float(e @ e)), beta_ols=beta_ols)
        for value in (ztz, ztx, zty):
            value.setflags(write=False)
        return blocks, resp
    qmat = scipy.linalg.solve_triangular(r_factor, X.T, trans="T", lower=False).T
    ones = [bool(np.all(Z[:, a] == 1.0)) for a in range(q)]

    def times(a, values):
        return values if ones[a] else Z[:, a] * values

    counts = _grouped(codes, None, n_groups).astype(float)
    ztz = np.empty((n_groups, q, q))
    for a in range(q):
        for b in range(a, q):
            if ones[a] and ones[b]:
                ztz[:, a, b] = counts
            else:
                ztz[:, a, b] = _grouped(
                    codes, times(a, Z[:, b]) if not ones[b] else Z[:, a], n_groups
                )
            ztz[:, b, a] = ztz[:, a, b]
    ztx = np.empty((n_groups, q, p))
    zty = np.empty((n_groups, q))
    for a in range(q):
        for k in range(p):
            ztx[:, a, k] = _grouped(codes, times(a, qmat[:, k]), n_groups)
        zty[:, a] = _grouped(codes, times(a, e), n_groups)
    blocks = Blocks(ztz=ztz, ztx=ztx, xtx=qmat.T @ qmat, n_obs=n, r_factor=r_factor)
    resp = Response(zty=zty, xty=qmat.T @ e, yty=np.asarray(float(e @ e)), beta_ols=beta_ols)
    for value in (ztz, ztx, zty):
        value.setflags(write=False)
    return blocks, resp


def _check_support(names, Z, codes, n_groups: int, group: str, n_obs: int, cells=None) -> None:
    check_support(names, n_groups, group, n_obs, *_column_spread(Z, codes, n_groups, cells))


def _column_spread(Z, codes, n_groups: int, cells=None):
    """Each column of Z: its within-cluster sum of squares, its scale (largest absolute value) and
    whether it is constant (an intercept), from the rows or by cluster x cell combination."""
    if cells is None:
        weights, rows, z_rows = None, codes, Z
    else:  # one entry per cluster x cell combination, weighted by its rows
        cell_id, first = cells
        key = codes * len(first) + cell_id
        weights = np.bincount(key, minlength=n_groups * len(first)).astype(float)
        used = np.flatnonzero(weights)
        weights, rows, z_rows = weights[used], used // len(first), Z[first][used % len(first)]
    return _spread(z_rows, weights, rows, n_groups)


def _spread(z_rows, weights, rows, n_groups: int):
    """:func:`_column_spread` of rows (``weights`` None) or of weighted combinations."""
    counts = np.bincount(rows, weights=weights, minlength=n_groups).astype(float)
    q = z_rows.shape[1]
    within, scale, constant = np.zeros(q), np.zeros(q), np.zeros(q, dtype=bool)
    for a in range(q):
        z = z_rows[:, a]
        scale[a] = float(np.max(np.abs(z))) if len(z) else 0.0
        constant[a] = bool(len(z) and np.all(z == z[0]))
        if constant[a]:
            continue
        zw = z if weights is None else z * weights
        mean = np.bincount(rows, weights=zw, minlength=n_groups) / counts
        deviation = z - mean[rows]
        within[a] = float(deviation @ (deviation if weights is None else deviation * weights))
    return within, scale, constant


def check_support(names, n_groups: int, group: str, n_obs: int, within, scale, constant) -> None:
    """Refuse a random-effects structure the data cannot support (see the module notes).

    ``within``, ``scale`` and ``constant`` describe each column of Z: its within-cluster sum of
    squares, its size, and whether it is one value on every row (an intercept); from the rows
    (:func:`_column_spread`) or from sums (:func:`helpers.engines.random_cell_sums`).
    """
    q = len(names)
    if q * n_groups >= n_obs:
        raise DataError(
            f"The random-effects terms give {q} random effects in each of the {n_groups} groups of "
            f"{group!r}, {q * n_groups} in all, for only {n_obs} observations; the model needs fewer "
            "random effects than observations (as lme4 requires): drop a random slope or use '(1 | "
            f"{group})'."
        )
    if n_groups <= q:
        raise DataError(
            f"The grouping column {group!r} has {n_groups} groups for {q} random effects per group; a "
            f"{q} x {q} covariance matrix needs at least {q + 1} groups to be estimated: drop a random "
            "slope, or use the uncorrelated form '(x || g)'."
        )
    for a, name in enumerate(names):
        if scale[a] == 0.0:
            raise DataError(
                f"The random-effects column {name!r} is zero in every row used; drop it from the "
                "random-effects term."
            )
        if constant[a]:
            continue  # an intercept
        if within[a] <= n_obs * (1e-10 * scale[a]) ** 2:
            raise DataError(
                f"The random slope of {name!r} is on a variable that is constant within every group "
                f"of {group!r}, so its effect cannot vary between groups; drop it from the "
                f"random-effects term (keep it as a fixed effect), e.g. '(1 | {group})'."
            )


def build_random_effects(model: Formula, frame: pd.DataFrame, keep, X, y, codes, stats, group):
    """The :class:`RandomEffects` of a design (called by :func:`helpers.design.build_design`).

    Parameters
    ----------
    model : helpers.formula.Formula
        The parsed formula (its ``bars``).
    frame : pandas.DataFrame
        The model's columns on every row (before rows with missing values are dropped: transforms
        such as ``scale()`` are computed on every row, as R's ``model.frame`` does).
    keep : ndarray of bool
        The rows used.
    X, y, codes : ndarray
        The fixed-effects model matrix, the response and the group codes of the rows used.
    stats : helpers.design.SufficientStats
        R and beta_ols for the well-scaled sums.
    group : str

    Returns
    -------
    RandomEffects
    """
    keep = np.asarray(keep, dtype=bool)
    terms, columns, _ = random_term_columns(
        model, frame, keep, int(keep.sum()), group, unit_numeric=False
    )
    for term, matrix in zip(terms, columns, strict=True):
        if not np.isfinite(matrix).all():
            bad = term.names[int(np.flatnonzero(~np.isfinite(matrix).all(axis=0))[0])]
            raise DataError(
                f"The random-effects column {bad!r} is infinite or undefined in some rows used (for "
                "example log of 0); change the transformation or remove those rows."
            )
    Z = np.ascontiguousarray(np.hstack(columns))
    names = [n for term in terms for n in term.names]
    n_groups = stats.n_groups
    with single_blas_thread():  # tall-and-skinny products (helpers._blas)
        cells = distinct_rows(X, Z, n_groups)
        _check_support(names, Z, codes, n_groups, group, len(y), cells)
        blocks, resp = block_sums(Z, X, y, codes, n_groups, stats.r_factor, stats.beta_ols, cells)
    blocks._cache("r_inv", lambda: stats.r_inverse)
    Z.setflags(write=False)
    return RandomEffects(group=group, terms=tuple(terms), blocks=blocks, response=resp, z_source=Z)


def random_term_columns(
    model: Formula,
    values: dict | pd.DataFrame,
    keep,
    n_rows: int,
    group: str,
    *,
    unit_numeric: bool = True,
):
    """Each random-effects term of ``model`` and its columns: (terms, matrices, atoms).

    ``values`` is the data on every row (a DataFrame: each term computes its own variables from it,
    before the rows not kept are dropped, as R's ``model.frame`` does), or the model's variables on the
    cells of an aggregation with every numeric variable set to 1 (``unit_numeric``: then each matrix is
    the columns' categorical indicators and ``atoms`` names the numeric columns each is a product of,
    as :func:`helpers.engines.design_from_cells` writes the fixed part).
    """
    keep = np.asarray(keep, dtype=bool)
    terms, matrices, atoms = [], [], []
    for intercept, block in expand_bars(model.bars):
        spec = ModelSpec(_block_formula(model, intercept, block))
        if isinstance(values, pd.DataFrame):
            own = spec.values(values)
        else:
            labels = {label for term in block for label in term}
            own = {k: v for k, v in values.items() if k in labels}
        learned = spec.learn(own, keep)
        learned = {k: _subset(v, keep) for k, v in learned.items()}
        names = tuple(r_term_name(n) for n in spec.column_names)
        terms.append(RandomTerm(group=group, names=names, spec=spec))
        matrices.append(spec.matrix(learned, n_rows, unit_numeric=unit_numeric))
        atoms += [tuple(sorted(atom)) for atom in spec.column_numeric]
    return terms, matrices, atoms


def random_effects_from_cells(
    model: Formula, cell_values: dict, cell_rows, scan, stats, group: str, rows
) -> RandomEffects | None:
    """The :class:`RandomEffects` of a categorical design from its cluster x cell combinations.

    When every variable of the random-effects terms is one of the design's factors, every row of a
    cell shares its row of Z as it shares its row of X: the blocks are then sums over the
    combinations that the design's one grouped pass found (their counts and mean OLS residuals), and Z
    is built from its distinct rows only if asked for. None when a variable of the random part is not
    among the cells' factors (:func:`build_random_effects` then works from the rows).

    Parameters
    ----------
    model : helpers.formula.Formula
    cell_values : dict
        The cells' factors over all their categories (as the rows' values, one entry per cell).
    cell_rows : ndarray, shape (C, p)
        Each cell's row of X.
    scan
        The design's grouped pass: ``cell``, ``group``, ``count`` and ``residual`` per combination.
    stats : helpers.design.SufficientStats
    group : str
    rows : helpers.design.Rows
        Builds each row's cell (for Z) when asked.
    """
    labels = {label for _, block in expand_bars(model.bars) for term in block for label in term}
    if not labels <= set(cell_values):
        return None
    n_cells = len(cell_rows)
    terms, matrices, _ = random_term_columns(
        model, cell_values, np.ones(n_cells, dtype=bool), n_cells, group
    )
    z_cells = np.ascontiguousarray(np.hstack(matrices))
    z_cells.setflags(write=False)
    names = [n for term in terms for n in term.names]
    n_groups = stats.n_groups
    count = np.asarray(scan.count)
    weights = count.astype(float)
    check_support(
        names,
        n_groups,
        group,
        int(count.sum()),
        *_spread(z_cells[scan.cell], weights, scan.group, n_groups),
    )
    q_cells = scipy.linalg.solve_triangular(stats.r_factor, cell_rows.T, trans="T", lower=False).T
    with single_blas_thread():
        ztz, ztx, zty, xtx, xty = combination_sums(
            z_cells, q_cells, scan.cell, scan.group, count, weights * scan.residual, n_groups
        )
    blocks = Blocks(ztz=ztz, ztx=ztx, xtx=xtx, n_obs=int(count.sum()), r_factor=stats.r_factor)
    resp = Response(zty=zty, xty=xty, yty=np.asarray(float(stats.ete)), beta_ols=stats.beta_ols)
    for value in (ztz, ztx, zty):
        value.setflags(write=False)
    blocks._cache("r_inv", lambda: stats.r_inverse)
    return RandomEffects(
        group=group,
        terms=tuple(terms),
        blocks=blocks,
        response=resp,
        z_source=_ZFromCells(z_cells, rows),
    )


@dataclass(frozen=True, eq=False)
class _ZFromCells:
    """Builds Z from its distinct rows and each row's cell (picklable, unlike a closure: the report
    hands its design to the notebook as a pickle)."""

    z_cells: np.ndarray
    rows: object  # helpers.design.Rows

    def __call__(self) -> np.ndarray:
        return np.take(self.z_cells, self.rows.cell_id, axis=0)


def random_effects_from_sums(terms, cross, n_obs: int, stats, group: str) -> RandomEffects:
    """The :class:`RandomEffects` of a design whose rows were reduced to sums where they live.

    Parameters
    ----------
    terms : list of RandomTerm
    cross : ndarray, shape (J, q + p + 1, q + p + 1)
        Per cluster, the cross-products of [Z Q e] (:func:`helpers.engines.random_cell_sums`), with
        Q = X R^{-1} and e = y - X beta_ols in the basis of ``stats``.
    n_obs : int
    stats : helpers.design.SufficientStats
    group : str

    Returns
    -------
    RandomEffects
        With ``Z`` None: the blocks :func:`block_sums` sums from the rows.
    """
    q = sum(term.size for term in terms)
    p = stats.r_factor.shape[0]
    total = cross.sum(axis=0)
    ztz = np.ascontiguousarray(cross[:, :q, :q])
    ztx = np.ascontiguousarray(cross[:, :q, q : q + p])
    zty = np.ascontiguousarray(cross[:, :q, q + p])
    xtx = 0.5 * (total[q : q + p, q : q + p] + total[q : q + p, q : q + p].T)
    blocks = Blocks(ztz=ztz, ztx=ztx, xtx=xtx, n_obs=n_obs, r_factor=stats.r_factor)
    resp = Response(
        zty=zty,
        xty=total[q : q + p, q + p],
        yty=np.asarray(float(stats.ete)),
        beta_ols=stats.beta_ols,
    )
    for value in (ztz, ztx, zty):
        value.setflags(write=False)
    blocks._cache("r_inv", lambda: stats.r_inverse)
    return RandomEffects(group=group, terms=tuple(terms), blocks=blocks, response=resp)


def _subset(value, rows):
    from .formula import Factor

    if isinstance(value, Factor):
        return Factor(value.codes[rows], value.levels, value.names, value.ordered)
    return value[rows]


def varcorr_frame(random: RandomEffects | None, theta, sigma2: float, group: str) -> pd.DataFrame:
    """``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor, in lme4's row order.

    Per term, the variances, then the covariances (correlations in ``sdcor``) of each pair in order;
    ``Residual`` last. ``random`` None is the random intercept ``(1 | group)`` with a scalar theta.
    """
    rows = []
    if random is None:
        t = float(np.ravel(theta)[0])
        rows.append((group, "(Intercept)", None, t * t * sigma2, abs(t) * np.sqrt(sigma2)))
    else:
        factor = random.factor(theta)
        cov = sigma2 * factor @ factor.T
        start = 0
        for grp, term in zip(random.varcorr_groups, random.terms, strict=True):
            idx = range(start, start + term.size)
            sd = np.sqrt(np.diag(cov)[start : start + term.size])
            for k, i in enumerate(idx):
                rows.append((grp, term.names[k], None, cov[i, i], sd[k]))
            for a in range(term.size):
                for b in range(a + 1, term.size):
                    c = cov[start + a, start + b]
                    denom = sd[a] * sd[b]
                    corr = c / denom if denom > 0 else np.nan
                    if np.isfinite(corr):
                        corr = float(np.clip(corr, -1.0, 1.0))
                    rows.append((grp, term.names[a], term.names[b], c, corr))
            start += term.size
    rows.append(("Residual", None, None, sigma2, np.sqrt(sigma2)))
    frame = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
    for column in ("var1", "var2"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["vcov"] = frame["vcov"].astype(float)
    frame["sdcor"] = frame["sdcor"].astype(float)
    return frame
