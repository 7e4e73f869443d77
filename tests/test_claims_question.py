"""Notebook 00 (the question): how its printouts, tables and figure 1 are shown, and the numbers and
words of its model-check section.

The code cells run once in this process (not in a kernel), so the tests can look at the objects the
notebook builds (the figure's lines, the styled tables) and at what each cell prints. The prose claims are
recomputed from the question's printed numbers (``helpers.seed.PRINTED``) and from the seed rows.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import matplotlib.colors as mcolors
import nbformat
import numpy as np
import pandas as pd
import pytest
from pandas.io.formats.style import Styler
from scipy import stats

from helpers.seed import PRINTED, QUANTILE_SUFFIXES

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "00_question.ipynb"

#: The widest line a printed output may have and still fit the site's content column (784 CSS px)
#: without a scrollbar. The old side-by-side table of the two printouts (103 characters of text in all,
#: before padding) was 993 px wide, so under 10 px a character: 80 characters fit.
MAX_OUTPUT_CHARS = 80


def _prose(nb) -> str:
    """The markdown without References, code blocks and inline code, on one line."""
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.split(r"^#+\s*References", text, flags=re.M)[0]
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    return " ".join(text.split())


@pytest.fixture(scope="module")
def notebook():
    """Run the notebook's code cells in order; return its namespace, each cell's printed output and prose."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    namespace: dict = {}
    printed: list[tuple[str, str]] = []
    here = os.getcwd()
    os.chdir(NOTEBOOK.parent)
    try:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(cell.source, NOTEBOOK.name, "exec"), namespace)
            printed.append((cell.source, out.getvalue()))
    finally:
        os.chdir(here)
    return {"ns": namespace, "printed": printed, "prose": _prose(nb)}


def _output_of(notebook, needle: str) -> str:
    """The printed output of the one code cell whose source contains ``needle``."""
    found = [out for source, out in notebook["printed"] if needle in source]
    assert len(found) == 1, f"{len(found)} code cells contain {needle!r}"
    return found[0]


# --- how the printouts, tables and figure 1 are shown -------------------------------------------------


def test_printouts_are_stacked_and_fit_the_column(notebook):
    """The two printouts come one below the other, as text narrow enough for the content column."""
    ns = notebook["ns"]
    out = _output_of(notebook, ".summary()")
    lm_text, lmer_text = ns["ols"].summary(), ns["lmm"].summary()
    assert lm_text in out and lmer_text in out
    assert out.index(lm_text) < out.index(lmer_text)
    widest = max(len(line) for line in out.splitlines())
    assert widest <= MAX_OUTPUT_CHARS, f"a printout line is {widest} characters wide"
    # and no table holds them side by side any more
    tables = [v.data for v in ns.values() if isinstance(v, Styler)]
    tables += [v for v in ns.values() if isinstance(v, pd.DataFrame)]
    assert tables
    for table in tables:
        cells = table.astype(str).to_numpy().ravel()
        assert not any("Linear mixed model fit by REML" in cell for cell in cells)


@pytest.mark.parametrize("name", ["fixed_table", "check_table"])
def test_tables_pad_their_cells(notebook, name):
    html = notebook["ns"][name].to_html()
    styles = " ".join(re.findall(r"<style[^>]*>(.*?)</style>", html, re.S))
    rules = re.findall(r"([^{}]*)\{([^}]*)\}", styles)
    padded = [sel for sel, body in rules if re.search(r"padding:\s*[0-9.]+em\s+[0-9.]+em", body)]
    assert any("td" in sel for sel in padded) and any("th" in sel for sel in padded), (
        f"{name}: its cells have no padding, so neighbouring numbers run together"
    )


