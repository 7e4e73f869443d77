"""Running notebook 07 on checked input, and writing it as a self-contained, offline HTML page.

:func:`make_report` is the whole report: the outputs and the input are checked first
(:mod:`helpers.report.inputs`), the checked design is handed to the notebook, which runs with the
report's parameters injected after its ``parameters`` cell (as papermill does), and the executed notebook
becomes the HTML report (:func:`export_html`).
"""

from __future__ import annotations

import base64
import html as html_lib
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..design import ENGINE_NAMES
from ..validate import DataError
from .content import markdown_code, one_line
from .inputs import SPARK_MASTER, Checked, check_inputs, check_outputs, save_design

if TYPE_CHECKING:
    # nbformat is imported where it is used: importing it costs 1.5 s (its JSON-schema checks), which
    # every command would pay before it can even refuse a bad formula
    import nbformat

__all__ = [
    "NOTEBOOK",
    "NOTEBOOK_ONLY_TAG",
    "NotebookMissing",
    "ReportError",
    "notebook_path",
    "inject_parameters",
    "run_notebook",
    "export_html",
    "make_report",
]

#: The template notebook the report runs.
NOTEBOOK = "07_your_own_data.ipynb"

#: Cells with this tag are teaching material (learning goals, exercises) left out of the HTML report.
NOTEBOOK_ONLY_TAG = "notebook-only"


def notebook_path() -> Path:
    """The template notebook: shipped inside the installed package, or in a checkout's ``notebooks/``.

    A wheel carries the notebook as package data (``helpers/notebooks/``, see ``pyproject.toml``); an
    editable install or a checkout finds it in the repository's ``notebooks/`` folder next to
    ``helpers/``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    NotebookMissing
        When neither place has it (an installation without its package data).

    Examples
    --------
    >>> notebook_path().name
    '07_your_own_data.ipynb'
    """
    package = Path(__file__).resolve().parent.parent
    candidates = [package / "notebooks" / NOTEBOOK, package.parent / "notebooks" / NOTEBOOK]
    for path in candidates:
        if path.is_file():
            return path
    raise NotebookMissing(
        f"The report notebook {NOTEBOOK} was not found in {candidates[0].parent} or "
        f"{candidates[1].parent}; reinstall the package (its wheel ships the notebook) or run it from "
        "a clone of the repository."
    )


