"""The figure functions draw the fitted quantities, with titles, labels and legends, and leak nothing."""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

import helpers  # noqa: E402
from helpers.decompose import fixed_effect_path, within_estimator  # noqa: E402
from helpers.design import build_design  # noqa: E402
from helpers.fit import fit_lmm, fit_ols, optimize_theta  # noqa: E402
from helpers.objective import criterion  # noqa: E402
from helpers.plots import (  # noqa: E402
    FIGURE_DPI,
    MAX_CLUSTER_PANELS,
    MAX_FIGURE_WIDTH,
    MIN_TEXT_PX,
    PAGE_WIDTH_PX,
    PNG_DPI_KEY,
    PNG_FONT_KEY,
    PROFILE_LEVELS,
    figure_to_png,
    normal_quantiles,
    plot_bootstrap_scatter,
    plot_caterpillar,
    plot_cluster_panels,
    plot_criteria,
    plot_fixed_effect_path,
    plot_pooling,
    plot_profile_zeta,
    plot_residuals,
    plot_shrinkage_2d,
    png_text,
)

RADON = "log_radon ~ floor + (1 | county)"


@pytest.fixture(scope="module")
def radon_fit(radon):
    return fit_lmm(radon, RADON)


@pytest.fixture(scope="module")
def dyestuff_fit(dyestuff):
    return fit_lmm(dyestuff, "Yield ~ 1 + (1 | Batch)")


def _by_gid(ax, gid):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert found, f"no artist with gid {gid!r}"
    return found


def _assert_labelled(fig):
    assert isinstance(fig, Figure)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    titles = [ax.get_title() for ax in fig.axes]
    assert all(titles) or (fig._suptitle is not None and fig._suptitle.get_text())


def test_no_pyplot_figures_are_left_open(radon_fit):
    before = plt.get_fignums()
    plot_pooling(radon_fit)
    plot_caterpillar(radon_fit)
    assert plt.get_fignums() == before


def test_figures_display_as_png_in_ipython(dyestuff_fit):
    fig = plot_caterpillar(dyestuff_fit)
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure_to_png(fig, dpi=40) != png


# --- the fixed-effect path ---------------------------------------------------------------------------


def test_path_plot_draws_the_path_and_marks_the_fit(radon, radon_fit):
    d = build_design(radon, RADON)
    thetas = np.array([0.0, 0.01, 0.1, 0.5, 1.0, 5.0])
    fig = plot_fixed_effect_path(
        d.stats, d.term_names, theta_hat=radon_fit.theta, thetas=thetas, title="Radon path"
    )
    _assert_labelled(fig)
    assert fig._suptitle.get_text() == "Radon path"
    assert [ax.get_title() for ax in fig.axes] == ["Intercept", "floor"]
    ols = fit_ols(radon, RADON)
    expected = fixed_effect_path(d.stats, d.term_names, np.sort(np.append(thetas, radon_fit.theta)))
    within = within_estimator(d.stats, d.term_names)
    for ax, term in zip(fig.axes, d.term_names, strict=True):
        (line,) = _by_gid(ax, "path")
        part = expected[expected["term"] == term]
        np.testing.assert_allclose(line.get_xdata(), part["theta"])
        np.testing.assert_allclose(line.get_ydata(), part["estimate"], rtol=1e-12)
        (marker,) = _by_gid(ax, "theta_hat")
        assert marker.get_xdata()[0] == pytest.approx(radon_fit.theta)
        assert marker.get_ydata()[0] == pytest.approx(radon_fit.fe_params[term], rel=1e-10)
        (ols_line,) = _by_gid(ax, "ols")
        assert ols_line.get_ydata()[0] == pytest.approx(ols.params[term], rel=1e-10)
        assert ax.get_xscale() == "symlog"
        assert ax.get_xlim()[0] == 0.0  # theta = 0 (pooled OLS) is on the axis
        assert ax.get_legend() is None  # one legend for the figure, below the panels
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == len(set(labels)) and "pooled OLS (θ = 0)" in labels
    assert any(label.startswith("REML fit") for label in labels)
    # the floor panel's right asymptote is the within estimator
    (limit,) = _by_gid(fig.axes[1], "limit")
    assert limit.get_ydata()[0] == pytest.approx(within["floor"], rel=1e-12)


