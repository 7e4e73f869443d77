"""Every figure on the site and in the report can be read where it is shown.

The rule, for each figure: its smallest text, as displayed in the site's content column (a 1400 px
window), is at least 10 CSS pixels, and the figure is not shrunk by more than 1.5 times. On a 390 px
phone screen a figure may scroll sideways, but it is not shrunk by more than 1.5 times either.

How it is measured: headless Chromium (Debian's, through Playwright) opens each built page and reports
every figure's image width (``naturalWidth``) and displayed width. The figure's smallest font size (in
points) and its dpi are read from the image itself: :func:`helpers.plots.figure_to_png` writes them into
the PNG. The text as displayed is ``points * dpi / 72 / shrink`` CSS pixels. Every figure of the
kernel-free slider (each frame) is checked, and the radon example report produced as the README shows.

A table of every figure's numbers goes to tests/artifacts/figure_legibility.txt.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from site_fixtures import ARTIFACTS, CHROMIUM, chromium, get_built_site, site_pages

from helpers.plots import MIN_TEXT_PX, PNG_DPI_KEY, PNG_FONT_KEY, png_text

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless Chromium (/usr/bin/chromium) is not installed; 'make test' installs it",
    ),
]

WIDE, PHONE = 1400, 390
MAX_SHRINK = 1.5
RADON_FORMULA = "log_radon ~ floor + (1 | county)"

# Every figure a page shows: its image source, its own width and its displayed width; for the
# kernel-free slider, every frame it can show.
_FIGURES = """() => {
    const found = [];
    const images = document.querySelectorAll(
        '.cell_output img, img.mme-static-frame, .jp-OutputArea-output img');
    for (const img of images) {
        if (img.classList.contains('math') || !(img.currentSrc || img.src)) { continue; }
        const box = img.getBoundingClientRect();
        const frames = img.classList.contains('mme-static-frame')
            ? JSON.parse(img.closest('.mme-static-explorer')
                .querySelector('script.mme-static-frames').textContent)
            : [img.currentSrc || img.src];
        frames.forEach((src, k) => found.push({
            src: src, frame: frames.length > 1 ? k : null, natural: img.naturalWidth,
            shown: box.width, alt: (img.alt || '').slice(0, 60)}));
    }
    return found;
}"""


@dataclass(frozen=True)
class Shown:
    """One figure as a page shows it."""

    where: str
    natural: int
    shown: float
    font_pt: float | None
    dpi: float | None

    @property
    def shrink(self) -> float:
        return self.natural / self.shown if self.shown else float("inf")

    @property
    def text_px(self) -> float | None:
        if self.font_pt is None or self.dpi is None:
            return None
        return self.font_pt * self.dpi / 72.0 / self.shrink

    def row(self) -> str:
        text = "no metadata" if self.text_px is None else f"{self.text_px:5.1f} px"
        font = "-" if self.font_pt is None else f"{self.font_pt:g} pt at {self.dpi:g} dpi"
        return (
            f"{self.where:<58} {self.natural:5d} px shown {self.shown:6.1f} "
            f"(shrink {self.shrink:4.2f}); smallest text {text} ({font})"
        )


def _png_bytes(src: str, page: Path) -> bytes:
    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    parts = urlsplit(src)
    assert parts.scheme == "file", f"{page.name}: figure not from the site's files: {src[:80]}"
    return Path(unquote(parts.path)).read_bytes()


def _measure(context, page: Path, label: str) -> list[Shown]:
    tab = context.new_page()
    try:
        tab.goto(page.resolve().as_uri(), wait_until="load")
        tab.wait_for_function(
            "() => Array.from(document.images).every(img => img.complete)", timeout=30_000
        )
        tab.wait_for_timeout(200)  # the site's script sets each figure's minimum width on load
        found = tab.evaluate(_FIGURES)
    finally:
        tab.close()
    shown = []
    for number, figure in enumerate(found, start=1):
        png = _png_bytes(figure["src"], page)
        text = png_text(png) if png[:8] == b"\x89PNG\r\n\x1a\n" else {}
        name = f"{label} img {number}" if figure["frame"] is None else f"{label} slider"
        if figure["frame"] is not None:
            name += f" frame {figure['frame']}"
        shown.append(
            Shown(
                where=f"{name} [{figure['alt'][:20]}]" if figure["alt"] else name,
                natural=int(figure["natural"]),
                shown=float(figure["shown"]),
                font_pt=float(text[PNG_FONT_KEY]) if PNG_FONT_KEY in text else None,
                dpi=float(text[PNG_DPI_KEY]) if PNG_DPI_KEY in text else None,
            )
        )
    return shown


def _problems(figures: list[Shown], width: int) -> list[str]:
    problems = []
    for fig in figures:
        if fig.shrink > MAX_SHRINK + 1e-9:
            problems.append(f"at {width} px: {fig.row()}: shrunk more than {MAX_SHRINK}x")
        if width == WIDE:
            if fig.text_px is None:
                problems.append(
                    f"at {width} px: {fig.row()}: the PNG does not record its font size "
                    "(made outside helpers.plots.figure_to_png?)"
                )
            elif fig.text_px < MIN_TEXT_PX:
                problems.append(f"at {width} px: {fig.row()}: text below {MIN_TEXT_PX:g} px")
    return problems


def _write_table(name: str, measured: dict[int, list[Shown]]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lines = []
    for width, figures in measured.items():
        lines.append(f"--- window {width} px")
        lines += [fig.row() for fig in figures]
    (ARTIFACTS / name).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The site, built once per session by site_fixtures (shared with the other site tests)."""
    return get_built_site(tmp_path_factory)


