"""The own-data report: pooled OLS, fixed effects and the mixed model side by side, for your file.

Command line (also installed as ``lmm-report``)::

    python -m helpers report DATA --formula "y ~ x1 + x2 + (1 | g)" [--reference col=level ...]
                             [--ml] [--large] [--html report.html] [--json result.json]

``DATA`` is a CSV (``.csv``, ``.tsv``, optionally gzipped) or Parquet file. The command checks the file
and the formula first (each problem is one line on stderr and exit status 2), then runs the notebook
``notebooks/07_your_own_data.ipynb`` with these values injected after its ``parameters`` cell, as
papermill does, so the report and the notebook never diverge. The HTML report is self-contained: figures
are embedded, code is hidden, and nothing is loaded from the network (math is drawn as embedded SVG).
Without ``--html`` or ``--json`` it writes ``<DATA stem>_report.html`` in the current folder.

Files larger than :data:`LARGE_FILE_BYTES` (or any file, with ``--large``) are never loaded into memory:
DuckDB computes the per-cluster sufficient statistics straight from the file (:mod:`helpers.large`),
and the report skips the row-level checks that need rows, saying so.

Exit status: 0 on success, 2 for a problem with the input (file, formula, columns, levels, an output
path that is an input), 1 if the report itself fails: that is a bug, and one line says so and where to
report it (``--debug`` adds the traceback).

JSON output (``--json``)
------------------------
One object; every float is written at full precision (``repr``), and a value that is not defined (for
example the within estimate of the intercept) is ``null``. Term names follow formulaic
(``Intercept``, ``condition[T.stim]``).

- ``n_obs`` (int): rows used in the fits.
- ``n_groups`` (int): clusters.
- ``n_dropped`` (int): rows dropped because a model column was missing in them.
- ``dropped_by_column`` ({column: int}): missing values per model column among the dropped rows.
- ``formula`` (str), ``group`` (str): the model as fitted.
- ``source`` (str): ``"rows"`` (loaded into memory) or ``"duckdb"`` (sums computed from the file).
- ``reference_levels`` ({column: str}): each categorical predictor's reference level (R's order in the
  C locale unless ``--reference`` sets it).
- ``ols``: pooled OLS (R's ``lm``): ``params`` and ``bse`` ({term: float}) and ``sigma2`` (the residual
  variance, RSS / (N - p)).
- ``lmm``: the random-intercept model (lme4's ``lmer``): ``method`` (``"REML"`` or ``"ML"``),
  ``params`` and ``bse`` ({term: float}), ``sigma2_group`` (sigma_b^2), ``sigma2_resid`` (sigma^2),
  ``theta`` (sigma_b / sigma), ``criterion`` (the REML criterion, or the ML deviance, as lme4 reports
  it) and ``singular`` (bool: sigma_b^2 estimated as exactly 0).
- ``decompose``: why the estimates moved: ``within`` (the fixed-effects, cluster-dummy estimator),
  ``between`` (OLS of the cluster means), ``reconstructed`` (the mixed model's estimates recomputed
  independently: OLS on quasi-demeaned rows, or from the within/between blend for ``source = "duckdb"``),
  each {term: float or null}, and ``design_effect`` (float: 1 + (sum n_i^2 / N - 1) ICC).
- ``warnings`` ([str]): the plain-language warnings of the report (singular fit, few clusters, clusters
  of one row, predictors that do not vary within clusters).
"""

from __future__ import annotations

import argparse
import base64
import html as html_lib
import json
import math
import os
import re
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .design import RowsDroppedWarning, build_design, model_columns
from .large import (
    NA_STRINGS,
    check_file,
    design_from_file,
    file_columns,
    is_read_error,
    text_number_problem,
)
from .validate import DataError, check_columns, parse_formula, set_reference

__all__ = [
    "LARGE_FILE_BYTES",
    "NOTEBOOK",
    "Checked",
    "notebook_path",
    "read_table",
    "parse_reference",
    "apply_reference",
    "check_inputs",
    "decompose_from_design",
    "data_summary",
    "comparison_table",
    "plain_warnings",
    "MarkdownText",
    "describe_model",
    "reference_levels",
    "show_table",
    "show_figure",
    "figure_alt",
    "explain_moves",
    "warning_list",
    "result_dict",
    "write_json",
    "inject_parameters",
    "run_notebook",
    "export_html",
    "check_outputs",
    "make_report",
    "main",
]

#: Files larger than this (in bytes) go through DuckDB instead of pandas.
LARGE_FILE_BYTES = 256 * 1024**2

#: The template notebook the report runs.
NOTEBOOK = "07_your_own_data.ipynb"

#: Cells with this tag are teaching material (learning goals, exercises) left out of the HTML report.
NOTEBOOK_ONLY_TAG = "notebook-only"


def notebook_path() -> Path:
    """The template notebook, found next to the installed package (``helpers/../notebooks``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        When the package is installed without its notebooks (install it editable from the repository).

    Examples
    --------
    >>> notebook_path().name
    '07_your_own_data.ipynb'
    """
    path = Path(__file__).resolve().parent.parent / "notebooks" / NOTEBOOK
    if not path.is_file():
        raise NotebookMissing(
            f"The report notebook {NOTEBOOK} was not found at {path}; the report needs the repository's "
            "notebooks folder next to helpers/ (install the package with 'pip install -e .' from a "
            "clone of the repository)."
        )
    return path


def read_table(path) -> pd.DataFrame:
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
        # a damaged file: pandas' ParserError, or what large.is_read_error lists (pyarrow, gzip,
        # encodings); anything else is a bug of ours and is not reported as a problem with the data
        if not (isinstance(exc, pd.errors.ParserError) or is_read_error(exc)):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "Parquet" if fmt == "parquet" else "CSV"
        raise DataError(f"File {name!r} could not be read as {kind}: {first}") from None
    if len(frame) == 0:
        raise DataError(f"File {name!r} has a header but no data rows.")
    if fmt != "parquet" and not isinstance(frame.index, pd.RangeIndex):
        # pandas (like R's read.csv) takes the extra leading fields as row names, which shifts every
        # column when the extra field is a delimiter at the end of each line instead
        raise DataError(
            f"File {name!r} has more fields in its data rows than names in its header (row names "
            "without a header, or a delimiter at the end of each line?); give every column a name "
            "in the header and remove delimiters at the ends of lines."
        )
    return frame


