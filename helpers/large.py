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

CSV files are read in the dialect pandas reads (comma or, for ``.tsv``, tab; double quotes; no rows
skipped), never a dialect DuckDB guesses, so both paths see the same rows. Before any reader sees a
CSV file, :func:`check_file` reads its header with Python's ``csv`` module and refuses one that would
mislead or stall a reader: not UTF-8, a first line over :data:`MAX_HEADER_BYTES`, more than
:data:`MAX_COLUMNS` columns, a name over :data:`MAX_NAME_CHARS` characters, a repeated name, or a
single column that is really several separated by semicolons or tabs. A model column DuckDB types
as text although every value reads as a number is read as a number, as pandas reads it; one that
mostly holds numbers but is text is refused, naming the values (:func:`text_number_problem`).

Supported formulas: a response, plain columns (numeric, logical or text; backticks for names with spaces
or dots), interactions of them (``a:b``, ``a*b``), ``0 +`` or ``- 1``, and random-effects terms of one
grouping factor (``(1 | g)``, ``(1 + x | g)``, ``(x || g)``: a random slope's column is one more key of
the scan, and :func:`random_cell_sums` forms its blocks from the cells), parsed by :func:`helpers.formula.parse` like every formula. Transformations such as ``log(x)`` or
``scale(x)`` need the rows; add them as columns to the file first.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import engines
from .design import Design, SufficientStats, stats_from_cross_products
from .formula import Name, parse_formula
from .validate import (
    DataError,
    check_column_type,
    check_has_rows,
    check_present,
    check_reference_column,
    check_response_kind,
    require_group,
)

if TYPE_CHECKING:
    import duckdb

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

#: Strings read as missing in CSV files: pandas' defaults, so both readers agree.
NA_STRINGS = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSED = (".gz", ".zst")

#: Limits on a CSV header, checked before any reader parses the file: a damaged file (one enormous
#: line, or a header of a million repeated names) would otherwise keep a reader busy for minutes or
#: take all the memory.
MAX_HEADER_BYTES = 1024**2
MAX_COLUMNS = 10_000
MAX_NAME_CHARS = 1_000
_NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "BOOLEAN",
)


def file_format(path) -> str:
    """The format of a data file from its name: ``"csv"``, ``"tsv"`` or ``"parquet"``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str

    Raises
    ------
    DataError
        For any other extension.

    Examples
    --------
    >>> file_format("radon.csv"), file_format("cells.parquet"), file_format("big.csv.gz")
    ('csv', 'parquet', 'csv')
    >>> file_format("book.xlsx")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: File 'book.xlsx' has an unknown format ('.xlsx'); give a CSV (.csv, .tsv) or Parquet (.parquet) file.
    """
    name = Path(path).name.lower()
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    ext = Path(name).suffix
    if ext not in _FORMATS:
        shown = ext if ext else "no extension"
        raise DataError(
            f"File {Path(path).name!r} has an unknown format ({shown!r}); give a CSV (.csv, .tsv) or "
            "Parquet (.parquet) file."
        )
    return _FORMATS[ext]


