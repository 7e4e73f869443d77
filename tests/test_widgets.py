"""The explorer: simulated sufficient statistics, its pure figure, the live widget and its static twin."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib
import matplotlib.legend

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import scipy.stats  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import helpers.widgets as widgets  # noqa: E402
from helpers.decompose import (  # noqa: E402
    fixed_effect_path,
    large_theta_limit,
    within_between_blend,
)
from helpers.fit import fit_lmm, fit_lmm_from_stats, fit_ols  # noqa: E402
from helpers.plots import (  # noqa: E402
    FIGURE_DPI,
    MAX_FIGURE_WIDTH,
    PAGE_WIDTH_PX,
    figure_to_png,
    png_text,
)
from helpers.seed import seed_question  # noqa: E402
from helpers.widgets import (  # noqa: E402
    QUESTION_SHAPE,
    SLIDER_LABELS,
    STATIC_NOTE,
    explorer,
    explorer_figure,
    figure_caption,
    simulate_question_stats,
    static_explorer,
)

SMALL = {"n_obs": 3_000}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rows_with_these_cells(sim, seed=1):
    """Rows whose cluster-by-condition cells have exactly the simulated counts, sums and squares."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, label in enumerate(sim.cluster_labels):
        for c, condition in enumerate(["unstim", "stim"]):
            n = int(sim.cell_counts[i, c])
            mean = sim.cell_sums[i, c] / n
            if n >= 2:
                d = rng.standard_normal(n)
                d -= d.mean()
                d *= np.sqrt(sim.cell_squares[i, c] / (d @ d))
            else:
                d = np.zeros(n)
            frames.append(
                pd.DataFrame({"pSHP2": mean + d, "condition": condition, "cluster": label})
            )
    df = pd.concat(frames, ignore_index=True)
    df["condition"] = pd.Categorical(df["condition"], categories=["unstim", "stim"])
    df["cluster"] = pd.Categorical(df["cluster"], categories=sim.cluster_labels)
    return df


# --- the simulated sufficient statistics ---------------------------------------------------------------


def test_question_shape_by_default():
    sim = simulate_question_stats()
    assert sim.stats.n_obs == 326_362 == QUESTION_SHAPE["n_obs"]
    assert sim.stats.n_groups == 24
    assert sim.cell_counts.sum() == 326_362
    np.testing.assert_array_equal(sim.cell_counts.sum(axis=1), sim.stats.counts)
    # with 326,362 rows the residual variance is pinned down: within 2% of the truth
    fit = fit_lmm_from_stats(sim.stats, sim.term_names)
    assert fit.sigma2_resid == pytest.approx(QUESTION_SHAPE["sigma_resid"] ** 2, rel=0.02)
    # as in the question, pooled OLS sits below the mixed model's intercept
    assert sim.stats.beta_ols[0] < fit.fe_params["Intercept"] - 0.05


def test_statistics_equal_those_of_rows_with_the_same_cells():
    sim = simulate_question_stats(0.25, 1.2, seed=4, **SMALL)
    rows = _rows_with_these_cells(sim)
    from_rows = fit_lmm(rows, "pSHP2 ~ condition + (1 | cluster)")
    from_stats = fit_lmm_from_stats(sim.stats, sim.term_names, sim.cluster_labels)
    np.testing.assert_allclose(from_stats.fe_params, from_rows.fe_params, rtol=1e-8)
    np.testing.assert_allclose(from_stats.bse, from_rows.bse, rtol=1e-7)
    assert from_stats.sigma2_group == pytest.approx(from_rows.sigma2_group, rel=1e-7)
    assert from_stats.criterion == pytest.approx(from_rows.criterion, rel=1e-10)


def test_cell_draws_have_the_exact_distributions():
    """Across seeds, standardised cell sums are N(0, 1) and scaled squares chi-square(n - 1)."""
    sigma = QUESTION_SHAPE["sigma_resid"]
    z, p_chi = [], []
    for seed in range(150):
        sim = simulate_question_stats(0.3, 1.0, seed=seed, n_obs=2_000)
        n = sim.cell_counts.astype(float)
        mu = QUESTION_SHAPE["intercept"] + np.array([0.0, QUESTION_SHAPE["slope"]])
        expected = n * (mu[None, :] + sim.cluster_effects[:, None])
        z.append(((sim.cell_sums - expected) / (sigma * np.sqrt(n))).ravel())
        p_chi.append(scipy.stats.chi2.cdf(sim.cell_squares / sigma**2, n - 1).ravel())
    assert scipy.stats.kstest(np.concatenate(z), "norm").pvalue > 1e-3
    assert scipy.stats.kstest(np.concatenate(p_chi), "uniform").pvalue > 1e-3


