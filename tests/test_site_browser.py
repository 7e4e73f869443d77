"""The built site, opened from disk in headless Chromium, renders math and fetches nothing remote.

Uses Debian's /usr/bin/chromium through Playwright (never a downloaded browser). Screenshots of the
kernel-free explorer before and after moving its slider go to tests/artifacts/.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from site_fixtures import ARTIFACTS, get_built_site, site_pages

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless Chromium (/usr/bin/chromium) is not installed; 'make test' installs it",
    ),
]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The site, built once per session by site_fixtures (shared with the other site tests)."""
    return get_built_site(tmp_path_factory)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


class Visit:
    """One page opened from disk, with every request and console error it caused."""

    def __init__(self, context, path: Path):
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        # MathJax typesets asynchronously; wait for it where the page loads it.
        self.page.wait_for_function(
            "() => !window.MathJax || (MathJax.startup && MathJax.startup.promise"
            " && MathJax.startup.document && true)",
            timeout=30_000,
        )
        self.page.evaluate(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
            " ? MathJax.startup.promise.then(() => true) : true"
        )
        self.page.wait_for_timeout(300)  # let late requests and errors show up

    def remote_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]

    def visible_prose(self) -> str:
        """The page's visible text outside code blocks and outputs printed as text."""
        return self.page.evaluate(
            """() => {
                const main = document.querySelector('main') || document.body;
                const copy = main.cloneNode(true);
                copy.querySelectorAll('pre, code, script, style, mjx-container, .MathJax')
                    .forEach(el => el.remove());
                return copy.innerText;
            }"""
        )

    def close(self) -> None:
        self.page.close()


def test_every_page_renders_offline(built_site, browser):
    """No page requests anything but local files, logs a console error, or leaves raw TeX."""
    problems: list[str] = []
    pages_with_math = 0
    for path in site_pages(built_site.html):
        name = path.relative_to(built_site.html).as_posix()
        visit = Visit(browser, path)
        try:
            problems += [f"{name}: requested {url}" for url in visit.remote_requests()]
            problems += [f"{name}: console error: {text}" for text in visit.errors]
            expects_math = 'class="math' in path.read_text(encoding="utf-8")
            rendered = visit.page.locator("mjx-container").count()
            if expects_math:
                pages_with_math += 1
                if rendered == 0:
                    problems.append(f"{name}: has math but MathJax rendered none")
                prose = visit.visible_prose()
                for raw in ("$$", "\\(", "\\["):
                    if raw in prose:
                        problems.append(f"{name}: raw {raw!r} left in the visible text")
        finally:
            visit.close()
    assert pages_with_math > 0, "no page has math, so the MathJax check checked nothing"
    assert not problems, "\n".join(problems[:40])


def test_search_works_from_disk(built_site, browser):
    notebook = sorted((built_site.source / "notebooks").glob("[0-9][0-9]_*.ipynb"))[0]
    page = built_site.html / "notebooks" / f"{notebook.stem}.html"
    title = re.search(r"<title>(.*?)(?: &#8212;|</title>)", page.read_text("utf-8")).group(1)
    word = max(re.findall(r"[A-Za-z]{4,}", title), key=len)
    visit = Visit(browser, built_site.html / "search.html")
    try:
        visit.page.goto(f"{(built_site.html / 'search.html').as_uri()}?q={word}")
        results = visit.page.locator("#search-results li a")
        results.first.wait_for(timeout=30_000)
        hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
        assert any(notebook.stem in (href or "") for href in hrefs), hrefs
        assert not visit.remote_requests() and not visit.errors
    finally:
        visit.close()


def _visible_frames(page) -> list[tuple[int, str]]:
    """Index and content hash of each kernel-free frame currently shown."""
    frames = page.evaluate(
        """() => Array.from(document.querySelectorAll('img.mme-static-frame')).map((img, i) => {
               const box = img.getBoundingClientRect();
               const style = getComputedStyle(img);
               const shown = box.width > 0 && box.height > 0 && style.display !== 'none'
                   && style.visibility !== 'hidden' && Number(style.opacity) > 0;
               return [i, shown, img.currentSrc || img.src];
           })"""
    )
    return [(i, hashlib.sha1(src.encode()).hexdigest()) for i, shown, src in frames if shown]


