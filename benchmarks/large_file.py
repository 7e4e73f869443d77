"""Benchmark: fit a random-intercept model to a Parquet file of 10^8 rows without loading it.

The script writes a Parquet file of ``--rows`` rows (columns ``y``, ``condition``, ``cluster``; shaped like
the question: 24 clusters of very different sizes, two conditions) in chunks, so the rows are never all in
memory, into a temporary folder that it deletes at the end. It then times, each in a fresh process:

- **group-by**: DuckDB's own ``GROUP BY cluster, condition`` with ``count``, ``sum`` and sum of squares of
  ``y``: one scan of the same columns, the least any fit from this file could cost;
- **fit**: :func:`helpers.large.fit_lmm_file` (the first pass for the centring shifts, the grouped scan,
  and the REML fit from the sums).

For each it reports the wall time and the peak resident memory of the process (``ru_maxrss``, which
includes Python and its libraries), and the ratio of the fit's time to the group-by's. Targets: peak memory
under 1 GB and time within 1.5 times the group-by.

Usage::

    python benchmarks/large_file.py                # 10^8 rows (about 1 GB of disk while it runs)
    python benchmarks/large_file.py --rows 1e7     # a quicker run
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMULA = "y ~ condition + (1 | cluster)"


def write_parquet(path: Path, rows: int, clusters: int, chunk: int, seed: int = 2026) -> None:
    """Write the benchmark file chunk by chunk (at most ``chunk`` rows in memory at once)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    weights = np.exp(1.5 * rng.standard_normal(clusters))
    weights /= weights.sum()
    intercepts = 0.3 * rng.standard_normal(clusters)
    share_stim = 1.0 / (1.0 + np.exp(-0.8 * rng.standard_normal(clusters)))
    width = len(str(clusters))
    cluster_labels = pa.array([f"c{k + 1:0{width}d}" for k in range(clusters)])
    condition_labels = pa.array(["unstim", "stim"])
    schema = pa.schema(
        [
            ("y", pa.float64()),
            ("condition", pa.dictionary(pa.int8(), pa.string())),
            ("cluster", pa.dictionary(pa.int16(), pa.string())),
        ]
    )
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            cluster = rng.choice(clusters, size=n, p=weights).astype(np.int16)
            stim = (rng.random(n) < share_stim[cluster]).astype(np.int8)
            y = 0.72 - 0.1 * stim + intercepts[cluster] + 0.67 * rng.standard_normal(n)
            table = pa.table(
                {
                    "y": y,
                    "condition": pa.DictionaryArray.from_arrays(stim, condition_labels),
                    "cluster": pa.DictionaryArray.from_arrays(cluster, cluster_labels),
                },
                schema=schema,
            )
            writer.write_table(table, row_group_size=1_000_000)
            done += n
            del cluster, stim, y, table


def child(kind: str, path: str) -> None:
    """Run one measurement in this (fresh) process and print it as JSON.

    ``seconds`` is the work (the query, or the scan and the fit); ``import_seconds`` the imports before it,
    a fixed cost that does not grow with the file.
    """
    start = time.perf_counter()
    if kind == "groupby":
        import duckdb

        imported = time.perf_counter()
        con = duckdb.connect()
        literal = "'" + path.replace("'", "''") + "'"
        rows = con.execute(
            "SELECT cluster, condition, count(*), sum(y), sum(y * y) "
            f"FROM read_parquet({literal}) GROUP BY cluster, condition"
        ).fetchall()
        summary = {"cells": len(rows)}
    else:
        import warnings

        from helpers.large import fit_lmm_file

        imported = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_lmm_file(path, FORMULA)
        summary = {
            "n_obs": fit.n_obs,
            "n_groups": fit.n_groups,
            "fe_params": fit.fe_params.round(6).to_dict(),
            "sigma2_group": round(fit.sigma2_group, 6),
            "sigma2_resid": round(fit.sigma2_resid, 6),
        }
    done = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "kind": kind,
                "seconds": done - imported,
                "import_seconds": imported - start,
                "peak_mb": peak_mb,
                **summary,
            }
        )
    )


def measure(kind: str, path: Path) -> dict:
    run = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise SystemExit(f"the {kind} run failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=lambda s: int(float(s)), default=100_000_000)
    parser.add_argument("--clusters", type=int, default=24)
    parser.add_argument("--chunk", type=lambda s: int(float(s)), default=5_000_000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the fastest counts")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    folder = Path(tempfile.mkdtemp(prefix="lmm-benchmark-"))
    try:
        path = folder / "rows.parquet"
        start = time.perf_counter()
        write_parquet(path, args.rows, args.clusters, args.chunk)
        size_mb = path.stat().st_size / 1024**2
        print(
            f"wrote {args.rows:,} rows ({size_mb:,.0f} MB of Parquet) in "
            f"{time.perf_counter() - start:.1f} s"
        )
        results = {"groupby": [], "fit": []}
        for _ in range(args.repeats):
            for kind in ("groupby", "fit"):
                results[kind].append(measure(kind, path))
        best = {kind: min(runs, key=lambda r: r["seconds"]) for kind, runs in results.items()}
        print(f"\n{'':24s}{'work (s)':>10s}{'with imports (s)':>18s}{'peak memory (MB)':>18s}")
        for kind, label in (("groupby", "DuckDB GROUP BY"), ("fit", "fit_lmm_file")):
            b = best[kind]
            times = ", ".join(f"{r['seconds']:.2f}" for r in results[kind])
            peak = max(r["peak_mb"] for r in results[kind])
            print(
                f"{label:24s}{b['seconds']:10.2f}{b['seconds'] + b['import_seconds']:18.2f}"
                f"{peak:18.0f}   (work, each run: {times})"
            )
        ratio = best["fit"]["seconds"] / best["groupby"]["seconds"]
        with_imports = (best["fit"]["seconds"] + best["fit"]["import_seconds"]) / (
            best["groupby"]["seconds"] + best["groupby"]["import_seconds"]
        )
        peak_fit = max(r["peak_mb"] for r in results["fit"])
        print(
            f"\ntime ratio fit / GROUP BY: {ratio:.2f} for the work (target <= 1.5), "
            f"{with_imports:.2f} including the imports"
        )
        print(f"peak memory of the fit: {peak_fit:.0f} MB (target < 1024)")
        fit = best["fit"]
        print(
            f"fit: {fit['n_obs']:,} rows in {fit['n_groups']} clusters; fixed effects "
            f"{fit['fe_params']}; sigma2_group {fit['sigma2_group']}, sigma2_resid {fit['sigma2_resid']}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