def inject_parameters(
    nb: nbformat.NotebookNode, parameters: Mapping[str, object]
) -> nbformat.NotebookNode:
    """Insert a cell of parameter assignments after the cell tagged ``parameters``, as papermill does.

    A previous injected cell (tagged ``injected-parameters``) is replaced. Values are written with
    ``repr``, so strings, numbers, booleans, None, lists and dicts of these round-trip exactly.

    Parameters
    ----------
    nb : nbformat.NotebookNode
    parameters : dict

    Returns
    -------
    nbformat.NotebookNode
        The same notebook, changed in place.

    Examples
    --------
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook()
    >>> nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})]
    >>> print(inject_parameters(nb, {"x": 2}).cells[1].source)
    # Parameters injected by the report command
    x = 2
    """
    cells = [
        c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    where = [
        i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if not where:
        raise ValueError("The notebook has no cell tagged 'parameters'.")
    lines = ["# Parameters injected by the report command"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    import nbformat

    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    cells.insert(where[0] + 1, cell)
    nb.cells = cells
    return nb


class ReportError(RuntimeError):
    """The report notebook failed for a reason other than the data.

    ``details`` holds the failing cell's traceback, which ``--debug`` prints.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class NotebookMissing(FileNotFoundError):
    """The package is installed without the report notebook (an installation problem, not a bug)."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_notebook(
    parameters: Mapping[str, object],
    *,
    timeout: int = 3600,
    cwd: str | os.PathLike | None = None,
) -> nbformat.NotebookNode:
    """Execute the template notebook with ``parameters`` injected, and return the executed notebook.

    Parameters
    ----------
    parameters : dict
        Names and values for the notebook's parameters cell.
    timeout : int, default 3600
        Seconds allowed per cell.
    cwd : path, optional
        The kernel's working folder; the current one by default.

    Returns
    -------
    nbformat.NotebookNode

    Raises
    ------
    DataError
        When a cell raises :class:`DataError` (a problem with the data found late).
    ReportError
        When a cell fails for another reason.

    Notes
    -----
    Executing the notebook starts a kernel and takes tens of seconds, too long for a docstring example;
    ``tests/test_report.py`` runs it end to end.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook_path(), as_version=4)
    inject_parameters(nb, parameters)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(cwd or Path.cwd())}},
    )
    previous = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        # the kernel's own log lines (transport notices and the like) would clutter the terminal
        client.execute(stderr=subprocess.DEVNULL)
    except CellExecutionError as exc:
        ename = getattr(exc, "ename", "") or ""
        evalue = (getattr(exc, "evalue", "") or "").strip()
        if ename == "DataError":
            raise DataError(evalue) from None
        raise ReportError(
            f"the report notebook failed ({ename}: {evalue})", _ANSI.sub("", str(exc))
        ) from None
    finally:
        if previous is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = previous
    return nb


_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
<style type="text/css">
img.math-inline { vertical-align: middle; }
span.math-display { display: block; text-align: center; margin: 0.6em 0; }
.jp-RenderedHTMLCommon table { margin-left: 0; }
/* A figure never shrinks below its width / MAX_SHRINK (each image's min-width, set when the page is
   written); on a narrow screen its output box scrolls sideways instead, as on the site. */
.jp-OutputArea-output { overflow-x: auto; }
.jp-OutputArea-output img.mme-figure { max-width: 100%; height: auto; }
</style>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block data_png scoped -%}
{%- set alt = output | get_metadata('alt', 'image/png') -%}
{%- if alt -%}
{{ super() | replace('<img ', '<img alt="' ~ (alt | escape_html) ~ '" ', 1) }}
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock data_png -%}
"""

#: The most a report figure may be shrunk on a narrow screen (the site's rule, site/static/mme.js).
MAX_SHRINK = 1.5

_PNG_IMG = re.compile(r'<img ([^>]*)src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
_CLASS = re.compile(r'\bclass="([^"]*)"\s*')


def _keep_figures_legible(body: str) -> str:
    """Give every embedded PNG a ``min-width`` of its own width / :data:`MAX_SHRINK` CSS pixels.

    Examples
    --------
    >>> from helpers.plots import figure_to_png, new_figure
    >>> png = base64.b64encode(figure_to_png(new_figure(figsize=(3.0, 1.0))[0])).decode()
    >>> _keep_figures_legible(f'<img alt="a" class="" src="data:image/png;base64,{png}">')[:66]
    '<img class="mme-figure" style="min-width:200px" alt="a" src="data:'
    """

    def tag(match: re.Match) -> str:
        attributes, data = match.groups()
        head = base64.b64decode(data[:44])  # the signature and the IHDR chunk
        if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
            return match.group(0)
        width = int.from_bytes(head[16:20], "big")
        classes = " ".join(["mme-figure", *_CLASS.findall(attributes)]).strip()
        attributes = _CLASS.sub("", attributes)
        return (
            f'<img class="{classes}" style="min-width:{math.ceil(width / MAX_SHRINK)}px" '
            f'{attributes}src="data:image/png;base64,{data}"'
        )

    return _PNG_IMG.sub(tag, body)


_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)(?<!\\)\$(?!\$)")
_FENCE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)


def _math_image(tex: str, display: bool, cache: dict) -> str:
    """An <img> holding ``tex`` drawn by matplotlib's mathtext as SVG, or the TeX as code on failure."""
    key = (tex, display)
    if key in cache:
        return cache[key]
    import io

    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.mathtext import MathTextParser, math_to_image

    size = 15.0 if display else 13.0
    prop = FontProperties(size=size)
    source = "$" + " ".join(tex.split()) + "$"
    try:
        with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "report"}):
            _, height, depth, _, _ = MathTextParser("path").parse(source, dpi=72, prop=prop)
            buffer = io.BytesIO()
            math_to_image(source, buffer, prop=prop, dpi=72, format="svg")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        alt = html_lib.escape(tex.strip(), quote=True)
        style = f"height:{height / size:.3f}em;vertical-align:{-depth / size:.3f}em"
        tag = (
            f'<img class="math" alt="{alt}" style="{style}" src="data:image/svg+xml;base64,{data}">'
        )
        if display:
            tag = f'<span class="math-display">{tag}</span>'
    except Exception:  # mathtext knows a subset of TeX; show the rest as code
        tag = f"<code>{html_lib.escape(tex.strip())}</code>"
    cache[key] = tag
    return tag


