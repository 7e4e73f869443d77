"""The kernel's fast paths against the paths they shortcut.

- ``_solve_a`` written out element by element (Python floats for one A, vectorised over a batch) against
  numpy's batched LAPACK calls, including the NaN it returns where A is not positive definite;
- the random-intercept sums cached per (blocks, response), by class of equal cluster size, against the
  O(J) sums over clusters: the slope in u = theta^2, whose class form expands sum rho_i^2, and the root
  the optimiser finds, on question-shaped data in many clusters and on a stress case with a large offset;
- the one-item root finder on floats against the vectorised one, step for step;
- the scalar optimiser's record (gradient, boundary slope) reusing the last evaluation.
"""

import dataclasses

import numpy as np
import pytest

from helpers import kernel
from helpers.data import load_dataset, simulate_clustered
from helpers.design import build_design


@pytest.mark.parametrize("p", [1, 2, 3, 4])
@pytest.mark.parametrize(
    "batch_a, batch_b", [((), ()), ((1,), (1,)), ((6, 3), (3,)), ((5,), (1,)), ((1,), (4,))]
)
def test_written_out_solve_equals_lapack(p, batch_a, batch_b):
    rng = np.random.default_rng(p + 10 * len(batch_a))
    x = rng.normal(size=batch_a + (p, p + 3))
    a = x @ np.swapaxes(x, -1, -2)
    b = rng.normal(size=batch_b + (p,))
    if batch_a and batch_a[0] > 2:  # not positive definite: NaN for these items, not an error
        a[1] = -np.eye(p)
        a[2] = 0.0
    fast = kernel._solve_a(a, b)
    slow = kernel._solve_a_lapack(a, b)
    for got, want in zip(fast, slow, strict=True):
        assert got.shape == want.shape
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    if batch_a and batch_a[0] > 2:
        assert np.isnan(fast[2][1]).all() and np.isnan(fast[3][2]).all()


def test_written_out_solve_keeps_the_fitted_sum_of_squares_on_an_ill_conditioned_a():
    # A with condition number ~1e12, as far beyond theta = 1e4: b'A^{-1}b from |L^{-1}b|^2
    a = np.array([[1.0, 1.0 - 1e-12], [1.0 - 1e-12, 1.0]])
    b = np.array([1.0, -1.0])
    for item in (a, a[None]):
        _, delta, fitted, _ = kernel._solve_a(item, b)
        exact = 2.0 / 1e-12  # b is the eigenvector of eigenvalue 1e-12 (rounded: rel 1e-4)
        assert float(np.ravel(fitted)[0]) == pytest.approx(exact, rel=1e-3)
        np.testing.assert_allclose(np.ravel(delta), [exact / 2, -exact / 2], rtol=1e-3)


def _plain(blocks, resp):
    """A fresh copy of the input with the size classes turned off (the O(J) path)."""
    plain = dataclasses.replace(blocks)
    plain.__dict__["_cached"] = {"size_classes": ()}
    assert plain.size_classes is None
    return plain, dataclasses.replace(resp)


def _many_clusters(offset: float):
    data = simulate_clustered(
        n_clusters=5_000,
        n_obs=60_000,
        size_imbalance=1.6,
        sigma_group=0.31,
        sigma_resid=0.67,
        intercept=0.72,
        slope=-0.1,
        share_stim=0.5,
        share_spread=0.8,
        effect_size_correlation=-0.5,
        seed=8,
    )
    if not offset:
        return build_design(data, "y ~ condition + (1 | cluster)").stats
    # no intercept in X: the offset stays in the residual sums, which then cancel in sum rho_i^2
    data = data.assign(y=data["y"] + offset, x=np.random.default_rng(3).normal(size=len(data)))
    return build_design(data, "y ~ 0 + x + (1 | cluster)").stats