def test_path_band_is_estimate_plus_minus_se(radon):
    d = build_design(radon, RADON)
    thetas = np.array([0.0, 0.2, 2.0])
    fig = plot_fixed_effect_path(
        d.stats, d.term_names, theta_hat=0.2, thetas=thetas, terms=["floor"], se_multiplier=2.0
    )
    (band,) = _by_gid(fig.axes[0], "band")
    vertices = band.get_paths()[0].vertices
    part = fixed_effect_path(d.stats, d.term_names, thetas)
    part = part[part["term"] == "floor"]
    for theta, est, se in part[["theta", "estimate", "std_error"]].to_numpy():
        ys = vertices[np.isclose(vertices[:, 0], theta), 1]
        assert np.isclose(ys, est - 2 * se).any() and np.isclose(ys, est + 2 * se).any()


def test_path_plot_defaults_and_errors(dyestuff, dyestuff_fit):
    d = build_design(dyestuff, "Yield ~ 1 + (1 | Batch)")
    fig = plot_fixed_effect_path(d.stats, d.term_names)
    (marker,) = _by_gid(fig.axes[0], "theta_hat")
    assert marker.get_xdata()[0] == pytest.approx(dyestuff_fit.theta, rel=1e-9)
    with pytest.raises(ValueError, match="Unknown term"):
        plot_fixed_effect_path(d.stats, d.term_names, terms=["nope"])


def test_path_plot_uses_given_asymptotes(radon):
    d = build_design(radon, RADON)
    fig = plot_fixed_effect_path(
        d.stats, d.term_names, terms=["floor"], within={"Intercept": np.nan, "floor": -0.5}
    )
    (limit,) = _by_gid(fig.axes[0], "limit")
    assert limit.get_ydata()[0] == -0.5


# --- the criteria ------------------------------------------------------------------------------------


def test_criteria_plot_relative_curves_and_optima(dyestuff):
    d = build_design(dyestuff, "Yield ~ 1 + (1 | Batch)")
    thetas = np.linspace(0.0, 3.0, 31)
    fig = plot_criteria(d.stats, thetas=thetas)
    _assert_labelled(fig)
    ax = fig.axes[0]
    curves = {line.get_label(): line for line in _by_gid(ax, "criterion")}
    assert set(curves) == {"REML criterion", "ML deviance"}
    for name, reml in (("REML criterion", True), ("ML deviance", False)):
        line = curves[name]
        theta_hat, _ = optimize_theta(d.stats, reml)
        x = line.get_xdata()
        expected = criterion(d.stats, x, reml) - criterion(d.stats, theta_hat, reml)
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12, atol=1e-9)
        assert line.get_ydata().min() >= -1e-9  # relative to the minimum
    optima = sorted((m.get_xdata()[0], m.get_ydata()[0]) for m in _by_gid(ax, "optimum"))
    ml_fit = fit_lmm(dyestuff, "Yield ~ 1 + (1 | Batch)", reml=False)
    reml_fit = fit_lmm(dyestuff, "Yield ~ 1 + (1 | Batch)")
    assert optima[0][0] == pytest.approx(ml_fit.theta, rel=1e-9)
    assert optima[1][0] == pytest.approx(reml_fit.theta, rel=1e-9)
    assert optima[0][1] == 0.0 and optima[1][1] == 0.0
    assert ax.get_legend() is not None


