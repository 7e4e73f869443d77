"""Clear errors for the reader's data and formulas.

Every check here raises :class:`DataError` with one sentence that names the column or value at fault and
says what to do. Formulas are parsed by :mod:`helpers.formula` (imported when first needed); nothing
else here imports the rest of the package.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "DataError",
    "ParsedFormula",
    "parse_formula",
    "check_columns",
    "check_finite",
    "set_reference",
]


class DataError(ValueError):
    """A problem with the reader's data or formula, explained in one sentence.

    It subclasses :class:`ValueError`, so ``except ValueError`` also catches it.
    """


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into its fixed-effects part and its grouping column.

    Attributes
    ----------
    fixed : str
        The fixed-effects formula, for example ``"pSHP2 ~ condition"``.
    group : str or None
        The grouping column of the random intercept, or None for a model without one.
    response : str
        The response as R labels it (a column name without backticks, or ``log(y)``).
    model : helpers.formula.Formula
        The parsed formula: its variables, terms, offsets and random-effects terms.
    """

    fixed: str
    group: str | None
    response: str
    model: object = field(default=None, repr=False, compare=False)

    @property
    def bars(self) -> tuple:
        """The random-effects terms, as :class:`helpers.formula.Bar` (terms, group, ``|`` or ``||``)."""
        return self.model.bars if self.model is not None else ()


def parse_formula(
    formula: str, group: str | None = None, *, random_slopes: bool = False
) -> ParsedFormula:
    """Parse an lme4-style formula into its fixed-effects part and its grouping column.

    Every formula goes through :func:`helpers.formula.parse`, which accepts only column names, numbers,
    R's formula operators and the supported functions, and refuses anything else before any value is
    computed (a formula is data; it never runs code).

    Parameters
    ----------
    formula : str
        Either a fixed-effects formula (``"y ~ x"``), used with ``group``, or an lme4-style formula with one
        random-intercept term (``"y ~ x + (1 | g)"``).
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    random_slopes : bool, default False
        Accept any random-effects terms of one grouping factor (random slopes, ``||``, several terms;
        :func:`helpers.random_terms.check_bars`), as :func:`helpers.fit.fit_lmm` does.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    DataError
        For anything the parser does not support, random slopes, several grouping factors, nested or
        crossed terms, or a formula without ``~``.

    Examples
    --------
    >>> parse_formula("pSHP2 ~ condition + (1 | cluster)")
    ParsedFormula(fixed='pSHP2 ~ condition', group='cluster', response='pSHP2')
    >>> parse_formula("y ~ x", group="g").group
    'g'
    >>> parse_formula("y ~ x + (1 | `site (id)`)").group
    'site (id)'
    """
    from .formula import parse

    model = parse(formula)
    if random_slopes:  # any random terms of one grouping factor (helpers.random_terms)
        from .random_terms import check_bars

        return ParsedFormula(
            fixed=model.fixed_text,
            group=check_bars(model.bars, group),
            response=model.response.label,
            model=model,
        )
    groups = []
    for bar in model.bars:
        if bar.double or bar.terms or not bar.intercept:
            raise DataError(
                f"The random-effects term '{bar.text}' is not supported: this package fits one random "
                "intercept, written '(1 | group)'. Remove random slopes such as '(x | g)' or '(1 + x | g)'."
            )
        if bar.nested:
            raise DataError(
                f"The random-effects term '{bar.text}' has a nested or crossed grouping; only one "
                "grouping column is supported, written '(1 | group)'."
            )
        groups.append(bar.group)
    if len(groups) > 1:
        raise DataError(
            f"The formula has {len(groups)} random-effects terms ({', '.join(groups)}); only one grouping "
            "factor is supported. Keep a single '(1 | group)' term."
        )
    if groups and group is not None and groups[0] != group:
        raise DataError(
            f"The formula groups by '{groups[0]}' but group={group!r} was also given; give only one."
        )
    group_name = groups[0] if groups else group
    return ParsedFormula(
        fixed=model.fixed_text, group=group_name, response=model.response.label, model=model
    )


def _suggest(name: str, columns) -> str:
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
    columns,
    *,
    response: str | None = None,
    group=None,
    check_infinite: bool = True,
) -> None:
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

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.0], "g": ["a", "b"]})
    >>> check_columns(df, ["y", "g"], response="y", group="g")
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
    for col in columns:
        if col not in data.columns:
            raise DataError(f"Column {col!r} is not in the data.{_suggest(col, data.columns)}")
    for col in columns:
        if data[col].isna().all():
            raise DataError(
                f"Column {col!r} is entirely missing ({len(data)} rows, all empty); fill it or drop it "
                "from the formula."
            )
    if response is not None:
        values = data[response]
        if isinstance(values.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        ):
            example = str(values.dropna().iloc[0]) if values.notna().any() else ""
            raise DataError(
                f"The response {response!r} is not numeric (type {values.dtype}, e.g. {example!r}); "
                "convert it to numbers first."
            )
    if check_infinite:
        check_finite(data, columns)
    if group is not None:
        n_levels = data[group].dropna().nunique()
        if n_levels < 2:
            raise DataError(
                f"The grouping column {group!r} has {n_levels} distinct value(s); a random intercept needs "
                "at least 2 groups (and ideally 5 or more)."
            )


def check_finite(data: pd.DataFrame, columns) -> None:
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
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            n_inf = int(np.isinf(values.to_numpy(dtype=float, na_value=np.nan)).sum())
            if n_inf:
                raise DataError(
                    f"Column {col!r} has {n_inf} infinite value(s); replace them with finite numbers "
                    "or with missing values."
                )


def set_reference(data: pd.DataFrame, column: str, level) -> pd.DataFrame:
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
    if column not in data.columns:
        raise DataError(f"Column {column!r} is not in the data.{_suggest(column, data.columns)}")
    values = data[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        levels = list(values.cat.categories)
    else:
        levels = sorted(values.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    match = [lv for lv in levels if lv == level or str(lv) == str(level)]
    if not match:
        shown = ", ".join(repr(str(lv)) for lv in levels[:12])
        raise DataError(
            f"Reference level {level!r} is not a value of column {column!r}; its levels are {shown}."
        )
    ordered = [match[0]] + [lv for lv in levels if lv != match[0]]
    out = data.copy()
    out[column] = pd.Categorical(values, categories=ordered)
    return out