def test_kernel_free_slider_changes_the_frame(built_site, browser):
    pages = [
        p
        for p in site_pages(built_site.html)
        if "mme-static-slider" in p.read_text(encoding="utf-8")
    ]
    assert pages, (
        "no page has a kernel-free slider (input.mme-static-slider); notebook 04 should show "
        "helpers.widgets.static_explorer"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for path in pages:
        visit = Visit(browser, path)
        try:
            page = visit.page
            sliders = page.locator("input.mme-static-slider")
            assert sliders.count() >= 1
            assert page.locator("img.mme-static-frame").count() >= 1, "no frame to show"
            slider = sliders.first
            slider.scroll_into_view_if_needed()
            explorer = slider.locator(
                "xpath=ancestor::*[.//img[contains(@class, 'mme-static-frame')]][1]"
            )
            stem = path.stem
            explorer.screenshot(path=str(ARTIFACTS / f"site_{stem}_slider_before.png"))
            # every slider of the page (notebook 04: sigma_b and the correlation switch) moves the frame
            for k in range(sliders.count()):
                slider = sliders.nth(k)
                before, value = _visible_frames(page), slider.input_value()
                assert len(before) >= 1, "no frame is shown before the slider moves"
                slider.focus()
                slider.press("End")
                if slider.input_value() == value:  # it started at the maximum
                    slider.press("Home")
                assert slider.input_value() != value, f"slider {k} did not move"
                page.wait_for_timeout(300)
                after = _visible_frames(page)
                if k == 0:
                    explorer.screenshot(path=str(ARTIFACTS / f"site_{stem}_slider_after.png"))
                assert after and after != before, (
                    f"moving slider {k} did not change the frame shown"
                )
            assert not visit.remote_requests() and not visit.errors
        finally:
            visit.close()


def _at_width(browser, path: Path, width: int) -> Visit:
    visit = Visit(browser, path)
    visit.page.set_viewport_size({"width": width, "height": 900})
    visit.page.wait_for_timeout(200)
    return visit


def test_one_search_box_and_no_code_scrolls_sideways(built_site, browser):
    """At a 1400 px window: one search box (the sidebar's), and code wraps instead of scrolling."""
    problems: list[str] = []
    for path in site_pages(built_site.html):
        name = path.relative_to(built_site.html).as_posix()
        visit = _at_width(browser, path, 1400)
        try:
            boxes = visit.page.evaluate(
                """() => Array.from(document.querySelectorAll('.search-button-field'))
                    .filter(e => e.getBoundingClientRect().width > 0).length"""
            )
            if name != "search.html" and boxes != 1:
                problems.append(f"{name}: {boxes} search boxes shown")
            scrolling = visit.page.evaluate(
                """() => Array.from(document.querySelectorAll('article div.highlight pre'))
                    .filter(pre => !pre.closest('.cell_output'))
                    .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
                    .map(pre => pre.textContent.split('\\n').sort((a, b) => b.length - a.length)[0])"""
            )
            problems += [
                f"{name}: a code block scrolls sideways: {line[:80]!r}" for line in scrolling
            ]
        finally:
            visit.close()
    assert not problems, "\n".join(problems)


def test_download_menu_says_what_the_notebook_is(built_site, browser):
    """The .ipynb has no outputs and needs helpers: the menu says so, and offers the executed one."""
    path = built_site.html / "notebooks" / "04_fixed_effect_path.html"
    visit = _at_width(browser, path, 1400)
    try:
        page = visit.page
        page.click(".dropdown-download-buttons button.dropdown-toggle")
        page.wait_for_timeout(300)
        items = page.locator(".dropdown-download-buttons .dropdown-item")
        texts = [items.nth(k).inner_text() for k in range(items.count())]
        assert any("without outputs" in t and "helpers" in t for t in texts), texts
        executed = page.locator(".btn-download-executed-notebook-button")
        assert executed.is_visible() and "with outputs" in executed.inner_text()
        page.screenshot(path=str(ARTIFACTS / "site_download_menu.png"))
        href = executed.get_attribute("href")
        notebook = (path.parent / href).resolve()
        import json

        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        assert any(c.get("outputs") for c in cells if c["cell_type"] == "code")
    finally:
        visit.close()


def test_figures_scroll_rather_than_shrink_on_a_phone(built_site, browser):
    path = built_site.html / "notebooks" / "04_fixed_effect_path.html"
    visit = _at_width(browser, path, 390)
    try:
        figures = visit.page.evaluate(
            """() => Array.from(document.querySelectorAll('.cell_output img')).map(img => {
                let box = img.parentElement;
                while (box && getComputedStyle(box).overflowX !== 'auto') { box = box.parentElement; }
                return [img.naturalWidth, img.getBoundingClientRect().width, box !== null];
            })"""
        )
        assert figures
        for natural, shown, scrolls in figures:
            assert natural / shown <= 1.5 + 1e-6 and scrolls
        visit.page.locator(".cell_output img").first.scroll_into_view_if_needed()
        visit.page.screenshot(path=str(ARTIFACTS / "site_phone_figure.png"))
    finally:
        visit.close()