def test_criteria_zoom_panel_shows_both_optima_on_a_linear_axis(dyestuff):
    """The zoomed panel: the same relative curves on a linear theta axis, from where the curves come
    within the zoom level of their minima to where they leave it, both optima inside."""
    from helpers.plots import CRITERIA_ZOOM_LEVEL

    d = build_design(dyestuff, "Yield ~ 1 + (1 | Batch)")
    fig = plot_criteria(
        d.stats, thetas=np.concatenate([[0.0], np.logspace(-2.5, 1.2, 300)]), zoom=True
    )
    _assert_labelled(fig)
    wide, near = fig.axes
    assert near.get_xscale() == "linear" and wide.get_xscale() == "symlog"
    low, high = near.get_xlim()
    optima = {reml: optimize_theta(d.stats, reml)[0] for reml in (True, False)}
    assert all(low < t < high for t in optima.values())
    rises = []
    for line, reml in zip(_by_gid(near, "criterion_zoom"), (True, False), strict=True):
        x = line.get_xdata()
        expected = criterion(d.stats, x, reml) - criterion(d.stats, optima[reml], reml)
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12, atol=1e-9)
        rises.append(expected)
    # the range ends where the curves leave the zoom level (4% padding beyond), not further out
    at_ends = np.max(rises, axis=0)[[0, -1]]
    assert low == 0.0 or at_ends[0] > CRITERIA_ZOOM_LEVEL
    assert at_ends[-1] > CRITERIA_ZOOM_LEVEL
    assert all(r.min() < 1e-9 for r in rises)  # each curve's minimum is drawn
    (span,) = _by_gid(wide, "zoom_span")
    assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx((low, high))
    assert fig.legends and not wide.get_legend()


def _tick_label_boxes(fig, axis):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = axis.get_ticklabels()
    low, high = sorted(axis.get_view_interval())
    return [
        (label.get_text(), label.get_window_extent(renderer))
        for label, loc in zip(labels, axis.get_majorticklocs(), strict=True)
        if label.get_visible() and label.get_text() and low <= loc <= high
    ]


def _overlapping_tick_labels(fig):
    found = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = _tick_label_boxes(fig, axis)
            for k, (text, box) in enumerate(boxes):
                for other, other_box in boxes[k + 1 :]:
                    if box.overlaps(other_box):
                        found.append((ax.get_title(), text, other))
    return found


def test_no_two_tick_labels_overlap_on_the_theta_axis_figures(radon, dyestuff):
    """Issue 15: '0' and '10^-3' were printed over each other (matplotlib's symlog locator puts
    decades inside the linear part). Every figure with a symlog theta axis, drawn, has no two tick
    labels whose extents overlap, and no decade tick below the linear threshold."""
    from helpers.plots import ThetaTicks
    from helpers.seed import seed_question

    rng = np.random.default_rng(11)
    frame = radon.assign(arm=rng.choice(["a", "b", "c"], len(radon)))
    radon_d = build_design(radon, RADON)
    five = build_design(frame, "log_radon ~ floor + uranium + arm + (1 | county)")
    question = build_design(seed_question(), "pSHP2 ~ condition + (1 | cluster)")
    dye = build_design(dyestuff, "Yield ~ 1 + (1 | Batch)")
    wide_grid = np.concatenate([[0.0], np.logspace(-4.5, 0.7, 300)])
    figures = {
        "radon path": plot_fixed_effect_path(radon_d.stats, radon_d.term_names),
        "five-term path": plot_fixed_effect_path(five.stats, five.term_names),
        "question path": plot_fixed_effect_path(question.stats, question.term_names),
        "radon criteria": plot_criteria(radon_d.stats),
        "radon criteria zoomed": plot_criteria(radon_d.stats, zoom=True),
        "question criteria zoomed": plot_criteria(question.stats, thetas=wide_grid, zoom=True),
        "dyestuff criteria": plot_criteria(dye.stats, thetas=np.logspace(-6, 2, 50)),
    }
    for name, fig in figures.items():
        assert not _overlapping_tick_labels(fig), (name, _overlapping_tick_labels(fig))
        for ax in fig.axes:
            if ax.get_xscale() != "symlog":
                continue
            locator = ax.xaxis.get_major_locator()
            assert isinstance(locator, ThetaTicks), name
            ticks = [t for t in ax.xaxis.get_majorticklocs() if t > 0]
            assert ticks and min(ticks) >= locator.linthresh * (1 - 1e-9), name
            assert 0.0 in ax.xaxis.get_majorticklocs(), name
    # the check itself finds overlapping labels: matplotlib's own symlog ticks on the radon path
    fig = plot_fixed_effect_path(radon_d.stats, radon_d.term_names)
    for ax in fig.axes:
        ax.xaxis.set_major_locator(
            matplotlib.ticker.SymmetricalLogLocator(ax.xaxis.get_transform())
        )
    assert _overlapping_tick_labels(fig)


