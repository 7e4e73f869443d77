"""Sphinx extension that keeps the site self-contained and honest.

Loaded by ``_config.yml`` (``sphinx.local_extensions``). It

* serves MathJax from the site itself: the files come from the ``sphinx-mathjax-offline`` package and
  are copied to ``_static/mathjax`` when the build finishes;
* writes the project version, the git revision and the build date into the footer;
* replaces live ipywidgets views, which need a kernel, by a one-line note and drops the widget
  state and widget-manager scripts that myst-nb would add for them;
* warns (an error under ``-W``) when a page would load a script, style sheet, image or font from
  another host, so the site keeps working offline from disk;
* adds ``static/mme.css`` and ``static/mme.js`` to every page: code wraps at the column's width, and
  figures never shrink by more than 1.5 times (they scroll sideways on a narrow screen);
* says in the download menu what the notebook file is (code only, no outputs; it needs the project's
  ``helpers`` package) and offers the executed notebook, with its outputs, beside it.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The MathJax 3 combined component the pages load (TeX input, CommonHTML output).
MATHJAX_ENTRY = "tex-chtml.js"
#: What MathJax may load lazily next to it: TeX extensions (autoload), fonts, menu, accessibility.
MATHJAX_PARTS = ("input/tex/extensions", "output/chtml", "ui", "a11y", "sre", "adaptors")
MATHJAX_DISTRIBUTION = "sphinx-mathjax-offline"
MATHJAX_LICENSE = (
    "MathJax 3.2.2 (https://www.mathjax.org), copied from the PyPI package sphinx-mathjax-offline.\n"
    "Licensed under the Apache License, Version 2.0: https://www.apache.org/licenses/LICENSE-2.0\n"
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "This cell shows a live widget: its sliders need a running Jupyter kernel, "
    "so it is not shown on this static page."
)

# Markup that makes the browser fetch something from another host (a network-path "//" too).
_REMOTE_ASSET = re.compile(
    r"""<(?P<tag>script|link|img|iframe|source|video|audio|embed|object)\b[^>]*?"""
    r"""\b(?:src|href|data)\s*=\s*["']?(?P<url>(?:https?:)?//[^"'\s>]+)""",
    re.IGNORECASE,
)
_REMOTE_CSS_URL = re.compile(r"""url\(\s*["']?(?P<url>(?:https?:)?//[^"')\s]+)""", re.IGNORECASE)
#: The project's style sheet and script, in ``static/`` next to this file.
STATIC = Path(__file__).resolve().parent / "static"
#: Where the executed notebooks are offered for download, inside the built site.
EXECUTED = "_executed"
#: The download menu's entries for a notebook page: the source and the executed notebook.
SOURCE_NOTEBOOK_TEXT = (
    ".ipynb: the code only, without outputs (runs with the project's helpers package)"
)
EXECUTED_NOTEBOOK_TEXT = (
    ".ipynb with outputs, as executed for this site (rerunning needs helpers too)"
)

_REMOTE_IMPORT = re.compile(r"""@import\s+["'](?P<url>(?:https?:)?//[^"']+)""", re.IGNORECASE)


def mathjax_source() -> Path:
    """Return the folder of the installed MathJax 3 files.

    Returns
    -------
    pathlib.Path
        The ``static/mathjax`` folder of the ``sphinx-mathjax-offline`` distribution.

    Raises
    ------
    RuntimeError
        If the package is not installed.
    """
    try:
        dist = importlib.metadata.distribution(MATHJAX_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"The site serves MathJax from the Python package {MATHJAX_DISTRIBUTION!r}, which is "
            "not installed; run 'make env' (or pip install it) and build again."
        ) from None
    folder = Path(str(dist.locate_file("sphinx-mathjax-offline/static/mathjax")))
    if not (folder / MATHJAX_ENTRY).is_file():
        raise RuntimeError(f"{MATHJAX_DISTRIBUTION} is installed but lacks {MATHJAX_ENTRY}.")
    return folder


def project_version(srcdir: Path) -> str:
    """Return the version of the helpers package (``helpers.__version__``, else pyproject.toml)."""
    try:
        import helpers

        return str(helpers.__version__)
    except Exception:  # the footer must not hide the real error, which the notebooks will show
        pyproject = srcdir / "pyproject.toml"
        if pyproject.is_file():
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        return "unknown"


def git_revision(srcdir: Path) -> str | None:
    """Return the short git revision of the source folder, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(srcdir), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None


def build_date() -> str:
    """Return the build date (UTC, ISO format), honouring SOURCE_DATE_EPOCH for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC) if epoch else dt.datetime.now(tz=dt.UTC)
    return when.date().isoformat()


def footer_html(version: str, date: str, revision: str | None) -> str:
    """Return the footer line: version, revision (when known) and build date."""
    rev = f' (revision <code class="mme-revision">{revision}</code>)' if revision else ""
    return (
        '<p class="mme-build-info">'
        f'Version <span class="mme-version">{version}</span>{rev}, '
        f'built on <time class="mme-build-date" datetime="{date}">{date}</time>.'
        "</p>"
    )


