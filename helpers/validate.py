"""Clear errors for the reader's data and formulas.

Every check here raises :class:`DataError` with one sentence that names the column or value at fault and
says what to do. Nothing here imports the rest of the package: formulas are parsed, and their
random-effects terms checked, by :mod:`helpers.formula` (:func:`helpers.formula.parse_formula`).

The checks are written as functions of quantities every front end can extract, whether it holds the
rows (:func:`helpers.design.build_design`) or only a file's schema and its sums
(:func:`helpers.large.design_from_file`): the columns present, a column's type, labels and counts,
levels and the requested reference. Both front ends call the same functions, so each message exists
once.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DataError",
    "RowsDroppedWarning",
    "check_one_group",
    "require_group",
    "check_columns",
    "check_present",
    "check_not_empty",
    "check_has_rows",
    "check_infinite",
    "check_finite",
    "count_missing",
    "check_response_kind",
    "check_column_type",
    "drop_missing",
    "check_groups",
    "check_enough_rows",
    "check_unique_terms",
    "check_reference_column",
    "check_reference_level",
    "set_reference",
]


class DataError(ValueError):
    """A problem with the reader's data or formula, explained in one sentence.

    It subclasses :class:`ValueError`, so ``except ValueError`` also catches it.
    """


class RowsDroppedWarning(UserWarning):
    """Rows were dropped because a model variable was missing in them."""


def check_one_group(formula_group: str | None, group: str | None) -> None:
    """Refuse a grouping column given both in the formula and as ``group=``, when the two differ.

    Examples
    --------
    >>> check_one_group("g", "g")
    >>> check_one_group("g", "h")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: The formula groups by 'g' but group='h' was also given; give only one.
    """
    if formula_group is not None and group is not None and formula_group != group:
        raise DataError(
            f"The formula groups by '{formula_group}' but group={group!r} was also given; give only one."
        )


def require_group(group: str | None) -> str:
    """The grouping column of a model that needs one, or a :class:`DataError` when there is none.

    Examples
    --------
    >>> require_group("g")
    'g'
    >>> require_group(None)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: The formula has no random intercept: add '(1 | group)' with your grouping column, for example 'y ~ x + (1 | cluster)'.
    """
    if group is None:
        raise DataError(
            "The formula has no random intercept: add '(1 | group)' with your grouping column, for "
            "example 'y ~ x + (1 | cluster)'."
        )
    return group


def _suggest(name: str, columns: Sequence) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in columns], n=3, cutoff=0.5)
    if not close:
        lowered = {str(c).lower(): str(c) for c in columns}
        if str(name).lower() in lowered:
            close = [lowered[str(name).lower()]]
    if close:
        return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(repr(str(c)) for c in list(columns)[:12])
    more = ", ..." if len(columns) > 12 else ""
    return f" The data have: {shown}{more}."


def check_columns(
    data: pd.DataFrame,
    columns: Iterable[str],
    *,
    response: str | None = None,
    group: str | None = None,
    check_infinite: bool = True,
) -> dict[str, int]:
    """Check that the model's columns exist and can be used, or raise one clear :class:`DataError`.

    Parameters
    ----------
    data : pandas.DataFrame
    columns : iterable of str
        Every column the model uses.
    response : str, optional
        The response column, which must be numeric.
    group : str, optional
        The grouping column, which must have at least two distinct non-missing values.
    check_infinite : bool, default True
        Also refuse infinite values (:func:`check_finite`). A fit checks them only after dropping the rows
        with missing values, as R does, so it passes False here.

    Returns
    -------
    dict
        Each column's number of missing values (:func:`count_missing`), counted once for the caller.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.0], "g": ["a", "b"]})
    >>> check_columns(df, ["y", "g"], response="y", group="g")
    {'y': 0, 'g': 0}
    >>> check_columns(df, ["yy"])
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Column 'yy' is not in the data. Did you mean 'y'?
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"Expected a pandas DataFrame, got {type(data).__name__}.")
    if data.columns.duplicated().any():
        dup = data.columns[data.columns.duplicated()][0]
        raise DataError(
            f"Column name {str(dup)!r} appears more than once; give each column a unique name."
        )
    columns = list(columns)
    check_present(columns, data.columns)
    missing = {col: count_missing(data[col]) for col in columns}
    for col in columns:
        check_not_empty(col, len(data), missing[col])
    if response is not None:
        values = data[response]
        numeric = not isinstance(values.dtype, pd.CategoricalDtype) and (
            pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        )
        if not numeric:  # the example is only needed for the message
            example = str(values.dropna().iloc[0]) if values.notna().any() else None
            check_response_kind(response, str(values.dtype), numeric, example)
    if check_infinite:
        check_finite(data, columns)
    if group is not None:
        check_groups(group, _distinct_up_to_two(data[group]))
    return missing


