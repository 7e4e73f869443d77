"""Pure figure functions: each takes fitted objects or sufficient statistics and returns a new Figure.

Nothing here calls ``pyplot.show`` or touches pyplot's list of open figures: the figures are built with
:class:`matplotlib.figure.Figure` directly, so they never pile up in memory and never display twice. In a
notebook, the returned figure displays as a PNG when it is the last expression of a cell.

Colours are fixed across the package: pooled OLS orange, the mixed model blue, the within estimator green,
cluster-level (no-pooling) quantities grey.

Legibility is set here, in one place, for every figure of the notebooks, the site and the report: figures
are at most :data:`MAX_FIGURE_WIDTH` inches wide and rendered at :data:`FIGURE_DPI`, so that on the site's
content column (:data:`PAGE_WIDTH_PX` CSS pixels) they are shown at their own size, and each PNG records
its smallest font size and its dpi (:data:`PNG_FONT_KEY`, :data:`PNG_DPI_KEY`) so that a test can check the
text as displayed: at least :data:`MIN_TEXT_PX` CSS pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib.figure
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from .decompose import default_thetas, fixed_effect_path, large_theta_limit, within_estimator
from .design import SufficientStats
from .fit import optimize_theta
from .objective import criterion

__all__ = [
    "plot_pooling",
    "plot_fixed_effect_path",
    "plot_criteria",
    "plot_caterpillar",
    "plot_cluster_panels",
    "plot_profile_zeta",
    "plot_bootstrap_scatter",
    "plot_residuals",
    "plot_shrinkage_2d",
    "normal_quantiles",
    "figure_to_png",
    "png_text",
    "smallest_font",
    "COLORS",
    "PAGE_WIDTH_PX",
    "FIGURE_DPI",
    "MAX_FIGURE_WIDTH",
    "MIN_TEXT_PX",
]

#: The package's colours, so every figure tells the estimators apart the same way.
COLORS = {
    "ols": "tab:orange",
    "lmm": "tab:blue",
    "within": "tab:green",
    "cluster": "0.45",
    "ml": "tab:purple",
}


#: The width of the site's content column where figures are shown, in CSS pixels (measured in Chromium at a
#: 1400 px window; the report's column is wider).
PAGE_WIDTH_PX = 784
#: The resolution figures are rendered at: one image pixel per CSS pixel.
FIGURE_DPI = 100
#: The widest a figure may be, in inches: at :data:`FIGURE_DPI`, with the 0.1 inch margins a notebook
#: adds on each side, it is 780 pixels wide and fits the content column unshrunk.
MAX_FIGURE_WIDTH = 7.6
#: The smallest text a figure may show, in CSS pixels as displayed (8 pt at 100 dpi is 11 px).
MIN_TEXT_PX = 10.0
#: PNG text chunks written by :func:`figure_to_png`: the smallest font size drawn (points) and the dpi.
PNG_FONT_KEY = "mme:min_font_pt"
PNG_DPI_KEY = "mme:dpi"


class HelperFigure(matplotlib.figure.Figure):
    """A matplotlib Figure that shows itself as a PNG in IPython, whatever the matplotlib backend."""

    def _repr_png_(self) -> bytes:
        return figure_to_png(self, bbox_inches="tight")


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize=(7.0, 4.5), dpi=None, **subplot_kw):
    """Create a :class:`HelperFigure` with a grid of axes, outside pyplot.

    Parameters
    ----------
    nrows, ncols : int
    figsize : tuple of float
        A width above :data:`MAX_FIGURE_WIDTH` is reduced to it (the height is kept): a wider figure
        would be shrunk on the page, and its text with it.
    dpi : float, optional
        :data:`FIGURE_DPI` when not given.
    **subplot_kw
        Passed to :meth:`matplotlib.figure.Figure.subplots` (``sharex``, ``squeeze`` ...).

    Returns
    -------
    fig : HelperFigure
    axes : Axes or ndarray of Axes

    Examples
    --------
    >>> fig, ax = new_figure()
    >>> type(fig).__name__, len(fig.axes), fig.dpi
    ('HelperFigure', 1, 100)
    >>> new_figure(1, 2, figsize=(10.5, 4.0))[0].get_size_inches().tolist()
    [7.6, 4.0]
    """
    width, height = (float(v) for v in figsize)
    fig = HelperFigure(
        figsize=(min(width, MAX_FIGURE_WIDTH), height),
        dpi=FIGURE_DPI if dpi is None else dpi,
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, **subplot_kw)
    return fig, axes


def smallest_font(fig) -> float | None:
    """The smallest font size, in points, of the text a figure draws (None when it draws no text).

    The figure is drawn once with painting switched off, and every non-empty text handed to the renderer
    is counted: titles, labels, tick labels, legend entries, annotations, in their drawn state (hidden
    axes and tick labels outside the view are not drawn, so not counted). Sub- and superscripts inside
    mathtext are drawn smaller than their text's size and are not counted.

    Examples
    --------
    >>> fig, ax = new_figure(figsize=(2, 1))
    >>> _ = ax.set_title("t", fontsize=12); _ = ax.set_xlabel("x", fontsize=9)
    >>> ax.tick_params(labelsize=11)
    >>> smallest_font(fig)
    9.0
    """
    renderer = fig.canvas.get_renderer()
    sizes = []

    def record(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if str(s).strip():
            sizes.append(float(prop.get_size_in_points()))

    with renderer._draw_disabled():  # what Figure.draw_without_rendering uses
        renderer.draw_text = record  # undone when the block ends
        fig.draw(renderer)
    return min(sizes) if sizes else None


def figure_to_png(fig, *, dpi=None, **savefig_kw) -> bytes:
    """Render a figure to PNG bytes that record the smallest font size drawn and the dpi.

    The PNG carries two text chunks, :data:`PNG_FONT_KEY` (the smallest font size in points, from
    :func:`smallest_font`) and :data:`PNG_DPI_KEY`, so the text size as displayed can be checked from
    the image alone: ``points * dpi / 72 * displayed width / image width`` CSS pixels.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : float, optional
        Defaults to the figure's own.
    **savefig_kw
        Passed to ``savefig`` (for example ``bbox_inches="tight"``).

    Returns
    -------
    bytes

    Examples
    --------
    >>> fig, ax = new_figure(figsize=(2, 1))
    >>> png = figure_to_png(fig, dpi=50)
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", png_text(png)[PNG_DPI_KEY]
    (True, '50')
    """
    dpi = dpi if dpi is not None else fig.dpi
    metadata = dict(savefig_kw.pop("metadata", None) or {})
    smallest = smallest_font(fig)
    if smallest is not None:
        metadata[PNG_FONT_KEY] = f"{smallest:g}"
    metadata[PNG_DPI_KEY] = f"{float(dpi):g}"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata=metadata, **savefig_kw)
    return buffer.getvalue()


def png_text(png: bytes) -> dict:
    """The text chunks of a PNG (``tEXt``, ``zTXt``, ``iTXt``) as a dict.

    Examples
    --------
    >>> fig, ax = new_figure(figsize=(2, 1))
    >>> _ = ax.set_title("t", fontsize=12)
    >>> png_text(figure_to_png(fig))[PNG_FONT_KEY]
    '10'
    """
    import PIL.Image

    with PIL.Image.open(io.BytesIO(png)) as image:
        image.load()
        return dict(image.text)


class ThetaTicks(matplotlib.ticker.Locator):
    """Major ticks of a symlog theta axis: 0, then the powers of ten from ``linthresh`` upward.

    matplotlib's own symlog locator also puts decades inside the linear part ``[0, linthresh]``, where
    they crowd the ``0`` label (``0`` and ``10^-3`` printed over each other). Here no decade lies below
    ``linthresh``, and the decades are thinned (every second, third ...) when, at the axis's drawn
    size, neighbouring labels would come closer than :data:`TICK_LABEL_EMS` font sizes. The spacing is
    measured when the axis is drawn, so it holds after a layout engine has resized the axes.

    Examples
    --------
    >>> for width in (6.0, 2.0):
    ...     fig, ax = new_figure(figsize=(width, 1.5))
    ...     _symlog_theta(ax, [0.0, 0.01, 0.1, 1.0, 10.0, 100.0])
    ...     print([f"{t:g}" for t in ax.xaxis.get_major_locator()()])
    ['0', '0.01', '0.1', '1', '10', '100']
    ['0', '1', '100']
    """

    def __init__(self, linthresh: float) -> None:
        self.linthresh = float(linthresh)

    def __call__(self):
        vmin, vmax = self.axis.get_view_interval()
        return self.tick_values(vmin, vmax)

    def _pixels(self, values) -> np.ndarray | None:
        """The display x (or y) of ``values`` on this axis, or None before the axis has a size."""
        axis = getattr(self, "axis", None)
        axes = getattr(axis, "axes", None)
        if axes is None or axes.bbox.width <= 1:
            return None
        along_x = axis is axes.xaxis
        points = np.column_stack([values, values])
        shown = axes.transData.transform(points)
        return shown[:, 0] if along_x else shown[:, 1]

    def _min_gap(self) -> float:
        axis = self.axis
        size = axis.majorTicks[0].label1.get_fontsize()  # the ticks' style, without locating them
        return float(size) * TICK_LABEL_EMS * axis.figure.dpi / 72.0

    def tick_values(self, vmin, vmax):
        low, high = sorted((float(vmin), float(vmax)))
        first = int(np.ceil(np.log10(self.linthresh) - 1e-9))
        last = int(np.floor(np.log10(high) + 1e-9)) if high > 0 else first - 1
        decades = 10.0 ** np.arange(first, last + 1)
        decades = decades[(decades >= low) & (decades <= high)]
        zero = [0.0] if low <= 0.0 <= high else []
        pixels = self._pixels(np.r_[0.0, decades]) if decades.size else None
        if pixels is not None:
            gap = self._min_gap()
            if decades.size > 1:
                spacing = float(np.abs(np.diff(pixels[1:])).min())
                step = max(1, int(np.ceil(gap / spacing))) if spacing > 0 else decades.size
                keep = np.arange(decades.size - 1, -1, -step)[::-1]  # the largest decade stays
                decades, pixels = decades[keep], np.r_[pixels[0], pixels[1:][keep]]
            if zero and decades.size and abs(pixels[1] - pixels[0]) < gap:
                decades = decades[1:]  # too close to the 0 label
        return np.asarray(zero + [float(d) for d in decades])


#: :class:`ThetaTicks` keeps neighbouring tick labels at least this many font sizes apart (centre to
#: centre): a label such as ``10^-3`` is about 2.4 font sizes wide.
TICK_LABEL_EMS = 3.2


def _symlog_theta(ax, thetas) -> None:
    """A symlog theta axis from 0 (pooled OLS) to the largest theta, its ticks from :class:`ThetaTicks`."""
    positive = np.asarray(thetas, dtype=float)
    positive = positive[positive > 0]
    linthresh = float(positive.min()) if positive.size else 1.0
    ax.set_xscale("symlog", linthresh=linthresh, linscale=1.0)
    ax.xaxis.set_major_locator(ThetaTicks(linthresh))
    ax.set_xlim(0, float(np.max(thetas)) * 1.05 if positive.size else 1.0)


def _theta_label(reml: bool | None = None) -> str:
    return r"$\theta = \sigma_b / \sigma$ (symlog axis; $\theta = 0$ is pooled OLS)"


@dataclass(eq=False)
class PathArtists:
    """The artists of one fixed-effect path panel: made by :func:`build_path`, moved by :func:`update_path`.

    Attributes
    ----------
    ax : matplotlib Axes
    band : matplotlib.collections.FillBetweenPolyCollection
        The estimate +- ``se_multiplier`` standard errors (gid ``"band"``).
    line : Line2D
        The estimate along theta (gid ``"path"``).
    ols, ols_marker : Line2D
        The pooled OLS level (gid ``"ols"``) and its square at theta = 0 (gid ``"ols_marker"``).
    limit : Line2D or None
        The theta -> infinity level (gid ``"limit"``); None when the panel has none.
    theta_hat, theta_hat_rule : Line2D or None
        The fit's marker on the path (gid ``"theta_hat"``) and a faint vertical rule under it (gid
        ``"theta_hat_rule"``).
    se_multiplier : float
    """

    ax: object
    band: object
    line: object
    ols: object
    ols_marker: object
    limit: object
    theta_hat: object
    theta_hat_rule: object
    se_multiplier: float


def build_path(
    ax,
    *,
    limit_label: str | None,
    theta_hat_label: str | None,
    se_multiplier: float = 1.0,
) -> PathArtists:
    """Create the artists of one fixed-effect path panel, still without data (see :func:`update_path`).

    Parameters
    ----------
    ax : matplotlib Axes
    limit_label : str or None
        The legend label of the theta -> infinity level; None draws no such level.
    theta_hat_label : str or None
        The legend label of the fit's marker; None draws no marker.
    se_multiplier : float, default 1.0
        Half-width of the band, in standard errors.

    Returns
    -------
    PathArtists

    Examples
    --------
    >>> fig, ax = new_figure()
    >>> artists = build_path(ax, limit_label="within", theta_hat_label=None)
    >>> artists.limit.get_gid(), artists.theta_hat is None
    ('limit', True)
    """
    band = ax.fill_between(
        [], [], [], color=COLORS["lmm"], alpha=0.18, linewidth=0, label=f"± {se_multiplier:g} SE"
    )
    band.set_gid("band")
    (line,) = ax.plot([], [], color=COLORS["lmm"], linewidth=2, label="GLS estimate at this θ")
    line.set_gid("path")
    ols = ax.axhline(
        0.0, color=COLORS["ols"], linestyle="--", linewidth=1.2, label="pooled OLS (θ = 0)"
    )
    ols.set_gid("ols")
    limit = None
    if limit_label is not None:
        limit = ax.axhline(
            0.0, color=COLORS["within"], linestyle=":", linewidth=1.6, label=limit_label
        )
        limit.set_gid("limit")
    (ols_marker,) = ax.plot([], [], "s", color=COLORS["ols"], markersize=7)
    ols_marker.set_gid("ols_marker")
    theta_hat = theta_hat_rule = None
    if theta_hat_label is not None:
        (theta_hat,) = ax.plot(
            [],
            [],
            marker="o",
            color=COLORS["lmm"],
            markeredgecolor="black",
            markersize=8,
            linestyle="none",
            label=theta_hat_label,
        )
        theta_hat.set_gid("theta_hat")
        theta_hat_rule = ax.axvline(0.0, color="0.6", linewidth=0.8, zorder=0)
        theta_hat_rule.set_gid("theta_hat_rule")
    return PathArtists(
        ax=ax,
        band=band,
        line=line,
        ols=ols,
        ols_marker=ols_marker,
        limit=limit,
        theta_hat=theta_hat,
        theta_hat_rule=theta_hat_rule,
        se_multiplier=float(se_multiplier),
    )


def update_path(
    artists: PathArtists,
    thetas,
    estimates,
    std_errors,
    *,
    ols: float,
    limit: float | None = None,
    theta_hat: float | None = None,
) -> tuple[float, float]:
    """Move the artists of a path panel to new data and frame them (no autoscaling).

    Parameters
    ----------
    artists : PathArtists
        From :func:`build_path`.
    thetas, estimates, std_errors : array_like
        One term's path, sorted by theta.
    ols : float
        The pooled OLS estimate (the theta = 0 asymptote).
    limit : float or None
        The theta -> infinity asymptote; None or NaN hides the level.
    theta_hat : float or None
        The fitted theta, marked on the path; ignored when the panel has no marker.

    Returns
    -------
    tuple of float
        The y limits set on the axes: the estimates, both asymptotes and the band at ``theta_hat`` (or
        at theta = 0 without a fit), with a 12% margin; the band may run off beyond.

    Examples
    --------
    >>> fig, ax = new_figure()
    >>> artists = build_path(ax, limit_label="within", theta_hat_label="fit")
    >>> update_path(artists, [0.0, 1.0, 2.0], [1.0, 2.0, 2.5], [0.1, 0.2, 0.3], ols=1.0, limit=3.0,
    ...             theta_hat=1.0)
    (0.76, 3.24)
    >>> list(artists.theta_hat.get_ydata()), list(artists.limit.get_ydata())
    ([2.0], [3.0, 3.0])
    """
    x = np.asarray(thetas, dtype=float)
    y = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errors, dtype=float)
    half = artists.se_multiplier * se
    artists.band.set_data(x, y - half, y + half)
    artists.line.set_data(x, y)
    artists.ols.set_ydata([ols, ols])
    artists.ols_marker.set_data([0.0], [ols])
    keep = [y.min(), y.max(), ols]
    has_limit = limit is not None and bool(np.isfinite(limit))
    if artists.limit is not None:
        artists.limit.set_visible(has_limit)
        if has_limit:
            artists.limit.set_ydata([limit, limit])
    if has_limit:
        keep.append(limit)
    if artists.theta_hat is not None and theta_hat is not None:
        at = np.flatnonzero(np.isclose(x, theta_hat, rtol=1e-12, atol=0))
        y_hat = float(y[at[0]]) if len(at) else float(np.interp(theta_hat, x, y))
        artists.theta_hat.set_data([theta_hat], [y_hat])
        artists.theta_hat_rule.set_xdata([theta_hat, theta_hat])
        se_hat = float(np.interp(theta_hat, x, half))
        keep += [y_hat - se_hat, y_hat + se_hat]
    else:
        keep += [y[0] - half[0], y[0] + half[0]]
    low, high = float(min(keep)), float(max(keep))
    pad = 0.12 * (high - low) if high > low else max(abs(high), 1.0) * 0.05
    artists.ax.set_ylim(low - pad, high + pad)
    return low - pad, high + pad


def draw_path(
    ax,
    path: pd.DataFrame,
    term: str,
    *,
    ols: float,
    limit: float | None,
    limit_label: str,
    theta_hat: float | None,
    method: str = "REML",
    se_multiplier: float = 1.0,
    legend: bool = True,
) -> None:
    """Draw one term's fixed-effect path on ``ax`` (used by :func:`plot_fixed_effect_path`).

    It is :func:`build_path` followed by :func:`update_path`, a symlog theta axis and labels.

    Parameters
    ----------
    ax : matplotlib Axes
    path : pandas.DataFrame
        From :func:`helpers.decompose.fixed_effect_path`; must contain ``theta_hat`` if given.
    term : str
    ols : float
        The pooled OLS estimate (the theta = 0 asymptote).
    limit : float or None
        The theta -> infinity asymptote (the within estimator), or None / NaN for none.
    limit_label : str
    theta_hat : float or None
        The fitted theta, marked on the path.
    method : str, default "REML"
    se_multiplier : float, default 1.0
        Half-width of the band, in standard errors.
    legend : bool, default True

    Examples
    --------
    >>> path = pd.DataFrame({"theta": [0.0, 1.0, 2.0], "term": "b", "estimate": [1.0, 2.0, 2.5],
    ...                      "std_error": [0.1, 0.2, 0.3]})
    >>> fig, ax = new_figure()
    >>> draw_path(ax, path, "b", ols=1.0, limit=3.0, limit_label="within", theta_hat=1.0)
    >>> sorted(line.get_gid() for line in ax.get_lines() if line.get_gid())
    ['limit', 'ols', 'ols_marker', 'path', 'theta_hat', 'theta_hat_rule']
    """
    part = path[path["term"] == term].sort_values("theta")
    x = part["theta"].to_numpy()
    has_limit = limit is not None and bool(np.isfinite(limit))
    artists = build_path(
        ax,
        limit_label=limit_label if has_limit else None,
        theta_hat_label=None if theta_hat is None else f"{method} fit (θ = {theta_hat:.3g})",
        se_multiplier=se_multiplier,
    )
    update_path(
        artists,
        x,
        part["estimate"].to_numpy(),
        part["std_error"].to_numpy(),
        ols=ols,
        limit=limit,
        theta_hat=theta_hat,
    )
    _symlog_theta(ax, x)
    ax.set_xlabel(_theta_label())
    ax.set_ylabel(f"estimate of {term}")
    if legend:
        ax.legend(fontsize=LEGEND_FONTSIZE, loc="best")


#: Panels per row of :func:`plot_fixed_effect_path`; more terms wrap onto further rows.
PATH_PANELS_PER_ROW = 2


def plot_fixed_effect_path(
    stats: SufficientStats,
    term_names,
    *,
    theta_hat: float | None = None,
    reml: bool = True,
    thetas=None,
    terms=None,
    within=None,
    title: str | None = None,
    se_multiplier: float = 1.0,
):
    """The fixed effects (with a standard-error band) as theta runs from 0 (pooled OLS) upward.

    Parameters
    ----------
    stats : SufficientStats
    term_names : list of str
    theta_hat : float, optional
        The fitted theta to mark; by default the optimum of the criterion (REML or ML).
    reml : bool, default True
    thetas : array_like, optional
        The grid; by default :func:`helpers.decompose.default_thetas` (which contains ``theta_hat``).
    terms : list of str, optional
        The terms to draw, one panel each; all by default.
    within : pandas.Series or dict, optional
        The theta -> infinity asymptotes to draw; by default
        :func:`helpers.decompose.large_theta_limit` (the within estimator for terms that vary within
        clusters; for the others, the between regression with equal cluster weights).
    title : str, optional
    se_multiplier : float, default 1.0
        Half-width of the band in standard errors.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per term, at most :data:`PATH_PANELS_PER_ROW` to a row (more terms wrap onto
        further rows, so the figure stays readable at page width), and one legend below them all.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> d = build_design(load_dataset("radon"), "log_radon ~ floor + (1 | county)")
    >>> fig = plot_fixed_effect_path(d.stats, d.term_names)
    >>> [ax.get_title() for ax in fig.axes]
    ['Intercept', 'floor']
    """
    names = list(term_names)
    terms = names if terms is None else list(terms)
    unknown = [t for t in terms if t not in names]
    if unknown:
        raise ValueError(f"Unknown term(s) {unknown}; choose from {names}.")
    if theta_hat is None:
        theta_hat, _ = optimize_theta(stats, reml)
    grid = default_thetas(stats, theta_hat=theta_hat) if thetas is None else np.asarray(thetas)
    if theta_hat is not None and not np.isclose(grid, theta_hat, rtol=1e-12, atol=0).any():
        grid = np.sort(np.append(grid, theta_hat))
    path = fixed_effect_path(stats, names, grid, reml=reml)
    if within is None:
        limits = large_theta_limit(stats, names)
        within_ok = within_estimator(stats, names).notna()
    else:
        limits = pd.Series(within, dtype=float).reindex(names)
        within_ok = limits.notna()
    ncols = min(len(terms), PATH_PANELS_PER_ROW)
    nrows = -(-len(terms) // ncols)
    width = MAX_FIGURE_WIDTH if ncols > 1 else 6.0
    fig, grid_axes = new_figure(nrows, ncols, figsize=(width, 3.3 * nrows + 1.1), squeeze=False)
    axes = list(grid_axes.ravel())
    for spare in axes[len(terms) :]:  # the empty end of the last row
        fig.delaxes(spare)
    for ax, term in zip(axes, terms, strict=False):
        label = (
            "within estimator (θ → ∞)" if within_ok[term] else "θ → ∞ limit (equal cluster weights)"
        )
        draw_path(
            ax,
            path,
            term,
            ols=float(path.loc[(path["theta"] == 0) & (path["term"] == term), "estimate"].iloc[0])
            if (path["theta"] == 0).any()
            else float(stats.beta_ols[names.index(term)]),
            limit=float(limits[term]),
            limit_label=label,
            theta_hat=theta_hat,
            method="REML" if reml else "ML",
            se_multiplier=se_multiplier,
            legend=False,
        )
        ax.set_title(term)
    # one legend for all panels: every entry once, in the order the panels draw them
    entries = {}
    for ax in axes[: len(terms)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    fig.legend(
        list(entries.values()),
        list(entries),
        loc="outside lower center",
        ncol=2,
        fontsize=LEGEND_FONTSIZE,
        frameon=False,
    )
    fig.suptitle(title or "Fixed effects along the path from pooled OLS to the within estimator")
    fig.set_layout_engine("constrained")
    return fig


#: How far above its minimum each criterion is drawn in the zoomed panel of :func:`plot_criteria`.
CRITERIA_ZOOM_LEVEL = 6.0
#: The legend font size (points) of the figures that set it: 9 pt, the project's smallest text.
LEGEND_FONTSIZE = 9.0


def _below_level(stats: SufficientStats, reml: bool, theta_hat: float, level: float):
    """The theta interval around ``theta_hat`` where the criterion is within ``level`` of its minimum."""
    import scipy.optimize

    best = float(criterion(stats, theta_hat, reml))

    def rise(t):
        return float(criterion(stats, t, reml)) - best - level

    low = 0.0
    if theta_hat > 0 and rise(0.0) > 0:
        low = scipy.optimize.brentq(rise, 0.0, theta_hat, xtol=1e-10 * max(theta_hat, 1e-12))
    step = max(theta_hat, 1e-3)
    high = theta_hat + step
    for _ in range(60):  # the criterion rises without bound in theta unless the data say otherwise
        if rise(high) > 0:
            break
        step *= 2.0
        high = theta_hat + step
    else:
        return low, high
    high = scipy.optimize.brentq(rise, theta_hat, high, xtol=1e-10 * high)
    return low, high


def _mark_optimum(ax, theta_hat: float, color, gid: str, label: str | None = None) -> None:
    """A criterion's minimum: a dot at (theta_hat, 0) with a black edge."""
    ax.plot(
        [theta_hat],
        [0.0],
        marker="o",
        color=color,
        markeredgecolor="black",
        linestyle="none",
        markersize=8,
        label=label,
    )[0].set_gid(gid)