def test_common_random_numbers_across_slider_values():
    low = simulate_question_stats(0.2, 1.5, seed=7, **SMALL)
    high = simulate_question_stats(0.4, 1.5, seed=7, **SMALL)
    # the between-cluster SD slider only rescales the same cluster effects
    np.testing.assert_array_equal(low.cell_counts, high.cell_counts)
    np.testing.assert_allclose(high.cluster_effects, 2 * low.cluster_effects, rtol=1e-14)
    np.testing.assert_allclose(
        high.stats.sum_y - low.stats.sum_y,
        low.stats.counts * (high.cluster_effects - low.cluster_effects),
        rtol=1e-9,
        atol=1e-9,
    )
    np.testing.assert_allclose(high.cell_squares, low.cell_squares, rtol=1e-14)
    # the imbalance slider resizes the same clusters and keeps their effects
    other = simulate_question_stats(0.2, 0.5, seed=7, **SMALL)
    np.testing.assert_array_equal(other.cluster_effects, low.cluster_effects)
    assert other.stats.counts.max() < low.stats.counts.max()
    # a different seed is a different data set
    assert not np.array_equal(
        simulate_question_stats(0.2, 1.5, seed=8, **SMALL).cell_sums, low.cell_sums
    )


def test_share_correlation_is_exact_in_the_clusters_and_moves_only_the_shares():
    """The third slider sets the sample correlation of b_i and the latent stim score; the same clusters,
    effects and cell noise are reused, only the split of each cluster into unstim and stim changes."""
    base = simulate_question_stats(0.31, 1.5, seed=5)
    shares = {}
    for rho in (-0.9, -0.4, 0.0, 0.5, 0.9):
        sim = simulate_question_stats(0.31, 1.5, seed=5, share_correlation=rho)
        assert sim.share_correlation == rho
        np.testing.assert_array_equal(sim.stats.counts, base.stats.counts)
        np.testing.assert_array_equal(sim.cluster_effects, base.cluster_effects)
        share = sim.cell_counts[:, 1] / sim.cell_counts.sum(axis=1)
        # the logit link and rounding to whole rows leave the observed correlation within 0.02 of rho
        assert np.corrcoef(share, sim.cluster_effects)[0, 1] == pytest.approx(rho, abs=0.02)
        shares[rho] = share
    assert not np.array_equal(shares[0.0], shares[-0.9])
    # the default is the question-like -0.9 (the explorer's setting before the slider existed)
    assert QUESTION_SHAPE["share_correlation"] == -0.9
    np.testing.assert_array_equal(
        base.cell_counts,
        simulate_question_stats(0.31, 1.5, seed=5, share_correlation=-0.9).cell_counts,
    )
    for bad in (-1.5, 1.01, float("nan")):
        with pytest.raises(ValueError, match="share_correlation"):
            simulate_question_stats(0.31, 1.5, share_correlation=bad)


def test_zero_imbalance_gives_equal_sizes_and_bad_values_fail():
    sim = simulate_question_stats(0.3, 0.0, **SMALL)
    assert sim.stats.counts.max() - sim.stats.counts.min() <= 1
    with pytest.raises(ValueError, match="sigma_group"):
        simulate_question_stats(-0.1, 1.0)
    with pytest.raises(ValueError, match="size_imbalance"):
        simulate_question_stats(0.1, float("nan"))
    with pytest.raises(TypeError, match="Unknown setting"):
        simulate_question_stats(0.1, 1.0, n_rows=10)


# --- the pure figure ---------------------------------------------------------------------------------------


