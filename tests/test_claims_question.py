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
import pandas as pd
import pytest
from pandas.io.formats.style import Styler

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "00_question.ipynb"

#: The widest line a printed output may have and still fit the site's content column (784 CSS px) in
#: the theme's monospace font (about 8.4 px a character) without a scrollbar.
MAX_OUTPUT_CHARS = 90


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
