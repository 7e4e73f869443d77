"""The question's own data: 326,362 rows in 24 clusters that reproduce both of its printouts.

The question fitted ``lm(pSHP2 ~ condition)`` and ``lmer(pSHP2 ~ condition + (1 | cluster))`` and printed:

=================================  ===========================  ===========================
quantity                           ``lm``                       ``lmer`` (REML)
=================================  ===========================  ===========================
``(Intercept)`` (SE)               0.583864 (0.001941)          0.719139 (0.063388)
``conditionstim`` (SE)             -0.106348 (0.002609)         -0.097682 (0.002375)
residual                           SE 0.7409 on 326360 df       variance 0.45352 (SD 0.6734)
cluster variance                                                0.09619 (SD 0.3101)
REML criterion at convergence                                   668294.9
=================================  ===========================  ===========================

Both fits depend on the rows only through each cluster-by-condition cell's count, mean and standard
deviation. :func:`seed_question_cells` holds a design of those 48 cells (``data/seed_question_cells.csv``
is its human-readable copy, and ``data/design_seed_question.py`` re-derives it) for which **every number
above is reproduced to the printed digits**, by this package and by lme4 alike. :func:`seed_question`
turns the cells into rows: within each cell, right-skewed noise (a gamma draw) is standardised to mean 0
and SD 1 and then scaled and shifted to the cell's SD and mean, so the cell means and SDs are exactly
the design's.

The design in brief (``data/README.md`` has the details):

- cluster sizes run from 376 to 115,203 rows, a log-normal spread (SD of log size 1.43); the two largest
  clusters hold 35% and 16% of the rows. The printed REML criterion and intercept SE leave little choice
  here: at the printed variances they fix, roughly, the geometric and harmonic means of the sizes (about
  5,000 and 2,200, against an arithmetic mean of 13,598), and a log-normal spread of that width is what
  has those three means;
- each cluster's share of ``stim`` rows runs from 0.46 to 0.62 (0.554 overall);
- cluster means of ``unstim`` run from -0.03 to 1.29. Big clusters tend to be low (the correlation of
  mean and log size is -0.5), which pulls the row-weighted ``lm`` intercept (0.584) below the ``lmer``
  one (0.719), which sits close to the plain mean of the cluster means. The largest cluster is an
  exception (0.79); the second largest is the lowest of all;
- the ``stim`` effect is -0.105 plus a small cluster-specific deviation (SD 0.03); the cell SDs lie
  between 0.58 and 0.76.

Only the counts, means and SDs of the cells were designed; everything else about the rows (the skewed
shape of the noise, the row order) is a choice of this module, not a fact of the question's data.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

__all__ = ["PRINTED", "SEED", "seed_question", "seed_question_cells"]

#: The numbers the question printed: name -> (value, decimals printed).
PRINTED = {
    "ols_intercept": (0.583864, 6),
    "ols_slope": (-0.106348, 6),
    "ols_se_intercept": (0.001941, 6),
    "ols_se_slope": (0.002609, 6),
    "ols_sigma": (0.7409, 4),
    "ols_df_resid": (326360, 0),
    "lmm_intercept": (0.719139, 6),
    "lmm_slope": (-0.097682, 6),
    "lmm_se_intercept": (0.063388, 6),
    "lmm_se_slope": (0.002375, 6),
    "sigma2_group": (0.09619, 5),
    "sd_group": (0.3101, 4),
    "sigma2_resid": (0.45352, 5),
    "sd_resid": (0.6734, 4),
    "criterion": (668294.9, 1),
    "n_obs": (326362, 0),
    "n_groups": (24, 0),
}

#: The seed of the within-cell noise.
SEED = 20240611

# Shape of the gamma draw behind the within-cell noise (skewness 2 / sqrt(shape) = 1).
_GAMMA_SHAPE = 4.0

# The cell design; identical to data/seed_question_cells.csv (a test checks that they agree).
_CELLS_CSV = """\
cluster,condition,n,mean,sd
donor01,unstim,1130,0.7393043137,0.7164117608
donor01,stim,1190,0.6587259946,0.7122053742
donor02,unstim,275,1.2113216872,0.5971899770
donor02,stim,355,1.1277449342,0.6631892999
donor03,unstim,1522,0.3303698417,0.6811379320
donor03,stim,2161,0.2319657877,0.6072698260
donor04,unstim,22754,-0.0277702385,0.7120720662
donor04,stim,28819,-0.1071048397,0.7006962506
donor05,unstim,1424,0.9360166421,0.7482347136
donor05,stim,1742,0.8575456215,0.6738640976
donor06,unstim,545,1.0122118860,0.7045252261
donor06,stim,565,0.8664465767,0.7550704251
donor07,unstim,3023,0.5869075946,0.6638664139
donor07,stim,3805,0.5493453143,0.6275503320
donor08,unstim,423,1.1102314862,0.5815916421
donor08,stim,443,0.9992888545,0.6683139749
donor09,unstim,7919,0.4312960296,0.5902017209
donor09,stim,10049,0.3020586227,0.7131253204
donor10,unstim,53061,0.7853130791,0.6609081711
donor10,stim,62142,0.6956888971,0.6969587889
donor11,unstim,4795,0.5054472891,0.6617307708
donor11,stim,6806,0.3800646601,0.7211940276
donor12,unstim,14503,0.5557505401,0.6297565569
donor12,stim,18282,0.4670134072,0.6557942648
donor13,unstim,9197,0.5712117280,0.7305888829
donor13,stim,14328,0.4224169762,0.5906223543
donor14,unstim,1276,1.2860379137,0.6633109466
donor14,stim,1440,1.2005261372,0.7061744435
donor15,unstim,823,0.8201429941,0.5998976337
donor15,stim,1146,0.6692963029,0.6176143199
donor16,unstim,4241,1.1843908624,0.5910193874
donor16,stim,5368,1.0873958714,0.7178798174
donor17,unstim,3038,0.5556865035,0.6433515703
donor17,stim,5024,0.4393476182,0.6369107180
donor18,unstim,741,0.3740143333,0.5833796489
donor18,stim,630,0.2482078219,0.5998854103
donor19,unstim,2401,0.7760161325,0.7034271331
donor19,stim,3420,0.6717080615,0.6433471057
donor20,unstim,7096,0.5478532681,0.6325572807
donor20,stim,7160,0.4196220129,0.6958913409
donor21,unstim,185,0.7649342627,0.6075120939
donor21,stim,191,0.6302446856,0.7431603985
donor22,unstim,2255,0.6899748852,0.6342127958
donor22,stim,2731,0.5936096480,0.6269070286
donor23,unstim,2227,0.6949027928,0.6394628267
donor23,stim,2056,0.6489962490,0.6551269473
donor24,unstim,837,0.9245116117,0.6908586085
donor24,stim,818,0.7824053367,0.6176579622
"""


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
    (376, 115203)
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
