"""The between-cluster-variance explorer: a live widget and its kernel-free twin.

Everything that computes or draws is a pure function, tested on its own:

- :func:`simulate_question_stats` simulates the sufficient statistics of a data set shaped like the
  question (326,362 rows in 24 clusters, a two-level condition) without making any rows;
- :func:`explorer_figure` draws one slider position from them;
- :func:`explorer` and :func:`static_explorer` only wrap :func:`explorer_figure`: the first in live
  ipywidgets sliders (needs a kernel), the second in frames pre-rendered over a grid of slider values and
  driven by a plain HTML range input (works in a static page).

Why no rows: the random-intercept likelihood depends on the data only through the cluster counts, the
per-cluster sums and the global cross-products. For a cluster-by-condition cell with n rows drawn from
N(mu, sigma^2), the sum is exactly N(n mu, n sigma^2) and the within-cell sum of squares exactly
sigma^2 chi-square(n - 1), independently. Drawing those 2 x 24 pairs replaces 326,362 draws, so one slider
move costs milliseconds of computing; the rest is drawing.

Common random numbers: every random draw is made once from ``seed`` (as standard normals and uniforms) and
then transformed, so moving a slider changes only what that slider controls. Changing the between-cluster
SD rescales the same cluster effects; changing the imbalance resizes the same clusters.
"""

from __future__ import annotations

import base64
import functools
import html
import json
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
from .plots import COLORS, draw_path, figure_to_png, new_figure

__all__ = [
    "QUESTION_SHAPE",
    "SimulatedStats",
    "simulate_question_stats",
    "explorer_figure",
    "explorer",
    "Explorer",
    "static_explorer",
    "STATIC_NOTE",
]

#: The question's shape and the simulation's fixed settings (the two slider quantities are arguments).
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
    "Pre-rendered: this slider works without a kernel. "
    "The live sliders below need a running Python kernel (JupyterLab)."
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
    get lower b_i (``size_correlation``) and a different share of ``stim`` rows (``share_spread``,
    ``share_correlation``), as in the question, so pooled OLS and the mixed model disagree.

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
    rho_s = float(cfg["share_correlation"])
    z_s = rho_s * z_b + np.sqrt(1.0 - rho_s**2) * draws["z_share"]
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
    )


def _explorer_parts(sigma_group, size_imbalance, seed, **shape):
    """The computing half of :func:`explorer_figure` (timed separately by the benchmark)."""
    sim = simulate_question_stats(sigma_group, size_imbalance, seed, **shape)
    fit = fit_lmm_from_stats(
        sim.stats, sim.term_names, sim.cluster_labels, group="cluster", response="pSHP2"
    )
    grid = _PATH_THETAS if fit.theta == 0 else np.sort(np.append(_PATH_THETAS, fit.theta))
    path = fixed_effect_path(sim.stats, sim.term_names, grid)
    limits = large_theta_limit(sim.stats, sim.term_names)
    table = cluster_table(sim.stats, fit.theta, sim.cluster_labels, fit.fe_params)
    return sim, fit, path, limits, table


def _plain_ticks(value, _position=None) -> str:
    return f"{value:g}"


_LEGEND = (
    ("band", "95% band"),
    ("path", "GLS estimate β(θ)"),
    ("ols", "pooled OLS (θ = 0)"),
    ("theta_hat", "REML fit"),
    ("limit", "θ → ∞"),
    ("truth", "truth"),
)


def _by_gid(ax, gid):
    return next(a for a in ax.get_children() if a.get_gid() == gid)


