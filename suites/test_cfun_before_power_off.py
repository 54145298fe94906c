"""C11: whenever the MCU cuts its module's power it first sends `AT+CFUN=0` (the module saves its frequency
information), answered `OK` since the module's last boot or `AT+CFUN=1`.

The meter is led through every situation in which an MCU cuts its module: no coverage after power-on (the
give-ups after the attach guard), a normal report and the sleep after it (a meter may power the module off
instead of PSM), storage mode over the near-end port, and, woken by its trigger with the platform withholding
the observe, the `+CME ERROR: 513` retries and the exception flow (which may end in a power-off). A cut is
seen on the module rail where bench and meter have one, and always as a module power-on banner
(`REBOOT_CAUSE_SECURITY_PMU_POWER_ON_RESET`) after the supply's own. Without a rail a cut after the module's
last word shows only at its next power-on, so the check then waits (the plan's `module_heard_within_s`: the
next scheduled report) for the module's next word: a banner is a cut, judged with the others; any other word
means no cut since it last spoke; silence is inconclusive (skipped with the reason), never a pass. Each
witness's cuts are judged; a meter that never cuts its module passes with nothing to judge, which the record
says.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import allure
import pytest

from fixtures.checks import Recorder, module_rail
from fixtures.verdicts import inconclusive
from rig.analysis.at_transcript import POWER_ON_CAUSE
from rig.analysis.rail import RailEdges
from rig.analysis.retry_flow import (
    CME_513,
    Reading,
    annotated_excerpt,
    banner_cut_boundaries,
    c11_readings,
    clean_cut,
    failing,
    module_word_after,
    rail_cut_boundaries,
)
from rig.bench import Bench
from rig.coverage import CoverageCalculator
from rig.errors import RigFault
from rig.instruments.attenuator import MAX_DB
from rig.instruments.power import N6705CPowerAnalyser
from rig.maintenance import MaintenanceRefused
from rig.meter_session import MeterSession
from rig.monitor import MODULE, MonitorLine
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile

DAY_S = 86400.0
BOOT_WITHIN_S = 8 * 3600.0  # a meter powers its module after at most its power-on stagger
NO_COVERAGE_AFTER_GUARD_S = 2 * 3600.0  # ours: long enough for a give-up and a second search after it
FIRST_REPORT_WITHIN_S = 2 * DAY_S
AFTER_REPORT_S = 900.0  # the release, and a power-off in place of PSM after it
STORAGE_WATCH_S = 1800.0
WAKE_513_WITHIN_S = 3600.0  # the wake trigger to the woken report's first send
FLOW_WATCH_S = 3600.0  # the 513 retries (1 + 3 + 10 min) and the exception flow after them
RAIL_PERIOD_S = 1.0
RAIL_CHUNK_PERIODS = 900
CUT_CONTEXT_LINES = 8  # monitor lines shown before each cut
BANNER_WITNESS, RAIL_WITNESS = "power-on banner", "module rail"


class CutWatch:
    """Runs the bench clock until a condition, streaming the module rail's edges where there is a rail."""

    def __init__(self, bench: Bench, rail: N6705CPowerAnalyser | None):
        self.clock = bench.clock
        self.rail = rail
        self.edges = RailEdges()

    def until(self, done: Callable[[], object], timeout_s: float) -> bool:
        if self.rail is None:
            return self.clock.wait_until(done, timeout_s)
        for chunk in self.rail.data_log(RAIL_PERIOD_S, timeout_s, RAIL_CHUNK_PERIODS):
            self.edges.feed(chunk)
            if done():
                return True
        return bool(done())

    def hold(self, duration_s: float) -> None:
        self.until(lambda: False, duration_s)


def seen(meter: MeterSession, pattern: str, mark: int) -> Callable[[], bool]:
    regex = re.compile(pattern)
    return lambda: any(line.sender == MODULE and regex.search(line.text) for line in meter.monitor.lines[mark:])


def record(measure: Recorder, readings: list[Reading]) -> None:
    for reading in readings:
        measure(reading.name, reading.value, reading.unit, low=reading.low, high=reading.high, note=reading.note)


def cut_evidence(lines: list[MonitorLine], boundaries: list[int], witness: str, phases: list[tuple[float, str]]
                 ) -> str:
    """Before each cut: the monitor's last lines, the cut marked with its phase and verdict. A banner
    boundary is the power-on banner itself (the cut came after the MCU's last line before it)."""
    by_banner = witness == BANNER_WITNESS
    parts = []
    for number, boundary in enumerate(boundaries, start=1):
        last_mcu = next((line for line in reversed(lines[:boundary]) if line.sender != MODULE), None)
        phase = next((name for start_s, name in reversed(phases) if last_mcu is None or start_s <= last_mcu.time_s),
                     phases[0][1])
        verdict = "after AT+CFUN=0 answered OK" if clean_cut(lines, boundary) else "WITHOUT AT+CFUN=0 answered OK"
        marked = boundary if by_banner else boundary - 1
        if by_banner:
            notes = {marked: f"the module powered on again: cut {number} ({phase}) came before, {verdict}"}
        else:
            notes = {marked: f"cut {number} ({phase}) after this line, {verdict}"}
        parts.append(annotated_excerpt(lines, notes, max(boundary - CUT_CONTEXT_LINES, 0), marked + 1))
    return f"seen by the {witness}:\n" + ("\n\n".join(parts) or "no module power cut")


