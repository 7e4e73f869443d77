"""Numbers and claims stated in the prose of notebooks 03, 04 and 05 that no cell prints next to them.

Each test names the notebook and section whose sentence it checks. The notebooks themselves assert the
lme4 values they quote (Dyestuff's criteria and optima); this file covers the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.decompose import decompose, within_between_blend
from helpers.design import build_design
from helpers.fit import fit_lmm, fit_lmm_from_stats, fit_ols
from helpers.objective import criterion, profile
from helpers.seed import seed_question
from helpers.widgets import simulate_question_stats

FORMULA = "pSHP2 ~ condition + (1 | cluster)"
SLOPE = "condition[T.stim]"


@pytest.fixture(scope="module")
def question():
    return seed_question()


@pytest.fixture(scope="module")
def question_fits(question):
    return fit_ols(question, "pSHP2 ~ condition"), fit_lmm(question, FORMULA)


# --- the question, quoted in 03 (intro, 3.3, 3.4), 04 (section 5) and 05 (intro, 3.3) ---------------


def test_question_as_quoted(question, question_fits):
    ols, lmm = question_fits
    assert len(question) == 326_362
    assert question["cluster"].nunique() == 24
    assert round(ols.params["Intercept"], 3) == 0.584
    assert round(ols.bse["Intercept"], 4) == 0.0019
    assert round(lmm.fe_params["Intercept"], 3) == 0.719
    assert round(lmm.bse["Intercept"], 3) == 0.063
    assert round(ols.params[SLOPE], 3) == -0.106
    assert round(lmm.fe_params[SLOPE], 3) == -0.098
    assert round(lmm.criterion, 1) == 668294.9


def test_icc_is_about_a_sixth(question_fits):
    # 03 section 1: "About a sixth of the variance of a single measurement lies between clusters."
    _, lmm = question_fits
    icc = lmm.sigma2_group / (lmm.sigma2_group + lmm.sigma2_resid)
    assert 0.15 < icc < 0.19


def test_ols_lets_in_a_thousand_times_more_between_information(question_fits):
    # 03 section 3.3: "The mixed model's between weight is more than a thousand times smaller again."
    _, lmm = question_fits
    terms = list(lmm.fe_params.index)
    at_zero = within_between_blend(lmm.stats, 0.0, terms).weight_between.loc[SLOPE, SLOPE]
    at_hat = within_between_blend(lmm.stats, lmm.theta, terms).weight_between.loc[SLOPE, SLOPE]
    assert at_zero > 1000 * at_hat > 0


def test_within_weight_dominates_both_blends(question_fits):
    # 03 section 3.3: "Both fits take almost all of their slope from the within comparison."
    _, lmm = question_fits
    terms = list(lmm.fe_params.index)
    for theta in (0.0, lmm.theta):
        assert within_between_blend(lmm.stats, theta, terms).weight_within.loc[SLOPE, SLOPE] > 0.99


# --- the example data sets (03 sections 2 and 4, 05 section 2 and exercises) -----------------------


def test_radon_shape(radon):
    # 03 section 2: "one to over a hundred homes per county"; the printed line says 919 homes in 85.
    sizes = radon["county"].value_counts()
    assert (len(radon), sizes.size, sizes.min(), sizes.max()) == (919, 85, 1, 116)


def test_sleepstudy_is_balanced(sleepstudy):
    # 03 section 4: "18 subjects, each measured on days 0 to 9"; 05 exercise 2: N = 180.
    days = sleepstudy.groupby("Subject", observed=True)["Days"].apply(lambda d: sorted(d.tolist()))
    assert len(days) == 18 and len(sleepstudy) == 180
    assert all(d == list(range(10)) for d in days)


def test_dyestuff_layout_and_grand_mean(dyestuff):
    # 05 section 2: 6 batches of 5; "The intercept, 1527.5, is the same under ML and REML".
    assert dyestuff["Batch"].value_counts().tolist() == [5] * 6
    reml, ml = (fit_lmm(dyestuff, "Yield ~ 1 + (1 | Batch)", reml=r) for r in (True, False))
    assert reml.fe_params["Intercept"] == pytest.approx(1527.5, abs=1e-9)
    assert ml.fe_params["Intercept"] == pytest.approx(1527.5, abs=1e-9)
    assert ml.sigma_group < reml.sigma_group


def test_dyestuff_anova_estimate(dyestuff):
    # 05 exercise 4: "Both give about 1764, that is sigma_b of about 42.0."
    means = dyestuff.groupby("Batch", observed=True)["Yield"].mean()
    ssb = 5 * ((means - means.mean()) ** 2).sum()
    msw = dyestuff.groupby("Batch", observed=True)["Yield"].var().mean()
    anova = (ssb / 5 - msw) / 5
    fit = fit_lmm(dyestuff, "Yield ~ 1 + (1 | Batch)")
    assert anova == pytest.approx(fit.sigma2_group, rel=1e-6)
    assert round(anova) == 1764 and round(np.sqrt(anova), 1) == 42.0


def test_dyestuff2_batch_means_vary_less_than_noise():
    # 05 section 5: the variance of the batch means is below MSW / n, so REML lands on 0.
    from helpers.data import load_dataset

    dye2 = load_dataset("dyestuff2")
    means = dye2.groupby("Batch", observed=True)["Yield"].mean()
    msw = dye2.groupby("Batch", observed=True)["Yield"].var().mean()
    assert means.var() < msw / 5
    assert fit_lmm(dye2, "Yield ~ 1 + (1 | Batch)").singular


def test_dense_criterion_matches_on_sleepstudy(sleepstudy):
    # 05 exercise 2: "They agree to about 1e-9."
    X = np.column_stack([np.ones(len(sleepstudy)), sleepstudy["Days"]])
    Z = pd.get_dummies(sleepstudy["Subject"]).to_numpy(float)
    y = sleepstudy["Reaction"].to_numpy()
    stats = build_design(sleepstudy, "Reaction ~ Days + (1 | Subject)").stats
    for reml in (False, True):
        N, p = X.shape
        sigma = np.eye(N) + Z @ Z.T
        sigma_inv = np.linalg.inv(sigma)
        a = X.T @ sigma_inv @ X
        r = y - X @ np.linalg.solve(a, X.T @ sigma_inv @ y)
        r2 = r @ sigma_inv @ r
        dof = N - p if reml else N
        dense = np.linalg.slogdet(sigma)[1] + dof * (1 + np.log(2 * np.pi * r2 / dof))
        if reml:
            dense += np.linalg.slogdet(a)[1]
        assert abs(dense - criterion(stats, 1.0, reml)) < 1e-8


# --- 03 section 5: the Mundlak simulation ------------------------------------------------------------


def _mundlak_simulation(seed=3, n_clusters=40, per_cluster=10, true_slope=-0.1):
    """The simulation of notebook 03, section 5(c), with the same settings and seed."""
    rng = np.random.default_rng(seed)
    share_i = rng.uniform(0.1, 0.9, n_clusters)
    b_i = 0.8 * (share_i - 0.5) + 0.1 * rng.standard_normal(n_clusters)
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    is_stim = (rng.random(cluster.size) < share_i[cluster]).astype(int)
    y = 0.6 + true_slope * is_stim + b_i[cluster] + 0.7 * rng.standard_normal(cluster.size)
    sim = pd.DataFrame(
        {
            "y": y,
            "condition": pd.Categorical.from_codes(is_stim, ["unstim", "stim"]),
            "cluster": pd.Categorical(cluster),
        }
    )
    sim["share_stim"] = (
        (sim["condition"] == "stim").groupby(sim["cluster"], observed=True).transform("mean")
    )
    return sim


def test_mundlak_simulation_claims():
    sim = _mundlak_simulation()
    d = decompose(sim, "y ~ condition + (1 | cluster)")
    mundlak = fit_lmm(sim, "y ~ condition + share_stim + (1 | cluster)")
    within, between, lmm = d.within[SLOPE], d.between[SLOPE], d.lmm[SLOPE]
    # "the mixed model is dragged part of the way towards it" (the between slope)
    assert min(within, between) < lmm < max(within, between)
    assert abs(lmm - within) > 0.1 * abs(between - within)
    # "the Mundlak fit lands exactly on the within estimator ... well within one standard error" of -0.1
    assert mundlak.fe_params[SLOPE] == pytest.approx(within, abs=1e-10)
    assert abs(within - (-0.1)) < mundlak.bse[SLOPE]


# --- 04: the path --------------------------------------------------------------------------------------


def test_intercept_path_dips_because_the_largest_cluster_sits_high(question, question_fits):
    # 04 figure 1 caption: "the very largest cluster sits high, so the intercept first dips a little"
    ols, lmm = question_fits
    by_cluster = question.groupby("cluster", observed=True)["pSHP2"].agg(["size", "mean"])
    assert by_cluster.loc[by_cluster["size"].idxmax(), "mean"] > ols.params["Intercept"]
    path = [profile(lmm.stats, t).beta[0] for t in (0.0, 0.003, lmm.theta)]
    assert path[1] < path[0] < path[2]


def test_sensitivity_to_theta_hat(question_fits, radon):
    # 04 sections 2 and 4: a 25% change in theta-hat "barely" moves the question's estimates, and moves
    # radon's "by a visible fraction of a standard error".
    def moved_in_ses(fit):
        low, high = (profile(fit.stats, fit.theta * f).beta for f in (0.75, 1.25))
        return np.abs(high - low) / fit.bse.to_numpy()

    _, lmm = question_fits
    assert moved_in_ses(lmm).max() < 0.01
    assert moved_in_ses(fit_lmm(radon, "log_radon ~ floor + (1 | county)")).min() > 0.1


def test_standard_errors_along_the_path(question_fits):
    # 04 figure 2 caption: the intercept SE rises "by more than an order of magnitude" before theta-hat;
    # the slope SE "dips below" lm's.
    ols, lmm = question_fits
    assert lmm.bse["Intercept"] > 10 * ols.bse["Intercept"]
    assert lmm.bse[SLOPE] < ols.bse[SLOPE]


def _explorer_fit(sigma_group, size_imbalance):
    sim = simulate_question_stats(sigma_group, size_imbalance, seed=0)
    fit = fit_lmm_from_stats(sim.stats, sim.term_names)
    ols = pd.Series(sim.stats.beta_ols, index=sim.term_names)
    return sim, fit, ols


def test_explorer_default_figure_caption():
    # 04 figure 4: "The OLS interval for the intercept is far too narrow to cover the truth; the mixed
    # model's covers it."
    sim, fit, ols = _explorer_fit(0.31, 1.5)
    truth = sim.truth["Intercept"]
    stats = sim.stats
    r_inv = np.linalg.inv(stats.r_factor)
    ols_se = np.sqrt((r_inv @ r_inv.T)[0, 0] * stats.ete / (stats.n_obs - stats.n_params))
    assert abs(ols["Intercept"] - truth) > 1.96 * ols_se
    assert abs(fit.fe_params["Intercept"] - truth) < 1.96 * fit.bse["Intercept"]


def test_explorer_things_to_try():
    # 04 section 5, "Things to try", and exercise 3.
    _, fit, ols = _explorer_fit(0.0, 1.5)
    assert fit.theta == 0.0 and np.allclose(fit.fe_params, ols, rtol=0, atol=1e-12)

    _, fit_default, ols_default = _explorer_fit(0.31, 1.5)
    _, fit_equal, ols_equal = _explorer_fit(0.31, 0.0)
    gap_default = abs(fit_default.fe_params["Intercept"] - ols_default["Intercept"])
    gap_equal = abs(fit_equal.fe_params["Intercept"] - ols_equal["Intercept"])
    assert gap_equal < gap_default / 5  # "the intercepts agree much better"
    assert abs(fit_equal.fe_params[SLOPE] - ols_equal[SLOPE]) > 2 * fit_equal.bse[SLOPE]

    # "the REML estimate moves to the middle of the path"
    sim, fit_small, _ = _explorer_fit(0.02, 1.5)
    n = sim.stats.counts.astype(float)
    lam = 1 - 1 / np.sqrt(1 + n * fit_small.theta**2)
    assert lam.min() < 0.5 < lam.max()


# --- 05: ML against REML -----------------------------------------------------------------------------


def test_ml_against_reml_on_the_question(question):
    # 05 section 3.3: ML's sigma_b^2 is lower "by a few percent", the ratio is close to (J - 1) / J, and
    # the slope "should hardly notice".
    reml = fit_lmm(question, FORMULA)
    ml = fit_lmm(question, FORMULA, reml=False)
    ratio = ml.sigma2_group / reml.sigma2_group
    assert 0.9 < ratio < 0.99
    assert ratio == pytest.approx(23 / 24, abs=0.002)
    assert ml.fe_params[SLOPE] == pytest.approx(reml.fe_params[SLOPE], rel=1e-4)
    assert ml.bse["Intercept"] < reml.bse["Intercept"]


def test_balanced_bias_arithmetic():
    # 05 section 3.2: with J = 6, n = 5 and sigma_b = sigma, ML is "a fifth too small"; exercise 3: J > 24
    # for n = 5 and J > 20 for n = 1000.
    def relative_bias(n, J):
        return (1 + 1 / n) / J

    assert relative_bias(5, 6) == pytest.approx(0.2)
    assert relative_bias(5, 24) == pytest.approx(0.05) and relative_bias(5, 25) < 0.05
    assert relative_bias(1000, 20) > 0.05 > relative_bias(1000, 21)


def test_ml_bias_simulation_claims():
    # 05 figure 1 and the table above it, with an independent seed: REML's mean stays close to the truth,
    # ML's is low by about (sigma_b^2 + sigma^2 / n) / J, and with three clusters a sizeable share of the
    # estimates are exactly 0.
    rng = np.random.default_rng(12345)
    n, reps = 5, 4000
    for J in (3, 6, 20):
        y = rng.standard_normal((reps, J, 1)) + rng.standard_normal((reps, J, n))
        means = y.mean(axis=2)
        ssw = ((y - means[..., None]) ** 2).sum(axis=(1, 2))
        ssb = n * ((means - means.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        msw = ssw / (J * (n - 1))
        reml = np.maximum((ssb / (J - 1) - msw) / n, 0.0)
        ml = np.maximum((ssb / J - msw) / n, 0.0)
        assert abs(reml.mean() - 1) < 0.05
        assert abs(ml.mean() - (1 - 1.2 / J)) < 0.05
        assert ml.mean() < reml.mean()
        if J == 3:
            assert (ml == 0).mean() > 0.1 and (reml == 0).mean() > 0.1


# --- 02 and 03: the between slope, the Mundlak test and the bootstrap (independence senses 2 and 3) ---


def _cluster_means(question):
    stim = (question["condition"] == "stim").astype(float)
    by = question.assign(stim=stim).groupby("cluster", observed=True)
    return pd.DataFrame({"y_bar": by["pSHP2"].mean(), "share": by["stim"].mean()})


def test_between_slope_is_far_in_value_but_not_in_its_own_se(question, question_fits):
    # 02 after figure 2 and 03 section 3.3: "far from the within slope in value, ... within about one
    # standard error of it"; 03: the between intercept is an extrapolation to share 0
    _, lmm = question_fits
    means = _cluster_means(question)
    between = fit_ols(means, "y_bar ~ share")
    within = decompose(question, FORMULA).within[SLOPE]
    distance = abs(between.params["share"] - within)
    assert distance > 10 * abs(lmm.fe_params[SLOPE] - within)  # far in value
    assert 0.5 < distance / between.bse["share"] < 1.5  # about one SE
    assert abs(between.tvalues["share"]) < 2
    assert means["share"].min() > 0.3  # share 0 lies far outside the shares seen


def test_between_slope_flips_sign_with_the_weighting(question_fits):
    # 03 section 3.3, after the between fit: "The weighting of the 24 cluster means alone flips its sign:
    # ... about -3.2 with OLS's weights n_i and about +2.5 with the mixed model's w_i."
    _, lmm = question_fits
    terms = list(lmm.fe_params.index)
    by_n = within_between_blend(lmm.stats, 0.0, terms).beta_between[SLOPE]
    by_w = within_between_blend(lmm.stats, lmm.theta, terms).beta_between[SLOPE]
    assert round(by_n, 1) == -3.2 and round(by_w, 1) == 2.5


def test_mundlak_test_finds_no_evidence_on_the_question(question):
    # 03 section 5 (2): "about one standard error from 0: no evidence against independence"
    data = question.assign(
        share_stim=_cluster_means(question)["share"].reindex(question["cluster"]).to_numpy()
    )
    fit = fit_lmm(data, "pSHP2 ~ condition + share_stim + (1 | cluster)")
    row = fit.satterthwaite_tests().loc["share_stim"]
    assert 0.5 < abs(row["t_value"]) < 1.5 and row["p_value"] > 0.1
    within = decompose(question, FORMULA).within[SLOPE]
    assert fit.fe_params[SLOPE] == pytest.approx(within, abs=1e-9)


def test_bootstrap_fixed_effects_nearly_uncorrelated_with_sigma_b(question_fits):
    # 03 section 5 (3): across replicates, beta-hat and sigma_b-hat are "nearly uncorrelated"
    from helpers.inference import bootstrap

    _, lmm = question_fits
    reps = bootstrap(lmm, n=1000, seed=3)
    corr = reps[["Intercept", SLOPE, "sigma_group"]].corr()["sigma_group"]
    assert (corr.drop("sigma_group").abs() < 0.1).all()


def test_log_det_a_falls_with_theta(dyestuff):
    # 05 section 3.3: |A_theta| = 30 / (1 + 5 theta^2) falls with theta (30, 13.3, 5, 1.43 at 0, 0.5, 1, 2)
    Z = pd.get_dummies(dyestuff["Batch"]).to_numpy(float)
    X = np.ones((len(dyestuff), 1))
    values = []
    for theta in (0.0, 0.5, 1.0, 2.0):
        sigma = np.eye(len(dyestuff)) + theta**2 * Z @ Z.T
        values.append(np.linalg.det(X.T @ np.linalg.solve(sigma, X)))
    assert np.allclose(values, [30 / (1 + 5 * t**2) for t in (0.0, 0.5, 1.0, 2.0)], rtol=1e-10)
    assert np.round(values, 2).tolist() == [30.0, 13.33, 5.0, 1.43]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


# --- 03 section 2: per-cluster panels (figures 2 and 4) and caterpillar plots (figures 3 and 5) ------

RADON_FORMULA = "log_radon ~ floor + (1 | county)"
GELMAN_HILL_COUNTIES = [
    "LAC QUI PARLE", "AITKIN", "KOOCHICHING", "DOUGLAS", "CLAY", "STEARNS", "RAMSEY", "ST LOUIS"
]  # fmt: skip


def _shrinkage(fit):
    """Per cluster, from the rows and the variances (not from the fit's ranef): size, k_i, own deviation,
    conditional mode, conditional SD. Independent of the notebook's conditional_modes()."""
    data = pd.DataFrame(
        {
            "g": fit.design.group_codes,
            "r": fit.design.y - fit.design.X @ fit.fe_params.to_numpy(),
        }
    )
    by = data.groupby("g")["r"].agg(["size", "mean"])
    n = by["size"].to_numpy(float)
    k = 1.0 / (1.0 + fit.sigma2_resid / (n * fit.sigma2_group))
    table = pd.DataFrame(
        {
            "n": n,
            "k": k,
            "own": by["mean"].to_numpy(),
            "mode": k * by["mean"].to_numpy(),
            "sd": np.sqrt(
                fit.sigma2_group * fit.sigma2_resid / (n * fit.sigma2_group + fit.sigma2_resid)
            ),
        },
        index=fit.ranef.index,
    )
    table["pulled"] = table["own"] - table["mode"]
    half = 1.96 * table["sd"]
    table["crosses_0"] = (table["mode"] - half < 0) & (table["mode"] + half > 0)
    return table


@pytest.fixture(scope="module")
def radon_fit(radon):
    return fit_lmm(radon, RADON_FORMULA)


def test_modes_and_conditional_sds_are_the_formulas(radon_fit, question_fits):
    # 03 section 2: b_i = k_i x own deviation and sd(b_i | y) = sigma_b sqrt(1 - k_i), as ranef/ranef_sd
    for fit in (radon_fit, question_fits[1]):
        table = _shrinkage(fit)
        np.testing.assert_allclose(table["mode"], fit.ranef, rtol=0, atol=1e-10)
        np.testing.assert_allclose(table["sd"], fit.ranef_sd, rtol=1e-10)
        np.testing.assert_allclose(
            table["sd"], np.sqrt(fit.sigma2_group * (1 - table["k"])), rtol=1e-10
        )


def test_radon_panel_counties(radon):
    # 03 before figure 2: Gelman and Hill's eight counties run "from one of the smallest counties (Lac Qui
    # Parle, two homes) to the largest (St Louis, 116 homes)", in order of size
    sizes = radon["county"].value_counts()
    chosen = sizes[GELMAN_HILL_COUNTIES].to_numpy()
    assert list(chosen) == sorted(chosen) and len(set(chosen)) == 8
    assert chosen[0] == 2 and (sizes < 2).sum() > 0 and (sizes <= 2).mean() < 0.15
    assert sizes.idxmax() == "ST LOUIS" and sizes.max() == 116


def test_radon_shrinkage_claims(radon_fit):
    # 03 after figure 2: "Lac Qui Parle, whose two homes both read high, is pulled in furthest: by about
    # 1.1 on the log scale, nearly three quarters of its own deviation. A county with a single home keeps
    # only 16% of its deviation (k_i is then the ICC of a single home); St Louis keeps 96%."
    # Figure 2's caption: the three smallest counties shown (two to seven homes) are pulled well away from
    # their own line, Ramsey and St Louis barely.
    table = _shrinkage(radon_fit)
    most = table["pulled"].abs().idxmax()
    assert most == "LAC QUI PARLE" and table.loc[most, "n"] == 2
    assert round(table.loc[most, "pulled"], 1) == 1.1
    assert 0.7 < 1 - table.loc[most, "k"] < 0.75
    assert table.loc[most, "own"] > 1  # both homes high
    one_home = table[table["n"] == 1]
    icc = radon_fit.sigma2_group / (radon_fit.sigma2_group + radon_fit.sigma2_resid)
    assert np.allclose(one_home["k"], icc) and round(icc, 2) == 0.16
    assert round(table.loc["ST LOUIS", "k"], 2) == 0.96
    small, large = GELMAN_HILL_COUNTIES[:3], ["RAMSEY", "ST LOUIS"]
    assert table.loc[small, "n"].tolist() == [2, 4, 7]
    assert (table.loc[small, "k"] < 0.6).all() and (table.loc[large, "k"] > 0.85).all()


def test_radon_caterpillar_claims(radon_fit):
    # 03 after figure 3: "77 of the 85 intervals cross 0. The half-width falls from 0.59 for a one-home
    # county to 0.13 for St Louis, and it falls with size without exception (rank correlation -1)"
    table = _shrinkage(radon_fit)
    assert (int(table["crosses_0"].sum()), len(table)) == (77, 85)
    half = 1.96 * table["sd"]
    assert round(half[table["n"] == 1].max(), 2) == 0.59 and round(half["ST LOUIS"], 2) == 0.13
    order = np.argsort(table["n"].to_numpy(), kind="stable")
    n_sorted, half_sorted = table["n"].to_numpy()[order], half.to_numpy()[order]
    steps = np.diff(half_sorted)[np.diff(n_sorted) > 0]
    assert (steps < 0).all()


def test_question_shrinkage_and_caterpillar_claims(question_fits):
    # 03 after figure 5: "No cluster is pulled in by more than 0.002 pSHP2. Only one interval of the 24
    # crosses 0 (donor22's). The widest, +-0.064, belongs to the smallest cluster (donor21, 417 rows),
    # the narrowest, +-0.004, to the largest (donor10, 117,891 rows)."
    # Figure 4's caption: the partial-pooling line covers the no-pooling line in every panel.
    _, lmm = question_fits
    table = _shrinkage(lmm)
    assert 0.0015 < table["pulled"].abs().max() <= 0.0025
    assert table.index[table["crosses_0"]].tolist() == ["donor22"]
    half = 1.96 * table["sd"]
    assert half.idxmax() == table["n"].idxmin() == "donor21" and table["n"].min() == 417
    assert half.idxmin() == table["n"].idxmax() == "donor10" and table["n"].max() == 117_891
    assert round(half.max(), 3) == 0.064 and round(half.min(), 3) == 0.004
    # the caterpillar plot's spread of modes dwarfs the intervals ("short next to the spread")
    assert half.max() < 0.1 * (table["mode"].max() - table["mode"].min())


def test_figures_as_the_notebook_draws_them(radon_fit, question_fits):
    # 03 figures 2 to 5: the chosen panels, their order and the counts the captions rely on
    import matplotlib

    matplotlib.use("Agg")
    from helpers.plots import MAX_CLUSTER_PANELS, plot_caterpillar, plot_cluster_panels

    fig = plot_cluster_panels(radon_fit, clusters=GELMAN_HILL_COUNTIES, title="radon")
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split(" (n = ")[0] for t in titles] == GELMAN_HILL_COUNTIES
    _, lmm = question_fits
    fig = plot_cluster_panels(lmm, title="question")
    sizes = [int(ax.get_title().split("n = ")[1].rstrip(")")) for ax in fig.axes]
    assert len(sizes) == MAX_CLUSTER_PANELS == 8 and sizes == sorted(sizes)
    assert sizes[0] == 417 and sizes[-1] == 117_891  # "from the smallest to the largest"
    for fit, expected in ((radon_fit, "8 of 85"), (lmm, "23 of 24")):
        labels = [t.get_text() for t in plot_caterpillar(fit).legends[0].get_texts()]
        assert any(f"interval excludes 0 ({expected})" in label for label in labels)
