"""Sufficient statistics straight from a CSV or Parquet file, with DuckDB, without loading the rows.

The random-intercept likelihood needs only the cluster sizes, the per-cluster sums of each model column
and of the response, and the global cross-products X'X, X'y and y'y (see :mod:`helpers.design`). A
database computes all of them in one ``GROUP BY`` scan, so a file of a hundred million rows fits in a few
hundred megabytes of memory.

How the scan works
------------------
1. **Types and columns** come from the file's schema: numeric (and boolean) columns are numeric
   predictors; text columns are categorical, with levels sorted as R sorts them (or, for a Parquet
   dictionary column, in its stored order, as pandas and R's arrow read it); ``reference`` moves a level
   to the front.
2. **A short first pass** averages the numeric columns and the response over the first complete rows
   (up to ``centre_rows``). These averages are the centring shifts.
3. **One scan** groups the rows by cluster, by every combination of the categorical predictors (a
   "cell") and by a missing-value flag per numeric column, and returns per cell the row count, the sums
   of the centred numeric values (the response, each numeric predictor and each product an interaction
   needs) and their co-moments (DuckDB's ``covar_pop``, which it accumulates stably). Cells with a
   missing value are counted as dropped rows and otherwise ignored; a Parquet file whose statistics
   count no NULL in the numeric model columns is scanned without the flags (a NaN, which the
   statistics do not count, shows in the sums, and the scan then runs again with them). The scan
   costs about as much as a plain ``GROUP BY`` with ``count`` and ``sum`` (see
   ``benchmarks/large_file.py``). It is written once,
   as an Ibis expression (:mod:`helpers.engines`), which DuckDB runs here on its reader of the file
   and Spark or another engine runs where their tables live.
4. **In numpy**, :class:`helpers.formula.ModelSpec` expands the categorical predictors of each cell into
   contrast columns (the same columns, names and reference levels as :func:`helpers.design.build_design`), the cells are
   combined into centred cross-products and within-cluster cross-products, and the centring is undone
   exactly as a reparametrisation (``Z = X T``), so the result matches the in-memory statistics.

The centring only has to be close to the means: the sums are then of residual-sized numbers, and the
exact cross-products follow from the cell counts, sums and co-moments. Reading only the first rows for
the shifts keeps the whole fit at one full scan of the file (``centre_rows=None`` averages every row,
at the cost of a second scan, and gives the same result).

Rows with a missing value in any model column are dropped, as :func:`helpers.design.build_design` drops
them (R's ``na.omit``); NaN counts as missing, and the CSV reader treats the same strings as missing as
pandas does (``NA``, ``NaN``, ``NULL``, an empty field, ...). The number dropped, and how many missing
values each column contributed, are part of the result.

Before the scan, the file is checked and its schema read by :mod:`helpers.files` (the CSV dialect
pandas reads, a sane header, text columns that hold numbers), as the report's pandas path checks it.

Supported formulas: a response, plain columns (numeric, logical or text; backticks for names with spaces
or dots), interactions of them (``a:b``, ``a*b``), ``0 +`` or ``- 1``, and random-effects terms of one
grouping factor (``(1 | g)``, ``(1 + x | g)``, ``(x || g)``: a random slope's column is one more key of
the scan, and :func:`helpers.engines.random_cell_sums` forms its blocks from the cells), parsed by :func:`helpers.formula.parse` like every formula. Transformations such as ``log(x)`` or
``scale(x)`` need the rows; add them as columns to the file first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import engines
from .design import Design, SufficientStats
from .engines import RESPONSE_KEY, parse_terms, term_atom
from .files import (
    NA_STRINGS,
    all_numbers,
    check_case_collisions,
    check_file,
    check_file_types,
    csv_header,
    file_columns,
    file_format,
    is_numeric_type,
    is_read_error,
    parquet_dictionary_levels,
    parquet_no_nulls,
    read_error,
    reading,
    source_sql,
    text_number_problem,
    text_values,
)
from .formula import parse_formula
from .validate import (
    DataError,
    check_has_rows,
    check_present,
    check_reference_column,
    check_response_kind,
    require_group,
)

if TYPE_CHECKING:
    import duckdb

#: The file checks are in helpers.files; these names stay importable from here.
__all__ = [
    "NA_STRINGS",
    "check_file",
    "csv_header",
    "text_number_problem",
    "file_format",
    "file_columns",
    "design_from_file",
    "check_file_types",
    "is_read_error",
    "read_error",
    "fit_lmm_file",
    "ols_from_stats",
]


def design_from_file(
    path: str | os.PathLike,
    formula: str,
    *,
    group: str | None = None,
    reference: Mapping[str, object] | None = None,
    centre_rows: int | None = 1_000_000,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> Design:
    """Compute a model's sufficient statistics from a CSV or Parquet file, in one DuckDB scan.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``, ``.tsv`` (optionally ``.gz``) or ``.parquet`` file.
    formula : str
        ``"y ~ x + (1 | g)"``, ``"y ~ x + (1 + x | g)"``, or a fixed-effects formula with ``group``.
        Plain columns and their interactions only (see the module notes).
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    reference : dict, optional
        ``{column: level}``: the reference (first) level of a categorical predictor.
    centre_rows : int or None, default 1_000_000
        How many complete rows the first pass averages for the centring shifts; None averages all rows
        (a second full scan, rarely worth it: any shift near the means gives the same accuracy).
    connection : duckdb.DuckDBPyConnection, optional
        A connection to use (for example with a memory limit); a private one by default.

    Returns
    -------
    helpers.design.Design
        Without rows (``design.rows`` is None, ``design.path`` is the file): the statistics, terms,
        levels, counts and dropped rows, as :func:`helpers.design.build_design` gives them.

    Raises
    ------
    DataError
        For a missing or unreadable file, a column not in it, a non-numeric response, a grouping column
        with fewer than 2 levels, an absent reference level, or a formula the path cannot compute.
        The checks are those of :mod:`helpers.validate`, applied to what the schema and the scan give.

    Warns
    -----
    helpers.validate.RowsDroppedWarning
        When rows with missing values are dropped, saying how many.

    Examples
    --------
    >>> import tempfile
    >>> from helpers.data import load_dataset
    >>> path = Path(tempfile.mkdtemp()) / "sleep.parquet"
    >>> load_dataset("sleepstudy").to_parquet(path)
    >>> d = design_from_file(path, "Reaction ~ Days + (1 | Subject)")
    >>> d.term_names, d.n_obs, d.n_groups, d.n_dropped, d.source
    (['Intercept', 'Days'], 180, 18, 0, 'duckdb')
    """
    fmt = check_file(path)
    name = Path(path).name
    reference = dict(reference or {})
    parsed = parse_formula(formula, group, random_slopes=True)
    group = require_group(parsed.group)
    response, variables, terms = parse_terms(parsed)
    model_columns = list(dict.fromkeys([response] + variables + [group]))

    with reading(path, fmt, connection) as con:
        types = file_columns(path, con, fmt=fmt)  # checked above
        check_present(model_columns + list(reference), list(types))
        check_file_types(types, model_columns, group)
        names = list(types) if fmt != "parquet" else None
        source = source_sql(path, fmt, names=names)
        check_case_collisions(path, fmt, types)
        check_has_rows(name, len(con.execute(f"SELECT 1 FROM {source} LIMIT 1").fetchall()))
        # DuckDB guesses types from a sample and can take numbers for text (or dates: 'inf'):
        # a model column whose values all read as numbers, as pandas reads them, is numeric
        forced = {}
        for column in model_columns:
            if column == group or is_numeric_type(types[column]):
                continue
            counts = text_values(con, path, fmt, column, names)
            if fmt != "parquet" and len(counts) and all_numbers(counts):
                forced[column] = "DOUBLE"
                continue
            problem = text_number_problem(column, counts)
            if problem:
                raise DataError(problem)
        if forced:
            types = {**types, **forced}
            source = source_sql(path, fmt, forced, names=names)
        kind = types[response]
        check_response_kind(response, kind, is_numeric_type(kind) and kind != "BOOLEAN")
        # a logical column is a factor with levels FALSE and TRUE, as R treats it
        numeric = [v for v in variables if is_numeric_type(types[v]) and types[v] != "BOOLEAN"]
        categorical = [v for v in variables if v not in numeric]
        for column in reference:
            check_reference_column(column, model_columns, is_numeric_type(types[column]))
        atoms = list(dict.fromkeys(term_atom(names, numeric) for names in terms))
        keys = [RESPONSE_KEY] + [a for a in atoms if a]
        # the sums: the one Ibis expression of helpers.engines, run by DuckDB on this source
        no_nulls = parquet_no_nulls(con, path) if fmt == "parquet" else set()
        cells, shifts, missing = _scan(
            con, source, response, keys, model_columns, categorical, group, centre_rows, no_nulls
        )
        for column in categorical:
            if types[column] == "BOOLEAN" and column != group:
                cells[column] = cells[column].map({"true": "TRUE", "false": "FALSE"})

    stored_levels = {}
    if fmt == "parquet":
        for column in categorical:
            stored = parquet_dictionary_levels(path, column)
            if stored:
                stored_levels[column] = stored
    return engines.design_from_cells(
        cells,
        shifts,
        missing,
        parsed=parsed,
        formula=formula,
        response=response,
        variables=variables,
        numeric=numeric,
        categorical=categorical,
        group=group,
        keys=keys,
        reference=reference,
        name=name,
        stored_levels=stored_levels,
        path=str(path),
    )


def _scan(con, source, response, keys, model_columns, categorical, group, centre_rows, no_nulls=()):
    """:func:`helpers.engines.scan_cells` run by DuckDB on ``source`` (its reader of the file)."""
    return engines.scan_cells(
        engines.duckdb_table(con, source),
        response=response,
        keys=keys,
        model_columns=model_columns,
        categorical=categorical,
        group=group,
        centre_rows=centre_rows,
        no_nulls=no_nulls,
    )


def fit_lmm_file(
    path,
    formula: str,
    *,
    group: str | None = None,
    reference: dict | None = None,
    reml: bool = True,
    centre_rows: int | None = 1_000_000,
):
    """Fit a mixed model (random intercept or slopes) to a CSV or Parquet file through DuckDB, without
    loading its rows.

    Parameters
    ----------
    path : str or os.PathLike
    formula : str
    group : str, optional
    reference : dict, optional
        ``{column: level}`` for categorical predictors.
    reml : bool, default True
    centre_rows : int or None, default 1_000_000
        See :func:`design_from_file`.

    Returns
    -------
    helpers.results.LmmResult
        Its design has no rows, so ``fitted()`` and ``resid()`` raise
        :class:`helpers.design.RowsUnavailable`.

    Examples
    --------
    >>> import tempfile
    >>> from helpers.data import load_dataset
    >>> path = Path(tempfile.mkdtemp()) / "dyestuff.csv"
    >>> load_dataset("dyestuff").to_csv(path, index=False)
    >>> fit = fit_lmm_file(path, "Yield ~ 1 + (1 | Batch)")
    >>> round(fit.criterion, 6), round(float(fit.bse["Intercept"]), 5)
    (319.654277, 19.38341)
    """
    from .fit import fit_lmm

    design = design_from_file(
        path, formula, group=group, reference=reference, centre_rows=centre_rows
    )
    return fit_lmm(design, reml=reml)


def ols_from_stats(stats: SufficientStats, term_names, *, formula: str = "", n_dropped: int = 0):
    """Pooled OLS (R's ``lm``) from sufficient statistics alone.

    Parameters
    ----------
    stats : helpers.design.SufficientStats
    term_names : list of str
    formula : str, optional
    n_dropped : int, default 0

    Returns
    -------
    helpers.results.OlsResult
        With an empty ``resid`` (there are no rows) and no cluster-robust standard errors.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("sleepstudy"), "Reaction ~ Days + (1 | Subject)")
    >>> ols_from_stats(d.stats, d.term_names).bse.round(6).to_dict()
    {'Intercept': 6.610154, 'Days': 1.238195}
    """
    from .fit import ols_from_design

    # the no-rows branch of ols_from_design, on a design holding only these sums
    sums_only = Design(
        term_names=list(term_names),
        response="",
        formula=formula,
        group=None,
        group_labels=None,
        stats=stats,
        n_dropped=n_dropped,
    )
    return ols_from_design(sums_only)
