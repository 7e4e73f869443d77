"""The formula parser and the model columns it builds: R's syntax, R's names, one-line refusals, and
data types that must fit like plain text columns (issue 10, sections 2 to 4)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import build_design, fit_lmm, fit_ols
from helpers.design import RowsDroppedWarning, model_columns
from helpers.formula import FUNCTIONS, parse, parse_formula
from helpers.large import design_from_file, fit_lmm_file
from helpers.results import r_term_name
from helpers.validate import DataError

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def frame():
    rng = np.random.default_rng(11)
    n = 90
    g = np.repeat(np.arange(9), 10)
    return pd.DataFrame(
        {
            "y": rng.normal(size=n) + rng.normal(size=9)[g],
            "x": rng.uniform(1, 5, size=n),
            "age": rng.uniform(20, 60, size=n),
            "wave": np.tile([1, 2, 3], n // 3),
            "arm": rng.choice(["b", "a", "c"], size=n),
            "b": rng.random(n) < 0.5,
            "g": [f"g{k}" for k in g],
        }
    )


# --- columns inside transforms, and refusals ---------------------------------------------------


def test_columns_used_only_inside_transforms_are_found():
    assert model_columns("y ~ scale(age) + factor(x) + (1 | g)") == ["age", "g", "x", "y"]
    assert model_columns("log(y) ~ poly(age, 2) + offset(log(t)) + (1 | g)") == [
        "age",
        "g",
        "t",
        "y",
    ]


@pytest.mark.parametrize("piece", ["cos(x)", "abs(x)", "splines::ns(x, 3)", "x[1]", "'x'"])
def test_an_unsupported_piece_is_named_with_the_supported_list(frame, piece):
    with pytest.raises(DataError) as info:
        fit_lmm(frame, f"y ~ {piece} + (1 | g)")
    message = str(info.value)
    assert "\n" not in message
    shown = piece.split("::")[0] if "::" in piece else piece
    assert shown.split("(")[0].strip("'").split("[")[0] in message
    for name in FUNCTIONS:
        assert name in message


def test_i_with_a_power_is_a_power_not_xor(frame):
    fit = fit_ols(frame, "y ~ x + I(x^2)")
    squared = fit_ols(frame.assign(x2=frame["x"] ** 2), "y ~ x + x2")
    assert fit.params["I(x^2)"] == pytest.approx(squared.params["x2"], rel=1e-10)
    assert fit_ols(frame, "y ~ x + I(x**2)").params.index[-1] == "I(x^2)"


def test_a_transform_that_is_undefined_is_refused_naming_it(frame):
    with pytest.raises(DataError, match=re.escape("'log(x - 3)'")):
        fit_lmm(frame, "y ~ log(x - 3) + (1 | g)")


def test_random_slopes_are_parsed_structured_and_refused():
    model = parse("y ~ x + (1 + x | g) + (z || h)")
    first, second = model.bars
    assert (first.terms, first.intercept, first.group, first.double) == (
        (("x",),),
        True,
        "g",
        False,
    )
    assert (second.terms, second.group, second.double) == ((("z",),), "h", True)
    with pytest.raises(DataError, match=re.escape("'(1 + x | g)' is not supported")):
        parse_formula("y ~ x + (1 + x | g)")


def test_a_backticked_group_may_contain_parentheses(frame):
    data = frame.rename(columns={"g": "site (id)"})
    fit = fit_lmm(data, "y ~ x + (1 | `site (id)`)")
    plain = fit_lmm(frame, "y ~ x + (1 | g)")
    assert fit.group == "site (id)" and fit.criterion == pytest.approx(plain.criterion, abs=1e-9)


def test_a_backticked_group_with_parentheses_on_the_large_path(frame, tmp_path):
    path = tmp_path / "d.csv"
    frame.rename(columns={"g": "site (id)"}).to_csv(path, index=False)
    fit = fit_lmm_file(path, "y ~ x + (1 | `site (id)`)")
    assert fit.criterion == pytest.approx(fit_lmm(frame, "y ~ x + (1 | g)").criterion, abs=1e-8)


# --- names as R prints them ----------------------------------------------------------------------


def test_full_coding_without_intercept_is_named_as_r(frame):
    fit = fit_lmm(frame, "y ~ 0 + arm + x + (1 | g)")
    assert [r_term_name(n) for n in fit.fe_params.index] == ["arma", "armb", "armc", "x"]
    assert "\narma " in fit.summary() and "arm[a]" not in fit.summary()


@pytest.mark.parametrize("dtype", ["bool", "boolean"])
def test_logical_predictors_are_named_btrue(frame, dtype):
    data = frame.assign(b=frame["b"].astype(dtype))
    fit = fit_lmm(data, "y ~ b + x + (1 | g)")
    assert [r_term_name(n) for n in fit.fe_params.index] == ["(Intercept)", "bTRUE", "x"]
    numeric = fit_lmm(frame.assign(b=frame["b"].astype(float)), "y ~ b + x + (1 | g)")
    assert fit.fe_params.iloc[1] == pytest.approx(numeric.fe_params["b"], rel=1e-10)


def test_logical_predictor_on_the_large_path_is_named_btrue(frame, tmp_path):
    path = tmp_path / "d.parquet"
    frame.to_parquet(path)
    design = design_from_file(path, "y ~ b + x + (1 | g)")
    assert design.term_names == build_design(frame, "y ~ b + x + (1 | g)").term_names
    assert r_term_name(design.term_names[1]) == "bTRUE"


def test_ordered_categorical_gets_polynomial_contrasts(frame, tmp_path):
    levels = ["low", "mid", "high"]
    data = frame.assign(dose=pd.Categorical(np.tile(levels, 30), categories=levels, ordered=True))
    fit = fit_lmm(data, "y ~ dose + (1 | g)")
    assert [r_term_name(n) for n in fit.fe_params.index] == ["(Intercept)", "dose.L", "dose.Q"]
    unordered = fit_lmm(data.assign(dose=data["dose"].cat.as_unordered()), "y ~ dose + (1 | g)")
    # another parametrisation of the same model: the variances agree (REML's criterion moves by a
    # constant, log det of the change of basis)
    assert fit.sigma2_group == pytest.approx(unordered.sigma2_group, rel=1e-6)
    assert fit.sigma2_resid == pytest.approx(unordered.sigma2_resid, rel=1e-6)
    path = tmp_path / "d.parquet"
    data.to_parquet(path)
    large = fit_lmm_file(path, "y ~ dose + (1 | g)")
    assert list(large.fe_params.index) == list(fit.fe_params.index)
    np.testing.assert_allclose(large.fe_params, fit.fe_params, rtol=1e-8)


# --- reference levels ----------------------------------------------------------------------------


def test_reference_levels_are_exposed_and_printed(frame, tmp_path):
    data = frame.assign(wave=frame["wave"])
    fit = fit_lmm(data, "y ~ arm + factor(wave) + x + (1 | g)")
    assert fit.reference_levels == {"arm": "a", "factor(wave)": "1"}
    assert fit.design.reference_levels == fit.reference_levels
    assert "Reference levels: arm = a, factor(wave) = 1" in fit.summary()
    assert "Reference levels" not in fit_lmm(frame, "y ~ x + (1 | g)").summary()
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    assert design_from_file(path, "y ~ arm + x + (1 | g)").reference_levels == {"arm": "a"}


# --- nullable string columns fit like object columns ---------------------------------------------


STRING_TYPES = ["string", "string[pyarrow]", "object"]


@pytest.mark.parametrize("dtype", STRING_TYPES)
@pytest.mark.parametrize("path", ["rows", "cells"])
def test_string_dtypes_fit_like_object_columns(frame, dtype, path):
    base = frame.assign(arm=frame["arm"].astype(object), g=frame["g"].astype(object))
    data = frame.assign(arm=frame["arm"].astype(dtype), g=frame["g"].astype(dtype))
    data.loc[3, "arm"] = pd.NA if dtype != "object" else None
    base.loc[3, "arm"] = None
    formula = "y ~ arm + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        got = build_design(data, formula, path=path)
        expected = build_design(base, formula, method="rows")
    assert got.term_names == expected.term_names and got.n_dropped == 1
    np.testing.assert_array_equal(got.X, expected.X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        a = fit_lmm(data, "y ~ arm + x + (1 | g)")
        b = fit_lmm(base, "y ~ arm + x + (1 | g)")
    assert a.criterion == pytest.approx(b.criterion, abs=1e-10)


@pytest.mark.parametrize("dtype", ["string", "string[pyarrow]"])
def test_string_dtypes_on_the_large_path(frame, dtype, tmp_path):
    data = frame.assign(arm=frame["arm"].astype(dtype), g=frame["g"].astype(dtype))
    path = tmp_path / "d.parquet"
    data.to_parquet(path)
    large = fit_lmm_file(path, "y ~ arm + x + (1 | g)")
    rows = fit_lmm(pd.read_parquet(path), "y ~ arm + x + (1 | g)")
    assert list(large.fe_params.index) == list(rows.fe_params.index)
    assert large.criterion == pytest.approx(rows.criterion, abs=1e-8)


def test_predict_applies_the_fitted_transforms(frame):
    fit = fit_lmm(frame, "y ~ scale(x) + poly(age, 2) + factor(wave) + (1 | g)")
    again = fit.predict(frame, include_random=False).to_numpy()
    np.testing.assert_allclose(again, fit.fitted(include_random=False), rtol=1e-10)
    # one new row: the coefficients of scale() and poly() come from the fit, not from that row
    one = fit.predict(frame.iloc[[7]], include_random=False).to_numpy()
    assert one[0] == pytest.approx(fit.fitted(include_random=False)[7], rel=1e-10)


def test_predict_adds_the_offset_as_lme4_does(frame):
    """predict() ignored offset(): the prediction of y ~ x + offset(log(age)) lacked log(age)."""
    fit = fit_lmm(frame, "y ~ x + offset(log(age)) + (1 | g)")
    shifted = fit_lmm(frame.assign(z=frame.y - np.log(frame.age)), "z ~ x + (1 | g)")
    np.testing.assert_allclose(fit.fe_params, shifted.fe_params, rtol=1e-10)
    for random in (True, False):
        got = fit.predict(frame, include_random=random).to_numpy()
        want = shifted.predict(frame, include_random=random).to_numpy() + np.log(frame.age)
        np.testing.assert_allclose(got, want, rtol=1e-10)
    with pytest.raises(DataError, match="'age'"):
        fit.predict(frame.drop(columns="age"))


# --- the README's list is the parser's --------------------------------------------------------


def test_readme_lists_exactly_the_supported_functions():
    text = README.read_text()
    section = text.split("### What a formula may contain", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### ", 1)[0]
    listed = set(re.findall(r"`([A-Za-z.]+)\(", section))
    assert listed == set(FUNCTIONS)
