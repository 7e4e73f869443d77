"""The likelihood kernel (helpers.kernel): its general-q path against the random-intercept fast path and
against a dense computation of lme4's formulas from their definition, the optimiser, and the
optimisation record on every fit.

The dense reference writes V = I + Z (I_J kron T T') Z' (relative to sigma^2) for the rows and computes
log det V, GLS beta, the penalised residual sum of squares, the profiled ML deviance and REML criterion,
the conditional modes and their covariances with numpy on small simulated data: no sufficient
statistics, no Cholesky blocks.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import kernel
from helpers.data import load_dataset
from helpers.design import build_design
from helpers.fit import fit_lmm
from helpers.objective import criterion, criterion_derivative, profile

SLOPES = json.loads(
    (Path(__file__).parent / "reference" / "random_slopes_reference.json").read_text()
)

DATASETS = {
    "dyestuff": "Yield ~ 1 + (1 | Batch)",
    "sleepstudy": "Reaction ~ Days + (1 | Subject)",
    "radon": "log_radon ~ floor + (1 | county)",
}
THETAS = np.array([0.0, 0.05, 0.4, 1.0, 3.0, 30.0])


def _general(blocks, resp):
    """The same input without the within cross-products: evaluate takes the general-q path."""
    return (
        kernel.Blocks(blocks.ztz, blocks.ztx, blocks.xtx, blocks.n_obs, blocks.r_factor),
        kernel.Response(resp.zty, resp.xty, resp.yty, resp.beta_ols),
    )


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("reml", [True, False])
def test_general_path_at_q1_equals_the_random_intercept_fast_path(name, reml):
    stats = build_design(load_dataset(name), DATASETS[name]).stats
    fast = kernel.blocks_from_stats(stats)
    assert fast[0].fast
    general = _general(*fast)
    assert not general[0].fast
    a = kernel.evaluate(*fast, THETAS[:, None], reml)
    b = kernel.evaluate(*general, THETAS[:, None], reml)
    np.testing.assert_allclose(b.criterion, a.criterion, rtol=1e-10)
    np.testing.assert_allclose(b.r2, a.r2, rtol=1e-10)
    np.testing.assert_allclose(b.beta, a.beta, rtol=1e-10)
    np.testing.assert_allclose(
        b.cov_beta, a.cov_beta, rtol=1e-9, atol=1e-12 * np.abs(a.cov_beta).max()
    )
    np.testing.assert_allclose(b.logdet_l, a.logdet_l, rtol=1e-12)
    # the public face gives the same numbers, one theta at a time
    for k, theta in enumerate(THETAS):
        assert criterion(stats, theta, reml) == pytest.approx(a.criterion[k], rel=1e-13)
        np.testing.assert_allclose(profile(stats, theta, reml).beta, a.beta[k], rtol=1e-13)
    # the analytic slope agrees with the central-difference gradient of the general path
    theta = np.array([0.7])
    analytic = kernel.gradient(*fast, theta, reml)
    step = 1e-6
    numeric = (
        kernel.evaluate(*general, theta + step, reml).criterion
        - kernel.evaluate(*general, theta - step, reml).criterion
    ) / (2 * step)
    assert analytic[0] == pytest.approx(numeric, rel=1e-6)
    assert analytic[0] == pytest.approx(2 * 0.7 * criterion_derivative(stats, 0.7, reml), rel=1e-12)


def test_batch_axes_broadcast_and_single_values_agree():
    stats = build_design(load_dataset("sleepstudy"), DATASETS["sleepstudy"]).stats
    blocks, resp = kernel.blocks_from_stats(stats)
    grid = kernel.evaluate(blocks, resp, THETAS[:, None]).criterion
    assert grid.shape == THETAS.shape
    for k, theta in enumerate(THETAS):
        one = kernel.evaluate(blocks, resp, [theta]).criterion
        assert one.shape == () and one == pytest.approx(grid[k], rel=1e-14)
    # responses with a batch axis (bootstrap replicates): theta (K, 1, 1) x responses (m,) -> (K, m)
    m = 3
    batch = kernel.Response.intercept(
        np.stack([resp.sum_e * (1 + k) for k in range(m)]),
        np.stack([resp.within_qe * (1 + k) for k in range(m)]),
        np.array([float(resp.within_ee) * (1 + k) ** 2 for k in range(m)]),
    )
    values = kernel.evaluate(blocks, batch, THETAS[:, None, None]).criterion
    assert values.shape == (len(THETAS), m)
    # scaling the response by c adds 2 (N - p) log c to the REML criterion
    dof = blocks.dof(True)
    np.testing.assert_allclose(values[:, 2] - values[:, 0], 2 * dof * np.log(3.0), rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# q = 2 against a dense computation from the definition
# --------------------------------------------------------------------------------------------------


def _simulated(seed=5, n_groups=7):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 9, size=n_groups)
    codes = np.repeat(np.arange(n_groups), sizes)
    n = codes.size
    x = rng.normal(size=n) + 0.3 * rng.normal(size=n_groups)[codes]
    w = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, w])
    Z = np.column_stack([np.ones(n), x])
    b = rng.normal(size=(n_groups, 2)) @ np.array([[1.0, 0.3], [0.0, 0.5]])
    y = X @ np.array([2.0, -1.0, 0.5]) + np.sum(Z * b[codes], axis=1) + 0.7 * rng.normal(size=n)
    return X, y, Z, codes, n_groups


def _dense(X, y, Z, codes, n_groups, theta):
    """lme4's profiled criteria from their definition, with an N x N V."""
    n, p = X.shape
    q = Z.shape[1]
    t = kernel.theta_to_factor(theta, q)
    zfull = np.zeros((n, n_groups * q))
    for k in range(q):
        zfull[np.arange(n), codes * q + k] = Z[:, k]
    lam = np.kron(np.eye(n_groups), t)
    v = np.eye(n) + zfull @ lam @ lam.T @ zfull.T
    v_inv = np.linalg.inv(v)
    a = X.T @ v_inv @ X
    beta = np.linalg.solve(a, X.T @ v_inv @ y)
    r = y - X @ beta
    r2 = r @ v_inv @ r
    logdet_v = np.linalg.slogdet(v)[1]
    out = {"beta": beta, "r2": r2, "A": a}
    out["ml"] = logdet_v + n * (1 + np.log(2 * np.pi * r2 / n))
    out["reml"] = (
        logdet_v + np.linalg.slogdet(a)[1] + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
    )
    sigma2 = r2 / (n - p)
    out["sigma2"] = sigma2
    out["cov_beta"] = sigma2 * np.linalg.inv(a)
    modes = (lam @ lam.T @ zfull.T @ v_inv @ r).reshape(n_groups, q)
    out["modes"] = modes
    # conditional covariance of b_i given y (beta at its estimate), relative cov G = T T'
    g = t @ t.T
    cond = []
    for i in range(n_groups):
        rows = codes == i
        zi = Z[rows]
        vi = np.eye(rows.sum()) + zi @ g @ zi.T
        cond.append(sigma2 * (g - g @ zi.T @ np.linalg.solve(vi, zi @ g)))
    out["cond_cov"] = np.array(cond)
    return out


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize(
    "theta", [[0.8, 0.3, 0.5], [1.5, -0.7, 0.0], [0.0, 0.0, 0.2], [0.05, 0.4, 2.0]]
)
def test_q2_matches_the_dense_definition(rotate, theta):
    X, y, Z, codes, n_groups = _simulated()
    blocks, resp = kernel.blocks_from_rows(X, y, Z, codes, n_groups, rotate=rotate)
    assert blocks.q == 2 and blocks.n_theta == 3 and not blocks.fast
    dense = _dense(X, y, Z, codes, n_groups, np.array(theta))
    for reml, key in ((True, "reml"), (False, "ml")):
        ev = kernel.evaluate(blocks, resp, theta, reml)
        assert float(ev.criterion) == pytest.approx(dense[key], rel=1e-11)
        np.testing.assert_allclose(ev.beta, dense["beta"], rtol=1e-10)
        assert float(ev.r2) == pytest.approx(dense["r2"], rel=1e-10)
    ev = kernel.evaluate(blocks, resp, theta, True)
    np.testing.assert_allclose(ev.cov_beta, dense["cov_beta"], rtol=1e-9)
    modes, cond_cov = kernel.conditional_modes(blocks, resp, theta, ev.delta, float(ev.sigma2))
    np.testing.assert_allclose(modes, dense["modes"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cond_cov, dense["cond_cov"], rtol=1e-9, atol=1e-13)


def test_q2_batch_of_thetas_equals_one_at_a_time():
    X, y, Z, codes, n_groups = _simulated(seed=8)
    blocks, resp = kernel.blocks_from_rows(X, y, Z, codes, n_groups)
    thetas = np.array([[0.8, 0.3, 0.5], [1.5, -0.7, 0.0], [0.0, 0.0, 0.0]])
    batch = kernel.evaluate(blocks, resp, thetas)
    for k, theta in enumerate(thetas):
        one = kernel.evaluate(blocks, resp, theta)
        assert float(one.criterion) == pytest.approx(batch.criterion[k], rel=1e-13)
    # at T = 0 the criterion is that of pooled OLS, whatever q
    ols = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(batch.beta[2], ols, rtol=1e-10)


def _simulated_q3(seed=11, n_groups=9):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 10, size=n_groups)
    codes = np.repeat(np.arange(n_groups), sizes)
    n = codes.size
    x, z = rng.normal(size=n), rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, z])
    Z = X.copy()
    b = rng.normal(size=(n_groups, 3)) * [1.0, 0.5, 0.3]
    y = X @ np.array([1.0, 0.5, -0.2]) + np.sum(Z * b[codes], axis=1) + rng.normal(size=n)
    return X, y, Z, codes, n_groups


