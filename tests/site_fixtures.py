"""One build of the static site per test session, shared by test_site_build and test_site_browser.

Each of the two modules wraps :func:`get_built_site` in a session fixture of its own; the build is
memoised here, at module level, so the site is built once per session whichever module runs first.

The build runs ``site/build.py`` in a subprocess, exactly as ``make html`` does, with warnings as
errors, into a temporary folder. Executed notebooks are reused from ``_build/.jupyter_cache`` only
when nothing they depend on has changed (see site/build.py); set ``MME_SITE_NO_CACHE=1`` to execute
every notebook afresh, and ``MME_SITE_SOURCE=DIR`` to build another checkout of the book.
"""

from __future__ import annotations

import contextlib
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


# --- JupyterLab from the project's environment, and headless Chromium driving it --------------------------
#
# Used by tests/test_lab_browser.py (the live explorer in a real JupyterLab) and by
# benchmarks/widget_redraw.py (the in-browser redraw time). The server listens on 127.0.0.1 only, with a
# token, and keeps its configuration, runtime files and kernels' IPython profile in a scratch folder; the
# browser is Debian's Chromium (never a downloaded one) and every request it makes outside the server is
# refused and reported.

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAB_START_TIMEOUT = 120  # seconds until the server answers; generous for a loaded machine

# JupyterLab plugins that would reach the internet: the news feed and the PyPI extension manager.
_LAB_PAGE_CONFIG = {
    "disabledExtensions": {
        "@jupyterlab/apputils-extension:announcements": True,
        "@jupyterlab/extensionmanager-extension": True,
    }
}


def live_widget_notebooks(folder: Path) -> list[Path]:
    """The notebooks in ``folder`` whose code shows a live widget (a kernel-backed ipywidget)."""
    import json
    import re

    found = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if re.search(r"(?<![\w.])explorer\(|\bipywidgets\b|\binteract(ive)?\(", code):
            found.append(path)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A running JupyterLab: where it listens, its token, its root folder and its log."""

    url: str
    token: str
    root: Path
    log: Path
    process: object

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}lab/tree/{notebook}?token={self.token}"

    def is_local(self, url: str) -> bool:
        """Whether a request stays on this server (or inside the page: data:, blob:, about:)."""
        host = self.url.split("://", 1)[1]
        return url.startswith(
            (self.url, f"ws://{host}", "data:", "blob:", "about:", "chrome-error:")
        )


def _lab_environment(scratch: Path) -> dict[str, str]:
    import json

    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel draws inline, as for a reader
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        folder = scratch / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    labconfig = scratch / "jupyter_config_dir" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps(_LAB_PAGE_CONFIG))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _lab_answers(url: str, token: str) -> bool:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{url}api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop_lab(process, url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure it and its kernels are gone."""
    import signal
    import urllib.request

    if process.poll() is None:
        request = urllib.request.Request(
            f"{url}api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except OSError:
            pass
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
    # kernels run in the server's own process group (started with a new session): end any left over
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start_lab(root: Path, scratch: Path, log: Path):
    """Start JupyterLab on a free 127.0.0.1 port with a token; return (process, url, token).

    The caller must stop it with :func:`_stop_lab` (use :func:`jupyterlab`, which does).
    """
    import secrets

    token = secrets.token_hex(24)
    env = _lab_environment(scratch)
    for _attempt in range(3):  # another program may take the free port before the server does
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",
            "--ServerApp.allow_root=True",  # containers often run as root
        ]
        with log.open("ab") as sink:
            process = subprocess.Popen(
                command,
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _lab_answers(url, token):
                return process, url, token
            time.sleep(0.25)
        _stop_lab(process, url, token)
        if "already in use" not in log.read_text(errors="replace"):
            break
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"JupyterLab did not start; its log ({log}) ends with:\n{tail}")


@contextlib.contextmanager
def jupyterlab(root: Path, scratch: Path):
    """JupyterLab serving ``root``, stopped on exit (also when the body fails)."""
    scratch.mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "jupyterlab.log"
    log.write_bytes(b"")
    process, url, token = start_lab(root, scratch, log)
    try:
        yield LabServer(url=url, token=token, root=root, log=log, process=process)
    finally:
        _stop_lab(process, url, token)


@contextlib.contextmanager
def chromium(profile: Path, width: int = 1400, height: int = 1000):
    """A headless Chromium (Debian's) with a fresh profile, through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


# In-page instruments: when the reader last released the mouse or pressed a key, and every change of a
# widget image's source (ipywidgets' Image view sets a new blob: URL for each new value).
_LAB_INSTRUMENTS = """() => {
    if (window.__mme) { return; }
    const mme = {release: null, changes: []};
    window.__mme = mme;
    const now = () => performance.now();
    window.addEventListener('pointerup', () => { mme.release = now(); }, true);
    window.addEventListener('keydown', () => { mme.release = now(); }, true);
    new MutationObserver(records => {
        for (const r of records) {
            if (r.target.matches && r.target.matches('img.widget-image')) {
                mme.changes.push({t: now(), release: mme.release});
            }
        }
    }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['src']});
}"""

# The active notebook panel's state, through the app JupyterLab exposes (--LabApp.expose_app_in_browser).
_LAB_NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.sessionContext) { return null; }
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    const errors = [];
    for (const cell of cells) {
        for (let k = 0; k < cell.model.outputs.length; k++) {
            const out = cell.model.outputs.get(k).toJSON();
            if (out.output_type === 'error') { errors.push(out.ename + ': ' + out.evalue); }
        }
    }
    return {
        kernel: kernel ? kernel.status : null,
        ready: panel.sessionContext.isReady,
        cells: cells.length,
        executed: cells.filter(c => c.model.executionCount !== null).length,
        pending: cells.filter(c => c.promptNode && c.promptNode.textContent.includes('*')).length,
        errors: errors,
        active: panel.content.activeCellIndex,
    };
}"""