def plot_criteria(
    stats: SufficientStats, *, thetas=None, title: str | None = None, zoom: bool = False
):
    """The profiled ML deviance and REML criterion against theta, each relative to its minimum.

    Parameters
    ----------
    stats : SufficientStats
    thetas : array_like, optional
        By default :func:`helpers.decompose.default_thetas`, widened to contain both optima.
    title : str, optional
    zoom : bool, default False
        Add a second panel, on a linear theta axis, around the two optima: from where the lower
        curve first comes within :data:`CRITERIA_ZOOM_LEVEL` of its minimum to where the other
        leaves it. The zoomed range is shaded in the first panel.

    Returns
    -------
    matplotlib.figure.Figure
        One panel (two with ``zoom``); the y axis of the first is symlog so both the neighbourhood of
        the optima and the far values fit. A dotted line at 3.84 (the 95% point of chi-square with
        1 df) marks the profile interval for theta.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.design import build_design
    >>> fig = plot_criteria(build_design(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)").stats)
    >>> sorted(line.get_label() for line in fig.axes[0].get_lines() if line.get_gid() == "criterion")
    ['ML deviance', 'REML criterion']
    """
    theta_reml, _ = optimize_theta(stats, True)
    theta_ml, _ = optimize_theta(stats, False)
    if thetas is None:
        grid = default_thetas(stats, theta_hat=max(theta_reml, theta_ml) or None)
    else:
        grid = np.asarray(thetas, dtype=float)
    grid = np.unique(np.concatenate([grid, [theta_reml, theta_ml]]))
    curves = (
        (True, theta_reml, "REML criterion", COLORS["lmm"], "-"),
        (False, theta_ml, "ML deviance", COLORS["ml"], "--"),
    )
    if zoom:
        fig, (ax, near) = new_figure(
            1, 2, figsize=(MAX_FIGURE_WIDTH, 4.9), gridspec_kw={"width_ratios": [3, 2]}
        )
    else:
        fig, ax = new_figure(figsize=(7.0, 4.5))
        near = None
    for reml, theta_hat, name, color, style in curves:
        values = criterion(stats, grid, reml)
        best = criterion(stats, theta_hat, reml)
        (line,) = ax.plot(
            grid, values - best, color=color, linestyle=style, linewidth=2, label=name
        )
        line.set_gid("criterion")
        _mark_optimum(
            ax,
            theta_hat,
            color,
            "optimum",
            f"{name.split()[0]} optimum $\\hat\\theta$ = {theta_hat:.4g}",
        )
    ax.axhline(3.84, color="0.5", linestyle=":", label="3.84: 95% profile interval for $\\theta$")
    _symlog_theta(ax, grid)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=-0.05)
    ax.set_xlabel(_theta_label())
    ax.set_ylabel("criterion minus its minimum (symlog axis)")
    if near is None:
        ax.set_title(title or "Profiled ML and REML criteria")
        ax.legend(fontsize=LEGEND_FONTSIZE)
        fig.set_layout_engine("constrained")
        return fig
    ranges = [
        _below_level(stats, reml, theta_hat, CRITERIA_ZOOM_LEVEL) for reml, theta_hat, *_ in curves
    ]
    low = min(r[0] for r in ranges)
    high = max(r[1] for r in ranges)
    pad = 0.04 * (high - low)
    low, high = max(low - pad, 0.0), high + pad
    fine = np.unique(np.r_[np.linspace(low, high, 241), theta_reml, theta_ml])
    for reml, theta_hat, _name, color, style in curves:
        best = criterion(stats, theta_hat, reml)
        near.plot(
            fine, criterion(stats, fine, reml) - best, color=color, linestyle=style, linewidth=2
        )[0].set_gid("criterion_zoom")
        _mark_optimum(near, theta_hat, color, "optimum_zoom")
    near.axhline(3.84, color="0.5", linestyle=":")
    near.set_xlim(low, high)
    near.set_ylim(-0.3, CRITERIA_ZOOM_LEVEL + 0.5)
    near.set_xlabel(r"$\theta$ (linear axis, near the optima)")
    near.set_ylabel("criterion minus its minimum")
    near.set_title("Zoomed in", fontsize=10)
    ax.axvspan(low, high, color="0.88", zorder=0, label="the range zoomed in at right").set_gid(
        "zoom_span"
    )
    ax.set_title("All of θ", fontsize=10)
    fig.suptitle(title or "Profiled ML and REML criteria")
    fig.legend(
        *ax.get_legend_handles_labels(),
        loc="outside lower center",
        ncol=2,
        fontsize=LEGEND_FONTSIZE,
        frameon=False,
    )
    fig.set_layout_engine("constrained")
    return fig