def _richardson_gradient(blocks, resp, theta, reml, h=1e-3):
    """Central differences at steps h and h/2 with one Richardson step (error O(h^4))."""

    def f(t):
        return float(kernel.evaluate(blocks, resp, t, reml).criterion)

    out = []
    for k in range(len(theta)):
        e = np.eye(len(theta))[k]
        d1 = (f(theta + h * e) - f(theta - h * e)) / (2 * h)
        d2 = (f(theta + h / 2 * e) - f(theta - h / 2 * e)) / h
        out.append((4 * d2 - d1) / 3)
    return np.array(out)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize(
    ("q", "theta"),
    [
        (2, [0.8, 0.3, 0.5]),
        (2, [1.5, -0.7, 0.05]),
        (3, [0.9, 0.2, -0.1, 0.6, 0.3, 0.4]),
        (3, [0.3, -0.5, 0.8, 1.2, 0.0, 0.7]),
    ],
)
def test_analytic_gradient_equals_central_differences(q, theta, rotate, reml):
    """The analytic gradient of the profiled criterion (kernel.value_and_gradient) for q = 2 and 3."""
    X, y, Z, codes, n_groups = _simulated() if q == 2 else _simulated_q3()
    blocks, resp = kernel.blocks_from_rows(X, y, Z, codes, n_groups, rotate=rotate)
    theta = np.array(theta)
    value, grad = kernel.value_and_gradient(blocks, resp, theta, reml)
    assert float(value) == float(kernel.evaluate(blocks, resp, theta, reml).criterion)
    numeric = _richardson_gradient(blocks, resp, theta, reml)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-7 * np.abs(numeric).max())
    # the plain central difference of the kernel agrees to its own truncation error
    rough = kernel.gradient_numeric(blocks, resp, theta, reml)
    np.testing.assert_allclose(grad, rough, rtol=1e-4, atol=1e-4 * np.abs(numeric).max())
    # a batch of thetas gives each one's gradient; gradient() is the same numbers
    batch = np.stack([theta, 0.5 * theta])
    _, grads = kernel.value_and_gradient(blocks, resp, batch, reml)
    np.testing.assert_allclose(grads[0], grad, rtol=1e-13)
    np.testing.assert_allclose(kernel.gradient(blocks, resp, theta, reml), grad, rtol=1e-13)


