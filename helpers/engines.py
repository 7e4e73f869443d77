"""Where the data live: what a fit was given, and per-cluster sufficient statistics computed where the
table lives, one Ibis expression for every engine.

:func:`as_design` is the one place where :func:`helpers.fit.fit_lmm`, :func:`helpers.fit.fit_ols` and
:func:`helpers.decompose.decompose` decide what they were given: a Design as it is, a DataFrame to
:func:`helpers.design.build_design`, a table to :func:`design_from_table`.

The fit needs only per-cluster sums (see :mod:`helpers.design`): the row count, the sums of the centred
response, numeric predictors and their products, and their co-moments, per cluster and per combination
of the categorical predictors (a "cell"). This module writes that aggregation once, as an `Ibis
<https://ibis-project.org>`_ expression (:func:`cell_sums`), and runs it wherever the table is: embedded
DuckDB (a file on this machine, the default), Spark (a PySpark DataFrame, a Parquet folder, a cluster),
or any other engine Ibis compiles to. Only the aggregated cells travel back, a few numbers per cluster
and cell; numpy then turns them into :class:`helpers.design.SufficientStats` exactly as
:func:`helpers.large.design_from_file` does, so the fit equals the in-memory fit.

The steps
---------
1. **Types** come from the table's schema: numbers are numeric predictors; text and logical columns
   are categorical, with levels sorted as R sorts them in the C locale (``reference`` moves a level to
   the front), as :func:`helpers.design.build_design` sorts a DataFrame's text columns.
2. **The centring shifts** (:func:`centre_shifts`) are the averages of the response, of each numeric
   predictor and of each product an interaction needs, over the first complete rows (up to
   ``centre_rows``): a small query that reads only those rows.
3. **One grouped scan** (:func:`cell_sums`) groups by cluster, by the categorical predictors and by a
   missing-value flag per numeric column, and returns per cell the row count, the sums of the centred
   values and their population co-moments (``covar_pop``, which DuckDB and Spark accumulate stably).
   Cells with a missing value hold the dropped rows: they are counted and otherwise ignored. When
   the numeric columns are known to hold no NULL (a Parquet file's statistics), the scan has no flags,
   and runs again with them only if a sum shows a NaN (:func:`scan_cells`).
4. **In numpy** the cells become the model's statistics (:func:`design_from_cells`), with the centring
   undone exactly as a reparametrisation (:func:`_combine`).

The cost model: one pass over the data (plus the first rows for the shifts), whatever its size, then a
fit on J clusters' sums, whose cost does not depend on the number of rows.

Random slopes
-------------
The cells already carry every per-cluster cross-product of the keys (the response and the numeric
columns and products): summed over a cluster's cells, ``n (mean mean') + comoment`` is that cluster's
full cross-product matrix. The blocks Z_i'Z_i, Z_i'X_i and Z_i'y_i of a random slope are sums of the
same kind, so a slope variable is one more key (one more product column) in the same expression.
In numpy each column of Z, of Q = X R^{-1} and the OLS residual e is, on a cell, linear in the centred
keys, so the blocks Z_i'Z_i, Z_i'Q_i and Z_i'e_i follow from the cells in the basis the random
intercept's statistics use (:func:`random_cell_sums`), and the fit runs on the one kernel
(:mod:`helpers.kernel`) as for rows. The design's ``random`` then has no row matrix Z: residuals and
fitted values of the rows raise :class:`helpers.design.RowsUnavailable`, as for the random intercept.

The engines
-----------
- a :class:`ibis.expr.types.Table` on any backend: used as it is;
- a PySpark DataFrame: registered as a temporary view of its own session and read through Ibis's
  PySpark backend (:func:`as_table`);
- a file or a folder of Parquet files, by name (:func:`read_table`): read by DuckDB or by Spark.

Spark runs on Java 17; :func:`spark_session` starts a session (local mode by default) and says in one
line how to install what is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import shutil
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .design import Design, SufficientStats, build_design, spec_levels, stats_from_cross_products
from .files import (
    NA_STRINGS,
    all_numbers,
    check_file,
    file_format,
    parquet_dictionary_levels,
    text_number_problem,
)
from .formula import Factor, ModelSpec, Name, parse_formula
from .validate import (
    DataError,
    check_column_type,
    check_enough_rows,
    check_groups,
    check_has_rows,
    check_infinite,
    check_not_empty,
    check_one_group,
    check_present,
    check_reference_column,
    check_reference_level,
    check_response_kind,
    drop_missing,
    require_group,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "ENGINES",
    "EngineUnavailable",
    "as_design",
    "is_table",
    "as_table",
    "table_types",
    "table_kinds",
    "engine_name",
    "column_kind",
    "duckdb_table",
    "spark_session",
    "read_table",
    "centre_shifts",
    "cell_sums",
    "scan_cells",
    "design_from_cells",
    "design_from_table",
    "parquet_levels",
    "parse_terms",
    "term_atom",
    "RESPONSE_KEY",
    "random_cell_sums",
]

#: The engines of the command line: rows in pandas, or the sums computed by DuckDB or by Spark.
ENGINES = ("pandas", "duckdb", "spark")

#: The key of the response among the product columns (the others are tuples of column names).
RESPONSE = "__response__"

_INSTALL_SPARK = (
    "Spark is not installed; install PySpark and Ibis with pip install 'helpers[spark]' (or pip "
    "install pyspark 'ibis-framework[duckdb,pyspark]'), or use --engine duckdb."
)
_INSTALL_IBIS = (
    "Ibis is not installed; install it with pip install 'ibis-framework[duckdb]', or use --engine "
    "pandas."
)
_INSTALL_JAVA = (
    "Spark needs Java 17, which was not found (no 'java' on the PATH or in JAVA_HOME); install it "
    "(on Debian: apt-get install openjdk-17-jre-headless, or make java in the project) or use "
    "--engine duckdb."
)


class EngineUnavailable(DataError):
    """An engine asked for is not installed (Ibis, PySpark or Java); the message says how to install it."""


def _require(module: str, message: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise EngineUnavailable(message)


def _ibis():
    _require("ibis", _INSTALL_IBIS)
    import ibis

    return ibis


def _dt():
    """Ibis's data types, as objects: a type named by a string (``"float64"``) is parsed by a grammar
    Ibis builds afresh for each new string, about 20-100 ms the first time in a process."""
    import ibis.expr.datatypes as dt

    return dt


def _is_spark_frame(data: Any) -> bool:
    """A PySpark DataFrame (classic or Spark Connect), recognised without importing PySpark."""
    kind = type(data)
    return kind.__name__ == "DataFrame" and kind.__module__.startswith("pyspark.sql")


def is_table(data: Any) -> bool:
    """Whether ``data`` is a table this module aggregates where it lives: an Ibis table expression or
    a PySpark DataFrame (never a pandas DataFrame, whose rows are already here).

    Examples
    --------
    >>> is_table(pd.DataFrame({"y": [1.0]}))
    False
    >>> import ibis
    >>> is_table(ibis.memtable({"y": [1.0]}))
    True
    """
    if _is_spark_frame(data):
        return True
    kind = type(data)
    if not kind.__module__.startswith("ibis."):
        return False
    import ibis.expr.types as ir

    return isinstance(data, ir.Table)


def as_table(data: Any) -> ir.Table:
    """An Ibis table expression for ``data``: an Ibis table as it is, or a PySpark DataFrame read
    through Ibis's PySpark backend on the DataFrame's own session (as a temporary view).

    Raises
    ------
    EngineUnavailable
        When Ibis (or its PySpark backend) is not installed.
    DataError
        For anything else (a pandas DataFrame belongs to :func:`helpers.design.build_design`).
    """
    ibis = _ibis()
    if _is_spark_frame(data):
        _require("pyspark", _INSTALL_SPARK)
        session = data.sparkSession
        name = f"lmm_rows_{next(_VIEW_NUMBERS)}_{os.getpid()}"
        data.createOrReplaceTempView(name)
        return ibis.pyspark.connect(session).table(name)
    if is_table(data):
        return data
    raise DataError(
        f"Expected an Ibis table or a PySpark DataFrame, got {type(data).__name__}; a pandas "
        "DataFrame goes to build_design (or fit_lmm) directly."
    )


_VIEW_NUMBERS = itertools.count(1)


def column_kind(dtype) -> str:
    """``"numeric"``, ``"float"``, ``"logical"``, ``"text"``, ``"dates"`` or ``"unusable"`` for an Ibis type."""
    if dtype.is_floating():
        return "float"
    if dtype.is_numeric():
        return "numeric"
    if dtype.is_boolean():
        return "logical"
    if dtype.is_string() or dtype.is_null():
        return "text"
    if dtype.is_temporal() or dtype.is_interval():
        return "dates"
    return "unusable"


def duckdb_table(connection, source: str) -> ir.Table:
    """An Ibis table over a DuckDB relation given as SQL (``read_parquet(...)``, ``read_csv(...)``)
    on an open DuckDB connection: how :func:`helpers.large.design_from_file` hands its reader to the
    aggregation."""
    ibis = _ibis()
    name = f"lmm_source_{next(_VIEW_NUMBERS)}"
    connection.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {source}")
    with _quiet_ibis():
        return ibis.duckdb.from_connection(connection).table(name)


def engine_name(table: ir.Table) -> str:
    """The engine an Ibis table runs on, as a design records it: ``"duckdb"``, ``"spark"`` (Ibis's
    PySpark backend), or another backend's name (``"postgres"``, ``"bigquery"``, ...); a table of
    rows given in memory (``ibis.memtable``) runs on Ibis's default backend, DuckDB.

    Examples
    --------
    >>> import ibis
    >>> engine_name(ibis.memtable({"y": [1.0]}))
    'duckdb'
    """
    name = table._find_backend(use_default=True).name
    return "spark" if name == "pyspark" else str(name)


def table_kinds(table: ir.Table, columns: Sequence[str]) -> dict[str, str]:
    """Column -> :func:`column_kind` of its type in the table's schema, for ``columns``."""
    schema = table.schema()
    return {c: column_kind(schema[c]) for c in columns}


