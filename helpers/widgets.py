"""The between-cluster-variance explorer: a live widget and its kernel-free twin.

Computing and drawing are separate, and each is tested on its own:

- :func:`simulate_question_stats` simulates the sufficient statistics of a data set shaped like the
  question (326,362 rows in 24 clusters, a two-level condition) without making any rows;
- :func:`explorer_state` computes everything one slider position shows (fit, paths, weights);
- :func:`build_explorer` makes the figure once (labels, legend, layout) and :func:`update_explorer` puts a
  position into it; :func:`explorer_figure` is the two in a row, the one definition of the figure;
- :func:`explorer` keeps one such figure alive (:class:`LiveFigure`) and, on each slider move, only
  updates and re-encodes it; :func:`static_explorer` pre-renders :func:`explorer_figure` over a grid of
  slider values, driven by a plain HTML range input (works in a static page).

Why no rows: the random-intercept likelihood depends on the data only through the cluster counts, the
per-cluster sums and the global cross-products. For a cluster-by-condition cell with n rows drawn from
N(mu, sigma^2), the sum is exactly N(n mu, n sigma^2) and the within-cell sum of squares exactly
sigma^2 chi-square(n - 1), independently. Drawing those 2 x 24 pairs replaces 326,362 draws, so one slider
move costs milliseconds of computing; the rest is drawing.

Common random numbers: every random draw is made once from ``seed`` (as standard normals and uniforms) and
then transformed, so moving a slider changes only what that slider controls. Changing the between-cluster
SD rescales the same cluster effects; changing the imbalance resizes the same clusters; changing the
correlation of the cluster effects with the stim share re-mixes the same two draws.

The correlation slider is the one setting that breaks the random-intercept model's assumption: the model
takes the cluster effects b_i to be independent of the regressors, and a stim share that moves with b_i
makes the cluster means of ``condition`` correlated with b_i (the contextual effect of notebook 03). At
the default, -0.9 (as in earlier versions of the explorer), pooled OLS mixes a biased between-cluster
slope into its estimate; at 0 the assumption holds.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import itertools
import json
import re
import uuid
from dataclasses import dataclass

import ipywidgets
import numpy as np
import pandas as pd
import scipy.stats
from matplotlib.ticker import MaxNLocator

from .decompose import cluster_table, fixed_effect_path, large_theta_limit
from .design import SufficientStats, stats_from_cross_products
from .fit import fit_lmm_from_stats
from .plots import (
    COLORS,
    FIGURE_DPI,
    MAX_FIGURE_WIDTH,
    build_path,
    figure_to_png,
    new_figure,
    update_path,
)

__all__ = [
    "QUESTION_SHAPE",
    "SimulatedStats",
    "simulate_question_stats",
    "ExplorerState",
    "explorer_state",
    "ExplorerArtists",
    "build_explorer",
    "update_explorer",
    "explorer_figure",
    "LiveFigure",
    "explorer",
    "Explorer",
    "static_explorer",
    "STATIC_NOTE",
    "SLIDER_LABELS",
    "figure_caption",
]

#: The question's shape and the simulation's fixed settings (the two slider quantities are arguments;
#: ``share_correlation`` is the third slider, the correlation over clusters of b_i and the stim share).
QUESTION_SHAPE = {
    "n_obs": 326_362,
    "n_clusters": 24,
    "intercept": 0.72,
    "slope": -0.098,
    "sigma_resid": float(np.sqrt(0.4535)),
    "size_correlation": -0.12,
    "share_stim": 0.5,
    "share_spread": 0.05,
    "share_correlation": -0.9,
    "min_size": 30,
}

#: The label above the kernel-free twin.
STATIC_NOTE = (
    "Pre-rendered: the sliders here work without a kernel. "
    "The live sliders below need a running Python kernel (JupyterLab)."
)

#: The sliders' labels (HTML, each the slider's description, shown in full beside it).
SLIDER_LABELS = (
    "between-cluster SD (σ<sub>b</sub>)",
    "cluster-size imbalance (SD of log n)",
    "correlation of cluster effect and stim share (ρ)",
)

TERM_NAMES = ["Intercept", "condition[T.stim]"]

# theta grid of the explorer's path panels: theta = 0 (pooled OLS), then 1e-4 .. 10^1.5
_PATH_THETAS = np.concatenate([[0.0], np.logspace(-4, 1.5, 34)])


@dataclass(frozen=True, eq=False)
class SimulatedStats:
    """Simulated sufficient statistics of a question-shaped data set.

    Attributes
    ----------
    stats : SufficientStats
    term_names : list of str
        ``["Intercept", "condition[T.stim]"]``.
    cluster_labels : list of str
    cell_counts : ndarray, shape (J, 2)
        Rows per cluster in ``unstim`` and ``stim``.
    cell_sums, cell_squares : ndarray, shape (J, 2)
        Per cell, the sum of y and the sum of squared deviations from the cell mean.
    cluster_effects : ndarray, shape (J,)
        The simulated b_i.
    truth : pandas.Series
        The true fixed effects.
    sigma_group, sigma_resid, size_imbalance : float
    share_correlation : float
        The correlation over clusters between b_i and the latent stim share (exact in the sample).
    """

    stats: SufficientStats
    term_names: list
    cluster_labels: list
    cell_counts: np.ndarray
    cell_sums: np.ndarray
    cell_squares: np.ndarray
    cluster_effects: np.ndarray
    truth: pd.Series
    sigma_group: float
    sigma_resid: float
    size_imbalance: float
    share_correlation: float


@functools.lru_cache(maxsize=16)
def _draws(seed: int, n_clusters: int):
    """All random numbers of the simulation, drawn once per seed (common random numbers)."""
    rng = np.random.default_rng(seed)
    return {
        "z_size": rng.standard_normal(n_clusters),
        "z_effect": rng.standard_normal(n_clusters),
        "z_share": rng.standard_normal(n_clusters),
        "z_sum": rng.standard_normal((n_clusters, 2)),
        "u_squares": rng.random((n_clusters, 2)),
    }


def _standardise(z: np.ndarray) -> np.ndarray:
    sd = z.std()
    return (z - z.mean()) / (sd if sd > 0 else 1.0)


def _with_correlation(z: np.ndarray, noise: np.ndarray, rho: float) -> np.ndarray:
    """A standardised mix of ``z`` and ``noise`` whose sample correlation with ``z`` is exactly ``rho``.

    The noise is standardised and made orthogonal to ``z`` first, so that rho = 0 means no correlation
    in these clusters, not only in expectation.
    """
    z = _standardise(z)
    noise = _standardise(noise)
    noise = _standardise(noise - np.mean(noise * z) * z)
    return rho * z + np.sqrt(1.0 - rho**2) * noise


def _cluster_sizes(z_size, size_imbalance, n_obs, min_size):
    n_clusters = len(z_size)
    weights = np.exp(size_imbalance * (z_size - z_size.max()))
    spare = n_obs - n_clusters * min_size
    sizes = min_size + np.floor(weights / weights.sum() * spare).astype(np.int64)
    remainder = int(n_obs - sizes.sum())
    sizes[np.argsort(-weights, kind="stable")[:remainder]] += 1
    return sizes


def simulate_question_stats(
    sigma_group: float = 0.31,
    size_imbalance: float = 1.5,
    seed: int = 0,
    **shape,
) -> SimulatedStats:
    """Simulate the sufficient statistics of question-shaped data, without making rows.

    The model is y = intercept + slope * stim + b_i + e, with b_i ~ N(0, sigma_group^2) and
    e ~ N(0, sigma_resid^2). Cluster sizes are proportional to exp(size_imbalance * z_i); bigger clusters
    get lower b_i (``size_correlation``), as in the question. The share of ``stim`` rows differs between
    clusters (``share_spread``, on the logit scale) and its latent score has sample correlation
    ``share_correlation`` with the cluster effects: at the default -0.9, clusters with high b_i have
    fewer ``stim`` rows. That breaks the random-intercept model's assumption that b_i is independent of
    the regressors (a contextual effect, notebook 03) and pulls pooled OLS's slope away from the truth;
    ``share_correlation=0`` keeps the assumption.

    Parameters
    ----------
    sigma_group : float, default 0.31
        The between-cluster SD sigma_b.
    size_imbalance : float, default 1.5
        The SD of log cluster size: 0 gives equal sizes.
    seed : int, default 0
        Fixes every random draw; the same seed at other slider values reuses the same draws.
    **shape
        Overrides of :data:`QUESTION_SHAPE` (``n_obs``, ``n_clusters``, ``intercept``, ``slope``,
        ``sigma_resid``, ``size_correlation``, ``share_stim``, ``share_spread``,
        ``share_correlation``, ``min_size``).

    Returns
    -------
    SimulatedStats

    Examples
    --------
    >>> sim = simulate_question_stats(0.31, 1.5)
    >>> sim.stats.n_obs, sim.stats.n_groups, sim.term_names
    (326362, 24, ['Intercept', 'condition[T.stim]'])
    """
    unknown = set(shape) - set(QUESTION_SHAPE)
    if unknown:
        raise TypeError(
            f"Unknown setting(s) {sorted(unknown)}; choose from {sorted(QUESTION_SHAPE)}."
        )
    cfg = {**QUESTION_SHAPE, **shape}
    sigma_group = float(sigma_group)
    size_imbalance = float(size_imbalance)
    if not (np.isfinite(sigma_group) and sigma_group >= 0):
        raise ValueError(f"sigma_group must be >= 0, got {sigma_group!r}.")
    if not (np.isfinite(size_imbalance) and size_imbalance >= 0):
        raise ValueError(f"size_imbalance must be >= 0, got {size_imbalance!r}.")
    rho_s = float(cfg["share_correlation"])
    if not (np.isfinite(rho_s) and -1.0 <= rho_s <= 1.0):
        raise ValueError(f"share_correlation must be between -1 and 1, got {rho_s!r}.")
    n_clusters, n_obs, min_size = int(cfg["n_clusters"]), int(cfg["n_obs"]), int(cfg["min_size"])
    if n_clusters < 2 or n_obs < n_clusters * min_size:
        raise ValueError(
            f"n_obs={n_obs} is too small for {n_clusters} clusters of {min_size} rows."
        )
    draws = _draws(int(seed), n_clusters)
    sizes = _cluster_sizes(draws["z_size"], size_imbalance, n_obs, min_size)

    z_size = _standardise(draws["z_size"])
    rho = float(cfg["size_correlation"])
    z_b = rho * z_size + np.sqrt(1.0 - rho**2) * _standardise(draws["z_effect"])
    b = sigma_group * z_b
    z_s = _with_correlation(z_b, draws["z_share"], rho_s)
    share = float(cfg["share_stim"])
    logit = np.log(share / (1.0 - share)) + float(cfg["share_spread"]) * z_s
    n_stim = np.clip(np.rint(sizes / (1.0 + np.exp(-logit))), 1, sizes - 1).astype(np.int64)
    cells = np.column_stack([sizes - n_stim, n_stim])

    mu = float(cfg["intercept"]) + np.array([0.0, float(cfg["slope"])])
    sigma = float(cfg["sigma_resid"])
    n_cell = cells.astype(float)
    cell_sum = n_cell * (mu[None, :] + b[:, None]) + sigma * np.sqrt(n_cell) * draws["z_sum"]
    dof = np.maximum(n_cell - 1.0, 1.0)
    squares = sigma**2 * scipy.stats.chi2.ppf(draws["u_squares"], dof)
    squares = np.where(n_cell >= 2, squares, 0.0)
    safe = np.where(n_cell > 0, n_cell, 1.0)

    n_total = float(sizes.sum())
    stim_total = float(n_stim.sum())
    stats = stats_from_cross_products(
        counts=sizes,
        sum_x=np.column_stack([sizes, n_stim]).astype(float),
        sum_y=cell_sum.sum(axis=1),
        xtx=np.array([[n_total, stim_total], [stim_total, stim_total]]),
        xty=np.array([cell_sum.sum(), cell_sum[:, 1].sum()]),
        yty=float((squares + cell_sum**2 / safe).sum()),
        term_names=TERM_NAMES,
    )
    width = len(str(n_clusters))
    return SimulatedStats(
        stats=stats,
        term_names=list(TERM_NAMES),
        cluster_labels=[f"c{k + 1:0{max(width, 2)}d}" for k in range(n_clusters)],
        cell_counts=cells,
        cell_sums=cell_sum,
        cell_squares=squares,
        cluster_effects=b,
        truth=pd.Series(
            [cfg["intercept"], cfg["slope"]], index=TERM_NAMES, name="truth", dtype=float
        ),
        sigma_group=sigma_group,
        sigma_resid=sigma,
        size_imbalance=size_imbalance,
        share_correlation=rho_s,
    )


@dataclass(frozen=True, eq=False)
class ExplorerState:
    """Everything one slider position of the explorer shows: computed numbers, no drawing.

    Attributes
    ----------
    sigma_group, size_imbalance, share_correlation : float
        The slider values.
    term_names : list of str
    thetas : ndarray, shape (T,)
        The paths' grid of theta = sigma_b / sigma: sorted, from 0 (pooled OLS), containing ``theta_hat``.
    estimates, std_errors : ndarray, shape (T, p)
        The GLS fixed effects along ``thetas`` and their standard errors (one column per term).
    ols, ols_se : ndarray, shape (p,)
        Pooled OLS (theta = 0) and its classical standard errors.
    fe_params, bse : ndarray, shape (p,)
        The REML fit and its standard errors.
    theta_hat : float
    icc : float
        sigma_b^2 / (sigma_b^2 + sigma^2) of the fit.
    limit : ndarray, shape (p,)
        The fixed effects as theta -> infinity.
    truth : ndarray, shape (p,)
        The fixed effects the data were simulated from.
    sizes, shrinkage, weight_lmm, weight_ols : ndarray, shape (J,)
        Per cluster: n_i; k_i, the share of its deviation that the conditional mode keeps; its share of
        the mixed model's and of the pooled OLS intercept.
    """

    sigma_group: float
    size_imbalance: float
    share_correlation: float
    term_names: list
    thetas: np.ndarray
    estimates: np.ndarray
    std_errors: np.ndarray
    ols: np.ndarray
    ols_se: np.ndarray
    fe_params: np.ndarray
    bse: np.ndarray
    theta_hat: float
    icc: float
    limit: np.ndarray
    truth: np.ndarray
    sizes: np.ndarray
    shrinkage: np.ndarray
    weight_lmm: np.ndarray
    weight_ols: np.ndarray


def explorer_state(
    sigma_group: float, size_imbalance: float, seed: int = 0, **shape
) -> ExplorerState:
    """Compute what the explorer shows at one slider position (the computing half of a redraw).

    Simulated sufficient statistics (:func:`simulate_question_stats`), the REML fit, the fixed-effect
    paths, their theta -> infinity limits and the per-cluster shrinkage and weights: about 10 ms at the
    question's scale, whatever the number of rows.

    Parameters
    ----------
    sigma_group : float
        The between-cluster SD sigma_b.
    size_imbalance : float
        The SD of log cluster size.
    seed : int, default 0
    **shape
        Overrides of :data:`QUESTION_SHAPE`; ``share_correlation`` is the third slider.

    Returns
    -------
    ExplorerState

    Examples
    --------
    >>> state = explorer_state(0.31, 1.5)
    >>> state.estimates.shape[1], len(state.sizes), int(state.sizes.sum())
    (2, 24, 326362)
    >>> bool(state.thetas[0] == 0 and state.theta_hat in state.thetas)
    True
    """
    sim = simulate_question_stats(sigma_group, size_imbalance, seed, **shape)
    stats, names = sim.stats, sim.term_names
    fit = fit_lmm_from_stats(stats, names, sim.cluster_labels, group="cluster", response="pSHP2")
    grid = np.unique(np.append(_PATH_THETAS, fit.theta))
    path = fixed_effect_path(stats, names, grid)
    # the path's columns, one per term, sorted by theta (plain arrays: pandas filtering costs ms)
    terms = path["term"].to_numpy()
    columns = path[["theta", "estimate", "std_error"]].to_numpy(dtype=float)
    parts = []
    for term in names:
        part = columns[terms == term]
        parts.append(part[np.argsort(part[:, 0], kind="stable")])
    table = cluster_table(stats, fit.theta, sim.cluster_labels, fit.fe_params)
    ols_se = np.sqrt(
        np.diag(np.linalg.inv(stats.r_factor.T @ stats.r_factor))
        * stats.ete
        / (stats.n_obs - stats.n_params)
    )
    return ExplorerState(
        sigma_group=sim.sigma_group,
        size_imbalance=sim.size_imbalance,
        share_correlation=sim.share_correlation,
        term_names=list(names),
        thetas=parts[0][:, 0],
        estimates=np.column_stack([part[:, 1] for part in parts]),
        std_errors=np.column_stack([part[:, 2] for part in parts]),
        ols=np.asarray(stats.beta_ols, dtype=float).copy(),
        ols_se=ols_se,
        fe_params=fit.fe_params.to_numpy(dtype=float),
        bse=fit.bse.to_numpy(dtype=float),
        theta_hat=float(fit.theta),
        icc=float(fit.sigma2_group / (fit.sigma2_group + fit.sigma2_resid)),
        limit=large_theta_limit(stats, names).to_numpy(dtype=float),
        truth=sim.truth.to_numpy(dtype=float),
        sizes=table["n"].to_numpy(dtype=float),
        shrinkage=table["shrinkage"].to_numpy(dtype=float),
        weight_lmm=table["weight_lmm"].to_numpy(dtype=float),
        weight_ols=table["weight_ols"].to_numpy(dtype=float),
    )


def _plain_ticks(value, _position=None) -> str:
    return f"{value:g}"


def _size_ticks(low: float, high: float) -> np.ndarray:
    """Round cluster sizes inside [low, high] for a log axis: decades, else 1-3 or 1-2-5 steps."""
    exponents = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    for steps in ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0)):
        ticks = np.array([s * 10.0**e for e in exponents for s in steps])
        ticks = ticks[(ticks >= low) & (ticks <= high)]
        if len(ticks) >= 2:
            return ticks
    return np.array([low, high])


# The two path panels: (title, y label); the weight panel's series; the figure's layout and text sizes,
# chosen for the site's content column (784 CSS px): at 100 dpi the figure is 760 px wide and shown at
# its own size, so a 9 pt tick label is 12.5 px high.
_PATH_PANELS = (
    ("Intercept along θ", "intercept (unstim mean)"),
    ("Condition effect along θ", "stim − unstim"),
)
_WEIGHT_LABELS = (
    "kᵢ: share of its deviation kept",
    "weight in the LMM intercept × J",
    "weight in the OLS intercept × J",
)
_FIGSIZE = (MAX_FIGURE_WIDTH, 7.0)
_FONT = {"tick": 9.0, "label": 9.5, "title": 10.5, "legend": 9.0, "numbers": 9.0}


@dataclass(eq=False)
class ExplorerArtists:
    """The explorer figure and the artists a slider move changes (see :func:`update_explorer`).

    Attributes
    ----------
    fig : matplotlib.figure.Figure
    paths : list of helpers.plots.PathArtists
        One per path panel (intercept, condition effect).
    intervals : list of LineCollection
        Per path panel, the 95% intervals of pooled OLS (at theta = 0) and of the mixed model (at
        theta-hat), gid ``"intervals"``.
    caps : list of tuple of Line2D
        Per path panel, the lower and the upper caps of those intervals (gid ``"interval_caps"``).
    truths : list of Line2D
        Per path panel, the true value (gid ``"truth"``).
    weights : list of Line2D
        The weight panel's k_i, LMM weight x J and OLS weight x J against n_i, clusters sorted by size.
    title : matplotlib.text.Text
        The figure's title, which states the slider values, the ICC and theta-hat.
    numbers : matplotlib.text.Text
        Beside the weight panel: both fits' estimates with their 95% half-widths (gid ``"numbers"``).
    """

    fig: object
    paths: list
    intervals: list
    caps: list
    truths: list
    weights: list
    title: object
    numbers: object

    def changing_in_drawing_order(self) -> list:
        """The artists a slider move changes, in the order a full drawing paints them.

        Within each axes: the data, the frame (spines, drawn over the data) and the axes whose ticks
        follow the data (the y axes, and the x axis of the weight panel), by z-order as matplotlib
        sorts them; then the figure's texts (the title and the numbers).
        """
        ordered = []
        weight_ax = self.weights[0].axes
        for ax in self.fig.axes:
            if not ax.axison:  # the legend panel: nothing in it changes
                continue
            moving = [ax.yaxis, *ax.spines.values()]
            if ax is weight_ax:
                moving += [ax.xaxis, *self.weights]
            for path, bars, caps, truth in zip(
                self.paths, self.intervals, self.caps, self.truths, strict=True
            ):
                if path.ax is ax:
                    moving += [path.band, path.line, path.ols, path.ols_marker, path.limit]
                    moving += [path.theta_hat_rule, path.theta_hat, bars, *caps, truth]
            # the order of Axes.draw: a stable sort of the children by z-order
            moving = set(moving)
            children = [a for a in ax.get_children() if a in moving]
            ordered += sorted(children, key=lambda a: a.get_zorder())
        return ordered + [self.title, self.numbers]


def build_explorer(*, figsize=_FIGSIZE, dpi: float = 90) -> ExplorerArtists:
    """Build the explorer figure once, with its labels, legends and layout but without data.

    Two rows: the fixed-effect paths of the intercept and of the condition effect; below them, the
    clusters' shrinkage and weights, and beside it the legends and both fits' numbers. :func:`update_explorer`
    then puts a slider position's numbers into it. The layout is fixed here (no constrained layout, no
    automatic title placement): moving the sliders only moves data, axis limits, y ticks and two texts.

    Parameters
    ----------
    figsize : tuple of float, default (7.6, 7.0)
        The default fits the site's content column at 100 dpi, shown at its own size.
    dpi : float, default 90

    Returns
    -------
    ExplorerArtists

    Examples
    --------
    >>> artists = build_explorer()
    >>> [ax.get_title() for ax in artists.fig.axes]
    ['Intercept along θ', 'Condition effect along θ', 'Shrinkage and cluster weights', '']
    """
    fig = new_figure(figsize=figsize, dpi=dpi)[0]
    fig.delaxes(fig.axes[0])
    grid = fig.add_gridspec(
        2, 2, left=0.1, right=0.985, top=0.9, bottom=0.075, wspace=0.3, hspace=0.4
    )
    path_axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])]
    weight_ax = fig.add_subplot(grid[1, 0])
    key_ax = fig.add_subplot(grid[1, 1])
    paths, intervals, caps, truths = [], [], [], []
    for ax, (title, ylabel) in zip(path_axes, _PATH_PANELS, strict=True):
        path = build_path(ax, limit_label="θ → ∞", theta_hat_label="REML fit", se_multiplier=1.96)
        # the two fits with their 95% intervals: pooled OLS at theta = 0, the mixed model at theta-hat
        bars = ax.errorbar(
            [0.0, 1.0],
            [0.0, 0.0],
            yerr=[0.0, 0.0],
            fmt="none",
            ecolor="black",
            elinewidth=1.2,
            capsize=4,
        )
        (lines,) = bars.lines[2]
        lines.set_gid("intervals")
        for cap in bars.lines[1]:
            cap.set_gid("interval_caps")
        truth = ax.axhline(0.0, color="black", linewidth=0.9, linestyle="-.")
        truth.set_gid("truth")
        ax.set_xscale("symlog", linthresh=float(_PATH_THETAS[1]), linscale=1.0)
        ax.set_xticks([0.0, 1e-3, 1e-1, 10.0], ["0", "0.001", "0.1", "10"])
        ax.set_title(title, fontsize=_FONT["title"])
        ax.set_xlabel(r"$\theta = \sigma_b / \sigma$  (0 = pooled OLS)", fontsize=_FONT["label"])
        _fixed_ylabel(ax, ylabel, -0.2)
        paths.append(path)
        intervals.append(lines)
        caps.append(tuple(bars.lines[1]))
        truths.append(truth)

    # the weight panel: one line per quantity through the clusters sorted by size, open markers so
    # that coinciding values stay visible
    weights = [
        weight_ax.plot(
            [], [], ":o", color="0.3", markersize=7, markerfacecolor="none", linewidth=1.2, zorder=3
        )[0],
        weight_ax.plot(
            [], [], "-^", color=COLORS["lmm"], markersize=5, markerfacecolor="none", linewidth=1.4
        )[0],
        weight_ax.plot(
            [], [], "--s", color=COLORS["ols"], markersize=4, markerfacecolor="none", linewidth=1.4
        )[0],
    ]
    weight_ax.set_xscale("log")
    weight_ax.set_xlabel("cluster size nᵢ (log axis)", fontsize=_FONT["label"])
    _fixed_ylabel(weight_ax, "kᵢ;  weight × J (1 = equal share)", -0.14)
    weight_ax.set_title("Shrinkage and cluster weights", fontsize=_FONT["title"])

    # the legends and the numbers, in the fourth cell
    key_ax.set_axis_off()
    path = paths[1]
    entries = [
        (path.band, "95% band: ±1.96 SE at each θ"),
        (path.line, "GLS estimate β̂(θ)"),
        (path.ols, "pooled OLS (θ = 0)"),
        (path.theta_hat, "REML fit (at θ̂)"),
        (intervals[1], "95% intervals of OLS and REML"),
        (path.limit, "θ → ∞ limit"),
        (truths[1], "truth (simulated)"),
    ]
    top = key_ax.legend(
        [handle for handle, _ in entries],
        [label for _, label in entries],
        title="Top panels",
        loc="upper left",
        bbox_to_anchor=(-0.08, 1.17),
        labelspacing=0.3,
        fontsize=_FONT["legend"],
        title_fontsize=_FONT["legend"],
        frameon=False,
        borderaxespad=0.0,
        handlelength=2.2,
        alignment="left",
    )
    key_ax.add_artist(top)
    key_ax.legend(
        weights,
        list(_WEIGHT_LABELS),
        title="Left panel, per cluster",
        loc="upper left",
        bbox_to_anchor=(-0.08, 0.5),
        labelspacing=0.3,
        fontsize=_FONT["legend"],
        title_fontsize=_FONT["legend"],
        frameon=False,
        borderaxespad=0.0,
        handlelength=2.2,
        alignment="left",
    )
    # the numbers' fixed words are drawn once; only the numbers change, in the same monospace grid
    fixed = {"fontsize": _FONT["numbers"], "family": "monospace", "va": "bottom", "ha": "left"}
    fig.text(0.535, 0.008, _numbers_text(None), **fixed).set_gid("numbers_frame")
    numbers = fig.text(0.535, 0.008, "", **fixed)
    numbers.set_gid("numbers")
    title = fig.suptitle("", fontsize=_FONT["title"], y=0.985)
    # Few, fixed ticks: creating and laying out tick labels is most of the cost of drawing.
    for ax in (*path_axes, weight_ax):
        ax.minorticks_off()
        ax.tick_params(labelsize=_FONT["tick"])
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 5, 10]))
        ax.yaxis.set_major_formatter(_plain_ticks)
    return ExplorerArtists(
        fig=fig,
        paths=paths,
        intervals=intervals,
        caps=caps,
        truths=truths,
        weights=weights,
        title=title,
        numbers=numbers,
    )


def _fixed_ylabel(ax, text: str, x: float) -> None:
    """A y label at a fixed place left of the axes, drawn once with the unchanging part of the figure.

    The axis's own label (which moves with the tick labels' width and is redrawn with the axis on every
    slider move) holds the same text but is hidden.
    """
    ax.set_ylabel(text, fontsize=_FONT["label"]).set_visible(False)
    ax.text(
        x,
        0.5,
        text,
        transform=ax.transAxes,
        rotation=90,
        ha="center",
        va="center",
        fontsize=_FONT["label"],
    ).set_gid("ylabel")


def _numbers_text(state: ExplorerState | None) -> str:
    """Both fits' estimates with their 95% half-widths, aligned in columns of a monospace font.

    With ``state`` None: the fixed words only (heading, column and row names), blanks where the
    numbers go; with a state: the numbers only, blanks where the words go.
    """
    words = state is None
    rows = ["± is the 95% half-width, 1.96 SE", f"{'':4}{'intercept':>16}{'stim effect':>17}"]
    if not words:
        rows = [" " * len(row) for row in rows]
    blank = 0.0, 0.0
    for name, est, se in (
        ("OLS", *(blank if words else (state.ols, state.ols_se))),
        ("LMM", *(blank if words else (state.fe_params, state.bse))),
        ("true", *(blank if words else (state.truth, None))),
    ):
        if words:
            rows.append(name)
            continue
        if se is None:
            cells = [f"{e:.3f}" for e in est]
        else:
            cells = [f"{e:.3f} ± {1.96 * h:.3f}" for e, h in zip(est, se, strict=True)]
        cells = [c.replace("-", "−") for c in cells]
        rows.append(f"{'':4}{cells[0]:>16}{cells[1]:>17}")
    return "\n".join(rows)


def update_explorer(artists: ExplorerArtists, state: ExplorerState) -> None:
    """Put one slider position into a figure from :func:`build_explorer` (no new artists).

    Axis limits are computed from ``state``, never autoscaled: each path panel frames its path, both
    asymptotes, both 95% intervals and the truth; the weight panel frames the cluster sizes on a log
    axis with round ticks.

    Parameters
    ----------
    artists : ExplorerArtists
    state : ExplorerState
        From :func:`explorer_state`.

    Examples
    --------
    >>> artists = build_explorer()
    >>> update_explorer(artists, explorer_state(0.31, 1.5, n_obs=2_000))
    >>> artists.title.get_text()[11:50]
    '= 0.31, size imbalance 1.50, ρ = −0.90:'
    """
    theta_hat = state.theta_hat
    right = 1.05 * max(float(_PATH_THETAS[-1]), theta_hat)
    for k, path in enumerate(artists.paths):
        low, high = update_path(
            path,
            state.thetas,
            state.estimates[:, k],
            state.std_errors[:, k],
            ols=float(state.ols[k]),
            limit=float(state.limit[k]),
            theta_hat=theta_hat,
        )
        centres = np.array([state.ols[k], state.fe_params[k]])
        half = 1.96 * np.array([state.ols_se[k], state.bse[k]])
        xs = [0.0, theta_hat]
        artists.intervals[k].set_segments(
            [[(x, c - h), (x, c + h)] for x, c, h in zip(xs, centres, half, strict=True)]
        )
        lower_caps, upper_caps = artists.caps[k]
        lower_caps.set_data(xs, centres - half)
        upper_caps.set_data(xs, centres + half)
        truth = float(state.truth[k])
        artists.truths[k].set_ydata([truth, truth])
        # also frame the truth and the OLS interval, which the path's own frame may leave out
        outer = [low, high, truth, *(centres - half), *(centres + half)]
        if min(outer) < low or max(outer) > high:
            pad = 0.05 * (max(outer) - min(outer))
            low, high = min(outer) - pad, max(outer) + pad
        path.ax.set_ylim(low, high)
        path.ax.set_xlim(-2e-4, right)

    n_clusters = len(state.sizes)
    order = np.argsort(state.sizes, kind="stable")
    ys = (state.shrinkage, state.weight_lmm * n_clusters, state.weight_ols * n_clusters)
    for line, y in zip(artists.weights, ys, strict=True):
        line.set_data(state.sizes[order], y[order])
    ax = artists.weights[0].axes
    top = max(state.weight_ols.max(), state.weight_lmm.max()) * n_clusters
    ax.set_ylim(0.0, max(1.5, 1.1 * float(top)))
    # at least 0.8 decades, so that round ticks always fall inside
    lo, hi = np.log10(state.sizes.min()), np.log10(state.sizes.max())
    pad = max(0.05 * (hi - lo), (0.8 - (hi - lo)) / 2)
    ax.set_xlim(10.0 ** (lo - pad), 10.0 ** (hi + pad))
    ticks = _size_ticks(10.0 ** (lo - pad), 10.0 ** (hi + pad))
    ax.set_xticks(ticks, [f"{v / 1000:g}k" if v >= 1000 else f"{v:g}" for v in ticks])
    ax.minorticks_off()

    rho = f"{state.share_correlation:.2f}".replace("-", "−")
    artists.title.set_text(
        f"$\\sigma_b$ = {state.sigma_group:.2f}, size imbalance {state.size_imbalance:.2f}, "
        f"ρ = {rho}: ICC {state.icc:.3f}, REML $\\hat\\theta$ = {theta_hat:.3g}"
    )
    artists.numbers.set_text(_numbers_text(state))


def explorer_figure(sigma_group: float, size_imbalance: float, seed: int = 0, **shape):
    """Draw one position of the explorer's sliders (the pure function behind :func:`explorer`).

    It builds a new figure (:func:`build_explorer`) and puts the position into it
    (:func:`update_explorer`); the live explorer keeps one such figure and only updates it.

    Parameters
    ----------
    sigma_group : float
        The between-cluster SD sigma_b.
    size_imbalance : float
        The SD of log cluster size.
    seed : int, default 0
    **shape
        Overrides of :data:`QUESTION_SHAPE`.

    Returns
    -------
    matplotlib.figure.Figure
        Two rows of panels. Above, the paths of the intercept and of the condition effect against theta, each with a
        95% band, the pooled OLS estimate (theta = 0) and the REML fit (theta-hat) marked with their 95%
        intervals, the theta -> infinity limit and the truth. Below, per cluster, the shrinkage k_i and
        the cluster's weight in the OLS and in the mixed-model intercept; beside it the legends and both
        fits' estimates with their 95% half-widths.

    Examples
    --------
    >>> fig = explorer_figure(0.31, 1.5)
    >>> [ax.get_title() for ax in fig.axes][2]
    'Shrinkage and cluster weights'
    """
    artists = build_explorer(dpi=FIGURE_DPI)
    update_explorer(artists, explorer_state(sigma_group, size_imbalance, seed, **shape))
    return artists.fig


def figure_caption(
    sigma_group: float,
    size_imbalance: float,
    share_correlation: float = QUESTION_SHAPE["share_correlation"],
) -> str:
    """The live explorer's caption: which slider position the figure below the sliders shows.

    Examples
    --------
    >>> figure_caption(0.31, 1.5)[:89]
    'Explorer figure at sigma_group = 0.31, size_imbalance = 1.50, share_correlation = -0.90: '
    """
    return (
        f"Explorer figure at sigma_group = {sigma_group:.2f}, size_imbalance = {size_imbalance:.2f}, "
        f"share_correlation = {share_correlation:.2f}: the fixed-effect paths of the intercept and of "
        "the condition effect, and the clusters' shrinkage and weights."
    )


def _error_output(exc: BaseException) -> dict:
    import traceback

    return {
        "output_type": "error",
        "ename": type(exc).__name__,
        "evalue": str(exc),
        "traceback": traceback.format_exception(exc),
    }


class LiveFigure:
    """One explorer figure, built once, then updated and encoded as PNG for each slider move.

    A move changes data, axis limits, the y axes, the cluster-size axis and the figure's title; the
    panel titles, the legend and the theta axes stay put. So the figure is drawn in full once, without the artists that change, and
    that picture is kept; each move pastes it back and draws only the changing artists over it, in the
    order a full drawing would use (matplotlib's "blitting"). When the theta axes' limits change (a
    fit beyond the usual theta range), the kept picture is redrawn.

    Parameters
    ----------
    dpi : float, default 90
        The live figure is shown at its own size in JupyterLab: at 90 dpi it is 702 pixels wide and a
        9 pt tick label is 11 pixels high.
    compress_level : int, default 1
        zlib level of the PNG. For this figure, level 1 encodes in about two thirds of the time of
        level 6 (Pillow's default) at about the same size.

    Attributes
    ----------
    artists : ExplorerArtists
    state : ExplorerState or None
        The position shown last.
    background_draws : int
        How many times the unchanging part was drawn in full.

    Examples
    --------
    >>> live = LiveFigure()
    >>> png = live.render(explorer_state(0.31, 1.5, n_obs=2_000))
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", live.state.sigma_group
    (True, 0.31)
    """

    def __init__(self, dpi: float = 90, compress_level: int = 1):
        self.artists = build_explorer(dpi=dpi)
        self.compress_level = int(compress_level)
        self.state = None
        self.background_draws = 0
        self._background = None
        self._background_key = None
        self._changing = self.artists.changing_in_drawing_order()

    def render(self, state: ExplorerState) -> bytes:
        """Update the figure to ``state`` and return it as PNG bytes."""
        update_explorer(self.artists, state)
        fig = self.artists.fig
        canvas = fig.canvas
        key = tuple(path.ax.get_xlim() for path in self.artists.paths)
        if self._background is None or key != self._background_key:
            for artist in self._changing:
                artist.set_animated(True)  # left out of a full drawing
            try:
                canvas.draw()
            finally:
                for artist in self._changing:
                    artist.set_animated(False)
            self._background = canvas.copy_from_bbox(fig.bbox)
            self._background_key = key
            self.background_draws += 1
        else:
            canvas.restore_region(self._background)
        renderer = canvas.get_renderer()
        for artist in self._changing:
            artist.draw(renderer)
        png = _encode_png(canvas, self.compress_level)
        self.state = state
        return png


def _encode_png(canvas, compress_level: int) -> bytes:
    import PIL.Image

    width, height = canvas.get_width_height(physical=True)
    image = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="png", compress_level=compress_level)
    return buffer.getvalue()


class Explorer(ipywidgets.VBox):
    """Three sliders and an image of the explorer figure at their values.

    Each slider move runs ``explorer_state`` -> ``LiveFigure.render`` (update the persistent figure,
    encode it) -> the ``image`` widget's value; nothing else.

    Attributes
    ----------
    sigma_slider, imbalance_slider, share_slider : ipywidgets.FloatSlider
        The between-cluster SD, the cluster-size imbalance and the correlation of the cluster effects
        with the stim share. Each is named by its ``description`` (:data:`SLIDER_LABELS`), shown in
        full beside it (``description_width`` ``"initial"``: the label takes the room its text needs).
    image : ipywidgets.Image
        The figure, as PNG.
    caption : ipywidgets.HTML
        Below the figure: the slider position it shows (:func:`figure_caption`).
    output : ipywidgets.Output
        Empty, unless the latest redraw failed: then it shows the error.
    live : LiveFigure
        The persistent figure (``live.artists``) and the position it shows (``live.state``).
    redraw_count : int
        How many times the figure was redrawn (including the first drawing).
    last_error : Exception or None
        The exception of the latest redraw, if it failed; it is also shown in ``output``.
    """

    def __init__(
        self,
        sigma_group,
        size_imbalance,
        share_correlation,
        seed,
        dpi,
        continuous_update,
        **shape,
    ):
        self.seed = int(seed)
        self.dpi = dpi
        self.shape = dict(shape)
        self.redraw_count = 0
        self.last_error = None

        def slider(label, value, low, high, step):
            # The description names the slider; "initial" sizes its label to the text, so that it is
            # never cut to the default width with an ellipsis.
            return ipywidgets.FloatSlider(
                value=value,
                min=low,
                max=high,
                step=step,
                description=label,
                description_allow_html=True,
                readout_format=".2f",
                continuous_update=continuous_update,
                style={"description_width": "initial"},
                layout=ipywidgets.Layout(width="640px", max_width="100%"),
            )

        self.sigma_slider = slider(SLIDER_LABELS[0], sigma_group, 0.0, 1.0, 0.01)
        self.imbalance_slider = slider(SLIDER_LABELS[1], size_imbalance, 0.0, 2.5, 0.05)
        self.share_slider = slider(SLIDER_LABELS[2], share_correlation, -0.9, 0.9, 0.1)
        self.image = ipywidgets.Image(format="png")
        # What the figure shows, in words (an Image widget has no description or tooltip of its own:
        # setting ``tooltip`` on it breaks its view in the browser)
        self.caption = ipywidgets.HTML()
        self.output = ipywidgets.Output()
        self.live = LiveFigure(dpi=dpi)
        super().__init__(
            [
                self.sigma_slider,
                self.imbalance_slider,
                self.share_slider,
                self.image,
                self.caption,
                self.output,
            ]
        )
        for control in (self.sigma_slider, self.imbalance_slider, self.share_slider):
            control.observe(self._on_change, names="value")
        self.redraw()

    @property
    def sliders(self) -> tuple:
        """The three sliders, in the order of :data:`SLIDER_LABELS`."""
        return self.sigma_slider, self.imbalance_slider, self.share_slider

    def _on_change(self, change):
        self.redraw()

    def redraw(self):
        """Show the figure at the sliders' current values."""
        self.redraw_count += 1
        sigma, imbalance, rho = (control.value for control in self.sliders)
        try:
            state = explorer_state(
                sigma, imbalance, self.seed, **{**self.shape, "share_correlation": rho}
            )
            png = self.live.render(state)
        except Exception as exc:  # shown to the reader, never swallowed silently
            self.last_error = exc
            self.output.outputs = (_error_output(exc),)
            return
        self.last_error = None
        self.image.value = png
        self.caption.value = figure_caption(sigma, imbalance, rho)
        if self.output.outputs:
            self.output.outputs = ()


def explorer(
    *,
    sigma_group: float = 0.31,
    size_imbalance: float = 1.5,
    share_correlation: float = QUESTION_SHAPE["share_correlation"],
    seed: int = 0,
    dpi: int = 90,
    continuous_update: bool = False,
    **shape,
):
    """The live between-cluster-variance explorer (needs a running Python kernel).

    Three sliders set the between-cluster SD, the cluster-size imbalance and the correlation of the
    cluster effects with the stim share of a question-shaped data set (326,362 rows in 24 clusters by
    default). Each move recomputes the position from simulated sufficient statistics
    (:func:`explorer_state`, about 10 ms) and updates one persistent figure in place
    (:func:`update_explorer`) instead of drawing a new one; ``benchmarks/widget_redraw.py`` times both.

    Parameters
    ----------
    sigma_group : float, default 0.31
    size_imbalance : float, default 1.5
    share_correlation : float, default -0.9
        The correlation over clusters of b_i and the stim share; 0 keeps the model's assumption that
        the cluster effects are independent of the regressor (see :func:`simulate_question_stats`).
    seed : int, default 0
    dpi : int, default 90
    continuous_update : bool, default False
        Redraw while dragging (True) or on release (False).
    **shape
        Overrides of the other settings of :data:`QUESTION_SHAPE`.

    Returns
    -------
    ipywidgets.VBox
        An ``Explorer`` with attributes ``sigma_slider``, ``imbalance_slider``, ``share_slider`` (each
        named by its description), ``image``, ``caption``, ``output``, ``live``, ``redraw_count`` and
        ``last_error``.

    Examples
    --------
    >>> box = explorer(n_obs=2_000)
    >>> box.redraw_count, bytes(box.image.value[:4]) == b"\\x89PNG"
    (1, True)
    >>> box.share_slider.value = 0.0
    >>> box.redraw_count, box.last_error is None, box.live.state.share_correlation
    (2, True, 0.0)
    """
    return Explorer(
        sigma_group, size_imbalance, share_correlation, seed, dpi, continuous_update, **shape
    )


def _palette_png(png: bytes, colors: int = 128) -> bytes:
    """The PNG with its colours reduced to a palette (about a third of the size), text chunks kept."""
    import PIL.Image
    from PIL.PngImagePlugin import PngInfo

    with PIL.Image.open(io.BytesIO(png)) as image:
        image.load()
        info = PngInfo()
        for key, value in image.text.items():
            info.add_text(key, value)
        reduced = image.convert("RGB").quantize(
            colors=colors, method=PIL.Image.Quantize.MEDIANCUT, dither=PIL.Image.Dither.NONE
        )
    buffer = io.BytesIO()
    reduced.save(buffer, format="png", optimize=True, pnginfo=info)
    return buffer.getvalue()


# The kernel-free sliders' labels: the live sliders' (SLIDER_LABELS), by the key of static_explorer's grid
_STATIC_LABELS = dict(zip(("sigma", "imbalance", "rho"), SLIDER_LABELS, strict=True))

_STATIC_SCRIPT = """
(function () {
  var root = document.getElementById(%(uid)s);
  if (!root) { return; }
  var frames = JSON.parse(root.querySelector("script.mme-static-frames").textContent);
  var values = %(values)s;
  var sliders = root.querySelectorAll("input.mme-static-slider");
  var labels = root.querySelectorAll(".mme-static-value");
  var image = root.querySelector("img.mme-static-frame");
  function update() {
    var index = 0;
    for (var d = 0; d < sliders.length; d++) {
      var k = parseInt(sliders[d].value, 10);
      index = index * values[d].length + k;
      labels[d].textContent = values[d][k];
    }
    image.src = frames[index];
    image.setAttribute("data-frame", String(index));
  }
  // Arrow, Home, End and Page keys move the slider; JupyterLab must not also see them (it would move
  // the cell selection away from the slider). Other keys (Shift+Enter, ...) still reach it.
  var moves = /^(Arrow(Left|Right|Up|Down)|Home|End|PageUp|PageDown)$/;
  function keep(event) { if (moves.test(event.key)) { event.stopPropagation(); } }
  for (var d = 0; d < sliders.length; d++) {
    sliders[d].addEventListener("input", update);
    sliders[d].addEventListener("change", update);
    sliders[d].addEventListener("keydown", keep);
    sliders[d].addEventListener("keyup", keep);
  }
})();
"""


def static_explorer(
    sigma_groups=(0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.31, 0.4, 0.5, 0.65, 0.8, 1.0),
    size_imbalances=None,
    seed: int = 0,
    *,
    share_correlations=None,
    size_imbalance: float = 1.5,
    share_correlation: float = QUESTION_SHAPE["share_correlation"],
    default_sigma_group: float = 0.31,
    dpi: int = 100,
    **shape,
):
    """The kernel-free twin of :func:`explorer`: pre-rendered frames behind HTML range inputs.

    One frame per combination of the sliders' values, so the page grows with their product: each frame
    is about 35 kB.

    Parameters
    ----------
    sigma_groups : sequence of float
        The between-cluster SDs of the frames (the first slider).
    size_imbalances : sequence of float, optional
        A slider over these imbalances. Without it the frames are at ``size_imbalance``.
    seed : int, default 0
    share_correlations : sequence of float, optional
        A slider over these correlations of the cluster effects with the stim share (for example
        ``[-0.9, 0.0]``: as in the live explorer's default, and switched off). Without it the frames
        are at ``share_correlation``.
    size_imbalance : float, default 1.5
        The imbalance of the frames when ``size_imbalances`` is None, and that slider's start.
    share_correlation : float, default -0.9
        The correlation of the frames when ``share_correlations`` is None, and that slider's start.
    default_sigma_group : float, default 0.31
        The first slider's start (the closest grid value).
    dpi : int, default 100
        :data:`helpers.plots.FIGURE_DPI`: the frames are 760 pixels wide, shown at their own size in the
        site's content column. Each frame is stored with a palette of 128 colours.
    **shape
        Overrides of the other settings of :data:`QUESTION_SHAPE`.

    Returns
    -------
    IPython.display.HTML
        Self-contained (frames embedded as base64 PNG, no external URLs). The range inputs carry the CSS
        class ``mme-static-slider``, a ``<label>`` and an ``aria-label`` naming them; the image has the
        class ``mme-static-frame``, the value labels ``mme-static-value``; the enclosing ``div`` has a
        fresh ``id`` on every call.

    Examples
    --------
    >>> page = static_explorer([0.1, 0.3], share_correlations=[-0.9, 0.0], n_obs=2_000)
    >>> page.data.count('class="mme-static-slider"'), "://" in page.data
    (2, False)
    """
    from IPython.display import HTML

    # (label, values, start) per slider; the frames run over the product, the last slider fastest
    grid = [("sigma", [float(v) for v in sigma_groups], default_sigma_group)]
    fixed = []
    for key, values, value, name in (
        ("imbalance", size_imbalances, size_imbalance, "cluster-size imbalance"),
        ("rho", share_correlations, share_correlation, "correlation ρ"),
    ):
        if values is None:
            fixed.append(f"{name} fixed at " + f"{value:.2f}".replace("-", "−"))
        else:
            grid.append((key, [float(v) for v in values], value))
    if any(len(values) == 0 for _, values, _ in grid):
        raise ValueError("Each slider needs at least one value.")
    keys = [key for key, _, _ in grid]
    frames = []
    for combination in itertools.product(*(values for _, values, _ in grid)):
        at = {
            "imbalance": size_imbalance,
            "rho": share_correlation,
            **dict(zip(keys, combination, strict=True)),
        }
        fig = explorer_figure(
            at["sigma"], at["imbalance"], seed, **{**shape, "share_correlation": at["rho"]}
        )
        png = _palette_png(figure_to_png(fig, dpi=dpi))
        frames.append("data:image/png;base64," + base64.b64encode(png).decode())
    starts = [int(np.argmin(np.abs(np.asarray(values) - start))) for _, values, start in grid]
    index = 0
    for (_, values, _), start in zip(grid, starts, strict=True):
        index = index * len(values) + start
    uid = f"mme-static-{uuid.uuid4().hex[:12]}"
    shown = [[f"{v:.2f}".replace("-", "−") for v in values] for _, values, _ in grid]
    controls = []
    for d, (key, start) in enumerate(zip(keys, starts, strict=True)):
        label = _STATIC_LABELS[key]
        plain = html.escape(re.sub(r"<[^>]+>", "", label), quote=True)
        controls.append(
            f'<div class="mme-static-control" style="margin:0.2em 0">'
            f'<label for="{uid}-slider{d}" style="display:inline-block;min-width:20em">{label}</label> '
            f'<input type="range" class="mme-static-slider" id="{uid}-slider{d}" data-dim="{d}" '
            f'aria-label="{plain}" min="0" max="{len(grid[d][1]) - 1}" step="1" value="{start}" '
            f'style="vertical-align:middle"> '
            f'<output class="mme-static-value" for="{uid}-slider{d}">{shown[d][start]}</output></div>'
        )
    fixed_note = f" ({'; '.join(fixed)})" if fixed else ""
    alt = "Explorer figure: fixed-effect paths, shrinkage and OLS versus mixed-model estimates"
    body = (
        f'<div class="mme-static-explorer" id="{uid}" style="font-family:sans-serif">'
        f'<p class="mme-static-note"><em>{html.escape(STATIC_NOTE)}</em>{html.escape(fixed_note)}</p>'
        + "".join(controls)
        + f'<img class="mme-static-frame" data-frame="{index}" src="{frames[index]}" '
        f'alt="{alt}" style="max-width:100%;height:auto">'
        f'<script type="application/json" class="mme-static-frames">{json.dumps(frames)}</script>'
        f"<script>{_STATIC_SCRIPT % {'uid': json.dumps(uid), 'values': json.dumps(shown)}}</script>"
        "</div>"
    )
    return HTML(body)