def test_analytic_gradient_over_free_elements_and_at_q1():
    """A block-diagonal T ((x || g)): the gradient over the free elements is the full one's restriction;
    q = 1: the general formula equals 2 theta times the closed-form slope in u."""
    X, y, Z, codes, n_groups = _simulated()
    blocks, resp = kernel.blocks_from_rows(X, y, Z, codes, n_groups)
    free = np.array([0, 2])
    x = np.array([0.7, 0.4])
    _, full = kernel.value_and_gradient(blocks, resp, kernel.expand_theta(x, free, 2))
    _, part = kernel.value_and_gradient(blocks, resp, x, free=free)
    np.testing.assert_allclose(part, full[free], rtol=1e-13)
    stats = build_design(load_dataset("sleepstudy"), DATASETS["sleepstudy"]).stats
    fast = kernel.blocks_from_stats(stats)
    general = _general(*fast)
    for reml in (True, False):
        _, grad = kernel.value_and_gradient(*general, np.array([0.7]), reml)
        assert grad[0] == pytest.approx(
            float(kernel.gradient(*fast, np.array([0.7]), reml)[0]), rel=1e-9
        )


def test_theta_order_and_bounds_follow_lme4():
    assert kernel.theta_to_factor([1.0, 2.0, 3.0], 2).tolist() == [[1.0, 0.0], [2.0, 3.0]]
    t = kernel.theta_to_factor(np.arange(1.0, 7.0), 3)
    assert t.tolist() == [[1.0, 0.0, 0.0], [2.0, 4.0, 0.0], [3.0, 5.0, 6.0]]
    assert kernel.theta_lower_bounds(3).tolist() == [0, -np.inf, -np.inf, 0, -np.inf, 0]
    with pytest.raises(ValueError, match="theta"):
        kernel.theta_to_factor([1.0, 2.0], 2)