def test_explorer_figure_draws_the_fit_of_its_position():
    fig = explorer_figure(0.4, 1.0, seed=2, **SMALL)
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == [
        "Intercept along θ",
        "Condition effect along θ",
        "Shrinkage and cluster weights",
        "",  # the legends and the numbers
    ]
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes[:3])
    assert "0.40" in fig._suptitle.get_text() and "1.00" in fig._suptitle.get_text()
    assert "ρ = −0.90" in fig._suptitle.get_text()
    # two rows at the site's width (shown unshrunk), legends outside the panels, ± explained
    assert tuple(fig.get_size_inches()) == (MAX_FIGURE_WIDTH, 7.0)
    key = fig.axes[3]
    assert not key.axison and not fig.legends
    legends = [a for a in key.get_children() if isinstance(a, matplotlib.legend.Legend)]
    assert [len(legend.get_texts()) for legend in legends] == [7, 3]
    assert all(ax.get_legend() is None for ax in fig.axes[:3])
    (numbers,) = [t for t in fig.texts if t.get_gid() == "numbers"]
    (frame,) = [t for t in fig.texts if t.get_gid() == "numbers_frame"]
    assert "± is the 95% half-width, 1.96 SE" in frame.get_text()
    # the fixed words and the changing numbers share one monospace grid and never overprint
    for word_row, number_row in zip(
        frame.get_text().splitlines(), numbers.get_text().splitlines(), strict=False
    ):
        assert all(" " in (w, n) for w, n in zip(word_row, number_row, strict=False))

    sim = simulate_question_stats(0.4, 1.0, seed=2, **SMALL)
    fit = fit_lmm_from_stats(sim.stats, sim.term_names)
    ols = fit_ols_from_sim(sim)
    limits = large_theta_limit(sim.stats, sim.term_names)
    for k, (ax, term) in enumerate(zip(fig.axes[:2], sim.term_names, strict=True)):
        (line,) = [a for a in ax.get_lines() if a.get_gid() == "path"]
        path = fixed_effect_path(sim.stats, sim.term_names, line.get_xdata())
        np.testing.assert_allclose(
            line.get_ydata(), path.loc[path["term"] == term, "estimate"], rtol=1e-12
        )
        (marker,) = [a for a in ax.get_lines() if a.get_gid() == "theta_hat"]
        assert marker.get_xdata()[0] == pytest.approx(fit.theta, rel=1e-9)
        assert marker.get_ydata()[0] == pytest.approx(fit.fe_params[term], rel=1e-9)
        # 95% intervals: pooled OLS at theta = 0, the mixed model at theta-hat
        (bars,) = [c for c in ax.collections if c.get_gid() == "intervals"]
        (x0, ols_low), (_, ols_high) = bars.get_segments()[0]
        (x1, lmm_low), (_, lmm_high) = bars.get_segments()[1]
        assert x0 == 0.0 and x1 == pytest.approx(fit.theta)
        np.testing.assert_allclose(
            [ols_low, ols_high],
            ols.params.iloc[k] + np.array([-1.96, 1.96]) * ols.bse.iloc[k],
            rtol=1e-9,
        )
        np.testing.assert_allclose(
            [lmm_low, lmm_high],
            fit.fe_params[term] + np.array([-1.96, 1.96]) * fit.bse[term],
            rtol=1e-9,
        )
        lower, upper = [a for a in ax.get_lines() if a.get_gid() == "interval_caps"]
        np.testing.assert_allclose(lower.get_xydata(), [[0.0, ols_low], [x1, lmm_low]], rtol=1e-12)
        np.testing.assert_allclose(
            upper.get_xydata(), [[0.0, ols_high], [x1, lmm_high]], rtol=1e-12
        )
        # the band is the path +- 1.96 SE
        (band,) = [c for c in ax.collections if c.get_gid() == "band"]
        vertices = band.get_paths()[0].vertices
        for theta, est, se in path.loc[
            path["term"] == term, ["theta", "estimate", "std_error"]
        ].to_numpy():
            ys = vertices[vertices[:, 0] == theta, 1]
            assert np.isclose(ys, est - 1.96 * se).any() and np.isclose(ys, est + 1.96 * se).any()
        # the levels: pooled OLS (line and square at 0), the theta -> infinity limit, the truth
        levels = {a.get_gid(): a for a in ax.get_lines()}
        assert levels["ols"].get_ydata()[0] == pytest.approx(ols.params.iloc[k], rel=1e-9)
        assert list(levels["ols_marker"].get_xydata()[0]) == pytest.approx(
            [0.0, ols.params.iloc[k]]
        )
        assert levels["limit"].get_ydata()[0] == pytest.approx(limits[term], rel=1e-12)
        assert levels["truth"].get_ydata()[0] == sim.truth[term]
        assert levels["theta_hat_rule"].get_xdata()[0] == pytest.approx(fit.theta, rel=1e-9)
    n = sim.stats.counts
    u = fit.theta**2
    shrink, lmm_weight, ols_weight = fig.axes[2].get_lines()
    order = np.argsort(n, kind="stable")  # the clusters sorted by size, joined by lines
    for line in (shrink, lmm_weight, ols_weight):
        np.testing.assert_array_equal(line.get_xdata(), n[order])
    np.testing.assert_allclose(shrink.get_ydata(), (n * u / (1 + n * u))[order], rtol=1e-9)
    w = n / (1 + n * u)  # 1 / (sigma_b^2 + sigma^2 / n_i), up to the factor sigma^2
    np.testing.assert_allclose(lmm_weight.get_ydata(), (w / w.sum() * len(n))[order], rtol=1e-9)
    np.testing.assert_allclose(ols_weight.get_ydata(), (n / n.sum() * len(n))[order], rtol=1e-12)
    icc = fit.sigma2_group / (fit.sigma2_group + fit.sigma2_resid)
    assert f"ICC {icc:.3f}" in fig._suptitle.get_text()
    # the numbers beside the weight panel: both fits and the truth, half-widths of 1.96 SE
    rows = numbers.get_text().replace("−", "-").splitlines()
    ols_row, lmm_row, true_row = rows[2:]
    for row, est, se in ((ols_row, ols.params, ols.bse), (lmm_row, fit.fe_params, fit.bse)):
        for k in range(2):
            assert f"{est.iloc[k]:.3f} ± {1.96 * se.iloc[k]:.3f}" in row
    assert f"{sim.truth.iloc[1]:.3f}" in true_row


