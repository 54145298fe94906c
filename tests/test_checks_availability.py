"""C8, C21a, C21b and C22 through the suites as a user runs them: the reference meter passes (or skips with
the reason), the bare module passes C21b, and each defect fails its own check; plus the checks' readers
(give-up on the monitor, burst starts streamed over chunks, the Wilson interval) on hand-made data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rig.analysis.at_transcript import POWER_ON_CAUSE, says_attached
from rig.analysis.rail import RailEdges
from rig.instruments.power import DataLogChunk
from rig.monitor import MCU, MODULE, MonitorLine
from suites.test_attach_guard import first_give_up, silent_cut
from suites.test_report_success import wilson_interval
from suites.test_storage_and_search import BurstStarts

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ROOT / "profiles" / "devices"
DEFECTS = DEVICES / "defects"
CHECKS = "C8,C21a,C21b,C22"
RUN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Case:
    device: str  # a profile path, or "bare-module-searches-every-60s" (written into tmp)
    checks: str


CASES = {
    "reference": Case(str(DEVICES / "reference-meter.yaml"), CHECKS),
    "bare_module": Case(str(DEVICES / "bare-module.yaml"), CHECKS),
    "c8_gives_up_after_180s": Case(str(DEFECTS / "c8-gives-up-after-180s.yaml"), "C8"),
    "c21_no_storage_mode": Case(str(DEFECTS / "c21-no-storage-mode.yaml"), "C21a"),
    "c21_searches_every_60s": Case("bare-module-searches-every-60s", "C21b"),
    "c22_tx_power_12db_low": Case(str(DEFECTS / "c22-tx-power-12db-low.yaml"), "C22"),
    "c5_mcu_never_sleeps": Case(str(DEFECTS / "c5-mcu-never-sleeps.yaml"), "C21a"),
}


@dataclass(frozen=True)
class Run:
    """One pytest run of the suites: the outcome records and pytest's own summary (skip reasons)."""

    records: list[dict]
    output: str

    def outcomes(self, check: str) -> dict[str | None, list[str]]:
        found: dict[str | None, list[str]] = {}
        for record in self.records:
            if record["check"] == check:
                found.setdefault(record["level"], []).append(record["outcome"])
        return found