def _pooling_quantities(fit):
    """Per-cluster sizes, no-pooling and partial-pooling levels, and the two overall levels."""
    stats = fit.stats
    names = list(fit.fe_params.index)
    beta = fit.fe_params.to_numpy()
    n = stats.counts.astype(float)
    raw = (stats.sum_y - stats.sum_x @ beta) / n
    base = float(fit.fe_params["Intercept"]) if "Intercept" in names else 0.0
    ols_base = float(stats.beta_ols[names.index("Intercept")]) if "Intercept" in names else 0.0
    return n, base + raw, base + fit.ranef.to_numpy(), base, ols_base


def _spread_ties(n: np.ndarray) -> np.ndarray:
    """Multiply tied sizes by small factors (at most about +-10%) so their arrows do not overlap."""
    x = n.astype(float).copy()
    for value in np.unique(n):
        idx = np.flatnonzero(n == value)
        if len(idx) > 1:
            x[idx] = value * np.exp(np.linspace(-0.1, 0.1, len(idx)))
    return x


def plot_pooling(fit, *, title: str | None = None):
    """No pooling, partial pooling and complete pooling, cluster by cluster, with shrinkage arrows.

    For each cluster, an open circle shows its own level (no pooling) and a filled circle the mixed
    model's (partial pooling); an arrow joins them. Two horizontal lines show the mixed model's fixed
    intercept, toward which partial pooling pulls, and pooled OLS's (complete pooling).

    With covariates, a cluster's level is its mean adjusted to the reference covariates:
    ``Intercept + (ybar_i - xbar_i' beta)`` (no pooling) and ``Intercept + b_i`` (partial pooling), with
    the mixed model's beta. In an intercept-only model these are the cluster mean and the conditional
    estimate.

    Parameters
    ----------
    fit : LmmResult
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        x = cluster size (on a log axis when the sizes span more than a factor of 20; tied sizes are
        spread slightly), y = the cluster's level.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fig = plot_pooling(fit_lmm(load_dataset("radon"), "log_radon ~ floor + (1 | county)"))
    >>> fig.axes[0].get_xscale(), len(fig.axes[0].get_legend().get_texts())
    ('log', 4)
    """
    n, raw, partial, base, ols_base = _pooling_quantities(fit)
    x = _spread_ties(n)
    fig, ax = new_figure(figsize=(7.5, 4.8))
    for xi, start, end in zip(x, raw, partial, strict=True):
        ax.annotate(
            "",
            xy=(xi, end),
            xytext=(xi, start),
            arrowprops={"arrowstyle": "->", "color": "0.55", "linewidth": 0.9, "shrinkA": 0},
        ).set_gid("shrinkage_arrow")
    ax.scatter(
        x,
        raw,
        facecolors="none",
        edgecolors=COLORS["cluster"],
        s=28,
        label="no pooling: the cluster's own level",
        zorder=3,
    ).set_gid("no_pooling")
    ax.scatter(
        x,
        partial,
        color=COLORS["lmm"],
        s=22,
        label="partial pooling: mixed model",
        zorder=4,
    ).set_gid("partial_pooling")
    ax.axhline(
        base, color=COLORS["lmm"], linewidth=1.5, label="mixed model's fixed intercept"
    ).set_gid("lmm_level")
    ax.axhline(
        ols_base,
        color=COLORS["ols"],
        linestyle="--",
        linewidth=1.5,
        label="complete pooling: pooled OLS",
    ).set_gid("ols_level")
    wide = n.max() > 20 * n.min()
    if wide:
        ax.set_xscale("log")
    ax.set_xlabel(f"rows in the {fit.group} (cluster size $n_i${', log axis' if wide else ''})")
    ylabel = f"{fit.response}: cluster level"
    if len(fit.fe_params) > 1:
        ylabel += " (at the reference covariates)"
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"Shrinkage: each {fit.group} pulled toward the overall level")
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    fig.set_layout_engine("constrained")
    return fig