def table_types(table: ir.Table) -> dict[str, str]:
    """Column name -> its Ibis type, as text (``"float64"``, ``"string"``, ...), in table order."""
    return {name: str(dtype) for name, dtype in table.schema().items()}


def spark_session(
    master: str = "local[*]",
    *,
    app_name: str = "mixed-models",
    config: Mapping[str, str] | None = None,
):
    """A Spark session (an existing one with the same master is reused), with a one-line error when
    PySpark or Java is missing.

    Parameters
    ----------
    master : str, default "local[*]"
        ``local[*]`` (this machine, every core), ``local[2]``, ``spark://host:7077``, ``yarn``, ... A
        Spark Connect address (``sc://host:15002``) starts a remote session instead.
    app_name : str
    config : dict, optional
        Further Spark settings. In local mode the web UI is off, the driver listens on 127.0.0.1 only
        and the scratch folders are in the system's temporary folder, unless set here.

    Raises
    ------
    EngineUnavailable
        When PySpark or Java is not installed, saying how to install it.
    """
    _require("pyspark", _INSTALL_SPARK)
    _require("ibis", _INSTALL_SPARK)
    from pyspark.sql import SparkSession

    if master.startswith("sc://"):
        return SparkSession.builder.remote(master).appName(app_name).getOrCreate()
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        raise EngineUnavailable(_INSTALL_JAVA)
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
    }
    if master.startswith("local"):
        import tempfile

        settings |= {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.local.dir": tempfile.gettempdir(),
            "spark.sql.shuffle.partitions": "4",
        }
    settings |= dict(config or {})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def check_parquet_folder(path) -> None:
    """Refuse a folder without Parquet files (in it or below it), in one line.

    Examples
    --------
    >>> import tempfile
    >>> check_parquet_folder(tempfile.mkdtemp(prefix="empty"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: The folder '...' holds no .parquet files; give a Parquet file, ...
    """
    if not any(Path(path).glob("**/*.parquet")):
        raise DataError(
            f"The folder {str(path)!r} holds no .parquet files; give a Parquet file, a folder of "
            "Parquet files or a CSV file."
        )


