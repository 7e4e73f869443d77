"""Unit tests of the fitting core: its algebra, its bookkeeping and its messages for bad input.

The comparisons with lme4 are in ``test_reference_lme4.py``; here the core is checked against dense
textbook formulas and against itself (the same fit reached two ways), and every bad input must raise
one :class:`helpers.validate.DataError` that names the column or term at fault.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import warnings
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data import load_dataset, simulate_clustered
from helpers.design import (
    RowsDroppedWarning,
    SufficientStats,
    build_design,
    stats_from_cross_products,
)
from helpers.fit import fit_lmm, fit_lmm_from_stats, fit_ols, optimize_theta
from helpers.objective import criterion, profile
from helpers.validate import DataError, set_reference


@pytest.fixture
def frame():
    rng = np.random.default_rng(20240611)
    n = 60
    group = np.repeat([f"g{k}" for k in range(6)], 10)
    effect = np.repeat(rng.normal(0, 1, 6), 10)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "y": 1.0 + 0.5 * x + effect + rng.normal(size=n),
            "x": x,
            "arm": rng.choice(["b", "a", "c"], n),
            "g": group,
            "h": np.tile(["h1", "h2"], n // 2),
        }
    )


def _data_error(fn, *fragments) -> str:
    """Call fn, expect one DataError whose message contains every fragment; return the message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        with pytest.raises(DataError) as info:
            fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    # no chained traceback: the reader sees one message, not the internals that led to it
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return message


# --- bad input ----------------------------------------------------------------------------------


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_missing_predictor_is_named_with_a_close_match(frame):
    _data_error(lambda: fit_lmm(frame, "y ~ xx + (1 | g)"), "'xx'", "Did you mean 'x'")


def test_missing_group_and_response_are_named_with_close_matches(frame):
    _data_error(lambda: fit_lmm(frame, "y ~ x + (1 | gg)"), "'gg'", "Did you mean 'g'")
    _data_error(lambda: fit_lmm(frame, "Y ~ x + (1 | g)"), "'Y'", "Did you mean 'y'")
    _data_error(lambda: fit_ols(frame, "y ~ x", group="G"), "'G'", "Did you mean 'g'")


def test_missing_column_without_a_close_match_lists_the_columns(frame):
    message = _data_error(lambda: fit_lmm(frame, "zzzz ~ x + (1 | g)"), "'zzzz'")
    assert "Did you mean" not in message
    assert all(f"'{c}'" in message for c in frame.columns)


@pytest.mark.parametrize(
    "values",
    [lambda f: f["arm"], lambda f: f["y"].astype(str), lambda f: f["y"] > 0],
    ids=["strings", "numbers-as-text", "bool"],
)
def test_non_numeric_response(frame, values):
    data = frame.assign(y=values(frame))
    _data_error(lambda: fit_lmm(data, "y ~ x + (1 | g)"), "'y'", "not numeric")


def test_fewer_than_two_groups(frame):
    _data_error(lambda: fit_lmm(frame.assign(g="only"), "y ~ x + (1 | g)"), "'g'", "at least 2")


def test_fewer_than_two_groups_after_dropping_missing_rows(frame):
    two = np.where(frame["g"] == "g0", "g0", "g1")
    data = frame.assign(g=two, x=np.where(two == "g0", np.nan, frame["x"]))
    _data_error(lambda: fit_lmm(data, "y ~ x + (1 | g)"), "'g'", "after dropping", "at least 2")


def test_group_column_all_missing(frame):
    data = frame.assign(g=np.nan)
    _data_error(lambda: fit_lmm(data, "y ~ x + (1 | g)"), "'g'", "entirely missing")


@pytest.mark.parametrize("fitter", [fit_lmm, fit_ols])
def test_rank_deficient_fixed_effects_name_the_aliased_term(frame, fitter):
    data = frame.assign(x2=2.0 * frame["x"] - 3.0)
    message = _data_error(lambda: fitter(data, "y ~ x + x2 + (1 | g)"), "rank deficient", "'x2'")
    assert message.index("'x2'") < message.index("linear combination")


def test_constant_predictor_is_aliased_with_the_intercept(frame):
    data = frame.assign(c=7.0)
    _data_error(lambda: fit_lmm(data, "y ~ x + c + (1 | g)"), "'c'", "'Intercept'")