class LabNotebook:
    """One notebook opened in JupyterLab in its own page, with every outside request and console error.

    Requests that would leave the server are refused and listed in ``remote``; console errors and
    uncaught page errors are listed in ``errors``.
    """

    def __init__(self, context, server: LabServer, notebook: str):
        self.server = server
        self.remote: list[str] = []
        self.errors: list[str] = []
        self.page = context.new_page()
        self.page.route(lambda url: not server.is_local(url), self._refuse)
        self.page.on("request", self._request)
        self.page.on("websocket", lambda ws: self._request_url(ws.url))
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.goto(server.lab_url(notebook), wait_until="domcontentloaded")
        self.page.wait_for_function(
            f"() => {{ const s = ({_LAB_NOTEBOOK_STATE})(); return s && s.ready && s.kernel === 'idle'; }}",
            timeout=180_000,
            polling=250,
        )
        self.page.evaluate(_LAB_INSTRUMENTS)

    def _refuse(self, route):
        self.remote.append(route.request.url)
        route.abort()

    def _request(self, request):
        self._request_url(request.url)

    def _request_url(self, url):
        if not self.server.is_local(url) and url not in self.remote:
            self.remote.append(url)

    def state(self) -> dict:
        return self.page.evaluate(_LAB_NOTEBOOK_STATE)

    def run_all(self, timeout_s: float = 600) -> dict:
        """Run All, and wait until every code cell ran or one failed; return the notebook's state."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self.page.wait_for_function(
            f"""() => {{
                const s = ({_LAB_NOTEBOOK_STATE})();
                return s && (s.errors.length > 0
                    || (s.executed === s.cells && s.pending === 0 && s.kernel === 'idle'));
            }}""",
            timeout=timeout_s * 1000,
            polling=500,
        )
        return self.state()

    def close(self) -> None:
        self.page.close()


_FIGURE_DIGEST = """async (img) => {
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return Array.from(digest, b => b.toString(16).padStart(2, '0')).join('');
}"""

# The live figure that a slider drives: the widget image in the slider's nearest enclosing widget box.
_FIGURE_OF_SLIDER = """(slider) => {
    let box = slider.parentElement;
    while (box && !box.querySelector('img.widget-image')) { box = box.parentElement; }
    return box ? box.querySelector('img.widget-image') : null;
}"""


@dataclass(frozen=True)
class SliderMove:
    """One move of a live slider and what it did to the figure."""

    how: str  # "drag" or "key"
    value_before: str
    value_after: str
    figure_before: str  # SHA-256 of the image's bytes
    figure_after: str
    latency_ms: float  # from the mouse release or key press to the image's new source
    active_cell_before: int
    active_cell_after: int


class LiveSlider:
    """A kernel-backed ipywidgets slider in a JupyterLab page, and the figure it redraws."""

    def __init__(self, lab: LabNotebook, slider):
        self.lab, self.page, self.slider = lab, lab.page, slider
        self.handle = slider.locator(".noUi-handle")
        self.readout = slider.locator(".widget-readout")

    def figure_digest(self) -> str:
        image = self.slider.evaluate_handle(_FIGURE_OF_SLIDER)
        if image.as_element() is None:
            raise AssertionError("no widget image beside this slider: is the figure's view broken?")
        return self.page.evaluate(_FIGURE_DIGEST, image)

    def _move(self, how: str, act, timeout_ms: float) -> SliderMove:
        value, figure = self.readout.inner_text(), self.figure_digest()
        active = self.lab.state()["active"]
        seen = self.page.evaluate("() => window.__mme.changes.length")
        act()
        self.page.wait_for_function(
            "(n) => window.__mme.changes.length > n", arg=seen, timeout=timeout_ms, polling="raf"
        )
        change = self.page.evaluate("(n) => window.__mme.changes[n]", seen)
        return SliderMove(
            how=how,
            value_before=value,
            value_after=self.readout.inner_text(),
            figure_before=figure,
            figure_after=self.figure_digest(),
            latency_ms=change["t"] - change["release"],
            active_cell_before=active,
            active_cell_after=self.lab.state()["active"],
        )

    def drag(self, fraction: float = 0.3, timeout_ms: float = 60_000) -> SliderMove:
        """Drag the handle by ``fraction`` of the track, towards the side with more room."""

        self.handle.scroll_into_view_if_needed()

        def act():
            handle = self.handle.bounding_box()
            track = self.slider.locator(".noUi-target").bounding_box()
            x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
            middle = track["x"] + track["width"] / 2
            target = x + (1 if x < middle else -1) * fraction * track["width"]
            self.page.mouse.move(x, y)
            self.page.mouse.down()
            self.page.mouse.move(target, y, steps=6)
            self.page.mouse.up()

        return self._move("drag", act, timeout_ms)

    def press(self, timeout_ms: float = 60_000) -> SliderMove:
        """Focus the handle and press ArrowRight (ArrowLeft at the maximum)."""

        self.handle.scroll_into_view_if_needed()
        self.handle.focus()  # focusing makes the slider's cell the active one; the key must not
        at_max = self.handle.get_attribute("aria-valuenow") == self.handle.get_attribute(
            "aria-valuemax"
        )

        def act():
            self.page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")

        return self._move("key", act, timeout_ms)


def live_sliders(lab: LabNotebook) -> list[LiveSlider]:
    """Every ipywidgets slider shown in the notebook's outputs."""
    sliders = lab.page.locator(".jp-OutputArea-output .widget-slider")
    return [LiveSlider(lab, sliders.nth(k)) for k in range(sliders.count())]


def widget_error_boxes(lab: LabNotebook) -> list[str]:
    """The text of every widget view that failed (ipywidgets shows an error box in its place)."""
    return lab.page.evaluate(
        """() => {
            const boxes = Array.from(document.querySelectorAll(
                '.jupyter-widgets-error-widget, .widget-error'));
            const texts = boxes.map(b => 'error widget: ' + (b.innerText || '').slice(0, 300));
            const body = document.body.innerText;
            if (body.includes('Failed to create view')) { texts.push('text: Failed to create view'); }
            return texts;
        }"""
    )


def wait_for_live_widgets(lab: LabNotebook, timeout_ms: float = 120_000) -> None:
    """Wait until the notebook shows a live slider and every widget image has a figure, or an error box."""
    lab.page.wait_for_function(
        """() => {
            const out = '.jp-OutputArea-output ';
            if (document.querySelector('.jupyter-widgets-error-widget, .widget-error')) { return true; }
            const images = Array.from(document.querySelectorAll(out + 'img.widget-image'));
            return document.querySelector(out + '.widget-slider') !== null && images.length > 0
                && images.every(img => img.src.startsWith('blob:') && img.complete);
        }""",
        timeout=timeout_ms,
        polling=250,
    )