def parse_reference(items) -> dict:
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


def apply_reference(data: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """Make each given level the reference (first) level of its text column.

    Parameters
    ----------
    data : pandas.DataFrame
    reference : dict
        ``{column: level}``.

    Returns
    -------
    pandas.DataFrame
        A copy; the named columns become categorical.

    Raises
    ------
    DataError
        For a column not in the data, a numeric column, or a level the column does not have.

    Examples
    --------
    >>> df = pd.DataFrame({"arm": ["b", "a", "c"]})
    >>> list(apply_reference(df, {"arm": "c"})["arm"].cat.categories)
    ['c', 'a', 'b']
    """
    for column, level in (reference or {}).items():
        check_columns(data, [column])
        values = data[column]
        if pd.api.types.is_numeric_dtype(values) and not isinstance(
            values.dtype, pd.CategoricalDtype
        ):
            raise DataError(
                f"The reference level is set for {column!r}, which is numeric; a reference level "
                "applies to a text (categorical) column."
            )
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
        True when the statistics come from the file through DuckDB.
    design : helpers.design.Design or helpers.large.FileDesign
    """

    path: str
    formula: str
    reference: dict
    large: bool
    design: object

    @property
    def n_dropped(self) -> int:
        return int(self.design.n_dropped)

    def dropped_message(self) -> str:
        """One sentence about the rows dropped for missing values ('' when none were)."""
        return _dropped_sentence(self.design)


def _dropped_sentence(design) -> str:
    n_dropped = int(design.n_dropped)
    if not n_dropped:
        return ""
    n_rows = int(design.stats.n_obs) + n_dropped
    detail = ", ".join(f"{k} in {c!r}" for c, k in design.dropped_by_column.items())
    return (
        f"Dropped {n_dropped} of {n_rows} rows with missing values (missing values: {detail}); "
        f"the fits use the other {n_rows - n_dropped}."
    )


def _check_text_numbers(data: pd.DataFrame, used, formula: str, group: str | None) -> None:
    """Refuse a model column read as text that mostly holds numbers (see text_number_problem)."""
    grouping = parse_formula(formula, group).group
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


_UNUSABLE = "which a model cannot use; keep numbers or text in the model's columns"


def _check_column_kinds(data: pd.DataFrame, used, group: str | None) -> None:
    """Refuse model columns holding bytes, lists or mappings, and dates or durations as predictors.

    These come from Parquet files (binary, list, struct and timestamp columns) and would otherwise fail
    deep inside the fit with a message about Python types.
    """
    for column in used:
        if column not in data.columns or isinstance(data[column], pd.DataFrame):
            continue
        values = data[column]
        kind = values.dtype
        if pd.api.types.is_datetime64_any_dtype(kind) or pd.api.types.is_timedelta64_dtype(kind):
            if column == group:
                continue
            raise DataError(
                f"Column {column!r} holds dates or times ({kind}); convert it to numbers (for "
                "example days since the first date) or to text before using it in the model."
            )
        if pd.api.types.is_object_dtype(kind):
            sample = values.dropna().head(1000)
            odd = sample[
                sample.map(
                    lambda v: isinstance(v, bytes | bytearray | list | tuple | dict | np.ndarray)
                )
            ]
            if len(odd):
                raise DataError(
                    f"Column {column!r} holds {type(odd.iloc[0]).__name__} values, {_UNUSABLE}."
                )


def _check_file_kinds(path, used, group: str | None) -> None:
    """The large-file path's counterpart of :func:`_check_column_kinds`, from the file's schema."""
    types = file_columns(path)
    for column in used:
        kind = types.get(column)
        if kind is None:
            continue  # a missing column: design_from_file names it
        if "[" in kind or kind.startswith(("STRUCT", "MAP", "UNION", "BLOB")):
            raise DataError(f"Column {column!r} holds values of type {kind}, {_UNUSABLE}.")
        if column != group and kind.startswith(("DATE", "TIME", "INTERVAL")):
            raise DataError(
                f"Column {column!r} holds dates or times ({kind}); convert it to numbers (for "
                "example days since the first date) or to text before using it in the model."
            )


def _check_fit(design) -> None:
    """The fit's own refusals (an exactly fitted response), found now rather than in the notebook.

    Optimising theta from the sufficient statistics takes milliseconds; it keeps every input error
    ahead of the notes printed before the notebook runs, so that an error is always one line.
    """
    from .fit import fit_lmm_from_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_lmm_from_stats(
            design.stats,
            list(design.term_names),
            design.group_labels,
            reml=True,
            formula=design.formula,
            response=design.response,
            group=design.group,
            n_dropped=design.n_dropped,
        )


def check_inputs(
    path,
    formula: str,
    *,
    reference=None,
    group: str | None = None,
    large: bool | None = None,
) -> Checked:
    """Check the file, the formula and the reference levels, as fast as possible and before the report.

    Besides the checks of :func:`helpers.large.check_file` (a sane CSV header) and
    :func:`helpers.design.build_design`, it refuses a model column read as text that mostly holds
    numbers (a stray word, thousands separators, decimal commas), a predictor named ``Intercept``,
    two fixed effects of the same name, and a response the fixed effects fit exactly (found by
    fitting from the sufficient statistics, which takes milliseconds), so that every input error
    comes before the report's notes and the notebook.

    Parameters
    ----------
    path : str or os.PathLike
    formula : str
        ``"y ~ x + (1 | g)"``.
    reference : dict, optional
        ``{column: level}``.
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    large : bool, optional
        Force (True) or forbid (False) the DuckDB path; by default it is used for files larger than
        :data:`LARGE_FILE_BYTES`.

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
    check_file(path)
    # the columns the model uses; this also refuses syntax errors and a column named 'Intercept'
    used = model_columns(formula, group)
    reference = dict(reference or {})
    use_large = Path(path).stat().st_size > LARGE_FILE_BYTES if large is None else bool(large)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        grouping = parse_formula(formula, group).group
        if use_large:
            _check_file_kinds(path, used, grouping)
            design = design_from_file(path, formula, group=group, reference=reference)
        else:
            data = read_table(path)
            _check_column_kinds(data, used, grouping)
            _check_text_numbers(data, used, formula, group)
            for column in reference:
                check_columns(data, [column])
                if column not in used:
                    raise DataError(
                        f"The reference level is set for {column!r}, which the formula does not use."
                    )
            data = apply_reference(data, reference)
            design = build_design(data, formula, group)
            if design.group is None:
                raise DataError(
                    "The formula has no random intercept: add '(1 | group)' with your grouping column, "
                    "for example 'y ~ x + (1 | cluster)'."
                )
        names = list(design.term_names)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise DataError(
                f"Two fixed effects are both named {repeated[0]!r} (a column named like the intercept "
                "or like another term's coefficient); rename that column."
            )
        _check_fit(design)
    return Checked(
        path=str(Path(path).resolve()),
        formula=formula,
        reference=reference,
        large=use_large,
        design=design,
    )


def decompose_from_design(design, *, reml: bool = True, formula: str | None = None):
    """Everything :func:`helpers.decompose.decompose` gives, from sufficient statistics alone.

    This is the DuckDB path's counterpart of ``decompose(data, formula)``: the same fits, estimators and
    cluster table, computed from ``design.stats``. The one difference: ``reconstructed`` comes from the
    exact within/between blend rather than from OLS on quasi-demeaned rows, which needs the rows; and
    pooled OLS has no cluster-robust standard errors.

    Parameters
    ----------
    design : helpers.large.FileDesign or helpers.design.Design
    reml : bool, default True
    formula : str, optional
        Defaults to ``design.formula``.

    Returns
    -------
    helpers.decompose.Decomposition

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> dec = decompose_from_design(d)
    >>> dec.estimates.round(3)
                 ols  between  within    lmm  reconstructed
    Intercept  1.327    1.445     NaN  1.462          1.462
    floor     -0.613   -0.463  -0.721 -0.693         -0.693
    """
    from .decompose import assemble_decomposition
    from .fit import fit_lmm_from_stats
    from .large import ols_from_stats

    stats = design.stats
    names = list(design.term_names)
    formula = design.formula if formula is None else formula
    lmm_fit = fit_lmm_from_stats(
        stats,
        names,
        design.group_labels,
        reml=reml,
        formula=formula,
        response=design.response,
        group=design.group,
        n_dropped=design.n_dropped,
    )
    ols_fit = ols_from_stats(stats, names, formula=formula, n_dropped=design.n_dropped)
    return assemble_decomposition(lmm_fit, ols_fit)


def data_summary(design) -> pd.DataFrame:
    """The data at a glance: rows, clusters, cluster sizes, and the rows dropped and why.

    Parameters
    ----------
    design : helpers.design.Design or helpers.large.FileDesign

    Returns
    -------
    pandas.DataFrame
        One column, ``value``, indexed by a plain-language label.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> data_summary(d).loc[["rows used", "clusters (county)", "cluster size: smallest"], "value"].tolist()
    ['919', '85', '1']
    """
    stats = design.stats
    n = stats.counts
    n_rows = int(stats.n_obs) + int(design.n_dropped)
    rows = {
        "rows in the file": f"{n_rows}",
        "rows used": f"{stats.n_obs}",
        "rows dropped (missing values)": f"{design.n_dropped}",
    }
    for column, count in design.dropped_by_column.items():
        rows[f"  missing in {column}"] = f"{count}"
    rows[f"clusters ({design.group})"] = f"{stats.n_groups}"
    rows["cluster size: smallest"] = f"{int(n.min())}"
    rows["cluster size: median"] = f"{float(np.median(n)):g}"
    rows["cluster size: largest"] = f"{int(n.max())}"
    rows["clusters with a single row"] = f"{int((n == 1).sum())}"
    rows["fixed effects"] = ", ".join(design.term_names)
    return pd.DataFrame({"value": pd.Series(rows)})


def comparison_table(dec) -> pd.DataFrame:
    """Pooled OLS, the within (fixed-effects) estimator and the mixed model, term by term.

    Parameters
    ----------
    dec : helpers.decompose.Decomposition

    Returns
    -------
    pandas.DataFrame
        Columns ``OLS``, ``OLS SE``, (``OLS cluster-robust SE`` when available), ``within``, ``LMM``,
        ``LMM SE``, and ``LMM - OLS``, the move of each estimate.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> comparison_table(decompose_from_design(d))[["OLS", "LMM"]].round(3)
                 OLS    LMM
    Intercept  1.327  1.462
    floor     -0.613 -0.693
    """
    ols, lmm = dec.ols_fit, dec.lmm_fit
    table = pd.DataFrame({"OLS": ols.params, "OLS SE": ols.bse})
    if getattr(ols, "bse_cluster", None) is not None:
        table["OLS cluster-robust SE"] = ols.bse_cluster
    table["within"] = dec.within
    table["LMM"] = lmm.fe_params
    table["LMM SE"] = lmm.bse
    table["LMM - OLS"] = lmm.fe_params - ols.params
    return table


def plain_warnings(design, lmm) -> list:
    """Plain-language warnings about the data and the fit, one sentence or two each.

    Checks: a singular fit (sigma_b^2 = 0), fewer than 5 clusters, clusters of a single row, predictors
    that do not vary within any cluster, and an optimiser that did not converge.

    Parameters
    ----------
    design : helpers.design.Design or helpers.large.FileDesign
    lmm : helpers.results.LmmResult

    Returns
    -------
    list of str
        Empty when nothing needs saying.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> radon = load_dataset("radon")
    >>> d = build_design(radon, "log_radon ~ floor + uranium + (1 | county)")
    >>> for text in plain_warnings(d, fit_lmm(radon, "log_radon ~ floor + uranium + (1 | county)")):
    ...     print(text[:60])
    3 of the 85 clusters have a single row. Each gives informati
    'uranium' does not vary within any cluster ('county'): it is
    """
    from .decompose import within_estimator

    stats = design.stats
    n = stats.counts
    n_groups = stats.n_groups
    group = design.group
    out = []
    if lmm.singular:
        out.append(
            "The between-cluster variance is estimated as exactly 0 (a singular, or boundary, fit): the "
            "cluster means differ no more than the residual noise alone would make them, so the mixed "
            "model's fixed effects equal pooled OLS. This does not show that the clusters are alike; "
            "with few or small clusters the variance is poorly determined."
        )
    if n_groups < 5:
        out.append(
            f"Only {n_groups} clusters ({group!r}): the between-cluster variance is estimated from "
            f"{n_groups} cluster means, so it, and every standard error that depends on it, is very "
            "uncertain. With fewer than about 5 clusters, consider the fixed-effects (within) estimator "
            "instead, and say so."
        )
    singles = int((n == 1).sum())
    if singles:
        out.append(
            f"{singles} of the {n_groups} clusters {'has' if singles == 1 else 'have'} a single row. "
            "Each gives information on "
            "the overall level and the variances but none on within-cluster effects, and its own "
            "intercept is pulled strongly toward the overall level."
        )
    within = within_estimator(stats, design.term_names)
    for term, value in within.items():
        if term == "Intercept" or not np.isnan(value):
            continue
        out.append(
            f"{term!r} does not vary within any cluster ({group!r}): it is a cluster-level predictor. The "
            "fixed-effects (within) estimator cannot estimate it, and the mixed model estimates it "
            f"from the differences between the {n_groups} clusters only, so its standard error "
            f"reflects {n_groups} clusters, not {stats.n_obs} rows."
        )
    if not lmm.converged:
        out.append(
            "The optimiser did not converge: the criterion keeps falling as the between-cluster "
            "variance grows. Check that the response varies within clusters."
        )
    return out


class MarkdownText(str):
    """Text that a notebook displays as Markdown (and prints as itself elsewhere).

    Examples
    --------
    >>> MarkdownText("**bold**")._repr_markdown_()
    '**bold**'
    """

    def _repr_markdown_(self) -> str:
        return str(self)


def _code(text) -> str:
    """Markdown inline code that survives backticks inside, such as a quoted column name."""
    text = str(text)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def reference_levels(design) -> dict:
    """Each categorical predictor's reference level: the level its coefficients are compared with.

    Levels are ordered as R orders them in the C locale (text sorted by code point, so ``'B'`` comes
    before ``'a'``), a pandas categorical keeps its own order, and ``--reference`` moves a level first.
    The levels come from the design (``Design.reference_levels``, ``FileDesign.reference_levels``).

    Parameters
    ----------
    design : helpers.design.Design or helpers.large.FileDesign

    Returns
    -------
    dict
        ``{column: level}`` as text, empty when the model has no factor coded by treatment contrasts
        (an ordered factor's polynomial contrasts have no reference level).

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0, 5.5, 6.0, 8.0, 7.5],
    ...                    "arm": ["b", "B", "a", "A", "b", "B", "a", "A"],
    ...                    "g": ["u", "u", "v", "v", "w", "w", "z", "z"]})
    >>> reference_levels(build_design(df, "y ~ arm + (1 | g)"))
    {'arm': 'A'}
    """
    found = getattr(design, "reference_levels", None) or {}
    return {str(column): str(level) for column, level in dict(found).items()}


def _reference_sentence(design) -> str:
    found = reference_levels(design)
    if not found:
        return ""
    listed = "; ".join(f"{_code(column)}: {_code(level)}" for column, level in found.items())
    return (
        "Each categorical predictor's coefficients compare its levels with its reference level: "
        f"{listed}. Levels are ordered as R orders them in the C locale (for text, capitals before "
        "small letters); R in another locale may choose another reference for mixed-case labels. "
        "Choose one with `--reference column=level` (in the notebook, the `reference` parameter)."
    )


def describe_model(design, data_path=None, large: bool = False) -> MarkdownText:
    """One paragraph saying what was fitted to which data, and how (rows in memory or DuckDB sums).

    Parameters
    ----------
    design : helpers.design.Design or helpers.large.FileDesign
    data_path : str, optional
        The file; None for the built-in example.
    large : bool, default False
        Whether the statistics came from the file through DuckDB.

    Returns
    -------
    MarkdownText

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> print(describe_model(d))
    Model `log_radon ~ floor + (1 | county)` fitted to the built-in example (Minnesota radon): 919 rows in 85 clusters of `county`.
    """
    if data_path is None:
        source = "the built-in example (Minnesota radon)"
    else:
        source = _code(Path(data_path).name)
    text = (
        f"Model {_code(design.formula)} fitted to {source}: {design.stats.n_obs} rows in "
        f"{design.stats.n_groups} clusters of {_code(design.group)}."
    )
    if design.n_dropped:
        text += " " + _dropped_sentence(design)
    references = _reference_sentence(design)
    if references:
        text += "\n\n" + references
    if large:
        text += (
            "\n\nThe sums were computed from the file by DuckDB; its rows were never loaded into "
            "memory. Everything below comes from those sums, except three row-level checks, which are "
            "skipped: the quasi-demeaned refit (the `reconstructed` column comes from the exact "
            "within/between blend instead), cluster-robust standard errors for pooled OLS, and the "
            "residual quantiles of the model summary."
        )
    return MarkdownText(text)


def _g(value: float, digits: int = 4) -> str:
    """``digits`` significant digits, keeping trailing zeros (0.6930, not 0.693)."""
    text = f"{value:#.{digits}g}"
    return text[:-1] if text.endswith(".") else text


def explain_moves(dec) -> MarkdownText:
    """Term by term, how far the mixed model moved from pooled OLS, and where it moved toward.

    Parameters
    ----------
    dec : helpers.decompose.Decomposition

    Returns
    -------
    MarkdownText
        A bullet list, then the design effect in one sentence.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> print(explain_moves(decompose_from_design(d)).splitlines()[1][:71])
    - `floor`: pooled OLS -0.6134, mixed model -0.6930 (a move of -0.07960,
    """
    ols, lmm = dec.ols_fit, dec.lmm_fit
    weight = dec.blend.weight_within
    lines = []
    for term in lmm.fe_params.index:
        b_ols, b_lmm = float(ols.params[term]), float(lmm.fe_params[term])
        move = b_lmm - b_ols
        in_se = abs(move) / float(ols.bse[term]) if float(ols.bse[term]) > 0 else float("inf")
        text = (
            f"- {_code(term)}: pooled OLS {_g(b_ols)}, mixed model {_g(b_lmm)} (a move of "
            f"{'+' if move >= 0 else ''}{_g(move)}, {_g(in_se, 3)} OLS standard errors)."
        )
        within = float(dec.within[term])
        share = float(weight.loc[term, term])
        if np.isfinite(within):
            text += (
                f" The within estimate is {_g(within)}; the mixed model puts a weight of {share:.3f} "
                "on it (the diagonal of $M_W$) and the rest on the between regression of the cluster "
                "means."
            )
        else:
            weighted = float(dec.blend.beta_between[term])
            text += (
                " The within estimator cannot estimate it (it does not vary within clusters), so the "
                "mixed model estimates it from the cluster means, weighted by $w_i$ rather than by "
                f"$n_i$: the $w_i$-weighted between regression alone gives {_g(weighted)}"
            )
            if abs(weighted - b_lmm) > 1e-8 * max(abs(b_lmm), 1.0):
                text += ", and the other terms' within estimates carry it the rest of the way"
            text += "."
        lines.append(text)
    n = dec.lmm_fit.stats.counts.astype(float)
    lines.append(
        "\n"
        f"The intraclass correlation is {dec.icc:.3g} and the size-weighted mean cluster size "
        f"{float((n * n).sum() / n.sum()):.4g}, so the design effect is {dec.design_effect:.4g}: "
        f"for the overall level, the {int(n.sum())} clustered rows carry about as much information as "
        f"{n.sum() / dec.design_effect:.4g} independent rows would."
    )
    return MarkdownText("\n".join(lines))


def _cell(value) -> str:
    """A table number as pandas shows it with 4 decimals, switching to scientific for tiny or huge."""
    value = float(value)
    if value == 0 or 1e-4 <= abs(value) < 1e9:
        return f"{value:.4f}"
    return f"{value:.4e}"


#: How a value that is not defined (the within estimate of the intercept) is shown in tables.
NOT_DEFINED = "\u2014"


def show_table(table: pd.DataFrame):
    """A numeric table as the report shows it: 4 decimals, and an em dash where a value is not defined.

    Parameters
    ----------
    table : pandas.DataFrame

    Returns
    -------
    pandas.io.formats.style.Styler
        Displays as an HTML table in a notebook; the data are unchanged.

    Examples
    --------
    >>> html = show_table(pd.DataFrame({"within": [np.nan, -0.72141]})).to_html()
    >>> "\u2014" in html, "-0.7214" in html, "nan" in html.lower()
    (True, True, False)
    """
    return table.style.format(_cell, na_rep=NOT_DEFINED)


class _DescribedFigure:
    """A figure that displays as a PNG carrying a text description (the image's ``alt`` text)."""

    def __init__(self, figure, description: str):
        self.figure = figure
        self.description = description

    def _repr_png_(self):
        return self.figure._repr_png_(), {"alt": self.description}

    def __repr__(self) -> str:
        return f"<figure: {self.description}>"


def show_figure(figure, description: str):
    """Display ``figure`` as a PNG with ``description`` as its alt text (the HTML report keeps it).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        One of :mod:`helpers.plots`' figures (it must show itself as a PNG).
    description : str
        What the figure shows, for readers who cannot see it.

    Returns
    -------
    object
        Displays as the figure in a notebook.

    Examples
    --------
    >>> from helpers.plots import new_figure
    >>> fig, ax = new_figure()
    >>> png, meta = show_figure(fig, "An empty panel.")._repr_png_()
    >>> png[:4], meta
    (b'\x89PNG', {'alt': 'An empty panel.'})
    """
    return _DescribedFigure(figure, description)


def figure_alt(number: int, design, lmm) -> str:
    """The description of the report's figure ``number`` (1 pooling, 2 path, 3 profile) for its alt text.

    Parameters
    ----------
    number : int
    design : helpers.design.Design or helpers.large.FileDesign
    lmm : helpers.results.LmmResult

    Returns
    -------
    str

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> radon = load_dataset("radon")
    >>> d = build_design(radon, "log_radon ~ floor + (1 | county)")
    >>> print(figure_alt(2, d, fit_lmm(radon, "log_radon ~ floor + (1 | county)")))
    Figure 2: 2 panels, one per fixed effect (Intercept, floor), each showing its estimate with a one-standard-error band as theta grows from 0 (pooled OLS) toward the within estimator; the fitted theta, 0.4344, is marked.
    """
    from .fit import optimize_theta

    stats = design.stats
    if number == 1:
        return (
            f"Figure 1: for each of the {stats.n_groups} clusters of {design.group}, its own level "
            f"of {design.response} (open circle, no pooling) and the mixed model's estimate of it "
            "(filled circle) against the cluster's size; small clusters move furthest toward the "
            "mixed model's overall level"
            + (
                f", {_g(float(lmm.fe_params['Intercept']))}."
                if "Intercept" in lmm.fe_params.index
                else "."
            )
        )
    if number == 2:
        terms = list(design.term_names)
        return (
            f"Figure 2: {len(terms)} panel{'s' if len(terms) != 1 else ''}, one per fixed effect "
            f"({', '.join(terms)}), each showing its estimate with a one-standard-error band as theta "
            "grows from 0 (pooled OLS) toward the within estimator; the fitted theta, "
            f"{_g(lmm.theta)}, is marked."
        )
    if number == 3:
        reml, _ = optimize_theta(stats, True)
        ml, _ = optimize_theta(stats, False)
        return (
            "Figure 3: the profiled REML criterion and ML deviance against theta, each relative to "
            f"its minimum; the REML minimum is at theta = {_g(reml)}, the ML minimum at theta = "
            f"{_g(ml)}, and a dotted line at 3.84 marks the 95% profile interval."
        )
    raise ValueError(f"The report has figures 1 to 3, not {number}.")


def warning_list(design, lmm) -> MarkdownText:
    """:func:`plain_warnings` as a Markdown bullet list, or a sentence saying there are none.

    Parameters
    ----------
    design : helpers.design.Design or helpers.large.FileDesign
    lmm : helpers.results.LmmResult

    Returns
    -------
    MarkdownText

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> sleep = load_dataset("sleepstudy")
    >>> d = build_design(sleep, "Reaction ~ Days + (1 | Subject)")
    >>> print(warning_list(d, fit_lmm(sleep, "Reaction ~ Days + (1 | Subject)")))
    No warnings: the fit is not singular, there are at least 5 clusters, none has a single row, and every predictor varies within clusters.
    """
    items = plain_warnings(design, lmm)
    if not items:
        return MarkdownText(
            "No warnings: the fit is not singular, there are at least 5 clusters, none has a single "
            "row, and every predictor varies within clusters."
        )
    return MarkdownText("\n".join(f"- **Warning.** {item}" for item in items))


def _floats(series: pd.Series) -> dict:
    return {
        str(k): (None if v is None or not math.isfinite(float(v)) else float(v))
        for k, v in series.items()
    }


def _float(value):
    value = float(value)
    return value if math.isfinite(value) else None


def result_dict(design, dec) -> dict:
    """The report's numbers as a JSON-ready dict (the schema is in this module's docstring).

    Parameters
    ----------
    design : helpers.design.Design or helpers.large.FileDesign
    dec : helpers.decompose.Decomposition

    Returns
    -------
    dict

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> d = build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> result = result_dict(d, decompose_from_design(d))
    >>> result["n_obs"], result["lmm"]["method"], round(result["lmm"]["criterion"], 6)
    (30, 'REML', 319.654277)
    """
    ols, lmm = dec.ols_fit, dec.lmm_fit
    return {
        "n_obs": int(lmm.n_obs),
        "n_groups": int(lmm.n_groups),
        "n_dropped": int(design.n_dropped),
        "dropped_by_column": {str(k): int(v) for k, v in design.dropped_by_column.items()},
        "formula": str(lmm.formula),
        "group": str(lmm.group),
        "source": "rows" if getattr(design, "X", None) is not None else "duckdb",
        "reference_levels": reference_levels(design),
        "ols": {
            "params": _floats(ols.params),
            "bse": _floats(ols.bse),
            "sigma2": _float(ols.sigma2),
        },
        "lmm": {
            "method": lmm.method,
            "params": _floats(lmm.fe_params),
            "bse": _floats(lmm.bse),
            "sigma2_group": _float(lmm.sigma2_group),
            "sigma2_resid": _float(lmm.sigma2_resid),
            "theta": _float(lmm.theta),
            "criterion": _float(lmm.criterion),
            "singular": bool(lmm.singular),
        },
        "decompose": {
            "within": _floats(dec.within),
            "between": _floats(dec.between),
            "reconstructed": _floats(dec.reconstructed),
            "design_effect": _float(dec.design_effect),
        },
        "warnings": plain_warnings(design, lmm),
    }


def write_json(result: dict, path) -> Path:
    """Write :func:`result_dict`'s output as JSON (floats at full precision, no NaN).

    Parameters
    ----------
    result : dict
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> out = write_json({"theta": 0.1 + 0.2}, Path(tempfile.mkdtemp()) / "r.json")
    >>> json.loads(out.read_text())["theta"] == 0.1 + 0.2
    True
    """
    path = Path(path)
    path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    return path


def inject_parameters(nb, parameters: dict):
    """Insert a cell of parameter assignments after the cell tagged ``parameters``, as papermill does.

    A previous injected cell (tagged ``injected-parameters``) is replaced. Values are written with
    ``repr``, so strings, numbers, booleans, None, lists and dicts of these round-trip exactly.

    Parameters
    ----------
    nb : nbformat.NotebookNode
    parameters : dict

    Returns
    -------
    nbformat.NotebookNode
        The same notebook, changed in place.

    Examples
    --------
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook()
    >>> nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})]
    >>> print(inject_parameters(nb, {"x": 2}).cells[1].source)
    # Parameters injected by the report command
    x = 2
    """
    import nbformat

    cells = [
        c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    where = [
        i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if not where:
        raise ValueError("The notebook has no cell tagged 'parameters'.")
    lines = ["# Parameters injected by the report command"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    cells.insert(where[0] + 1, cell)
    nb.cells = cells
    return nb


class ReportError(RuntimeError):
    """The report notebook failed for a reason other than the data.

    ``details`` holds the failing cell's traceback, which ``--debug`` prints.
    """

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


class NotebookMissing(FileNotFoundError):
    """The package is installed without the report notebook (an installation problem, not a bug)."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_notebook(parameters: dict, *, timeout: int = 3600, cwd=None):
    """Execute the template notebook with ``parameters`` injected, and return the executed notebook.

    Parameters
    ----------
    parameters : dict
        Names and values for the notebook's parameters cell.
    timeout : int, default 3600
        Seconds allowed per cell.
    cwd : path, optional
        The kernel's working folder; the current one by default.

    Returns
    -------
    nbformat.NotebookNode

    Raises
    ------
    DataError
        When a cell raises :class:`DataError` (a problem with the data found late).
    ReportError
        When a cell fails for another reason.

    Notes
    -----
    Executing the notebook starts a kernel and takes tens of seconds, too long for a docstring example;
    ``tests/test_report.py`` runs it end to end.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook_path(), as_version=4)
    inject_parameters(nb, parameters)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(cwd or Path.cwd())}},
    )
    previous = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        # the kernel's own log lines (transport notices and the like) would clutter the terminal
        client.execute(stderr=subprocess.DEVNULL)
    except CellExecutionError as exc:
        ename = getattr(exc, "ename", "") or ""
        evalue = (getattr(exc, "evalue", "") or "").strip()
        if ename == "DataError":
            raise DataError(evalue) from None
        raise ReportError(
            f"the report notebook failed ({ename}: {evalue})", _ANSI.sub("", str(exc))
        ) from None
    finally:
        if previous is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = previous
    return nb


