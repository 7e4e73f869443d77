"""The figure functions draw the fitted quantities, with titles, labels and legends, and leak nothing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from helpers.decompose import fixed_effect_path, within_estimator  # noqa: E402
from helpers.design import build_design  # noqa: E402
from helpers.fit import fit_lmm, fit_ols, optimize_theta  # noqa: E402
from helpers.objective import criterion  # noqa: E402
from helpers.plots import (  # noqa: E402
    figure_to_png,
    plot_caterpillar,
    plot_criteria,
    plot_fixed_effect_path,
    plot_pooling,
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
        assert ax.get_legend() is not None
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


def test_caterpillar_many_clusters_has_no_name_ticks(radon_fit):
    ax = plot_caterpillar(radon_fit).axes[0]
    assert len(ax.get_yticks()) == 0
    assert len(_by_gid(ax, "modes")[0].get_xdata()) == 85


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


def test_path_plot_wraps_to_at_most_three_panels_a_row(radon):
    """Five fixed effects: two rows (3 + 2), not one row of five panels shrunk to the page."""
    rng = np.random.default_rng(11)
    frame = radon.assign(arm=rng.choice(["a", "b", "c"], len(radon)))
    d = build_design(frame, "log_radon ~ floor + uranium + arm + (1 | county)")
    assert len(d.term_names) == 5
    fig = plot_fixed_effect_path(d.stats, d.term_names, thetas=np.array([0.0, 0.5, 5.0]))
    assert [ax.get_title() for ax in fig.axes] == list(d.term_names)  # no empty sixth panel
    rows = [ax.get_subplotspec().rowspan.start for ax in fig.axes]
    columns = [ax.get_subplotspec().colspan.start for ax in fig.axes]
    assert rows == [0, 0, 0, 1, 1] and columns == [0, 1, 2, 0, 1]
    width, height = fig.get_size_inches()
    assert width <= 3 * 5.2 + 1e-9 and width / height < 2.0
    # three terms still fit in one row
    three = plot_fixed_effect_path(d.stats, d.term_names, terms=["floor", "uranium", "arm[T.b]"])
    assert {ax.get_subplotspec().rowspan.start for ax in three.axes} == {0}
