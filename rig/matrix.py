"""The defect matrix: each defect profile must fail exactly its own check plus PROCEDURES' collateral.

`python -m rig.matrix` (`make matrix`) runs every defect through every check at every level and the
reference meter through everything, prints what failed where and its wall time, and exits non-zero on
any difference from the expectation. The CI subset (tests/test_defect_matrix.py) runs each defect
through its own checks and collateral only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFECTS = ROOT / "profiles" / "devices" / "defects"
REFERENCE = ROOT / "profiles" / "devices" / "reference-meter.yaml"
BARE_MODULE = ROOT / "profiles" / "devices" / "bare-module.yaml"
FAILING = ("failed", "broken")
JUDGED_BATTERY_LEVELS = ("CE0", "CE1")  # B1 is judged at the default plan's battery.judged_levels


@dataclass(frozen=True)
class Expectation:
    """The checks a defect fails: its own and the collateral PROCEDURES lists (levels None = every level)."""

    fails: tuple[str, ...]
    levels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def expected(self, outcomes: Iterable[Outcome]) -> set[tuple[str, str | None]]:
        return {
            (o.check, o.level) for o in outcomes
            if o.check in self.fails and (o.check not in self.levels or o.level in self.levels[o.check])
        }


EXPECTED: dict[str, Expectation] = {
    "c1-old-firmware": Expectation(("C1",)),
    "c2-reselection-off-at-boot": Expectation(("C2a", "C2c")),
    # PROCEDURES lists C2b only; a locked meter honestly cannot do C2a's inter-frequency case either
    "c2-earfcn-locked": Expectation(("C2b", "C2a")),
    "c2-ignores-platform-switch": Expectation(("C2c",)),
    "c3-no-release-assistance": Expectation(("C3",)),
    "c5-module-psm-12ua": Expectation(("C5",)),
    "c5-power-off-instead-of-psm": Expectation(("C5",)),
    "c5-mcu-never-sleeps": Expectation(("C5", "B1", "C21a"), levels={"B1": JUDGED_BATTERY_LEVELS}),
    "c8-gives-up-after-180s": Expectation(("C8",)),
    "c12-no-network-quality": Expectation(("C12",)),
    "c12-rsrp-frozen": Expectation(("C12",)),
    "c21-no-storage-mode": Expectation(("C21a",)),
    "c21-searches-every-60s": Expectation(("C21b",)),
    "c22-tx-power-12db-low": Expectation(("C22",), levels={"C22": ("CE2",)}),
    "c4-no-stagger": Expectation(("C4", "C4f")),
    "c4-ignores-t3": Expectation(("C4",)),
    "c4-no-stagger-after-power-cut": Expectation(("C4",)),
    "c4-no-stagger-after-power-cut-some-numbers": Expectation(("C4",)),
    "c6-no-time-sync": Expectation(("C6",)),
    "c7-retry-5-5-5": Expectation(("C7",)),
    "c7-no-reset": Expectation(("C7",)),
    "c9-no-retry-after-513": Expectation(("C9",)),
    "c10-flow-without-ncsearfcn": Expectation(("C10",)),
    "c11-no-cfun0-before-power-off": Expectation(("C11",)),
    "c13-logs-7-days": Expectation(("C13",)),
    "c13-no-upload": Expectation(("C13",)),
    "c14-accepts-unsigned": Expectation(("C14",)),
    "c15-no-password": Expectation(("C15",)),
    "c15-no-lockout": Expectation(("C15",)),
    "c16-basic-report-300-bytes": Expectation(("C16",)),
    "c16-freezes-every-60min": Expectation(("C16",)),
    "c17-magnet-alarm-every-time": Expectation(("C17",)),
    "c17-low-battery-at-once": Expectation(("C17",)),
    "c18-ignores-point-reads": Expectation(("C18",)),
    "c19-config-not-applied": Expectation(("C19", "C2c", "C4")),
    "c20-closes-when-forbidden": Expectation(("C20",)),
    "s1-obeys-spoofed-valve": Expectation(("S1",)),
    "s1-stays-awake-for-spoofed-downlinks": Expectation(("S1",)),
    "s1-obeys-unauthenticated-downlink": Expectation(("S1",)),
    "s2-accepts-replayed-session": Expectation(("S2",)),
    "s3-report-carries-owner-name": Expectation(("S3",)),
}


@dataclass(frozen=True)
class Outcome:
    check: str
    level: str | None
    outcome: str
    test: str
    reason: str = ""


@dataclass
class MatrixRow:
    """One device through some checks: what failed, and how that compares with the expectation."""

    device: str
    seed: int | None
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0

    def failing(self) -> set[tuple[str, str | None]]:
        return {(o.check, o.level) for o in self.outcomes if o.outcome in FAILING}

    def unexpected(self, expectation: Expectation | None) -> tuple[set, set]:
        """(failing but not expected, expected but not failing)."""
        expected = expectation.expected(self.outcomes) if expectation else set()
        failing = self.failing()
        return failing - expected, expected - failing


def run_checks(device: Path, checks: Iterable[str] | None = None, seed: int | None = None,
               timeout_s: float = 1800.0, extra: Iterable[str] = ()) -> MatrixRow:
    """Run the suites for `device` (optionally only `checks`) in a child pytest; collect the outcomes."""
    with tempfile.TemporaryDirectory() as scratch:
        outcomes_file = Path(scratch) / "outcomes.jsonl"
        command = [
            sys.executable, "-m", "pytest", str(ROOT / "suites"), "-o", "testpaths=suites", "-p", "no:cacheprovider",
            "-q", "--no-header", f"--rootdir={ROOT}", "--device", str(device), "--outcomes", str(outcomes_file),
        ]
        if checks:
            command += ["--checks", ",".join(sorted(checks))]
        if seed is not None:
            command += ["--seed", str(seed)]
        command += list(extra)
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
        row = MatrixRow(device.stem, seed, wall_s=time.perf_counter() - started)
        if outcomes_file.exists():
            for line in outcomes_file.read_text().splitlines():
                record = json.loads(line)
                row.outcomes.append(Outcome(record["check"], record["level"], record["outcome"], record["test"],
                                            record.get("reason", "")))
        return row


def defect_path(name: str) -> Path:
    return DEFECTS / f"{name}.yaml"


def run_matrix(defects: Iterable[str], seeds: Iterable[int] = (1,), workers: int = 2) -> list[MatrixRow]:
    """Every named defect and the reference meter (each seed) through every check, `workers` at a time."""
    jobs = [(REFERENCE, seed) for seed in seeds] + [(BARE_MODULE, None)]
    jobs += [(defect_path(name), None) for name in defects]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: run_checks(job[0], seed=job[1]), jobs))


def absent_checks(row: MatrixRow, expectation: Expectation | None) -> set[str]:
    """Expected failing checks the suites did not run at all (not written yet, or deselected)."""
    return set(expectation.fails) - {o.check for o in row.outcomes} if expectation else set()


def describe(row: MatrixRow) -> str:
    expectation = EXPECTED.get(row.device)
    unexpected, missing = row.unexpected(expectation)
    absent = absent_checks(row, expectation)
    verdict = "MISMATCH" if unexpected or missing else ("UNCHECKED" if absent else "ok")
    broken = {(o.check, o.level) for o in row.outcomes if o.outcome == "broken"}
    failing = ", ".join(sorted(f"{check}@{level or 'once'}" + (" (broken)" if (check, level) in broken else "")
                               for check, level in row.failing())) or "-"
    seed = f" seed {row.seed}" if row.seed is not None else ""
    text = f"{row.device + seed:<34} {verdict:<9} {row.wall_s:6.1f} s  fails: {failing}"
    if unexpected:
        text += f"\n{'':<34} unexpected: {sorted(unexpected)}"
        reasons = {f"{o.check}@{o.level or 'once'}: {o.reason}" for o in row.outcomes
                   if (o.check, o.level) in unexpected and o.reason}
        text += "".join(f"\n{'':<34}   {reason[:300]}" for reason in sorted(reasons))
    if missing:
        text += f"\n{'':<34} should fail but did not: {sorted(missing)}"
    if absent:
        text += f"\n{'':<34} no such check in the suites yet: {sorted(absent)}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rig.matrix", description=__doc__)
    parser.add_argument("--defects", default=None, help="comma-separated defect names (default: all)")
    parser.add_argument("--seeds", default="1,2", help="seeds of the reference meter")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    names = args.defects.split(",") if args.defects else sorted(EXPECTED)
    started = time.perf_counter()
    rows = run_matrix(names, [int(s) for s in args.seeds.split(",")], args.workers)
    for row in rows:
        print(describe(row))
    mismatches = [row for row in rows if any(row.unexpected(EXPECTED.get(row.device)))]
    print(f"\n{len(rows)} devices, {len(mismatches)} mismatches, wall time {time.perf_counter() - started:.1f} s")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