def test_theta_ticks_thin_the_decades_on_a_narrow_axis():
    from helpers.plots import _symlog_theta, new_figure

    fig, ax = new_figure(figsize=(1.6, 1.2))
    _symlog_theta(ax, np.r_[0.0, np.logspace(-6, 2, 30)])
    locs = [t for t in ax.xaxis.get_major_locator()() if t > 0]
    assert 2 <= len(locs) < 9 and locs[-1] == 100.0  # not all nine decades; the largest kept
    assert not _overlapping_tick_labels(fig)


# --- caterpillar ---------------------------------------------------------------------------------------


def test_caterpillar_sorted_modes_with_intervals(dyestuff_fit):
    fig = plot_caterpillar(dyestuff_fit, title="Batches")
    _assert_labelled(fig)
    ax = fig.axes[0]
    assert ax.get_title() == "Batches"
    order = np.argsort(dyestuff_fit.ranef.to_numpy())
    (modes,) = _by_gid(ax, "modes")
    np.testing.assert_allclose(modes.get_xdata(), dyestuff_fit.ranef.to_numpy()[order])
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        str(v) for v in dyestuff_fit.ranef.index[order]
    ]
    segments = ax.containers[0].lines[2][0].get_segments()
    half = np.array([(s[1][0] - s[0][0]) / 2 for s in segments])
    np.testing.assert_allclose(half, 1.96 * dyestuff_fit.ranef_sd.to_numpy()[order], rtol=1e-12)


def test_caterpillar_of_a_random_slope_fit_has_one_panel_per_term():
    """As lme4's dotplot of a slope fit: a panel per random term, every panel in the order of the
    intercept's modes, each with its modes, 1.96 conditional SDs and the clusters off zero."""
    fit = fit_lmm(helpers.load_dataset("sleepstudy"), "Reaction ~ Days + (Days | Subject)")
    fig = plot_caterpillar(fit)
    assert [ax.get_title() for ax in fig.axes] == ["(Intercept)", "Days"]
    assert fig._suptitle.get_text().startswith("Random effects by Subject")
    assert "sorted by the (Intercept) mode" in fig.axes[0].get_ylabel()
    order = np.argsort(fit.ranef["(Intercept)"].to_numpy(), kind="stable")
    names = [str(v) for v in fit.ranef.index[order]]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names
    for ax, term in zip(fig.axes, ["(Intercept)", "Days"], strict=True):
        modes = fit.ranef[term].to_numpy()[order]
        half = 1.96 * fit.ranef_sd[term].to_numpy()[order]
        (line,) = _by_gid(ax, f"modes {term}")
        np.testing.assert_allclose(line.get_xdata(), modes)
        segments = ax.containers[0].lines[2][0].get_segments()
        np.testing.assert_allclose([(b[0] - a[0]) / 2 for a, b in segments], half, rtol=1e-12)
        off = (modes - half > 0) | (modes + half < 0)
        (marked,) = _by_gid(ax, f"outside {term}")
        np.testing.assert_allclose(marked.get_offsets()[:, 0], modes[off])
        assert f"({int(off.sum())} of 18)" in ax.get_xlabel()
    assert 0 < int(off.sum()) < 18  # some Days slopes are off zero, some not: the marking is seen


def test_caterpillar_many_clusters_names_the_extremes_and_marks_intervals_off_zero(radon_fit):
    ax = plot_caterpillar(radon_fit).axes[0]
    order = np.argsort(radon_fit.ranef.to_numpy(), kind="stable")
    names = [str(v) for v in radon_fit.ranef.index[order]]
    assert list(ax.get_yticks()) == [0, 1, 2, 3, 4, 80, 81, 82, 83, 84]
    assert [t.get_text() for t in ax.get_yticklabels()] == names[:5] + names[-5:]
    assert "5 lowest and highest named" in ax.get_ylabel()
    assert len(_by_gid(ax, "modes")[0].get_xdata()) == 85
    modes = radon_fit.ranef.to_numpy()[order]
    half = 1.96 * radon_fit.ranef_sd.to_numpy()[order]
    (marked,) = _by_gid(ax, "outside")
    off = (modes - half > 0) | (modes + half < 0)
    np.testing.assert_allclose(marked.get_offsets()[:, 0], modes[off])
    assert off.sum() > 0 and f"({off.sum()} of 85)" in marked.get_label()