@pytest.mark.parametrize("reml", [True, False])
def test_vector_optimiser_reaches_lme4s_best_sleepstudy_slope_fit(reml):
    """sleepstudy, Reaction ~ Days + (Days | Subject): lme4 polished over four optimisers."""
    ref = SLOPES["fits"]["sleepstudy_slope"]["reml" if reml else "ml"]
    data = load_dataset("sleepstudy")
    d = build_design(data, "Reaction ~ Days + (1 | Subject)")
    Z = np.column_stack([np.ones(len(d.y)), data["Days"].to_numpy(float)])
    blocks, resp = kernel.blocks_from_rows(d.X, d.y, Z, d.group_codes, len(d.group_labels))
    theta, summary = kernel.optimize(blocks, resp, reml)
    assert summary.criterion <= ref["criterion"] + 1e-6
    assert summary.criterion == pytest.approx(ref["criterion"], abs=1e-6)
    np.testing.assert_allclose(theta, list(ref["theta"].values()), rtol=1e-4, atol=1e-5)
    assert summary.converged and not summary.at_bound
    assert summary.initial == (1.0, 0.0, 1.0) and summary.final == tuple(theta)
    assert summary.gradient_norm < 1e-3
    ev = kernel.evaluate(blocks, resp, theta, reml)
    np.testing.assert_allclose(ev.beta, list(ref["fixef"].values()), rtol=1e-7)
    np.testing.assert_allclose(np.sqrt(np.diag(ev.cov_beta)), list(ref["se"].values()), rtol=1e-5)


# --------------------------------------------------------------------------------------------------
# The optimisation record
# --------------------------------------------------------------------------------------------------


def test_every_fit_carries_its_optimisation_record():
    fit = fit_lmm(load_dataset("dyestuff"), DATASETS["dyestuff"])
    s = fit.optsum
    assert isinstance(s, kernel.OptSummary)
    assert s.final == (fit.theta,) and s.criterion == fit.criterion and s.converged
    assert s.n_evaluations > len(kernel.THETA_GRID) and s.elapsed > 0
    assert s.gradient_norm < 1e-8 and not s.at_bound and s.boundary_slope is None
    assert s.method == "grid + slope root"
    with pytest.raises(AttributeError):
        s.criterion = 0.0  # frozen
    boundary = fit_lmm(load_dataset("dyestuff2"), DATASETS["dyestuff"])
    assert boundary.optsum.at_bound and boundary.optsum.final == (0.0,)
    assert boundary.optsum.boundary_slope == pytest.approx(
        criterion_derivative(boundary.stats, 0.0), rel=1e-12
    )
    assert boundary.optsum.boundary_slope > 0


