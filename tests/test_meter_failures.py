"""C1, C7, C8, C9, C10 and C11 through the real ports: the reference meter passes, each defect fails its check.

Every verdict comes from what a hardware bench has too: the AT monitor's transcript (the MCU's commands,
the module's answers and banners, each with its bench time), the platform's receptions, and the module
rail (the analyser's second channel in series with the module's supply). Figures come from the default
plan (profiles/plans/white-paper-2018.yaml). Each defect profile is run through the same scenario as the
reference meter and fails exactly its own check: the other checks judged on its transcript still pass.
C7, C9, C10 and C11 are judged by rig/analysis/retry_flow.py, the readings their suites record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.analysis.at_transcript import (
    POWER_ON_CAUSE,
    attached_between,
    attempts,
    boots,
    commands,
    config_reboot,
    is_query,
)
from rig.analysis.rail import RailEdges
from rig.analysis.retry_flow import (
    Reading,
    answered_513,
    banner_cut_boundaries,
    c7_readings,
    c9_readings,
    c10_readings,
    c11_readings,
    exception_flow,
    failing,
    rail_cut_boundaries,
    retry_sequence,
)
from rig.bench import Bench
from rig.codec import Codec, load_codec
from rig.instruments.power import N6705CPowerAnalyser
from rig.meter_session import MeterSession
from rig.monitor import MCU, MODULE, MonitorLine
from rig.platform.server import Uplink
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model
from rig.profiles.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
REFERENCE = ROOT / "profiles" / "devices" / "reference-meter.yaml"
DEFECTS = ROOT / "profiles" / "devices" / "defects"
PLAN = load_plan(ROOT / "profiles" / "plans" / "white-paper-2018.yaml")

NO_COVERAGE_DB = 95.0
SERVING = 1
STAGGER_S = 17445.0  # the reference meter's first attach waits its report stagger after power-on
RAIL_LOG_PERIOD_S = 1.0


# ---- judges: problems keyed by the part of the check that failed (empty = pass) -----------------------


def judge_c1(lines: list[MonitorLine], allow: list[str]) -> tuple[str | None, dict[str, str]]:
    """The firmware `AT+CGMR` shows on the monitor (its SSB line), against the plan's allow-list."""
    for command in commands(lines):
        if command.text.upper() != "AT+CGMR":
            continue
        reply = next((line for line in lines[command.index + 1:] if line.sender == MODULE
                      and line.text.startswith("SSB,")), None)
        if reply is not None:
            version = reply.text.removeprefix("SSB,")
            return version, {} if version in allow else {"version": f"{version} is not in {allow}"}
    return None, {"version": "no AT+CGMR answered with an SSB line"}


def judge_c8(lines: list[MonitorLine], cuts_s: list[float], guard_min_s: float
             ) -> tuple[float | None, dict[str, str]]:
    """Module power-on banner to the MCU's first give-up: AT+NRB, AT+CFUN=0 or a module power cut."""
    banner = next(iter(boots(lines, POWER_ON_CAUSE)), None)
    if banner is None:
        return None, {"power-on": "no power-on boot banner on the monitor"}
    candidates = [line.time_s for line in commands(lines, banner.index)
                  if line.text.upper() == "AT+CFUN=0"
                  or (line.text.upper() == "AT+NRB" and not config_reboot(lines, line))][:1]
    candidates += [cut_s for cut_s in cuts_s if cut_s >= banner.time_s][:1]
    if not candidates:
        return None, {}
    guard = min(candidates) - banner.time_s
    return guard, {} if guard >= guard_min_s else {"guard": f"gave up {guard:.1f} s after power-on"}


# ---- scenarios -----------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one scenario left behind: the monitor transcript, the platform's receptions, the module rail."""

    device: DeviceProfile
    codec: Codec
    power_on_s: float
    lines: list[MonitorLine]
    uplinks: list[Uplink]
    swallowed: list[Uplink]
    cuts_s: list[float] = field(default_factory=list)  # module rail cuts, each at its earliest time
    marks: dict[str, float] = field(default_factory=dict)


def defect(name: str) -> Path:
    return DEFECTS / f"{name}.yaml"


def serving_attenuation_db(bench: BenchProfile, level: str) -> float:
    """The attenuation putting the serving cell at the plan's target RSRP for `level`, open loop from the
    bench calibration (RSRP = RS power - path loss - installation loss - attenuation). No interferer: SINR
    stays high, so the level holds by RSRP alone."""
    cell = next(c for c in bench.rf.cells if c.attenuator_channel == SERVING)
    loss = bench.instruments.attenuator.path_loss_db[SERVING] + bench.twin.installation_loss_db
    return cell.rs_power_dbm - loss - getattr(PLAN.coverage.targets, level).rsrp_dbm