# --- pooling -----------------------------------------------------------------------------------------


def test_pooling_arrows_run_from_cluster_mean_to_conditional_estimate(dyestuff, dyestuff_fit):
    fig = plot_pooling(dyestuff_fit)
    _assert_labelled(fig)
    ax = fig.axes[0]
    arrows = [a for a in ax.get_children() if isinstance(a, Annotation)]
    assert len(arrows) == 6
    means = dyestuff.groupby("Batch", observed=True)["Yield"].mean().to_numpy()
    mu = dyestuff_fit.fe_params["Intercept"]
    starts = np.array([a.xyann[1] for a in arrows])
    ends = np.array([a.xy[1] for a in arrows])
    np.testing.assert_allclose(starts, means, rtol=1e-12)
    np.testing.assert_allclose(ends, mu + dyestuff_fit.ranef.to_numpy(), rtol=1e-12)
    # every arrow points toward the overall estimate and stops short of it
    assert np.all(np.abs(ends - mu) < np.abs(starts - mu))
    assert np.all(np.sign(ends - mu) == np.sign(starts - mu))
    (lmm_level,) = _by_gid(ax, "lmm_level")
    assert lmm_level.get_ydata()[0] == pytest.approx(mu)
    assert ax.get_xscale() == "linear"  # equal batch sizes: no log axis


def test_pooling_on_radon_uses_sizes_and_both_levels(radon, radon_fit):
    ax = plot_pooling(radon_fit).axes[0]
    assert ax.get_xscale() == "log"
    (partial,) = _by_gid(ax, "partial_pooling")
    offsets = partial.get_offsets()
    n = radon.groupby("county", observed=True).size().to_numpy()
    assert np.all(np.abs(offsets[:, 0] / n - 1) <= 0.11)  # sizes, tied ones spread by at most ~10%
    np.testing.assert_allclose(
        offsets[:, 1], radon_fit.fe_params["Intercept"] + radon_fit.ranef.to_numpy(), rtol=1e-12
    )
    (ols_level,) = _by_gid(ax, "ols_level")
    assert ols_level.get_ydata()[0] == pytest.approx(fit_ols(radon, RADON).params["Intercept"])
    assert len(ax.get_legend().get_texts()) == 4


def test_path_plot_wraps_to_at_most_two_panels_a_row(radon):
    """Five fixed effects: three rows (2 + 2 + 1), not one row of five panels shrunk to the page."""
    rng = np.random.default_rng(11)
    frame = radon.assign(arm=rng.choice(["a", "b", "c"], len(radon)))
    d = build_design(frame, "log_radon ~ floor + uranium + arm + (1 | county)")
    assert len(d.term_names) == 5
    fig = plot_fixed_effect_path(d.stats, d.term_names, thetas=np.array([0.0, 0.5, 5.0]))
    assert [ax.get_title() for ax in fig.axes] == list(d.term_names)  # no empty sixth panel
    rows = [ax.get_subplotspec().rowspan.start for ax in fig.axes]
    columns = [ax.get_subplotspec().colspan.start for ax in fig.axes]
    assert rows == [0, 0, 1, 1, 2] and columns == [0, 1, 0, 1, 0]
    width, height = fig.get_size_inches()
    assert width <= MAX_FIGURE_WIDTH and width / height < 2.0
    # two terms fit in one row
    two = plot_fixed_effect_path(d.stats, d.term_names, terms=["floor", "uranium"])
    assert {ax.get_subplotspec().rowspan.start for ax in two.axes} == {0}


# --- legibility at the site's width ---------------------------------------------------------------------


def _assert_legible(fig):
    """As a notebook shows it (tight bounding box) in the site's 784 px column: text of 10 px or more,
    shrunk by at most 1.5 times (tests/test_figure_legibility.py checks the built site itself)."""
    import io

    import PIL.Image

    png = figure_to_png(fig, bbox_inches="tight")
    width = PIL.Image.open(io.BytesIO(png)).width
    shrink = max(1.0, width / PAGE_WIDTH_PX)
    text = png_text(png)
    assert float(text[PNG_DPI_KEY]) == FIGURE_DPI
    shown = float(text[PNG_FONT_KEY]) * FIGURE_DPI / 72 / shrink
    assert shrink <= 1.5 and shown >= MIN_TEXT_PX, (width, text)