def read_table(path, engine: str = "duckdb", *, session=None, master: str = "local[*]"):
    """An Ibis table over a Parquet file, a folder of Parquet files or a CSV file, read by ``engine``.

    Parameters
    ----------
    path : str or os.PathLike
    engine : {"duckdb", "spark"}
    session : pyspark.sql.SparkSession, optional
        For ``engine="spark"``; :func:`spark_session` with ``master`` by default.
    master : str, default "local[*]"

    Returns
    -------
    ibis.expr.types.Table
        A CSV file is read in the dialect pandas reads, with the strings pandas reads as missing
        (``NA``, ``NULL``, an empty field, ...) as missing; pass ``text_numbers=True`` to
        :func:`design_from_table` so that a column of numbers with such gaps is numeric, as in pandas.

    Raises
    ------
    DataError
        For a missing path, an unknown format, or a folder without Parquet files.
    """
    if engine not in ("duckdb", "spark"):
        raise DataError(f"Unknown engine {engine!r}; use one of 'duckdb', 'spark'.")
    p = Path(path)
    if p.is_dir():
        check_parquet_folder(p)
        fmt = "parquet"
    elif not p.exists() and "://" in str(
        path
    ):  # object storage (s3a://, gs://, abfss://): Spark reads it
        fmt = file_format(path)
    else:
        fmt = check_file(path)
    ibis = _ibis()
    with _quiet_ibis():
        return _read(ibis, str(path), fmt, engine, session, master)


def _read(ibis, path: str, fmt: str, engine: str, session, master: str):
    p = Path(path)
    if engine == "duckdb":
        con = ibis.duckdb.connect()
        if fmt == "parquet":
            target = str(p / "**" / "*.parquet") if p.is_dir() else str(p)
            return con.read_parquet(target)
        return con.read_csv(
            str(p),
            header=True,
            nullstr=list(NA_STRINGS),
            delim="\t" if fmt == "tsv" else ",",
            quote='"',
            escape='"',
        )
    session = session or spark_session(master)
    con = ibis.pyspark.connect(session)
    if fmt == "parquet":
        return con.read_parquet(path)
    table = con.read_csv(path, header=True, inferSchema=True, sep="\t" if fmt == "tsv" else ",")
    # Spark reads an empty field as missing; the other strings pandas reads as missing too
    markers = [s for s in NA_STRINGS if s]
    text = [c for c, t in table.schema().items() if t.is_string()]
    return table.mutate(
        **{
            c: ibis.cases((table[c].isin(markers), ibis.null(_dt().string)), else_=table[c])
            for c in text
        }
    )


def _missing(column, kind: str):
    if kind == "float":
        return column.isnull() | column.isnan()
    return column.isnull()


def _value(table, key, response: str):
    names = [response] if key == RESPONSE else list(key)
    value = None
    for name in names:
        term = table[name].cast(_dt().float64)
        value = term if value is None else value * term
    return value


def centre_shifts(
    table: ir.Table,
    keys: Sequence,
    response: str,
    complete,
    centre_rows: int | None = 1_000_000,
) -> dict:
    """The centring shifts: the average of each key over the first ``centre_rows`` complete rows.

    Parameters
    ----------
    table : ibis.expr.types.Table
    keys : list
        :data:`RESPONSE` and tuples of numeric columns (a product).
    response : str
    complete : ibis boolean expression
        True on rows without a missing value in a model column.
    centre_rows : int or None
        None averages every complete row (a second full scan).

    Returns
    -------
    dict
        key -> shift (0.0 where the average is undefined).
    """
    values = table.filter(complete).select(
        **{f"v{a}": _value(table, key, response) for a, key in enumerate(keys)}
    )
    if centre_rows is not None:
        values = values.limit(int(centre_rows))
    row = values.aggregate(**{f"a{a}": values[f"v{a}"].mean() for a in range(len(keys))})
    with _nan_tests_evaluated(table):
        found = _run(row).to_pylist()[0]
    shifts = {}
    for a, key in enumerate(keys):
        v = found[f"a{a}"]
        shifts[key] = float(v) if v is not None and np.isfinite(v) else 0.0
    return shifts


def cell_sums(
    table: ir.Table,
    keys: Sequence,
    shifts: Mapping,
    *,
    response: str,
    group: str,
    categorical: Sequence[str] = (),
    flagged: Mapping[str, str] | None = None,
    comoments: bool = True,
) -> ir.Table:
    """The one aggregation: per cell, the row count and the sums and co-moments of the centred keys.

    Parameters
    ----------
    table : ibis.expr.types.Table
    keys : list
        :data:`RESPONSE` and tuples of numeric columns; the value of a tuple is the product of its
        columns. Random-slope blocks are more of the same (see the module notes).
    shifts : dict
        key -> the number subtracted from its value before summing (:func:`centre_shifts`).
    response, group : str
    categorical : list of str
        Predictors grouped by as text (not the grouping column).
    flagged : dict, optional
        Numeric column -> its kind (``"float"`` or ``"numeric"``): a missing-value flag per column
        (NaN counts as missing in a float column).
    comoments : bool, default True
        Also the population co-moments of every pair of keys (``covar_pop``).

    Returns
    -------
    ibis.expr.types.Table
        Columns ``__group``, ``__k{i}`` (the categorical predictors, as text), ``__m{i}`` (the flags),
        ``n_rows``, ``s{a}`` and ``c{a}_{b}`` (a <= b). Nothing is run until it is executed.
    """
    flagged = dict(flagged or {})
    select = {"__group": table[group]}
    for i, column in enumerate(categorical):
        select[f"__k{i}"] = table[column].cast(_dt().string)
    for i, (column, kind) in enumerate(flagged.items()):
        select[f"__m{i}"] = _missing(table[column], kind)
    for a, key in enumerate(keys):
        select[f"__d{a}"] = _value(table, key, response) - float(shifts[key])
    rows = table.select(**select)
    by = [name for name in select if not name.startswith("__d")]
    aggs = {"n_rows": rows.count()}
    m = len(keys)
    for a in range(m):
        aggs[f"s{a}"] = rows[f"__d{a}"].sum()
    if comoments:
        for a in range(m):
            for b in range(a, m):
                aggs[f"c{a}_{b}"] = rows[f"__d{a}"].cov(rows[f"__d{b}"], how="pop")
    return rows.group_by(by).aggregate(**aggs)


