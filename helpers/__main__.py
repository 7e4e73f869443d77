"""``python -m helpers report DATA --formula ...``: the package's command line.

The one command, ``report``, is :func:`helpers.report.main` (also installed as ``lmm-report``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: python -m helpers report DATA --formula FORMULA [options]   (see 'report --help')"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``python -m helpers <command> ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "report":
        from .report import main as report_main

        return report_main(rest, prog="python -m helpers report")
    print(
        f"python -m helpers: unknown command {command!r}; the one command is 'report'.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
