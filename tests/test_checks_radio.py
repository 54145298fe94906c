"""The radio checks (C2a, C2b, C2c, C12 in suites/) run as a user runs them, on the simulated bench: the
reference meter passes all four, the bare module passes the ones that apply to it, and each C2/C12 defect
fails exactly its own checks (PROCEDURES "Defects the twin must offer").

One deviation from PROCEDURES' defect table, on purpose: a meter that locks its module to the first
EARFCN (c2-earfcn-locked) cannot reselect to a stronger cell on another EARFCN either, so it fails C2a's
other-EARFCN case as well as C2b (CHECKLIST C2: "works intra- and inter-frequency").
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ROOT / "profiles" / "devices"
CHECKS = ("C2a", "C2b", "C2c", "C12")
RUN_TIMEOUT_S = 300.0
WORKERS = 2  # each run is a rig process and a twin in lockstep: about one core

CASES: dict[str, tuple[Path, set[str]]] = {
    "reference-meter": (DEVICES / "reference-meter.yaml", set()),
    "c2-reselection-off-at-boot": (DEVICES / "defects" / "c2-reselection-off-at-boot.yaml", {"C2a", "C2c"}),
    "c2-earfcn-locked": (DEVICES / "defects" / "c2-earfcn-locked.yaml", {"C2a", "C2b"}),
    "c2-ignores-platform-switch": (DEVICES / "defects" / "c2-ignores-platform-switch.yaml", {"C2c"}),
    "c12-no-network-quality": (DEVICES / "defects" / "c12-no-network-quality.yaml", {"C12"}),
    "c12-rsrp-frozen": (DEVICES / "defects" / "c12-rsrp-frozen.yaml", {"C12"}),
    "bare-module": (DEVICES / "bare-module.yaml", set()),
}
METER_ONLY = {"C2c"}


def run_radio_checks(device: Path, tmp_path: Path) -> tuple[dict[str, list[dict]], str]:
    """The suites' outcomes for `device`, grouped by check, and pytest's output (for a failure message)."""
    outcomes = tmp_path / "o.jsonl"
    command = [sys.executable, "-m", "pytest", "suites", "-o", "testpaths=suites", "--checks", ",".join(CHECKS),
               "--device", str(device), "--outcomes", str(outcomes), "-p", "no:cacheprovider", "-q"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    by_check: dict[str, list[dict]] = defaultdict(list)
    if outcomes.exists():
        for line in outcomes.read_text().splitlines():
            record = json.loads(line)
            by_check[record["check"]].append(record)
    return by_check, done.stdout[-4000:]


def failing(by_check: dict[str, list[dict]]) -> set[str]:
    return {check for check, records in by_check.items() if any(r["outcome"] in ("failed", "broken") for r in records)}


def judged(by_check: dict[str, list[dict]]) -> set[str]:
    """Checks with at least one outcome that is not a skip."""
    return {check for check, records in by_check.items() if any(r["outcome"] != "skipped" for r in records)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, list[dict]], str]]:
    """Every case through the four checks, WORKERS at a time (each in its own pytest and twins)."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(run_radio_checks, device, tmp_path_factory.mktemp(name))
                   for name, (device, _) in CASES.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_radio_checks_fail_exactly_where_the_device_is_wrong(name: str, runs) -> None:
    device, expected = CASES[name]
    by_check, output = runs[name]
    applies = set(CHECKS) - METER_ONLY if name == "bare-module" else set(CHECKS)
    assert judged(by_check) == applies, f"not every radio check that applies gave a verdict:\n{output}"
    assert not any(r["outcome"] == "broken" for records in by_check.values() for r in records), output
    assert failing(by_check) == expected, output
    assert {r["level"] for r in by_check["C12"] if r["outcome"] != "skipped"} == {"CE0", "CE1", "CE2"}, \
        "C12 runs at every level of the plan"