def _render_math(text: str, cache: dict) -> str:
    """Replace $...$ and $$...$$ in markdown by embedded SVG images, leaving code spans alone."""
    parts = _FENCE.split(text)
    for k in range(0, len(parts), 2):
        part = _DISPLAY_MATH.sub(lambda m: _math_image(m.group(1), True, cache), parts[k])
        parts[k] = _INLINE_MATH.sub(lambda m: _math_image(m.group(1), False, cache), part)
    return "".join(parts)


def _offline_notebook(
    nb: nbformat.NotebookNode, heading: str | None = None
) -> nbformat.NotebookNode:
    """A copy of the executed notebook ready for the HTML report: teaching cells out, math as SVG.

    ``heading`` (Markdown) replaces the first cell's title line, so that the report is titled by the
    user's file and formula rather than by the template's name.
    """
    import copy

    nb = copy.deepcopy(nb)
    if heading:
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.startswith("# "):
                rest = cell.source.split("\n", 1)[1] if "\n" in cell.source else ""
                cell.source = heading.rstrip() + "\n" + rest
                break
    cache: dict = {}
    # links to the other notebooks lead nowhere in a single offline page: keep their text only
    local_link = re.compile(r"\[([^\]]+)\]\((?!https?:|#)[^)]*\)")
    kept = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if NOTEBOOK_ONLY_TAG in tags:
            continue
        if cell.cell_type == "markdown":
            cell.source = _render_math(local_link.sub(r"\1", cell.source), cache)
        elif cell.cell_type == "code":
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if "text/markdown" in data:
                    data["text/markdown"] = _render_math(data["text/markdown"], cache)
        kept.append(cell)
    nb.cells = kept
    return nb


_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I
)


def export_html(
    nb: nbformat.NotebookNode,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    heading: str | None = None,
) -> Path:
    """Write an executed notebook as a self-contained, offline HTML report.

    Code is hidden, figures are embedded as data URIs, math is drawn as embedded SVG, cells tagged
    ``notebook-only`` are left out, and nothing is loaded from the network (no require.js, MathJax or
    mermaid from a CDN).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        An executed notebook.
    path : str or os.PathLike
    title : str, optional
        The page title.
    heading : str, optional
        Markdown that replaces the title line of the notebook's first cell.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    RuntimeError
        If the page would still load something from the network.

    Examples
    --------
    >>> import tempfile
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook()
    >>> nb.cells = [nbformat.v4.new_markdown_cell("# Report\\nThe variance $\\\\sigma^2$.")]
    >>> out = export_html(nb, Path(tempfile.mkdtemp()) / "r.html")
    >>> text = out.read_text()
    >>> "cdnjs" in text, "data:image/svg+xml;base64," in text
    (False, True)
    """
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"lmm_report.html.j2": _TEMPLATE})],
    )
    exporter.template_file = "lmm_report.html.j2"
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    ready = _offline_notebook(nb, heading)
    if title:
        ready.metadata["title"] = title
    body, _ = exporter.from_notebook_node(ready)
    body = re.sub(
        r"(<style[^>]*>)(.*?)(</style>)",
        lambda m: m.group(1) + _CSS_COMMENT.sub("", m.group(2)) + m.group(3),
        body,
        flags=re.S,
    )
    body = _keep_figures_legible(body)
    found = _EXTERNAL.search(body)
    if found:
        start = max(found.start() - 40, 0)
        raise RuntimeError(
            f"The report would load a remote resource: {body[start : found.end() + 60]!r}"
        )
    path = Path(path)
    path.write_text(body, encoding="utf-8")
    return path