def test_every_figure_is_legible_at_the_sites_width(radon, radon_fit, dyestuff_fit):
    d = build_design(radon, RADON)
    rng = np.random.default_rng(11)
    frame = radon.assign(arm=rng.choice(["a", "b", "c"], len(radon)))
    d5 = build_design(frame, "log_radon ~ floor + uranium + arm + (1 | county)")
    figures = [
        plot_fixed_effect_path(d.stats, d.term_names),
        plot_fixed_effect_path(d5.stats, d5.term_names, thetas=np.array([0.0, 0.5, 5.0])),
        plot_criteria(d.stats),
        plot_pooling(radon_fit),
        plot_caterpillar(radon_fit),
        plot_caterpillar(dyestuff_fit),
        plot_cluster_panels(radon_fit),
        plot_profile_zeta(dyestuff_fit),
        plot_bootstrap_scatter(_fake_replicates(), "Intercept"),
        plot_residuals(radon_fit),
        plot_shrinkage_2d(*_slope_arrays()),
    ]
    for fig in figures:
        _assert_legible(fig)


# --- per-cluster panels ----------------------------------------------------------------------------------


def test_cluster_panels_draw_each_clusters_rows_and_three_lines(radon, radon_fit):
    fig = plot_cluster_panels(radon_fit)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == MAX_CLUSTER_PANELS
    assert fig._suptitle.get_text().startswith("8 of 85 clusters (county)")
    assert fig._supylabel.get_text() == "log_radon"
    assert [ax.get_xlabel() for ax in fig.axes] == [""] * 4 + ["floor (jittered)"] * 4
    assert len(fig.axes[0].get_subplotspec().get_gridspec().get_geometry()) == 2
    assert fig.axes[0].get_subplotspec().get_gridspec().ncols <= 4
    (legend,) = fig.legends
    assert len(legend.get_texts()) == 4
    sizes = radon.groupby("county", observed=True).size()
    shown = [ax.get_title().split(" (n = ") for ax in fig.axes]
    n_shown = [int(n.rstrip(")")) for _, n in shown]
    assert n_shown == sorted(n_shown)  # spread over the sizes, smallest first
    assert n_shown[0] == sizes.min() and n_shown[-1] == sizes.max()
    ols = fit_ols(radon, RADON)
    within = within_estimator(radon_fit.stats, list(radon_fit.fe_params.index))["floor"]
    b0, b1 = radon_fit.fe_params
    for ax, (label, _) in zip(fig.axes, shown, strict=True):
        rows = radon[radon["county"].astype(str) == label]
        (points,) = _by_gid(ax, "data")
        xy = points.get_offsets()
        np.testing.assert_allclose(xy[:, 1], rows["log_radon"], rtol=1e-12)  # the cluster's rows
        np.testing.assert_allclose(np.round(xy[:, 0]), rows["floor"])  # floor, jittered
        assert np.max(np.abs(xy[:, 0] - rows["floor"])) <= 0.06 + 1e-12
        lines = {line.get_gid(): line for line in ax.get_lines()}
        x = lines["partial"].get_xdata()
        np.testing.assert_allclose(
            lines["partial"].get_ydata(), b0 + radon_fit.ranef[label] + b1 * x, rtol=1e-12
        )
        np.testing.assert_allclose(
            lines["complete"].get_ydata(),
            ols.params["Intercept"] + ols.params["floor"] * x,
            rtol=1e-10,
        )
        own = rows["log_radon"].mean() - rows["floor"].mean() * within  # lm(y ~ floor + county)
        np.testing.assert_allclose(lines["no_pooling"].get_ydata(), own + within * x, rtol=1e-10)


def test_cluster_panels_chosen_clusters_and_errors(radon_fit, dyestuff_fit):
    fig = plot_cluster_panels(radon_fit, clusters=["AITKIN", "HENNEPIN"], title="Two")
    assert [ax.get_title() for ax in fig.axes] == ["AITKIN (n = 4)", "HENNEPIN (n = 105)"]
    assert fig._suptitle.get_text() == "Two"
    with pytest.raises(ValueError, match="Unknown county"):
        plot_cluster_panels(radon_fit, clusters=["NOWHERE"])
    with pytest.raises(ValueError, match="Choose the predictor"):
        plot_cluster_panels(dyestuff_fit)