@pytest.mark.parametrize("reml", [True, False])
def test_vector_optimiser_puts_a_singular_fit_on_the_boundary(reml):
    """lme4's singular (1 + x | g) reference: the slope's diagonal element of T is exactly 0."""
    ref = SLOPES["fits"]["singular"]["reml" if reml else "ml"]
    data = pd.read_csv(Path(__file__).parent / "reference" / "random_slopes_singular.csv")
    d = build_design(data.assign(g=data["g"].astype(str)), "y ~ x + (1 | g)")
    Z = np.column_stack([np.ones(len(d.y)), d.X[:, 1]])
    blocks, resp = kernel.blocks_from_rows(d.X, d.y, Z, d.group_codes, len(d.group_labels))
    theta, summary = kernel.optimize(blocks, resp, reml)
    assert list(ref["theta"].values())[2] == 0
    assert theta[2] == 0.0 and summary.at_bound
    assert summary.criterion <= ref["criterion"] + 1e-6
    np.testing.assert_allclose(theta[:2], list(ref["theta"].values())[:2], rtol=1e-5)


@pytest.mark.parametrize("reml", [True, False])
def test_sums_by_cluster_size_equal_the_sums_over_clusters(reml):
    # 2,000 clusters of 2 to 9 rows: eight sizes, so the random-intercept path sums by size first
    rng = np.random.default_rng(21)
    sizes = rng.integers(2, 10, 2_000)
    g = np.repeat(np.arange(2_000), sizes)
    x = rng.normal(size=len(g))
    y = 5.0 + 0.3 * x + rng.normal(size=2_000)[g] * 0.7 + rng.normal(size=len(g))
    stats = build_design(pd.DataFrame({"y": y, "x": x, "g": g}), "y ~ x + (1 | g)").stats
    by_size = kernel.blocks_from_stats(stats)
    assert by_size[0].size_classes is not None and len(by_size[0].size_classes[1]) == 8
    plain = kernel.blocks_from_stats(stats)
    plain = (dataclasses.replace(plain[0]), plain[1])  # a fresh Blocks, its size classes turned off
    plain[0].__dict__["_cached"] = {"size_classes": ()}
    assert plain[0].size_classes is None
    thetas = np.array([[0.0], [0.01], [0.3], [1.0], [40.0], [1e6]])
    a = kernel.evaluate(*by_size, thetas, reml)
    b = kernel.evaluate(*plain, thetas, reml)
    np.testing.assert_allclose(a.criterion, b.criterion, rtol=1e-13)
    np.testing.assert_allclose(a.delta, b.delta, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        kernel.slope_u(*by_size, thetas, reml), kernel.slope_u(*plain, thetas, reml), rtol=1e-9
    )
    theta_a, _ = kernel.optimize(*by_size, reml)
    theta_b, _ = kernel.optimize(*plain, reml)
    assert theta_a[0] == pytest.approx(theta_b[0], rel=1e-10)


def test_flipping_columns_of_t_to_a_positive_diagonal_keeps_t_t_transposed():
    # the unbounded quasi-Newton start may end with negative diagonal elements of T; the covariance
    # T T' is the same after each such column is flipped, and then every diagonal element is >= 0
    q = 3
    theta = np.array([-0.8, 0.3, -0.2, 0.5, 0.1, -0.05])
    free = np.arange(kernel.theta_size(q))
    flipped = kernel._positive_diagonal(theta, free, q)
    t_before = kernel.theta_to_factor(theta, q)
    t_after = kernel.theta_to_factor(flipped, q)
    np.testing.assert_allclose(t_after @ t_after.T, t_before @ t_before.T, rtol=1e-15)
    assert (np.diag(t_after) >= 0).all() and not np.array_equal(flipped, theta)
    # with a block-diagonal T, over the free elements only
    block_free = np.array([0, 1, 3, 5])  # (1 + x | g) + (0 + z | g): T[2, 0] and T[2, 1] fixed at 0
    part = np.array([-0.7, 0.2, 0.4, -0.3])
    out = kernel._positive_diagonal(part, block_free, q)
    full_before = kernel.theta_to_factor(kernel.expand_theta(part, block_free, q), q)
    full_after = kernel.theta_to_factor(kernel.expand_theta(out, block_free, q), q)
    np.testing.assert_allclose(full_after @ full_after.T, full_before @ full_before.T, rtol=1e-15)
    assert (np.diag(full_after) >= 0).all()
