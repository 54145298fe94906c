"""`python -m rig`: run the certification campaign (`certify`), rebuild a run's report (`report`), or start
the twin alone (`sim`). Exit codes: rig/exit_codes.py (0 PASS, 1 FAIL, 2 usage or profile error,
3 INCOMPLETE or interrupted, 4 rig crash)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from datetime import datetime
from pathlib import Path

from rig import exit_codes, resume
from rig.bench import run_seed
from rig.interrupts import interrupt, signals_held
from rig.profiles.bench import BenchProfile, exposure_warning
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import ProfileError, load_model
from rig.profiles.plan import load_plan
from rig.report.build import IDENTITIES, RunError, RunRecord, build_report, summary_text

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"
DEFAULTS = {"bench": PROFILES / "benches" / "sim.yaml", "device": PROFILES / "devices" / "reference-meter.yaml",
            "plan": PROFILES / "plans" / "white-paper-2018.yaml"}


def _certify_parser(subparsers) -> None:
    parser = subparsers.add_parser("certify", help="run the certification campaign and write results/<run>/")
    parser.add_argument("--bench", type=Path, default=None, help=f"bench profile (default {DEFAULTS['bench']})")
    parser.add_argument("--device", type=Path, default=None, help=f"device profile (default {DEFAULTS['device']})")
    parser.add_argument("--plan", type=Path, default=None, help=f"certification plan (default {DEFAULTS['plan']})")
    parser.add_argument("--seed", type=int, default=None, help="twin seed (default: the bench profile's)")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="where runs are written")
    parser.add_argument("--list", action="store_true", help="list the checks the plan selects and what each needs")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN",
                        help="finish an interrupted run: only the checks and levels with no outcome yet, with the "
                             "run's own profiles, seed and selection; one certificate for the whole run")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")


def _report_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="rebuild the certificate and HTML report of a run")
    parser.add_argument("run", nargs="?", type=Path, default=None, help="run directory (default: results/latest)")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="where runs are written")


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

    resuming = args.resume is not None
    if resuming:
        problem = adopt_run_record(args)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return exit_codes.USAGE
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    try:
        bench = load_model(args.bench, BenchProfile)
        device = load_model(args.device, DeviceProfile)
        load_plan(args.plan)
    except ProfileError as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_codes.USAGE
    if bench.twin is not None and bench.twin.launch and (warning := exposure_warning(bench.twin.host)):
        print(warning, file=sys.stderr)
    if args.list:
        code = pytest.main(suite_args(args) + ["--list-checks", "-q", "--collect-only"])
        listed = code == pytest.ExitCode.NO_TESTS_COLLECTED  # the listing deselects every test
        return exit_codes.PASS if listed else exit_codes.certify_code(code, None)
    collection = CollectionWatch()
    skip_done = resume.SkipDone(set())
    if resuming:
        run = args.resume.resolve()
        try:
            done, notes = resume.prepare(run)
        except (OSError, ValueError) as error:
            print(f"error: cannot resume {run}: {error}", file=sys.stderr)
            return exit_codes.USAGE
        print("\n".join([f"resuming {run}: {len(done)} test(s) already have an outcome", *notes]))
        skip_done.done = done
        junit = next_free(run, "junit-resumed", ".xml")
    else:
        run = new_run_directory(args.results, device.name)
        RunRecord(args.bench, args.device, args.plan, run_seed(bench, args.seed), tuple(args.pytest_args)).write(run)
        junit = run / "junit.xml"
    pytest_args = suite_args(args) + [
        f"--alluredir={run / 'allure-results'}",
        f"--junitxml={junit}",
        f"--measurements={run / 'measurements.csv'}",
        f"--outcomes={run / 'outcomes.jsonl'}",
        f"--identities={run / IDENTITIES}",
        *args.pytest_args,
    ]
    try:
        pytest_code = pytest.main(pytest_args, plugins=[collection, skip_done])
    except KeyboardInterrupt:  # before pytest could handle it (starting up): still a run with a certificate
        pytest_code = pytest.ExitCode.INTERRUPTED
    if resuming and pytest_code == pytest.ExitCode.NO_TESTS_COLLECTED and skip_done.done:
        pytest_code = pytest.ExitCode.OK  # every test already had its outcome: only the report is left to build
    elif pytest_code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("error: the selection matched no check (see --checks, -k)", file=sys.stderr)
    if pytest_code in exit_codes.NO_REPORT:
        return exit_codes.certify_code(pytest_code, None)
    if pytest_code == pytest.ExitCode.INTERRUPTED and not collection.failed:
        print(f"interrupted: the run is incomplete; finish it with: python -m rig certify --resume {run}",
              file=sys.stderr)
    with signals_held():  # a second Ctrl-C must not cut the certificate of what was measured short
        verdict = report_run(run, args.results)
    return exit_codes.certify_code(pytest_code, verdict, collection.failed)


def adopt_run_record(args: argparse.Namespace) -> str | None:
    """`--resume RUN`: take the run's profiles, seed and selection from its run.json; what is wrong, or None."""
    given = [f"--{name}" for name in ("bench", "device", "plan", "seed") if getattr(args, name) is not None]
    if given or args.list:
        return f"--resume reuses the run's recorded profiles, seed and selection: drop {', '.join(given or ['--list'])}"
    if not args.resume.is_dir():
        return f"no run directory {args.resume}"
    try:
        record = RunRecord.read(args.resume)
    except RunError as error:
        return str(error)
    args.bench, args.device, args.plan, args.seed = record.bench, record.device, record.plan, record.seed
    args.pytest_args = [*record.pytest_args, *args.pytest_args]
    return None