def test_no_rows_left_after_dropping_missing_values(frame):
    odd = np.arange(len(frame)) % 2 == 1
    data = frame.assign(x=np.where(odd, np.nan, frame["x"]), y=np.where(odd, frame["y"], np.nan))
    _data_error(lambda: fit_lmm(data, "y ~ x + (1 | g)"), "No rows are left")


@pytest.mark.parametrize("column", ["y", "x"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_are_named(frame, column, value):
    data = frame.copy()
    data.loc[3, column] = value
    _data_error(lambda: fit_lmm(data, "y ~ x + (1 | g)"), f"'{column}'", "infinite")


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_infinite_values_from_a_transformation(frame):
    data = frame.assign(x=np.r_[0.0, np.abs(frame["x"].to_numpy()[1:])])
    _data_error(lambda: fit_lmm(data, "y ~ np.log(x) + (1 | g)"), "infinite")


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("y ~ x + (1 | g) + (1 | h)", "crossed groupings are not supported"),
        ("y ~ x + (1 | g/h)", "nested or crossed"),
        ("y ~ x + (1 | g:h)", "nested or crossed"),
        ("y ~ x + 1 | g", "outside"),
    ],
)
def test_unsupported_random_effects_are_rejected(frame, formula, fragment):
    _data_error(lambda: fit_lmm(frame, formula), fragment)


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("y ~ x + (x | g)", "'(x | g)' is not supported"),
        ("y ~ x + (1 + x | g)", "'(1 + x | g)' is not supported"),
        ("y ~ x + (1 || g)", "not supported"),
    ],
)
def test_random_slopes_need_the_opt_in_of_build_design(frame, formula, fragment):
    # fit_lmm fits them (tests/test_random_slopes.py); the report's path still refuses them
    _data_error(lambda: build_design(frame, formula), fragment)


def test_lmm_needs_a_group(frame):
    _data_error(lambda: fit_lmm(frame, "y ~ x"), "grouping column")


def test_conflicting_groups_are_rejected(frame):
    _data_error(lambda: fit_lmm(frame, "y ~ x + (1 | g)", group="h"), "'g'", "'h'")


def test_formula_without_tilde(frame):
    _data_error(lambda: fit_lmm(frame, "y + x"), "'~'")


# Inputs the core once accepted silently (found while writing these tests); each now gets a DataError.


def test_data_that_are_not_a_dataframe(frame):
    _data_error(lambda: fit_lmm(frame.to_dict(orient="list"), "y ~ x + (1 | g)"), "DataFrame")


def test_constant_response(frame):
    # once: converged=True, sigma2_resid ~ 1e-32 and a criterion of about -4094
    _data_error(lambda: fit_lmm(frame.assign(y=1.0), "y ~ x + (1 | g)"), "'y'", "constant")


def test_one_row_per_group(frame):
    # lme4: "number of levels of each grouping factor must be < number of observations";
    # the core once returned theta ~ 7.7e3 and reported convergence.
    data = frame.assign(g=np.arange(len(frame)))
    _data_error(lambda: fit_lmm(data, "y ~ x + (1 | g)"), "'g'")


# --- missing values -----------------------------------------------------------------------------


def test_rows_with_missing_values_are_dropped_with_a_warning(frame):
    data = frame.copy()
    data.loc[[2, 17], "x"] = np.nan
    data.loc[[17, 40, 41], "y"] = np.nan
    with pytest.warns(RowsDroppedWarning, match=re.escape("Dropped 4 of 60 rows")) as record:
        fit = fit_lmm(data, "y ~ x + (1 | g)")
    assert "x: 2" in str(record[0].message) and "y: 3" in str(record[0].message)
    assert fit.n_dropped == 4 and fit.n_obs == 56
    complete = fit_lmm(data.dropna(subset=["x", "y"]), "y ~ x + (1 | g)")
    assert complete.n_dropped == 0
    np.testing.assert_allclose(fit.fe_params, complete.fe_params, rtol=1e-12)
    assert fit.criterion == pytest.approx(complete.criterion, rel=1e-12)
    with pytest.warns(RowsDroppedWarning):
        assert fit_ols(data, "y ~ x").n_dropped == 4


def test_missing_values_in_unused_columns_drop_nothing(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RowsDroppedWarning)
        fit = fit_lmm(frame.assign(unused=np.nan), "y ~ x + (1 | g)")
    assert fit.n_dropped == 0 and fit.n_obs == len(frame)


