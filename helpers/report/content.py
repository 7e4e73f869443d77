"""What notebook 07 shows: tables, sentences, warnings, figure descriptions and the JSON result.

Every function takes the one checked :class:`helpers.design.Design` (with rows, or with sums computed
from a file) and the fits, and never reads the data again.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd

from ..decompose import RANDOM_SLOPES_NOTE, Decomposition, WithinBetweenBlend
from ..design import Design
from ..results import LmmResult, OlsResult

__all__ = [
    "Comparison",
    "compare",
    "slopes_note",
    "data_summary",
    "comparison_table",
    "plain_warnings",
    "MarkdownText",
    "describe_model",
    "dropped_sentence",
    "reference_levels",
    "show_table",
    "show_figure",
    "figure_alt",
    "figure_caption",
    "model_checks",
    "NO_ROWS_NOTE",
    "explain_moves",
    "warning_list",
    "result_dict",
    "write_json",
    "one_line",
    "markdown_code",
    "NOT_DEFINED",
]


def one_line(message: object) -> str:
    """A message as one line: a line break inside it (from a column name) is shown as ``\\n``.

    Examples
    --------
    >>> print(one_line("a" + chr(10) + "b"))
    a\\nb
    """
    return re.sub(
        "\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]",
        lambda m: m.group(0).encode("unicode_escape").decode(),
        str(message),
    )


def dropped_sentence(design: Design) -> str:
    """One sentence about the rows dropped for missing values ('' when none were).

    Examples
    --------
    >>> import warnings
    >>> from helpers.design import build_design
    >>> df = pd.DataFrame({"y": [1.0, None, 3.0, 4.0, 2.0], "g": list("aabbc")})
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     print(dropped_sentence(build_design(df, "y ~ 1 + (1 | g)")))
    Dropped 1 of 5 rows with missing values (missing values: 1 in 'y'); the fits use the other 4.
    """
    n_dropped = int(design.n_dropped)
    if not n_dropped:
        return ""
    n_rows = design.n_rows
    detail = ", ".join(f"{k} in {c!r}" for c, k in design.dropped_by_column.items())
    return (
        f"Dropped {n_dropped} of {n_rows} rows with missing values (missing values: {detail}); "
        f"the fits use the other {n_rows - n_dropped}."
    )


@dataclass(frozen=True)
class Comparison:
    """The two fits and the within and between estimators of a model with random slopes, which has
    no within/between decomposition (:data:`helpers.decompose.RANDOM_SLOPES_NOTE`)."""

    ols_fit: OlsResult
    lmm_fit: LmmResult
    within: pd.Series
    between: pd.Series


def compare(design: Design, *, reml: bool = True) -> Decomposition | Comparison:
    """Both fits of the report from the checked design: its :func:`helpers.decompose.decompose` for a
    random intercept, or a :class:`Comparison` (no decomposition) for random slopes.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> sleep = load_dataset("sleepstudy")
    >>> d = build_design(sleep, "Reaction ~ Days + (Days | Subject)", random_slopes=True)
    >>> type(compare(d)).__name__, compare(d).lmm_fit.theta.shape
    ('Comparison', (3,))
    """
    from ..decompose import between_estimator, decompose, within_estimator
    from ..fit import fit_lmm, fit_ols

    if design.random is None:
        return decompose(design, reml=reml)
    names = list(design.term_names)
    return Comparison(
        ols_fit=fit_ols(design),
        lmm_fit=fit_lmm(design, reml=reml),
        within=within_estimator(design.stats, names),
        between=between_estimator(design.stats, names),
    )


def slopes_note() -> MarkdownText:
    """What the report shows instead of the decomposition and figures for a model with random slopes."""
    return MarkdownText(f"*{RANDOM_SLOPES_NOTE}*")


def data_summary(design: Design) -> pd.DataFrame:
    """The data at a glance: rows, clusters, cluster sizes, and the rows dropped and why.

    Parameters
    ----------
    design : helpers.design.Design

    Returns
    -------
    pandas.DataFrame
        One column, ``value``, indexed by a plain-language label.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
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