_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
<style type="text/css">
img.math-inline { vertical-align: middle; }
span.math-display { display: block; text-align: center; margin: 0.6em 0; }
.jp-RenderedHTMLCommon table { margin-left: 0; }
</style>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block data_png scoped -%}
{%- set alt = output | get_metadata('alt', 'image/png') -%}
{%- if alt -%}
{{ super() | replace('<img ', '<img alt="' ~ (alt | escape_html) ~ '" ', 1) }}
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock data_png -%}
"""

_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)(?<!\\)\$(?!\$)")
_FENCE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)


def _math_image(tex: str, display: bool, cache: dict) -> str:
    """An <img> holding ``tex`` drawn by matplotlib's mathtext as SVG, or the TeX as code on failure."""
    key = (tex, display)
    if key in cache:
        return cache[key]
    import io

    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.mathtext import MathTextParser, math_to_image

    size = 15.0 if display else 13.0
    prop = FontProperties(size=size)
    source = "$" + " ".join(tex.split()) + "$"
    try:
        with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "report"}):
            _, height, depth, _, _ = MathTextParser("path").parse(source, dpi=72, prop=prop)
            buffer = io.BytesIO()
            math_to_image(source, buffer, prop=prop, dpi=72, format="svg")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        alt = html_lib.escape(tex.strip(), quote=True)
        style = f"height:{height / size:.3f}em;vertical-align:{-depth / size:.3f}em"
        tag = (
            f'<img class="math" alt="{alt}" style="{style}" src="data:image/svg+xml;base64,{data}">'
        )
        if display:
            tag = f'<span class="math-display">{tag}</span>'
    except Exception:  # mathtext knows a subset of TeX; show the rest as code
        tag = f"<code>{html_lib.escape(tex.strip())}</code>"
    cache[key] = tag
    return tag


