"""The report's input: reading the data file, and checking it, the formula and the output paths.

:func:`check_inputs` builds the one checked :class:`helpers.design.Design` the report uses, with the
engine :func:`choose_engine` picks (``--engine``):

- ``pandas``: from the rows in memory (:func:`read_table`, then :func:`helpers.design.build_design`),
  the default for a file of at most :data:`LARGE_FILE_BYTES`;
- ``duckdb``: from the sums DuckDB computes without loading the rows
  (:func:`helpers.large.design_from_file`; a folder of Parquet files through
  :func:`helpers.engines.design_from_table`), the default for a larger file, a folder, or ``--large``;
- ``spark``: from the sums Spark computes (:func:`helpers.engines.read_table` and
  :func:`helpers.engines.design_from_table`), on ``--spark-master`` (this machine by default).

The notebook receives that design (:func:`report_design`) and never reads the data again.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..design import Design, build_design, model_columns
from ..engines import ENGINES, check_parquet_folder
from ..files import (
    NA_STRINGS,
    check_file,
    file_format,
    is_read_error,
    read_error,
    text_number_problem,
)
from ..formula import parse_formula
from ..large import design_from_file
from ..validate import (
    DataError,
    RowsDroppedWarning,
    check_column_type,
    check_has_rows,
    check_present,
    check_reference_column,
    check_unique_terms,
    require_group,
    set_reference,
)
from .content import dropped_sentence

__all__ = [
    "LARGE_FILE_BYTES",
    "ENGINES",
    "SPARK_MASTER",
    "Engine",
    "choose_engine",
    "Checked",
    "read_table",
    "parse_reference",
    "apply_reference",
    "check_inputs",
    "check_outputs",
    "report_design",
    "save_design",
    "load_design",
]

#: Files larger than this (in bytes) go through DuckDB instead of pandas.
LARGE_FILE_BYTES = 256 * 1024**2

#: Spark's master by default: a local session on every core of this machine.
SPARK_MASTER = "local[*]"


@dataclass(frozen=True)
class Engine:
    """An engine asked for by name (one of :data:`ENGINES`) and, for Spark, the master to run on.

    :func:`check_inputs` takes it as ``engine``, or in place of ``large`` (so a caller that only
    passes ``large`` on, such as :func:`helpers.report.run.make_report`, can pass an engine too).
    """

    name: str
    master: str = SPARK_MASTER


def _is_folder(path: str | os.PathLike) -> bool:
    return Path(path).is_dir()


def choose_engine(
    path: str | os.PathLike, engine: str | None = None, large: bool | None = None
) -> str:
    """The engine that computes the report's statistics: ``"pandas"``, ``"duckdb"`` or ``"spark"``.

    ``engine`` wins when given; ``--large`` (``large=True``) is DuckDB, and goes with any engine but
    pandas; by default a folder, or a file larger than :data:`LARGE_FILE_BYTES`, goes to DuckDB and
    anything else to pandas.

    Examples
    --------
    >>> choose_engine("radon.csv", "spark"), choose_engine("radon.csv", large=True)
    ('spark', 'duckdb')
    >>> choose_engine("radon.csv", "pandas", large=True)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: --large computes the sums with DuckDB without loading the rows, and --engine pandas loads them; give one of the two.
    """
    if engine is not None and engine not in ENGINES:
        raise DataError(f"Unknown engine {engine!r}; use one of {', '.join(ENGINES)}.")
    if engine == "pandas" and large:
        raise DataError(
            "--large computes the sums with DuckDB without loading the rows, and --engine pandas "
            "loads them; give one of the two."
        )
    if engine is not None:
        return engine
    if large is not None:
        return "duckdb" if large else "pandas"
    if _is_folder(path):
        return "duckdb"
    return "duckdb" if Path(path).stat().st_size > LARGE_FILE_BYTES else "pandas"


def _check_folder(path: str | os.PathLike, engine: str) -> None:
    """A folder of Parquet files, for an engine that reads one (a file goes to check_file)."""
    if engine == "pandas":
        raise DataError(
            f"{str(path)!r} is a folder; read a folder of Parquet files with --engine duckdb or "
            "--engine spark, or give one CSV or Parquet file."
        )
    check_parquet_folder(path)


def _design_from_engine(
    path: str | os.PathLike,
    formula: str,
    *,
    group: str | None,
    reference: Mapping[str, object],
    engine: str,
    master: str,
) -> Design:
    """The design from the sums an engine computes where the data are: DuckDB on a folder of Parquet
    files, or Spark on a file or a folder (a session of its own, stopped when the sums are in)."""
    from .. import engines

    folder = _is_folder(path)
    fmt = "parquet" if folder else file_format(path)
    session, started = None, False
    if engine == "spark":
        session, started = _spark(master)
    try:
        table = engines.read_table(path, engine, session=session)
        used = model_columns(formula, group, random_slopes=True)
        design = engines.design_from_table(
            table,
            formula,
            group=group,
            reference=reference,
            name=Path(path).name,
            text_numbers=fmt != "parquet",
            stored_levels=engines.parquet_levels(path, used) if fmt == "parquet" else None,
        )
    finally:
        if started:
            session.stop()
    # the design names the data it came from, as the DuckDB file path does
    return dataclasses.replace(design, path=str(path))


def _spark(master: str):
    """A Spark session on ``master``, and whether this call started it (so that it stops it)."""
    from .. import engines

    try:
        from pyspark.sql import SparkSession

        running = SparkSession.getActiveSession()
    except ImportError:  # spark_session says how to install it
        running = None
    session = engines.spark_session(master)
    return session, running is None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, or raise one clear :class:`DataError`.

    CSV files treat the same strings as missing as the DuckDB path does (``NA``, ``NaN``, an empty
    field, ...); Parquet files keep their stored types, including categorical level order.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv``, ``.tsv``, ``.txt`` (optionally ``.gz``) or ``.parquet``.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "tiny.csv"
    >>> _ = path.write_text("y,g\\n1.5,a\\nNA,b\\n")
    >>> read_table(path)["y"].isna().tolist()
    [False, True]
    """
    fmt = check_file(path)
    name = Path(path).name
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(
                path,
                sep="\t" if fmt == "tsv" else ",",
                na_values=list(NA_STRINGS),
                keep_default_na=True,
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"File {name!r} has no columns (it holds no data).") from None
    except Exception as exc:
        # a damaged file: pandas' ParserError, or what helpers.files.is_read_error lists (pyarrow, gzip,
        # encodings); anything else is a bug of ours and is not reported as a problem with the data
        if not (isinstance(exc, pd.errors.ParserError) or is_read_error(exc)):
            raise
        raise read_error(path, fmt, exc) from None
    check_has_rows(name, len(frame))
    if fmt != "parquet" and not isinstance(frame.index, pd.RangeIndex):
        # pandas (like R's read.csv) takes the extra leading fields as row names, which shifts every
        # column when the extra field is a delimiter at the end of each line instead
        raise DataError(
            f"File {name!r} has more fields in its data rows than names in its header (row names "
            "without a header, or a delimiter at the end of each line?); give every column a name "
            "in the header and remove delimiters at the ends of lines."
        )
    return frame