def comparison_table(dec: Decomposition | Comparison) -> pd.DataFrame:
    """Pooled OLS, the within (fixed-effects) estimator and the mixed model, term by term.

    Parameters
    ----------
    dec : helpers.decompose.Decomposition or Comparison

    Returns
    -------
    pandas.DataFrame
        Columns ``OLS``, ``OLS SE``, (``OLS cluster-robust SE`` when available), ``within``, ``LMM``,
        ``LMM SE``, and ``LMM - OLS``, the move of each estimate.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.decompose import decompose
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> comparison_table(decompose(d))[["OLS", "LMM"]].round(3)
                 OLS    LMM
    Intercept  1.327  1.462
    floor     -0.613 -0.693
    """
    ols, lmm = dec.ols_fit, dec.lmm_fit
    table = pd.DataFrame({"OLS": ols.params, "OLS SE": ols.bse})
    if ols.bse_cluster is not None:
        table["OLS cluster-robust SE"] = ols.bse_cluster
    table["within"] = dec.within
    table["LMM"] = lmm.fe_params
    table["LMM SE"] = lmm.bse
    table["LMM - OLS"] = lmm.fe_params - ols.params
    return table


def plain_warnings(design: Design, lmm: LmmResult) -> list[str]:
    """Plain-language warnings about the data and the fit, one sentence or two each.

    Checks: a singular fit (sigma_b^2 = 0), fewer than 5 clusters, clusters of a single row, predictors
    that do not vary within any cluster, and an optimiser that did not converge.

    Parameters
    ----------
    design : helpers.design.Design
    lmm : helpers.results.LmmResult

    Returns
    -------
    list of str
        Empty when nothing needs saying.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> from helpers.fit import fit_lmm
    >>> radon = load_dataset("radon")
    >>> d = build_design(radon, "log_radon ~ floor + uranium + (1 | county)")
    >>> for text in plain_warnings(d, fit_lmm(radon, "log_radon ~ floor + uranium + (1 | county)")):
    ...     print(text[:60])
    3 of the 85 clusters have a single row. Each gives informati
    'uranium' does not vary within any cluster ('county'): it is
    """
    from ..decompose import within_estimator

    stats = design.stats
    n = stats.counts
    n_groups = stats.n_groups
    group = design.group
    out = []
    if lmm.singular and lmm.random is not None:
        out.append(
            "The random-effects covariance is singular (lme4's isSingular: a variance estimated as "
            "0 or a correlation of +1 or -1): the data do not support every random term; consider "
            "the uncorrelated form '(x || g)' or dropping a term."
        )
    elif lmm.singular:
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


def markdown_code(text: object) -> str:
    """Markdown inline code that survives backticks inside, such as a quoted column name."""
    text = str(text)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def reference_levels(design: Design) -> dict[str, str]:
    """Each categorical predictor's reference level: the level its coefficients are compared with.

    Levels are ordered as R orders them in the C locale (text sorted by code point, so ``'B'`` comes
    before ``'a'``), a pandas categorical keeps its own order, and ``--reference`` moves a level first.
    The levels come from the design (``Design.reference_levels``).

    Parameters
    ----------
    design : helpers.design.Design

    Returns
    -------
    dict
        ``{column: level}`` as text, empty when the model has no factor coded by treatment contrasts
        (an ordered factor's polynomial contrasts have no reference level).

    Examples
    --------
    >>> from helpers.design import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0, 5.5, 6.0, 8.0, 7.5],
    ...                    "arm": ["b", "B", "a", "A", "b", "B", "a", "A"],
    ...                    "g": ["u", "u", "v", "v", "w", "w", "z", "z"]})
    >>> reference_levels(build_design(df, "y ~ arm + (1 | g)"))
    {'arm': 'A'}
    """
    return {str(column): str(level) for column, level in design.reference_levels.items()}


def _reference_sentence(design: Design) -> str:
    found = reference_levels(design)
    if not found:
        return ""
    listed = "; ".join(
        f"{markdown_code(column)}: {markdown_code(level)}" for column, level in found.items()
    )
    return (
        "Each categorical predictor's coefficients compare its levels with its reference level: "
        f"{listed}. Levels are ordered as R orders them in the C locale (for text, capitals before "
        "small letters); R in another locale may choose another reference for mixed-case labels. "
        "Choose one with `--reference column=level` (in the notebook, the `reference` parameter)."
    )


def _engine_name(design: Design) -> str:
    """What computed a rows-less design's sums, as a reader knows it (DuckDB, Spark, ...)."""
    from ..design import ENGINE_NAMES

    source = getattr(design, "source", "duckdb")
    return ENGINE_NAMES.get(source, str(source))