def fit_ols_from_sim(sim):
    """Pooled OLS of rows with exactly the simulated cells (an independent check of the OLS bars)."""
    return fit_ols(_rows_with_these_cells(sim), "pSHP2 ~ condition")


def test_explorer_figure_frames_what_it_draws():
    """Computed (not autoscaled) limits still show the path, both intervals, the truth and the sizes."""
    for sigma, imbalance in [(0.0, 0.0), (0.05, 2.5), (0.31, 1.5), (1.0, 0.3)]:
        fig = explorer_figure(sigma, imbalance, **SMALL)
        for ax in fig.axes[:2]:
            low, high = ax.get_ylim()
            (line,) = [a for a in ax.get_lines() if a.get_gid() == "path"]
            (truth,) = [a for a in ax.get_lines() if a.get_gid() == "truth"]
            (bars,) = [c for c in ax.collections if c.get_gid() == "intervals"]
            ends = np.concatenate([np.asarray(seg)[:, 1] for seg in bars.get_segments()])
            shown = np.concatenate([line.get_ydata(), truth.get_ydata(), ends])
            assert low < shown.min() and shown.max() < high
            left, right = ax.get_xlim()
            assert left < 0 and right > line.get_xdata().max()
        ax = fig.axes[2]
        sizes = ax.get_lines()[0].get_xdata()
        assert ax.get_xlim()[0] < sizes.min() and sizes.max() < ax.get_xlim()[1]
        ys = np.concatenate([line.get_ydata() for line in ax.get_lines()])
        assert ax.get_ylim()[0] <= ys.min() and ys.max() < ax.get_ylim()[1]
        assert len(ax.get_xticks()) >= 2


def test_explorer_figure_at_zero_between_variance():
    fig = explorer_figure(0.0, 1.5, **SMALL)
    assert len(fig.axes) == 4  # a boundary fit (theta = 0) still draws


def test_explorer_text_is_legible_at_the_sites_width():
    """Shown at its own size in the site's column (780 px at 100 dpi), no text is below 11 px."""
    fig = explorer_figure(0.31, 1.5, **SMALL)
    png = figure_to_png(fig, dpi=FIGURE_DPI)
    width = PIL.Image.open(io.BytesIO(png)).width
    assert width <= PAGE_WIDTH_PX
    text = png_text(png)
    assert float(text["mme:min_font_pt"]) * float(text["mme:dpi"]) / 72 >= 12.0
    # the key's texts do not run into each other or out of the figure
    renderer = fig.canvas.get_renderer()
    key = fig.axes[3]
    legends = [a for a in key.get_children() if isinstance(a, matplotlib.legend.Legend)]
    (numbers,) = [t for t in fig.texts if t.get_gid() == "numbers"]
    boxes = [a.get_window_extent(renderer) for a in (*legends, numbers)]
    for i, first in enumerate(boxes):
        assert fig.bbox.contains(first.x0, first.y0) and fig.bbox.contains(first.x1, first.y1)
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second)


# --- the live widget ---------------------------------------------------------------------------------------


def _move(box, slider, value):
    """Move a slider as a reader would; a redraw that fails fails the test with its own exception."""
    before = box.redraw_count
    slider.value = value
    assert box.redraw_count == before + 1
    if box.last_error is not None:
        raise box.last_error
    assert box.output.outputs == ()


def _pixels(png) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(bytes(png))).convert("RGB"), dtype=int)