def _render_math(text: str, cache: dict) -> str:
    """Replace $...$ and $$...$$ in markdown by embedded SVG images, leaving code spans alone."""
    parts = _FENCE.split(text)
    for k in range(0, len(parts), 2):
        part = _DISPLAY_MATH.sub(lambda m: _math_image(m.group(1), True, cache), parts[k])
        parts[k] = _INLINE_MATH.sub(lambda m: _math_image(m.group(1), False, cache), part)
    return "".join(parts)


def _offline_notebook(nb, heading: str | None = None):
    """A copy of the executed notebook ready for the HTML report: teaching cells out, math as SVG.

    ``heading`` (Markdown) replaces the first cell's title line, so that the report is titled by the
    user's file and formula rather than by the template's name.
    """
    import copy

    nb = copy.deepcopy(nb)
    if heading:
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.startswith("# "):
                rest = cell.source.split("\n", 1)[1] if "\n" in cell.source else ""
                cell.source = heading.rstrip() + "\n" + rest
                break
    cache: dict = {}
    # links to the other notebooks lead nowhere in a single offline page: keep their text only
    local_link = re.compile(r"\[([^\]]+)\]\((?!https?:|#)[^)]*\)")
    kept = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if NOTEBOOK_ONLY_TAG in tags:
            continue
        if cell.cell_type == "markdown":
            cell.source = _render_math(local_link.sub(r"\1", cell.source), cache)
        elif cell.cell_type == "code":
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if "text/markdown" in data:
                    data["text/markdown"] = _render_math(data["text/markdown"], cache)
        kept.append(cell)
    nb.cells = kept
    return nb


