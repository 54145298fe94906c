"""`python -m rig`: run the certification campaign (`certify`) or start the twin alone (`sim`)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import ProfileError, load_model
from rig.profiles.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"


def _certify_parser(subparsers) -> None:
    parser = subparsers.add_parser("certify", help="run the certification campaign and write results/<run>/")
    parser.add_argument("--bench", type=Path, default=PROFILES / "benches" / "sim.yaml")
    parser.add_argument("--device", type=Path, default=PROFILES / "devices" / "reference-meter.yaml")
    parser.add_argument("--plan", type=Path, default=PROFILES / "plans" / "white-paper-2018.yaml")
    parser.add_argument("--seed", type=int, default=None, help="twin seed (default: the bench profile's)")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="where runs are written")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")


def new_run_directory(results: Path, device_name: str) -> Path:
    """results/<date-time>-<device>/, with results/latest pointing at it."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run = results / f"{stamp}-{device_name}"
    suffix = 1
    while run.exists():
        suffix += 1
        run = results / f"{stamp}-{device_name}-{suffix}"
    run.mkdir(parents=True)
    latest = results / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run.name)
    return run


def certify(args: argparse.Namespace) -> int:
    import pytest

    try:
        load_model(args.bench, BenchProfile)
        device = load_model(args.device, DeviceProfile)
        load_plan(args.plan)
    except ProfileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run = new_run_directory(args.results, device.name)
    pytest_args = [
        str(ROOT / "suites"),
        f"--rootdir={ROOT}",
        "-p",
        "no:cacheprovider",
        f"--bench={args.bench}",
        f"--device={args.device}",
        f"--plan={args.plan}",
        f"--alluredir={run / 'allure-results'}",
        f"--junitxml={run / 'junit.xml'}",
        f"--measurements={run / 'measurements.csv'}",
        f"--outcomes={run / 'outcomes.jsonl'}",
        "-o",
        "testpaths=suites",
        *([f"--seed={args.seed}"] if args.seed is not None else []),
        *args.pytest_args,
    ]
    exit_code = pytest.main(pytest_args)
    print(f"\nrun written to {run} (results/latest points at it)")
    print(f"allure results: {run / 'allure-results'}  (render: npx allure awesome --single-file -o report <dir>)")
    return int(exit_code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        from rig.sim.__main__ import main as sim_main

        sim_args = argv[1:]
        if "--device" not in sim_args:
            sim_args += ["--device", str(PROFILES / "devices" / "reference-meter.yaml")]
        return sim_main(sim_args)
    parser = argparse.ArgumentParser(prog="python -m rig", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _certify_parser(subparsers)
    subparsers.add_parser("sim", help="start the twin on its own and print every endpoint (see `sim --help`)")
    args = parser.parse_args(argv)
    return certify(args)