def _drawn_data(fig) -> list:
    """What a figure shows, artist by artist: data of lines and collections, limits, ticks, texts."""
    shown = [fig._suptitle.get_text()]
    for ax in fig.axes:
        shown += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale()]
        shown += [np.array(ax.get_xlim()), np.array(ax.get_ylim())]
        shown += [ax.get_xticks(), ax.get_yticks()]
        shown += [[t.get_text() for t in ax.get_xticklabels()]]
        for line in ax.get_lines():
            shown += [line.get_gid(), line.get_visible(), np.asarray(line.get_xydata(), float)]
        for coll in ax.collections:
            shown += [coll.get_gid(), [p.vertices.copy() for p in coll.get_paths()]]
    return shown


def _assert_same_data(live, pure):
    got, expected = _drawn_data(live), _drawn_data(pure)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if isinstance(e, np.ndarray):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=0)
        elif isinstance(e, list) and e and isinstance(e[0], np.ndarray):
            assert len(g) == len(e)
            for gv, ev in zip(g, e, strict=True):
                np.testing.assert_allclose(gv, ev, rtol=1e-12, atol=0)
        else:
            assert g == e


def test_live_explorer_redraws_on_each_slider_move():
    box = explorer(sigma_group=0.31, size_imbalance=1.5, **SMALL)
    assert box.redraw_count == 1 and box.last_error is None
    assert box.children == (
        box.sigma_slider,
        box.imbalance_slider,
        box.share_slider,
        box.image,
        box.caption,
        box.output,
    )
    assert box.sliders == box.children[:3]
    first = bytes(box.image.value)
    assert first.startswith(PNG_MAGIC) and box.image.format == "png"
    assert box.caption.value == figure_caption(0.31, 1.5, QUESTION_SHAPE["share_correlation"])

    _move(box, box.sigma_slider, 0.6)
    second = bytes(box.image.value)
    assert second.startswith(PNG_MAGIC) and second != first
    assert "sigma_group = 0.60, size_imbalance = 1.50" in box.caption.value

    _move(box, box.imbalance_slider, 0.5)
    third = bytes(box.image.value)
    assert third != second
    assert box.live.state.sigma_group == 0.6 and box.live.state.size_imbalance == 0.5
    assert "sigma_group = 0.60, size_imbalance = 0.50" in box.caption.value

    # the correlation slider: switched off, the figure changes and says so
    assert box.share_slider.value == QUESTION_SHAPE["share_correlation"]
    _move(box, box.share_slider, 0.0)
    assert bytes(box.image.value) != third
    assert box.live.state.share_correlation == 0.0
    assert "share_correlation = 0.00" in box.caption.value
    assert "ρ = 0.00" in box.live.artists.title.get_text()


def test_live_explorer_widgets_have_only_traits_their_browser_views_know():
    """ipywidgets' browser views read ``description`` for a tooltip: an Image has none, so a tooltip on
    it breaks the view ("Failed to create view", tests/test_lab_browser.py). Each slider is named by
    its description, sized to its text ("initial") so that it is never cut off (checked in the browser
    by tests/test_lab_browser.py)."""
    box = explorer(**SMALL)
    box.sigma_slider.value = 0.5
    assert box.image.tooltip is None
    assert [slider.description for slider in box.sliders] == list(SLIDER_LABELS)
    for slider in box.sliders:
        assert slider.description_allow_html  # σ<sub>b</sub>
        assert slider.style.description_width == "initial"
    assert box.share_slider.min < 0 < box.share_slider.max


def test_live_redraw_shows_what_explorer_figure_draws():
    """After slider moves, the persistent figure holds the pure function's data, and looks the same."""
    box = explorer(sigma_group=0.31, size_imbalance=1.5, seed=3, **SMALL)
    counts = [len(ax.get_children()) for ax in box.live.artists.fig.axes]
    for slider, value in [
        (box.sigma_slider, 0.6),
        (box.imbalance_slider, 0.5),
        (box.share_slider, 0.0),
        (box.sigma_slider, 0.0),
        (box.imbalance_slider, 2.5),
        (box.share_slider, 0.5),
        (box.sigma_slider, 0.15),
    ]:
        _move(box, slider, value)
        sigma, imbalance, rho = (control.value for control in box.sliders)
        pure = explorer_figure(sigma, imbalance, seed=3, share_correlation=rho, **SMALL)
        _assert_same_data(box.live.artists.fig, pure)
        np.testing.assert_array_equal(
            _pixels(bytes(box.image.value)), _pixels(figure_to_png(pure, dpi=box.dpi))
        )
    # updated in place: no artist was added along the way, and the unchanging part was drawn once
    assert [len(ax.get_children()) for ax in box.live.artists.fig.axes] == counts
    assert box.live.background_draws == 1
    # and it stays an ordinary figure: saved in full, it is the pure figure of the last position
    np.testing.assert_array_equal(
        _pixels(figure_to_png(box.live.artists.fig, dpi=box.dpi)),
        _pixels(figure_to_png(pure, dpi=box.dpi)),
    )


