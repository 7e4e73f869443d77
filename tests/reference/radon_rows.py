"""Write the Minnesota radon rows the package loads to ``radon.csv``, so R fits exactly the same rows.

Run ``python tests/reference/radon_rows.py`` to (re)write ``tests/reference/radon.csv`` (919 rows,
committed). ``lme4_reference.json`` records the SHA-256 of the file R read, and the tests recompute it
from :func:`helpers.data.load_dataset`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from helpers.data import load_dataset

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "radon.csv"
COLUMNS = ["log_radon", "floor", "county"]


def radon_csv_text(frame: pd.DataFrame | None = None) -> str:
    """The CSV text of the radon columns the reference fits use."""
    frame = load_dataset("radon") if frame is None else frame
    return frame[COLUMNS].to_csv(index=False, lineterminator="\n")


if __name__ == "__main__":
    text = radon_csv_text()
    CSV_PATH.write_bytes(text.encode())
    print(CSV_PATH)
    print(hashlib.sha256(text.encode()).hexdigest())