@contextlib.contextmanager
def _quiet_ibis():
    """Without the notices Ibis triggers by calling DuckDB's and pandas' older names (not ours)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis\.")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"ibis\.")
        yield


@contextlib.contextmanager
def _nan_tests_evaluated(table):
    """Run a query that tests for NaN or infinity (``isnan``, ``isinf``) on ``table``'s engine.

    DuckDB reads a float column's Parquet statistics, whose minimum and maximum leave NaN out, as the
    range of its values, and its statistics propagation then folds ``isnan(y)`` and ``isinf(y)`` to
    false: a NaN would be neither dropped nor counted. On DuckDB the query runs without that optimiser
    (set back as it was afterwards; it costs the grouped scan 5 to 10%); other engines run it as it is.
    """
    backend = table._find_backend(use_default=True)
    con = getattr(backend, "con", None) if backend.name == "duckdb" else None
    if con is None:
        yield
        return
    before = con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0] or ""
    names = [n.strip() for n in before.split(",") if n.strip()]
    if "statistics_propagation" in names:
        yield
        return
    quoted = ",".join(names + ["statistics_propagation"]).replace("'", "''")
    con.execute(f"SET disabled_optimizers = '{quoted}'")
    try:
        yield
    finally:
        con.execute("SET disabled_optimizers = '" + before.replace("'", "''") + "'")


def _run(expr):
    """Run an expression on its engine and return a pyarrow table."""
    with _quiet_ibis():
        return expr.to_pyarrow()


def _fetch(expr) -> pd.DataFrame:
    """Run an expression and return its (few) rows, with Python values as the engine gives them."""
    table = _run(expr)
    return pd.DataFrame(
        {
            name: pd.Series(table.column(name).to_pylist(), dtype=object)
            for name in table.column_names
        }
    )


def scan_cells(
    table: ir.Table,
    *,
    response: str,
    keys: Sequence,
    model_columns: Sequence[str],
    categorical: Sequence[str],
    group: str,
    kinds: Mapping[str, str] | None = None,
    centre_rows: int | None = 1_000_000,
    no_nulls: Collection[str] = (),
) -> tuple[pd.DataFrame, dict, dict]:
    """The first pass (centring shifts) and the one grouped scan, run where the table lives.

    ``kinds`` (column -> :func:`column_kind`) defaults to the kinds of the table's schema
    (:func:`table_kinds`).

    ``no_nulls`` names columns known to hold no NULL (a Parquet file's statistics count them). When it
    holds every numeric model column (and no float column is only grouped by, as a numeric grouping
    column is), the scan groups by no missing-value flag, a grouping key less per column (about a
    tenth of the scan's time for one). A NaN or an infinite value still shows, as a sum that is not
    finite: the scan then runs again with the flags, as it does without ``no_nulls``, so the result is
    the same either way.

    Returns
    -------
    cells : pandas.DataFrame
        One row per cluster x categorical levels x missing flags, with the columns of
        :func:`cell_sums` (``__k{i}`` renamed to the column), ``n`` (the rows used: 0 in a cell of
        dropped rows) and, when the grouping column is categorical, a copy of ``__group`` under its name.
    shifts : dict
    missing : dict
        Column -> rows with a missing value in it.
    """
    ibis = _ibis()
    kinds = dict(kinds) if kinds is not None else table_kinds(table, model_columns)
    others = [c for c in categorical if c != group]
    numeric = {c: kinds[c] for c in model_columns if kinds[c] in ("float", "numeric")}
    # a NaN shows in the sums only in a column that is summed (not in a numeric grouping column)
    summed = {response} | {v for key in keys if key != RESPONSE for v in key}
    unflagged = set(numeric) <= set(no_nulls) and all(
        kind != "float" or c in summed for c, kind in numeric.items()
    )
    flagged = {} if unflagged else numeric
    complete = ibis.and_(*[~_missing(table[c], kinds[c]) for c in model_columns])
    shifts = centre_shifts(table, keys, response, complete, centre_rows)

    def scan(flagged):
        expr = cell_sums(
            table, keys, shifts, response=response, group=group, categorical=others, flagged=flagged
        )
        with _nan_tests_evaluated(table) if flagged else contextlib.nullcontext():
            return _fetch(expr)

    cells = scan(flagged)
    if len(flagged) < len(numeric) and not _sums_finite(cells):
        flagged = numeric  # a NaN or an infinite value in a column without NULLs: flag them
        cells = scan(flagged)
    cells = cells.rename(columns={f"__k{i}": c for i, c in enumerate(others)})
    if group in categorical:
        cells[group] = cells["__group"].map(lambda v: v if v is None else str(v))
    n_rows = cells["n_rows"].to_numpy(dtype=np.int64)
    dropped = np.zeros(len(cells), dtype=bool)
    missing = {}
    names = list(flagged)
    for column in model_columns:
        if column in flagged:
            flag = cells[f"__m{names.index(column)}"]
            is_missing = flag.map(bool).to_numpy(dtype=bool)
        elif column in numeric:  # no NULL, and the sums show no NaN
            is_missing = np.zeros(len(cells), dtype=bool)
        else:
            is_missing = cells["__group" if column == group else column].isna().to_numpy()
        missing[column] = int(n_rows[is_missing].sum())
        dropped |= is_missing
    cells["n"] = np.where(dropped, 0, n_rows)
    cells = cells.drop(columns=[f"__m{i}" for i in range(len(names))])
    sums = [c for c in cells.columns if c[0] in "sc" and c[1:2].isdigit()]
    for column in sums:
        cells[column] = pd.to_numeric(cells[column], errors="coerce").astype(float)
    used = cells.loc[cells["n"] > 0, sums].to_numpy(dtype=float)
    if used.size and not np.isfinite(used).all():
        atoms = {v for key in keys if key != RESPONSE for v in key}
        for column in [response] + [c for c in model_columns if c in atoms]:
            counted = table.filter(table[column].cast(_dt().float64).isinf()).count()
            with _nan_tests_evaluated(table):
                check_infinite(column, int(_run(counted).as_py()))
        raise DataError(
            "The sums of the model columns overflow; rescale the response or the predictors."
        )
    return cells, shifts, missing


def _sums_finite(cells: pd.DataFrame) -> bool:
    """Whether every sum and co-moment of every cell is a finite number."""
    sums = [c for c in cells.columns if c[0] in "sc" and c[1:2].isdigit()]
    values = cells[sums].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return bool(np.isfinite(values).all())


def design_from_cells(
    cells: pd.DataFrame,
    shifts: Mapping,
    missing: Mapping[str, int],
    *,
    parsed,
    formula: str,
    response: str,
    variables: Sequence[str],
    numeric: Sequence[str],
    categorical: Sequence[str],
    group: str,
    keys: Sequence,
    reference: Mapping[str, object],
    name: str,
    stored_levels: Mapping[str, tuple[list, bool]] | None = None,
    path: str | None = None,
    engine: str = "duckdb",
) -> Design:
    """The model's :class:`helpers.design.Design` from the aggregated cells, with the checks of
    :mod:`helpers.validate` applied to what the scan counted (rows, missing values, clusters, levels).

    ``stored_levels`` gives a categorical column's stored level order and whether it is ordered (a
    Parquet dictionary column); other text columns take their levels sorted. ``name`` names the data
    in the message for a table without rows; ``engine`` (:func:`engine_name`) is what computed the
    cells, recorded as the design's ``source``.
    """
    from .random_terms import needs_random_terms

    # sorted, as build_design lists them, so the messages and the counts read the same
    model_columns = sorted(dict.fromkeys([response, *variables, group]), key=str)
    n_all = int(cells["n_rows"].sum()) if len(cells) else 0
    check_has_rows(name, n_all)
    for column in model_columns:
        check_not_empty(column, n_all, missing.get(column, 0))
    complete = cells[cells["n"] > 0].reset_index(drop=True)
    n_obs = int(complete["n"].sum())
    n_dropped = n_all - n_obs
    dropped_by_column = {c: int(missing[c]) for c in model_columns if missing.get(c, 0)}
    drop_missing(n_all, dropped_by_column, n_dropped, model_columns, stacklevel=3)

    for column, wanted in reference.items():
        key = "__group" if column == group else column
        check_reference_level(column, wanted, sorted({str(v) for v in cells[key].dropna()}))
    levels, is_ordered = {}, {}
    stored_levels = dict(stored_levels or {})
    for column in categorical:
        wanted = reference.get(column)
        present = sorted({str(v) for v in complete[column]})
        stored = stored_levels.get(column)
        if stored:
            ordered = [v for v in stored[0] if v in present]
            ordered += [v for v in present if v not in stored[0]]
            is_ordered[column] = stored[1]
        else:
            ordered = present
        if wanted is not None and str(wanted) in ordered:
            ordered = [str(wanted)] + [v for v in ordered if v != str(wanted)]
        levels[column] = ordered

    labels = sorted(set(complete["__group"].tolist()), key=lambda v: (str(type(v)), v))
    check_groups(group, len(labels), n_obs)
    codes = pd.Index(labels).get_indexer(complete["__group"])

    # each model column on a cell: its categorical indicator times the product of its numeric columns
    spec = ModelSpec(parsed.model)
    fixed = {var.label for var in parsed.model.predictors}
    values = {}
    for column in variables:
        if column in numeric:
            values[column] = np.ones(len(complete))
        else:
            codes_c = pd.Index(levels[column]).get_indexer(complete[column].astype(str))
            values[column] = Factor(
                codes_c, levels[column], list(levels[column]), is_ordered.get(column, False)
            )
    every_cell = np.ones(len(complete), dtype=bool)
    cell_values = values
    values = spec.learn({k: v for k, v in values.items() if k in fixed}, every_cell)
    indicator = spec.matrix(values, len(complete), unit_numeric=True)
    term_names = list(spec.column_names)
    check_enough_rows(n_obs, len(term_names))
    column_atoms = [tuple(sorted(atom)) for atom in spec.column_numeric]
    atoms = [key for key in keys if key != RESPONSE]
    stats, basis = _combine_with_basis(
        complete, indicator, column_atoms, atoms, dict(shifts), codes, len(labels), term_names
    )
    random = None
    if needs_random_terms(parsed.model.bars):
        random = _random_effects(parsed.model, cell_values, basis, codes, stats, group)
    return Design(
        term_names=term_names,
        response=response,
        formula=formula,
        group=group,
        group_labels=pd.Index(labels, name=group),
        stats=stats,
        n_dropped=n_dropped,
        dropped_by_column=dropped_by_column,
        model_spec=spec,
        reference_levels=dict(spec.reference_levels),
        levels=spec_levels(spec),
        path=path,
        engine=engine,
        random=random,
    )


def _random_effects(model, cell_values, basis, codes, stats, group: str):
    """The random-slope blocks from the cells (:func:`helpers.engines.random_cell_sums`), checked as
    :func:`helpers.random_terms.build_random_effects` checks the rows."""
    from .random_terms import check_support, random_effects_from_sums, random_term_columns

    n_cells = len(codes)
    terms, matrices, z_atoms = random_term_columns(
        model, cell_values, np.ones(n_cells, dtype=bool), n_cells, group
    )
    n_groups = stats.n_groups
    cross, within, scale, constant = random_cell_sums(
        basis, np.hstack(matrices), z_atoms, codes, n_groups
    )
    names = [n for term in terms for n in term.names]
    check_support(names, n_groups, group, stats.n_obs, within, scale, constant)
    return random_effects_from_sums(terms, cross, stats.n_obs, stats, group)


def _example(table, column: str) -> str | None:
    found = _run(table.filter(table[column].notnull()).select(column).limit(1))
    values = found.column(column).to_pylist()
    return str(values[0]) if values else None


def design_from_table(
    data,
    formula: str,
    *,
    group: str | None = None,
    reference: Mapping[str, object] | None = None,
    centre_rows: int | None = 1_000_000,
    name: str = "the table",
    text_numbers: bool = False,
    stored_levels: Mapping[str, tuple[list, bool]] | None = None,
) -> Design:
    """Compute a model's sufficient statistics where the table lives, and return its design.

    Parameters
    ----------
    data : ibis.expr.types.Table or pyspark.sql.DataFrame
        The rows, on any Ibis backend (DuckDB, Spark, ...) or as a PySpark DataFrame. They are never
        brought here: the engine returns a few sums per cluster and cell.
    formula : str
        ``"y ~ x + (1 | g)"``, ``"y ~ x + (1 + x | g)"`` (any random terms of one grouping factor), or
        a fixed-effects formula with ``group``. Plain columns and their interactions (as
        :func:`helpers.large.design_from_file`).
    group : str, optional
    reference : dict, optional
        ``{column: level}``: the reference (first) level of a categorical predictor.
    centre_rows : int or None, default 1_000_000
        How many complete rows the first pass averages for the centring shifts.
    name : str
        What to call the data in a message (a file name, or "the table").
    text_numbers : bool, default False
        Read a model column of text whose values all read as numbers as numbers, as pandas reads a
        CSV file (True for a table read from CSV by :func:`read_table`; a DataFrame's text stays text).
    stored_levels : dict, optional
        Column -> (levels, ordered): a categorical column's own level order, as pandas keeps it (from
        :func:`parquet_levels` for a Parquet file whose text columns are dictionaries); other text
        columns take their levels sorted.

    Returns
    -------
    helpers.design.Design
        Without rows, with the statistics, terms, levels, counts and dropped rows that
        :func:`helpers.design.build_design` gives for the same rows in a DataFrame.

    Raises
    ------
    DataError
        For a column not in the table, a non-numeric response, too few clusters, an absent reference
        level, or a formula this path cannot compute, with the messages of :mod:`helpers.validate`.
    EngineUnavailable
        When Ibis (or, for a PySpark DataFrame, PySpark) is not installed.

    Examples
    --------
    >>> import ibis
    >>> from helpers.data import load_dataset
    >>> table = ibis.memtable(load_dataset("sleepstudy"))
    >>> d = design_from_table(table, "Reaction ~ Days + (1 | Subject)")
    >>> d.term_names, d.n_obs, d.n_groups
    (['Intercept', 'Days'], 180, 18)
    """
    table = as_table(data)
    reference = dict(reference or {})
    parsed = parse_formula(formula, group, random_slopes=True)
    group = require_group(parsed.group)
    response, variables, terms = parse_terms(parsed)
    model_columns = list(dict.fromkeys([response, *variables, group]))

    schema = table.schema()
    check_present(model_columns + list(reference), list(schema))
    if text_numbers:
        # a text column whose values all read as numbers is numeric, as pandas reads a CSV file
        forced = {}
        for column in model_columns:
            if column != group and schema[column].is_string():
                counts = _text_counts(table, column)
                if len(counts) and all_numbers(counts):
                    forced[column] = table[column].try_cast(_dt().float64)
        if forced:
            table = table.mutate(**forced)
            schema = table.schema()
    types = {c: str(t) for c, t in schema.items()}
    kinds = table_kinds(table, model_columns)
    for column in model_columns:
        check_column_type(
            column,
            types[column],
            dates=kinds[column] == "dates",
            unusable=kinds[column] == "unusable",
            group=column == group,
        )
    kind = kinds[response]
    numeric_response = kind in ("float", "numeric")
    check_response_kind(
        response,
        types[response],
        numeric_response,
        None if numeric_response else _example(table, response),
    )
    numeric = [v for v in variables if kinds[v] in ("float", "numeric")]
    categorical = [v for v in variables if v not in numeric]
    for column in reference:
        check_reference_column(column, model_columns, kinds.get(column) in ("float", "numeric"))
    for column in categorical:
        if column != group and kinds[column] == "text":
            counts = _text_counts(table, column)
            problem = text_number_problem(column, counts)
            if problem:
                raise DataError(problem)
    atoms = list(dict.fromkeys(term_atom(names, numeric) for names in terms))
    keys = [RESPONSE] + [a for a in atoms if a]
    cells, shifts, missing = scan_cells(
        table,
        response=response,
        keys=keys,
        model_columns=model_columns,
        kinds=kinds,
        categorical=categorical,
        group=group,
        centre_rows=centre_rows,
    )
    for column in categorical:
        if kinds[column] == "logical" and column != group:
            cells[column] = cells[column].map(
                lambda v: (
                    v if v is None else {"true": "TRUE", "false": "FALSE"}.get(str(v).lower(), v)
                )
            )
    return design_from_cells(
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
        engine=engine_name(table),
    )


def parquet_levels(path, columns: Sequence[str]) -> dict:
    """The stored level order of the dictionary (pandas categorical) columns among ``columns`` of a
    Parquet file, or of the first file of a folder of them: ``{column: (levels, ordered)}``.

    Engines read such a column as plain text; passing these to :func:`design_from_table` keeps the
    reference level pandas (and R's arrow) would take.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("**/*.parquet"))
        if not files:
            return {}
        p = files[0]
    found = {}
    for column in columns:
        stored = parquet_dictionary_levels(p, column)
        if stored:
            found[column] = stored
    return found


def _text_counts(table, column: str, rows: int = 100_000) -> pd.Series:
    """How often each value of a text column occurs among its first non-missing values."""
    values = table.filter(table[column].notnull()).select(v=table[column]).limit(rows)
    found = _fetch(values.group_by("v").aggregate(k=values.count()))
    return pd.Series(
        dict(zip(found["v"].tolist(), (int(k) for k in found["k"]), strict=True)), dtype="int64"
    )


# --- from the cells' sums to the statistics: the algebra behind every engine's aggregation -------


def parse_terms(parsed):
    """The response, the predictors, and each term's columns; a DataError for what SQL cannot compute."""
    model = parsed.model

    def refuse(piece: str) -> DataError:
        return DataError(
            f"The large-file path cannot compute {piece!r}: it supports plain columns and their "
            "interactions. Add the transformed values to the file as a column, or fit without the "
            "large-file path."
        )

    if not isinstance(model.response.node, Name):
        raise refuse(model.response.label)
    if model.offsets:
        raise refuse(model.offsets[0].label)
    for var in model.predictors:
        if not isinstance(var.node, Name):
            raise refuse(var.label)
    response = model.response.label
    variables = [var.label for var in model.predictors if var.label != response]
    terms = [list(term) for term in model.terms]
    # the random slopes' columns: plain columns too, each one more key of the same aggregation
    for bar in model.bars:
        for term in bar.terms:
            for label in term:
                var = model.variables[label]
                if not isinstance(var.node, Name):
                    raise refuse(var.label)
                if label not in variables and label != response:
                    variables.append(label)
            terms.append(list(term))
    return response, variables, terms


def term_atom(names, numeric) -> tuple:
    """The numeric columns of a term, as a sorted tuple (the product a model column carries)."""
    return tuple(sorted(v for v in names if v in numeric))


RESPONSE_KEY = "__response__"


def _in_span(basis: np.ndarray, target: np.ndarray):
    """Coefficients v with basis @ v == target on every cell, or None when target is not in the span."""
    if basis.shape[1] == 0:
        return None
    v, *_ = np.linalg.lstsq(basis, target, rcond=None)
    if np.max(np.abs(basis @ v - target), initial=0.0) > 1e-9 * max(1.0, np.abs(target).max()):
        return None
    # dummies give integer combinations (the intercept, or a full set of levels); take them exactly,
    # since the coefficients multiply the centring shifts
    exact = np.round(v)
    if np.array_equal(basis @ exact, target):
        return exact
    return v


def _combine(cells, indicator, column_atoms, atoms, shifts, codes, n_groups, term_names):
    """Per-cell counts, sums and co-moments -> the model's sufficient statistics (see
    :func:`_combine_with_basis`)."""
    return _combine_with_basis(
        cells, indicator, column_atoms, atoms, shifts, codes, n_groups, term_names
    )[0]


def _combine_with_basis(cells, indicator, column_atoms, atoms, shifts, codes, n_groups, term_names):
    """Per-cell counts, sums and co-moments -> the model's sufficient statistics, and the basis in
    which they were formed (:class:`_CellBasis`, for the random-slope blocks of :func:`random_cell_sums`).

    Write d for a centred value (value - shift). On a cell, a model column is X_j = I_j (d_a + shift_a),
    with I_j its categorical indicator and a its numeric column (or product of columns), or X_j = I_j for
    a dummy. When I_j is a combination of the dummy columns (always, with main effects present), the
    centred column Z_j = I_j d_a is X_j minus shift_a times that combination: Z = X T with T = I - N and
    N^2 = 0. Likewise y - shift_y, when the model's columns span the constant. The statistics of
    (Z, y - shift_y) are formed from the cells and mapped back to X exactly: R_x = R_z T^{-1} = R_z (I + N)
    and beta_x = T gamma + shift_y w (X w = 1); the sums of Q and of the OLS residuals do not change.

    The within-cluster cross-products are summed from the cells' own co-moments (which DuckDB
    accumulates stably) plus the spread of the cell means around their cluster's mean, so they keep full
    precision when the clusters differ by much more than the rows within them.
    """
    keys = [RESPONSE_KEY] + atoms
    m = len(keys)
    n_cells, p = indicator.shape
    count = cells["n"].to_numpy(dtype=float)
    safe = np.maximum(count, 1.0)
    means = np.column_stack([cells[f"s{a}"].to_numpy(dtype=float) / safe for a in range(m)])
    comoment = np.zeros((n_cells, m, m))
    for a in range(m):
        for b in range(a, m):
            v = np.nan_to_num(cells[f"c{a}_{b}"].to_numpy(dtype=float)) * count
            comoment[:, a, b] = comoment[:, b, a] = v
    position = {k: a for a, k in enumerate(keys)}

    # loadings[c] writes (Z_1 .. Z_p, y - shift_y) on cell c as offset + slope @ d
    offset = np.zeros((n_cells, p + 1))
    slope = np.zeros((n_cells, p + 1, m))
    dummies = [j for j, atom in enumerate(column_atoms) if not atom]
    basis = indicator[:, dummies]
    n_matrix = np.zeros((p, p))
    for j, atom in enumerate(column_atoms):
        if not atom:
            offset[:, j] = indicator[:, j]
            continue
        slope[:, j, position[atom]] = indicator[:, j]
        v = _in_span(basis, indicator[:, j])
        if v is None:  # not centrable: keep X_j itself
            offset[:, j] = indicator[:, j] * shifts[atom]
        else:
            n_matrix[dummies, j] = shifts[atom] * v
    w = _in_span(basis, np.ones(n_cells))
    weights = np.zeros(p)
    y_shift = 0.0
    if w is not None:
        weights[dummies] = w
        y_shift = shifts[RESPONSE_KEY]
    slope[:, p, 0] = 1.0
    offset[:, p] = shifts[RESPONSE_KEY] - y_shift

    cell_mean = offset + np.einsum("cjm,cm->cj", slope, means)
    internal = np.einsum("cjm,cmn,ckn->jk", slope, comoment, slope)
    cross = internal + np.einsum("c,cj,ck->jk", count, cell_mean, cell_mean)
    counts = np.bincount(codes, weights=count, minlength=n_groups)
    sums = np.column_stack(
        [
            np.bincount(codes, weights=count * cell_mean[:, j], minlength=n_groups)
            for j in range(p + 1)
        ]
    ).reshape(n_groups, p + 1)
    spread = cell_mean - (sums / np.maximum(counts, 1.0)[:, None])[codes]
    within = internal + np.einsum("c,cj,ck->jk", count, spread, spread)
    cross = 0.5 * (cross + cross.T)
    within = 0.5 * (within + within.T)

    base = stats_from_cross_products(
        counts.round().astype(np.int64),
        sums[:, :p],
        sums[:, p],
        cross[:p, :p],
        cross[:p, p],
        float(cross[p, p]),
        term_names,
    )
    # the within cross-products of Q = Z R^{-1} and of e = y - Z gamma, from the accurate ones of (Z, y)
    r_z, gamma = base.r_factor, base.beta_ols
    w_zz, w_zy, w_yy = within[:p, :p], within[:p, p], float(within[p, p])
    r_inv = np.linalg.inv(r_z)
    w_ze = w_zy - w_zz @ gamma
    within_qq = r_inv.T @ w_zz @ r_inv
    within_qe = r_inv.T @ w_ze
    within_ee = max(w_yy - 2.0 * float(gamma @ w_zy) + float(gamma @ w_zz @ gamma), 0.0)

    r_x = r_z @ (np.eye(p) + n_matrix)
    sum_q = base.sum_q
    if np.abs(np.tril(r_x, -1)).max(initial=0.0) > 0:
        rotation, r_x = np.linalg.qr(r_x)
        sum_q = sum_q @ rotation
        within_qq = rotation.T @ within_qq @ rotation
        within_qe = rotation.T @ within_qe
    else:
        rotation = np.eye(p)
    beta = gamma - n_matrix @ gamma + y_shift * weights
    basis = _CellBasis(
        count=count,
        means=means,
        comoment=comoment,
        position=position,
        shifts=dict(shifts),
        offset=offset,
        slope=slope,
        q_map=r_inv @ rotation,
        gamma=gamma,
    )
    stats = SufficientStats(
        counts=base.counts,
        sum_q=sum_q,
        sum_e=base.sum_e,
        ete=base.ete,
        r_factor=r_x,
        beta_ols=beta,
        within_qq=0.5 * (within_qq + within_qq.T),
        within_qe=within_qe,
        within_ee=within_ee,
    )
    return stats, basis


@dataclass(frozen=True, eq=False)
class _CellBasis:
    """How :func:`_combine_with_basis` wrote each cell: the counts, the means and co-moments of the
    centred keys d, and the loadings of the centred model columns Z_c and of y - shift_y on a cell
    (``offset + slope @ d``); Q = Z_c ``q_map`` and the OLS residual e = (y - shift_y) - Z_c ``gamma``."""

    count: np.ndarray
    means: np.ndarray
    comoment: np.ndarray
    position: dict
    shifts: dict
    offset: np.ndarray
    slope: np.ndarray
    q_map: np.ndarray
    gamma: np.ndarray


def random_cell_sums(basis: _CellBasis, z_indicator, z_atoms, codes, n_groups: int):
    """The random-slope blocks from the cells: per cluster the cross-products of [U Q e].

    U are the columns of the random-effects matrix (each its categorical indicator on the cell times
    its numeric column or product, ``z_atoms``; () for an intercept or a dummy), Q = X R^{-1} and e the
    OLS residual, in the basis of the design's :class:`helpers.design.SufficientStats` (as
    :func:`helpers.random_terms.block_sums` sums them over rows). On a cell every column is linear in
    the centred keys d, ``a + B d``, so a cluster's cross-product is the sum over its cells of
    ``n (a + B mean)(a + B mean)' + B comoment B'``.

    Returns
    -------
    cross : ndarray, shape (n_groups, q + p + 1, q + p + 1)
        Per cluster, the cross-products of U (first q), Q (next p) and e (last).
    within : ndarray, shape (q,)
        The within-cluster sum of squares of each column of U (for
        :func:`helpers.random_terms.check_support`).
    scale : ndarray, shape (q,)
        The largest root mean square of each column of U over the cells.
    constant : ndarray of bool, shape (q,)
        Whether a column of U takes one value on every row (an intercept).
    """
    z_indicator = np.asarray(z_indicator, dtype=float)
    n_cells, q = z_indicator.shape
    p = basis.q_map.shape[0]
    m = basis.means.shape[1]
    offset_u = np.zeros((n_cells, q))
    slope_u = np.zeros((n_cells, q, m))
    for k, atom in enumerate(z_atoms):
        if atom:
            offset_u[:, k] = z_indicator[:, k] * basis.shifts[atom]
            slope_u[:, k, basis.position[atom]] = z_indicator[:, k]
        else:
            offset_u[:, k] = z_indicator[:, k]
    offset_z, slope_z = basis.offset[:, :p], basis.slope[:, :p]
    offset_q = offset_z @ basis.q_map
    slope_q = np.einsum("cjm,jk->ckm", slope_z, basis.q_map)
    offset_e = basis.offset[:, p] - offset_z @ basis.gamma
    slope_e = basis.slope[:, p] - np.einsum("cjm,j->cm", slope_z, basis.gamma)
    offset = np.concatenate([offset_u, offset_q, offset_e[:, None]], axis=1)
    slope = np.concatenate([slope_u, slope_q, slope_e[:, None, :]], axis=1)
    mean = offset + np.einsum("cjm,cm->cj", slope, basis.means)
    internal = np.einsum("cjm,cmn,ckn->cjk", slope, basis.comoment, slope)
    count = basis.count
    per_cell = internal + count[:, None, None] * mean[:, :, None] * mean[:, None, :]
    width = q + p + 1
    cross = np.zeros((n_groups, width, width))
    np.add.at(cross, codes, per_cell)
    cross = 0.5 * (cross + np.transpose(cross, (0, 2, 1)))
    # the within-cluster spread of each column of U
    counts = np.bincount(codes, weights=count, minlength=n_groups)
    sums = np.column_stack(
        [np.bincount(codes, weights=count * mean[:, k], minlength=n_groups) for k in range(q)]
    ).reshape(n_groups, q)
    spread = mean[:, :q] - (sums / np.maximum(counts, 1.0)[:, None])[codes]
    within = np.einsum("ckk->k", internal[:, :q, :q]) + np.einsum("c,ck->k", count, spread**2)
    variance = np.maximum(
        np.einsum("ckk->ck", internal[:, :q, :q]) / np.maximum(count, 1.0)[:, None], 0
    )
    scale = np.sqrt(np.max(mean[:, :q] ** 2 + variance, axis=0, initial=0.0))
    constant = np.array(
        [bool(np.all(slope_u[:, k] == 0) and np.all(mean[:, k] == mean[0, k])) for k in range(q)]
    )
    return cross, within, scale, constant


# --- what a fit was given --------------------------------------------------------------------------


def as_design(
    data: object,
    formula: str | None = None,
    group: str | None = None,
    *,
    random_slopes: bool = True,
) -> Design:
    """The :class:`Design` of ``data``: the one place where a fit decides what it was given.

    A :class:`~helpers.design.Design` is returned as it is (it was checked when it was built); a pandas
    DataFrame goes to :func:`helpers.design.build_design`; an Ibis table or a PySpark DataFrame to
    :func:`design_from_table`, which computes the sums where the table lives.
    :func:`helpers.fit.fit_lmm`, :func:`helpers.fit.fit_ols` and :func:`helpers.decompose.decompose`
    all start here.

    Parameters
    ----------
    data : Design, pandas.DataFrame, Ibis table or PySpark DataFrame
    formula : str, optional
        Needed for data; with a Design it may be left out (it is ``design.formula``), and if given
        must be that formula.
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term; with a Design, it must agree.
    random_slopes : bool, default True
        Accept random slopes and several random terms of one grouping factor.

    Returns
    -------
    Design

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 5.0], "g": [1, 1, 2, 2]})
    >>> d = as_design(df, "y ~ 1 + (1 | g)")
    >>> as_design(d) is d
    True
    """
    if isinstance(data, Design):
        if formula is not None and formula != data.formula:
            raise DataError(
                f"The design was built for {data.formula!r}, not {formula!r}; leave the formula out "
                "when fitting a design, or build a new one."
            )
        check_one_group(data.group, group)
        if group is not None and data.group is None:
            raise DataError(
                f"The design has no grouping column, so group={group!r} cannot apply; build the "
                "design with it."
            )
        return data
    if formula is None:
        raise DataError(
            "A formula is needed to fit data: pass it, or pass a design built with one."
        )
    if is_table(data):  # an Ibis table or a PySpark DataFrame: the sums are computed where it lives
        return design_from_table(data, formula, group=group)
    return build_design(data, formula, group, random_slopes=random_slopes)
