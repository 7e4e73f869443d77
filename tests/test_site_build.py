"""The static site builds with warnings as errors, links only to itself, and fetches nothing remote.

The build (site/build.py, as ``make html`` runs it) happens once per session: see site_fixtures.py.
"""

from __future__ import annotations

import datetime as dt
import doctest
import importlib.util
import json
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from site_fixtures import ROOT, get_built_site, parse_page, site_pages


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The site, built once per session by site_fixtures (shared with the other site tests)."""
    return get_built_site(tmp_path_factory)


#: The reading order agreed for the notebooks (and the page 09, the last in the path).
NOTEBOOK_ORDER = [
    "00_question",
    "01_pooled_ols",
    "02_no_pooling_fixed_effects",
    "03_random_intercept",
    "04_fixed_effect_path",
    "05_ml_reml",
    "06_how_sure",
    "07_your_own_data",
    "08_random_slopes",
    "09_beyond_one_machine",
]
# Attributes through which a page makes the browser fetch something.
ASSET_ATTRIBUTES = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
}
REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(
    r"""url\(\s*(["']?)(?P<url>[^"')]+)\1\s*\)|@import\s+(["'])(?P<imp>[^"']+)\3"""
)
NOT_A_FILE = ("data:", "mailto:", "javascript:", "about:", "blob:", "tel:")


def _load_site_module(name: str):
    spec = importlib.util.spec_from_file_location(f"site_{name}", ROOT / "site" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site_build = _load_site_module("build")


def _urls(value: str, attribute: str) -> list[str]:
    if attribute == "srcset":
        return [part.strip().split()[0] for part in value.split(",") if part.strip()]
    return [value]


def _css_urls(text: str) -> list[str]:
    return [m.group("url") or m.group("imp") for m in CSS_URL.finditer(text)]


# ---------------------------------------------------------------------------------------------
# The configuration and the build script (no build needed)


def test_toc_lists_the_notebooks_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = site_build.toc_files(toc)
    assert files[0] == "index"
    assert files[1:] == [f"notebooks/{name}" for name in NOTEBOOK_ORDER]


def test_config_keeps_the_book_to_its_pages():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["only_build_toc_files"] is True
    for pattern in ("_build", "tests", "benchmarks", "helpers"):
        assert pattern in config["exclude_patterns"], pattern
    assert ".*" in config["exclude_patterns"], "hidden folders such as .venv must be excluded"
    execute = config["execute"]
    assert execute["allow_errors"] is False and execute["raise_on_error"] is True


@pytest.mark.parametrize("name", ["build", "mme_site"])
def test_site_module_examples_run(name):
    module = site_build if name == "build" else _load_site_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"site/{name}.py has no examples"
    assert result.failed == 0


def test_remote_assets_are_found_and_links_are_not():
    mme_site = _load_site_module("mme_site")
    page = (
        '<link rel="stylesheet" href="//cdn.example.org/a.css">'
        '<img src="data:image/png;base64,AAAA"><a href="https://doi.org/10.18637/jss.v067.i01">'
        '<script src="../_static/mathjax/tex-chtml.js"></script>'
    )
    assert mme_site.remote_assets(page) == ["//cdn.example.org/a.css"]


def test_a_missing_notebook_fails_the_build_clearly(tmp_path, capsys):
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: index\nchapters:\n  - file: notebooks/00_question\n"
    )
    (tmp_path / "index.md").write_text("# Title\n")
    code = site_build.main(["--source", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2
    message = capsys.readouterr().err
    assert "notebooks/00_question" in message and "_toc.yml" in message
    assert not (tmp_path / "out" / "html").exists()


def test_cache_key_follows_the_code_the_notebooks_run(tmp_path):
    (tmp_path / "helpers").mkdir()
    (tmp_path / "notebooks").mkdir()
    module = tmp_path / "helpers" / "fit.py"
    module.write_text("ANSWER = 1\n")
    notebook = tmp_path / "notebooks" / "00_question.ipynb"
    notebook.write_text("{}")
    first = site_build.cache_key(tmp_path)
    notebook.write_text('{"cells": []}')  # jupyter-cache hashes the notebooks' code itself
    assert site_build.cache_key(tmp_path) == first
    module.write_text("ANSWER = 2\n")
    assert site_build.cache_key(tmp_path) != first
    (tmp_path / "notebooks" / "table.csv").write_text("a\n1\n")
    assert site_build.cache_key(tmp_path) != first


def test_landing_page_numbers_match_the_fits():
    """The numbers the landing page quotes are those the package computes."""
    seed = pytest.importorskip("helpers.seed", reason="helpers.seed (the question's data) not yet")
    from helpers import fit_lmm, fit_ols

    data = seed.seed_question()
    ols = fit_ols(data, "pSHP2 ~ condition")
    lmm = fit_lmm(data, "pSHP2 ~ condition + (1 | cluster)")
    slope = [name for name in ols.params.index if name != "Intercept"][0]

    def signed(value: float, digits: int) -> str:
        return f"{value:.{digits}f}".replace("-", "\N{MINUS SIGN}")

    quoted = {
        "rows": f"{len(data):,} measurements",
        "clusters": f"{lmm.n_groups} clusters",
        "lm intercept": f"baseline at {ols.params['Intercept']:.3f}",
        "lm SE": f"standard error of {ols.bse['Intercept']:.4f}",
        "lm slope": f"stimulation at\n{signed(ols.params[slope], 3)}",
        "lmer intercept": f"baseline at {lmm.fe_params['Intercept']:.3f}",
        "lmer SE": f"standard error of {lmm.bse['Intercept']:.3f}",
        "lmer slope": f"effect at {signed(lmm.fe_params[slope], 3)}",
        "SE ratio": f"factor of about {lmm.bse['Intercept'] / ols.bse['Intercept']:.0f}",
    }
    text = (ROOT / "index.md").read_text()
    flat = " ".join(text.split())
    for what, phrase in quoted.items():
        assert " ".join(phrase.split()) in flat, (
            f"the landing page should quote the {what}: {phrase!r}"
        )


# ---------------------------------------------------------------------------------------------
# The built site


def test_every_notebook_has_a_page(built_site):
    notebooks = sorted((built_site.source / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "no notebooks to publish"
    for notebook in notebooks:
        page = built_site.html / "notebooks" / f"{notebook.stem}.html"
        assert page.is_file(), f"{notebook.name} has no page"
        cells = json.loads(notebook.read_text())["cells"]
        title = next(
            line[2:].strip()
            for cell in cells
            if cell["cell_type"] == "markdown"
            for line in "".join(cell["source"]).splitlines()
            if line.startswith("# ")
        )
        words = re.findall(r"\w+", title)
        html = page.read_text(encoding="utf-8")
        heading = re.search(r'<article class="bd-article">.*?<h1>(.*?)</h1>', html, re.S)
        assert heading, f"{page.name} has no title"
        assert re.findall(r"\w+", re.sub(r"<[^>]+>", "", heading.group(1))) == words


def test_landing_page_and_navigation_follow_the_toc(built_site):
    html = (built_site.html / "index.html").read_text(encoding="utf-8")
    assert re.search(r"What you will learn", html)
    assert re.search(r"The question", html)
    nav = re.search(r'<nav class="[^"]*\bbd-docs-nav\b[^"]*".*?</nav>', html, re.S)
    assert nav, "the landing page has no sidebar navigation"
    in_sidebar = re.findall(r'href="notebooks/(\d\d_\w+)\.html"', nav.group(0))
    assert in_sidebar == NOTEBOOK_ORDER
    article = re.search(r'<article class="bd-article">.*?</article>', html, re.S)
    assert article, "the landing page has no article"
    linked = re.findall(r'href="notebooks/(\d\d_\w+)\.html"', article.group(0))
    assert linked == NOTEBOOK_ORDER, (
        "the path through the notebooks should list all ten pages, in order"
    )


def test_previous_and_next_links_follow_the_reading_order(built_site):
    order = ["index"] + [f"notebooks/{name}" for name in NOTEBOOK_ORDER]
    for position, name in enumerate(order):
        page = built_site.html / f"{name}.html"
        html = page.read_text(encoding="utf-8")
        base = page.parent
        for kind, offset in (("left-prev", -1), ("right-next", 1)):
            link = re.search(rf'<a class="{kind}"\s+href="([^"]+)"', html)
            neighbour = position + offset
            if 0 <= neighbour < len(order):
                assert link, f"{name} lacks its {kind} link"
                target = (base / link.group(1)).resolve()
                assert target == (built_site.html / f"{order[neighbour]}.html").resolve()
            else:
                assert link is None, f"{name} should have no {kind} link"


def test_internal_links_resolve(built_site):
    html_root = built_site.html.resolve()
    broken: list[str] = []
    ids_cache: dict[Path, set[str]] = {}

    def ids_of(path: Path) -> set[str]:
        if path not in ids_cache:
            ids_cache[path] = parse_page(path).ids
        return ids_cache[path]

    checked = 0
    for page in site_pages(built_site.html):
        parsed = parse_page(page)
        ids_cache[page.resolve()] = parsed.ids
        for tag, attributes in parsed.tags:
            for attribute in ("href", "src", "srcset", "data", "poster"):
                value = attributes.get(attribute, "")
                if not value or (tag == "object" and attribute != "data"):
                    continue
                for url in _urls(value, attribute):
                    parts = urlsplit(url)
                    if parts.scheme or url.startswith(NOT_A_FILE) or REMOTE.match(url):
                        continue
                    target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
                    target = target.resolve()
                    checked += 1
                    where = f"{page.relative_to(html_root)}: <{tag} {attribute}={url!r}>"
                    if not target.is_relative_to(html_root):
                        broken.append(f"{where} leaves the site")
                    elif target.is_dir():
                        if not (target / "index.html").is_file():
                            broken.append(f"{where} is a folder")
                    elif not target.is_file():
                        broken.append(f"{where} does not exist")
                    elif parts.fragment and target.suffix == ".html":
                        if unquote(parts.fragment) not in ids_of(target):
                            broken.append(f"{where}: no anchor #{parts.fragment}")
    for sheet in built_site.html.rglob("*.css"):
        for url in _css_urls(sheet.read_text(encoding="utf-8", errors="replace")):
            if url.startswith(NOT_A_FILE) or REMOTE.match(url) or url.startswith("#"):
                continue
            checked += 1
            target = (sheet.parent / unquote(urlsplit(url).path)).resolve()
            if not target.is_file():
                broken.append(f"{sheet.relative_to(html_root)}: url({url}) does not exist")
    assert checked > 100, "the link check found suspiciously few links"
    assert not broken, "broken internal links:\n" + "\n".join(broken[:40])


def test_no_asset_comes_from_another_host(built_site):
    remote: list[str] = []
    for page in site_pages(built_site.html):
        parsed = parse_page(page)
        name = page.relative_to(built_site.html)
        for tag, attributes in parsed.tags:
            for attribute in ASSET_ATTRIBUTES.get(tag, ()):
                for url in _urls(attributes.get(attribute, ""), attribute):
                    if REMOTE.match(url):
                        remote.append(f"{name}: <{tag} {attribute}={url!r}>")
        for style in parsed.styles:
            remote += [f"{name}: style url({u})" for u in _css_urls(style) if REMOTE.match(u)]
    for sheet in built_site.html.rglob("*.css"):
        text = sheet.read_text(encoding="utf-8", errors="replace")
        remote += [f"{sheet.name}: url({u})" for u in _css_urls(text) if REMOTE.match(u)]
    assert not remote, "the site would fetch from other hosts:\n" + "\n".join(remote[:40])


def test_mathjax_is_served_by_the_site(built_site):
    pages_with_math = [
        page for page in site_pages(built_site.html) if 'class="math' in page.read_text("utf-8")
    ]
    assert pages_with_math, "no page has math to render"
    for page in pages_with_math:
        scripts = [a.get("src", "") for tag, a in parse_page(page).tags if tag == "script"]
        mathjax = [src for src in scripts if "mathjax" in src.lower()]
        assert mathjax, f"{page.name} has math but loads no MathJax"
        for src in mathjax:
            assert (page.parent / urlsplit(src).path).resolve().is_file()


def test_footer_shows_version_and_build_date(built_site):
    import helpers

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = dt.datetime.now(tz=dt.UTC)
    if epoch:
        dates = {dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).date().isoformat()}
    else:  # the build may have started before midnight
        started = now - dt.timedelta(seconds=built_site.seconds + 60)
        dates = {now.date().isoformat(), started.date().isoformat()}
    for page in site_pages(built_site.html):
        html = page.read_text(encoding="utf-8")
        version = re.search(r'<span class="mme-version">([^<]+)</span>', html)
        date = re.search(r'<time class="mme-build-date" datetime="([^"]+)">', html)
        assert version and date, f"{page.name} has no version and build date in its footer"
        assert version.group(1) == helpers.__version__
        assert date.group(1) in dates


def test_no_live_widget_reaches_the_pages(built_site):
    for page in site_pages(built_site.html):
        html = page.read_text(encoding="utf-8")
        assert "application/vnd.jupyter.widget-view+json" not in html, page.name
        assert "application/vnd.jupyter.widget-state+json" not in html, page.name
        assert "embed-amd" not in html and "require.min.js" not in html, page.name


def test_search_index_covers_every_notebook(built_site):
    index = (built_site.html / "searchindex.js").read_text(encoding="utf-8")
    assert (built_site.html / "search.html").is_file()
    for notebook in (built_site.source / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        assert f'"notebooks/{notebook.stem}"' in index, f"{notebook.stem} is not searchable"
