"""Build the static site: execute every notebook and render the book into ``_build/html``.

Usage (``make html`` runs the first line)::

    python site/build.py                 # build into _build/html
    python site/build.py --out DIR       # build into DIR/html (DIR/.doctrees, DIR/jupyter_execute)
    python site/build.py --fresh         # execute every notebook again, ignoring the cache

Warnings are errors, and a notebook cell that raises fails the build with its traceback.

Executed notebooks are cached with jupyter-cache, in a folder named after a hash of everything a
notebook's outputs can depend on besides its own code cells: the ``helpers`` sources, the files in
``data/`` and ``notebooks/`` (other than the notebooks), ``pyproject.toml``, ``requirements.lock``
and the Python version. jupyter-cache itself hashes each notebook's code cells. So a notebook runs
again whenever its code, the package or the environment changes, and a clean checkout runs them all.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: Inputs, besides the notebooks' code cells, that can change what a notebook prints.
CACHE_INPUTS = ("helpers", "data", "notebooks", "pyproject.toml", "requirements.lock")


def toc_files(toc: dict) -> list[str]:
    """Return every ``file:`` entry of a parsed ``_toc.yml``, the root first, in reading order.

    Examples
    --------
    >>> toc_files({"root": "index", "parts": [{"chapters": [{"file": "a"}, {"file": "b"}]}]})
    ['index', 'a', 'b']
    """
    found: list[str] = [toc["root"]] if "root" in toc else []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key, []))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def missing_pages(source: Path, toc_path: Path) -> list[str]:
    """Return the ``_toc.yml`` entries that have no source file (``.ipynb`` or ``.md``)."""
    toc = yaml.safe_load(toc_path.read_text())
    missing = []
    for entry in toc_files(toc):
        stem = source / entry
        candidates = [stem] if stem.suffix in (".ipynb", ".md") else []
        candidates += [stem.with_name(stem.name + suffix) for suffix in (".ipynb", ".md")]
        if not any(path.is_file() for path in candidates):
            missing.append(entry)
    return missing


def cache_key(source: Path) -> str:
    """Return a short hash of the inputs (besides notebook code) that a notebook's outputs depend on."""
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    for name in CACHE_INPUTS:
        path = source / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if not file.is_file():
                continue
            rel = file.relative_to(source).as_posix()
            if file.suffix in (".pyc", ".ipynb") or "__pycache__" in rel or "checkpoints" in rel:
                continue
            digest.update(rel.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def folder_size(path: Path) -> int:
    """Return the total size in bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(source: Path, out: Path, *, cache_root: Path | None, fresh: bool = False) -> int:
    """Build the site from ``source`` into ``out/html``; return the process exit code."""
    source = source.resolve()
    out = out.resolve()
    config, toc = source / "_config.yml", source / "_toc.yml"
    missing = missing_pages(source, toc)
    if missing:
        names = ", ".join(missing)
        print(
            f"site build: _toc.yml lists {names}, but no such .ipynb or .md file exists; "
            "add the notebook or remove it from _toc.yml.",
            file=sys.stderr,
        )
        return 2

    from jupyter_book.sphinx import build_sphinx

    html = out / "html"
    for stale in (html, out / ".doctrees", out / "jupyter_execute"):
        shutil.rmtree(stale, ignore_errors=True)

    overrides: dict = {"external_toc_path": toc.as_posix(), "latex_individualpages": False}
    if cache_root is not None:
        key = cache_key(source)
        cache_dir = cache_root / key
        if cache_root.is_dir():  # keep only the cache of the current inputs
            for old in cache_root.iterdir():
                if old.name != key or fresh:
                    shutil.rmtree(old, ignore_errors=True)
        overrides["nb_execution_cache_path"] = str(cache_dir)
    else:
        overrides["nb_execution_mode"] = "force"

    # Kernels inherit this process's environment: let them use the inline backend, so figures
    # appear on the pages even when the caller (a test run) selected a non-interactive one.
    os.environ.pop("MPLBACKEND", None)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

    started = time.perf_counter()
    result = build_sphinx(
        source,
        html,
        noconfig=True,
        path_config=str(config),
        confoverrides=overrides,
        doctreedir=out / ".doctrees",
        warningiserror=True,
        keep_going=True,
        freshenv=True,
    )
    seconds = time.perf_counter() - started
    if isinstance(result, Exception) or result != 0:
        cause = getattr(result, "__cause__", None)
        if cause is not None:
            print(f"\n{cause}", file=sys.stderr)
        print(f"site build FAILED after {seconds:.0f} s (warnings are errors)", file=sys.stderr)
        return 1
    size = folder_size(html) / 2**20
    print(f"site built in {seconds:.0f} s: {html} ({size:.1f} MiB); open {html / 'index.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="book root with _config.yml (default: repo root)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="build folder (default: SOURCE/_build)"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder for executed notebooks (default: SOURCE/_build/.jupyter_cache)",
    )
    parser.add_argument("--no-cache", action="store_true", help="execute every notebook, keep none")
    parser.add_argument(
        "--fresh", action="store_true", help="empty the cache first, so every notebook runs again"
    )
    args = parser.parse_args(argv)
    source = args.source.resolve()
    out = args.out if args.out is not None else source / "_build"
    cache = None if args.no_cache else (args.cache or source / "_build" / ".jupyter_cache")
    return build(source, out, cache_root=cache, fresh=args.fresh)


if __name__ == "__main__":
    sys.exit(main())
