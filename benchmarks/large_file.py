"""Benchmark: fit a random-intercept model to a Parquet file of 10^8 rows without loading it.

The script writes a Parquet file of ``--rows`` rows (columns ``y``, ``condition``, ``cluster``; shaped like
the question: 24 clusters of very different sizes, two conditions) in chunks, so the rows are never all in
memory, into a temporary folder that it deletes at the end. It then times, each in a fresh process:

- **group-by**: DuckDB's own ``GROUP BY cluster, condition`` with ``count``, ``sum`` and sum of squares of
  ``y``: one scan of the same columns, the least any fit from this file could cost;
- **fit**: :func:`helpers.large.fit_lmm_file`: DuckDB through Ibis (the first pass for the centring
  shifts, the grouped scan that :mod:`helpers.engines` writes as an Ibis expression, and the REML fit
  from the sums);
- **spark**: :func:`helpers.engines.design_from_table` on :func:`helpers.engines.read_table` (the same Ibis expression run
  by Spark in local mode on every core, reading the same Parquet file). Spark's start-up (the JVM and
  the session) is reported apart, as ``start (s)``: a cluster pays it once per session, not per fit.

For each it reports the wall time of the work and the peak resident memory of the process
(``ru_maxrss``, which includes Python and its libraries; for Spark also the peak of its JVM, the
driver's child process), and the ratio of the fit's time to the group-by's. The work starts after the
imports of the libraries each one uses (DuckDB; for the fit also Ibis with its DuckDB backend and
pyarrow's Parquet reader, which :mod:`helpers` imports on first use), reported apart as
``imports (s)``, with the ratio of imports plus work beside the ratio of the work. Targets: DuckDB through Ibis within 1.5 times the
group-by and under 0.5 GB. ``--scaling ROWS`` also times the fit and Spark on a second file of ROWS
rows, to show how each grows with the data (one pass: linear in the rows).

Usage::

    python benchmarks/large_file.py                # 10^8 rows (about 1 GB of disk while it runs)
    python benchmarks/large_file.py --rows 1e7     # a quicker run
    python benchmarks/large_file.py --scaling 1e7  # also Spark and DuckDB at 10^7 rows
    python benchmarks/large_file.py --no-spark     # without Spark (no Java needed)
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

        # the libraries the fit loads on its first call (helpers imports DuckDB, Ibis and pyarrow's
        # Parquet reader where they are used, so that the pandas path does not pay for them): imports,
        # as ``import duckdb`` is for the group-by; the work below starts with our first line of code
        import duckdb  # noqa: F401
        import ibis
        import pyarrow.parquet  # noqa: F401

        from helpers.engines import design_from_table, parquet_levels, read_table, spark_session
        from helpers.fit import fit_lmm_from_stats
        from helpers.large import fit_lmm_file

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ibis.duckdb  # noqa: B018 (loads the backend and its SQL compilers)
            if kind == "spark":
                ibis.pyspark  # noqa: B018
        imported = time.perf_counter()
        extra = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "spark":
                session = spark_session("local[*]")
                table = read_table(path, "spark", session=session)
                started = time.perf_counter()
                extra["start_seconds"] = started - imported
                imported = started
                # the stored level order of the Parquet dictionaries (unstim first), as pandas keeps it
                design = design_from_table(
                    table, FORMULA, stored_levels=parquet_levels(path, ["condition"])
                )
                fit = fit_lmm_from_stats(
                    design.stats, design.term_names, design.group_labels, formula=FORMULA
                )
            else:
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
    if kind == "spark":
        summary["jvm_peak_mb"] = _children_peak_mb()
        summary.update(extra)
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


def _children_peak_mb() -> float:
    """The largest peak resident memory (VmHWM) among this process's descendants (Spark's JVM)."""
    import os

    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
        mine |= frontier
    peak = 0.0
    for pid in mine:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024.0)
        except OSError:
            continue
    return peak


def _median(values) -> float:
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else 0.5 * (ordered[half - 1] + ordered[half])


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


def _write(folder: Path, rows: int, args) -> Path:
    path = folder / f"rows-{rows}.parquet"
    start = time.perf_counter()
    write_parquet(path, rows, args.clusters, args.chunk)
    size_mb = path.stat().st_size / 1024**2
    print(
        f"wrote {rows:,} rows ({size_mb:,.0f} MB of Parquet) in {time.perf_counter() - start:.1f} s"
    )
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=lambda s: int(float(s)), default=100_000_000)
    parser.add_argument("--clusters", type=int, default=24)
    parser.add_argument("--chunk", type=lambda s: int(float(s)), default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the fastest counts")
    parser.add_argument("--scaling", type=lambda s: int(float(s)), default=None, metavar="ROWS")
    parser.add_argument("--no-spark", action="store_true", help="leave Spark out")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    kinds = ("groupby", "fit") + (() if args.no_spark else ("spark",))
    labels = {"groupby": "DuckDB GROUP BY", "fit": "DuckDB via Ibis", "spark": "Spark local[*]"}
    folder = Path(tempfile.mkdtemp(prefix="lmm-benchmark-"))
    try:
        path = _write(folder, args.rows, args)
        results = {kind: [] for kind in kinds}
        for _ in range(args.repeats):
            for kind in kinds:
                results[kind].append(measure(kind, path))
        best = {kind: min(runs, key=lambda r: r["seconds"]) for kind, runs in results.items()}
        print(
            f"\n{'':18s}{'work (s)':>10s}{'start (s)':>11s}{'imports (s)':>13s}"
            f"{'peak Python (MB)':>18s}{'peak JVM (MB)':>15s}"
        )
        for kind in kinds:
            b = best[kind]
            times = ", ".join(f"{r['seconds']:.2f}" for r in results[kind])
            peak = max(r["peak_mb"] for r in results[kind])
            jvm = max(r.get("jvm_peak_mb", 0.0) for r in results[kind])
            start = f"{b['start_seconds']:.1f}" if "start_seconds" in b else "-"
            print(
                f"{labels[kind]:18s}{b['seconds']:10.2f}{start:>11s}{b['import_seconds']:13.2f}"
                f"{peak:18.0f}{(f'{jvm:.0f}' if jvm else '-'):>15s}   (work, each run: {times})"
            )
        ratio = best["fit"]["seconds"] / best["groupby"]["seconds"]
        peak_fit = max(r["peak_mb"] for r in results["fit"])
        whole = (best["fit"]["seconds"] + best["fit"]["import_seconds"]) / (
            best["groupby"]["seconds"] + best["groupby"]["import_seconds"]
        )
        middle = _median([r["seconds"] for r in results["fit"]]) / _median(
            [r["seconds"] for r in results["groupby"]]
        )
        print(f"\ntime ratio DuckDB via Ibis / GROUP BY: {ratio:.2f} for the work (target <= 1.5)")
        print(f"  (median run against median run: {middle:.2f})")
        print(f"  (imports + work: {whole:.2f}; a first fit in a fresh process pays the imports)")
        print(f"peak memory of DuckDB via Ibis: {peak_fit:.0f} MB (target < 512)")
        if "spark" in best:
            spark_ratio = best["spark"]["seconds"] / best["fit"]["seconds"]
            print(f"time ratio Spark / DuckDB via Ibis: {spark_ratio:.2f} (work, without start-up)")
        for kind in ("fit", "spark"):
            if kind in best:
                fit = best[kind]
                print(
                    f"{labels[kind]}: {fit['n_obs']:,} rows in {fit['n_groups']} clusters; fixed "
                    f"effects {fit['fe_params']}; sigma2_group {fit['sigma2_group']}, sigma2_resid "
                    f"{fit['sigma2_resid']}"
                )
        if args.scaling:
            small = _write(folder, args.scaling, args)
            print(
                f"\nscaling from {args.scaling:,} to {args.rows:,} rows (work, best of {args.repeats}):"
            )
            for kind in kinds[1:]:
                runs = [measure(kind, small) for _ in range(args.repeats)]
                low = min(r["seconds"] for r in runs)
                print(
                    f"{labels[kind]:18s}{low:8.2f} s -> {best[kind]['seconds']:8.2f} s "
                    f"(x{best[kind]['seconds'] / low:.1f} for x{args.rows / args.scaling:.0f} rows)"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
