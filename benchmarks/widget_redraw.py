"""How long one slider move of the between-cluster-variance explorer takes, at the question's scale.

Each move recomputes everything from simulated sufficient statistics of 326,362 rows in 24 clusters
(no rows are made), refits the mixed model, recomputes the fixed-effect path, and draws a new figure.
The script times, over a sequence of moves that alternate between the two sliders:

- compute: simulated statistics, the REML fit, the path, the theta -> infinity limits, the cluster table;
- draw:    building the four-panel figure and rendering it to PNG at the live widget's resolution;
- widget:  the whole redraw, triggered by setting a slider's value on a live ``explorer()``;
- and, to calibrate the machine, an empty figure of the same size and grid rendered to PNG.

It prints the median and the 90th percentile of wall-clock and CPU time. On a machine shared with other
work, wall-clock time includes waiting for a core; CPU time is what the redraw itself costs.

Usage::

    python benchmarks/widget_redraw.py            # 40 moves
    python benchmarks/widget_redraw.py --moves 100
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from helpers import widgets
from helpers.plots import figure_to_png, new_figure

SIGMAS = [0.05, 0.1, 0.2, 0.31, 0.45, 0.6, 0.8]
IMBALANCES = [0.5, 1.0, 1.5, 2.0]


def _moves(count: int):
    """Alternate the two sliders: (which, value) pairs."""
    for k in range(count):
        if k % 2 == 0:
            yield "sigma", SIGMAS[(k // 2) % len(SIGMAS)]
        else:
            yield "imbalance", IMBALANCES[(k // 2) % len(IMBALANCES)]


def _timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _summary(name: str, samples) -> str:
    ms = 1e3 * np.asarray(samples)
    return (
        f"{name:<28} wall median {np.median(ms[:, 0]):7.1f} ms  p90 {np.quantile(ms[:, 0], 0.9):7.1f}"
        f"   cpu median {np.median(ms[:, 1]):7.1f} ms  p90 {np.quantile(ms[:, 1], 0.9):7.1f}"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--dpi", type=int, default=72)
    args = parser.parse_args(argv)

    # warm-up: imports, font cache, first figure
    figure_to_png(widgets.explorer_figure(0.31, 1.5), dpi=args.dpi)

    sigma, imbalance = 0.31, 1.5
    compute, draw, total = [], [], []
    for which, value in _moves(args.moves):
        if which == "sigma":
            sigma = value
        else:
            imbalance = value
        parts, wall_c, cpu_c = _timed(
            lambda: widgets._explorer_parts(sigma, imbalance, 0)  # noqa: B023
        )
        _, wall_d, cpu_d = _timed(
            lambda: figure_to_png(widgets._draw_explorer(*parts), dpi=args.dpi)  # noqa: B023
        )
        compute.append((wall_c, cpu_c))
        draw.append((wall_d, cpu_d))
        total.append((wall_c + wall_d, cpu_c + cpu_d))

    box = widgets.explorer(dpi=args.dpi)
    live = []
    for which, value in _moves(args.moves):
        slider = box.sigma_slider if which == "sigma" else box.imbalance_slider
        if slider.value == value:
            continue
        before = box.redraw_count
        _, wall, cpu = _timed(lambda: setattr(slider, "value", value))  # noqa: B023
        assert box.redraw_count == before + 1 and box.last_error is None, box.last_error
        live.append((wall, cpu))

    reference = []
    for _ in range(10):
        _, wall, cpu = _timed(
            lambda: figure_to_png(new_figure(2, 2, figsize=(10.5, 6.6), dpi=args.dpi)[0])
        )
        reference.append((wall, cpu))

    sim = widgets.simulate_question_stats()
    print(
        f"explorer redraw at the question's scale: {sim.stats.n_obs:,} rows, "
        f"{sim.stats.n_groups} clusters; {args.moves} moves; dpi {args.dpi}"
    )
    print(f"load average before/after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(_summary("compute (stats, fit, path)", compute))
    print(_summary("draw (figure + PNG)", draw))
    print(_summary("compute + draw", total))
    print(_summary("live widget slider move", live))
    print(_summary("reference: empty 2x2 PNG", reference))
    return {
        "compute": np.median(compute, axis=0),
        "draw": np.median(draw, axis=0),
        "total": np.median(total, axis=0),
        "live": np.median(live, axis=0),
        "reference": np.median(reference, axis=0),
    }


if __name__ == "__main__":
    main()