def describe_model(
    design: Design, data_path: str | os.PathLike | None = None, large: bool | None = None
) -> MarkdownText:
    """One paragraph saying what was fitted to which data, and how (rows in memory or an engine's sums).

    Parameters
    ----------
    design : helpers.design.Design
    data_path : str, optional
        The file; None for the built-in example.
    large : bool, optional
        Whether the statistics came from the file through an engine (DuckDB, Spark); by default,
        whether the design has no rows.

    Returns
    -------
    MarkdownText

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> print(describe_model(d))
    Model `log_radon ~ floor + (1 | county)` fitted to the built-in example (Minnesota radon): 919 rows in 85 clusters of `county`.
    """
    if data_path is None:
        source = "the built-in example (Minnesota radon)"
    else:
        source = markdown_code(Path(data_path).name)
    text = (
        f"Model {markdown_code(design.formula)} fitted to {source}: {design.stats.n_obs} rows in "
        f"{design.stats.n_groups} clusters of {markdown_code(design.group)}."
    )
    if design.n_dropped:
        text += " " + dropped_sentence(design)
    references = _reference_sentence(design)
    if references:
        text += "\n\n" + references
    if (not design.has_rows) if large is None else large:
        text += (
            f"\n\nThe sums were computed from the file by {_engine_name(design)}; its rows were "
            "never loaded into "
            "memory. Everything below comes from those sums, except four row-level checks, which are "
            "skipped: the quasi-demeaned refit (the `reconstructed` column comes from the exact "
            "within/between blend instead), cluster-robust standard errors for pooled OLS, the "
            "residual quantiles of the model summary, and the residual plots of the model checks."
        )
    return MarkdownText(text)


def _g(value: float, digits: int = 4) -> str:
    """``digits`` significant digits, keeping trailing zeros (0.6930, not 0.693)."""
    text = f"{value:#.{digits}g}"
    return text[:-1] if text.endswith(".") else text