def remote_assets(html: str) -> list[str]:
    """Return every URL on another host that this HTML would load as a script, style, image or font.

    Examples
    --------
    >>> remote_assets('<script src="https://cdn.example.org/x.js"></script><a href="https://a.b">')
    ['https://cdn.example.org/x.js']
    >>> remote_assets("<style>@font-face{src:url('//fonts.example.org/f.woff')}</style>")
    ['//fonts.example.org/f.woff']
    """
    found = [m.group("url") for m in _REMOTE_ASSET.finditer(html)]
    found += [m.group("url") for m in _REMOTE_CSS_URL.finditer(html)]
    found += [m.group("url") for m in _REMOTE_IMPORT.finditer(html)]
    return found


def _configure(app: Sphinx, config) -> None:
    srcdir = Path(app.srcdir)
    options = dict(config.html_theme_options or {})
    options["extra_footer"] = footer_html(
        project_version(srcdir), build_date(), git_revision(srcdir)
    )
    options["launch_buttons"] = {}
    config.html_theme_options = options
    config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"
    # No page keeps widget state (see _strip_widgets), so no widget manager is loaded.
    config.nb_ipywidgets_js = {}
    mathjax_source()  # fail early, with the reason, if MathJax is missing


def _strip_widgets(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Replace live widget views by a note; warn about any asset fetched from another host."""
    for raw in list(doctree.findall(nodes.raw)):
        text = raw.astext()
        if WIDGET_VIEW in text:
            note = nodes.paragraph(classes=["mme-widget-note"])
            note += nodes.emphasis(text=WIDGET_NOTE)
            raw.replace_self(note)
            continue
        for url in remote_assets(text):
            logger.warning(
                "%s: an output loads %s from another host; the site must work offline, so serve "
                "it from the site or remove it",
                docname,
                url,
                location=raw,
            )
    for image in doctree.findall(nodes.image):
        uri = image.get("uri", "")
        if re.match(r"^(?:https?:)?//", uri):
            logger.warning(
                "%s: the image %s lives on another host; the site must work offline, so copy it "
                "into the repository",
                docname,
                uri,
                location=image,
            )
    # The widget state that myst-nb stores for the page is dead weight without the views.
    metadata = getattr(app.env, "nb_metadata", {}).get(docname, {})
    js_files = metadata.get("js_files", {})
    for key in [k for k in js_files if k.startswith("ipywidgets")]:
        del js_files[key]


def _check_page_assets(app: Sphinx, pagename: str, templatename, context, doctree) -> None:
    """Warn if the page template would load a script or style sheet from another host."""
    for asset in list(context.get("script_files", [])) + list(context.get("css_files", [])):
        url = getattr(asset, "filename", asset)
        if isinstance(url, str) and re.match(r"^(?:https?:)?//", url):
            logger.warning(
                "%s: the page loads %s from another host; the site must work offline",
                pagename,
                url,
            )


def _download_buttons(app: Sphinx, pagename: str, templatename, context, doctree) -> None:
    """Say what the notebook download is, and offer the executed notebook beside it."""
    if context.get("page_source_suffix") != ".ipynb":
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "download-buttons":
            continue
        buttons = group["buttons"]
        for button in buttons:
            if button.get("text") == ".ipynb":
                button["text"] = SOURCE_NOTEBOOK_TEXT
                button["tooltip"] = (
                    "Download the notebook as stored in the project, without outputs"
                )
        at = next(
            (k for k, b in enumerate(buttons) if b.get("text") == SOURCE_NOTEBOOK_TEXT),
            len(buttons),
        )
        buttons.insert(
            at + 1,
            {
                "type": "link",
                "url": f"{context['pathto'](EXECUTED, 1)}/{pagename}.ipynb",
                "text": EXECUTED_NOTEBOOK_TEXT,
                "icon": "fas fa-file-code",
                "tooltip": "Download the notebook with the outputs shown on this page",
                "label": "download-executed-notebook-button",
            },
        )


def _copy_executed(app: Sphinx, exception: Exception | None) -> None:
    """Copy the executed notebooks (myst-nb's ``jupyter_execute``) into the site for download."""
    if exception is not None or app.builder is None or app.builder.format != "html":
        return
    source = Path(app.outdir).parent / "jupyter_execute"
    target = Path(app.outdir) / EXECUTED
    if target.exists():
        shutil.rmtree(target)
    for notebook in sorted(source.rglob("*.ipynb")) if source.is_dir() else []:
        destination = target / notebook.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(notebook, destination)


def _add_static(app: Sphinx) -> None:
    app.config.html_static_path = [*app.config.html_static_path, str(STATIC)]


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder is None or app.builder.format != "html":
        return
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy2(source / MATHJAX_ENTRY, target / MATHJAX_ENTRY)
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part)
    (target / "LICENSE.txt").write_text(MATHJAX_LICENSE)


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    app.connect("config-inited", _configure)
    app.connect("doctree-resolved", _strip_widgets)
    # after myst-nb's own handler (priority 500), which adds a notebook page's scripts
    app.connect("html-page-context", _check_page_assets, priority=900)
    app.connect("html-page-context", _download_buttons, priority=950)  # after the book theme's
    app.connect("builder-inited", _add_static)
    app.add_css_file("mme.css")
    app.add_js_file("mme.js")
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _copy_executed)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
