"""One build of the static site per test session, shared by test_site_build and test_site_browser.

Each of the two modules wraps :func:`get_built_site` in a session fixture of its own; the build is
memoised here, at module level, so the site is built once per session whichever module runs first.

The build runs ``site/build.py`` in a subprocess, exactly as ``make html`` does, with warnings as
errors, into a temporary folder. Executed notebooks are reused from ``_build/.jupyter_cache`` only
when nothing they depend on has changed (see site/build.py); set ``MME_SITE_NO_CACHE=1`` to execute
every notebook afresh, and ``MME_SITE_SOURCE=DIR`` to build another checkout of the book.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
BUILD_TIMEOUT = 45 * 60  # seconds; the notebooks' execution dominates


@dataclass(frozen=True)
class BuiltSite:
    """Where the test build put the site, and what it cost."""

    source: Path
    html: Path
    seconds: float
    log: Path


_BUILD: dict[str, object] = {}


def _build(tmp_root: Path) -> BuiltSite:
    out = tmp_root / "site_build"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "site_build.log"
    source = Path(os.environ.get("MME_SITE_SOURCE", ROOT)).resolve()
    command = [sys.executable, str(ROOT / "site" / "build.py"), "--source", str(source)]
    command += ["--out", str(out)]
    if os.environ.get("MME_SITE_NO_CACHE"):
        command.append("--no-cache")
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    log.write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + "\n" + done.stderr).splitlines()[-60:])
        raise RuntimeError(
            f"the site build failed (exit {done.returncode}); full log in {log}\n{tail}"
        )
    return BuiltSite(source=source, html=out / "html", seconds=seconds, log=log)


def get_built_site(tmp_path_factory) -> BuiltSite:
    """Return the site, built once per session (a failed build fails every test that needs it)."""
    if "result" not in _BUILD:
        try:
            _BUILD["result"] = _build(tmp_path_factory.mktemp("site"))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            _BUILD["result"] = exc
    result = _BUILD["result"]
    if isinstance(result, Exception):
        pytest.fail(str(result), pytrace=False)
    assert isinstance(result, BuiltSite)
    return result


def site_pages(html: Path) -> list[Path]:
    """Every HTML page of a built site, the landing page first."""
    pages = sorted(html.rglob("*.html"))
    pages = [p for p in pages if "_static" not in p.relative_to(html).parts]
    return sorted(pages, key=lambda p: (p != html / "index.html", str(p)))


class PageParser(HTMLParser):
    """Collect the tags, ids, visible-ish text and inline styles of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.ids: set[str] = set()
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attributes = {k: (v or "") for k, v in attrs}
        self.tags.append((tag, attributes))
        for key in ("id", "name"):
            if attributes.get(key):
                self.ids.add(attributes[key])
        if attributes.get("style"):
            self.styles.append(attributes["style"])
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse_page(path: Path) -> PageParser:
    """Parse one HTML file."""
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser
