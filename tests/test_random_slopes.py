"""Random slopes (issue 13): every fit of ``tests/reference/random_slopes_reference.json`` against lme4.

Each of the 13 models, REML and ML, is fitted with :func:`helpers.fit_lmm` on the same rows R read:
sleepstudy (the package's copy, identical to lme4's), the three committed CSV files, and the two
question-shaped sets of 326,362 rows, which ``random_slopes_data.py --generated`` writes into a
temporary folder once per session (a few seconds). Compared with lme4 (the lowest criterion of four
optimisers):

- the criterion (REMLcrit or deviance): within 1e-6 of lme4's either way (ours is no higher than lme4's
  + 1e-6, and no lower than lme4's - 1e-6, which would mean a different likelihood);
- fixed effects (1e-6 relative), their SEs (1e-5 relative) and the whole ``vcov``;
- theta, VarCorr's variances and SDs (1e-5 relative), its correlations (1e-5 absolute) and covariances
  (1e-5 of the product of the two SDs, the same accuracy on the correlation scale);
- conditional modes and conditional covariances (1e-5 relative to each term's spread);
- ``isSingular``, n_obs, the number of groups, and every name as R prints it.

Bad input (one line, :class:`helpers.DataError`) is tested at the end.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import DataError, fit_lmm
from helpers.data import load_dataset
from helpers.results import r_term_name

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REF = json.loads((REFERENCE_DIR / "random_slopes_reference.json").read_text())
FITS = REF["fits"]
FIT_CASES = [(key, method) for key in FITS for method in ("reml", "ml")]
FIT_IDS = [f"{key}-{method}" for key, method in FIT_CASES]


def _data_module():
    spec = importlib.util.spec_from_file_location(
        "random_slopes_data", REFERENCE_DIR / "random_slopes_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Every data set of the reference, as R read it (text columns, R's factor levels)."""
    module = _data_module()
    folder = tmp_path_factory.mktemp("random_slopes")
    module.write_generated(folder)
    out = {"sleepstudy": load_dataset("sleepstudy")}
    for name in module.COMMITTED:
        out[name] = module.load_committed(name)
    stale = {}
    for name in ("question_slopes", "seed_question"):
        path = folder / module.GENERATED[name]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != REF["datasets"][name]["sha256"]:
            stale[name] = digest
        frame = pd.read_csv(path, dtype={"cluster": str})
        frame["condition"] = pd.Categorical(frame["condition"], categories=["unstim", "stim"])
        out[name] = frame
    out["_stale"] = stale
    return out


_FITTED: dict = {}


def _fit(datasets, key, method):
    spec = FITS[key]
    if spec["dataset"] in datasets["_stale"]:
        pytest.skip(
            f"the rows of {spec['dataset']!r} have changed since the lme4 reference was written "
            f"(SHA-256 {datasets['_stale'][spec['dataset']][:12]}... instead of "
            f"{REF['datasets'][spec['dataset']]['sha256'][:12]}...); rerun random_slopes_reference.R"
        )
    if (key, method) not in _FITTED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the three-term set drops rows with missing values
            _FITTED[key, method] = fit_lmm(
                datasets[spec["dataset"]], spec["formula"], reml=method == "reml"
            )
    return _FITTED[key, method], spec[method]


#: The two sets of 326,362 rows: a criterion of 6.6e5 determines theta to ~1e-6 only (lme4's four
#: optimisers spread as much), so variances agree to ~5e-5 there, not 1e-5.
QUESTION_SETS = {"question_slopes", "seed_question"}


def _rel(ours, ref, rtol, what):
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=0, err_msg=what)


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_criterion_within_1e6_of_lme4(datasets, key, method):
    fit, ref = _fit(datasets, key, method)
    assert fit.reml is (method == "reml")
    assert fit.criterion <= ref["criterion"] + 1e-6
    assert fit.criterion >= ref["criterion"] - 1e-6
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    assert fit.converged


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_fixed_effects_and_their_covariance(datasets, key, method):
    fit, ref = _fit(datasets, key, method)
    assert [r_term_name(n) for n in fit.fe_params.index] == list(ref["fixef"])
    _rel(fit.fe_params, list(ref["fixef"].values()), 1e-6, "fixef")
    _rel(fit.bse, list(ref["se"].values()), 1e-5, "se")
    assert ref["vcov"]["names"] == list(ref["fixef"])
    vcov = np.array(ref["vcov"]["rows"])
    scale = np.sqrt(np.outer(np.diag(vcov), np.diag(vcov)))
    # on the scale of the SEs' products: 2e-5, twice the SEs' tolerance, as a variance is an SE squared
    np.testing.assert_allclose(fit.cov_fe.to_numpy() / scale, vcov / scale, rtol=0, atol=2e-5)
    assert fit.sigma_resid == pytest.approx(ref["sigma"], rel=1e-5)


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_theta_in_lme4s_order(datasets, key, method):
    fit, ref = _fit(datasets, key, method)
    theta = np.atleast_1d(fit.theta)
    expected = np.array(list(ref["theta"].values()))
    assert theta.shape == expected.shape
    if fit.random is not None:
        assert isinstance(fit.theta, np.ndarray) and fit.theta.ndim == 1
        assert fit.random.theta_names == list(ref["theta"])
        lower = [0.0 if v is not None else -np.inf for v in ref["theta_lower"]]
        assert fit.random.theta_lower.tolist() == lower
    else:  # the random intercept keeps its float theta
        assert isinstance(fit.theta, float)
    # theta is as well determined as the criterion's flatness allows: lme4's own optimisers differ by
    # ~1e-6 on the question-shaped set
    np.testing.assert_allclose(theta, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_varcorr_as_data_frame(datasets, key, method):
    fit, ref = _fit(datasets, key, method)
    vc, expected = fit.varcorr, ref["varcorr"]
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert vc["grp"].tolist() == expected["grp"]
    assert vc["var1"].tolist() == expected["var1"]
    assert vc["var2"].tolist() == expected["var2"]
    variance = vc["var2"].isna().to_numpy()
    ref_vcov, ref_sdcor = np.array(expected["vcov"]), np.array(expected["sdcor"])
    rtol = 5e-5 if FITS[key]["dataset"] in QUESTION_SETS else 1e-5
    _rel(vc["vcov"][variance], ref_vcov[variance], rtol, "variances")
    _rel(vc["sdcor"][variance], ref_sdcor[variance], rtol, "SDs")
    if (~variance).any():
        variances = vc[variance]
        keys = zip(variances["grp"], variances["var1"], strict=True)
        sd = dict(zip(keys, variances["sdcor"], strict=True))
        pairs = vc[~variance]
        product = np.array(
            [sd[g, a] * sd[g, b] for g, a, b in pairs[["grp", "var1", "var2"]].values]
        )
        np.testing.assert_allclose(
            pairs["vcov"] / product, ref_vcov[~variance] / product, rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(pairs["sdcor"], ref_sdcor[~variance], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_conditional_modes_and_variances(datasets, key, method):
    fit, ref = _fit(datasets, key, method)
    ranef = ref["ranef"]
    table = fit.random_effects
    assert table.index.name == ranef["group"] == fit.group
    terms = ranef["terms"]
    assert list(table.columns) == terms + [f"condvar {t}" for t in terms]
    table = table.set_axis(table.index.astype(str)).loc[ranef["levels"]]
    for term in terms:
        modes = np.array(ranef["modes"][term])
        spread = np.sqrt(np.mean(modes * modes))
        if spread == 0:  # a term with variance exactly 0 (a singular fit): its modes are 0
            assert np.abs(table[term]).max() <= 1e-12 * max(1.0, fit.sigma_resid)
            continue
        np.testing.assert_allclose(table[term] / spread, modes / spread, rtol=0, atol=1e-5)
        condsd = np.array(ranef["condsd"][term])
        _rel(np.sqrt(table[f"condvar {term}"]), condsd, 1e-5, f"condsd {term}")
    if fit.random is not None:
        order = pd.Index(fit.ranef.index.astype(str)).get_indexer(ranef["levels"])
        ours = fit.ranef_cov[order]
        expected = np.array(ranef["condcov"]).reshape(ours.shape)
        diag = np.sqrt(np.einsum("jkk->jk", expected))
        scale = diag[:, :, None] * diag[:, None, :]
        ok = scale > 0
        np.testing.assert_allclose(ours[ok] / scale[ok], expected[ok] / scale[ok], atol=1e-5)


@pytest.mark.parametrize(("key", "method"), FIT_CASES, ids=FIT_IDS)
def test_singular_and_counts(datasets, key, method):
    fit, ref = _fit(datasets, key, method)
    assert fit.singular is ref["singular"]
    assert fit.n_obs == ref["n_obs"]
    assert {fit.group: fit.n_groups} == ref["n_groups"]


def test_the_question_shaped_sets_are_the_ones_r_read(datasets):
    """The generated question-shaped rows hash to what the reference records (else their fits skip)."""
    assert "question_slopes" not in datasets["_stale"]


# ---- the structure of the random part -----------------------------------------------------------------
def test_random_intercept_keeps_its_fast_path_and_gains_the_common_interface():
    sleep = load_dataset("sleepstudy")
    fit = fit_lmm(sleep, "Reaction ~ Days + (1 | Subject)")
    assert fit.random is None and fit.design.random is None
    assert isinstance(fit.theta, float) and fit.sigma2_group > 0
    assert fit.varcorr["vcov"].tolist() == pytest.approx([fit.sigma2_group, fit.sigma2_resid])
    assert fit.random_effects["(Intercept)"].tolist() == fit.ranef.tolist()
    same = fit_lmm(sleep, "Reaction ~ Days + (1 || Subject)")  # || of an intercept alone
    assert same.random is None and same.criterion == fit.criterion


def test_slopes_fields_and_summary():
    fit = fit_lmm(load_dataset("sleepstudy"), "Reaction ~ Days + (Days | Subject)")
    assert np.isnan(fit.sigma2_group)
    assert list(fit.ranef_sd.columns) == ["(Intercept)", "Days"]
    assert fit.ranef_cov.shape == (18, 2, 2)
    text = fit.summary()
    assert " Groups   Name        Variance Std.Dev. Corr" in text
    assert "Days           35.07    5.922 0.07" in text
    fitted = fit.fitted()
    design = fit.design
    manual = design.X @ fit.fe_params.to_numpy() + (
        fit.ranef[["(Intercept)", "Days"]].to_numpy()[design.group_codes] * design.random.Z
    ).sum(axis=1)
    np.testing.assert_allclose(fitted, manual, rtol=1e-12)
    assert np.abs(fit.resid()).max() < np.abs(design.y - fit.fitted(include_random=False)).max()


def test_a_factor_slope_and_a_factor_without_intercept():
    rng = np.random.default_rng(5)
    n, groups = 600, 30
    g = rng.integers(0, groups, n)
    arm = rng.choice(["a", "b"], n)
    y = rng.normal(size=n) + rng.normal(size=groups)[g] + (arm == "b") * rng.normal(size=groups)[g]
    df = pd.DataFrame({"y": y, "arm": arm, "g": g})
    fit = fit_lmm(df, "y ~ arm + (1 + arm | g)")
    assert fit.random.names == ["(Intercept)", "armb"]
    assert fit.random.theta_names == ["g.(Intercept)", "g.armb.(Intercept)", "g.armb"]
    cell = fit_lmm(
        df, "y ~ arm + (0 + arm | g)"
    )  # indicator coding: the same model, reparametrised
    assert cell.random.names == ["arma", "armb"]
    assert cell.criterion == pytest.approx(fit.criterion, abs=1e-6)


def test_block_sums_by_cells_equal_the_sums_over_rows():
    from helpers.design import build_design
    from helpers.random_terms import block_sums, distinct_rows

    rng = np.random.default_rng(8)
    n, groups = 3_000, 40
    g = rng.integers(0, groups, n)
    arm = rng.choice(["a", "b", "c"], n)
    y = (
        1e6
        + rng.normal(size=n)
        + rng.normal(size=groups)[g]
        + (arm == "b") * rng.normal(size=groups)[g]
    )
    df = pd.DataFrame({"y": y, "arm": arm, "g": g})
    design = build_design(df, "y ~ arm + (1 + arm | g)", random_slopes=True)
    rows = design.rows
    Z, stats = design.random.Z, design.stats
    cells = distinct_rows(rows.X, Z, stats.n_groups)
    assert cells is not None and len(cells[1]) == 3
    by_cells = block_sums(
        Z, rows.X, rows.y, rows.group_codes, stats.n_groups, stats.r_factor, stats.beta_ols, cells
    )
    by_rows = block_sums(
        Z, rows.X, rows.y, rows.group_codes, stats.n_groups, stats.r_factor, stats.beta_ols
    )
    for a, b in zip(by_cells, by_rows, strict=True):
        for name in ("ztz", "ztx", "xtx", "zty", "xty", "yty"):
            if hasattr(a, name):
                np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9)
    # a numeric predictor has as many distinct rows as rows: the row path
    x = rng.normal(size=n)
    assert distinct_rows(np.column_stack([np.ones(n), x]), np.ones((n, 1)), groups) is None


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ arm + (1 + arm | g)",
        "y ~ arm + (arm || g)",
        "y ~ arm + (0 + arm | g)",
        "y ~ arm * kind + (1 | g) + (0 + kind | g)",
    ],
)
def test_the_design_pass_gives_the_row_path_random_effects(formula):
    """When every variable is a factor, the random-effects blocks come from the design's one grouped
    pass (its cluster x cell combinations), and Z is built from its distinct rows only when asked for:
    the same blocks, names and Z as the row path, and the same fit."""
    from helpers.design import build_design

    rng = np.random.default_rng(21)
    n, groups = 4_000, 30
    g = rng.integers(0, groups, n)
    arm = rng.choice(["a", "b", "c"], n)
    kind = rng.choice(["p", "r"], n)
    y = (
        1e6
        + rng.normal(size=n)
        + rng.normal(size=groups)[g]
        + (arm == "b") * rng.normal(size=groups)[g]
    )
    df = pd.DataFrame({"y": y, "arm": arm, "kind": kind, "g": g})
    cells = build_design(df, formula, random_slopes=True)
    rows = build_design(df, formula, random_slopes=True, method="rows")
    assert callable(cells.random.z_source) and "_z" not in cells.random.__dict__
    assert isinstance(rows.random.z_source, np.ndarray)
    assert cells.random.names == rows.random.names
    assert cells.random.theta_names == rows.random.theta_names
    # the y-side sums are of residuals of y ~ 1e6: the rows' own rounding is about 1e-10 a row
    for part, atol in (("blocks", 1e-9), ("response", 1e-7)):
        a, b = getattr(cells.random, part), getattr(rows.random, part)
        for name in ("ztz", "ztx", "xtx", "zty", "xty", "yty"):
            if hasattr(a, name):
                np.testing.assert_allclose(
                    getattr(a, name), getattr(b, name), rtol=1e-9, atol=atol, err_msg=name
                )
    again = pickle.loads(pickle.dumps(cells))  # the report hands its design over as a pickle
    np.testing.assert_array_equal(again.random.Z, rows.random.Z)
    np.testing.assert_array_equal(cells.random.Z, rows.random.Z)
    assert not cells.random.Z.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = fit_lmm(cells), fit_lmm(rows)
    assert a.criterion == pytest.approx(b.criterion, rel=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=1e-9, atol=1e-8)


def test_a_factor_slope_constant_within_every_group_is_refused_on_the_cell_path():
    rng = np.random.default_rng(9)
    g = np.repeat(np.arange(20), 15)
    kind = np.where(g % 2 == 0, "p", "r")  # one level per group
    df = pd.DataFrame({"y": rng.normal(size=300), "kind": kind, "g": g})
    with pytest.raises(
        DataError, match="'kindr' is on a variable that is constant within every group"
    ):
        fit_lmm(df, "y ~ kind + (1 + kind | g)")


# ---- bad input ------------------------------------------------------------------------------------------
def _one_line_error(call, *fragments):
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def frame():
    rng = np.random.default_rng(13)
    n = 120
    g = np.repeat(np.arange(12), 10)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "y": 1 + x + rng.normal(size=12)[g] + rng.normal(size=n),
            "x": x,
            "z": rng.normal(size=n),
            "w": rng.normal(size=12)[g],
            "g": g,
            "h": rng.integers(0, 4, n),
        }
    )


def test_more_random_effects_than_observations(frame):
    small = frame.groupby("g").head(3)  # 36 rows, 12 groups, 3 random effects each: 36 >= 36
    _one_line_error(
        lambda: fit_lmm(small, "y ~ x + (1 + x + z | g)"), "36 in all", "only 36 observations"
    )


def test_no_more_groups_than_random_terms(frame):
    few = frame[frame["g"] < 2]
    _one_line_error(lambda: fit_lmm(few, "y ~ x + (1 + x | g)"), "2 groups", "at least 3 groups")


def test_a_slope_on_a_variable_constant_within_every_group(frame):
    _one_line_error(
        lambda: fit_lmm(frame, "y ~ x + w + (1 + w | g)"),
        "'w'",
        "constant within every group of 'g'",
    )


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("y ~ x + (1 | g) + (1 | h)", "2 grouping factors ('g', 'h'); crossed"),
        ("y ~ x + (x | g) + (1 | h)", "crossed groupings are not supported"),
        ("y ~ x + (1 | g/h)", "nested or crossed grouping ('g/h')"),
        ("y ~ x + (1 | g:h)", "nested or crossed grouping ('g:h')"),
    ],
)
def test_crossed_and_nested_groupings_say_what_is_supported(frame, formula, fragment):
    _one_line_error(lambda: fit_lmm(frame, formula), fragment, "one grouping factor")


def test_a_term_without_random_effects(frame):
    _one_line_error(lambda: fit_lmm(frame, "y ~ x + (1 | g) + (0 | g)"), "no random effects")


# ---- inference ------------------------------------------------------------------------------------------
SATTERTHWAITE = [key for key in FITS if "satterthwaite" in FITS[key]["reml"]]


@pytest.mark.parametrize("key", SATTERTHWAITE)
def test_satterthwaite_df_as_lmertest(datasets, key):
    from helpers.inference import satterthwaite_tests

    fit, ref = _fit(datasets, key, "reml")
    expected = ref["satterthwaite"]
    table = satterthwaite_tests(fit)
    assert [r_term_name(n) for n in table.index] == expected["terms"]
    # lmerTest differentiates numerically; on the question-shaped sets (a criterion of 6.6e5) its df
    # move by ~5e-4 (the package's analytic random-intercept df differ from it by as much there)
    rtol = 5e-4 if FITS[key]["dataset"] in QUESTION_SETS else 1e-4
    _rel(table["df"], expected["df"], rtol, "df")
    _rel(table["t_value"], expected["t"], 1e-5, "t")
    _rel(table["p_value"], expected["p"], 10 * rtol, "p")


@pytest.mark.parametrize("key", list(REF["confint"]))
@pytest.mark.parametrize("method", ["reml", "ml"])
def test_wald_intervals(datasets, key, method):
    from helpers.inference import confint

    fit, _ = _fit(datasets, key, method)
    expected = REF["confint"][key][method]["wald"]
    table = confint(fit, "wald")
    assert table["r_name"].tolist() == expected["names"]
    for column in ("lower", "upper"):
        ref = np.array([np.nan if v is None else v for v in expected[column]], dtype=float)
        assert np.array_equal(np.isnan(table[column]), np.isnan(ref))
        _rel(table[column][~np.isnan(ref)], ref[~np.isnan(ref)], 1e-7, column)