#: :func:`plot_caterpillar` names every cluster up to this many, else only the lowest and highest few.
CATERPILLAR_NAMED = 40
CATERPILLAR_ENDS = 5


def plot_caterpillar(fit, *, title: str | None = None):
    """Conditional modes of the random effects with 95% intervals (+-1.96 conditional SD), sorted.

    Parameters
    ----------
    fit : LmmResult
        A random-intercept fit, or a fit with random slopes (one panel per random term).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One row per cluster, as lme4's ``dotplot(ranef(m, condVar = TRUE))``: from lowest to highest
        mode of the first term (the intercept), in every panel alike; clusters whose interval excludes 0
        are marked. Cluster names label the rows when there are at most :data:`CATERPILLAR_NAMED`;
        beyond that only the :data:`CATERPILLAR_ENDS` lowest and highest are named (more names would be
        too small to read).

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fig = plot_caterpillar(fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)"))
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['F', 'D', 'A', 'B', 'C', 'E']
    >>> slopes = fit_lmm(load_dataset("sleepstudy"), "Reaction ~ Days + (Days | Subject)")
    >>> [ax.get_title() for ax in plot_caterpillar(slopes).axes]
    ['(Intercept)', 'Days']
    """
    if isinstance(fit.ranef, pd.Series):
        names = ["(Intercept)"]
        modes_all = fit.ranef.to_numpy()[:, None]
        sds_all = fit.ranef_sd.to_numpy()[:, None]
    else:
        names = list(fit.random.names)
        modes_all = fit.ranef[names].to_numpy()
        sds_all = fit.ranef_sd[names].to_numpy()
    order = np.argsort(modes_all[:, 0], kind="stable")
    labels = [str(v) for v in fit.ranef.index[order]]
    positions = np.arange(len(order))
    height = min(max(3.0, 0.22 * len(order) + 1.2), 10.0)
    single = len(names) == 1
    width = 6.5 if single else max(6.5, 3.4 * len(names))
    fig, axes = new_figure(1, len(names), figsize=(width, height), sharey=True)
    axes = np.atleast_1d(axes)
    for k, (ax, name) in enumerate(zip(axes, names, strict=True)):
        modes, half = modes_all[order, k], 1.96 * sds_all[order, k]
        container = ax.errorbar(
            modes,
            positions,
            xerr=half,
            fmt="o",
            color=COLORS["lmm"],
            ecolor="0.5",
            markersize=4,
            capsize=0,
            label="conditional mode $\\pm$ 1.96 conditional SD" if k == 0 else None,
        )
        container.lines[0].set_gid("modes" if single else f"modes {name}")
        ax.axvline(
            0.0,
            color="0.3",
            linewidth=0.8,
            linestyle="--",
            label=("the fixed intercept (0)" if single else "the fixed effect (0)")
            if k == 0
            else None,
        )
        outside = (modes - half > 0) | (modes + half < 0)
        count = f"interval excludes 0 ({int(outside.sum())} of {len(modes)})"
        ax.scatter(
            modes[outside],
            positions[outside],
            s=22,
            color=COLORS["ols"],
            zorder=3,
            label=count if single else ("interval excludes 0" if k == 0 else None),
        ).set_gid("outside" if single else f"outside {name}")
        if single:
            ax.set_xlabel(
                f"conditional mode $\\hat b_i$ of the {fit.group} intercept ({fit.response} units)"
            )
        else:
            ax.set_title(name, fontsize=LEGEND_FONTSIZE + 1)
            ax.set_xlabel(f"deviation from the fixed effect\n({count})", fontsize=LEGEND_FONTSIZE)
    first = axes[0]
    if len(order) <= CATERPILLAR_NAMED:
        first.set_yticks(positions, labels)
        ylabel = f"{fit.group}, sorted by mode"
    else:  # too many to name legibly: name the lowest and the highest few
        ends = np.r_[positions[:CATERPILLAR_ENDS], positions[-CATERPILLAR_ENDS:]]
        first.set_yticks(ends, [labels[k] for k in ends], fontsize=LEGEND_FONTSIZE)
        ylabel = f"{fit.group}, sorted by mode ({CATERPILLAR_ENDS} lowest and highest named)"
    if not single:
        ylabel = ylabel.replace("sorted by mode", f"sorted by the {names[0]} mode")
    first.set_ylim(-1, len(order))
    first.set_ylabel(ylabel)
    default = (
        f"Random intercepts by {fit.group} (conditional modes, 95% intervals)"
        if single
        else f"Random effects by {fit.group} (conditional modes, 95% intervals)"
    )
    if single:
        first.set_title(title or default)
    else:
        fig.suptitle(title or default)
    fig.legend(
        loc="outside lower center", ncol=2 if single else 3, fontsize=LEGEND_FONTSIZE, frameon=False
    )
    fig.set_layout_engine("constrained")
    return fig


