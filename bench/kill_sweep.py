"""The random-kill sweep: `rig certify` stopped at random moments (Ctrl-C to its process group, SIGTERM, SIGKILL),
then resumed; nothing may outlive it and nothing it recorded may be lost.

For each kill it checks: no twin the run launched is left (the process table: `--tied <rig pid>` in a
command line), none of their listening sockets is left (/proc/net/tcp, by socket inode), every line of
outcomes.jsonl and measurements.csv written before the kill is intact, Ctrl-C and SIGTERM end with exit 3
and an INCOMPLETE certificate, and `--resume` then gives every test the outcome an uninterrupted run gives.

    .venv/bin/python bench/kill_sweep.py [--kills 30] [--seed 1] [--checks C1,C16]

Prints its wall time and a table (kills, results lost, orphans left: zeros are promised).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 300.0
ORPHAN_GRACE_S = 3.0  # a tied twin stops within this once its rig is gone
SIGNALS = {"ctrl-c": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}


def twins_of(rig_pid: int) -> list[int]:
    """The live twins launched by the rig in process `rig_pid` (their command line says `--tied <pid>`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"rig.sim" in words and b"--tied" in words and state != "Z":
            tied = words[words.index(b"--tied") + 1] if words.index(b"--tied") + 1 < len(words) else b""
            if tied == str(rig_pid).encode():
                found.append(int(entry.name))
    return found


def socket_inodes(pid: int) -> set[str]:
    """The socket inodes a process holds open."""
    inodes = set()
    try:
        for fd in (Path("/proc") / str(pid) / "fd").iterdir():
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
            if match:
                inodes.add(match.group(1))
    except OSError:
        pass
    return inodes


def listening_inodes() -> set[str]:
    """The inodes of every listening TCP socket on the machine."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def complete_lines(path: Path) -> list[str]:
    """The lines of a file that have their line end (a kill may cut the last one)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


def outcome_map(run: Path) -> dict[str, str]:
    """test -> outcome (the worst is not needed here: a test has one call outcome, a teardown may add one)."""
    result: dict[str, str] = {}
    for line in complete_lines(run / "outcomes.jsonl"):
        record = json.loads(line)
        result.setdefault(record["test"], record["outcome"])
    return result


@dataclass
class KillResult:
    """What one kill left behind."""

    how: str
    delay_s: float
    exit_code: int
    twins_seen: int
    orphans: int = 0
    sockets_left: int = 0
    lost: list[str] = field(default_factory=list)


def certify(results: Path, extra: list[str]) -> subprocess.Popen:
    """`rig certify` in its own process group, as a shell starts a foreground job."""
    return subprocess.Popen([sys.executable, "-m", "rig", "certify", "--results", str(results), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def run_dir(results: Path) -> Path | None:
    runs = [path for path in results.iterdir() if path.is_dir() and not path.is_symlink()] if results.exists() else []
    return runs[0] if runs else None


def kill_once(results: Path, checks: str, how: str, delay_s: float, after_first_twin: bool = False) -> KillResult:
    """Start a run, kill it `delay_s` in (counted from its first twin's start with `after_first_twin`), and look
    at what is left."""
    process = certify(results, ["--", "--checks", checks])
    twins: set[int] = set()
    inodes: set[str] = set()
    written: list[str] = []
    measured: list[str] = []
    deadline = time.monotonic() + (RUN_TIMEOUT_S if after_first_twin else delay_s)
    while time.monotonic() < deadline and process.poll() is None:
        for pid in twins_of(process.pid):
            if not twins and after_first_twin:
                deadline = time.monotonic() + delay_s
            twins.add(pid)
            inodes |= socket_inodes(pid)
        run = run_dir(results)
        if run is not None:
            written, measured = complete_lines(run / "outcomes.jsonl"), complete_lines(run / "measurements.csv")
        time.sleep(0.02)
    if process.poll() is None:
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
        else:
            process.send_signal(SIGNALS[how])
    output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    result = KillResult(how, delay_s, process.returncode, len(twins))
    end = time.monotonic() + ORPHAN_GRACE_S
    while twins_of(process.pid) and time.monotonic() < end:
        time.sleep(0.05)
    result.orphans = len(twins_of(process.pid))
    result.sockets_left = len(inodes & listening_inodes())
    result.lost = lost_records(run_dir(results), written, measured)
    started = (run := run_dir(results)) is not None and (run / "run.json").exists()
    if how != "sigkill" and started:  # killed before the run existed, there is nothing to be incomplete
        if process.returncode != 3:
            result.lost.append(f"exit code {process.returncode}, not 3:\n{output[-2000:]}")
        certificate = run / "certificate.md"
        if not certificate.exists() or "INCOMPLETE" not in certificate.read_text():
            result.lost.append("no certificate saying INCOMPLETE")
    return result


def lost_records(run: Path | None, outcomes: list[str], measurements: list[str]) -> list[str]:
    """The outcome and measurement lines seen before the kill that are no longer there (measurements of a check
    in progress may have moved to measurements-interrupted.csv), and lines that do not parse."""
    if run is None:
        return []
    after = complete_lines(run / "outcomes.jsonl")
    lost = [f"outcome lost: {line}" for line in outcomes if line not in after]
    for line in after:
        json.loads(line)  # every complete line parses
    kept = set(complete_lines(run / "measurements.csv")) | set(complete_lines(run / "measurements-interrupted.csv"))
    lost += [f"measurement lost: {line}" for line in measurements if line not in kept]
    header = next(csv.reader(measurements[:1]), [])
    lost += [f"torn measurement: {row}" for row in csv.reader(complete_lines(run / "measurements.csv"))
             if len(row) != len(header) and header]
    return lost


def resume(run: Path, reference: dict[str, str]) -> list[str]:
    """Resume a killed run; what differs from the uninterrupted run's outcomes."""
    done = subprocess.run([sys.executable, "-m", "rig", "certify", "--resume", str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    outcomes = outcome_map(run)
    problems = [f"{test}: {outcomes.get(test, 'no outcome')} after resume, {outcome} uninterrupted"
                for test, outcome in reference.items() if outcomes.get(test) != outcome]
    lines = complete_lines(run / "outcomes.jsonl")
    tests = [json.loads(line)["test"] for line in lines]
    problems += [f"{test}: recorded twice" for test in set(tests) if tests.count(test) > 1]
    if done.returncode not in (0, 1, 3):
        problems.append(f"resume exited {done.returncode}:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return problems


def sweep(kills: int, seed: int, checks: str, show: bool = True) -> tuple[list[KillResult], float]:
    """`kills` runs killed at seeded random moments and resumed; the results and one uninterrupted run's time."""
    chance = random.Random(seed)
    rows: list[KillResult] = []
    with tempfile.TemporaryDirectory(prefix="kill-sweep-") as scratch:
        reference_results = Path(scratch) / "reference"
        started = time.monotonic()
        certify(reference_results, ["--", "--checks", checks]).communicate(timeout=RUN_TIMEOUT_S)
        run_s = time.monotonic() - started
        reference = outcome_map(run_dir(reference_results))
        for number in range(kills):
            how = chance.choice(list(SIGNALS))
            delay_s = round(chance.uniform(0.1, run_s), 2)
            results = Path(scratch) / f"kill-{number}"
            row = kill_once(results, checks, how, delay_s)
            run = run_dir(results)
            if run is not None and (run / "run.json").exists():
                row.lost += resume(run, reference)
            rows.append(row)
            if show:
                print(f"kill {number + 1:>3}: {how:<8} at {delay_s:5.2f} s  exit {row.exit_code:>3}  "
                      f"twins {row.twins_seen}  orphans {row.orphans}  sockets {row.sockets_left}  "
                      f"lost {len(row.lost)}", flush=True)
                for problem in row.lost:
                    print(f"      {problem}")
    return rows, run_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments and signals")
    parser.add_argument("--checks", default="C1,C16", help="the selection each killed run makes")
    args = parser.parse_args(argv)
    began = time.monotonic()
    rows, run_s = sweep(args.kills, args.seed, args.checks)
    print()
    print(f"{'kills':<28}{len(rows)}")
    for how in SIGNALS:
        print(f"{'  ' + how:<28}{sum(row.how == how for row in rows)}")
    print(f"{'results lost (must be 0)':<28}{sum(len(row.lost) for row in rows)}")
    print(f"{'orphans left (must be 0)':<28}{sum(row.orphans for row in rows)}")
    print(f"{'sockets left (must be 0)':<28}{sum(row.sockets_left for row in rows)}")
    print(f"wall time {time.monotonic() - began:.1f} s (one uninterrupted run {run_s:.1f} s)")
    clean = all(not row.lost and not row.orphans and not row.sockets_left for row in rows)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