def test_live_figure_redraws_its_background_when_the_theta_axis_changes():
    # a small residual SD puts theta-hat beyond the usual theta range: the theta axes widen
    shape = {**SMALL, "sigma_resid": 0.01}
    box = explorer(sigma_group=0.05, size_imbalance=1.0, **shape)
    assert box.live.background_draws == 1
    _move(box, box.sigma_slider, 0.8)
    assert box.live.state.theta_hat > 40
    assert box.live.background_draws == 2
    pure = explorer_figure(0.8, 1.0, **shape)
    _assert_same_data(box.live.artists.fig, pure)
    np.testing.assert_array_equal(
        _pixels(bytes(box.image.value)), _pixels(figure_to_png(pure, dpi=box.dpi))
    )
    right = box.live.artists.paths[0].ax.get_xlim()[1]
    assert right > box.live.state.theta_hat


def test_live_explorer_shows_a_failing_redraw_and_recovers(monkeypatch):
    box = explorer(**SMALL)
    shown = bytes(box.image.value)

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(widgets, "update_explorer", broken)
    box.sigma_slider.value = 0.5
    assert box.redraw_count == 2
    assert isinstance(box.last_error, RuntimeError)
    assert box.caption.value == figure_caption(0.31, 1.5, -0.9)  # describes the figure still shown
    (output,) = box.output.outputs
    assert output["output_type"] == "error" and output["ename"] == "RuntimeError"
    assert bytes(box.image.value) == shown  # the last good figure stays

    monkeypatch.setattr(widgets, "explorer_state", broken)
    box.imbalance_slider.value = 0.5
    assert box.redraw_count == 3 and isinstance(box.last_error, RuntimeError)

    monkeypatch.undo()
    _move(box, box.sigma_slider, 0.4)  # the error is cleared by the next good redraw
    assert bytes(box.image.value) != shown
    with pytest.raises(RuntimeError, match="drawing failed"):
        monkeypatch.setattr(widgets, "update_explorer", broken)
        _move(box, box.sigma_slider, 0.45)


def test_size_ticks_always_label_the_weight_axis():
    for low in np.logspace(0.5, 5, 37):
        for span in (0.8, 1.0, 1.7, 3.0):
            ticks = widgets._size_ticks(low, low * 10**span)
            assert len(ticks) >= 2
            assert ticks.min() >= low and ticks.max() <= low * 10**span


# --- the static twin ---------------------------------------------------------------------------------------


def _frames(html: str) -> list[str]:
    match = re.search(
        r'<script type="application/json" class="mme-static-frames">(.*?)</script>', html, re.S
    )
    assert match
    return json.loads(match.group(1))


def test_static_explorer_two_sliders():
    page = static_explorer([0.1, 0.3], size_imbalances=[0.5, 1.5], **SMALL).data
    frames = _frames(page)
    assert len(frames) == 4 and len(set(frames)) == 4
    assert all(f.startswith("data:image/png;base64,") for f in frames)
    assert page.count('type="range"') == 2
    # the slider keeps its arrow keys from JupyterLab's notebook (checked in tests/test_lab_browser.py)
    assert 'addEventListener("keydown", keep)' in page and "stopPropagation()" in page
    assert page.count('class="mme-static-slider"') == 2
    assert page.count('class="mme-static-frame"') == 1
    assert 'max="1"' in page
    assert STATIC_NOTE in page
    # self-contained: no external URL of any kind (base64 has no ':', so '://' only comes from a URL)
    assert "://" not in page
    assert "<link" not in page and "@import" not in page and 'src="//' not in page
    assert '["0.10", "0.30"]' in page and '["0.50", "1.50"]' in page
    # the start frame is the grid point closest to the defaults (0.3, 1.5): index 1 * 2 + 1
    assert 'data-frame="3"' in page
    assert f'src="{frames[3]}"' in page