def _draw_explorer(sim, fit, path, limits, table, *, figsize=(10.5, 4.2), dpi=72):
    """The drawing half of :func:`explorer_figure`.

    Redrawn on every slider move, so it avoids what is slow in matplotlib: extra panels, minor ticks,
    automatic tick and title placement, and mathtext (labels are plain Unicode).
    """
    fig, axes = new_figure(1, 3, figsize=figsize, dpi=dpi)
    fig.subplots_adjust(left=0.065, right=0.99, top=0.74, bottom=0.15, wspace=0.3)
    theta_hat = fit.theta
    ols_se = np.sqrt(
        np.diag(np.linalg.inv(sim.stats.r_factor.T @ sim.stats.r_factor))
        * sim.stats.ete
        / (sim.stats.n_obs - sim.stats.n_params)
    )
    for k, (ax, term, title, ylabel) in enumerate(
        (
            (axes[0], "Intercept", "Intercept along θ", "Intercept (unstim mean)"),
            (axes[1], "condition[T.stim]", "Condition effect along θ", "stim − unstim"),
        )
    ):
        ols = float(sim.stats.beta_ols[k])
        draw_path(
            ax,
            path,
            term,
            ols=ols,
            limit=float(limits[term]),
            limit_label="θ → ∞",
            theta_hat=theta_hat,
            legend=False,
            se_multiplier=1.96,
        )
        # the two fits with their 95% intervals: pooled OLS at theta = 0, the mixed model at theta-hat
        bars = ax.errorbar(
            [0.0, theta_hat],
            [ols, float(fit.fe_params[term])],
            yerr=1.96 * np.array([ols_se[k], float(fit.bse[term])]),
            fmt="none",
            ecolor="black",
            elinewidth=1.2,
            capsize=4,
        )
        bars.lines[2][0].set_gid("intervals")
        ax.axhline(sim.truth[term], color="black", linewidth=0.8, linestyle="-.").set_gid("truth")
        ax.set_title(title, fontsize="medium", y=1.0)
        ax.set_xlabel("θ = σ_b / σ (0 = pooled OLS)")
        ax.set_ylabel(ylabel)
        ax.set_xticks([0.0, 1e-3, 1e-1, 10.0], ["0", "0.001", "0.1", "10"])
        ax.set_xlim(-2e-4, ax.get_xlim()[1])

    ax = axes[2]
    n = table["n"].to_numpy()
    ax.plot(
        n,
        table["shrinkage"].to_numpy(),
        "o",
        color=COLORS["lmm"],
        markersize=5,
    )
    ax.plot(
        n,
        table["weight_lmm"].to_numpy() * len(n),
        "^",
        color="0.35",
        markersize=4,
    )
    ax.plot(
        n,
        table["weight_ols"].to_numpy() * len(n),
        "s",
        color=COLORS["ols"],
        markersize=3.5,
    )
    ax.set_xscale("log")
    ax.set_ylim(0, max(1.5, float(table["weight_ols"].max() * len(n)) * 1.45))
    low, high = ax.get_xlim()
    decades = 10.0 ** np.arange(np.ceil(np.log10(low)), np.floor(np.log10(high)) + 1)
    ax.set_xticks(decades, [f"{v:,.0f}" for v in decades])
    ax.set_xlabel("cluster size n_i")
    ax.set_ylabel("k_i, weight × J")
    ax.set_title("Shrinkage and cluster weights", fontsize="medium", y=1.0)

    # One short legend for the figure: every label is text that is laid out again on each move.
    path_ax = axes[1]
    entries = [(_by_gid(path_ax, name), label) for name, label in _LEGEND]
    labels = ["k_i (kept)", "LMM weight × J", "OLS weight × J"]
    entries += list(zip(ax.get_lines()[:3], labels, strict=True))
    fig.legend(
        [h for h, _ in entries],
        [label for _, label in entries],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.94),
        ncol=5,
        fontsize="x-small",
        frameon=False,
    )
    fig.suptitle(
        f"σ_b {sim.sigma_group:.2f}, imbalance {sim.size_imbalance:.2f}: "
        f"ICC {fit.sigma2_group / (fit.sigma2_group + fit.sigma2_resid):.3f}, "
        f"θ {theta_hat:.3g}; intercept OLS {sim.stats.beta_ols[0]:.3f} ± {1.96 * ols_se[0]:.3f}, "
        f"LMM {fit.fe_params.iloc[0]:.3f} ± {1.96 * fit.bse.iloc[0]:.3f}",
        fontsize="medium",
        y=0.995,
    )
    # Few, fixed ticks: creating tick artists is most of the cost of drawing this figure.
    for ax in axes:
        ax.minorticks_off()
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.yaxis.set_major_formatter(_plain_ticks)
    return fig


def explorer_figure(sigma_group: float, size_imbalance: float, seed: int = 0, **shape):
    """Draw one position of the explorer's sliders (the pure function behind :func:`explorer`).

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
        Three panels: the paths of the intercept and of the condition effect against theta, each with a
        95% band, the pooled OLS estimate (theta = 0) and the REML fit (theta-hat) marked with their 95%
        intervals, the theta -> infinity limit and the truth; and, per cluster, the shrinkage k_i and
        the cluster's weight in the OLS and in the mixed-model intercept.

    Examples
    --------
    >>> fig = explorer_figure(0.31, 1.5)
    >>> [ax.get_title() for ax in fig.axes][-1]
    'Shrinkage and cluster weights'
    """
    return _draw_explorer(*_explorer_parts(sigma_group, size_imbalance, seed, **shape))


