"""Noise for a 62,001-cell release: one OpenDP sampler call per cell against tahub's one
vector-domain measurement per measure, on the same cells, in the same run.

Run:  .venv/bin/python bench/noise_vector.py [--cells 62001] [--repeat 3]
          [--results bench/RESULTS.md] [--no-record]

For each measure of a count + sum release (a sum of values clamped to [0, 50000] in whole
euros; at most 10 rows per unit; each measure charged rho 1/4 (zCDP) or epsilon 1/2 (pure),
the halves of a query at rho 1/2 or epsilon 1), three ways of drawing the same noise:

* ``per cell``: the calibrated scale through OpenDP's scalar measurement
  (``make_gaussian`` / ``make_laplace`` over ``atom_domain(T=i64)``), called once per cell:
  the path the issue and docs/DP_NOTES measured (46 microseconds a cell);
* ``vector``: :func:`hub.privacy.noise.release_counts`, tahub's release path: one call of
  ``make_gaussian`` / ``make_laplace`` over ``vector_domain(atom_domain(T=i64))`` for all
  cells (same distribution, same scale: each coordinate is sampled independently);
* ``floor``: OpenDP's identity transformation over the same vector (no noise): what moving
  62,001 integers into OpenDP and back costs, the part of ``vector`` that is not sampling.

Then the privacy half of a whole release (noise and the intervals of every cell,
:func:`hub.privacy.intervals.estimates`) of the count + sum. Wall and CPU seconds (user + system of
this process), median of ``--repeat``, the three ways interleaved so that load on the shared
machine falls on all of them alike; ratios are taken within the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import opendp.prelude as dp

from hub.privacy.accounting import Cost, Measure
from hub.privacy.intervals import estimates
from hub.privacy.noise import Mechanism, NoiseSpec, calibrate, release_counts, sensitivity

MAX_ROWS = 10
CLAMP = (0, 50_000)
SHARE = {Measure.ZCDP: Fraction(1, 4), Measure.PURE: Fraction(1, 2)}


def _per_cell(noise: NoiseSpec) -> Callable[[list[int]], list[int]]:
    """OpenDP's scalar measurement at the same scale, one call per cell (the old path)."""
    atom = dp.atom_domain(T="i64")
    if noise.mechanism is Mechanism.DISCRETE_GAUSSIAN:
        meas = dp.m.make_gaussian(atom, dp.absolute_distance(T="f64"), scale=noise.scale)
    else:
        meas = dp.m.make_laplace(atom, dp.absolute_distance(T="i64"), scale=noise.scale)
    return lambda cells: [int(meas(v)) for v in cells]


def _floor() -> Callable[[list[int]], Any]:
    dp.enable_features("contrib", "honest-but-curious")  # the identity is unsafe on purpose
    ident = dp.t.make_identity(dp.vector_domain(dp.atom_domain(T="i64")),
                               dp.l1_distance(T="i64"))
    return lambda cells: ident(cells)


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _whole(specs: list[tuple[NoiseSpec, list[int]]]) -> None:
    for noise, values in specs:
        estimates(release_counts(values, noise), noise, nonnegative=True)


def run(cells: int, repeat: int) -> tuple[list[list[str]], dict[str, Any]]:
    counts = [(i * 7919) % 1000 for i in range(cells)]
    sums = [c * 120 for c in counts]  # fixed-point euros, within m * 50000 per cell
    floor = _floor()
    rows, meta = [], {}
    for measure in Measure:
        specs = {
            "count": (calibrate(Cost(measure, SHARE[measure]),
                                sensitivity("count", MAX_ROWS)), counts),
            "sum": (calibrate(Cost(measure, SHARE[measure]),
                              sensitivity("sum", MAX_ROWS, CLAMP, 0)), sums),
        }
        release_wall: list[float] = []
        release_cpu: list[float] = []
        for name, (noise, values) in specs.items():
            per_cell, times = _per_cell(noise), {"per cell": [], "vector": [], "floor": []}
            for _ in range(repeat):
                times["per cell"].append(_timed(functools.partial(per_cell, values)))
                times["vector"].append(_timed(functools.partial(release_counts, values,
                                                                noise)))
                times["floor"].append(_timed(functools.partial(floor, values)))
            med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                   for k, v in times.items()}
            rows.append([
                f"{name} ({noise.mechanism.value}, scale {noise.scale:.4g})", measure.value,
                f"{med['per cell'][0]:.3f} / {med['per cell'][1]:.3f}",
                f"{med['vector'][0]:.3f} / {med['vector'][1]:.3f}",
                f"{med['floor'][0]:.3f} / {med['floor'][1]:.3f}",
                f"{1e6 * med['vector'][1] / cells:.1f}",
                f"**{med['per cell'][1] / med['vector'][1]:.1f}x**",
            ])
        for _ in range(repeat):
            wall, cpu = _timed(functools.partial(_whole, list(specs.values())))
            release_wall.append(wall)
            release_cpu.append(cpu)
        meta[measure.value] = (statistics.median(release_wall), statistics.median(release_cpu))
    return rows, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=62_001)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    load0, start = os.getloadavg()[0], time.perf_counter()
    rows, whole = run(args.cells, args.repeat)
    elapsed, load1 = time.perf_counter() - start, os.getloadavg()[0]
    head = ["measure", "accounting", "per cell: wall / CPU s", "vector (tahub): wall / CPU s",
            "floor (identity, no noise): wall / CPU s", "vector CPU us per cell",
            "per cell / vector (CPU)"]
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join([
        f"## noise_vector, {dt.date.today().isoformat()}",
        "",
        f"{args.cells:,} cells, a count and a sum (clamp {list(CLAMP)}, whole euros, "
        f"{MAX_ROWS} rows per unit), each measure at rho 1/4 or epsilon 1/2; median of "
        f"{args.repeat}, the three ways interleaved; OpenDP "
        f"{importlib.metadata.version('opendp')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared with other jobs (load average {load0:.1f} at the "
        f"start, {load1:.1f} at the end: compare CPU seconds and ratios); "
        f"{elapsed / 60:.1f} min in all.",
        "",
        *table,
        "",
        "Privacy half of the whole count + sum release (both measures' noise and every "
        "cell's interval): " + "; ".join(
            f"{k} {w:.3f} s wall / {c:.3f} s CPU" for k, (w, c) in whole.items()) + ".",
        "",
    ])
    print(text)
    if not args.no_record:
        with args.results.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