def run_suites(device: Path, checks: str, scratch: Path) -> Run:
    outcomes = scratch / "o.jsonl"
    command = [sys.executable, "-m", "pytest", "suites", "-o", "testpaths=suites", "--checks", checks,
               "--device", str(device), "--outcomes", str(outcomes), "-p", "no:cacheprovider", "-q", "-rs"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    records = [json.loads(line) for line in outcomes.read_text().splitlines()] if outcomes.exists() else []
    return Run(records, done.stdout + done.stderr)


def device_path(case: Case, scratch: Path) -> Path:
    if case.device != "bare-module-searches-every-60s":
        return Path(case.device)
    path = scratch / "bare-module-searches-every-60s.yaml"
    path.write_text(f"extends: {DEVICES / 'bare-module.yaml'}\nname: bare-module-searches-every-60s\n"
                    "sim: {module: {search_fixed_interval_s: 60}}\n")
    return path


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Every case a selected test of this module needs, run side by side once."""
    wanted = {item.originalname.removeprefix("test_") for item in request.session.items
              if item.module is request.module}
    workers = max(1, min(4, os.cpu_count() or 1))
    futures: dict[str, Future] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for name, case in CASES.items():
            if name in wanted:
                scratch = tmp_path_factory.mktemp(name)
                futures[name] = pool.submit(run_suites, device_path(case, scratch), case.checks, scratch)
        yield {name: future.result() for name, future in futures.items()}


OTHER_KIND = ("the device is a", "this check applies to meters")  # n/a: a variant for the other device kind


def single(run: Run, check: str) -> str:
    """The one outcome a level-free check had that is not the n/a of a test meant for the other device kind."""
    records = [r for r in run.records if r["check"] == check]
    assert records, f"no outcome for {check}:\n{run.output}"
    judged = [r["outcome"] for r in records if r["outcome"] != "skipped"
              and not (r["outcome"] == "n/a" and r.get("reason", "").startswith(OTHER_KIND))]
    return judged[0] if len(judged) == 1 else "skipped" if not judged else f"several: {judged}"


def test_reference(runs) -> None:
    run = runs["reference"]
    assert "broken" not in str(run.records) and "failed" not in str(run.records), run.output
    assert single(run, "C8") == "passed"
    assert single(run, "C21a") == "passed"
    c21b = [record for record in run.records if record["check"] == "C21b" and record["outcome"] == "n/a"
            and not record["reason"].startswith(OTHER_KIND)]
    assert single(run, "C21b") == "n/a" and len(c21b) == 1, run.output  # a recorded outcome, with its reason
    assert c21b[0]["reason"].startswith("the MCU powers the module off")
    assert "NotApplicable: the MCU powers the module off" in run.output
    assert run.outcomes("C22") == {"CE0": ["passed"], "CE1": ["passed"], "CE2": ["passed"]}


def test_bare_module(runs) -> None:
    run = runs["bare_module"]
    assert single(run, "C21b") == "passed", run.output
    for check in ("C8", "C21a", "C22"):
        assert {o for level in run.outcomes(check).values() for o in level} <= {"skipped", "n/a"}, run.output
    assert "lacks 'monitor'" in run.output or "applies to meters" in run.output


def test_c8_gives_up_after_180s(runs) -> None:
    run = runs["c8_gives_up_after_180s"]
    assert single(run, "C8") == "failed", run.output
    assert "attach_guard_s = 181" in run.output


def test_c21_no_storage_mode(runs) -> None:
    run = runs["c21_no_storage_mode"]
    assert single(run, "C21a") == "failed", run.output
    assert "STORAGE ON refused" in run.output


def test_c21_searches_every_60s(runs) -> None:
    run = runs["c21_searches_every_60s"]
    assert single(run, "C21b") == "failed", run.output
    assert "interval_2_s = 60 s" in run.output


def test_c22_tx_power_12db_low(runs) -> None:
    run = runs["c22_tx_power_12db_low"]
    assert run.outcomes("C22") == {"CE0": ["passed"], "CE1": ["passed"], "CE2": ["failed"]}, run.output


def test_c5_mcu_never_sleeps(runs) -> None:
    run = runs["c5_mcu_never_sleeps"]
    assert single(run, "C21a") == "failed", run.output
    assert "average_ua = 300 uA" in run.output


# ---- the readers on hand-made data ---------------------------------------------------------------------


def lines_of(texts: list[tuple[float, str, str]]) -> list[MonitorLine]:
    return [MonitorLine(i, time_s, sender, text) for i, (time_s, sender, text) in enumerate(texts)]


def test_first_give_up_skips_the_reboot_that_applies_a_configuration() -> None:
    """The reference meter's first boot: `AT+NCONFIG=...` then `AT+NRB` is configuration, not a give-up."""
    lines = lines_of([(0, MODULE, POWER_ON_CAUSE), (1, MCU, "AT+NCONFIG?"),
                      (2, MCU, "AT+NCONFIG=CELL_RESELECTION,TRUE"), (3, MCU, "AT+CGMR"), (4, MCU, "AT+NRB"),
                      (5, MCU, "AT+CGATT?"), (300, MCU, "AT+NRB")])
    assert first_give_up(lines, 0).time_s == 300
    assert first_give_up(lines[:6], 0) is None
    assert first_give_up(lines_of([(0, MCU, "AT+CGATT?"), (180, MCU, "AT+CFUN=0")]), 0).time_s == 180


def test_a_silent_cut_is_known_between_the_mcus_last_line_and_the_next_power_on() -> None:
    lines = lines_of([(0, MODULE, POWER_ON_CAUSE), (290, MCU, "AT+CGATT?"), (290, MODULE, "+CGATT:0"),
                      (3900, MODULE, "Boot: Unsigned"), (3900, MODULE, POWER_ON_CAUSE)])
    assert silent_cut(lines, lines[0]) == (290, 3900)
    assert silent_cut(lines[:3], lines[0]) is None


def chunk(start_s: float, means_a: list[float]) -> DataLogChunk:
    values = np.array(means_a)
    return DataLogChunk(start_s, 1.0, values, values, values)


def test_burst_starts_and_rail_edges_stream_across_chunk_boundaries() -> None:
    bursts, rail = BurstStarts(threshold_a=5e-3), RailEdges()
    for piece in (chunk(0, [0.05, 0.05, 3e-6]), chunk(3, [3e-6, 0.05]), chunk(5, [0.05, 0.0, 0.0])):
        bursts.feed(piece)
        rail.feed(piece)
    assert bursts.starts_s == [0.0, 4.0]
    assert (rail.rises_s, rail.falls_s) == ([0.0], [5.0])
    assert all(type(t) is float for t in bursts.starts_s + rail.rises_s + rail.falls_s)


def test_wilson_interval_of_300_out_of_300_and_of_270_out_of_300() -> None:
    assert wilson_interval(300, 300, 0.95) == pytest.approx((0.98735, 1.0), abs=1e-5)
    low, high = wilson_interval(270, 300, 0.95)
    assert low == pytest.approx(0.8609, abs=1e-4) and high == pytest.approx(0.9291, abs=1e-4)  # by hand
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)


@pytest.mark.parametrize(("text", "attached"), [
    ("+CGATT:1", True), ("+CGATT:0", False), ("+CEREG:1", True), ("+CEREG:2", False), ("+CEREG:5", True),
    ("+CEREG:1,2", False), ("+CEREG:0,1", True), ("+CEREG:2,1,0001,077A1E52,9", True),
    ("+CEREG:1,0001,077A1E52,9", True), ('+CEREG:2,"0001","077A1E52",9', False), ("+CEREG:0,2", False),
])
def test_attached_is_read_from_cgatt_and_both_cereg_forms(text: str, attached: bool) -> None:
    assert says_attached(text) is attached