def test_static_explorer_correlation_slider_and_accessible_names():
    page = static_explorer([0.1, 0.3], share_correlations=[-0.9, 0.0], **SMALL).data
    frames = _frames(page)
    assert len(frames) == 4 and len(set(frames)) == 4
    assert page.count('class="mme-static-slider"') == 2
    # frames run over sigma, then rho: frame 2 * i + j is sigma i at rho j, as the same figure draws it
    expected = static_explorer([0.3], share_correlation=0.0, **SMALL).data
    assert _frames(expected) == [frames[3]]
    # the start is (0.31 -> 0.3, -0.9): frame 2
    assert 'data-frame="2"' in page
    assert json.dumps(["−0.90", "0.00"]) in page
    assert "cluster-size imbalance fixed at 1.50" in page
    # each range input is named twice over: by its <label for=...> and by an aria-label
    for label in (SLIDER_LABELS[0], SLIDER_LABELS[2]):
        plain = re.sub(r"<[^>]+>", "", label)
        assert f'aria-label="{plain}"' in page
        assert f">{label}</label>" in page
    ids = re.findall(r'<input type="range" class="mme-static-slider" id="([^"]+)"', page)
    assert len(ids) == 2 and all(f'<label for="{i}"' in page for i in ids)


def test_static_explorer_one_slider_unique_ids_modest_size():
    first = static_explorer([0.0, 0.5], **SMALL).data
    second = static_explorer([0.2], **SMALL).data
    assert first.count('class="mme-static-slider"') == 1
    assert len(_frames(first)) == 2 and len(_frames(second)) == 1
    ids = re.findall(r'<div class="mme-static-explorer" id="([^"]+)"', first)
    other = re.findall(r'<div class="mme-static-explorer" id="([^"]+)"', second)
    assert ids and other and ids != other
    assert "imbalance fixed at 1.50" in first
    per_frame = max(len(f) for f in _frames(first))
    assert per_frame < 80_000  # base64 characters (palette PNG): a few dozen frames stay small


def test_static_explorer_rejects_an_empty_grid():
    with pytest.raises(ValueError, match="at least one value"):
        static_explorer([], **SMALL)


# --- notebook 04's claims about the correlation slider --------------------------------------------------

NOTEBOOK_04 = Path(__file__).resolve().parents[1] / "notebooks" / "04_fixed_effect_path.ipynb"
SLOPE = "condition[T.stim]"


