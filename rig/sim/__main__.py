"""`python -m rig.sim`: run the twin on its own and print every endpoint."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from rig.profiles.bench import BenchProfile, exposure_warning
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import ProfileError, load_model
from rig.sim.tether import tie_to_parent
from rig.sim.twin import Twin
from rig.timeutil import format_instant, parse_instant

DEFAULT_BENCH = Path(__file__).resolve().parents[2] / "profiles" / "benches" / "sim.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rig.sim", description=__doc__)
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="bench profile (YAML)")
    parser.add_argument("--device", type=Path, default=None, help="device profile to simulate (YAML)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the bench profile's)")
    parser.add_argument("--start", default=None, help="virtual start time, ISO 8601 (default: profile's)")
    parser.add_argument("--host", default=None, help="address to bind (default: profile's, 127.0.0.1)")
    parser.add_argument("--speed", type=float, default=1.0, help="free-running speed, x wall clock")
    parser.add_argument("--locked", action="store_true", help="hold time still until a bench takes the clock")
    parser.add_argument("--json", action="store_true", help="print the endpoints as one JSON line")
    parser.add_argument("--tied", type=int, default=None, metavar="PID",
                        help="launched by the bench in process PID: stop when it dies, closes stdin, or drops the "
                             "clock; ignore SIGINT (the bench stops the twin after its safe state)")
    parser.add_argument("--parent-death-signal", action="store_true",
                        help="with --tied on Linux: also ask the kernel for SIGTERM when the parent dies")
    return parser


def describe(endpoints: dict) -> str:
    lines = [
        f"rig twin running (seed {endpoints['seed']}, virtual start {format_instant(endpoints['start'])})",
        f"  control port       {endpoints['control']}   (SCPI-style: SIM:TIME?, SIM:LOCK, RUN <t>, SIM:QUIT)",
    ]
    for name, resource in endpoints["instruments"].items():
        lines.append(f"  {name:<18} {resource}")
    for name, path in endpoints["serial"].items():
        lines.append(f"  {name:<18} {path}")
    for name, address in endpoints.get("udp", {}).items():
        lines.append(f"  {name + ' (udp)':<18} {address}   (the meter's uplinks leave from here)")
    lines.append("Ctrl-C stops the twin.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()  # SIGTERM, or the bench that launched us gone, even before the twin is built
    twins: list[Twin] = []

    def stop(signum: int | None = None, frame: object = None) -> None:
        stopping.set()
        for twin in twins:
            twin.quit = True

    signal.signal(signal.SIGTERM, stop)
    if args.tied is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the bench's to handle
        tie_to_parent(args.tied, stop, args.parent_death_signal)
    try:
        bench = load_model(args.bench, BenchProfile)
        device = load_model(args.device, DeviceProfile) if args.device else None
    except ProfileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if bench.twin is None:
        print(f"error: bench profile {args.bench} has no 'twin' section: it is not a simulated bench", file=sys.stderr)
        return 2
    seed = bench.twin.seed if args.seed is None else args.seed
    start_s = parse_instant(args.start or bench.twin.start)
    host = args.host or bench.twin.host
    if warning := exposure_warning(host):
        print(warning, file=sys.stderr, flush=True)
    twin = Twin(bench, seed, start_s, host=host, device=device)
    twin.tied = args.tied is not None
    twins.append(twin)
    twin.quit = stopping.is_set()
    endpoints = twin.endpoints()
    print(json.dumps(endpoints) if args.json else describe(endpoints), flush=True)
    try:
        twin.serve(locked_until_connected=args.locked, speed=args.speed)
    except KeyboardInterrupt:
        pass
    finally:
        twin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
