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
from .formula import parse_formula
from .objective import criterion, criterion_derivative, make_objective, profile
from .results import LmmResult, OlsResult
from .validate import DataError

__version__ = "0.1.0"

# Heavier modules (matplotlib, ipywidgets, DuckDB) load on first use, so `import helpers` stays quick.
_LAZY = {
    "Decomposition": "decompose",
    "decompose": "decompose",
    "fixed_effect_path": "decompose",
    "within_between_blend": "decompose",
    "fit_lmm_file": "large",
    "plot_caterpillar": "plots",
    "plot_criteria": "plots",
    "plot_fixed_effect_path": "plots",
    "plot_pooling": "plots",
    "explorer": "widgets",
    "explorer_figure": "widgets",
    "static_explorer": "widgets",
    "anova": "inference",
    "bootstrap": "inference",
    "confint": "inference",
    "likelihood_profile": "inference",
    "predict": "inference",
    "satterthwaite_tests": "inference",
    "tests": "inference",  # deprecated alias of satterthwaite_tests, not in __all__
    "varpar_covariance": "inference",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DataError",
    "Decomposition",
    "Design",
    "LmmResult",
    "OlsResult",
    "RowsDroppedWarning",
    "SufficientStats",
    "anova",
    "bootstrap",
    "build_design",
    "confint",
    "criterion",
    "criterion_derivative",
    "decompose",
    "explorer",
    "explorer_figure",
    "fit_lmm",
    "fit_lmm_file",
    "fit_lmm_from_stats",
    "fit_ols",
    "fixed_effect_path",
    "likelihood_profile",
    "load_dataset",
    "make_objective",
    "optimize_theta",
    "parse_formula",
    "plot_caterpillar",
    "plot_criteria",
    "plot_fixed_effect_path",
    "plot_pooling",
    "predict",
    "profile",
    "seed_question",
    "simulate_clustered",
    "static_explorer",
    "satterthwaite_tests",
    "varpar_covariance",
    "within_between_blend",
]
