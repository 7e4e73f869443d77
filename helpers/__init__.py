"""Mixed models, explained: the helper package behind the notebooks.

The fit runs in lme4's four visible steps:

1. :func:`build_design` turns rows into model matrices and per-cluster sufficient statistics;
2. :func:`make_objective` gives the profiled REML or ML criterion as a function of theta = sigma_b / sigma;
3. :func:`optimize_theta` minimises it on theta >= 0;
4. :func:`fit_lmm` returns a frozen :class:`LmmResult`.
"""

from .data import load_dataset, seed_question, simulate_clustered
from .design import Design, RowsDroppedWarning, SufficientStats, build_design
from .fit import fit_lmm, fit_lmm_from_stats, fit_ols, optimize_theta
from .objective import criterion, make_objective, profile
from .results import LmmResult, OlsResult
from .validate import DataError, parse_formula

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Design",
    "LmmResult",
    "OlsResult",
    "RowsDroppedWarning",
    "SufficientStats",
    "build_design",
    "criterion",
    "fit_lmm",
    "fit_lmm_from_stats",
    "fit_ols",
    "load_dataset",
    "make_objective",
    "optimize_theta",
    "parse_formula",
    "profile",
    "seed_question",
    "simulate_clustered",
]