@pytest.mark.parametrize("key", list(REF["confint"]))
@pytest.mark.parametrize("method", ["reml", "ml"])
def test_profile_intervals_as_lme4(datasets, key, method):
    """confint(method="profile"): the ML deviance profiled over each SD, correlation, sigma and fixed
    effect (after refitting by ML, as lme4). lme4 interpolates its profile with splines, so, as for the
    random intercept, the limits are compared to 0.5% of the interval's width (they agree to ~3e-5)."""
    from helpers.inference import confint

    fit, _ = _fit(datasets, key, method)
    expected = REF["confint"][key][method]["profile"]
    table = confint(fit, "profile")
    assert table["r_name"].tolist() == expected["names"]
    assert table.attrs["method"] == "profile"
    lower, upper = np.array(expected["lower"]), np.array(expected["upper"])
    width = upper - lower
    np.testing.assert_array_less(np.abs(table["lower"].to_numpy() - lower), 5e-3 * width)
    np.testing.assert_array_less(np.abs(table["upper"].to_numpy() - upper), 5e-3 * width)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_predictions_with_and_without_the_random_slopes(datasets, method):
    from helpers.inference import predict

    fit, _ = _fit(datasets, REF["predict"]["model"], method)
    expected = REF["predict"]["values"][method]
    rows = datasets["sleepstudy"].iloc[np.array(expected["rows"]) - 1]
    _rel(predict(fit, rows), expected["with_random"], 1e-8, "with random")
    _rel(predict(fit, rows, include_random=False), expected["fixed_only"], 1e-8, "fixed only")
    unseen = rows.assign(Subject=999)  # a subject the fit never saw: the fixed-effect prediction
    _rel(predict(fit, unseen), expected["fixed_only"], 1e-8, "unseen subject")
    with pytest.raises(DataError, match="'Days'"):
        predict(fit, rows.drop(columns="Days"))


def test_the_bootstrap_of_a_slope_fit_draws_every_parameter(datasets):
    # its distribution is checked in test_bootstrap_slopes.py; here: one draw per replicate and
    # parameter, reproducible from the seed, and varying between replicates
    fit, _ = _fit(datasets, "sleepstudy_slope", "reml")
    draws = fit.bootstrap(n=8, seed=3)
    again = fit.bootstrap(n=8, seed=3)
    assert len(draws) == 8 and {"Intercept", "Days", "sigma"} <= set(draws.columns)
    pd.testing.assert_frame_equal(draws, again)
    assert draws["Days"].std() > 0


# ---- model comparison ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [k for k in REF["anova"] if k != "seed_question"])
def test_anova_as_lme4_with_the_mixture_p_value(datasets, key):
    from helpers import anova

    spec = REF["anova"][key]
    m_intercept, _ = _fit(datasets, spec["models"][0], "reml")
    m_slope, _ = _fit(datasets, spec["models"][1], "reml")
    table = anova(m_slope, m_intercept)  # in either order, smaller model first
    expected, polished = spec["anova"], spec["polished_lrt"]
    assert table.index.tolist() == spec["formulas"]
    assert table["npar"].tolist() == expected["npar"]
    assert table["Df"].iloc[1] == expected["Df"][1]
    for column in ("AIC", "BIC", "logLik", "deviance"):
        np.testing.assert_allclose(table[column], expected[column], rtol=0, atol=1e-6)
    assert table["Chisq"].iloc[1] == pytest.approx(polished["chisq"], abs=2e-6)
    assert table["Pr(>Chisq)"].iloc[1] == pytest.approx(polished["p_chisq"], rel=1e-5)
    assert table["Pr(mixture)"].iloc[1] == pytest.approx(
        polished["p_mixture_chisq1_chisq2"], rel=1e-5
    )
    assert all(not f.reml for f in table.attrs["fits"])