def next_free(run: Path, stem: str, suffix: str) -> Path:
    """run/<stem>-<n><suffix> with the first n not taken yet."""
    number = 1
    while (run / f"{stem}-{number}{suffix}").exists():
        number += 1
    return run / f"{stem}-{number}{suffix}"


class CollectionWatch:
    """A pytest plugin object that notices a suite that could not be collected (a rig crash, not an
    interruption, though pytest reports both as interrupted)."""

    def __init__(self) -> None:
        self.failed = False

    def pytest_collectreport(self, report) -> None:
        self.failed = self.failed or report.failed


def suite_args(args: argparse.Namespace) -> list[str]:
    """The pytest arguments that select the suites and the profiles."""
    return [
        str(ROOT / "suites"),
        f"--rootdir={ROOT}",
        "-p",
        "no:cacheprovider",
        f"--bench={args.bench}",
        f"--device={args.device}",
        f"--plan={args.plan}",
        "-o",
        "testpaths=suites",
        *([f"--seed={args.seed}"] if args.seed is not None else []),
    ]


def report_run(run: Path, results: Path) -> str | None:
    """Build the run's certificate and HTML report, print the summary and return the verdict (None, with
    the reason printed, when the run cannot be read)."""
    try:
        outputs = build_report(run, results / "history.jsonl")
    except (RunError, ProfileError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    print(summary_text(outputs, run))
    return outputs.matrix.verdict


def report(args: argparse.Namespace) -> int:
    run = args.run if args.run is not None else args.results / "latest"
    if not run.is_dir():
        print(f"error: no run directory {run}", file=sys.stderr)
        return exit_codes.USAGE
    return exit_codes.verdict_code(report_run(run.resolve(), args.results))


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
    _report_parser(subparsers)
    subparsers.add_parser("sim", help="start the twin on its own and print every endpoint (see `sim --help`)")
    args = parser.parse_args(argv)  # a usage error exits 2 here
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)  # SIGTERM stops the run as Ctrl-C does: safe state, results, exit 3
    try:
        return report(args) if args.command == "report" else certify(args)
    except KeyboardInterrupt:
        print("interrupted: the run is incomplete", file=sys.stderr)
        return exit_codes.INCOMPLETE
    except Exception:  # a rig crash: its traceback, and a code of its own
        traceback.print_exc()
        return exit_codes.CRASH