# --- per-cluster panels, profiles, bootstrap, residuals, 2-D shrinkage ----------------------------------

#: The most clusters :func:`plot_cluster_panels` draws, and its columns.
MAX_CLUSTER_PANELS = 8
CLUSTER_PANEL_COLUMNS = 4
#: The profile levels of :func:`plot_profile_zeta`, as lme4's ``xyplot`` of a profile draws them.
PROFILE_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)


def _pick_clusters(sizes: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` clusters spread evenly over the clusters sorted by size (both extremes in)."""
    order = np.argsort(sizes, kind="stable")
    if k >= len(order):
        return order
    return order[np.unique(np.round(np.linspace(0, len(order) - 1, k)).astype(int))]


def _jitter(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """x plus a small fixed jitter (at most 6% of its range) when it takes only a few values."""
    values = np.unique(x)
    if len(values) > 5 or len(values) < 2:
        return x
    spread = 0.06 * float(values.max() - values.min())
    return x + np.random.default_rng(seed).uniform(-spread, spread, len(x))


def plot_cluster_panels(
    fit,
    term: str | None = None,
    *,
    clusters=None,
    max_panels: int = MAX_CLUSTER_PANELS,
    title: str | None = None,
):
    """Each cluster's rows with its complete-, no- and partial-pooling lines: small multiples.

    As Gelman and Hill's figure 12.4 (radon, eight counties): in each panel, the cluster's data against
    one predictor, the pooled OLS line (complete pooling, the same in every panel), the no-pooling line
    (the within estimator: a common slope and the cluster's own intercept, as ``lm(y ~ x + factor(g))``)
    and the mixed model's line (partial pooling: its fixed effects plus the cluster's conditional mode).

    Parameters
    ----------
    fit : LmmResult
        A random-intercept fit with its rows (``fit.design``).
    term : str, optional
        The predictor on the x axis; by default the only fixed effect besides the intercept. Other
        terms are held at 0 (their reference) in the lines.
    clusters : list, optional
        The cluster labels to draw. By default at most ``max_panels``, spread evenly over the clusters
        sorted by size, from the smallest to the largest; the title says which were chosen.
    max_panels : int, default 8
        The cap on panels (at most :data:`CLUSTER_PANEL_COLUMNS` to a row).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One panel per cluster, titled with its label and size, sharing both axes; one legend below.
        Discrete x values (at most 5 distinct) are jittered slightly so the points do not overlap.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fig = plot_cluster_panels(fit_lmm(load_dataset("radon"), "log_radon ~ floor + (1 | county)"))
    >>> len(fig.axes), fig._suptitle.get_text()[:44]
    (8, '8 of 85 clusters (county), spread from the s')
    """
    design = fit.design
    if design is None:
        raise ValueError("This fit was made from aggregates and has no rows to draw.")
    names = list(fit.fe_params.index)
    others = [n for n in names if n != "Intercept"]
    if term is None:
        if len(others) != 1:
            raise ValueError(f"Choose the predictor to draw with term=; the fit has {others}.")
        term = others[0]
    if term not in others:
        raise ValueError(f"Unknown term {term!r}; choose from {others}.")
    labels = [str(v) for v in design.group_labels]
    sizes = np.asarray(fit.stats.counts)
    if clusters is None:
        picked = _pick_clusters(sizes, int(max_panels))
        how = (
            f"{len(picked)} of {len(labels)} clusters ({fit.group}), spread from the smallest to "
            "the largest"
            if len(picked) < len(labels)
            else f"all {len(labels)} clusters ({fit.group}), from the smallest to the largest"
        )
    else:
        wanted = [str(c) for c in clusters]
        unknown = [c for c in wanted if c not in labels]
        if unknown:
            raise ValueError(f"Unknown {fit.group}(s) {unknown}.")
        picked = np.array([labels.index(c) for c in wanted])[: int(max_panels)]
        how = f"{len(picked)} chosen clusters ({fit.group}) of {len(labels)}"
    j = names.index(term)
    x_all = np.asarray(design.X[:, j], dtype=float)
    y_all = np.asarray(design.y, dtype=float)
    codes = np.asarray(design.group_codes)
    has_intercept = "Intercept" in names
    b0 = float(fit.fe_params["Intercept"]) if has_intercept else 0.0
    b1 = float(fit.fe_params[term])
    ols = np.asarray(fit.stats.beta_ols, dtype=float)
    ols0 = float(ols[names.index("Intercept")]) if has_intercept else 0.0
    within = within_estimator(fit.stats, names)
    beta_w = within.fillna(0.0).to_numpy()
    stats = fit.stats
    # the no-pooling intercepts: each cluster's mean minus its mean predictors times the within slopes
    means_x = stats.sum_x / stats.counts[:, None]
    means_y = stats.sum_y / stats.counts
    no_pool = means_y - means_x @ np.where(np.array(names) == "Intercept", 0.0, beta_w)
    modes = fit.ranef.to_numpy()

    ncols = min(CLUSTER_PANEL_COLUMNS, len(picked))
    nrows = -(-len(picked) // ncols)
    fig, grid = new_figure(
        nrows,
        ncols,
        figsize=(MAX_FIGURE_WIDTH if ncols > 2 else 4.2 * ncols / 2 + 1.0, 2.1 * nrows + 1.3),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    axes = list(grid.ravel())
    for spare in axes[len(picked) :]:
        fig.delaxes(spare)
    lo, hi = float(x_all.min()), float(x_all.max())
    pad = 0.08 * (hi - lo) if hi > lo else 0.5
    xs = np.array([lo - pad, hi + pad])
    for ax, i in zip(axes, picked, strict=False):
        rows = codes == i
        x = _jitter(x_all[rows], seed=int(i))
        ax.scatter(
            x, y_all[rows], s=12, color=COLORS["cluster"], alpha=0.7, linewidths=0, label="data"
        ).set_gid("data")
        ax.plot(
            xs,
            ols0 + ols[j] * xs,
            color=COLORS["ols"],
            linestyle="--",
            linewidth=1.4,
            label="complete pooling (pooled OLS)",
        )[0].set_gid("complete")
        ax.plot(
            xs,
            no_pool[i] + beta_w[j] * xs,
            color="0.25",
            linestyle=":",
            linewidth=1.6,
            label="no pooling (own intercept, within slope)",
        )[0].set_gid("no_pooling")
        ax.plot(
            xs,
            b0 + modes[i] + b1 * xs,
            color=COLORS["lmm"],
            linewidth=1.8,
            label="partial pooling (mixed model)",
        )[0].set_gid("partial")
        ax.set_title(f"{labels[i]} (n = {int(sizes[i])})", fontsize=9)
        ax.tick_params(labelsize=9)
    ax.set_xlim(*xs)
    handles, names_ = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, names_, loc="outside lower center", ncol=2, fontsize=LEGEND_FONTSIZE, frameon=False
    )
    xlabel = term + (" (jittered)" if len(np.unique(x_all)) <= 5 else "")
    for k, ax in enumerate(axes[: len(picked)]):
        if k + ncols >= len(picked):  # the lowest panel of its column
            ax.set_xlabel(xlabel, fontsize=9)
            ax.xaxis.set_tick_params(labelbottom=True)
    fig.supylabel(fit.response, fontsize=10)
    fig.suptitle(title or f"{how}", fontsize=10.5)
    fig.set_layout_engine("constrained")
    return fig


def _level_z(levels) -> np.ndarray:
    import scipy.stats

    return scipy.stats.norm.ppf(0.5 + np.asarray(levels, dtype=float) / 2)


def _parameter_label(parameter: str) -> str:
    return {"sigma_group": r"$\sigma_b$", "sigma": r"$\sigma$"}.get(parameter, parameter)


def plot_profile_zeta(fit, parameters=None, *, profiles=None, title: str | None = None):
    """Profile zeta plots: zeta = sign(value - estimate) sqrt(deviance rise) for each parameter.

    As lme4's ``xyplot(profile(m))``: one panel per parameter, the profile zeta against the parameter's
    value, horizontal lines at +-z for the 50, 80, 90, 95 and 99% levels and vertical lines down from
    where zeta crosses them (the ends of the profile intervals). A straight zeta means the Wald interval
    would be the profile interval; a bent one means it would not.

    Parameters
    ----------
    fit : LmmResult
    parameters : list of str, optional
        By default ``["sigma_group", "sigma", *fixed effects]``.
    profiles : dict, optional
        ``{parameter: DataFrame}`` from :func:`helpers.inference.likelihood_profile`; computed (ML,
        as lme4) for the parameters not given.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two panels to a row.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fig = plot_profile_zeta(fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)"))
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['$\\\\sigma_b$', '$\\\\sigma$', 'Intercept']
    """
    from .inference import likelihood_profile

    names = ["sigma_group", "sigma", *fit.fe_params.index]
    parameters = names if parameters is None else list(parameters)
    profiles = dict(profiles or {})
    for p in parameters:
        if p not in profiles:
            profiles[p] = likelihood_profile(fit, p)
    ncols = min(2, len(parameters))
    nrows = -(-len(parameters) // ncols)
    fig, grid = new_figure(
        nrows,
        ncols,
        figsize=(MAX_FIGURE_WIDTH if ncols > 1 else 4.5, 2.9 * nrows + 0.9),
        squeeze=False,
    )
    axes = list(grid.ravel())
    for spare in axes[len(parameters) :]:
        fig.delaxes(spare)
    z = _level_z(PROFILE_LEVELS)
    for ax, p in zip(axes, parameters, strict=False):
        prof = profiles[p].sort_values("value")
        x, zeta = prof["value"].to_numpy(), prof["zeta"].to_numpy()
        ax.plot(x, zeta, color=COLORS["lmm"], linewidth=1.8, label="profile ζ")[0].set_gid("zeta")
        for level, zk in zip(PROFILE_LEVELS, z, strict=True):
            for sign in (-1, 1):
                ax.axhline(sign * zk, color="0.75", linewidth=0.8, zorder=0)
                inside = (sign * zeta[:-1] - zk) * (sign * zeta[1:] - zk) <= 0
                for k in np.flatnonzero(inside & (zeta[:-1] != zeta[1:])):
                    at = x[k] + (sign * zk - zeta[k]) * (x[k + 1] - x[k]) / (zeta[k + 1] - zeta[k])
                    ax.plot(
                        [at, at], [-3.0, sign * zk], color="0.55", linewidth=0.8, linestyle="--"
                    )[0].set_gid(f"end_{level:g}")
            ax.annotate(
                f"{level:.0%}",
                xy=(1.0, zk),
                xycoords=("axes fraction", "data"),
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
                fontsize=LEGEND_FONTSIZE,
                color="0.35",
            )
        ax.axvline(prof.attrs.get("estimate", np.nan), color="black", linewidth=0.8)
        ax.set_ylim(-3.0, 3.0)
        # at most 4 ticks: five labels such as -0.104 overlap at this panel width
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        ax.set_xlabel(_parameter_label(p))
        ax.set_ylabel("ζ")
    fig.suptitle(
        title
        or f"Profile ζ ({profiles[parameters[0]].attrs.get('criterion', 'ML')} deviance); "
        "lines at the 50–99% levels"
    )
    fig.set_layout_engine("constrained")
    return fig


def plot_bootstrap_scatter(
    replicates: pd.DataFrame, term: str, fit=None, *, title: str | None = None
):
    """The bootstrap replicates of a fixed effect against those of sigma_b, one point each.

    Parameters
    ----------
    replicates : pandas.DataFrame
        From :func:`helpers.inference.bootstrap` (columns ``sigma_group`` and the fixed effects).
    term : str
        The fixed effect on the y axis.
    fit : LmmResult, optional
        Marks the estimates the replicates were drawn from.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One panel; dashed lines at each axis's 2.5% and 97.5% bootstrap percentiles; the legend counts the
        replicates with sigma_b estimated at 0 (singular refits, stacked on the y axis).

    Examples
    --------
    >>> reps = pd.DataFrame({"sigma_group": [0.0, 1.0, 2.0], "Intercept": [1.0, 2.0, 3.0]})
    >>> fig = plot_bootstrap_scatter(reps, "Intercept")
    >>> fig.axes[0].get_xlabel()
    '$\\\\hat\\\\sigma_b$ in each replicate'
    """
    if term not in replicates.columns:
        raise ValueError(f"Unknown term {term!r}; the replicates have {list(replicates.columns)}.")
    x = replicates["sigma_group"].to_numpy(dtype=float)
    y = replicates[term].to_numpy(dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    fig, ax = new_figure(figsize=(6.5, 4.8))
    zero = int(np.sum(x == 0))
    ax.scatter(
        x,
        y,
        s=9,
        color=COLORS["lmm"],
        alpha=0.35,
        linewidths=0,
        label=f"{len(x)} replicates ({zero} with $\\hat\\sigma_b$ = 0)",
    ).set_gid("replicates")
    for values, line in ((x, ax.axvline), (y, ax.axhline)):
        for q in np.percentile(values, [2.5, 97.5]):
            line(q, color="0.45", linestyle="--", linewidth=0.9)
    ax.plot([], [], color="0.45", linestyle="--", linewidth=0.9, label="2.5% and 97.5% percentiles")
    if fit is not None:
        ax.plot(
            [fit.sigma_group],
            [float(fit.fe_params[term])],
            marker="o",
            markersize=9,
            color=COLORS["ols"],
            markeredgecolor="black",
            linestyle="none",
            label="the fit's estimates",
        )[0].set_gid("estimate")
    ax.set_xlabel(r"$\hat\sigma_b$ in each replicate")
    ax.set_ylabel(f"{term}: estimate in each replicate")
    ax.set_title(title or f"Parametric bootstrap: {term} against $\\hat\\sigma_b$")
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    fig.set_layout_engine("constrained")
    return fig


def normal_quantiles(n: int) -> np.ndarray:
    """Standard normal quantiles at R's ``ppoints(n)`` (what ``qqnorm`` plots against).

    Examples
    --------
    >>> normal_quantiles(3).round(4).tolist()
    [-0.8694, 0.0, 0.8694]
    """
    import scipy.stats

    a = 3.0 / 8.0 if n <= 10 else 0.5
    return scipy.stats.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))


def _qq_panel(ax, values: np.ndarray, gid: str) -> None:
    import scipy.stats

    sample = np.sort(values)
    theory = normal_quantiles(len(sample))
    ax.scatter(
        theory, sample, s=10, color=COLORS["lmm"], alpha=0.6, linewidths=0, label="sorted values"
    ).set_gid(gid)
    q = np.percentile(sample, [25, 75])
    t = scipy.stats.norm.ppf([0.25, 0.75])
    slope = (q[1] - q[0]) / (t[1] - t[0])
    ax.axline(
        (t[0], q[0]),
        slope=slope,
        color="0.3",
        linestyle="--",
        linewidth=1.0,
        label="line through the quartiles",
    ).set_gid(gid + "_line")
    ax.set_xlabel("standard normal quantile")


def plot_residuals(fit, *, title: str | None = None):
    """Residual diagnostics: residuals against fitted values, and QQ plots of the scaled residuals and
    of the conditional modes.

    Parameters
    ----------
    fit : LmmResult
        A fit with its rows; with random slopes, the QQ plot shows the intercepts' conditional modes.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Above, the conditional residuals y - X beta - b_i against the fitted values X beta + b_i, with the
        mean residual in ten bins of fitted values; below, normal QQ plots of the residuals scaled by
        sigma (lme4's scaled residuals) and of the conditional modes b_i, each with R's ``qqline``.

    Examples
    --------
    >>> from helpers.data import load_dataset
    >>> from helpers.fit import fit_lmm
    >>> fig = plot_residuals(fit_lmm(load_dataset("dyestuff"), "Yield ~ 1 + (1 | Batch)"))
    >>> [ax.get_title() for ax in fig.axes]
    ['Residuals against fitted values', 'Scaled residuals', 'Conditional modes']
    """
    fitted = fit.fitted(include_random=True)
    resid = fit.resid()
    fig = new_figure(figsize=(MAX_FIGURE_WIDTH, 6.4))[0]
    fig.delaxes(fig.axes[0])
    grid = fig.add_gridspec(2, 2)
    top = fig.add_subplot(grid[0, :])
    top.scatter(
        fitted,
        resid,
        s=8,
        color=COLORS["cluster"],
        alpha=0.45,
        linewidths=0,
        label="one row",
        rasterized=len(resid) > 5000,
    ).set_gid("residuals")
    top.axhline(0.0, color="black", linewidth=0.8)
    edges = np.unique(np.percentile(fitted, np.linspace(0, 100, 11)))
    if len(edges) > 2:
        which = np.clip(np.searchsorted(edges, fitted, side="right") - 1, 0, len(edges) - 2)
        centres = np.array(
            [fitted[which == k].mean() for k in range(len(edges) - 1) if (which == k).any()]
        )
        means = np.array(
            [resid[which == k].mean() for k in range(len(edges) - 1) if (which == k).any()]
        )
    else:
        centres, means = np.array([fitted.mean()]), np.array([resid.mean()])
    top.plot(
        centres,
        means,
        "-o",
        color=COLORS["lmm"],
        markersize=5,
        linewidth=1.6,
        label="mean residual in 10 bins of fitted values",
    )[0].set_gid("binned")
    top.set_xlabel(f"fitted value of {fit.response} (X β̂ + b̂ᵢ)")
    top.set_ylabel("residual")
    top.set_title("Residuals against fitted values")
    top.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    left = fig.add_subplot(grid[1, 0])
    _qq_panel(left, resid / np.sqrt(fit.sigma2_resid), "scaled_residuals")
    left.set_ylabel("residual / σ̂")
    left.set_title("Scaled residuals")
    left.legend(fontsize=LEGEND_FONTSIZE, loc="upper left")
    right = fig.add_subplot(grid[1, 1])
    modes = (
        fit.ranef.to_numpy(dtype=float).ravel()
        if fit.ranef.ndim == 1
        else fit.ranef.iloc[:, 0].to_numpy(dtype=float)
    )
    _qq_panel(right, modes, "modes")
    of = (
        "" if fit.ranef.ndim == 1 else f" of {fit.ranef.columns[0]}"
    )  # random slopes: the intercept
    right.set_ylabel(f"conditional mode b̂ᵢ{of} ({fit.group})")
    right.set_title("Conditional modes")
    right.legend(fontsize=LEGEND_FONTSIZE, loc="upper left")
    fig.suptitle(title or f"Residual diagnostics: {fit.formula}")
    fig.set_layout_engine("constrained")
    return fig


def _ellipse(center, cov, probability: float, points: int = 181) -> np.ndarray:
    """Points on the contour of N(center, cov) holding ``probability`` (chi-square, 2 df)."""
    radius = np.sqrt(-2.0 * np.log(1.0 - probability))
    angle = np.linspace(0.0, 2.0 * np.pi, points)
    circle = np.column_stack([np.cos(angle), np.sin(angle)]) * radius
    values, vectors = np.linalg.eigh(np.asarray(cov, dtype=float))
    root = vectors @ np.diag(np.sqrt(np.maximum(values, 0.0)))
    return np.asarray(center, dtype=float) + circle @ root.T


def plot_shrinkage_2d(
    no_pooling,
    partial_pooling,
    cov,
    center,
    *,
    names=("(Intercept)", "slope"),
    group: str = "cluster",
    levels=(0.5, 0.95),
    title: str | None = None,
):
    """Two-dimensional shrinkage for random slopes: each cluster's intercept and slope, from no pooling
    to partial pooling, with the estimated distribution of the cluster coefficients.

    Parameters
    ----------
    no_pooling : array_like, shape (J, 2)
        Each cluster's own intercept and slope (a separate regression per cluster).
    partial_pooling : array_like, shape (J, 2)
        The mixed model's: the fixed effects plus the cluster's conditional modes.
    cov : array_like, shape (2, 2)
        The estimated covariance of the random intercept and slope (lme4's ``VarCorr``).
    center : array_like, shape (2,)
        The fixed intercept and slope, the centre of that distribution.
    names : tuple of str, default ("(Intercept)", "slope")
    group : str, default "cluster"
    levels : tuple of float, default (0.5, 0.95)
        The probability contours drawn of N(center, cov).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        An arrow per cluster from its no-pooling to its partial-pooling coefficients, open and filled
        circles at the two ends, the fixed effects as a cross, and the contours of N(center, cov).

    Examples
    --------
    >>> fig = plot_shrinkage_2d([[1.0, 2.0], [3.0, 0.0]], [[1.5, 1.5], [2.5, 0.5]],
    ...                         [[1.0, 0.2], [0.2, 0.5]], [2.0, 1.0])
    >>> len([a for a in fig.axes[0].patches if a.get_gid() == "shrinkage_arrow"])
    2
    """
    from matplotlib.patches import FancyArrowPatch

    start = np.asarray(no_pooling, dtype=float)
    end = np.asarray(partial_pooling, dtype=float)
    cov = np.asarray(cov, dtype=float)
    center = np.asarray(center, dtype=float)
    if start.ndim != 2 or start.shape[1] != 2 or end.shape != start.shape:
        raise ValueError("no_pooling and partial_pooling must both have shape (J, 2).")
    if cov.shape != (2, 2) or center.shape != (2,):
        raise ValueError("cov must have shape (2, 2) and center shape (2,).")
    fig, ax = new_figure(figsize=(6.8, 6.2))
    for a, b in zip(start, end, strict=True):
        arrow = FancyArrowPatch(
            a,
            b,
            arrowstyle="-|>",
            mutation_scale=9,
            color="0.55",
            linewidth=0.9,
            shrinkA=3,
            shrinkB=3,
        )
        arrow.set_gid("shrinkage_arrow")
        ax.add_patch(arrow)
    ax.scatter(
        start[:, 0],
        start[:, 1],
        facecolors="none",
        edgecolors=COLORS["cluster"],
        s=30,
        label=f"no pooling: the {group}'s own fit",
        zorder=3,
    ).set_gid("no_pooling")
    ax.scatter(
        end[:, 0],
        end[:, 1],
        color=COLORS["lmm"],
        s=24,
        label="partial pooling: mixed model",
        zorder=4,
    ).set_gid("partial_pooling")
    for k, level in enumerate(levels):
        ring = _ellipse(center, cov, level)
        ax.plot(
            ring[:, 0],
            ring[:, 1],
            color=COLORS["lmm"],
            linewidth=1.2,
            linestyle=["-", "--", ":"][k % 3],
            label=f"{level:.0%} of the estimated distribution",
        )[0].set_gid(f"ellipse_{level:g}")
    ax.plot(
        [center[0]],
        [center[1]],
        marker="X",
        markersize=10,
        color=COLORS["ols"],
        markeredgecolor="black",
        linestyle="none",
        label="fixed effects",
    )[0].set_gid("center")
    ax.set_xlabel(f"{names[0]}: intercept of each {group}")
    ax.set_ylabel(f"{names[1]}: slope of each {group}")
    ax.set_title(title or f"Shrinkage in two dimensions: each {group}'s intercept and slope")
    fig.legend(loc="outside lower center", ncol=2, fontsize=LEGEND_FONTSIZE, frameon=False)
    fig.set_layout_engine("constrained")
    return fig