def test_anova_mixture_rules_and_bootstrap():
    from helpers import anova

    sleep = load_dataset("sleepstudy")
    m0 = fit_lmm(sleep, "Reaction ~ Days + (1 | Subject)", reml=False)
    m_unc = fit_lmm(sleep, "Reaction ~ Days + (Days || Subject)", reml=False)
    m_slope = fit_lmm(sleep, "Reaction ~ Days + (Days | Subject)", reml=False)
    one = anova(m0, m_unc)  # one added variance: 50:50 chi-square(0) and chi-square(1)
    chisq = one["Chisq"].iloc[1]
    assert one["Df"].iloc[1] == 1
    assert one["Pr(mixture)"].iloc[1] == pytest.approx(0.5 * one["Pr(>Chisq)"].iloc[1])
    covariance = anova(m_unc, m_slope)  # a covariance only: no variance on its boundary
    assert np.isnan(covariance["Pr(mixture)"].iloc[1])
    assert chisq > 0
    boot = anova(m0, m_slope, bootstrap=9, seed=3)  # an LRT of 42: no replicate reaches it
    assert boot["Pr(boot)"].iloc[1] == pytest.approx(1 / 10)
    other = fit_lmm(sleep.iloc[:170], "Reaction ~ Days + (Days | Subject)")
    with pytest.raises(DataError, match="same rows"):
        anova(m0, other)


def test_the_bootstrap_lrt_of_fits_made_where_the_data_live():
    """Fits whose sums an engine computed (no rows) get the same bootstrap LRT as fits of the rows:
    nesting is read from the names of the random-effects columns and the fixed-effects sums, and the
    replicates are drawn from the larger model's sums either way (same seed, same p-value). A pair
    that is not nested that way says what it needs."""
    import ibis

    from helpers import anova

    sleep = load_dataset("sleepstudy")
    # most of each subject's own slope removed, so that the LRT is modest and some replicates reach it
    own = sleep.groupby("Subject", observed=True).apply(
        lambda d: np.polyfit(d["Days"], d["Reaction"], 1)[0], include_groups=False
    )
    excess = (own - own.mean()).reindex(sleep["Subject"]).to_numpy()
    sleep = sleep.assign(Reaction=sleep["Reaction"] - 0.9 * excess * sleep["Days"])
    table = ibis.memtable(sleep)
    pairs = {}
    for source, data in (("rows", sleep), ("engine", table)):
        m0 = fit_lmm(data, "Reaction ~ Days + (1 | Subject)", reml=False)
        m1 = fit_lmm(data, "Reaction ~ Days + (Days | Subject)", reml=False)
        pairs[source] = (m0, m1)
    assert not pairs["engine"][0].design.has_rows
    rows = anova(*pairs["rows"], bootstrap=60, seed=11)
    engine = anova(*pairs["engine"], bootstrap=60, seed=11)
    assert 1 / 61 < rows["Pr(boot)"].iloc[1] < 1
    assert engine["Pr(boot)"].iloc[1] == rows["Pr(boot)"].iloc[1]
    other = fit_lmm(table, "Reaction ~ 1 + (Days | Subject)", reml=False)  # other fixed effects
    with pytest.raises(DataError, match="needs the smaller model's random effects among"):
        anova(other, pairs["engine"][1], bootstrap=5, seed=1)