def explain_moves(dec: Decomposition) -> MarkdownText:
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
    >>> from helpers.decompose import decompose
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> print(explain_moves(decompose(d)).splitlines()[1][:71])
    - `floor`: pooled OLS -0.6134, mixed model -0.6930 (a move of -0.07960,
    """
    ols, lmm = dec.ols_fit, dec.lmm_fit
    blend = dec.blend
    weight = blend.weight_within
    lines = []
    for term in lmm.fe_params.index:
        b_ols, b_lmm = float(ols.params[term]), float(lmm.fe_params[term])
        move = b_lmm - b_ols
        in_se = abs(move) / float(ols.bse[term]) if float(ols.bse[term]) > 0 else float("inf")
        text = (
            f"- {markdown_code(term)}: pooled OLS {_g(b_ols)}, mixed model {_g(b_lmm)} (a move of "
            f"{'+' if move >= 0 else ''}{_g(move)}, {_g(in_se, 3)} OLS standard errors)."
        )
        within = float(dec.within[term])
        share = float(weight.loc[term, term])
        if np.isfinite(within):
            text += (
                f" The within estimate is {_g(within)}; the mixed model puts a weight of {share:.3f} "
                "on it (its entry in the blend's matrix of within weights) and the rest on the "
                "between regression of the cluster means."
            )
        else:
            weighted = float(blend.beta_between[term])
            text += (
                " The within estimator cannot estimate it (it does not vary within clusters), so the "
                "mixed model estimates it from the cluster means, each weighted by the mixed model's "
                "cluster weight w\u1d62 = 1 / (between-cluster variance + residual variance / n\u1d62) "
                "rather than by its row count n\u1d62: that between regression alone gives "
                f"{_g(weighted)}"
            )
            text += _rest_of_the_way(blend, term, b_lmm, weighted)
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


def _rest_of_the_way(blend: WithinBetweenBlend, term: str, estimate: float, between: float) -> str:
    """Where a term without a within estimate gets the part of its estimate that the between
    regression does not give: exactly, since M_W + M_B = I,
    beta_j - beta_B,j = sum_k (M_W)_jk (beta_W,k - beta_B,k) over the terms k with a within estimate.
    """
    gap = estimate - between
    if abs(gap) <= 1e-8 * max(abs(estimate), 1.0):
        return ""
    parts = []
    for other in blend.beta.index:
        w = float(blend.weight_within.loc[term, other])
        within_k = float(blend.beta_within[other])
        between_k = float(blend.beta_between[other])
        if not np.isfinite(within_k) or w == 0.0:
            continue
        if not np.isfinite(between_k):
            parts = None
            break
        contribution = w * (within_k - between_k)
        parts.append(
            f"{markdown_code(other)}: {_g(w, 3)} \u00d7 ({_g(within_k)} \u2212 {_paren(between_k)})"
            f" = {'+' if contribution >= 0 else ''}{_g(contribution)}"
        )
    text = (
        f". The mixed model's {_g(estimate)} is {'+' if gap >= 0 else ''}{_g(gap)} away from it "
        "because the blend also moves it by the other terms' within-minus-between gaps, each "
        "times this term's weight on that term's within estimate"
    )
    if parts:
        text += " (weight \u00d7 (within \u2212 between)): " + "; ".join(parts)
    return text


def _paren(value: float) -> str:
    """A number for a formula: negative ones in parentheses."""
    return f"({_g(value)})" if value < 0 else _g(value)


def _cell(value: float) -> str:
    """A table number as pandas shows it with 4 decimals, switching to scientific for tiny or huge."""
    value = float(value)
    if value == 0 or 1e-4 <= abs(value) < 1e9:
        return f"{value:.4f}"
    return f"{value:.4e}"


#: How a value that is not defined (the within estimate of the intercept) is shown in tables.
NOT_DEFINED = "\u2014"


def show_table(table: pd.DataFrame) -> pd.io.formats.style.Styler:
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

    def __init__(self, figure: matplotlib.figure.Figure, description: str) -> None:
        self.figure = figure
        self.description = description

    def _repr_png_(self) -> tuple[bytes, dict]:
        return self.figure._repr_png_(), {"alt": self.description}

    def __repr__(self) -> str:
        return f"<figure: {self.description}>"


def show_figure(figure: matplotlib.figure.Figure, description: str) -> _DescribedFigure:
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


def figure_alt(number: int, design: Design, lmm: LmmResult, label: int | None = None) -> str:
    """The description of the report's figure ``number`` (1 pooling, 2 path, 3 profile, 4 residual
    diagnostics) for its alt text.

    Parameters
    ----------
    number : int
    design : helpers.design.Design
    lmm : helpers.results.LmmResult
    label : int, optional
        The number the page shows for figure 4 (1 when figures 1 to 3 are not shown); ``number``
        by default.

    Returns
    -------
    str

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> from helpers.fit import fit_lmm
    >>> radon = load_dataset("radon")
    >>> d = build_design(radon, "log_radon ~ floor + (1 | county)")
    >>> print(figure_alt(2, d, fit_lmm(radon, "log_radon ~ floor + (1 | county)")))
    Figure 2: 2 panels, one per fixed effect (Intercept, floor), each showing its estimate with a one-standard-error band as theta grows from 0 (pooled OLS) toward the within estimator; the fitted theta, 0.4344, is marked.
    """
    from ..fit import optimize_theta

    stats = design.stats
    label = number if label is None else label
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
    if number == 4:
        return (
            f"Figure {label}: residual diagnostics of the mixed model: above, the residuals of the "
            f"{stats.n_obs} rows against their fitted values with the mean residual in ten bins; "
            "below, normal QQ plots of the residuals divided by sigma and of the "
            f"{stats.n_groups} conditional modes of the {design.group} intercepts."
        )
    raise ValueError(f"The report has figures 1 to 4, not {number}.")


def figure_caption(number: int, *, label: int | None = None) -> MarkdownText:
    """The caption printed under the report's figure ``number`` (1 to 4), as Markdown without TeX.

    A caption is printed by the cell that draws its figure, so that when the figure is not drawn
    (random slopes, or no rows) no caption is left without it. It is written in plain text and
    Unicode: a notebook output's Markdown is not typeset on every page that shows it.

    Examples
    --------
    >>> print(figure_caption(4, label=1)[:45])
    **Figure 1.** Residual diagnostics. Above, ea
    """
    label = number if label is None else label
    texts = {
        1: "Each cluster's own level (open circle, no pooling) and the mixed model's (filled circle, "
        "partial pooling), against cluster size. Small clusters are pulled furthest toward the "
        "mixed model's overall level; large clusters keep nearly their own level. The dashed line "
        "is pooled OLS (complete pooling), which large clusters dominate.",
        2: "Each fixed effect (with a one-standard-error band) as \u03b8, the ratio of the "
        "between-cluster to the residual standard deviation, grows from 0, where the mixed model "
        "is pooled OLS, toward the within estimator (at most two panels to a row). The marked "
        "point is the fitted \u03b8: the whole difference between `lm` and `lmer` is how far along "
        "this path the data put it.",
        3: "The profiled REML criterion and ML deviance against \u03b8, each relative to its "
        "minimum; the right panel zooms in on the two minima with a linear \u03b8 axis. The "
        "minimum of the REML curve is the fitted \u03b8 (the ML curve's when the model is fitted "
        "by maximum likelihood: `--ml` on the command line, `reml = False` in this notebook); a "
        "minimum at \u03b8 = 0 is a singular fit. Where a curve is below the dotted line at 3.84 "
        "is a 95% profile interval for \u03b8.",
        4: "Residual diagnostics. Above, each row's residual against its fitted value (fixed "
        "effects plus its cluster's conditional mode), with the mean residual in ten bins of "
        "fitted values. Below, normal QQ plots of the residuals divided by \u03c3 (lme4's scaled "
        "residuals) and of the clusters' conditional modes (of the intercept), each with a line "
        "through its quartiles.",
    }
    if number not in texts:
        raise ValueError(f"The report has figures 1 to 4, not {number}.")
    return MarkdownText(f"**Figure {label}.** {texts[number]}")


#: What notebook 07 says instead of the residual plots when the design has no rows.
NO_ROWS_NOTE = (
    "*The residual plots need the rows themselves, and this design has only the per-cluster sums "
    "computed from the file (the rows were never loaded), so they are skipped. To see them, run "
    "the report on a sample of the rows, or without `--large` if the file fits in memory.*"
)


def model_checks(design: Design, lmm: LmmResult, *, label: int = 4) -> list:
    """What the report's model checks show: the residual diagnostics figure and its caption, or, for
    a design without rows (a large file read by DuckDB), a sentence saying why they are skipped.

    Parameters
    ----------
    design : helpers.design.Design
    lmm : helpers.results.LmmResult
    label : int, default 4
        The figure's number on the page.

    Returns
    -------
    list
        Objects to display, in order.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> from helpers.fit import fit_lmm
    >>> d = build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> [type(item).__name__ for item in model_checks(d, fit_lmm(d))]
    ['_DescribedFigure', 'MarkdownText']
    """
    if not design.has_rows or lmm.design is None:
        return [MarkdownText(NO_ROWS_NOTE)]
    from ..plots import plot_residuals

    figure = plot_residuals(lmm, title=f"Residual diagnostics: {one_line(design.formula)}")
    return [
        show_figure(figure, figure_alt(4, design, lmm, label=label)),
        figure_caption(4, label=label),
    ]


def warning_list(design: Design, lmm: LmmResult) -> MarkdownText:
    """:func:`plain_warnings` as a Markdown bullet list, or a sentence saying there are none.

    Parameters
    ----------
    design : helpers.design.Design
    lmm : helpers.results.LmmResult

    Returns
    -------
    MarkdownText

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
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