def parse_reference(items: Iterable[str] | None) -> dict[str, str]:
    """Turn ``["column=level", ...]`` into ``{column: level}``.

    Parameters
    ----------
    items : iterable of str

    Returns
    -------
    dict

    Examples
    --------
    >>> parse_reference(["condition=unstim", "arm = placebo"])
    {'condition': 'unstim', 'arm': 'placebo'}
    >>> parse_reference(["condition"])
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: --reference 'condition' is not of the form column=level (for example condition=unstim).
    """
    out = {}
    for item in items or []:
        column, sep, level = str(item).partition("=")
        if not sep or not column.strip() or not level.strip():
            raise DataError(
                f"--reference {item!r} is not of the form column=level (for example condition=unstim)."
            )
        out[column.strip()] = level.strip()
    return out


def apply_reference(
    data: pd.DataFrame, reference: Mapping[str, object] | None, used: Iterable[str] | None = None
) -> pd.DataFrame:
    """Make each given level the reference (first) level of its text column.

    Parameters
    ----------
    data : pandas.DataFrame
    reference : dict
        ``{column: level}``.
    used : iterable of str, optional
        The columns the model uses; a reference level for another column is refused. By default
        every column of the data counts as used.

    Returns
    -------
    pandas.DataFrame
        A copy; the named columns become categorical.

    Raises
    ------
    DataError
        For a column not in the data or not in the model, a numeric column, or a level the column does
        not have.

    Examples
    --------
    >>> df = pd.DataFrame({"arm": ["b", "a", "c"]})
    >>> list(apply_reference(df, {"arm": "c"})["arm"].cat.categories)
    ['c', 'a', 'b']
    """
    for column, level in (reference or {}).items():
        check_present([column], data.columns)
        values = data[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not isinstance(
            values.dtype, pd.CategoricalDtype
        )
        check_reference_column(column, data.columns if used is None else used, numeric)
        data = set_reference(data, column, level)
    return data


@dataclass(frozen=True)
class Checked:
    """What :func:`check_inputs` learned before the report runs.

    Attributes
    ----------
    path : str
        The data file, made absolute.
    formula : str
    reference : dict
    large : bool
        True when the statistics were computed where the data are (DuckDB or Spark), without
        loading the rows.
    design : helpers.design.Design
        The checked design, with rows (read into memory) or without (sums computed from the file).
    engine : str
        The engine that computed them: ``"pandas"`` (the rows in memory), ``"duckdb"`` or ``"spark"``.
    """

    path: str
    formula: str
    reference: dict
    large: bool
    design: Design
    engine: str = "pandas"

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values."""
        return int(self.design.n_dropped)

    def dropped_message(self) -> str:
        """One sentence about the rows dropped for missing values ('' when none were)."""
        return dropped_sentence(self.design)


def _check_text_numbers(data: pd.DataFrame, used: Iterable[str], grouping: str | None) -> None:
    """Refuse a model column read as text that mostly holds numbers (see text_number_problem)."""
    for column in used:
        if column == grouping or column not in data.columns:
            continue
        values = data[column]
        if isinstance(values, pd.DataFrame):  # a repeated name: validate reports it
            continue
        if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            if isinstance(values.dtype, pd.CategoricalDtype):
                continue
            counts = values.dropna().astype(str).value_counts(sort=False)
            problem = text_number_problem(column, counts)
            if problem:
                raise DataError(problem)


def _unusable(value: object) -> bool:
    return isinstance(value, bytes | bytearray | list | tuple | dict | np.ndarray)


def _check_column_kinds(data: pd.DataFrame, used: Iterable[str], group: str | None) -> None:
    """Refuse model columns holding bytes, lists or mappings, and dates or durations as predictors.

    These come from Parquet files (binary, list, struct and timestamp columns) and would otherwise fail
    deep inside the fit with a message about Python types.
    """
    for column in used:
        if column not in data.columns or isinstance(data[column], pd.DataFrame):
            continue
        values = data[column]
        kind = values.dtype
        dates = pd.api.types.is_datetime64_any_dtype(kind) or pd.api.types.is_timedelta64_dtype(
            kind
        )
        odd = pd.Series([], dtype=object)
        if pd.api.types.is_object_dtype(kind):
            sample = values.dropna().head(1000)
            odd = sample[sample.map(_unusable)]
        check_column_type(
            column,
            type(odd.iloc[0]).__name__ if len(odd) else str(kind),
            dates=dates,
            unusable=len(odd) > 0,
            group=column == group,
        )


def _check_fit(design: Design) -> None:
    """The fit's own refusals (an exactly fitted response), found now rather than in the notebook.

    Optimising theta from the sufficient statistics takes milliseconds; it keeps every input error
    ahead of the notes printed before the notebook runs, so that an error is always one line.
    """
    from ..fit import fit_lmm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_lmm(design)


def check_inputs(
    path: str | os.PathLike,
    formula: str,
    *,
    reference: Mapping[str, object] | None = None,
    group: str | None = None,
    large: bool | Engine | None = None,
    engine: str | Engine | None = None,
    spark_master: str = SPARK_MASTER,
) -> Checked:
    """Check the file, the formula and the reference levels, as fast as possible and before the report.

    Besides the checks of :func:`helpers.files.check_file` (a sane CSV header) and
    :func:`helpers.design.build_design`, it refuses a model column read as text that mostly holds
    numbers (a stray word, thousands separators, decimal commas), a predictor named ``Intercept``,
    two fixed effects of the same name, and a response the fixed effects fit exactly (found by
    fitting from the sufficient statistics, which takes milliseconds), so that every input error
    comes before the report's notes and the notebook.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV or Parquet file, or (for DuckDB and Spark) a folder of Parquet files.
    formula : str
        ``"y ~ x + (1 | g)"``.
    reference : dict, optional
        ``{column: level}``.
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    large : bool or Engine, optional
        Force (True) or forbid (False) the DuckDB path; by default it is used for files larger than
        :data:`LARGE_FILE_BYTES`. An :class:`Engine` here is read as ``engine``.
    engine : {"pandas", "duckdb", "spark"} or Engine, optional
        The engine (:func:`choose_engine`); an :class:`Engine` carries Spark's master too.
    spark_master : str, default "local[*]"
        Where Spark runs (``local[2]``, ``spark://host:7077``, ``sc://host:15002``, ...).

    Returns
    -------
    Checked

    Raises
    ------
    DataError
        With one sentence naming the file, column, level or term at fault.

    Examples
    --------
    >>> import tempfile
    >>> from helpers.data import load_dataset
    >>> path = Path(tempfile.mkdtemp()) / "sleep.csv"
    >>> load_dataset("sleepstudy").to_csv(path, index=False)
    >>> checked = check_inputs(path, "Reaction ~ Days + (1 | Subject)")
    >>> checked.large, checked.design.stats.n_groups
    (False, 18)
    >>> check_inputs(path, "Reaction ~ days + (1 | Subject)")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Column 'days' is not in the data. Did you mean 'Days'?
    """
    if isinstance(large, Engine):
        engine, large = large, None
    if isinstance(engine, Engine):
        engine, spark_master = engine.name, engine.master
    if not _is_folder(path):
        check_file(path)
    name = choose_engine(path, engine, large)
    if _is_folder(path):
        _check_folder(path, name)
    # the columns the model uses; this also refuses syntax errors and a column named 'Intercept'
    used = model_columns(formula, group, random_slopes=True)
    parsed = parse_formula(formula, group, random_slopes=True)
    grouping = require_group(parsed.group)
    reference = dict(reference or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        if name == "duckdb" and not _is_folder(path):
            design = design_from_file(path, formula, group=group, reference=reference)
        elif name != "pandas":
            design = _design_from_engine(
                path, formula, group=group, reference=reference, engine=name, master=spark_master
            )
        else:
            data = read_table(path)
            _check_column_kinds(data, used, grouping)
            _check_text_numbers(data, used, grouping)
            data = apply_reference(data, reference, used)
            design = build_design(data, formula, group, random_slopes=True)
        check_unique_terms(design.term_names)
        _check_fit(design)
    return Checked(
        path=str(Path(path).resolve()),
        formula=formula,
        reference=reference,
        large=name != "pandas",
        design=design,
        engine=name,
    )


def save_design(design: Design, folder: str | os.PathLike) -> Path:
    """Write a checked design to ``folder`` for the report notebook (:func:`load_design` reads it).

    The report command checks the input once and hands the notebook this file, so the data are read
    (or, on the DuckDB path, scanned) once. The file is a pickle written by this process into a folder
    of its own; it is not meant to be exchanged.

    Returns
    -------
    pathlib.Path
    """
    path = Path(folder) / "design.pickle"
    with open(path, "wb") as handle:
        pickle.dump(design, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_design(path: str | os.PathLike) -> Design:
    """Read a design written by :func:`save_design`.

    Examples
    --------
    >>> import tempfile
    >>> from helpers.data import load_dataset
    >>> d = build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> again = load_design(save_design(d, tempfile.mkdtemp()))
    >>> again.term_names, again.stats.n_groups, again.stats.sum_e.flags.writeable
    (['Intercept'], 6, False)
    """
    with open(path, "rb") as handle:
        design = pickle.load(handle)
    if not isinstance(design, Design):
        raise TypeError(f"{str(path)!r} does not hold a design (it holds {type(design).__name__}).")
    return design


def report_design(
    data_path: str | os.PathLike | None,
    formula: str,
    *,
    group: str | None = None,
    reference: Mapping[str, object] | None = None,
    large: bool | None = None,
    design_path: str | os.PathLike | None = None,
) -> Design:
    """The checked design the report notebook works on, whichever way its data came.

    Parameters
    ----------
    data_path : str or os.PathLike or None
        The data file; None for the built-in example (Minnesota radon).
    formula : str
    group : str, optional
    reference : dict, optional
        ``{column: level}``.
    large : bool, optional
        Force (True) or forbid (False) the DuckDB path; by default chosen by file size.
    design_path : str or os.PathLike, optional
        A design the report command already checked (:func:`save_design`): it is used as it is, and
        the data file is not read again.

    Returns
    -------
    helpers.design.Design

    Examples
    --------
    >>> d = report_design(None, "log_radon ~ floor + (1 | county)")
    >>> d.n_obs, d.n_groups, d.source
    (919, 85, 'rows')
    """
    if design_path is not None:
        return load_design(design_path)
    if data_path is not None:
        return check_inputs(
            data_path, formula, reference=reference, group=group, large=large
        ).design
    from ..data import load_dataset

    data = load_dataset("radon")
    used = model_columns(formula, group, random_slopes=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        design = build_design(
            apply_reference(data, reference, used), formula, group, random_slopes=True
        )
    require_group(design.group)
    return design


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: through symlinks, hard links, ``..`` or another spelling."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the paths themselves
        return Path(a).resolve() == Path(b).resolve()


def check_outputs(
    data: str | os.PathLike,
    outputs: Mapping[str, str | os.PathLike | None],
    *,
    template: str | os.PathLike | None = None,
) -> None:
    """Refuse output paths the report cannot write, or must not: an input, a folder, one file twice.

    Parameters
    ----------
    data : str or os.PathLike
        The data file (an input).
    outputs : dict
        ``{option: path or None}``, such as ``{"--html": "r.html", "--json": None}``.
    template : str or os.PathLike, optional
        The report notebook (also an input).

    Raises
    ------
    DataError
        When an output is the data file or the notebook (compared as files, so a symlink or another
        spelling of the path is caught), is a folder, lies in a folder that does not exist, or when two
        outputs are the same file.

    Examples
    --------
    >>> check_outputs("radon.csv", {"--json": "./radon.csv"})
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: --json './radon.csv' is the data file 'radon.csv'; the report would overwrite it: choose another output file.
    """
    inputs = [("the data file", data)] + ([("the report notebook", template)] if template else [])
    given = [(option, target) for option, target in outputs.items() if target]
    for option, target in given:
        for what, source in inputs:
            if _same_file(target, source):
                raise DataError(
                    f"{option} {str(target)!r} is {what} {Path(source).name!r}; the report would "
                    "overwrite it: choose another output file."
                )
        where = Path(target)
        if where.is_dir():
            raise DataError(f"{option} {str(target)!r} is a folder; give a file name.")
        if not where.resolve().parent.is_dir():
            raise DataError(
                f"Cannot write {str(target)!r}: its folder does not exist; create it or choose another."
            )
    for k, (option, target) in enumerate(given):
        for other, second in given[k + 1 :]:
            if _same_file(target, second):
                raise DataError(
                    f"{option} and {other} name the same file ({str(target)!r}); give each its own."
                )