@pytest.mark.parametrize("categorical", [True, False], ids=["categorical", "strings"])
def test_a_group_that_loses_all_its_rows_disappears(frame, categorical):
    data = frame.assign(x=np.where(frame["g"] == "g3", np.nan, frame["x"]))
    if categorical:
        data["g"] = pd.Categorical(data["g"])
    with pytest.warns(RowsDroppedWarning, match="Dropped 10 of 60"):
        fit = fit_lmm(data, "y ~ x + (1 | g)")
    assert fit.n_groups == 5 and "g3" not in fit.ranef.index
    assert list(fit.ranef.index) == ["g0", "g1", "g2", "g4", "g5"]
    rest = fit_lmm(frame[frame["g"] != "g3"], "y ~ x + (1 | g)")
    np.testing.assert_allclose(fit.ranef.to_numpy(), rest.ranef.to_numpy(), rtol=1e-10)


def test_unused_categories_of_the_group_are_dropped(frame):
    data = frame.assign(g=pd.Categorical(frame["g"], categories=["zz", *sorted(set(frame["g"]))]))
    fit = fit_lmm(data, "y ~ x + (1 | g)")
    assert fit.n_groups == 6 and "zz" not in fit.ranef.index


# --- categories and reference levels --------------------------------------------------------------


def test_string_levels_are_sorted_so_the_first_is_the_reference(frame):
    assert frame["arm"].iloc[0] != "a"  # the data do not start with the reference level
    fit = fit_lmm(frame, "y ~ arm + (1 | g)")
    assert list(fit.fe_params.index) == ["Intercept", "arm[T.b]", "arm[T.c]"]
    ols = fit_ols(frame, "y ~ arm")
    assert ols.params["Intercept"] == pytest.approx(frame.loc[frame["arm"] == "a", "y"].mean())


def test_category_order_is_respected(frame):
    data = frame.assign(arm=pd.Categorical(frame["arm"], categories=["c", "a", "b"]))
    fit = fit_lmm(data, "y ~ arm + (1 | g)")
    assert list(fit.fe_params.index) == ["Intercept", "arm[T.a]", "arm[T.b]"]
    ols = fit_ols(data, "y ~ arm")
    assert ols.params["Intercept"] == pytest.approx(frame.loc[frame["arm"] == "c", "y"].mean())


def test_set_reference_moves_the_reference_level(frame):
    data = frame.assign(two=np.where(frame["arm"] == "a", "ctrl", "treat"))
    default = fit_lmm(data, "y ~ two + (1 | g)")
    swapped = fit_lmm(set_reference(data, "two", "treat"), "y ~ two + (1 | g)")
    assert list(swapped.fe_params.index) == ["Intercept", "two[T.ctrl]"]
    assert swapped.fe_params["two[T.ctrl]"] == pytest.approx(-default.fe_params["two[T.treat]"])
    assert swapped.bse.iloc[1] == pytest.approx(default.bse.iloc[1])
    assert swapped.criterion == pytest.approx(default.criterion, abs=1e-9)
    _data_error(lambda: set_reference(data, "two", "placebo"), "'placebo'", "'ctrl'")


# --- results --------------------------------------------------------------------------------------