@pytest.mark.parametrize("offset", [0.0, 1e3])
@pytest.mark.parametrize("reml", [True, False])
def test_cached_class_sums_give_the_slope_and_root_of_the_sums_over_clusters(offset, reml):
    blocks, resp = kernel.blocks_from_stats(_many_clusters(offset))
    assert blocks.size_classes is not None  # the class path is taken
    plain = _plain(blocks, resp)
    theta, summary = kernel.optimize(blocks, resp, reml)
    theta_plain, summary_plain = kernel.optimize(*plain, reml)
    assert 0.0 < theta[0] and summary.converged
    assert theta[0] == pytest.approx(theta_plain[0], rel=1e-12)
    assert summary.criterion == pytest.approx(summary_plain.criterion, rel=1e-14)
    # the slopes, through the root and away from it, to rounding of their terms (the slope's
    # scale is that of sum_i n_i / (1 + n_i u))
    thetas = theta[0] * np.array([[1e-3], [0.5], [1.0 - 1e-9], [1.0], [1.0 + 1e-9], [3.0], [1e3]])
    a = kernel.slope_u(blocks, resp, thetas, reml)
    b = kernel.slope_u(*plain, thetas, reml)
    scale = np.sum(blocks.counts / (1.0 + blocks.counts * thetas**2), axis=-1)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * scale.max())
    # and one point at a time (as the root finder calls it) as in a batch
    one_by_one = [kernel.slope_u(blocks, resp, t, reml) for t in thetas]
    np.testing.assert_allclose(one_by_one, a, rtol=0, atol=1e-11 * scale.max())


def test_cached_sums_follow_the_blocks_they_were_made_for():
    stats = _many_clusters(0.0)
    blocks, resp = kernel.blocks_from_stats(stats)
    first = kernel._intercept_sums(blocks, resp)
    assert kernel._intercept_sums(blocks, resp) is first  # computed once
    plain, _ = _plain(blocks, resp)
    other = kernel._intercept_sums(plain, resp)  # the same response with other blocks: recomputed
    assert other is not first and len(other[0]) == blocks.n_groups > len(first[0])
    np.testing.assert_allclose(
        other[2].sum(axis=0), first[2].sum(axis=0), rtol=1e-12
    )  # the class sums add up to the cluster sums


def test_the_one_item_root_finder_takes_the_vectorised_steps():
    rng = np.random.default_rng(5)
    for _ in range(300):
        root, power, scale = (
            rng.uniform(0.1, 10.0),
            int(rng.choice([1, 3])),
            10 ** rng.uniform(-3, 3),
        )

        def fun(t, idx, root=root, power=power, scale=scale):
            return scale * ((t - root) ** power + 1e-3 * (t - root))

        lo, hi = root * rng.uniform(0.01, 0.99), root * rng.uniform(1.01, 3.0)
        f_lo, f_hi = fun(np.array([lo]), None), fun(np.array([hi]), None)
        one = kernel._root_bracketed(fun, [lo], [hi], f_lo, f_hi)
        two = kernel._root_bracketed(fun, [lo, lo], [hi, hi], np.r_[f_lo, f_lo], np.r_[f_hi, f_hi])
        assert one[0][0] == two[0][0] == two[0][1] and one[1][0] == two[1][0]
        assert abs(one[0][0] - root) <= 1e-14 * root


@pytest.mark.parametrize("name", ["dyestuff", "dyestuff2"])
def test_scalar_record_reuses_the_last_evaluation(name):
    stats = build_design(load_dataset(name), "Yield ~ 1 + (1 | Batch)").stats
    blocks, resp = kernel.blocks_from_stats(stats)
    theta, summary = kernel.optimize(blocks, resp, True)
    assert summary.criterion == kernel.evaluate(blocks, resp, theta, True).criterion
    grad = kernel.gradient(blocks, resp, theta, True)
    assert summary.gradient_norm == pytest.approx(float(np.abs(grad).max()), abs=1e-12)
    if theta[0] == 0.0:  # dyestuff2: a boundary fit, decided by the slope in u at 0
        assert summary.boundary_slope == kernel.slope_u(blocks, resp, theta, True)
        assert summary.boundary_slope >= 0
    else:
        assert summary.boundary_slope is None


def test_batched_responses_still_take_the_sums_over_clusters():
    # several responses at once (bootstrap): the per-response cache is not used; same numbers
    stats = _many_clusters(0.0)
    blocks, resp = kernel.blocks_from_stats(stats)
    rng = np.random.default_rng(1)
    sums = resp.sum_e + rng.normal(size=(3, blocks.n_groups))
    batch = kernel.Response.intercept(
        sums, np.broadcast_to(resp.within_xy, (3, blocks.n_params)), np.full(3, resp.within_yy)
    )
    thetas = np.array([[0.2], [0.5]])[:, None, :]
    together = kernel.evaluate(blocks, batch, thetas).criterion
    for k in range(3):
        alone = kernel.evaluate(blocks, batch.take(k), thetas[:, 0]).criterion
        np.testing.assert_allclose(together[:, k], alone, rtol=1e-13)
    assert np.isfinite(together).all()
