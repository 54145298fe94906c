"""Benchmark of the simulated bench's plumbing: control round trips, RUN steps, capture and data-log rates.

Prints each figure and its ratio to virtual time side by side, in one run:
    .venv/bin/python bench/clock_roundtrip.py
"""

from __future__ import annotations

import time
from pathlib import Path

from rig.bench import Bench
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model

SIM_BENCH = Path(__file__).resolve().parents[1] / "profiles" / "benches" / "sim.yaml"


def timed(action, repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return time.perf_counter() - started


def main() -> None:
    with Bench(load_model(SIM_BENCH, BenchProfile), SIM_BENCH) as bench:
        clock, supply, link = bench.clock, bench.supply, bench.twin_link
        rows = []

        n = 2000
        wall = timed(lambda: link.query("SIM:TIME?"), n)
        rows.append(("control query round trip", f"{wall / n * 1e6:8.1f} us", ""))

        wall = timed(lambda: clock.advance(clock.now() + 1.0), n)
        rows.append(("RUN step (1 s virtual)", f"{wall / n * 1e6:8.1f} us", f"{n / wall:10.0f} x real time"))

        t = clock.now()
        link.query(f"SIM:LOAD {t + 0.1!r},0.05,{t + 0.6!r},3e-6")
        supply.set_output(True)
        points = 200_000
        wall = timed(lambda: supply.capture(points, 5.12e-6))
        megabytes = points * 4 / 1e6
        rows.append(("capture 200 k points + fetch", f"{wall * 1e3:8.1f} ms", f"{megabytes / wall:10.1f} MB/s"))

        wall = timed(lambda: sum(len(c.mean_a) for c in supply.data_log(1.0, 86400, chunk_periods=20_000)))
        rows.append(("data log 1 day at 1 s, streamed", f"{wall * 1e3:8.1f} ms", f"{86400 / wall:10.0f} x real time"))

        wall = timed(lambda: clock.sleep(30 * 86400))
        rows.append(("sleep 30 virtual days", f"{wall * 1e3:8.1f} ms", f"{30 * 86400 / wall:10.0f} x real time"))

    width = max(len(name) for name, _, _ in rows)
    for name, figure, ratio in rows:
        print(f"{name:<{width}}  {figure}  {ratio}")


if __name__ == "__main__":
    main()