def test_results_are_frozen(frame):
    fit = fit_lmm(frame, "y ~ x + (1 | g)")
    ols = fit_ols(frame, "y ~ x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.theta = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.fe_params = fit.fe_params * 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        ols.params = ols.params * 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.stats.ete = 0.0


def test_group_argument_equals_the_formula_term(frame):
    a = fit_lmm(frame, "y ~ x + (1 | g)")
    b = fit_lmm(frame, "y ~ x", group="g")
    assert (a.group, a.response) == (b.group, b.response) == ("g", "y")
    pd.testing.assert_series_equal(a.fe_params, b.fe_params)
    pd.testing.assert_series_equal(a.bse, b.bse)
    pd.testing.assert_series_equal(a.ranef, b.ranef)
    pd.testing.assert_series_equal(a.ranef_sd, b.ranef_sd)
    assert (a.theta, a.criterion, a.sigma2_group, a.sigma2_resid) == (
        b.theta,
        b.criterion,
        b.sigma2_group,
        b.sigma2_resid,
    )
    assert a.theta > 0


def test_fitted_plus_residuals_is_the_response(frame):
    fit = fit_lmm(frame, "y ~ x + (1 | g)")
    np.testing.assert_allclose(fit.fitted() + fit.resid(), frame["y"].to_numpy(), rtol=1e-12)
    marginal = fit.fitted(include_random=False)
    np.testing.assert_allclose(
        marginal, fit.fe_params["Intercept"] + fit.fe_params["x"] * frame["x"], rtol=1e-12
    )


# --- the algebra, against dense textbook formulas ---------------------------------------------------


@pytest.fixture(scope="module")
def unbalanced():
    data = simulate_clustered(
        n_clusters=7, n_obs=90, size_imbalance=1.2, share_spread=1.0, sigma_group=0.5, seed=11
    )
    design = build_design(data, "y ~ condition + (1 | cluster)")
    assert len(set(design.stats.counts.tolist())) > 3  # really unbalanced
    return design


def _dense(design, theta):
    X, y, codes = design.X, design.y, design.group_codes
    n, p = X.shape
    Z = np.zeros((n, codes.max() + 1))
    Z[np.arange(n), codes] = 1.0
    V = np.eye(n) + theta**2 * Z @ Z.T  # V / sigma^2
    V_inv = np.linalg.inv(V)
    A = X.T @ V_inv @ X
    beta = np.linalg.solve(A, X.T @ V_inv @ y)
    r = y - X @ beta
    r2 = float(r @ V_inv @ r)
    _, logdet_v = np.linalg.slogdet(V)
    _, logdet_a = np.linalg.slogdet(A)
    ml = logdet_v + n * (1 + np.log(2 * np.pi * r2 / n))
    reml = logdet_v + logdet_a + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
    return {"beta": beta, "A": A, "r2": r2, "ml": ml, "reml": reml, "Z": Z, "V_inv": V_inv, "r": r}


@pytest.mark.parametrize("theta", [0.0, 0.3, 1.0, 4.0])
def test_criterion_matches_the_dense_formula(unbalanced, theta):
    dense = _dense(unbalanced, theta)
    stats = unbalanced.stats
    assert criterion(stats, theta, reml=True) == pytest.approx(dense["reml"], rel=1e-11)
    assert criterion(stats, theta, reml=False) == pytest.approx(dense["ml"], rel=1e-11)
    prof = profile(stats, theta, reml=True)
    np.testing.assert_allclose(prof.beta, dense["beta"], rtol=1e-10)
    assert prof.r2 == pytest.approx(dense["r2"], rel=1e-10)
    sigma2 = dense["r2"] / (stats.n_obs - stats.n_params)
    np.testing.assert_allclose(prof.cov_beta, sigma2 * np.linalg.inv(dense["A"]), rtol=1e-10)


def test_ml_deviance_is_minus_twice_the_gaussian_log_likelihood(unbalanced):
    stats = unbalanced.stats
    theta, _ = optimize_theta(stats, reml=False)
    prof = profile(stats, theta, reml=False)
    X, y, codes = unbalanced.X, unbalanced.y, unbalanced.group_codes
    n = len(y)
    Z = np.zeros((n, codes.max() + 1))
    Z[np.arange(n), codes] = 1.0
    cov = prof.sigma2 * np.eye(n) + prof.sigma2_group * Z @ Z.T
    resid = y - X @ prof.beta
    _, logdet = np.linalg.slogdet(cov)
    minus_two_loglik = logdet + resid @ np.linalg.solve(cov, resid) + n * np.log(2 * np.pi)
    assert prof.criterion == pytest.approx(minus_two_loglik, rel=1e-11)


def test_conditional_modes_are_the_blup(unbalanced):
    data = pd.DataFrame(
        {"y": unbalanced.y, "x": unbalanced.X[:, 1], "g": unbalanced.group_codes.astype(str)}
    )
    fit = fit_lmm(data, "y ~ x + (1 | g)")
    dense = _dense(unbalanced, fit.theta)
    blup = fit.theta**2 * dense["Z"].T @ dense["V_inv"] @ dense["r"]
    np.testing.assert_allclose(fit.ranef.to_numpy(), blup, rtol=1e-9)
    counts = unbalanced.stats.counts
    c = fit.theta**2 / (1 + counts * fit.theta**2)
    np.testing.assert_allclose(fit.ranef_sd.to_numpy(), np.sqrt(fit.sigma2_resid * c), rtol=1e-12)


def test_optimum_is_a_minimum_of_the_criterion(unbalanced):
    stats = unbalanced.stats
    for reml in (True, False):
        theta, converged = optimize_theta(stats, reml)
        assert converged and theta > 0
        best = criterion(stats, theta, reml)
        for step in (1e-4, 1e-3, 1e-2):
            assert best <= criterion(stats, theta * (1 + step), reml)
            assert best <= criterion(stats, theta * (1 - step), reml)


def test_criterion_accepts_arrays_and_rejects_negative_theta(unbalanced):
    stats = unbalanced.stats
    thetas = np.array([[0.0, 0.5], [1.0, 2.0]])
    values = criterion(stats, thetas)
    assert values.shape == (2, 2)
    assert values[1, 0] == criterion(stats, 1.0)
    with pytest.raises(ValueError, match="theta"):
        criterion(stats, -0.1)


def test_boundary_fit_is_exactly_zero():
    fit = fit_lmm(load_dataset("dyestuff2"), "Yield ~ 1 + (1 | Batch)")
    assert fit.theta == 0.0 and fit.sigma2_group == 0.0 and fit.singular
    assert (fit.ranef == 0).all()


# --- cost does not grow with rows ---------------------------------------------------------------------


def test_sufficient_statistics_have_shapes_independent_of_rows():
    shapes = []
    for n_obs in (500, 50_000):
        data = simulate_clustered(n_clusters=24, n_obs=n_obs, share_spread=0.5, seed=2)
        stats = build_design(data, "y ~ condition + (1 | cluster)").stats
        assert isinstance(stats, SufficientStats)
        assert stats.n_obs == n_obs
        arrays = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
        shapes.append({name: np.shape(value) for name, value in arrays.items()})
    assert shapes[0] == shapes[1]
    # every array is sized by the clusters (24) or the fixed effects (2), never by the rows
    assert {"counts", "sum_q", "sum_e", "r_factor", "beta_ols"} <= set(shapes[0])
    assert shapes[0]["counts"] == (24,) and shapes[0]["sum_q"] == (24, 2)
    assert all(set(shape) <= {24, 2} for shape in shapes[0].values()), shapes[0]


def test_fit_from_aggregates_equals_fit_from_rows(unbalanced):
    X, y, codes = unbalanced.X, unbalanced.y, unbalanced.group_codes
    J = codes.max() + 1
    sum_x = np.vstack([X[codes == j].sum(axis=0) for j in range(J)])
    sum_y = np.array([y[codes == j].sum() for j in range(J)])
    stats = stats_from_cross_products(
        np.bincount(codes), sum_x, sum_y, X.T @ X, X.T @ y, float(y @ y)
    )
    for theta in (0.0, 0.7, 3.0):
        for reml in (True, False):
            assert criterion(stats, theta, reml) == pytest.approx(
                criterion(unbalanced.stats, theta, reml), rel=1e-10
            )
    assert optimize_theta(stats)[0] == pytest.approx(optimize_theta(unbalanced.stats)[0], rel=1e-6)


def test_infinite_value_in_a_dropped_row_is_no_error(frame):
    """As in R, rows with a missing value go first; an infinite value only counts if its row stays."""
    data = frame.copy()
    data.loc[3, "x"] = np.inf
    data.loc[3, "y"] = np.nan
    with pytest.warns(RowsDroppedWarning, match="Dropped 1 of 60 rows"):
        fit = fit_lmm(data, "y ~ x + (1 | g)")
    assert fit.n_obs == 59
    data.loc[5, "x"] = -np.inf
    _data_error(lambda: fit_lmm(data, "y ~ x + (1 | g)"), "'x'", "infinite")


def test_dotted_column_names_in_backticks(frame):
    data = frame.rename(columns={"x": "dose.mg"})
    fit = fit_lmm(data, "y ~ `dose.mg` + (1 | g)")
    assert list(fit.fe_params.index) == ["Intercept", "dose.mg"]


def test_summary_with_three_fixed_effects(frame):
    data = frame.assign(z=np.arange(len(frame)) % 7 * 0.1)
    text = fit_lmm(data, "y ~ x + z + (1 | g)").summary()
    assert "Correlation of Fixed Effects:" in text and text.splitlines()[-1].startswith("z")


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ arm + (1 | g)",
        "y ~ arm * flag + (1 | g)",
        "y ~ 0 + arm + site + (1 | g)",
        "y ~ 1 + (1 | g)",
    ],
)
@pytest.mark.parametrize("reml", [True, False])
def test_cell_path_equals_row_path(formula, reml):
    """With only categorical predictors the statistics come from cell sums; they must equal the rows'."""
    rng = np.random.default_rng(7)
    n = 3000
    g = rng.integers(0, 40, size=n)
    data = pd.DataFrame(
        {
            "y": rng.normal(size=n) + rng.normal(size=40)[g] + 1e3,
            "arm": pd.Categorical(
                rng.choice(["c", "a", "b"], size=n), categories=["c", "a", "b", "z"]
            ),
            "flag": rng.random(n) < 0.3,
            "site": rng.choice(["north", "south"], size=n),
            "g": [f"g{k:02d}" for k in g],
        }
    )
    data.loc[rng.choice(n, size=25, replace=False), "arm"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        cells = build_design(data, formula, method="cells")
        rows = build_design(data, formula, method="rows")
    assert cells.n_dropped == rows.n_dropped == (25 if "arm" in formula else 0)
    assert cells.term_names == rows.term_names
    assert np.array_equal(cells.X, rows.X) and np.array_equal(cells.y, rows.y)
    a = fit_lmm_from_stats(cells.stats, cells.term_names, reml=reml)
    b = fit_lmm_from_stats(rows.stats, rows.term_names, reml=reml)
    assert np.allclose(a.fe_params, b.fe_params, rtol=1e-10, atol=1e-10)
    assert np.allclose(a.bse, b.bse, rtol=1e-9)
    assert a.criterion == pytest.approx(b.criterion, abs=1e-8)
    assert a.sigma2_group == pytest.approx(b.sigma2_group, rel=1e-8)
    assert np.allclose(a.ranef, b.ranef, rtol=1e-8, atol=1e-10)


def test_numeric_predictors_take_the_row_path(frame):
    with pytest.raises(ValueError, match="categorical"):
        build_design(frame, "y ~ x + (1 | g)", method="cells")


def test_library_refuses_a_column_named_intercept(frame):
    _data_error(
        lambda: fit_lmm(frame.assign(Intercept=frame["x"]), "y ~ Intercept + (1 | g)"),
        "'Intercept'",
    )


def test_library_refuses_empty_backticks(frame):
    _data_error(lambda: fit_lmm(frame, "y ~ `` + (1 | g)"), "empty backticks")


# --- theta beyond the old cap of 1e4 (issue 10) ----------------------------------------------------------

REFERENCE_DIR = Path(__file__).parent / "reference"
LARGE_THETA = json.loads((REFERENCE_DIR / "large_theta_reference.json").read_text())["fits"]


def _large_theta_data() -> pd.DataFrame:
    spec = importlib.util.spec_from_file_location(
        "large_theta_data", REFERENCE_DIR / "large_theta_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = module.large_theta_data()
    # the file R read holds exactly these numbers
    pd.testing.assert_frame_equal(pd.read_csv(module.CSV), data, check_exact=True)
    return data


@pytest.mark.parametrize("key", sorted(LARGE_THETA))
def test_theta_beyond_1e4_is_fitted_as_lme4_fits_it(key):
    """sigma_b = 1, sigma = 3e-5: theta ~ 4e4 (lme4 1.1-31, tests/reference/large_theta_reference.R).

    At this theta the criterion's value carries rounding of about eps W_ee / r2 (r2, about N sigma^2,
    is what is left of within sums of squares of order 1), in lme4 (whose PLS solve at theta ~ 4e4 also
    moves its beta by up to 1e-6) and here: about 1e-6 with the predictor x. So the values are compared
    at 1e-5; the exact checks are the next test's, against the definition in 60-digit arithmetic.
    """
    ref = LARGE_THETA[key]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "did not converge" warning any more
        fit = fit_lmm(_large_theta_data(), ref["formula"], reml=ref["reml"])
    lmer, refined = ref["lmer"], ref["refined"]
    assert fit.theta > 1e4 and fit.converged and fit.optsum.converged
    assert fit.criterion <= lmer["criterion"] + 1e-5
    assert fit.criterion == pytest.approx(refined["criterion"], abs=1e-5)
    assert fit.theta == pytest.approx(refined["theta"], rel=2e-4)
    assert fit.sigma2_resid == pytest.approx(refined["sigma2"], rel=1e-4)
    assert fit.sigma2_group == pytest.approx(refined["sigma2_group"], rel=2e-4)
    np.testing.assert_allclose(fit.fe_params, list(refined["fixef"].values()), rtol=1e-5)
    np.testing.assert_allclose(fit.bse, list(refined["se"].values()), rtol=1e-4)


def _exact_criterion(groups, theta, reml: bool) -> Decimal:
    """The profiled criterion of y ~ 1 + (1 | g) from its definition, in 60-digit decimal arithmetic.

    Per cluster V_i / sigma^2 = I + u 1 1' (u = theta^2): log det = log(1 + n_i u) and
    (y_i - beta)' V_i^{-1} (y_i - beta) sigma^2 = W_i + n_i (ybar_i - beta)^2 / (1 + n_i u).
    """
    u = Decimal(theta) ** 2
    n_obs = sum(len(v) for v in groups)
    a = sum(Decimal(len(v)) / (1 + len(v) * u) for v in groups)
    beta = sum(len(v) * (sum(v) / len(v)) / (1 + len(v) * u) for v in groups) / a
    r2, logdet = Decimal(0), Decimal(0)
    for v in groups:
        n, mean = len(v), sum(v) / len(v)
        r2 += sum((t - mean) ** 2 for t in v) + n * (mean - beta) ** 2 / (1 + n * u)
        logdet += (1 + n * u).ln()
    dof = n_obs - 1 if reml else n_obs
    two_pi = 2 * Decimal("3.14159265358979323846264338327950288419716939937510582097494")
    value = logdet + dof * (1 + (two_pi * r2 / dof).ln())
    return value + a.ln() if reml else value


@pytest.mark.parametrize("reml", [True, False])
def test_theta_beyond_1e4_is_exact_against_the_definition(reml):
    data = _large_theta_data()
    fit = fit_lmm(data, "y ~ 1 + (1 | g)", reml=reml)
    groups = [[Decimal(float(v)) for v in rows["y"]] for _, rows in data.groupby("g", sort=True)]
    with localcontext() as ctx:
        ctx.prec = 60
        at = _exact_criterion(groups, fit.theta, reml)
        assert float(at) == pytest.approx(fit.criterion, abs=1e-10)
        # the estimate is the minimum: the criterion rises on both sides at 1e-7 relative
        for step in (Decimal("1e-7"), Decimal("-1e-7")):
            assert _exact_criterion(groups, Decimal(fit.theta) * (1 + step), reml) > at
        # balanced, intercept only: beta is the grand mean whatever theta
    assert fit.fe_params["Intercept"] == pytest.approx(data["y"].mean(), rel=1e-14)


def test_no_within_cluster_variation_is_said_in_one_line():
    """Only one cluster has two rows and x fits them exactly: sigma^2 = 0 and theta is infinite."""
    rng = np.random.default_rng(4)
    data = pd.DataFrame(
        {"g": [0, 1, 2, 3, 4, 5, 5], "x": rng.normal(size=7), "y": rng.normal(size=7)}
    )
    with pytest.warns(RuntimeWarning, match="no variation within clusters") as record:
        fit = fit_lmm(data, "y ~ x + (1 | g)")
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert not fit.converged and not fit.optsum.converged


# --- responses at the edge of double precision (issue 10) -----------------------------------------------


def test_response_shifted_by_1e13_is_fitted(frame):
    shifted = frame.assign(y=frame["y"] + 1e13)
    # the same numbers, moved back exactly (Sterbenz: the subtraction of nearby doubles is exact)
    same = shifted.assign(y=shifted["y"] - 1e13)
    fit = fit_lmm(shifted, "y ~ x + (1 | g)")
    ref = fit_lmm(same, "y ~ x + (1 | g)")
    # what is left is rounding at the size of 1e13 (ulp 2e-3) against a spread of about 1
    assert fit.fe_params["x"] == pytest.approx(ref.fe_params["x"], abs=0.01 * ref.bse["x"])
    assert fit.fe_params["Intercept"] - 1e13 == pytest.approx(
        ref.fe_params["Intercept"], abs=0.01 * ref.bse["Intercept"]
    )
    assert fit.sigma2_resid == pytest.approx(ref.sigma2_resid, rel=1e-3)
    assert fit.sigma2_group == pytest.approx(ref.sigma2_group, rel=1e-3)


def test_response_spread_below_double_precision_is_diagnosed(frame):
    # at 1e13 doubles are 2e-3 apart: a spread of 0.05 is about 25 of those steps
    tiny = frame.assign(y=1e13 + 0.05 * (frame["y"] - frame["y"].mean()))
    message = _data_error(lambda: fit_lmm(tiny, "y ~ x + (1 | g)"), "'y'", "double precision")
    assert "constant" not in message
    # a spread of 1e-4 rounds away entirely: the stored response is constant
    gone = frame.assign(y=1e13 + 1e-4 * frame["y"])
    _data_error(lambda: fit_lmm(gone, "y ~ x + (1 | g)"), "'y'", "constant")


# --- a Design is fitted as it is ------------------------------------------------------------------


def test_fit_lmm_fit_ols_and_decompose_take_a_design(frame):
    from helpers.decompose import decompose

    design = build_design(frame, "y ~ x + arm + (1 | g)")
    from_rows = fit_lmm(frame, "y ~ x + arm + (1 | g)")
    from_design = fit_lmm(design)
    assert from_design.design is design
    assert from_design.criterion == from_rows.criterion
    pd.testing.assert_series_equal(from_design.fe_params, from_rows.fe_params)
    ols = fit_ols(design)
    pd.testing.assert_series_equal(ols.params, fit_ols(frame, "y ~ x + arm", group="g").params)
    assert ols.bse_cluster is not None  # the design's grouping column clusters OLS
    dec = decompose(design, reml=False)
    assert dec.lmm_fit.design is design and not dec.lmm_fit.reml
    pd.testing.assert_frame_equal(
        dec.estimates, decompose(frame, "y ~ x + arm + (1 | g)", reml=False).estimates
    )


def test_a_design_refuses_another_formula_or_group(frame):
    design = build_design(frame, "y ~ x + (1 | g)")
    _data_error(
        lambda: fit_lmm(design, "y ~ arm + (1 | g)"), "'y ~ x + (1 | g)'", "leave the formula out"
    )
    _data_error(lambda: fit_ols(design, group="h"), "'g'", "'h'")
    _data_error(lambda: fit_lmm(frame), "formula is needed")
    assert fit_lmm(design, "y ~ x + (1 | g)", group="g").design is design


def test_fit_ols_cluster_is_deprecated_for_group(frame):
    with pytest.warns(DeprecationWarning, match="group="):
        old = fit_ols(frame, "y ~ x", cluster="g")
    new = fit_ols(frame, "y ~ x", group="g")
    pd.testing.assert_series_equal(old.bse_cluster, new.bse_cluster)
    assert new.cluster == "g"


def test_decompose_refuses_random_slopes_in_one_line(frame):
    from helpers.decompose import decompose

    design = build_design(frame, "y ~ x + (1 + x | g)", random_slopes=True)
    _data_error(lambda: decompose(design), "random intercept only", "fit_lmm")
    assert fit_lmm(design).theta.shape == (3,)


def test_ols_residual_variance_is_sigma2_resid_and_sigma2_is_a_deprecated_alias(frame):
    ols = fit_ols(frame, "y ~ x")
    lmm = fit_lmm(frame, "y ~ x + (1 | g)")
    rss = float(np.sum(ols.resid**2))
    assert ols.sigma2_resid == pytest.approx(rss / ols.df_resid, rel=1e-12)
    assert hasattr(lmm, "sigma2_resid")  # one name for the residual variance in both results
    with pytest.warns(DeprecationWarning, match="sigma2_resid"):
        alias = ols.sigma2
    assert alias == ols.sigma2_resid


def test_ols_summary_prints_r_squared_f_and_reference_levels_as_r():
    """summary(lm(Reaction ~ Days, sleepstudy)) in R prints 'Multiple R-squared:  0.2865,
    Adjusted R-squared:  0.2825' and 'F-statistic: 71.46 on 1 and 178 DF,  p-value: 9.894e-15'; the
    OLS summary lacked both lines and the reference levels that LmmResult.summary shows."""
    from helpers.data import load_dataset

    sleep = load_dataset("sleepstudy")
    fit = fit_ols(sleep, "Reaction ~ Days")
    assert fit.rsquared == pytest.approx(0.2865, abs=5e-5)
    assert fit.rsquared_adj == pytest.approx(0.2825, abs=5e-5)
    assert fit.fvalue == pytest.approx(71.46, abs=5e-3)
    assert fit.f_pvalue == pytest.approx(9.894e-15, rel=1e-3)
    text = fit.summary()
    assert "Multiple R-squared:  0.2865,\tAdjusted R-squared:  0.2825" in text
    assert "F-statistic: 71.46 on 1 and 178 DF,  p-value: 9.894e-15" in text
    # R^2 of a model with an intercept is the squared correlation of y and the fitted values
    fitted = sleep["Reaction"].to_numpy() - fit.resid
    r = np.corrcoef(sleep["Reaction"], fitted)[0, 1]
    assert fit.rsquared == pytest.approx(r * r, rel=1e-12)
    factor = fit_ols(
        sleep.assign(half=np.where(sleep.Days < 5, "early", "late")), "Reaction ~ half"
    )
    assert factor.reference_levels == {"half": "early"}
    assert "Reference levels: half = early" in factor.summary()