@pytest.mark.check("C11")
@pytest.mark.needs("attenuator", "power_analyser", "monitor")
def test_c11_meter_sends_cfun0_before_every_module_power_cut(meter: MeterSession, bench: Bench,
                                                             device_profile: DeviceProfile, plan: PlanProfile,
                                                             measure: Recorder) -> None:
    rail = module_rail(bench, device_profile)
    watch = CutWatch(bench, rail)
    clock, lines = bench.clock, meter.monitor.lines
    phases: list[tuple[float, str]] = []

    def phase(name: str) -> None:
        phases.append((clock.now(), name))

    bench.attenuator.set_all(MAX_DB)
    phase("no coverage after power-on")
    mark = meter.monitor.mark()
    meter.power_on()
    if not watch.until(seen(meter, f"^{POWER_ON_CAUSE}$", mark), BOOT_WITHIN_S):
        measure("module_power_on", "none", note=f"no power-on banner within {BOOT_WITHIN_S:.0f} s of power-on")
        pytest.fail("the meter never powered its module, so no cut could be watched")
    watch.hold(plan.checks.C8.guard_min_s + NO_COVERAGE_AFTER_GUARD_S)

    calculator = CoverageCalculator(bench.profile, plan)
    calculator.apply(bench.attenuator, calculator.setting(plan.behaviour_level))
    phase(f"reporting at {plan.behaviour_level}")
    uplinks = len(meter.platform.uplinks)
    if not watch.until(lambda: meter.platform.uplinks[uplinks:], FIRST_REPORT_WITHIN_S):
        measure("reported", "no", note=f"no uplink within {FIRST_REPORT_WITHIN_S:.0f} s of the cells' return")
    watch.hold(AFTER_REPORT_S)

    if not device_profile.parts.maintenance:
        measure("storage_mode", "not tested", note="the device profile declares no near-end port")
    else:
        phase("storage mode")
        try:
            meter.maintenance.storage_on()
        except MaintenanceRefused as refusal:
            measure("storage_mode", "refused", note=f"ERR {refusal.code} {refusal.text}")
        else:
            measure("storage_mode", "entered", note="over the near-end port")
            watch.hold(STORAGE_WATCH_S)
            watch_wake_and_exception_flow(meter, watch, device_profile, measure, phase)

    heard = True
    if rail is None:
        measure("module_rail", "none", note="cuts judged by power-on banners alone")
        phase("waiting for the module's next word")
        heard = hear_the_module_again(meter, plan.checks.C11.module_heard_within_s, measure)
    by_banner = c11_readings(lines, banner_cut_boundaries(lines, mark), "power_on_banner")
    record(measure, by_banner)
    evidence = [f"phases: {', '.join(f'{name} from {start_s:.1f} s' for start_s, name in phases)}"]
    evidence.append(cut_evidence(lines, banner_cut_boundaries(lines, mark), BANNER_WITNESS, phases))
    if rail is not None:
        boundaries = rail_cut_boundaries(lines, watch.edges.falls_s, RAIL_PERIOD_S)
        record(measure, c11_readings(lines, boundaries, "module_rail"))
        evidence.append(cut_evidence(lines, boundaries, RAIL_WITNESS, phases))
    allure.attach("\n\n".join(evidence), "AT monitor before each module power cut", allure.attachment_type.TEXT)
    if not heard and not failing(by_banner):
        inconclusive(f"the module stayed silent {plan.checks.C11.module_heard_within_s:.0f} s after "
                    "the last phase, so a cut then (without a module rail to see it) could not be judged")
    measure.judge()


def hear_the_module_again(meter: MeterSession, within_s: float, measure: Recorder) -> bool:
    """Without a rail, a cut after the module's last word shows only as a power-on banner when it next speaks:
    waits (up to the plan's window: the next scheduled report) for that word. A banner means a cut came before
    it (judged with the other banners); any other word means the module was never cut since it last spoke."""
    clock, lines = meter.bench.clock, meter.monitor.lines
    mark, start_s = meter.monitor.mark(), clock.now()
    clock.wait_until(lambda: module_word_after(lines, mark) is not None, within_s)
    word = module_word_after(lines, mark)
    if word is None:
        measure("module_heard_again_after_s", "none", "s", note=f"the module said nothing for {within_s:.0f} s")
        return False
    meaning = ("its power-on banner: a cut came before it" if word.text == POWER_ON_CAUSE
               else f"{word.text[:40]!r}, no power-on: not cut since it last spoke")
    measure("module_heard_again_after_s", round(word.time_s - start_s, 1), "s", note=meaning)
    return True


def watch_wake_and_exception_flow(meter: MeterSession, watch: CutWatch, device_profile: DeviceProfile,
                                  measure: Recorder, phase: Callable[[str], None]) -> None:
    """Storage mode's wake trigger, with the observe withheld: the woken report's 513 retries and the flow."""
    if not device_profile.parts.stimulus:
        measure("exception_flow_watched", "no", note="the device profile declares no stimulus (wake trigger)")
        return
    meter.platform.withhold_observe = True  # the module registers again when it wakes
    phase("woken, platform withholding the observe (513 retries, exception flow)")
    mark = meter.monitor.mark()
    try:
        meter.stimulate("magnetic")
    except RigFault as fault:
        measure("exception_flow_watched", "no", note=f"no stimulus driver on this bench: {fault}")
        return
    if not watch.until(seen(meter, f"^{re.escape(CME_513)}$", mark), WAKE_513_WITHIN_S):
        measure("exception_flow_watched", "no", note="no send answered 513 after the wake trigger")
        return
    watch.hold(FLOW_WATCH_S)
    meter.platform.withhold_observe = False  # the meter's next report runs as usual
    measure("exception_flow_watched", "yes", note="a send was answered 513; retries and flow watched "
                                                  f"{FLOW_WATCH_S:.0f} s")