def test_figure_1_shows_both_the_lmer_intercept_and_the_plain_mean(notebook):
    ns = notebook["ns"]
    lmer_icpt, plain = ns["lmer_icpt"], ns["plain"]
    ax = ns["fig"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    lmer = next(line for label, line in lines.items() if label.startswith("lmer intercept"))
    mean = next(line for label, line in lines.items() if label.startswith("plain mean"))
    assert lmer.get_ydata()[0] == pytest.approx(lmer_icpt)
    assert mean.get_ydata()[0] == pytest.approx(plain)
    # the caption's premise: the two lie closer than the wide band is thick, on the axes as drawn
    low, high = ax.get_ylim()
    height_pt = ax.get_window_extent().height * 72 / ns["fig"].dpi
    gap_pt = abs(plain - lmer_icpt) / (high - low) * height_pt
    assert gap_pt < lmer.get_linewidth() / 2
    # so they must differ in colour, the plain mean on top, broken so that the band shows through
    assert mcolors.to_rgb(lmer.get_color()) != mcolors.to_rgb(mean.get_color())
    assert mean.get_zorder() > lmer.get_zorder()
    assert mean.get_linestyle() not in ("-", "solid")
    assert mean.get_linewidth() < lmer.get_linewidth()
    # and the legend names both, each with its own value
    labels = [t.get_text() for t in ns["fig"].legends[0].get_texts()]
    assert f"lmer intercept ({lmer_icpt:.4f})" in labels
    assert f"plain mean of cluster means ({plain:.4f})" in labels
    assert f"{lmer_icpt:.4f}" != f"{plain:.4f}"


# --- the model checks ---------------------------------------------------------------------------------


def _printed_quantiles(prefix: str) -> np.ndarray:
    return np.array([PRINTED[prefix + s][0] for s in QUANTILE_SUFFIXES])


def _bowley(q) -> float:
    return (q[3] + q[1] - 2 * q[2]) / (q[3] - q[1])


def test_the_cell_reads_the_printed_quantiles(notebook):
    """The cell's five numbers are the printout's, and its reference is the normal for as many rows."""
    ns = notebook["ns"]
    reader = _printed_quantiles("lmm_resid")
    np.testing.assert_array_equal(ns["reader_q"], reader)
    n = PRINTED["n_obs"][0]
    # the median of the largest of n normal draws, by simulation of its distribution function
    rng = np.random.default_rng(7)
    largest = stats.norm.ppf(rng.uniform(size=2001) ** (1 / n))
    assert ns["largest_normal"] == pytest.approx(np.median(largest), abs=0.02)
    assert ns["quartile_skewness"](reader) == pytest.approx(_bowley(reader))
    assert ns["quartile_skewness"](np.array([-3.0, -1.0, 0.0, 1.0, 3.0])) == 0.0


def test_three_signs_of_right_skew_in_the_printout(notebook):
    """ "The median lies below zero; the upper quartile is about twice as far from the median as the
    lower one; the largest residual is more than twice as far out as the largest of that many normal
    draws (the smallest is beyond it too, but less far). A normal model puts about two in five rows below
    the median." """
    prose = notebook["prose"]
    q = _printed_quantiles("lmm_resid")
    largest = notebook["ns"]["largest_normal"]
    assert "The median lies below zero" in prose
    assert q[2] < 0
    assert "about twice as far from the median as the lower one" in prose
    assert 1.8 < (q[3] - q[2]) / (q[2] - q[1]) < 2.2
    assert "more than twice as far out as the largest of that many normal draws" in prose
    assert q[4] / largest > 2
    assert "the smallest is beyond it too, but less far" in prose
    assert 1 < -q[0] / largest < q[4] / largest
    assert "about two in five rows below the median" in prose
    assert stats.norm.cdf(q[2]) == pytest.approx(2 / 5, abs=0.01)
    assert "right-skewed, with long tails on both sides, the upper one longer" in prose
    assert _bowley(q) > 0.25
    # "more than half of the rows lie below" the mean: the median is below the residuals' mean of about 0
    assert "more than half of the rows lie below it" in prose
    resid = notebook["ns"]["lmm"].resid()
    assert abs(resid.mean()) < 0.01 and np.mean(resid < resid.mean()) > 0.5
    # the lm printout tells the same story
    lm = _printed_quantiles("ols_resid")
    assert lm[2] < 0 and _bowley(lm) > 0.2 and lm[4] > -lm[0]


def test_the_response_is_not_a_proportion(notebook):
    """ "its fitted values and residual extremes put the lowest row below -3 and the highest above 7" """
    prose = notebook["prose"]
    assert "the lowest row below −3 and the highest above 7" in prose
    assert "it is not a proportion" in prose
    fitted = PRINTED["ols_intercept"][0] + np.array([0.0, PRINTED["ols_slope"][0]])
    lm = _printed_quantiles("ols_resid")
    lowest_at_most, highest_at_least = fitted.max() + lm[0], fitted.min() + lm[4]
    assert lowest_at_most < -3 and highest_at_least > 7
    out = _output_of(notebook, "lm_fitted")
    assert f"at most {lowest_at_most:.2f}" in out and f"at least {highest_at_least:.2f}" in out


def test_rows_per_cluster(notebook):
    """ "326,362 in 24 clusters, over thirteen thousand per cluster on average" """
    assert "over thirteen thousand per cluster on average" in notebook["prose"]
    assert 13_000 < PRINTED["n_obs"][0] / PRINTED["n_groups"][0] < 14_000


def test_figure_2_is_the_seed_fit_and_labelled_so(notebook):
    ns = notebook["ns"]
    checks, lmm = ns["checks"], ns["lmm"]
    assert "seed rows (not the reader's rows)" in checks._suptitle.get_text()
    assert [ax.get_title() for ax in checks.axes] == [
        "Residuals against fitted values",
        "Scaled residuals",
        "Conditional modes",
    ]
    assert lmm.n_obs == PRINTED["n_obs"][0]
    markdown = " ".join(
        c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "markdown"
    )
    caption = "Figure 2. Model checks of the lmer fit to the seed rows, not to the reader's rows"
    assert caption in re.sub(r"[*`]", "", " ".join(markdown.split()))


def test_figure_2_caption(notebook):
    """The caption: one stripe per cluster and condition; the binned mean stays on zero; every stripe
    reaches further up than down; the QQ plot flattens at the bottom; the modes lie roughly along their
    line, the highest few a little below it."""
    ns = notebook["ns"]
    df, lmm = ns["df"], ns["lmm"]
    fitted, resid = lmm.fitted(include_random=True), lmm.resid()
    cell = df.groupby(["cluster", "condition"], observed=True).ngroup().to_numpy()
    assert len(np.unique(np.round(fitted, 10))) == cell.max() + 1 == 2 * lmm.n_groups
    binned = next(line for line in ns["checks"].axes[0].get_lines() if line.get_gid() == "binned")
    assert np.abs(binned.get_ydata()).max() < 0.05 * np.sqrt(lmm.sigma2_resid)
    by_cell = pd.Series(resid).groupby(cell).agg(["min", "max"])
    assert (by_cell["max"] > -by_cell["min"]).all()
    scaled = resid / np.sqrt(lmm.sigma2_resid)
    assert scaled.min() > -0.5 * ns["largest_normal"]  # far above where normal rows would reach
    modes = np.sort(lmm.ranef.to_numpy(dtype=float))
    theoretical = stats.norm.ppf((np.arange(1, len(modes) + 1) - 0.5) / len(modes))
    assert np.corrcoef(theoretical, modes)[0, 1] > 0.97
    q1, q3 = np.quantile(modes, [0.25, 0.75])
    slope = (q3 - q1) / (stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
    line = q1 + slope * (theoretical - stats.norm.ppf(0.25))
    assert (modes[-3:] < line[-3:]).all()


def test_seed_skew_is_milder_and_its_intervals_miss_high(notebook):
    """ "The seed's skew is milder than the reader's (a smaller quartile skewness) and it has no long lower
    tail"; "The normal 95% interval misses high nearly twice as often as the one row in forty it
    promises, and almost never misses low." """
    ns, prose = notebook["ns"], notebook["prose"]
    seed_q, reader_q = ns["seed_q"], _printed_quantiles("lmm_resid")
    assert "The seed's skew is milder than the reader's" in prose
    assert 0 < _bowley(seed_q) < _bowley(reader_q)
    assert seed_q[0] > -2.5 and reader_q[0] < -5
    assert "misses high nearly twice as often as the one row in forty" in prose
    assert 1.6 < ns["above"] / (1 / 40) < 2.0
    assert "almost never misses low" in prose
    assert ns["below"] < 0.001
    out = _output_of(notebook, "z95 = ")
    assert f"{ns['above']:.1%}" in out and f"{ns['below']:.2%}" in out


def test_summary_names_the_skew_and_the_seed(notebook):
    prose = notebook["prose"]
    assert "The reader's scaled residuals are right-skewed" in prose
    assert "The seed rows show what the checks look like, not the reader's residuals" in prose