class Scenarios:
    """Each scenario runs once per device profile (module scope) and is judged by several tests."""

    def __init__(self, bench_path: Path):
        self.bench_path = bench_path
        self.cache: dict[tuple[str, Path, str], Run] = {}

    def get(self, scenario: str, device_path: Path, level: str = "CE0") -> Run:
        """`level`: where the serving cell is put when the scenario gives coverage (the plan's target RSRP)."""
        key = (scenario, device_path, level)
        if key not in self.cache:
            self.cache[key] = self._run(getattr(self, f"_{scenario}"), device_path, level)
        return self.cache[key]

    def _run(self, body: Callable[[Bench, MeterSession, dict], list], device_path: Path, level: str) -> Run:
        device = load_model(device_path, DeviceProfile)
        with Bench(load_model(self.bench_path, BenchProfile), self.bench_path, device_path=device_path) as bench, \
                MeterSession(bench, device) as meter:
            bench.attenuator.set_all(NO_COVERAGE_DB)
            marks: dict[str, float] = {"serving_db": serving_attenuation_db(bench.profile, level)}
            power_on_s = bench.clock.now()
            cuts = body(bench, meter, marks)
            return Run(device, meter.codec, power_on_s, list(meter.monitor.lines), list(meter.platform.uplinks),
                       list(meter.platform.swallowed), cuts, marks)

    @staticmethod
    def _retry(bench: Bench, meter: MeterSession, marks: dict) -> list:
        """C7: the meter attaches, then the platform swallows the next 3 uplinks (its first report's)."""
        bench.attenuator.set_attenuation(SERVING, marks["serving_db"])
        meter.power_on()
        bench.clock.sleep(STAGGER_S + 600)
        marks["swallow"] = bench.clock.now()
        meter.platform.swallow_next_uplinks(3)
        bench.clock.sleep(42000)  # report at about 05:50 local, + 300 + 3600 + 8 h + detection
        return []

    @staticmethod
    def _cme513(bench: Bench, meter: MeterSession, marks: dict) -> list:
        """C9/C10: the platform registers the meter but never observes it, so every send gets 513."""
        bench.attenuator.set_attenuation(SERVING, marks["serving_db"])
        meter.platform.withhold_observe = True
        meter.power_on()
        bench.clock.sleep(25000)  # the first report (about 05:50 local) and its whole 513 handling
        return []

    @staticmethod
    def _no_coverage(bench: Bench, meter: MeterSession, marks: dict) -> list:
        """C8/C11: no coverage from power-on through two give-ups, then cell 1 back at CE0 for a day."""
        channel = bench.profile.instruments.supply.module_rail_channel
        rail = N6705CPowerAnalyser(bench.supply.transport, bench.clock, channel)  # shares the analyser's session
        meter.power_on()
        edges = RailEdges()
        for chunk in rail.data_log(RAIL_LOG_PERIOD_S, 22000.0):
            edges.feed(chunk)
        marks["restore"] = bench.clock.now()
        bench.attenuator.set_attenuation(SERVING, marks["serving_db"])
        bench.clock.sleep(PLAN.checks.C8.attach_within_s)
        return edges.falls_s


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Scenarios:
    """The simulated bench with its module rail on the analyser's second output."""
    path = tmp_path_factory.mktemp("bench") / "sim-with-module-rail.yaml"
    path.write_text(f"extends: {SIM_BENCH}\ninstruments:\n  supply:\n    module_rail_channel: 2\n")
    return Scenarios(path)


def detection_max_s(run: Run) -> float:
    return run.device.failure_detection_max_s


def c7(run: Run) -> list[Reading]:
    sequence = retry_sequence(run.lines, run.codec, len(PLAN.checks.C7.retry_waits_s) + 1)
    return c7_readings(sequence, run.uplinks, PLAN.checks.C7, detection_max_s(run))


def c9(run: Run) -> set[str]:
    return failing(c9_readings(run.lines, answered_513(run.lines, run.codec), PLAN.checks.C9))


def c10(run: Run) -> set[str]:
    errors = answered_513(run.lines, run.codec)
    steps = exception_flow(run.lines, errors[-1].index) if errors else []
    return failing(c10_readings(steps, PLAN.checks.C10))


def c11_unclean(run: Run, boundaries: list[int]) -> int:
    """How many cuts came without AT+CFUN=0 answered OK."""
    unclean = next(r for r in c11_readings(run.lines, boundaries, "test") if r.name.startswith("cuts_without"))
    return int(unclean.value)