def count_missing(values: pd.Series) -> int:
    """The number of missing values of a column (``values.isna().sum()``, without a mask where the
    column's own codes or one pass of ``isfinite`` tell).

    Examples
    --------
    >>> count_missing(pd.Series([1.0, np.nan, np.inf])), count_missing(pd.Series(["a", None]))
    (1, 1)
    """
    if isinstance(values.dtype, pd.CategoricalDtype):  # the codes themselves, without a Series
        return int(np.count_nonzero(values.array.codes < 0))
    if isinstance(values.dtype, np.dtype) and values.dtype.kind == "f":
        numbers = values.to_numpy()
        if np.isfinite(numbers).all():
            return 0
        return int(np.count_nonzero(np.isnan(numbers)))
    return int(values.isna().sum())


def _distinct_up_to_two(values: pd.Series) -> int:
    """The number of distinct non-missing values when it is 0 or 1, else 2 (or more): all that
    :func:`check_groups` needs before the drop, without hashing every label."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.array.codes
        low, high = int(codes.min(initial=-1)), int(codes.max(initial=-1))
        if low >= 0:  # nothing missing: two reductions tell
            return 1 if low == high else 2
        present = codes[codes >= 0]
        if len(present) == 0:
            return 0
        return 1 if (present == present[0]).all() else 2
    if (
        isinstance(values.dtype, np.dtype) and values.dtype.kind in "biuf"
    ):  # NaN marks a missing number
        numbers = values.to_numpy()
        present = numbers[~np.isnan(numbers)] if numbers.dtype.kind == "f" else numbers
        if len(present) == 0:
            return 0
        return 1 if (present == present[0]).all() else 2
    return int(values.dropna().nunique())


def check_present(columns: Iterable[str], available: Sequence) -> None:
    """Refuse a column that is not among ``available``, suggesting the names it may have meant.

    Examples
    --------
    >>> check_present(["Days"], ["Reaction", "days", "Subject"])
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Column 'Days' is not in the data. Did you mean 'days'?
    """
    names = list(available)
    present = set(names)
    for col in columns:
        if col not in present:
            raise DataError(f"Column {col!r} is not in the data.{_suggest(col, names)}")


def check_not_empty(column: str, n_rows: int, n_missing: int) -> None:
    """Refuse a model column whose every value is missing.

    Examples
    --------
    >>> check_not_empty("dose", 3, 3)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Column 'dose' is entirely missing (3 rows, all empty); fill it or drop it from the formula.
    """
    if n_rows > 0 and n_missing >= n_rows:
        raise DataError(
            f"Column {column!r} is entirely missing ({n_rows} rows, all empty); fill it or drop it "
            "from the formula."
        )


def check_has_rows(file_name: str, n_rows: int) -> None:
    """Refuse a data file without data rows (a header only, or nothing that reads as rows).

    Examples
    --------
    >>> check_has_rows("header.csv", 0)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: File 'header.csv' has no data rows (at most a header); give a file with the data.
    """
    if n_rows == 0:
        raise DataError(
            f"File {file_name!r} has no data rows (at most a header); give a file with the data."
        )


def check_infinite(column: str, n_infinite: int) -> None:
    """Refuse a column with ``n_infinite`` infinite values (counted by the caller).

    Examples
    --------
    >>> check_infinite("x", 0)
    >>> check_infinite("x", 1)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Column 'x' has 1 infinite value(s); replace them with finite numbers or with missing values.
    """
    if n_infinite:
        raise DataError(
            f"Column {column!r} has {n_infinite} infinite value(s); replace them with finite numbers "
            "or with missing values."
        )


def check_finite(data: pd.DataFrame, columns: Iterable[str]) -> None:
    """Refuse infinite values in the numeric ``columns``, naming the column and the count.

    Examples
    --------
    >>> check_finite(pd.DataFrame({"x": [1.0, np.inf]}), ["x"])
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Column 'x' has 1 infinite value(s); replace them with finite numbers or with missing values.
    """
    for col in columns:
        values = data[col]
        if isinstance(values.dtype, np.dtype) and values.dtype.kind == "f":  # in place, not copied
            numbers = values.to_numpy()
            if not np.isfinite(numbers).all():  # one cheap pass when all is well
                check_infinite(col, int(np.isinf(numbers).sum()))
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            check_infinite(col, int(np.isinf(values.to_numpy(dtype=float, na_value=np.nan)).sum()))


def check_response_kind(
    response: str, type_name: str, numeric: bool, example: str | None = None
) -> None:
    """Refuse a response that is not numeric (``numeric`` False), naming its type and a value.

    Examples
    --------
    >>> check_response_kind("label", "object", False, "basement")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: The response 'label' is not numeric (type object, e.g. 'basement'); convert it to numbers first.
    """
    if not numeric:
        shown = f", e.g. {example!r}" if example is not None else ""
        raise DataError(
            f"The response {response!r} is not numeric (type {type_name}{shown}); convert it to "
            "numbers first."
        )


#: The end of the message for a column of values a model cannot use.
_UNUSABLE = "which a model cannot use; keep numbers or text in the model's columns"


def check_column_type(
    column: str, type_name: str, *, dates: bool = False, unusable: bool = False, group: bool = False
) -> None:
    """Refuse a model column of dates or times (except as the grouping column), or of values no model
    can use (bytes, lists, mappings).

    Parameters
    ----------
    column : str
    type_name : str
        The type as the reader names it (a pandas dtype, a DuckDB type or a Python type).
    dates : bool
        The column holds dates, times or durations.
    unusable : bool
        The column holds bytes, lists, structs or mappings.
    group : bool
        The column is the grouping column (dates are fine labels there).

    Examples
    --------
    >>> check_column_type("when", "datetime64[ns]", dates=True)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Column 'when' holds dates or times (datetime64[ns]); convert it to numbers (for example days since the first date) or to text before using it in the model.
    """
    if unusable:
        raise DataError(f"Column {column!r} holds values of type {type_name}, {_UNUSABLE}.")
    if dates and not group:
        raise DataError(
            f"Column {column!r} holds dates or times ({type_name}); convert it to numbers (for "
            "example days since the first date) or to text before using it in the model."
        )


def drop_missing(
    n_rows: int,
    dropped_by_column: Mapping[str, int],
    n_dropped: int,
    columns: Iterable[str],
    *,
    stacklevel: int = 2,
) -> None:
    """Say how many rows were dropped for missing values, and refuse a model left without rows.

    Parameters
    ----------
    n_rows : int
        Rows before the drop.
    dropped_by_column : dict
        ``{column: missing values among the dropped rows}``, only the columns with some.
    n_dropped : int
    columns : iterable of str
        The model's columns (named when no row is left).
    stacklevel : int
        For the :class:`RowsDroppedWarning`, counted from the caller of this function.

    Examples
    --------
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", RowsDroppedWarning)
    ...     drop_missing(3, {"x": 3}, 3, ["y", "x"])
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: No rows are left after dropping rows with missing values in 'y', 'x'; check which columns are empty.
    """
    if n_dropped:
        detail = ", ".join(f"{c}: {k}" for c, k in dropped_by_column.items())
        warnings.warn(
            f"Dropped {n_dropped} of {n_rows} rows with missing values ({detail}).",
            RowsDroppedWarning,
            stacklevel=stacklevel + 1,
        )
    if n_dropped >= n_rows:
        raise DataError(
            "No rows are left after dropping rows with missing values in "
            + ", ".join(repr(c) for c in columns)
            + "; check which columns are empty."
        )


def check_groups(group: str, n_groups: int, n_obs: int | None = None) -> None:
    """Refuse a grouping column with fewer than 2 groups, or with as many groups as rows.

    Parameters
    ----------
    group : str
    n_groups : int
        Distinct values among the rows kept (or, before the drop, among the non-missing values: if
        those are fewer than 2, the rows kept have fewer still).
    n_obs : int, optional
        Rows the model uses (after dropping missing values).

    Examples
    --------
    >>> check_groups("site", 12, 100)
    >>> check_groups("site", 1)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: The grouping column 'site' has 1 distinct value(s) after dropping rows with missing values; a random intercept needs at least 2 groups (and ideally 5 or more).
    """
    if n_groups < 2:
        raise DataError(
            f"The grouping column {group!r} has {n_groups} distinct value(s) after dropping rows "
            "with missing values; a random intercept needs at least 2 groups (and ideally 5 or more)."
        )
    if n_obs is not None and n_groups >= n_obs:
        raise DataError(
            f"The grouping column {group!r} has as many groups ({n_groups}) as rows; with one row "
            "per group the group and residual variances cannot be told apart. Check the grouping "
            "column."
        )


def check_enough_rows(n_obs: int, n_params: int) -> None:
    """Refuse a model with no more complete rows than fixed effects.

    Examples
    --------
    >>> check_enough_rows(2, 2)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Only 2 complete rows for 2 fixed effects; the model needs more rows than coefficients.
    """
    if n_obs <= n_params:
        raise DataError(
            f"Only {n_obs} complete rows for {n_params} fixed effects; the model needs more rows "
            "than coefficients."
        )


def check_unique_terms(term_names: Sequence[str]) -> None:
    """Refuse two fixed effects of the same name (a column named like another term's coefficient).

    Examples
    --------
    >>> check_unique_terms(["Intercept", "x", "x"])
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Two fixed effects are both named 'x' (a column named like the intercept or like another term's coefficient); rename that column.
    """
    names = list(term_names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"Two fixed effects are both named {repeated[0]!r} (a column named like the intercept "
            "or like another term's coefficient); rename that column."
        )


def check_reference_column(column: str, used: Iterable[str], numeric: bool) -> None:
    """Refuse a reference level set for a column the formula does not use, or for a numeric one.

    Parameters
    ----------
    column : str
        A column of ``--reference column=level`` (it exists: check that first).
    used : iterable of str
        The columns the model uses.
    numeric : bool
        Whether the column is numeric (a reference level needs text or categories).

    Examples
    --------
    >>> check_reference_column("dose", ["y", "x", "g"], numeric=False)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: The reference level is set for 'dose', which the formula does not use.
    """
    if column not in set(used):
        raise DataError(
            f"The reference level is set for {column!r}, which the formula does not use."
        )
    if numeric:
        raise DataError(
            f"The reference level is set for {column!r}, which is numeric; a reference level "
            "applies to a text (categorical) column."
        )


def check_reference_level(column: str, level: object, levels: Sequence) -> object:
    """The level of ``levels`` that ``level`` names (as itself or as text), or a :class:`DataError`.

    Examples
    --------
    >>> check_reference_level("wave", "2", [1, 2, 3])
    2
    >>> check_reference_level("arm", "C", ["A", "B"])
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: Reference level 'C' is not a value of column 'arm'; its levels are 'A', 'B'.
    """
    match = [lv for lv in levels if lv == level or str(lv) == str(level)]
    if not match:
        shown = ", ".join(repr(str(lv)) for lv in list(levels)[:12])
        raise DataError(
            f"Reference level {level!r} is not a value of column {column!r}; its levels are {shown}."
        )
    return match[0]


def set_reference(data: pd.DataFrame, column: str, level: object) -> pd.DataFrame:
    """Return a copy of ``data`` in which ``level`` is the first (reference) category of ``column``.

    Parameters
    ----------
    data : pandas.DataFrame
    column : str
    level : object
        The level to use as reference. Given as text, it also matches numeric levels (``"2"`` matches 2).

    Examples
    --------
    >>> df = pd.DataFrame({"arm": ["A", "B", "B"]})
    >>> list(set_reference(df, "arm", "B")["arm"].cat.categories)
    ['B', 'A']
    """
    check_present([column], data.columns)
    values = data[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        levels = list(values.cat.categories)
    else:
        levels = sorted(values.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    first = check_reference_level(column, level, levels)
    ordered = [first] + [lv for lv in levels if lv != first]
    out = data.copy()
    out[column] = pd.Categorical(values, categories=ordered)
    return out
