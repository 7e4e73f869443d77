"""The command line: ``lmm-report DATA --formula ...`` (or ``python -m helpers report ...``).

Argument parsing and exit statuses only: 0 on success, 2 for a problem with the input (one line on
stderr), 1 when the report itself fails (a bug: one line asks to report it, ``--debug`` adds the
traceback), 130 when interrupted. The work is :func:`helpers.report.run.make_report`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ..validate import DataError
from .content import one_line
from .inputs import ENGINES, LARGE_FILE_BYTES, SPARK_MASTER, choose_engine, parse_reference
from .run import NotebookMissing, ReportError, make_report

__all__ = ["REPORT_BUGS", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=(
            "Fit pooled OLS, the fixed-effects (within) estimator and a mixed model (a random "
            "intercept, or random slopes of one grouping factor) to your data, and explain why their "
            "estimates differ, in a self-contained HTML report."
        ),
        epilog=(
            'Example: %(prog)s radon.csv --formula "log_radon ~ floor + (1 | county)" '
            "--html radon.html --json radon.json"
        ),
    )
    parser.add_argument(
        "data",
        help="a CSV (.csv, .tsv, optionally .gz) or Parquet file, or a folder of Parquet files "
        "(--engine duckdb or spark)",
    )
    parser.add_argument(
        "--formula",
        required=True,
        help="lme4-style formula with one grouping factor, e.g. 'y ~ x1 + x2 + (1 | g)' or "
        "'y ~ x + (1 + x | g)'; "
        "quote column names with spaces or dots in backticks",
    )
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="COLUMN=LEVEL",
        help="the reference level of a categorical predictor (repeat for several)",
    )
    parser.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    parser.add_argument("--html", metavar="FILE", help="write the HTML report here")
    parser.add_argument("--json", metavar="FILE", help="write the numbers as JSON here")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="what computes the model's sums: pandas (the rows in memory), duckdb (from the file, "
        "without loading the rows) or spark (where Spark runs; needs PySpark and Java 17); by "
        f"default pandas, or duckdb for a folder or a file over {LARGE_FILE_BYTES // 1024**2} MiB",
    )
    parser.add_argument(
        "--spark-master",
        metavar="URL",
        help=f"where Spark runs with --engine spark (default {SPARK_MASTER}: this machine, every "
        "core; spark://host:7077, yarn, or sc://host:15002 for Spark Connect)",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="the same as --engine duckdb: compute from the file without loading the rows",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an unexpected failure (a bug), print the full traceback",
    )
    return parser


#: Where an unexpected failure is to be reported.
REPORT_BUGS = "the project's issue tracker"


def _where(exc: BaseException) -> str:
    """The innermost frame of the package in a traceback, as ``helpers/module.py:line``."""
    if isinstance(exc, ReportError):
        return "in the report notebook"
    package = Path(__file__).resolve().parent.parent
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(package):
            found = f"at helpers/{path.relative_to(package).as_posix()}:{frame.lineno}"
    return found or "outside the package"


def _internal_error(prog: str, exc: BaseException, debug: bool) -> None:
    """One line saying that this is a bug and where to report it; the traceback with ``--debug``."""
    detail = str(exc).strip()
    if isinstance(exc, ReportError):
        detail = detail.removeprefix("the report notebook failed (").removesuffix(")")
    else:
        detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if len(detail) > 300:
        detail = detail[:300] + "..."
    print(
        f"{prog}: internal error ({one_line(detail)}, {_where(exc)}): this is a bug in the report, "
        f"not a problem with your data; please report it in {REPORT_BUGS}, with the command you "
        f"ran and its output with --debug" + ("." if debug else " (which adds the traceback)."),
        file=sys.stderr,
    )
    if debug:
        if isinstance(exc, ReportError) and exc.details:
            print(exc.details, file=sys.stderr)
        else:
            traceback.print_exception(exc, file=sys.stderr)


def main(argv: Sequence[str] | None = None, prog: str = "lmm-report") -> int:
    """The command line: ``lmm-report DATA --formula ...`` (or ``python -m helpers report ...``).

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.
    prog : str
        The program name in messages.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad input, 1 when the report fails (a bug: one line
        asks to report it; ``--debug`` adds the traceback).

    Examples
    --------
    Bad input is one line on stderr and exit status 2:

    >>> main(["no/such/file.csv", "--formula", "y ~ x + (1 | g)"])
    2
    """
    parser = _parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.spark_master is not None and args.engine != "spark":
        parser.error("--spark-master goes with --engine spark")
    html = args.html
    if not html and not args.json:
        html = f"{Path(args.data).name.split('.')[0] or 'data'}_report.html"

    def notify(message: str) -> None:
        print(f"{prog}: {one_line(message)}", file=sys.stderr)

    engine = args.engine
    try:
        large = True if args.large else None
        if engine is not None:
            engine = choose_engine(args.data, engine, large)
        make_report(
            args.data,
            args.formula,
            reference=parse_reference(args.reference),
            reml=not args.ml,
            html=html,
            json_path=args.json,
            large=large,
            engine=engine,
            spark_master=args.spark_master or SPARK_MASTER,
            notify=notify,
        )
    except DataError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except NotebookMissing as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, and never as a problem with the data
        _internal_error(prog, exc, args.debug)
        return 1
    for written in (html, args.json):
        if written:
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