@pytest.fixture(scope="module")
def radon_report(tmp_path_factory, radon) -> Path:
    """The radon example report, made by the report command as the README shows."""
    folder = tmp_path_factory.mktemp("legibility_report")
    radon.to_csv(folder / "radon.csv", index=False)
    out = folder / "radon.html"
    run = subprocess.run(
        [sys.executable, "-m", "helpers", "report", str(folder / "radon.csv")]
        + ["--formula", RADON_FORMULA, "--html", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return out


def _check(
    pages: list[tuple[Path, str]], tmp_path_factory, table: str, widths=(WIDE, PHONE)
) -> None:
    measured: dict[int, list[Shown]] = {}
    for width in widths:
        profile = tmp_path_factory.mktemp(f"chromium-{width}")
        with chromium(profile, width=width, height=900) as context:
            measured[width] = [
                fig for page, label in pages for fig in _measure(context, page, label)
            ]
    _write_table(table, measured)
    assert measured[WIDE], "no figure found: the selectors no longer match the pages"
    problems = [p for width in widths for p in _problems(measured[width], width)]
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_every_site_figure_is_legible(built_site, tmp_path_factory):
    pages = [
        (path, path.relative_to(built_site.html).with_suffix("").as_posix())
        for path in site_pages(built_site.html)
    ]
    _check(pages, tmp_path_factory, "figure_legibility_site.txt")


def test_every_report_figure_is_legible(radon_report, tmp_path_factory):
    """At the report's width (a 1400 px window); on a phone, see the test below."""
    _check(
        [(radon_report, "radon report")],
        tmp_path_factory,
        "figure_legibility_report.txt",
        widths=(WIDE,),
    )


def test_report_figures_do_not_shrink_on_a_phone(radon_report, tmp_path_factory):
    """On a 390 px screen the report's figures scroll sideways rather than shrink by more than 1.5
    times: helpers/report/run.py gives each a min-width, as site/static/mme.js does on the site."""
    profile = tmp_path_factory.mktemp("chromium-report-phone")
    with chromium(profile, width=PHONE, height=900) as context:
        figures = _measure(context, radon_report, "radon report")
    assert figures
    problems = _problems(figures, PHONE)
    assert not problems, "\n".join(problems)


def test_the_measure_reads_font_size_and_dpi_from_the_image(tmp_path):
    """The numbers the tests above use come from the PNG that helpers.plots wrote."""
    from helpers.plots import figure_to_png, new_figure

    fig, ax = new_figure(figsize=(4, 2))
    ax.set_title("title", fontsize=12)
    ax.set_xlabel("label", fontsize=7)
    text = png_text(figure_to_png(fig, dpi=80))
    assert (text[PNG_FONT_KEY], text[PNG_DPI_KEY]) == ("7", "80")
    shown = Shown("a", natural=600, shown=400.0, font_pt=7.0, dpi=80.0)
    assert shown.shrink == 1.5 and shown.text_px == pytest.approx(7 * 80 / 72 / 1.5)
    assert json.dumps(_problems([shown], WIDE)).count("text below") == 1