# --- profile zeta -----------------------------------------------------------------------------------------


def test_profile_zeta_panels_draw_zeta_and_the_level_lines(dyestuff_fit):
    from helpers.inference import confint, likelihood_profile

    prof = likelihood_profile(dyestuff_fit, "sigma_group", np.linspace(5.0, 120.0, 60))
    fig = plot_profile_zeta(dyestuff_fit, ["sigma_group"], profiles={"sigma_group": prof})
    _assert_labelled(fig)
    (ax,) = fig.axes
    (line,) = _by_gid(ax, "zeta")
    np.testing.assert_allclose(line.get_xdata(), prof["value"])
    np.testing.assert_allclose(line.get_ydata(), prof["zeta"])
    # zeta is the signed square root of the deviance rise
    np.testing.assert_allclose(
        np.abs(line.get_ydata()), np.sqrt(prof["rise"]), rtol=1e-12, atol=1e-12
    )
    # the 95% lines drop where zeta = -1.96 and +1.96: the ends of the 95% profile interval
    ends = sorted(line.get_xdata()[0] for line in _by_gid(ax, "end_0.95"))
    interval = confint(dyestuff_fit, "profile", level=0.95).loc["sigma_group"]
    np.testing.assert_allclose(ends, interval[["lower", "upper"]].to_numpy(float), rtol=0.02)
    assert [t.get_text() for t in ax.texts] == [f"{p:.0%}" for p in PROFILE_LEVELS]


def test_profile_zeta_default_parameters(dyestuff_fit):
    fig = plot_profile_zeta(dyestuff_fit)
    assert [ax.get_xlabel() for ax in fig.axes] == ["$\\sigma_b$", "$\\sigma$", "Intercept"]
    assert fig._suptitle.get_text().startswith("Profile ζ (ML deviance)")


def test_profile_zeta_tick_labels_do_not_overlap_on_the_question():
    """Notebook 06 draws the question's four profiles; the stim panel's labels (-0.104, -0.100, ...) were
    printed over each other with matplotlib's default number of ticks."""
    from helpers.seed import seed_question

    fit = fit_lmm(seed_question(), "pSHP2 ~ condition + (1 | cluster)")
    fig = plot_profile_zeta(fit)
    assert len(fig.axes) == 4
    assert not _overlapping_tick_labels(fig), _overlapping_tick_labels(fig)


# --- bootstrap scatter ------------------------------------------------------------------------------------


def _fake_replicates():
    rng = np.random.default_rng(3)
    sigma = np.abs(rng.normal(1.0, 0.5, 400))
    sigma[:17] = 0.0
    return pd.DataFrame(
        {"sigma_group": sigma, "Intercept": 5 + 0.3 * sigma + rng.normal(0, 0.2, 400)}
    )


def test_bootstrap_scatter_plots_each_replicate(dyestuff_fit):
    from helpers.inference import bootstrap

    reps = bootstrap(dyestuff_fit, n=60, seed=1, progress=False)
    fig = plot_bootstrap_scatter(reps, "Intercept", dyestuff_fit)
    _assert_labelled(fig)
    ax = fig.axes[0]
    (points,) = _by_gid(ax, "replicates")
    np.testing.assert_allclose(points.get_offsets()[:, 0], reps["sigma_group"])
    np.testing.assert_allclose(points.get_offsets()[:, 1], reps["Intercept"])
    (mark,) = _by_gid(ax, "estimate")
    assert mark.get_xdata()[0] == pytest.approx(np.sqrt(dyestuff_fit.sigma2_group))
    assert mark.get_ydata()[0] == pytest.approx(dyestuff_fit.fe_params["Intercept"])
    zero = int((reps["sigma_group"] == 0).sum())
    assert f"({zero} with" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="Unknown term"):
        plot_bootstrap_scatter(reps, "slope")


# --- residual diagnostics ---------------------------------------------------------------------------------


def test_residual_panels_show_residuals_and_both_qq_plots(radon_fit):
    fig = plot_residuals(radon_fit)
    _assert_labelled(fig)
    top, left, right = fig.axes
    (points,) = _by_gid(top, "residuals")
    np.testing.assert_allclose(points.get_offsets()[:, 0], radon_fit.fitted())
    np.testing.assert_allclose(points.get_offsets()[:, 1], radon_fit.resid())
    (scaled,) = _by_gid(left, "scaled_residuals")
    expected = np.sort(radon_fit.resid() / np.sqrt(radon_fit.sigma2_resid))
    np.testing.assert_allclose(scaled.get_offsets()[:, 1], expected)
    np.testing.assert_allclose(scaled.get_offsets()[:, 0], normal_quantiles(len(expected)))
    (modes,) = _by_gid(right, "modes")
    np.testing.assert_allclose(modes.get_offsets()[:, 1], np.sort(radon_fit.ranef.to_numpy()))
    (binned,) = _by_gid(top, "binned")
    assert len(binned.get_xdata()) == 10
    assert abs(np.mean(binned.get_ydata())) < 0.05  # residuals centred over the fitted values


def test_residual_panels_accept_a_random_slope_fit(sleepstudy):
    """Notebook 07 shows the model checks for random slopes too: the modes drawn are the intercepts'."""
    fit = fit_lmm(sleepstudy, "Reaction ~ Days + (Days | Subject)")
    fig = plot_residuals(fit)
    top, _, right = fig.axes
    np.testing.assert_allclose(_by_gid(top, "residuals")[0].get_offsets()[:, 1], fit.resid())
    (modes,) = _by_gid(right, "modes")
    np.testing.assert_allclose(modes.get_offsets()[:, 1], np.sort(fit.ranef.iloc[:, 0]))
    assert "(Intercept)" in right.get_ylabel()


def test_normal_quantiles_are_rs_qqnorm_positions():
    import scipy.stats

    # R: qnorm(ppoints(5)) and qnorm(ppoints(20))[1]
    np.testing.assert_allclose(
        normal_quantiles(5), [-1.17976, -0.49720, 0.0, 0.49720, 1.17976], atol=1e-5
    )
    assert normal_quantiles(20)[0] == pytest.approx(scipy.stats.norm.ppf(0.5 / 20))


# --- two-dimensional shrinkage ----------------------------------------------------------------------------


def _slope_arrays():
    rng = np.random.default_rng(5)
    cov = np.array([[600.0, 10.0], [10.0, 35.0]])
    center = np.array([251.4, 10.5])
    partial = center + rng.multivariate_normal([0, 0], cov * 0.6, 18)
    no_pool = center + (partial - center) * 1.4 + rng.normal(0, 2, (18, 2))
    return no_pool, partial, cov, center


def test_shrinkage_2d_arrows_and_covariance_ellipse():
    no_pool, partial, cov, center = _slope_arrays()
    fig = plot_shrinkage_2d(
        no_pool, partial, cov, center, names=("(Intercept)", "Days"), group="Subject"
    )
    _assert_labelled(fig)
    ax = fig.axes[0]
    arrows = _by_gid(ax, "shrinkage_arrow")
    assert len(arrows) == 18
    np.testing.assert_allclose([a._posA_posB[0] for a in arrows], no_pool)
    np.testing.assert_allclose([a._posA_posB[1] for a in arrows], partial)
    np.testing.assert_allclose(_by_gid(ax, "no_pooling")[0].get_offsets(), no_pool)
    np.testing.assert_allclose(_by_gid(ax, "partial_pooling")[0].get_offsets(), partial)
    (mark,) = _by_gid(ax, "center")
    assert (mark.get_xdata()[0], mark.get_ydata()[0]) == tuple(center)
    for level in (0.5, 0.95):
        (ring,) = _by_gid(ax, f"ellipse_{level:g}")
        d = ring.get_xydata() - center
        mahalanobis = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)
        np.testing.assert_allclose(mahalanobis, -2 * np.log(1 - level), rtol=1e-9)
    assert "Days" in ax.get_ylabel() and "Subject" in ax.get_xlabel()
    (legend,) = fig.legends  # below the panel, over no data
    assert len(legend.get_texts()) == 5
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 9.0  # the 9 pt rule
    with pytest.raises(ValueError, match="shape"):
        plot_shrinkage_2d(no_pool[:, :1], partial, cov, center)