_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I
)


def export_html(nb, path, *, title: str | None = None, heading: str | None = None) -> Path:
    """Write an executed notebook as a self-contained, offline HTML report.

    Code is hidden, figures are embedded as data URIs, math is drawn as embedded SVG, cells tagged
    ``notebook-only`` are left out, and nothing is loaded from the network (no require.js, MathJax or
    mermaid from a CDN).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        An executed notebook.
    path : str or os.PathLike
    title : str, optional
        The page title.
    heading : str, optional
        Markdown that replaces the title line of the notebook's first cell.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    RuntimeError
        If the page would still load something from the network.

    Examples
    --------
    >>> import nbformat, tempfile
    >>> nb = nbformat.v4.new_notebook()
    >>> nb.cells = [nbformat.v4.new_markdown_cell("# Report\\nThe variance $\\\\sigma^2$.")]
    >>> out = export_html(nb, Path(tempfile.mkdtemp()) / "r.html")
    >>> text = out.read_text()
    >>> "cdnjs" in text, "data:image/svg+xml;base64," in text
    (False, True)
    """
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"lmm_report.html.j2": _TEMPLATE})],
    )
    exporter.template_file = "lmm_report.html.j2"
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    ready = _offline_notebook(nb, heading)
    if title:
        ready.metadata["title"] = title
    body, _ = exporter.from_notebook_node(ready)
    body = re.sub(
        r"(<style[^>]*>)(.*?)(</style>)",
        lambda m: m.group(1) + _CSS_COMMENT.sub("", m.group(2)) + m.group(3),
        body,
        flags=re.S,
    )
    found = _EXTERNAL.search(body)
    if found:
        start = max(found.start() - 40, 0)
        raise RuntimeError(
            f"The report would load a remote resource: {body[start : found.end() + 60]!r}"
        )
    path = Path(path)
    path.write_text(body, encoding="utf-8")
    return path