def _notebook_04_prose() -> str:
    cells = json.loads(NOTEBOOK_04.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _quoted(value: float, digits: int) -> str:
    """A number as the notebook's prose writes it: fixed digits, a typographic minus."""
    return f"{value:.{digits}f}".replace("-", "−")


def _slope_parts(rho, seed=0):
    """As notebook 04's cell: the stim effect's within, between and OLS parts, lmer and the truth."""
    sim = simulate_question_stats(0.31, 1.5, seed, share_correlation=rho)
    blend = within_between_blend(sim.stats, 0.0, sim.term_names)
    fit = fit_lmm_from_stats(sim.stats, sim.term_names)
    return sim, blend, fit


def test_notebook_04_correlation_numbers_on_one_data_set():
    """Section 5, "An assumption broken on purpose": the numbers quoted for seed 0."""
    prose = _notebook_04_prose()
    sim, blend, fit = _slope_parts(-0.9)
    # pooled OLS is the blend at theta = 0: within slope plus a tiny weight on a huge between slope
    assert blend.beta[SLOPE] == pytest.approx(sim.stats.beta_ols[1], rel=1e-9)
    between, weight = blend.beta_between[SLOPE], blend.weight_between.loc[SLOPE, SLOPE]
    assert round(between) == -24 and "(about −24)" in prose
    assert 1e-4 < weight < 1e-3 and "a few parts in ten thousand" in prose
    for value in (blend.beta[SLOPE], fit.fe_params[SLOPE], sim.truth[SLOPE]):
        assert _quoted(value, 3) in prose
    assert (
        f"OLS's `stim` effect to {_quoted(blend.beta[SLOPE], 3)} while `lmer` reports "
        f"{_quoted(fit.fe_params[SLOPE], 3)} and the truth is {_quoted(sim.truth[SLOPE], 3)}"
    ) in prose
    # "a gap in the same direction and of the same size as the question's"
    df = seed_question()
    q_ols = fit_ols(df, "pSHP2 ~ condition").params.iloc[1]
    q_lmm = fit_lmm(df, "pSHP2 ~ condition + (1 | cluster)").fe_params[SLOPE]
    assert f"(`lm` {_quoted(q_ols, 3)}, `lmer` {_quoted(q_lmm, 3)})" in prose
    gap, q_gap = blend.beta[SLOPE] - fit.fe_params[SLOPE], q_ols - q_lmm
    assert gap < 0 and q_gap < 0 and 0.5 < gap / q_gap < 2

    # rho = 0: uncorrelated in the clusters, but the size-weighted between slope is +7.8 here
    sim0, blend0, fit0 = _slope_parts(0.0)
    share = sim0.cell_counts[:, 1] / sim0.cell_counts.sum(axis=1)
    assert abs(np.corrcoef(share, sim0.cluster_effects)[0, 1]) < 0.02
    assert f"it comes out at +{blend0.beta_between[SLOPE]:.1f}" in prose
    ols0 = blend0.beta[SLOPE]
    assert f"OLS slope ({_quoted(ols0, 3)}) is off on the other side" in prose
    truth = sim0.truth[SLOPE]
    assert (ols0 - truth) * (blend.beta[SLOPE] - truth) < 0  # the other side of the truth
    # "while lmer has not moved" (to the printed digits), and the within slope is the same
    assert _quoted(fit0.fe_params[SLOPE], 3) == _quoted(fit.fe_params[SLOPE], 3)
    assert blend0.beta_within[SLOPE] == pytest.approx(blend.beta_within[SLOPE], abs=1e-4)


def test_notebook_04_correlation_numbers_over_data_sets():
    """Section 5: means and SDs over 200 data sets at rho = -0.9 and 0, as the notebook's cell."""
    prose = _notebook_04_prose()
    results = {}
    for rho in (-0.9, 0.0):
        ols, lmm, ols_se = [], [], []
        for seed in range(200):
            sim = simulate_question_stats(0.31, 1.5, seed, share_correlation=rho)
            ols.append(sim.stats.beta_ols[1])
            lmm.append(fit_lmm_from_stats(sim.stats, sim.term_names).fe_params[SLOPE])
            if seed == 0:
                ols_se = widgets.explorer_state(0.31, 1.5, seed, share_correlation=rho).ols_se[1]
        results[rho] = np.array(ols), np.array(lmm), ols_se
    truth = QUESTION_SHAPE["slope"]
    (ols_c, lmm_c, se_c), (ols_0, lmm_0, se_0) = results[-0.9], results[0.0]
    # "the mixed model's stim effect averages -0.098, the truth, at both settings"
    assert _quoted(lmm_c.mean(), 3) == _quoted(lmm_0.mean(), 3) == _quoted(truth, 3)
    assert f"averages {_quoted(truth, 3)}, the truth, at both settings" in prose
    # "OLS averages -0.111 with rho = -0.9, about 5 times its own standard error (0.0026) from the truth"
    assert f"OLS averages {_quoted(ols_c.mean(), 3)} with" in prose
    assert f"({se_c:.4f})" in prose and f"{se_0:.4f}" == f"{se_c:.4f}"
    assert round((truth - ols_c.mean()) / se_c) == 5 and "about 5 times" in prose
    assert f"and {_quoted(ols_0.mean(), 3)} with $\\rho = 0$" in prose
    assert _quoted(ols_0.mean(), 3) == _quoted(truth, 3)
    # "an SD of 0.0045 across data sets, 1.7 times the standard error OLS reports"
    sd = ols_0.std(ddof=1)
    assert f"an SD of {sd:.4f} across data sets, {sd / se_0:.1f} times" in prose
    assert sd / se_0 > 1.3


def test_notebook_04_things_to_try_with_the_correlation_off():
    """Section 5 and exercise 3: with rho = 0 and equal cluster sizes, OLS and the mixed model agree on
    both coefficients; with rho = 0 alone only the OLS end of the stim effect's path moves."""
    prose = _notebook_04_prose()
    assert "set both $\\rho$ and the imbalance to 0: OLS and the mixed model now agree" in prose
    state = widgets.explorer_state(0.31, 0.0, 0, share_correlation=0.0)
    assert np.all(np.abs(state.ols - state.fe_params) < 0.1 * state.bse)
    default = widgets.explorer_state(
        0.31, 0.0, 0
    )  # exercise 3: at rho = -0.9 the stim effects differ
    assert abs(default.ols[1] - default.fe_params[1]) > 2 * default.bse[1]
    on, off = (widgets.explorer_state(0.31, 1.5, 0, share_correlation=r) for r in (-0.9, 0.0))
    assert abs(on.ols[1] - off.ols[1]) > 2 * on.ols_se[1]  # the left end moves
    assert abs(on.limit[1] - off.limit[1]) < 0.1 * on.bse[1]  # the right end stays put
    assert abs(on.fe_params[1] - off.fe_params[1]) < 0.1 * on.bse[1]