def _png_output(png: bytes, text: str) -> dict:
    return {
        "output_type": "display_data",
        "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text},
        "metadata": {},
    }


def _error_output(exc: BaseException) -> dict:
    import traceback

    return {
        "output_type": "error",
        "ename": type(exc).__name__,
        "evalue": str(exc),
        "traceback": traceback.format_exception(exc),
    }


class Explorer(ipywidgets.VBox):
    """Two sliders and an Output that shows :func:`explorer_figure` at their values.

    Attributes
    ----------
    sigma_slider, imbalance_slider : ipywidgets.FloatSlider
    output : ipywidgets.Output
    redraw_count : int
        How many times the figure was redrawn (including the first drawing).
    last_error : Exception or None
        The exception of the latest redraw, if it failed; it is also shown in ``output``.
    """

    def __init__(self, sigma_group, size_imbalance, seed, dpi, continuous_update, **shape):
        self.seed = int(seed)
        self.dpi = dpi
        self.shape = dict(shape)
        self.redraw_count = 0
        self.last_error = None
        style = {"description_width": "210px"}
        layout = ipywidgets.Layout(width="560px")
        self.sigma_slider = ipywidgets.FloatSlider(
            value=sigma_group,
            min=0.0,
            max=1.0,
            step=0.01,
            readout_format=".2f",
            description="between-cluster SD (sigma_b)",
            continuous_update=continuous_update,
            style=style,
            layout=layout,
        )
        self.imbalance_slider = ipywidgets.FloatSlider(
            value=size_imbalance,
            min=0.0,
            max=2.5,
            step=0.05,
            readout_format=".2f",
            description="cluster-size imbalance (SD of log n)",
            continuous_update=continuous_update,
            style=style,
            layout=layout,
        )
        self.output = ipywidgets.Output()
        super().__init__([self.sigma_slider, self.imbalance_slider, self.output])
        self.sigma_slider.observe(self._on_change, names="value")
        self.imbalance_slider.observe(self._on_change, names="value")
        self.redraw()

    def _on_change(self, change):
        self.redraw()

    def redraw(self):
        """Replace the output with the figure at the sliders' current values."""
        self.redraw_count += 1
        sigma, imbalance = self.sigma_slider.value, self.imbalance_slider.value
        try:
            fig = explorer_figure(sigma, imbalance, self.seed, **self.shape)
            png = figure_to_png(fig, dpi=self.dpi)
        except Exception as exc:  # shown to the reader, never swallowed silently
            self.last_error = exc
            self.output.outputs = (_error_output(exc),)
            return
        self.last_error = None
        text = f"explorer figure at sigma_group={sigma:.2f}, size_imbalance={imbalance:.2f}"
        self.output.outputs = (_png_output(png, text),)