def make_report(
    data,
    formula: str,
    *,
    reference=None,
    reml: bool = True,
    group: str | None = None,
    html=None,
    json_path=None,
    large: bool | None = None,
    timeout: int = 3600,
    notify=None,
) -> Checked:
    """Check the inputs, run the template notebook on them, and write the HTML and/or JSON report.

    Parameters
    ----------
    data : str or os.PathLike
        A CSV or Parquet file.
    formula : str
        ``"y ~ x + (1 | g)"``.
    reference : dict, optional
        ``{column: level}``.
    reml : bool, default True
        REML (as lmer's default); False for maximum likelihood.
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    html, json_path : str or os.PathLike, optional
        Where to write the report and the numbers.
    large : bool, optional
        Force or forbid the DuckDB path (default: by file size).
    timeout : int, default 3600
        Seconds allowed per notebook cell.
    notify : callable, optional
        Called with a message about dropped rows or the DuckDB path, before the notebook runs.

    Returns
    -------
    Checked
        What the input check found (the fits themselves run in the notebook).

    Raises
    ------
    DataError
        For a problem with the input, found before the notebook runs (or, rarely, while it runs).
    ReportError
        When the notebook fails for another reason.

    Examples
    --------
    Problems with the input stop the report before the notebook starts:

    >>> make_report("no/such/file.csv", "y ~ x + (1 | g)", html="report.html")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: File 'no/such/file.csv' does not exist in the folder .../no/such (a relative path starts from the current folder); check the path.
    """
    template = notebook_path()  # an installation without the notebooks fails here, before any work
    check_outputs(data, {"--html": html, "--json": json_path}, template=template)
    checked = check_inputs(data, formula, reference=reference, group=group, large=large)
    if notify is not None:
        if checked.n_dropped:
            notify(checked.dropped_message())
        if checked.large:
            notify(
                f"computing from the file with DuckDB ({checked.design.n_obs} rows used, never "
                "loaded into memory)"
            )
    parameters = {
        "data_path": checked.path,
        "formula": formula,
        "group": group,
        "reference": dict(checked.reference),
        "reml": bool(reml),
        "large": bool(checked.large),
        "json_path": str(Path(json_path).resolve()) if json_path else None,
    }
    nb = run_notebook(parameters, timeout=timeout)
    if html:
        name = _one_line(Path(data).name)
        method = "REML" if reml else "maximum likelihood (`--ml`)"
        export_html(
            nb,
            html,
            title=f"Mixed-model report: {name} \u00b7 {_one_line(formula)}",
            heading=(
                f"# Mixed-model report: {_code(name)}\n\n"
                f"Model {_code(_one_line(formula))}, fitted by {method}."
            ),
        )
    return checked