def make_report(
    data: str | os.PathLike,
    formula: str,
    *,
    reference: Mapping[str, object] | None = None,
    reml: bool = True,
    group: str | None = None,
    html: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    large: bool | None = None,
    engine: str | None = None,
    spark_master: str = SPARK_MASTER,
    timeout: int = 3600,
    notify: Callable[[str], object] | None = None,
) -> Checked:
    """Check the inputs, run the template notebook on them, and write the HTML and/or JSON report.

    Parameters
    ----------
    data : str or os.PathLike
        A CSV or Parquet file.
    formula : str
        ``"y ~ x + (1 | g)"``.
    reference : dict, optional
        ``{column: level}``.
    reml : bool, default True
        REML (as lmer's default); False for maximum likelihood.
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    html, json_path : str or os.PathLike, optional
        Where to write the report and the numbers.
    large : bool, optional
        Force or forbid the DuckDB path (default: by file size); the same as ``engine="duckdb"``.
    engine : {"pandas", "duckdb", "spark"}, optional
        Where the sums are computed (:func:`helpers.report.inputs.choose_engine`; default: by size).
    spark_master : str, default "local[*]"
        Where Spark runs, with ``engine="spark"``.
    timeout : int, default 3600
        Seconds allowed per notebook cell.
    notify : callable, optional
        Called with a message about dropped rows or the engine's sums, before the notebook runs.

    Returns
    -------
    Checked
        What the input check found (the fits themselves run in the notebook).

    Raises
    ------
    DataError
        For a problem with the input, found before the notebook runs (or, rarely, while it runs).
    ReportError
        When the notebook fails for another reason.

    Examples
    --------
    Problems with the input stop the report before the notebook starts:

    >>> make_report("no/such/file.csv", "y ~ x + (1 | g)", html="report.html")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: File 'no/such/file.csv' does not exist in the folder .../no/such (a relative path starts from the current folder); check the path.
    """
    template = notebook_path()  # an installation without the notebooks fails here, before any work
    check_outputs(data, {"--html": html, "--json": json_path}, template=template)
    checked = check_inputs(
        data,
        formula,
        reference=reference,
        group=group,
        large=large,
        engine=engine,
        spark_master=spark_master,
    )
    if notify is not None:
        if checked.n_dropped:
            notify(checked.dropped_message())
        if checked.large:
            by = ENGINE_NAMES.get(checked.design.source, checked.design.source)
            notify(
                f"computing from the file with {by} ({checked.design.n_obs} rows used, never "
                "loaded into memory)"
            )
    with tempfile.TemporaryDirectory(prefix="lmm-report-") as folder:
        # the notebook works on this design: the data are read (or scanned) once, here
        parameters = {
            "data_path": checked.path,
            "formula": formula,
            "group": group,
            "reference": dict(checked.reference),
            "reml": bool(reml),
            "large": bool(checked.large),
            "json_path": str(Path(json_path).resolve()) if json_path else None,
            "design_path": str(save_design(checked.design, folder)),
        }
        nb = run_notebook(parameters, timeout=timeout)
    if html:
        name = one_line(Path(data).name)
        method = "REML" if reml else "maximum likelihood (`--ml`)"
        export_html(
            nb,
            html,
            title=f"Mixed-model report: {name} \u00b7 {one_line(formula)}",
            heading=(
                f"# Mixed-model report: {markdown_code(name)}\n\n"
                f"Model {markdown_code(one_line(formula))}, fitted by {method}."
            ),
        )
    return checked