def c8_c11(run: Run) -> tuple[float | None, dict[str, str], int, int]:
    """C8's guard and problems, and C11's unclean cuts by power-on banner and by module rail."""
    guard, c8 = judge_c8(run.lines, run.cuts_s, PLAN.checks.C8.guard_min_s)
    by_banner = c11_unclean(run, banner_cut_boundaries(run.lines))
    by_rail = c11_unclean(run, rail_cut_boundaries(run.lines, run.cuts_s, RAIL_LOG_PERIOD_S))
    return guard, c8, by_banner, by_rail


# ---- the attempts helper on a hand-made transcript -----------------------------------------------------


def test_attempts_helper_reads_sends_answers_and_kinds():
    codec = load_codec("reference")
    report = codec.encode_uplink({"type": "alarm", "meter_number": 1, "time_s": 0, "alarm": "magnetic", "value": 1})
    texts = [
        (MCU, f"AT+QLWULDATAEX={len(report)},{report.hex().upper()},0x0100"), (MODULE, "+CME ERROR: 513"),
        (MCU, "AT+NUESTATS"), (MODULE, "ECL:0"), (MODULE, "OK"),
        (MCU, f"AT+NMGS={len(report)},{report.hex()}"), (MODULE, "+CSCON:1"), (MODULE, "OK"),
        (MCU, "AT+NMGS=2,FFFF"), (MCU, "AT+NRB"), (MODULE, "REBOOTING"),
    ]
    lines = [MonitorLine(i, 10.0 * i, sender, text) for i, (sender, text) in enumerate(texts)]
    alarms = attempts(lines, codec, ("alarm",))
    assert [(a.time_s, a.answer, a.answer_s, a.kind) for a in alarms] == [
        (0.0, "+CME ERROR: 513", 10.0, "alarm"), (50.0, "OK", 70.0, "alarm")]
    assert [(a.index, a.kind, a.answer) for a in attempts(lines, codec, ())] == [
        (0, "alarm", "+CME ERROR: 513"), (5, "alarm", "OK"), (8, None, None)]
    assert attempts(lines, codec) == []
    assert [c.text for c in commands(lines) if not is_query(c.text)][-1] == "AT+NRB"


# ---- C1 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["retry", "cme513", "no_coverage"])
def test_c1_reference_meter_shows_power_optimised_firmware(scenarios: Scenarios, scenario: str):
    run = scenarios.get(scenario, REFERENCE)
    version, problems = judge_c1(run.lines, PLAN.checks.C1.firmware_allow_list)
    assert (version, problems) == ("V150R100C10B200SP1", {})


def test_c1_old_firmware_fails_only_c1(scenarios: Scenarios):
    run = scenarios.get("no_coverage", defect("c1-old-firmware"))
    version, problems = judge_c1(run.lines, PLAN.checks.C1.firmware_allow_list)
    assert version == "V100R100C10B657SP1"
    assert set(problems) == {"version"}
    guard, c8, by_banner, by_rail = c8_c11(run)
    assert (c8, by_banner, by_rail) == ({}, 0, 0)


# ---- C7 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", list(dict.fromkeys(["CE0", PLAN.behaviour_level, *PLAN.checks.C7.extra_levels])))
def test_c7_reference_meter_retries_5_min_1_h_then_resets_after_8_h(scenarios: Scenarios, level: str):
    run = scenarios.get("retry", REFERENCE, level)
    found = attempts(run.lines, run.codec)
    assert len(run.swallowed) == 3 and all(u.message["type"] == "basic_report" for u in run.swallowed)
    readings = c7(run)
    assert failing(readings) == set()
    values = {r.name: r.value for r in readings}
    assert values["attempt_after_reset_delivered"] == "yes" and values["module_resets"] == 1
    gaps = [b.time_s - a.time_s for a, b in zip(found, found[1:4], strict=False)]
    assert 300 < gaps[0] < 300 + detection_max_s(run) and 3600 < gaps[1] < 3600 + detection_max_s(run)
    assert [values["retry_1_gap_s"], values["retry_2_gap_s"]] == [round(gap, 1) for gap in gaps[:2]]
    assert found[0].time_s > run.marks["swallow"]
    reset = [c for c in commands(run.lines, found[2].index, found[3].index) if c.text == "AT+NRB"]
    assert len(reset) == 1 and 28800 <= reset[0].time_s - found[2].time_s <= 28800 + detection_max_s(run)
    assert values["wait_after_last_failure_s"] == round(reset[0].time_s - found[2].time_s, 1)
    assert all(0 < values[f"failure_{n}_seen_after_s"] <= detection_max_s(run) for n in (1, 2, 3))
    assert [u.message["type"] for u in run.uplinks][:1] == ["basic_report"]