def _same_file(a, b) -> bool:
    """Whether two paths name one file: through symlinks, hard links, ``..`` or another spelling."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the paths themselves
        return Path(a).resolve() == Path(b).resolve()


def check_outputs(data, outputs: dict, *, template=None) -> None:
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=(
            "Fit pooled OLS, the fixed-effects (within) estimator and a random-intercept mixed model "
            "to your data, and explain why their estimates differ, in a self-contained HTML report."
        ),
        epilog=(
            'Example: %(prog)s radon.csv --formula "log_radon ~ floor + (1 | county)" '
            "--html radon.html --json radon.json"
        ),
    )
    parser.add_argument("data", help="a CSV (.csv, .tsv, optionally .gz) or Parquet file")
    parser.add_argument(
        "--formula",
        required=True,
        help="lme4-style formula with one random intercept, e.g. 'y ~ x1 + x2 + (1 | g)'; "
        "quote column names with spaces or dots in backticks",
    )
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="COLUMN=LEVEL",
        help="the reference level of a categorical predictor (repeat for several)",
    )
    parser.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    parser.add_argument("--html", metavar="FILE", help="write the HTML report here")
    parser.add_argument("--json", metavar="FILE", help="write the numbers as JSON here")
    parser.add_argument(
        "--large",
        action="store_true",
        help="compute from the file with DuckDB without loading the rows "
        f"(automatic above {LARGE_FILE_BYTES // 1024**2} MiB)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an unexpected failure (a bug), print the full traceback",
    )
    return parser


#: Where an unexpected failure is to be reported.
REPORT_BUGS = "the project's issue tracker"


def _where(exc: BaseException) -> str:
    """The innermost frame of the package in a traceback, as ``helpers/module.py:line``."""
    if isinstance(exc, ReportError):
        return "in the report notebook"
    package = Path(__file__).resolve().parent
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.parent == package:
            found = f"at helpers/{path.name}:{frame.lineno}"
    return found or "outside the package"


def _internal_error(prog: str, exc: BaseException, debug: bool) -> None:
    """One line saying that this is a bug and where to report it; the traceback with ``--debug``."""
    detail = str(exc).strip()
    if isinstance(exc, ReportError):
        detail = detail.removeprefix("the report notebook failed (").removesuffix(")")
    else:
        detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if len(detail) > 300:
        detail = detail[:300] + "..."
    print(
        f"{prog}: internal error ({_one_line(detail)}, {_where(exc)}): this is a bug in the report, "
        f"not a problem with your data; please report it in {REPORT_BUGS}, with the command you "
        f"ran and its output with --debug" + ("." if debug else " (which adds the traceback)."),
        file=sys.stderr,
    )
    if debug:
        if isinstance(exc, ReportError) and exc.details:
            print(exc.details, file=sys.stderr)
        else:
            traceback.print_exception(exc, file=sys.stderr)


def _one_line(message) -> str:
    """A message as one line: a line break inside it (from a column name) is shown as ``\\n``."""
    return re.sub(
        "\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]",
        lambda m: m.group(0).encode("unicode_escape").decode(),
        str(message),
    )


def main(argv=None, prog: str = "lmm-report") -> int:
    """The command line: ``lmm-report DATA --formula ...`` (or ``python -m helpers report ...``).

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.
    prog : str
        The program name in messages.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad input, 1 when the report fails (a bug: one line
        asks to report it; ``--debug`` adds the traceback).

    Examples
    --------
    Bad input is one line on stderr and exit status 2:

    >>> main(["no/such/file.csv", "--formula", "y ~ x + (1 | g)"])
    2
    """
    args = _parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    html = args.html
    if not html and not args.json:
        html = f"{Path(args.data).name.split('.')[0] or 'data'}_report.html"
    try:
        make_report(
            args.data,
            args.formula,
            reference=parse_reference(args.reference),
            reml=not args.ml,
            html=html,
            json_path=args.json,
            large=True if args.large else None,
            notify=lambda message: print(f"{prog}: {_one_line(message)}", file=sys.stderr),
        )
    except DataError as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except NotebookMissing as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, and never as a problem with the data
        _internal_error(prog, exc, args.debug)
        return 1
    for written in (html, args.json):
        if written:
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
