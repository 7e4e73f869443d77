"""Reading a CSV or Parquet file safely: its format, its header, its columns' types and values, and
the clear errors a damaged or misleading file gets.

CSV files are read in the dialect pandas reads (comma or, for ``.tsv``, tab; double quotes; no rows
skipped), never a dialect DuckDB guesses, so every path sees the same rows. Before any reader sees a
CSV file, :func:`check_file` reads its header with Python's ``csv`` module and refuses one that would
mislead or stall a reader: not UTF-8, a first line over :data:`MAX_HEADER_BYTES`, more than
:data:`MAX_COLUMNS` columns, a name over :data:`MAX_NAME_CHARS` characters, a repeated name, or a
single column that is really several separated by semicolons or tabs. Embedded DuckDB reads the
schema (:func:`file_columns`) and, where a check needs them, a column's values as text: a model column
DuckDB types as text although every value reads as a number is read as a number, as pandas reads it;
one that mostly holds numbers but is text is refused, naming the values (:func:`text_number_problem`).
The strings read as missing are pandas' (:data:`NA_STRINGS`). A reader's failure on a damaged file
becomes one :class:`helpers.validate.DataError` (:func:`read_error`); any other failure is a bug and is
raised as it is (:func:`is_read_error` tells them apart).

Used by the file front end (:mod:`helpers.large`), the engines (:mod:`helpers.engines`) and the
report's input checks (:mod:`helpers.report.inputs`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .validate import (
    DataError,
    check_column_type,
)

if TYPE_CHECKING:
    import duckdb

#: A path as the functions here take it.
PathLike = str | os.PathLike

__all__ = [
    "NA_STRINGS",
    "MAX_HEADER_BYTES",
    "MAX_COLUMNS",
    "MAX_NAME_CHARS",
    "file_format",
    "check_file",
    "csv_header",
    "text_number_problem",
    "file_columns",
    "check_file_types",
    "is_read_error",
    "read_error",
    "reading",
    "duckdb_connection",
    "source_sql",
    "check_case_collisions",
    "text_values",
    "all_numbers",
    "is_numeric_type",
    "parquet_no_nulls",
    "parquet_dictionary_levels",
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


def file_format(path: PathLike) -> str:
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


def check_file(path: PathLike) -> str:
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


def csv_header(path: PathLike, fmt: str | None = None) -> list[str] | None:
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


def source_sql(
    path: PathLike,
    fmt: str,
    types: dict | None = None,
    all_varchar: bool = False,
    names: Sequence[str] | None = None,
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


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    import duckdb

    return duckdb.connect(":memory:")


def parquet_no_nulls(con: duckdb.DuckDBPyConnection, path: PathLike) -> set:
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


@contextlib.contextmanager
def reading(
    path: PathLike, fmt: str, connection: duckdb.DuckDBPyConnection | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection for reading ``path`` (``connection``, or a new one closed afterwards), inside
    which a reader's failure on a damaged file becomes one :class:`DataError` (:func:`read_error`);
    a DataError passes as it is, and any other failure is a bug and is raised unchanged
    (:func:`is_read_error` tells them apart).

    Examples
    --------
    >>> with reading("absent.csv", "csv") as con:
    ...     con.execute("SELECT 42").fetchone()[0]
    42
    """
    con = connection or duckdb_connection()
    try:
        yield con
    except DataError:
        raise
    except Exception as exc:
        if not is_read_error(exc):  # a bug of ours, not a bad file
            raise
        raise read_error(path, fmt, exc) from None
    finally:
        if connection is None:
            con.close()


def file_columns(
    path: PathLike, connection: duckdb.DuckDBPyConnection | None = None, *, fmt: str | None = None
) -> dict:
    """The columns of a CSV or Parquet file and their DuckDB types, read from its header or schema.

    Parameters
    ----------
    path : str or os.PathLike
    connection : duckdb.DuckDBPyConnection, optional
    fmt : str, optional
        The format :func:`check_file` gave, when the caller has checked the file already (it is not
        read again).

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
    fmt = fmt or check_file(path)
    with reading(path, fmt, connection) as con:
        rows = con.execute(f"DESCRIBE SELECT * FROM {source_sql(path, fmt)}").fetchall()
    names = [name for name, *_ in rows]
    if fmt in ("csv", "tsv"):
        # DuckDB trims spaces around header names; keep them as written, as pandas does (an
        # empty name keeps DuckDB's stand-in, 'column1')
        header = csv_header(path, fmt)
        if header and len(header) == len(names):
            names = [h if h.strip() else n for h, n in zip(header, names, strict=True)]
    return {name: kind for name, (_, kind, *_) in zip(names, rows, strict=True)}


def check_case_collisions(path: PathLike, fmt: str, types: dict) -> None:
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


def text_values(
    con: duckdb.DuckDBPyConnection,
    path: PathLike,
    fmt: str,
    column: str,
    names: Sequence[str] | None = None,
    rows: int = 100_000,
) -> pd.Series:
    """How often each value of a column occurs among its first non-missing values, as written."""
    q = _quote_ident(column)
    source = source_sql(path, fmt, all_varchar=True, names=names)
    found = con.execute(
        f"SELECT v, count(*) FROM (SELECT CAST({q} AS VARCHAR) AS v FROM {source} "
        f"WHERE {q} IS NOT NULL LIMIT {int(rows)}) GROUP BY v ORDER BY v"
    ).fetchall()
    return pd.Series({v: int(k) for v, k in found}, dtype="int64")


def all_numbers(counts: pd.Series) -> bool:
    return bool(pd.to_numeric(pd.Series(counts.index), errors="coerce").notna().all())


def is_numeric_type(kind: str) -> bool:
    return kind.split("(")[0] in _NUMERIC_TYPES


def parquet_dictionary_levels(path: PathLike, column: str) -> tuple[list[str], bool] | None:
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
