"""statsmodels' MixedLM on the question-shaped random-slope data, beside lme4's fit of the same model.

Run from the repository root, after ``random_slopes_reference.R`` (it reads lme4's estimates from
``random_slopes_reference.json``)::

    .venv/bin/python tests/reference/random_slopes_statsmodels.py DIR

where DIR holds the CSVs written by ``random_slopes_data.py --generated DIR``. It writes
``random_slopes_statsmodels.json`` next to this script; about a minute.

For each of the two 326,362-row sets (``question_slopes``, ``seed_question``) it fits
``MixedLM.from_formula("pSHP2 ~ condition", groups="cluster", re_formula="~condition")`` with
statsmodels' defaults (REML, ``fit()`` without arguments), as a Python reader would, and records its
fixed effects, standard errors, random-effects covariance, residual variance, log-likelihood, whether it
says it converged, and the warnings it raised.

To say which estimate is the maximum, both are evaluated on one function: statsmodels' own REML
log-likelihood with the fixed effects and the scale profiled out (``MixedLM.loglike(...,
profile_fe=True)``), at statsmodels' estimate and at lme4's (its relative covariance T T' from theta).
``-2`` times that log-likelihood is lme4's REML criterion: ``lme4_criterion`` and
``minus_2_loglike_at_lme4`` agree to about 1e-6 (recorded as a check), so the criteria are comparable.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.formula.api as smf
from statsmodels.regression.mixed_linear_model import MixedLMParams

HERE = Path(__file__).resolve().parent
LME4_JSON = HERE / "random_slopes_reference.json"
OUT_JSON = HERE / "random_slopes_statsmodels.json"
SETS = {"question_slopes": "question_slopes.csv", "seed_question": "seed_question.csv"}
FORMULA = "pSHP2 ~ condition"
RE_FORMULA = "~condition"


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["condition"] = pd.Categorical(frame["condition"], categories=["unstim", "stim"])
    frame["cluster"] = pd.Categorical(frame["cluster"])
    return frame


def _relative_cov_from_theta(theta: list[float]) -> np.ndarray:
    """lme4's T T' for one 2-term block, theta = (T11, T21, T22)."""
    t = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    return t @ t.T


def _profiled_loglike(model, cov_re_relative: np.ndarray) -> float:
    k_fe = model.k_fe
    params = MixedLMParams.from_components(np.zeros(k_fe), cov_re=cov_re_relative)
    return float(model.loglike(params, profile_fe=True))


def _record(name: str, frame: pd.DataFrame, lme4_fit: dict) -> dict:
    model = smf.mixedlm(FORMULA, frame, groups=frame["cluster"], re_formula=RE_FORMULA)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit()
    seconds = time.perf_counter() - start
    names = list(result.fe_params.index)
    cov_re = np.asarray(result.cov_re)
    own_relative = cov_re / result.scale
    lme4_relative = _relative_cov_from_theta(list(lme4_fit["theta"].values()))
    at_own = _profiled_loglike(model, own_relative)
    at_lme4 = _profiled_loglike(model, lme4_relative)
    lme4_names = list(lme4_fit["fixef"])
    return {
        "formula": f"{FORMULA}, groups=cluster, re_formula='{RE_FORMULA}'",
        "method": "REML, fit() with statsmodels' defaults",
        "fe_names": names,
        "fe_params": [float(v) for v in result.fe_params],
        "bse_fe": [float(result.bse_fe[k]) for k in names],
        "cov_re": [[float(v) for v in row] for row in cov_re],
        "cov_re_names": list(result.cov_re.index),
        "scale": float(result.scale),
        "llf": float(result.llf),
        "converged": bool(result.converged),
        "warnings": [str(w.message) for w in caught],
        "seconds": seconds,
        "profiled_loglike_at_statsmodels": at_own,
        "profiled_loglike_at_lme4": at_lme4,
        "minus_2_loglike_at_statsmodels": -2 * at_own,
        "minus_2_loglike_at_lme4": -2 * at_lme4,
        "lme4": {
            "fe_names": lme4_names,
            "fe_params": [lme4_fit["fixef"][k] for k in lme4_names],
            "se": [lme4_fit["se"][k] for k in lme4_names],
            "theta": list(lme4_fit["theta"].values()),
            "sigma2": lme4_fit["sigma"] ** 2,
            "criterion": lme4_fit["criterion"],
            "winner": lme4_fit["winner"],
        },
        "higher_loglike": "lme4" if at_lme4 > at_own else "statsmodels",
    }


def main(directory: Path) -> None:
    lme4 = json.loads(LME4_JSON.read_text())
    out = {
        "generated_by": "tests/reference/random_slopes_statsmodels.py",
        "versions": {
            "statsmodels": statsmodels.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "lme4": lme4["versions"]["lme4"],
        },
        "fits": {},
    }
    for name, file in SETS.items():
        frame = _read(directory / file)
        lme4_fit = lme4["fits"][name]["reml"]
        out["fits"][name] = {"sha256": lme4["datasets"][name]["sha256"]} | _record(
            name, frame, lme4_fit
        )
        print(name, out["fits"][name]["fe_params"], out["fits"][name]["converged"])
    OUT_JSON.write_text(json.dumps(out, indent=2) + "\n")
    print(OUT_JSON.name)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: random_slopes_statsmodels.py DIR")
    main(Path(sys.argv[1]))
