"""The question's own data: 326,362 rows in 24 clusters that reproduce both of its printouts.

The question fitted ``lm(pSHP2 ~ condition)`` and ``lmer(pSHP2 ~ condition + (1 | cluster))`` and printed:

=================================  ==============================  ===========================
quantity                           ``lm``                          ``lmer`` (REML)
=================================  ==============================  ===========================
``(Intercept)`` (SE) t             0.583864 (0.001941) 300.83      0.719139 (0.063388) 11.35
``conditionstim`` (SE) t           -0.106348 (0.002609) -40.77     -0.097682 (0.002375) -41.14
residual                           SE 0.7409 on 326360 df          variance 0.45352 (SD 0.6734)
cluster variance                                                   0.09619 (SD 0.3101)
fit                                R^2 0.005066, adj. 0.005063,    REML criterion 668294.9;
                                   F 1662 on 1 and 326360 DF       correlation of fixed effects -0.022
residual quantiles                 -3.6408 -0.5963 -0.1943         (scaled) -5.9819 -0.7061 -0.2411
                                   0.5046 6.9230                   0.6576 10.0387
=================================  ==============================  ===========================

Both fits depend on the rows only through each cluster-by-condition cell's count, mean and standard
deviation, except for the residual quantiles. :func:`seed_question_cells` holds a design of those 48 cells
(``data/seed_question_cells.csv`` is its human-readable copy, and ``data/design_seed_question.py``
re-derives it) for which **every printed number except the ten residual quantiles is reproduced to the
printed digits**, by this package and by lme4 alike. :func:`seed_question` turns the cells into rows:
within each cell, right-skewed noise (a gamma draw) is standardised to mean 0 and SD 1 and then scaled and
shifted to the cell's SD and mean, so the cell means and SDs are exactly the design's.

The residual quantiles are not reproduced: they depend on the shape of the rows within the cells and on
where the largest clusters sit, which the other numbers do not pin down, and this design leaves them to a
generic skewed shape (:data:`PRINTED` lists them; :func:`printed_values` computes them).

The design in brief (``data/README.md`` has the details):

- cluster sizes run from 417 to 117,891 rows, a log-normal spread (SD of log size 1.41); the two largest
  clusters hold 36% and 16% of the rows. The printed REML criterion and intercept SE leave little choice
  here: at the printed variances they fix, roughly, the geometric and harmonic means of the sizes (about
  5,000 and 2,200, against an arithmetic mean of 13,598), and a log-normal spread of that width is what
  has those three means;
- each cluster's share of ``stim`` rows runs from 0.53 to 0.64 (0.553 overall, 0.587 as a plain mean over
  clusters); small clusters have the larger shares (correlation with log size -0.84). The printed
  correlation of the fixed effects, -0.022, asks for that: under ``lmer`` it is roughly minus the plain
  mean share times ``sqrt(J / (u W_xx))``, and the other numbers fix ``J``, ``u`` and ``W_xx``;
- cluster means of ``unstim`` run from 0.03 to 1.18. Big clusters tend to be low (the correlation of
  mean and log size is -0.6), which pulls the row-weighted ``lm`` intercept (0.584) below the ``lmer``
  one (0.719), which sits close to the plain mean of the cluster means. The largest cluster is an
  exception (0.82); the second largest is the lowest of all;
- the ``stim`` effect is -0.105 plus a small cluster-specific deviation (SD 0.03); the cell SDs lie
  between 0.58 and 0.75.

Only the counts, means and SDs of the cells were designed; everything else about the rows (the skewed
shape of the noise, the row order) is a choice of this module, not a fact of the question's data.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

__all__ = [
    "NOT_REPRODUCED",
    "PRINTED",
    "QUANTILE_SUFFIXES",
    "SEED",
    "printed_values",
    "seed_question",
    "seed_question_cells",
    "stim_effect_heterogeneity",
]

#: The numbers the question printed: name -> (value, decimals printed). Every number of both printouts
#: that depends on the data: the ``lm`` summary (estimates, SEs, t values, residual SE and df,
#: R-squared, adjusted R-squared, F statistic, residual quantiles) and the ``lmer`` summary (REML
#: criterion, scaled residual quantiles, variances and SDs, estimates, SEs, t values and the correlation
#: of the fixed effects).
PRINTED = {
    "ols_intercept": (0.583864, 6),
    "ols_slope": (-0.106348, 6),
    "ols_se_intercept": (0.001941, 6),
    "ols_se_slope": (0.002609, 6),
    "ols_t_intercept": (300.83, 2),
    "ols_t_slope": (-40.77, 2),
    "ols_sigma": (0.7409, 4),
    "ols_df_resid": (326360, 0),
    "ols_r2": (0.005066, 6),
    "ols_adj_r2": (0.005063, 6),
    "ols_f": (1662, 0),
    "ols_resid_min": (-3.6408, 4),
    "ols_resid_q1": (-0.5963, 4),
    "ols_resid_median": (-0.1943, 4),
    "ols_resid_q3": (0.5046, 4),
    "ols_resid_max": (6.9230, 4),
    "lmm_intercept": (0.719139, 6),
    "lmm_slope": (-0.097682, 6),
    "lmm_se_intercept": (0.063388, 6),
    "lmm_se_slope": (0.002375, 6),
    "lmm_t_intercept": (11.35, 2),
    "lmm_t_slope": (-41.14, 2),
    "lmm_corr": (-0.022, 3),
    "sigma2_group": (0.09619, 5),
    "sd_group": (0.3101, 4),
    "sigma2_resid": (0.45352, 5),
    "sd_resid": (0.6734, 4),
    "criterion": (668294.9, 1),
    "lmm_resid_min": (-5.9819, 4),
    "lmm_resid_q1": (-0.7061, 4),
    "lmm_resid_median": (-0.2411, 4),
    "lmm_resid_q3": (0.6576, 4),
    "lmm_resid_max": (10.0387, 4),
    "n_obs": (326362, 0),
    "n_groups": (24, 0),
}

#: The name endings of the residual quantiles in :data:`PRINTED` (Min, 1Q, Median, 3Q, Max).
QUANTILE_SUFFIXES = ("_min", "_q1", "_median", "_q3", "_max")

_QUANTILE_REASON = (
    "a property of the rows within the cells and of where the largest clusters sit, which the fitted "
    "numbers do not pin down; the rows here use a generic skewed shape"
)

#: The printed numbers :func:`seed_question` does not reproduce, with the reason (the seed test checks
#: that every other number of :data:`PRINTED` is reproduced, and that these are not, so the list stays true).
NOT_REPRODUCED = {
    prefix + suffix: _QUANTILE_REASON
    for prefix in ("ols_resid", "lmm_resid")
    for suffix in QUANTILE_SUFFIXES
}

#: The seed of the within-cell noise.
SEED = 20240611

# Shape of the gamma draw behind the within-cell noise (skewness 2 / sqrt(shape) = 1).
_GAMMA_SHAPE = 4.0

# The cell design; identical to data/seed_question_cells.csv (a test checks that they agree).
_CELLS_CSV = """\
cluster,condition,n,mean,sd
donor01,unstim,948,0.8827119906,0.7158699596
donor01,stim,1362,0.8020202706,0.7116667542
donor02,unstim,242,0.9747364401,0.5967383398
donor02,stim,427,0.8910462861,0.6626877494
donor03,unstim,1420,0.3016400372,0.6806228074
donor03,stim,2205,0.2031225823,0.6068105657
donor04,unstim,23294,0.0331228964,0.7115335470
donor04,stim,28202,-0.0463251056,0.7001663346
donor05,unstim,1259,0.8642457464,0.7476688456
donor05,stim,1867,0.7856613250,0.6733544740
donor06,unstim,450,1.0723784932,0.7039924144
donor06,stim,689,0.9264997829,0.7544993876
donor07,unstim,2771,0.5822611725,0.6633643513
donor07,stim,3898,0.5445854913,0.6270757341
donor08,unstim,350,1.1206785298,0.5811518014
donor08,stim,551,1.0096224972,0.6678085487
donor09,unstim,7623,0.4355841097,0.5897553687
donor09,stim,9973,0.3062333019,0.7125860047
donor10,unstim,55862,0.8190744712,0.6604083457
donor10,stim,62029,0.7293368884,0.6964316994
donor11,unstim,4690,0.3909304159,0.6612303233
donor11,stim,6634,0.2654343860,0.7206486097
donor12,unstim,14413,0.5310208972,0.6292802905
donor12,stim,17988,0.4421703634,0.6552983069
donor13,unstim,9668,0.3360820810,0.7300363600
donor13,stim,13449,0.1871739282,0.5901756839
donor14,unstim,1096,1.1790099026,0.6628093041
donor14,stim,1596,1.0933847252,0.7056403845
donor15,unstim,750,0.6630235003,0.5994439487
donor15,stim,1221,0.5120634082,0.6171472364
donor16,unstim,3954,1.0101147722,0.5905724168
donor16,stim,5423,0.9130063803,0.7173369059
donor17,unstim,3090,0.2880950904,0.6428650225
donor17,stim,4779,0.1716428042,0.6364290412
donor18,unstim,584,0.8665305774,0.5829384561
donor18,stim,808,0.7406106651,0.5994317346
donor19,unstim,2280,0.5975156218,0.7028951518
donor19,stim,3413,0.4930941499,0.6428605612
donor20,unstim,6289,0.7622375269,0.6320788962
donor20,stim,7643,0.6338928708,0.6953650588
donor21,unstim,154,0.9097752094,0.6070526503
donor21,stim,263,0.7749722315,0.7425983682
donor22,unstim,2017,0.6999101492,0.6337331593
donor22,stim,2867,0.6034315110,0.6264329173
donor23,unstim,1834,0.9783726181,0.6389792198
donor23,stim,2370,0.9323526734,0.6546314940
donor24,unstim,684,1.0804709615,0.6903361324
donor24,stim,983,0.9382512856,0.6171908457
"""


def printed_values(ols, lmm) -> dict:
    """Every quantity of :data:`PRINTED`, computed from an ``lm`` and an ``lmer`` fit of the rows.

    Parameters
    ----------
    ols : helpers.results.OlsResult
        ``fit_ols(rows, "pSHP2 ~ condition")``.
    lmm : helpers.results.LmmResult
        ``fit_lmm(rows, "pSHP2 ~ condition + (1 | cluster)")`` (REML).

    Returns
    -------
    dict
        name -> value at full precision, for every name in :data:`PRINTED`. The quantiles are R's
        default (type 7) of the ``lm`` residuals and of the ``lmer`` residuals divided by sigma, as
        ``summary()`` prints them.
    """
    slope = "condition[T.stim]"
    resid = np.asarray(ols.resid, dtype=float)
    scaled = np.asarray(lmm.resid(), dtype=float) / lmm.sigma_resid
    n = ols.n_obs
    # R-squared of a model with an intercept: 1 - RSS / TSS, TSS about the mean of the response
    y = np.asarray(lmm.design.y, dtype=float)
    rss = float(resid @ resid)
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - rss / tss
    values = {
        "ols_intercept": ols.params["Intercept"],
        "ols_slope": ols.params[slope],
        "ols_se_intercept": ols.bse["Intercept"],
        "ols_se_slope": ols.bse[slope],
        "ols_t_intercept": ols.params["Intercept"] / ols.bse["Intercept"],
        "ols_t_slope": ols.params[slope] / ols.bse[slope],
        "ols_sigma": float(np.sqrt(ols.sigma2_resid)),
        "ols_df_resid": ols.df_resid,
        "ols_r2": r2,
        "ols_adj_r2": 1 - (1 - r2) * (n - 1) / ols.df_resid,
        "ols_f": (tss - rss) / (rss / ols.df_resid),
        "lmm_intercept": lmm.fe_params["Intercept"],
        "lmm_slope": lmm.fe_params[slope],
        "lmm_se_intercept": lmm.bse["Intercept"],
        "lmm_se_slope": lmm.bse[slope],
        "lmm_t_intercept": lmm.fe_params["Intercept"] / lmm.bse["Intercept"],
        "lmm_t_slope": lmm.fe_params[slope] / lmm.bse[slope],
        "lmm_corr": lmm.corr_fe.loc["Intercept", slope],
        "sigma2_group": lmm.sigma2_group,
        "sd_group": lmm.sigma_group,
        "sigma2_resid": lmm.sigma2_resid,
        "sd_resid": lmm.sigma_resid,
        "criterion": lmm.criterion,
        "n_obs": lmm.n_obs,
        "n_groups": lmm.n_groups,
    }
    probs = [0.0, 0.25, 0.5, 0.75, 1.0]
    for prefix, r in (("ols_resid", resid), ("lmm_resid", scaled)):
        for suffix, q in zip(QUANTILE_SUFFIXES, np.quantile(r, probs), strict=True):
            values[prefix + suffix] = float(q)
    return {name: values[name] for name in PRINTED}


def stim_effect_heterogeneity(rows: pd.DataFrame) -> dict:
    """Does the ``stim`` effect differ between clusters? Cochran's Q and a rough meta-analytic SE.

    Each cluster's own ``lm(pSHP2 ~ condition)`` gives a slope ``d_i`` (its ``stim`` minus ``unstim``
    mean) with standard error ``se_i``. Under one common effect, Cochran's
    ``Q = sum_i (d_i - d_bar)^2 / se_i^2`` (``d_bar`` the inverse-variance weighted mean) is chi-square
    with ``J - 1`` degrees of freedom. The DerSimonian-Laird moment estimate of the between-cluster
    variance of the effect is ``tau2 = max(0, (Q - (J - 1)) / (S1 - S2 / S1))`` with ``S1 = sum 1/se_i^2``
    and ``S2 = sum 1/se_i^4``, and the random-effects standard error of the mean effect is
    ``(sum 1/(se_i^2 + tau2))^(-1/2)``, to be read with about ``J - 1`` degrees of freedom.

    Parameters
    ----------
    rows : pandas.DataFrame
        Columns ``pSHP2``, ``condition`` and ``cluster``, as :func:`seed_question` returns them.

    Returns
    -------
    dict
        ``slopes``, ``ses`` (pandas Series by cluster), ``q``, ``df``, ``p_value``, ``tau2``,
        ``common`` and ``se_common`` (the inverse-variance mean and its SE), ``random`` and ``se_random``
        (the random-effects mean and its SE).

    Examples
    --------
    >>> h = stim_effect_heterogeneity(seed_question())
    >>> h["df"], h["q"] > h["df"], h["se_random"] > h["se_common"]
    (23, True, True)
    """
    import scipy.stats  # imported here: only this function needs it

    y = rows["pSHP2"]
    cell = rows.groupby(["cluster", "condition"], observed=True)["pSHP2"]
    n = cell.size().unstack()
    mean = cell.mean().unstack()
    ss = (y - cell.transform("mean")).pow(2).groupby(rows["cluster"], observed=True).sum()
    sigma2 = ss / (n.sum(axis=1) - 2)  # each cluster's own lm residual variance
    slopes = mean["stim"] - mean["unstim"]
    ses = np.sqrt(sigma2 * (1 / n["unstim"] + 1 / n["stim"]))
    w = 1 / ses**2
    common = float(np.sum(w * slopes) / w.sum())
    q = float(np.sum(w * (slopes - common) ** 2))
    dof = len(slopes) - 1
    tau2 = max(0.0, (q - dof) / (w.sum() - (w**2).sum() / w.sum()))
    w_re = 1 / (ses**2 + tau2)
    return {
        "slopes": slopes,
        "ses": ses,
        "q": q,
        "df": dof,
        "p_value": float(scipy.stats.chi2.sf(q, dof)),
        "tau2": float(tau2),
        "common": common,
        "se_common": float(w.sum() ** -0.5),
        "random": float(np.sum(w_re * slopes) / w_re.sum()),
        "se_random": float(w_re.sum() ** -0.5),
    }


def seed_question_cells() -> pd.DataFrame:
    """The designed cells behind :func:`seed_question`: one row per cluster and condition.

    Returns
    -------
    pandas.DataFrame
        48 rows with columns ``cluster`` and ``condition`` (categorical, as in :func:`seed_question`),
        ``n`` (rows in the cell), ``mean`` and ``sd`` (the cell's mean and sample SD of ``pSHP2``).

    Examples
    --------
    >>> cells = seed_question_cells()
    >>> cells.shape, int(cells["n"].sum())
    ((48, 5), 326362)
    >>> sizes = cells.groupby("cluster", observed=True)["n"].sum()
    >>> int(sizes.min()), int(sizes.max())
    (417, 117891)
    """
    cells = pd.read_csv(io.StringIO(_CELLS_CSV))
    labels = list(dict.fromkeys(cells["cluster"]))
    cells["cluster"] = pd.Categorical(cells["cluster"], categories=labels)
    cells["condition"] = pd.Categorical(cells["condition"], categories=["unstim", "stim"])
    cells["n"] = cells["n"].astype(np.int64)
    return cells


def seed_question() -> pd.DataFrame:
    """The question's data: 326,362 rows whose ``lm`` and ``lmer`` fits print the question's numbers.

    The rows are made from :func:`seed_question_cells`: in each cell a gamma draw (right-skewed, as the
    question's residuals were) is standardised to mean 0 and sample SD 1, then scaled by the cell's SD
    and shifted by its mean. The result is the same on every call (the seed is fixed).

    Returns
    -------
    pandas.DataFrame
        Columns ``pSHP2`` (float), ``condition`` (categorical: ``unstim``, ``stim``; ``unstim`` is the
        reference level) and ``cluster`` (categorical: ``donor01`` .. ``donor24``). The rows are ordered
        by cluster, then condition.

    Examples
    --------
    >>> from helpers.fit import fit_lmm
    >>> df = seed_question()
    >>> df.shape, df["cluster"].nunique(), list(df["condition"].cat.categories)
    ((326362, 3), 24, ['unstim', 'stim'])
    >>> lmm = fit_lmm(df, "pSHP2 ~ condition + (1 | cluster)")
    >>> lmm.fe_params.round(6).to_dict()
    {'Intercept': 0.719139, 'condition[T.stim]': -0.097682}
    >>> round(lmm.sigma2_group, 5), round(lmm.sigma2_resid, 5), round(lmm.criterion, 1)
    (0.09619, 0.45352, 668294.9)
    """
    cells = seed_question_cells()
    counts = cells["n"].to_numpy()
    n_cells = len(counts)
    cell = np.repeat(np.arange(n_cells), counts)

    rng = np.random.default_rng(SEED)
    draw = rng.standard_gamma(_GAMMA_SHAPE, size=cell.shape[0])
    centred = draw - (np.bincount(cell, weights=draw, minlength=n_cells) / counts)[cell]
    centred -= (np.bincount(cell, weights=centred, minlength=n_cells) / counts)[cell]
    sd = np.sqrt(np.bincount(cell, weights=centred * centred, minlength=n_cells) / (counts - 1))
    noise = centred / sd[cell]

    value = cells["mean"].to_numpy()[cell] + cells["sd"].to_numpy()[cell] * noise
    return pd.DataFrame(
        {
            "pSHP2": value,
            "condition": pd.Categorical.from_codes(
                cells["condition"].cat.codes.to_numpy()[cell], categories=["unstim", "stim"]
            ),
            "cluster": pd.Categorical.from_codes(
                cells["cluster"].cat.codes.to_numpy()[cell],
                categories=list(cells["cluster"].cat.categories),
            ),
        }
    )