def check_file(path) -> str:
    """Check that a data file exists, can be read, is not empty and has a known format.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        Its format, as :func:`file_format` gives it.

    Raises
    ------
    DataError
        With one sentence naming the file and the problem.

    Examples
    --------
    >>> check_file("no/such/file.csv")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: File 'no/such/file.csv' does not exist in the folder .../no/such (a relative path starts from the current folder); check the path.
    """
    p = Path(path)
    if not p.exists():
        where = ""
        if not p.is_absolute():  # say where a relative path was looked for (the notebook's folder)
            folder = (Path.cwd() / p).parent
            where = f" in the folder {folder} (a relative path starts from the current folder)"
        raise DataError(f"File {str(path)!r} does not exist{where}; check the path.")
    if p.is_dir():
        raise DataError(f"{str(path)!r} is a folder, not a data file; give a CSV or Parquet file.")
    if not os.access(p, os.R_OK):
        raise DataError(f"File {str(path)!r} cannot be read (permission denied).")
    try:
        with open(p, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise DataError(f"File {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
    if p.stat().st_size == 0:
        raise DataError(f"File {str(path)!r} is empty (0 bytes).")
    fmt = file_format(p)
    if fmt in ("csv", "tsv"):
        _check_header(p, fmt)
    return fmt


def _short(text: str, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def csv_header(path, fmt: str | None = None):
    """The column names in the header of a CSV or TSV file, read from its first MiB only.

    Blank lines before the header are skipped and a UTF-8 byte-order mark is removed, as pandas does.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``, ``.tsv`` or ``.txt`` file, optionally ``.gz``.
    fmt : str, optional
        ``"csv"`` or ``"tsv"``; from the file name by default.

    Returns
    -------
    list of str or None
        The names (an empty list for a file without a header), or None when the header cannot be
        read this way (a ``.zst`` file, or a quoted header field longer than the first MiB).

    Raises
    ------
    DataError
        When the file is not UTF-8 text, is a damaged ``.gz``, or has a first line longer than
        :data:`MAX_HEADER_BYTES`.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "tiny.csv"
    >>> _ = path.write_text('\\ufeff\\ny,"my, x",g\\n1,2,a\\n')
    >>> csv_header(path)
    ['y', 'my, x', 'g']
    """
    p = Path(path)
    fmt = fmt or file_format(p)
    name = p.name
    lowered = name.lower()
    if lowered.endswith(".zst"):
        return None
    try:
        opener = gzip.open if lowered.endswith(".gz") else open
        with opener(p, "rb") as handle:
            chunk = handle.read(MAX_HEADER_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a damaged .gz
        raise DataError(f"File {name!r} could not be read as CSV: {_short(exc, 120)}") from None
    truncated = len(chunk) > MAX_HEADER_BYTES
    if chunk.startswith(b"\x1f\x8b"):
        raise DataError(
            f"File {name!r} could not be read as CSV: it is gzip-compressed; name it {name}.gz "
            "or decompress it."
        )
    if chunk.startswith(b"PAR1"):
        raise DataError(
            f"File {name!r} could not be read as CSV: it is a Parquet file; name it .parquet."
        )
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(chunk, final=not truncated)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"File {name!r} could not be read as CSV: it is not UTF-8 text (byte "
            f"0x{chunk[exc.start]:02x} at position {exc.start}); save it as a UTF-8 CSV file."
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if truncated and not re.search(r"[\r\n]", text.lstrip("\r\n")):
        raise DataError(
            f"File {name!r} has a first line longer than {MAX_HEADER_BYTES // 1024**2} MiB "
            f"({_short(text, 30)!r}); a CSV file has one record per line, starting with a header "
            "of column names."
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    try:
        for record in reader:
            if record:
                return record
    except csv.Error:  # a quoted header field running past the first MiB: leave it to the reader
        return None
    return []


_COMMA_NUMBER = re.compile(r"^\s*[+-]?(\d{1,3}(,\d{3})+(\.\d*)?|\d+,\d+)\s*$")


def text_number_problem(column: str, counts: pd.Series) -> str | None:
    """A sentence for a text column that mostly holds numbers, or None when it is real text.

    A numeric column with a few stray words (``.``, ``abc``), or with thousands separators or
    decimal commas, is read as text, and a text predictor becomes a categorical one with a level per
    distinct number: a fit that means nothing, or a model matrix too large to build. When at least
    half of the values read as numbers (allowing for commas), the column is taken as meant to be
    numeric and the values that are not numbers are named.

    Parameters
    ----------
    column : str
    counts : pandas.Series
        How many times each distinct non-missing value (as text) occurs, indexed by the value.

    Returns
    -------
    str or None

    Examples
    --------
    >>> print(text_number_problem("x", pd.Series({"1.5": 8, "2": 3, "abc": 1})))
    Column 'x' holds numbers, but 1 value is not a number ('abc'), so the whole column is read as text: correct it, or leave the cell empty (or write NA) where the value is missing.
    >>> text_number_problem("arm", pd.Series({"placebo": 5, "low": 5, "10": 1})) is None
    True
    """
    counts = counts[counts > 0]
    total = int(counts.sum())
    if total == 0:
        return None
    values = pd.Series(counts.index.astype(str), index=counts.index)
    plain = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    trimmed = pd.to_numeric(values.str.strip(), errors="coerce").notna().to_numpy()
    comma = values.str.match(_COMMA_NUMBER).to_numpy()
    weights = counts.to_numpy()
    if weights[plain | trimmed | comma].sum() < 0.5 * total:
        return None
    odd = values[~plain]
    shown = ", ".join(repr(_short(v, 30)) for v in odd.iloc[:3])
    if comma.any():
        examples = ", ".join(repr(_short(v, 30)) for v in values[comma].iloc[:2])
        return (
            f"Column {column!r} holds numbers written with commas ({examples}), which are read as "
            "text: write them with a decimal point and without thousands separators (1234.5, not "
            "1,234.5 or 1234,5)."
        )
    if len(odd) and not trimmed[~plain].all():
        bad = int(weights[~plain].sum())
        it = "it" if bad == 1 else "them"
        cell = "cell" if bad == 1 else "cells"
        verb = "value is not a number" if bad == 1 else "values are not numbers"
        return (
            f"Column {column!r} holds numbers, but {bad} {verb} ({shown}), so the whole column is "
            f"read as text: correct {it}, or leave the {cell} empty (or write NA) where the value "
            "is missing."
        )
    return (
        f"Column {column!r} is read as text although its values look like numbers ({shown}): "
        "write plain numbers, without spaces or other characters around them."
    )


def _check_header(path: Path, fmt: str) -> None:
    """One clear error for a header no reader should be given: too long, repeated or wrong names."""
    names = csv_header(path, fmt)
    name = path.name
    if names is None:
        return
    if not names:
        raise DataError(f"File {name!r} has no columns: it holds only blank lines.")
    if len(names) > MAX_COLUMNS:
        raise DataError(
            f"File {name!r} has {len(names):,} columns in its header; the report reads at most "
            f"{MAX_COLUMNS:,}: keep only the columns the model needs."
        )
    longest = max(names, key=len)
    if len(longest) > MAX_NAME_CHARS:
        raise DataError(
            f"File {name!r} has a column name {len(longest):,} characters long "
            f"({_short(longest, 30)!r}); names longer than {MAX_NAME_CHARS:,} characters are not "
            "supported: check that the first line of the file is its header, or shorten the name."
        )
    repeated = [(n, k) for n, k in Counter(names).items() if k > 1 and n != ""]
    if repeated:
        column, count = repeated[0]
        raise DataError(
            f"Column name {_short(column)!r} appears {count} times in the header of {name!r}; give "
            "each column a unique name."
        )
    if len(names) == 1:
        only = names[0]
        for mark, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if fmt == "csv" and mark in only:
                advice = (
                    "name it .tsv or save it comma-separated"
                    if mark == "\t"
                    else "save it comma-separated, with decimal points (1.5, not 1,5)"
                )
                raise DataError(
                    f"File {name!r} has a single column, {_short(only)!r}: it seems to be separated "
                    f"by {label} ({mark!r}), not commas; {advice}."
                )
        if fmt == "tsv" and "," in only:
            raise DataError(
                f"File {name!r} has a single column, {_short(only)!r}: it seems to be separated by "
                "commas, not tabs; name it .csv."
            )


def _quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _source_sql(
    path, fmt: str, types: dict | None = None, all_varchar: bool = False, names=None
) -> str:
    literal = _quote_literal(str(Path(path).resolve()))
    if fmt == "parquet":
        return f"read_parquet({literal})"
    nulls = "[" + ", ".join(_quote_literal(s) for s in NA_STRINGS) + "]"
    # the dialect pandas reads (no sniffing of delimiter, quotes or rows to skip), so both readers
    # see the same rows
    delim = "\\t" if fmt == "tsv" else ","
    extra = ""
    if types:
        pairs = ", ".join(f"{_quote_literal(c)}: {_quote_literal(t)}" for c, t in types.items())
        extra += f", types={{{pairs}}}"
    if all_varchar:
        extra += ", all_varchar=true"
    if names:
        extra += ", names=[" + ", ".join(_quote_literal(n) for n in names) + "]"
    return (
        f"read_csv({literal}, header=true, nullstr={nulls}, delim='{delim}', quote='\"', "
        f"escape='\"', skip=0{extra})"
    )


def _connect():
    import duckdb

    return duckdb.connect(":memory:")


def _parquet_no_nulls(con, path) -> set:
    """The columns of a Parquet file whose statistics count no NULL in any row group, from its
    footer (a column without statistics is not among them)."""
    rows = con.execute(
        f"SELECT path_in_schema FROM parquet_metadata({_quote_literal(str(Path(path).resolve()))}) "
        "GROUP BY path_in_schema HAVING bool_and(coalesce(stats_null_count = 0, false))"
    ).fetchall()
    return {name for (name,) in rows}


def is_read_error(exc: BaseException) -> bool:
    """Whether an exception raised while reading a data file means that the file is bad.

    Everything else is a bug of ours and must not be reported as a problem with the data. The list
    comes from feeding the readers damaged files (``tests/test_report_fuzz.py`` and more): DuckDB
    raises ``InvalidInputException`` (sniffing, CSV and Parquet errors), ``ConversionException``,
    ``IOException``, ``OutOfRangeException`` and the bare ``duckdb.Error`` for damaged Parquet metadata
    (footer length, thrift); pyarrow raises ``ArrowException`` subclasses and ``OSError``; a damaged
    ``.gz`` gives ``OSError``, ``EOFError`` or ``zlib.error``; text that is not UTF-8 gives
    ``UnicodeDecodeError``. DuckDB's parser, binder and catalog errors (our SQL) and internal or
    out-of-memory errors are not on the list.

    Examples
    --------
    >>> is_read_error(EOFError("Compressed file ended")), is_read_error(ZeroDivisionError())
    (True, False)
    """
    import sys

    if isinstance(exc, (OSError, EOFError, UnicodeDecodeError, zlib.error)):
        return True
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and (
        type(exc) is duckdb.Error
        or isinstance(
            exc,
            (
                duckdb.InvalidInputException,
                duckdb.ConversionException,
                duckdb.IOException,
                duckdb.OutOfRangeException,
            ),
        )
    ):
        return True
    pyarrow = sys.modules.get("pyarrow")
    return pyarrow is not None and isinstance(exc, pyarrow.ArrowException)


def read_error(path: str | os.PathLike, fmt: str, exc: BaseException) -> DataError:
    """The :class:`DataError` for a file a reader failed on (``exc``, for which :func:`is_read_error`
    holds): its first meaningful line, with the file's full path shortened to its name.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    # DuckDB's CSV errors name the line first and explain on a later line; keep the explanation
    # (never the "Original Line", which is the data itself)
    if re.search(r"CSV Error on Line", first) and len(lines) > 1:
        reasons = [ln for ln in lines[1:] if not ln.startswith(("Original Line", "LINE ", "^"))]
        if reasons:
            first = f"{first}: {reasons[0]}"
    first = _short(first.replace(str(Path(path).resolve()), Path(path).name), 300)
    kind = "Parquet" if fmt == "parquet" else "CSV"
    return DataError(f"File {Path(path).name!r} could not be read as {kind}: {first}")


def file_columns(path, connection=None) -> dict:
    """The columns of a CSV or Parquet file and their DuckDB types, read from its header or schema.

    Parameters
    ----------
    path : str or os.PathLike
    connection : duckdb.DuckDBPyConnection, optional

    Returns
    -------
    dict
        Column name -> DuckDB type name (``"DOUBLE"``, ``"VARCHAR"``, ...), in file order.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = Path(folder) / "tiny.csv"
    >>> _ = path.write_text("y,arm,my col\\n1.5,a,1\\n2.5,b,2\\n")
    >>> file_columns(path)
    {'y': 'DOUBLE', 'arm': 'VARCHAR', 'my col': 'BIGINT'}
    """
    fmt = check_file(path)
    con = connection or _connect()
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_source_sql(path, fmt)}").fetchall()
    except Exception as exc:
        if not is_read_error(exc):  # a bug of ours, not a bad file
            raise
        raise read_error(path, fmt, exc) from None
    finally:
        if connection is None:
            con.close()
    names = [name for name, *_ in rows]
    if fmt in ("csv", "tsv"):
        # DuckDB trims spaces around header names; keep them as written, as pandas does (an
        # empty name keeps DuckDB's stand-in, 'column1')
        header = csv_header(path, fmt)
        if header and len(header) == len(names):
            names = [h if h.strip() else n for h, n in zip(header, names, strict=True)]
    return {name: kind for name, (_, kind, *_) in zip(names, rows, strict=True)}


def _check_case_collisions(path, fmt: str, types: dict) -> None:
    """DuckDB matches column names without regard to case: 'Y' and 'y' would be one column."""
    names = csv_header(path, fmt) if fmt in ("csv", "tsv") else list(types)
    seen: dict = {}
    for name in names or []:
        other = seen.setdefault(str(name).lower(), name)
        if other != name:
            raise DataError(
                f"Columns {_short(other)!r} and {_short(name)!r} differ only in case, which the "
                "large-file path (DuckDB) does not tell apart; rename one of them."
            )


def _text_values(con, path, fmt: str, column: str, names=None, rows: int = 100_000) -> pd.Series:
    """How often each value of a column occurs among its first non-missing values, as written."""
    q = _quote_ident(column)
    source = _source_sql(path, fmt, all_varchar=True, names=names)
    found = con.execute(
        f"SELECT v, count(*) FROM (SELECT CAST({q} AS VARCHAR) AS v FROM {source} "
        f"WHERE {q} IS NOT NULL LIMIT {int(rows)}) GROUP BY v ORDER BY v"
    ).fetchall()
    return pd.Series({v: int(k) for v, k in found}, dtype="int64")


def _all_numbers(counts: pd.Series) -> bool:
    return bool(pd.to_numeric(pd.Series(counts.index), errors="coerce").notna().all())


def _is_numeric(kind: str) -> bool:
    return kind.split("(")[0] in _NUMERIC_TYPES


def _is_float(kind: str) -> bool:
    return kind in ("FLOAT", "DOUBLE")


def _parse_terms(parsed):
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


def _parquet_dictionary_levels(path, column: str):
    """The stored levels of a Parquet dictionary (pandas categorical) column and whether they are
    ordered, else None."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(path)
        schema = handle.schema_arrow
        kind = schema.field(column).type
        if not pa.types.is_dictionary(kind) or handle.num_row_groups == 0:
            return None
        # the first row only: its dictionary holds every stored level (reading the whole first row
        # group decoded a million rows, 5-50 ms)
        batch = next(handle.iter_batches(batch_size=1, columns=[column]), None)
        if batch is None or batch.num_rows == 0:
            return None
        return [str(v) for v in batch.column(0).dictionary.to_pylist()], bool(kind.ordered)
    except (KeyError, OSError, pa.ArrowException):  # no such column, or an unusual schema
        return None


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
    response, variables, terms = _parse_terms(parsed)
    model_columns = list(dict.fromkeys([response] + variables + [group]))

    con = connection or _connect()
    try:
        types = file_columns(path, con)
        check_present(model_columns + list(reference), list(types))
        check_file_types(types, model_columns, group)
        names = list(types) if fmt != "parquet" else None
        source = _source_sql(path, fmt, names=names)
        _check_case_collisions(path, fmt, types)
        check_has_rows(name, len(con.execute(f"SELECT 1 FROM {source} LIMIT 1").fetchall()))
        # DuckDB guesses types from a sample and can take numbers for text (or dates: 'inf'):
        # a model column whose values all read as numbers, as pandas reads them, is numeric
        forced = {}
        for column in model_columns:
            if column == group or _is_numeric(types[column]):
                continue
            counts = _text_values(con, path, fmt, column, names)
            if fmt != "parquet" and len(counts) and _all_numbers(counts):
                forced[column] = "DOUBLE"
                continue
            problem = text_number_problem(column, counts)
            if problem:
                raise DataError(problem)
        if forced:
            types = {**types, **forced}
            source = _source_sql(path, fmt, forced, names=names)
        kind = types[response]
        check_response_kind(response, kind, _is_numeric(kind) and kind != "BOOLEAN")
        # a logical column is a factor with levels FALSE and TRUE, as R treats it
        numeric = [v for v in variables if _is_numeric(types[v]) and types[v] != "BOOLEAN"]
        categorical = [v for v in variables if v not in numeric]
        for column in reference:
            check_reference_column(column, model_columns, _is_numeric(types[column]))
        atoms = list(dict.fromkeys(_atom(names, numeric) for names in terms))
        keys = [_RESPONSE] + [a for a in atoms if a]
        # the sums: the one Ibis expression of helpers.engines, run by DuckDB on this source
        no_nulls = _parquet_no_nulls(con, path) if fmt == "parquet" else set()
        cells, shifts, missing = _scan(
            con, source, response, keys, model_columns, categorical, group, centre_rows, no_nulls
        )
        for column in categorical:
            if types[column] == "BOOLEAN" and column != group:
                cells[column] = cells[column].map({"true": "TRUE", "false": "FALSE"})
    except DataError:
        raise
    except Exception as exc:
        if not is_read_error(exc):  # a bug of ours, not a bad file
            raise
        raise read_error(path, fmt, exc) from None
    finally:
        if connection is None:
            con.close()

    stored_levels = {}
    if fmt == "parquet":
        for column in categorical:
            stored = _parquet_dictionary_levels(path, column)
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


def check_file_types(types: Mapping[str, str], columns: Iterable[str], group: str | None) -> None:
    """Refuse model columns whose DuckDB type no model can use (lists, structs, blobs) and dates or
    times as predictors, from the file's schema (:func:`file_columns`).

    Examples
    --------
    >>> check_file_types({"y": "DOUBLE", "when": "DATE", "g": "VARCHAR"}, ["y", "when", "g"], "g")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Column 'when' holds dates or times (DATE); convert it to numbers (for example days since the first date) or to text before using it in the model.
    """
    for column in columns:
        kind = types.get(column)
        if kind is None:
            continue  # a missing column: check_present names it
        check_column_type(
            column,
            kind,
            dates=kind.startswith(("DATE", "TIME", "INTERVAL")),
            unusable="[" in kind or kind.startswith(("STRUCT", "MAP", "UNION", "BLOB")),
            group=column == group,
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


def _atom(names, numeric) -> tuple:
    """The numeric columns of a term, as a sorted tuple (the product a model column carries)."""
    return tuple(sorted(v for v in names if v in numeric))


_RESPONSE = "__response__"


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
    keys = [_RESPONSE] + atoms
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
        y_shift = shifts[_RESPONSE]
    slope[:, p, 0] = 1.0
    offset[:, p] = shifts[_RESPONSE] - y_shift

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