def test_c7_retry_5_5_5_fails_the_hour_and_the_long_wait(scenarios: Scenarios):
    run = scenarios.get("retry", defect("c7-retry-5-5-5"))
    assert failing(c7(run)) == {"retry_2_gap_s", "wait_after_last_failure_s"}
    found = attempts(run.lines, run.codec)
    gaps = [b.time_s - a.time_s for a, b in zip(found, found[1:3], strict=False)]
    assert all(300 <= gap <= 300 + detection_max_s(run) for gap in gaps)


def test_c7_no_reset_fails_only_the_reset(scenarios: Scenarios):
    run = scenarios.get("retry", defect("c7-no-reset"))
    assert failing(c7(run)) == {"module_resets"}
    found = attempts(run.lines, run.codec)
    assert not any(c.text == "AT+NRB" for c in commands(run.lines, found[0].index))


# ---- C9 / C10 ------------------------------------------------------------------------------------------


def test_c9_c10_reference_meter_retries_after_513_then_runs_the_exception_flow(scenarios: Scenarios):
    run = scenarios.get("cme513", REFERENCE)
    assert c9(run) == set() and c10(run) == set()
    errors = answered_513(run.lines, run.codec)
    assert len(errors) == 1 + len(PLAN.checks.C9.waits_s)
    steps = [getattr(step, "text", step) for step in exception_flow(run.lines, errors[-1].index)]
    assert steps == ["AT+NRB", "AT+CFUN=0", "AT+NCSEARFCN", "AT+NRB"]
    assert not any(u.message and u.message.get("type") == "basic_report" for u in run.uplinks)


def test_c9_no_retry_after_513_fails_only_c9(scenarios: Scenarios):
    run = scenarios.get("cme513", defect("c9-no-retry-after-513"))
    assert c9(run) == {"wait_after_513_1_s", "wait_after_513_2_s", "wait_after_513_3_s"}
    assert c10(run) == set()


def test_c10_flow_without_ncsearfcn_fails_only_c10(scenarios: Scenarios):
    run = scenarios.get("cme513", defect("c10-flow-without-ncsearfcn"))
    assert c9(run) == set()
    assert c10(run) == {"exception_flow_steps_in_order"}


# ---- C8 / C11 ------------------------------------------------------------------------------------------


def reported_after_restore(run: Run) -> bool:
    restore, within = run.marks["restore"], PLAN.checks.C8.attach_within_s
    return any(u.message and u.message.get("type") == "basic_report" and restore < u.time_s <= restore + within
               for u in run.uplinks)


def test_c8_c11_reference_meter_guards_5_min_and_sends_cfun0_before_each_cut(scenarios: Scenarios):
    run = scenarios.get("no_coverage", REFERENCE)
    guard, c8, by_banner, by_rail = c8_c11(run)
    assert c8 == {} and guard is not None and guard >= PLAN.checks.C8.guard_min_s
    assert guard <= PLAN.checks.C8.guard_min_s + 10  # it gives up (and cuts) soon after the guard
    assert len(run.cuts_s) == 2 and len(banner_cut_boundaries(run.lines)) == 2
    assert by_banner == by_rail == 0
    restore = next(i for i, line in enumerate(run.lines) if line.time_s > run.marks["restore"])
    assert attached_between(run.lines, restore, len(run.lines))
    assert reported_after_restore(run)


def test_c8_gives_up_after_180s_fails_only_c8(scenarios: Scenarios):
    run = scenarios.get("no_coverage", defect("c8-gives-up-after-180s"))
    guard, c8, by_banner, by_rail = c8_c11(run)
    assert set(c8) == {"guard"} and guard is not None and 180 <= guard < 190
    assert by_banner == by_rail == 0
    assert reported_after_restore(run)


def test_c11_no_cfun0_before_power_off_fails_only_c11(scenarios: Scenarios):
    run = scenarios.get("no_coverage", defect("c11-no-cfun0-before-power-off"))
    guard, c8, by_banner, by_rail = c8_c11(run)
    assert c8 == {} and guard is not None and guard >= PLAN.checks.C8.guard_min_s
    assert by_banner == by_rail == 2
    assert not any(c.text == "AT+CFUN=0" for c in commands(run.lines))
    assert reported_after_restore(run)