def _floats(series: pd.Series) -> dict[str, float | None]:
    return {
        str(k): (None if v is None or not math.isfinite(float(v)) else float(v))
        for k, v in series.items()
    }


def _float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def result_dict(design: Design, dec: Decomposition | Comparison) -> dict:
    """The report's numbers as a JSON-ready dict (the schema is in this module's docstring).

    Parameters
    ----------
    design : helpers.design.Design
    dec : helpers.decompose.Decomposition

    Returns
    -------
    dict

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.decompose import decompose
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)")
    >>> result = result_dict(d, decompose(d))
    >>> result["n_obs"], result["lmm"]["method"], round(result["lmm"]["criterion"], 6)
    (30, 'REML', 319.654277)
    """
    ols, lmm = dec.ols_fit, dec.lmm_fit
    slopes = lmm.random is not None
    fit = {
        "method": lmm.method,
        "params": _floats(lmm.fe_params),
        "bse": _floats(lmm.bse),
        "sigma2_group": None if slopes else _float(lmm.sigma2_group),
        "sigma2_resid": _float(lmm.sigma2_resid),
        "theta": [float(t) for t in lmm.theta] if slopes else _float(lmm.theta),
        "criterion": _float(lmm.criterion),
        "singular": bool(lmm.singular),
    }
    if slopes:
        fit["varcorr"] = [
            {
                k: (_float(v) if k in ("vcov", "sdcor") else (None if pd.isna(v) else str(v)))
                for k, v in row.items()
            }
            for row in lmm.varcorr.to_dict(orient="records")
        ]
    blend = {
        "within": _floats(dec.within),
        "between": _floats(dec.between),
        "reconstructed": None if slopes else _floats(dec.reconstructed),
        "design_effect": None if slopes else _float(dec.design_effect),
    }
    if slopes:
        blend["note"] = RANDOM_SLOPES_NOTE
    return {
        "n_obs": int(lmm.n_obs),
        "n_groups": int(lmm.n_groups),
        "n_dropped": int(design.n_dropped),
        "dropped_by_column": {str(k): int(v) for k, v in design.dropped_by_column.items()},
        "formula": str(lmm.formula),
        "group": str(lmm.group),
        "source": design.source,
        "reference_levels": reference_levels(design),
        "ols": {
            "params": _floats(ols.params),
            "bse": _floats(ols.bse),
            "sigma2": _float(ols.sigma2_resid),
        },
        "lmm": fit,
        "decompose": blend,
        "warnings": plain_warnings(design, lmm),
    }


def write_json(result: dict, path: str | os.PathLike) -> Path:
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
