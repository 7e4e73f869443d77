"""The own-data report: pooled OLS, fixed effects and the mixed model side by side, for your file.

Command line (also installed as ``lmm-report``)::

    python -m helpers report DATA --formula "y ~ x1 + x2 + (1 | g)" [--reference col=level ...]
                             [--ml] [--large] [--html report.html] [--json result.json]

``DATA`` is a CSV (``.csv``, ``.tsv``, optionally gzipped) or Parquet file. The command checks the file
and the formula first (each problem is one line on stderr and exit status 2) and builds the one checked
design, then runs the notebook ``notebooks/07_your_own_data.ipynb`` on that design, with these values
injected after its ``parameters`` cell, as papermill does, so the report and the notebook never diverge.
The HTML report is self-contained: figures
are embedded, code is hidden, and nothing is loaded from the network (math is drawn as embedded SVG).
Without ``--html`` or ``--json`` it writes ``<DATA stem>_report.html`` in the current folder.

Files larger than :data:`LARGE_FILE_BYTES` (or any file, with ``--large``) are never loaded into memory:
DuckDB computes the per-cluster sufficient statistics straight from the file (:mod:`helpers.large`),
once, and the report skips the row-level checks that need rows, saying so.

The package is split by responsibility:

- :mod:`helpers.report.cli`: the command line (arguments, exit statuses, one-line errors);
- :mod:`helpers.report.inputs`: reading and checking the data file, the formula and the output paths,
  into one checked :class:`helpers.design.Design`;
- :mod:`helpers.report.run`: running notebook 07 on that design and writing the offline HTML page;
- :mod:`helpers.report.content`: the tables, sentences, figure descriptions and JSON that notebook 07
  shows.

Exit status: 0 on success, 2 for a problem with the input (file, formula, columns, levels, an output
path that is an input), 1 if the report itself fails: that is a bug, and one line says so and where to
report it (``--debug`` adds the traceback).

JSON output (``--json``)
------------------------
One object; every float is written at full precision (``repr``), and a value that is not defined (for
example the within estimate of the intercept) is ``null``. Term names follow formulaic
(``Intercept``, ``condition[T.stim]``).

- ``n_obs`` (int): rows used in the fits.
- ``n_groups`` (int): clusters.
- ``n_dropped`` (int): rows dropped because a model column was missing in them.
- ``dropped_by_column`` ({column: int}): missing values per model column among the dropped rows.
- ``formula`` (str), ``group`` (str): the model as fitted.
- ``source`` (str): ``"rows"`` (loaded into memory) or ``"duckdb"`` (sums computed from the file).
- ``reference_levels`` ({column: str}): each categorical predictor's reference level (R's order in the
  C locale unless ``--reference`` sets it).
- ``ols``: pooled OLS (R's ``lm``): ``params`` and ``bse`` ({term: float}) and ``sigma2`` (the residual
  variance, RSS / (N - p)).
- ``lmm``: the random-intercept model (lme4's ``lmer``): ``method`` (``"REML"`` or ``"ML"``),
  ``params`` and ``bse`` ({term: float}), ``sigma2_group`` (sigma_b^2), ``sigma2_resid`` (sigma^2),
  ``theta`` (sigma_b / sigma), ``criterion`` (the REML criterion, or the ML deviance, as lme4 reports
  it) and ``singular`` (bool: sigma_b^2 estimated as exactly 0; lme4's ``isSingular``). With random
  slopes ``theta`` is a list in lme4's order, ``sigma2_group`` is null and ``varcorr`` holds the
  records of R's ``as.data.frame(VarCorr(m))`` (``grp``, ``var1``, ``var2``, ``vcov``, ``sdcor``).
- ``decompose``: why the estimates moved: ``within`` (the fixed-effects, cluster-dummy estimator),
  ``between`` (OLS of the cluster means), ``reconstructed`` (the mixed model's estimates recomputed
  independently: OLS on quasi-demeaned rows, or from the within/between blend for ``source = "duckdb"``),
  each {term: float or null}, and ``design_effect`` (float: 1 + (sum n_i^2 / N - 1) ICC). With random
  slopes ``reconstructed`` and ``design_effect`` are null and ``note`` says why.
- ``warnings`` ([str]): the plain-language warnings of the report (singular fit, few clusters, clusters
  of one row, predictors that do not vary within clusters).
"""

from __future__ import annotations

from .cli import REPORT_BUGS, main
from .content import (
    NOT_DEFINED,
    Comparison,
    MarkdownText,
    compare,
    comparison_table,
    data_summary,
    describe_model,
    dropped_sentence,
    explain_moves,
    figure_alt,
    plain_warnings,
    reference_levels,
    result_dict,
    show_figure,
    show_table,
    slopes_note,
    warning_list,
    write_json,
)
from .inputs import (
    LARGE_FILE_BYTES,
    Checked,
    apply_reference,
    check_inputs,
    check_outputs,
    load_design,
    parse_reference,
    read_table,
    report_design,
    save_design,
)
from .run import (
    NOTEBOOK,
    NOTEBOOK_ONLY_TAG,
    NotebookMissing,
    ReportError,
    export_html,
    inject_parameters,
    make_report,
    notebook_path,
    run_notebook,
)

__all__ = [
    "LARGE_FILE_BYTES",
    "NOTEBOOK",
    "NOTEBOOK_ONLY_TAG",
    "NOT_DEFINED",
    "REPORT_BUGS",
    "Checked",
    "Comparison",
    "MarkdownText",
    "NotebookMissing",
    "ReportError",
    "apply_reference",
    "check_inputs",
    "check_outputs",
    "compare",
    "comparison_table",
    "data_summary",
    "describe_model",
    "dropped_sentence",
    "explain_moves",
    "export_html",
    "figure_alt",
    "inject_parameters",
    "load_design",
    "main",
    "make_report",
    "notebook_path",
    "parse_reference",
    "plain_warnings",
    "read_table",
    "reference_levels",
    "report_design",
    "result_dict",
    "run_notebook",
    "save_design",
    "show_figure",
    "show_table",
    "slopes_note",
    "warning_list",
    "write_json",
]