def explorer(
    *,
    sigma_group: float = 0.31,
    size_imbalance: float = 1.5,
    seed: int = 0,
    dpi: int = 72,
    continuous_update: bool = False,
    **shape,
):
    """The live between-cluster-variance explorer (needs a running Python kernel).

    Two sliders set the between-cluster SD and the cluster-size imbalance of a question-shaped data set
    (326,362 rows in 24 clusters by default); each move redraws :func:`explorer_figure` from simulated
    sufficient statistics: about 20 ms of computing, the rest is matplotlib drawing the figure
    (``benchmarks/widget_redraw.py`` measures both).

    Parameters
    ----------
    sigma_group : float, default 0.31
    size_imbalance : float, default 1.5
    seed : int, default 0
    dpi : int, default 72
    continuous_update : bool, default False
        Redraw while dragging (True) or on release (False).
    **shape
        Overrides of :data:`QUESTION_SHAPE`.

    Returns
    -------
    ipywidgets.VBox
        An ``Explorer`` with attributes ``sigma_slider``, ``imbalance_slider``, ``output`` and
        ``redraw_count``.

    Examples
    --------
    >>> box = explorer(n_obs=2_000)
    >>> box.redraw_count, len(box.output.outputs)
    (1, 1)
    >>> box.sigma_slider.value = 0.5
    >>> box.redraw_count, box.last_error is None
    (2, True)
    """
    return Explorer(sigma_group, size_imbalance, seed, dpi, continuous_update, **shape)


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
  for (var d = 0; d < sliders.length; d++) {
    sliders[d].addEventListener("input", update);
    sliders[d].addEventListener("change", update);
  }
})();
"""


def static_explorer(
    sigma_groups=(0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.31, 0.4, 0.5, 0.65, 0.8, 1.0),
    size_imbalances=None,
    seed: int = 0,
    *,
    size_imbalance: float = 1.5,
    default_sigma_group: float = 0.31,
    dpi: int = 80,
    **shape,
):
    """The kernel-free twin of :func:`explorer`: pre-rendered frames behind an HTML range input.

    Parameters
    ----------
    sigma_groups : sequence of float
        The between-cluster SDs of the frames (the first slider).
    size_imbalances : sequence of float, optional
        A second slider over these imbalances. Without it there is one slider, for sigma_group only, at
        ``size_imbalance``.
    seed : int, default 0
    size_imbalance : float, default 1.5
        The imbalance of the frames when ``size_imbalances`` is None, and the second slider's start.
    default_sigma_group : float, default 0.31
        The first slider's start (the closest grid value).
    dpi : int, default 80
        Keeps each frame near 70 kB (the default 13 frames make a page of about 1 MB).
    **shape
        Overrides of :data:`QUESTION_SHAPE`.

    Returns
    -------
    IPython.display.HTML
        Self-contained (frames embedded as base64 PNG, no external URLs). The range inputs carry the CSS
        class ``mme-static-slider``, the image ``mme-static-frame``, the value labels
        ``mme-static-value``; the enclosing ``div`` has a fresh ``id`` on every call.

    Examples
    --------
    >>> page = static_explorer([0.1, 0.3], n_obs=2_000)
    >>> page.data.count('class="mme-static-slider"'), "://" in page.data
    (1, False)
    """
    from IPython.display import HTML

    dims = [("between-cluster SD", [float(v) for v in sigma_groups])]
    if size_imbalances is not None:
        dims.append(("cluster-size imbalance", [float(v) for v in size_imbalances]))
    if any(len(values) == 0 for _, values in dims):
        raise ValueError("Each slider needs at least one value.")
    frames = []
    for sigma in dims[0][1]:
        for imbalance in dims[1][1] if len(dims) > 1 else [size_imbalance]:
            fig = explorer_figure(sigma, imbalance, seed, **shape)
            frames.append(
                "data:image/png;base64," + base64.b64encode(figure_to_png(fig, dpi=dpi)).decode()
            )
    starts = [int(np.argmin(np.abs(np.asarray(dims[0][1]) - default_sigma_group)))]
    if len(dims) > 1:
        starts.append(int(np.argmin(np.abs(np.asarray(dims[1][1]) - size_imbalance))))
    index = 0
    for (_, values), start in zip(dims, starts, strict=True):
        index = index * len(values) + start
    uid = f"mme-static-{uuid.uuid4().hex[:12]}"
    shown = [[f"{v:.2f}" for v in values] for _, values in dims]
    controls = []
    for d, ((name, values), start) in enumerate(zip(dims, starts, strict=True)):
        controls.append(
            f'<div class="mme-static-control" style="margin:0.2em 0">'
            f'<label for="{uid}-slider{d}" style="display:inline-block;min-width:12em">{name}</label> '
            f'<input type="range" class="mme-static-slider" id="{uid}-slider{d}" data-dim="{d}" '
            f'min="0" max="{len(values) - 1}" step="1" value="{start}" style="vertical-align:middle"> '
            f'<output class="mme-static-value" for="{uid}-slider{d}">{shown[d][start]}</output></div>'
        )
    fixed = "" if len(dims) > 1 else f" (cluster-size imbalance fixed at {size_imbalance:.2f})"
    alt = "Explorer figure: fixed-effect paths, shrinkage and OLS versus mixed-model estimates"
    body = (
        f'<div class="mme-static-explorer" id="{uid}" style="font-family:sans-serif">'
        f'<p class="mme-static-note"><em>{html.escape(STATIC_NOTE)}</em>{html.escape(fixed)}</p>'
        + "".join(controls)
        + f'<img class="mme-static-frame" data-frame="{index}" src="{frames[index]}" '
        f'alt="{alt}" style="max-width:100%;height:auto">'
        f'<script type="application/json" class="mme-static-frames">{json.dumps(frames)}</script>'
        f"<script>{_STATIC_SCRIPT % {'uid': json.dumps(uid), 'values': json.dumps(shown)}}</script>"
        "</div>"
    )
    return HTML(body)
