"""Property tests: invariances, an independent dense computation, limits, and optimality.

The example budget is fixed by the hypothesis profile: ``ci`` (the default, used by ``make test``) keeps the
suite fast and draws the same examples every run; ``deep`` runs many more, new ones each time::

    HYPOTHESIS_PROFILE=deep .venv/bin/python -m pytest tests/test_properties.py
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import helpers
from helpers.objective import criterion, profile

_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much]
# "ci" draws the same examples on every run (reproducible CI); "deep" draws new ones each time
settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=_QUIET, derandomize=True
)
settings.register_profile("deep", max_examples=500, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

THETAS = [0.0, 0.05, 0.3, 1.0, 3.0, 30.0, 1000.0]


@st.composite
def clustered_data(draw, max_rows: int = 200, max_clusters: int = 40, need=()):
    """A random clustered data set with numeric, categorical and cluster-constant predictors."""
    n_clusters = draw(st.integers(2, max_clusters))
    giant = draw(st.sampled_from([0, max_rows // 2]))  # sometimes one cluster holds many rows
    largest = max(2, (max_rows - giant) // n_clusters)
    sizes = draw(
        st.lists(st.integers(1, min(8, largest)), min_size=n_clusters, max_size=n_clusters)
    )
    if giant:
        sizes[0] = giant
    sizes[-1] = max(sizes[-1], 2)  # at least one cluster with within-cluster information
    theta = draw(st.sampled_from(THETAS))
    seed = draw(st.integers(0, 2**31 - 1))
    predictors = sorted(draw(st.sets(st.sampled_from(["x", "w", "arm"]), max_size=3)) | set(need))
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_clusters), sizes)
    n = codes.size
    frame = pd.DataFrame({"g": codes})
    frame["x"] = rng.normal(size=n)
    frame["w"] = rng.normal(size=n_clusters)[codes]  # constant within clusters
    frame["arm"] = pd.Categorical(rng.choice(["a", "b", "c"], size=n), categories=["a", "b", "c"])
    b = theta * rng.normal(size=n_clusters)
    frame["y"] = 1.0 + 0.5 * frame["x"] - 0.3 * frame["w"] + b[codes] + rng.normal(size=n)
    rhs = " + ".join(predictors) if predictors else "1"
    formula = f"y ~ {rhs} + (1 | g)"
    try:
        design = helpers.build_design(frame, formula)
    except helpers.DataError:
        assume(False)
    assume(design.X.shape[0] > design.X.shape[1] + 2)
    return frame, formula


def _fit(frame, formula, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return helpers.fit_lmm(frame, formula, reml=reml)


def _close_fe(a, b, scale, rtol=1e-5):
    diff = np.abs(a.fe_params.to_numpy() - b.fe_params.to_numpy())
    return np.all(diff <= rtol * (scale.bse.to_numpy() + np.abs(scale.fe_params.to_numpy())) + 1e-9)


# ---------------------------------------------------------------- invariance


@given(clustered_data(), st.integers(0, 2**31 - 1), st.booleans())
def test_row_order_and_group_labels_do_not_matter(data, seed, reml):
    frame, formula = data
    base = _fit(frame, formula, reml)
    rng = np.random.default_rng(seed)
    shuffled = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    # relabel and reorder the groups, and change the labels' type (int -> str)
    relabel = {g: f"group-{k}" for k, g in enumerate(rng.permutation(frame["g"].unique()))}
    shuffled["g"] = shuffled["g"].map(relabel)
    other = _fit(shuffled, formula, reml)
    assert other.criterion == pytest.approx(base.criterion, abs=1e-7)
    assert _close_fe(other, base, base)
    # the conditional modes follow their group, whatever its label and position
    mapped = other.ranef.rename(index={v: k for k, v in relabel.items()}).sort_index()
    assert np.allclose(mapped.to_numpy(), base.ranef.sort_index().to_numpy(), atol=1e-5)


@given(clustered_data(), st.floats(-1e4, 1e4), st.booleans())
def test_shift_of_y_moves_only_the_intercept(data, shift, reml):
    frame, formula = data
    base = _fit(frame, formula, reml)
    moved = _fit(frame.assign(y=frame["y"] + shift), formula, reml)
    expected = base.fe_params.copy()
    expected["Intercept"] += shift
    diff = np.abs(moved.fe_params - expected)
    assert (diff <= 1e-6 * (base.bse + 1) + 1e-12 * abs(shift)).all()
    assert moved.criterion == pytest.approx(base.criterion, abs=1e-6)
    assert moved.sigma2_resid == pytest.approx(base.sigma2_resid, rel=1e-6)


@given(clustered_data(), st.sampled_from([1e-3, 0.5, -2.0, 1e3]), st.booleans())
def test_scaling_y_scales_estimates_and_shifts_the_criterion(data, c, reml):
    frame, formula = data
    base = _fit(frame, formula, reml)
    scaled = _fit(frame.assign(y=c * frame["y"]), formula, reml)
    assert np.allclose(
        scaled.fe_params, c * base.fe_params, rtol=1e-6, atol=1e-8 * abs(c) * base.bse.max()
    )
    assert scaled.sigma2_resid == pytest.approx(c * c * base.sigma2_resid, rel=1e-6)
    assert scaled.sigma2_group == pytest.approx(
        c * c * base.sigma2_group, rel=1e-5, abs=1e-10 * c * c
    )
    dof = base.n_obs - len(base.fe_params) if reml else base.n_obs
    # -2 log L gains 2 log|c| per degree of freedom: the Jacobian of y -> c y
    assert scaled.criterion == pytest.approx(base.criterion + 2 * dof * np.log(abs(c)), abs=1e-6)


# ---------------------------------------------------------------- a second, independent computation


def _dense_pieces(X, y, codes, sigma2_group, sigma2):
    """The marginal covariance V written out in full, and GLS with it (the textbook definition)."""
    Z = (codes[:, None] == np.arange(codes.max() + 1)[None, :]).astype(float)
    V = sigma2 * np.eye(len(y)) + sigma2_group * Z @ Z.T
    V_inv = np.linalg.inv(V)
    xtvx = X.T @ V_inv @ X
    beta = np.linalg.solve(xtvx, X.T @ V_inv @ y)
    resid = y - X @ beta
    return V, V_inv, xtvx, beta, resid


def dense_minus2_loglik(X, y, codes, sigma2_group, sigma2, reml):
    """-2 log L (ML) or -2 log L_REML from its definition, with the dense V."""
    V, V_inv, xtvx, beta, resid = _dense_pieces(X, y, codes, sigma2_group, sigma2)
    n, p = X.shape
    quad = resid @ V_inv @ resid
    value = np.linalg.slogdet(V)[1] + quad
    if reml:
        return value + np.linalg.slogdet(xtvx)[1] + (n - p) * np.log(2 * np.pi)
    return value + n * np.log(2 * np.pi)


def dense_fit(X, y, codes, reml):
    """Maximise the dense likelihood over (log sigma_b, log sigma) by brute force (Nelder-Mead)."""

    def objective(params):
        log_sb, log_s = params
        return dense_minus2_loglik(X, y, codes, np.exp(2 * log_sb), np.exp(2 * log_s), reml)

    start_s = np.log(np.std(y)) if np.std(y) > 0 else 0.0
    best = None
    for log_sb in (start_s - 3, start_s - 1, start_s, start_s + 1):
        res = scipy.optimize.minimize(
            objective,
            [log_sb, start_s],
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 20000},
        )
        if best is None or res.fun < best.fun:
            best = res
    return best


@given(clustered_data(max_rows=120, max_clusters=25), st.booleans())
def test_criterion_equals_the_dense_definition(data, reml):
    frame, formula = data
    fit = _fit(frame, formula, reml)
    # the dense V loses about log10(1 + n theta^2) digits when inverted: the brute force is only a
    # trustworthy referee while theta-hat is moderate
    assume(fit.converged and fit.theta <= 30)
    d = fit.design
    dense = dense_minus2_loglik(d.X, d.y, d.group_codes, fit.sigma2_group, fit.sigma2_resid, reml)
    assert dense == pytest.approx(fit.criterion, abs=1e-7 * max(1.0, abs(dense)))
    _, _, xtvx, beta, _ = _dense_pieces(d.X, d.y, d.group_codes, fit.sigma2_group, fit.sigma2_resid)
    assert np.allclose(beta, fit.fe_params.to_numpy(), rtol=1e-7, atol=1e-9 * fit.bse.max())
    assert np.allclose(np.linalg.inv(xtvx), fit.cov_fe.to_numpy(), rtol=1e-6, atol=1e-12)


@settings(max_examples=10)
@given(clustered_data(max_rows=80, max_clusters=15), st.booleans())
def test_optimum_agrees_with_brute_force_on_the_dense_likelihood(data, reml):
    frame, formula = data
    fit = _fit(frame, formula, reml)
    assume(fit.converged and fit.theta <= 30)
    d = fit.design
    brute = dense_fit(d.X, d.y, d.group_codes, reml)
    # our optimum can be no worse than brute force, and brute force no better than ours
    assert fit.criterion <= brute.fun + 1e-6
    if fit.sigma2_group > 1e-4 * fit.sigma2_resid:
        assert np.exp(2 * brute.x[1]) == pytest.approx(fit.sigma2_resid, rel=1e-3)


# ---------------------------------------------------------------- limits and optimality


@given(clustered_data())
def test_theta_zero_gives_pooled_ols(data):
    frame, formula = data
    design = helpers.build_design(frame, formula)
    ols = helpers.fit_ols(frame, formula.replace(" + (1 | g)", ""))
    prof = profile(design.stats, 0.0)
    assert np.allclose(prof.beta, ols.params.to_numpy(), rtol=1e-8, atol=1e-10)
    assert prof.sigma2 == pytest.approx(ols.sigma2, rel=1e-9)


@given(clustered_data(need=("x",)))
def test_large_theta_approaches_the_within_estimator(data):
    frame, formula = data
    design = helpers.build_design(frame, formula)
    within_formula = formula.replace(" + (1 | g)", "").replace("y ~", "y ~ C(g) +")
    try:
        within = helpers.fit_ols(frame.assign(g=frame["g"].astype(str)), within_formula)
    except helpers.DataError:
        assume(False)
    k = design.term_names.index("x")
    far = profile(design.stats, 1e5).beta[k]
    assert far == pytest.approx(within.params["x"], rel=1e-4, abs=1e-6 * within.bse["x"])


@given(clustered_data(), st.booleans())
def test_reported_theta_is_a_minimum(data, reml):
    frame, formula = data
    fit = _fit(frame, formula, reml)
    stats = fit.stats
    around = fit.theta * np.linspace(0.9, 1.1, 41) if fit.theta > 0 else np.linspace(0, 1e-3, 41)
    values = criterion(stats, around, reml)
    assert fit.criterion <= values.min() + 1e-9
    assert fit.criterion <= criterion(stats, 0.0, reml) + 1e-9
    assert fit.criterion <= criterion(stats, helpers.fit.THETA_GRID, reml).min() + 1e-9


# ---------------------------------------------------------------- the categorical design's one pass


@st.composite
def categorical_data(draw):
    """Categorical predictors only (strings, categoricals with unused categories, logicals), string or
    integer clusters, some missing values, and a response with an offset far from zero."""
    n = draw(st.integers(12, 300))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_clusters = draw(st.integers(2, 30))
    cluster = rng.integers(0, n_clusters, n)
    frame = pd.DataFrame(
        {
            "g": [f"s{k}" for k in cluster] if draw(st.booleans()) else cluster,
            "arm": rng.choice(["b", "a", "c"], n),
            "dose": pd.Categorical.from_codes(
                rng.integers(0, 3, n), categories=["lo", "mid", "hi", "x"]
            ),
            "flag": rng.random(n) < 0.4,
        }
    )
    frame["y"] = draw(st.sampled_from([0.0, 1e6, 1e9])) + rng.normal(size=n) + 0.5 * cluster
    for column in draw(st.sets(st.sampled_from(["y", "arm", "dose", "g"]), max_size=2)):
        frame.loc[frame.index[rng.integers(0, n, 3)], column] = None
    terms = draw(
        st.sampled_from(["arm", "dose", "arm + dose", "arm * flag", "1", "0 + dose + flag"])
    )
    return frame, f"y ~ {terms} + (1 | g)"


@given(categorical_data(), st.sampled_from([None, 1, 7]))
def test_the_cell_pass_gives_the_row_path_design(data, chunk):
    """Every design from the one grouped pass (in chunks of any size) equals the row path's."""
    from helpers import design as design_module

    frame, formula = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", helpers.RowsDroppedWarning)
        try:
            rows = helpers.build_design(frame, formula, method="rows")
        except helpers.DataError as error:
            with pytest.raises(helpers.DataError, match=re.escape(str(error))):
                helpers.build_design(frame, formula)
            return
        with pytest.MonkeyPatch.context() as patch:
            if chunk is not None:
                patch.setattr(design_module, "_CHUNK", chunk)
            cells = helpers.build_design(frame, formula)
    for name in ("term_names", "levels", "reference_levels", "n_dropped", "dropped_by_column"):
        assert getattr(cells, name) == getattr(rows, name), name
    assert cells.group_labels.equals(rows.group_labels)
    np.testing.assert_array_equal(cells.X, rows.X)
    np.testing.assert_array_equal(cells.y, rows.y)
    np.testing.assert_array_equal(cells.group_codes, rows.group_codes)
    a, b = cells.stats, rows.stats  # the signs of R's rows may differ: compared in X's basis
    np.testing.assert_array_equal(a.counts, b.counts)
    # residual-sized sums: compared on the residuals' scale, plus what y's own precision allows
    # (at an offset of 1e9, y is known to about 1e-7)
    scale = np.sqrt(b.ete) + b.n_obs * np.finfo(float).eps * np.abs(rows.y).max() * 1e7
    in_x = [
        ("X'X", lambda s: s.r_factor.T @ s.r_factor, 0.0),
        ("sums of X", lambda s: s.sum_x, 0.0),
        ("within X'X", lambda s: s.r_factor.T @ s.within_qq @ s.r_factor, 0.0),
        ("within X'e", lambda s: s.r_factor.T @ s.within_qe, scale),
        ("sums of e", lambda s: s.sum_e, scale),
        ("beta_ols", lambda s: s.beta_ols, scale),
    ]
    for name, of, atol in in_x:
        np.testing.assert_allclose(of(a), of(b), rtol=1e-9, atol=1e-9 + 1e-7 * atol, err_msg=name)
    assert a.ete == pytest.approx(b.ete, rel=1e-7)
    assert a.within_ee == pytest.approx(b.within_ee, rel=1e-7)
