"""C8: after power-on the MCU lets its module search for the network for at least 5 min (the network
protection time) before it treats the module as failed; when the cells return it attaches and reports.

All cells are off (every attenuator path at its maximum) and the meter is power-cycled from the supply.
Module power-on is its boot banner on the AT monitor (or the module rail's current rising); the first
give-up is the MCU's `AT+NRB` (one that does not apply an `AT+NCONFIG=` just before it), `AT+CFUN=0`,
or the module's power cut seen on the module rail. Then the cells return at the plan's behaviour level: the
module must attach within the plan's time of their return, and the first report must follow within that
time of the attach (a daily meter reports at its next slot, which a restore at an arbitrary moment can
put nearly a day after it).
"""

from __future__ import annotations

from dataclasses import dataclass

import allure
import pytest

from fixtures.checks import Recorder, inconclusive, module_rail
from rig.analysis.at_transcript import POWER_ON_CAUSE, is_query, says_attached
from rig.analysis.rail import RailEdges
from rig.analysis.trace import Trace
from rig.bench import Bench
from rig.coverage import CoverageCalculator
from rig.instruments.attenuator import MAX_DB
from rig.instruments.power import N6705CPowerAnalyser
from rig.meter_session import MeterSession
from rig.monitor import MCU, MODULE, MonitorLine
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile
from rig.report.plots import trace_png

BOOT_WITHIN_S = 8 * 3600.0  # the longest power-on stagger (199 x 120 s + 59 s) and a guard
POWER_OFF_S = 10.0  # the supply stays off this long in the power cycle
OBSERVE_MARGIN_S = 300.0  # watched after power-on beyond the guard, so a give-up at the limit is seen
SILENT_CUT_WATCH_S = 2 * 3600.0  # without a rail: how long to wait for the power-on that reveals a silent cut
RAIL_PERIOD_S = 1.0
RAIL_CHUNK_PERIODS = 1800
REBOOT_BANNER = r"^REBOOT_CAUSE_"


def first_give_up(lines: list[MonitorLine], start: int) -> MonitorLine | None:
    """The MCU's first `AT+CFUN=0`, or `AT+NRB` not applying an `AT+NCONFIG=` just before it (queries aside)."""
    previous = ""
    for line in lines[start:]:
        if not line.is_command:
            continue
        text = line.text.upper()
        if text == "AT+CFUN=0" or (text == "AT+NRB" and not previous.startswith("AT+NCONFIG=")):
            return line
        if not is_query(text):
            previous = text
    return None


def silent_cut(lines: list[MonitorLine], banner: MonitorLine) -> tuple[float, float] | None:
    """A second power-on banner means the module was cut before it, with no command: the cut lies between
    the MCU's last line before that banner and the banner (the module's boot text comes with the banner)."""
    again = next((line for line in lines[banner.index + 1:]
                  if line.sender == MODULE and line.text == POWER_ON_CAUSE), None)
    if again is None:
        return None
    last = next((line for line in reversed(lines[banner.index:again.index]) if line.sender == MCU), banner)
    return last.time_s, again.time_s


@dataclass
class GuardSeen:
    """Module power-on and the MCU's first give-up, each with what showed it."""

    power_on_s: float | None = None
    power_on_by: str = ""
    banner: MonitorLine | None = None
    give_up_s: float | None = None
    give_up_by: str = ""
    give_up_latest_s: float = float("inf")  # a cut seen only by the next power-on is known to an interval


def judge_watch(meter: MeterSession, mark: int, rail: RailEdges | None) -> GuardSeen:
    lines = meter.monitor.lines
    seen = GuardSeen()
    seen.banner = next((line for line in lines[mark:] if line.sender == MODULE and line.text == POWER_ON_CAUSE), None)
    if seen.banner is not None:
        seen.power_on_s, seen.power_on_by = seen.banner.time_s, "boot banner on the monitor"
    elif rail is not None and rail.rises_s:
        seen.power_on_s, seen.power_on_by = rail.rises_s[0], "module rail current rising"
    if seen.power_on_s is None:
        return seen
    candidates: list[tuple[float, float, str]] = []  # (no earlier than, no later than, what showed it)
    start = seen.banner.index if seen.banner is not None else mark
    command = first_give_up(lines, start)
    if command is not None:
        candidates.append((command.time_s, command.time_s, f"{command.text} on the monitor"))
    if rail is not None:
        cuts = [t for t in rail.falls_s if t >= seen.power_on_s - RAIL_PERIOD_S]
        # the rail knows a cut to one logging period; a command on the monitor within that period is exact
        if cuts and (command is None or cuts[0] < command.time_s - RAIL_PERIOD_S):
            cut_s = max(cuts[0], seen.power_on_s)
            candidates.append((cut_s, cut_s, "module power cut on the module rail"))
    elif seen.banner is not None and (bounds := silent_cut(lines, seen.banner)) is not None:
        candidates.append((*bounds, "module power cut without a command (seen as a new power-on banner)"))
    if candidates:
        seen.give_up_s, _, seen.give_up_by = min(candidates)
        seen.give_up_latest_s = min(latest for _, latest, _ in candidates)
    return seen


def watch_power_on_and_give_up(meter: MeterSession, rail: N6705CPowerAnalyser | None, observe_s: float
                               ) -> tuple[GuardSeen, RailEdges | None]:
    """Power the meter and watch until its first give-up, or `observe_s` after module power-on."""
    clock = meter.bench.clock
    mark = meter.monitor.mark()
    if rail is None:
        meter.power_on()
        if meter.monitor.wait_for(POWER_ON_CAUSE, BOOT_WITHIN_S, sender=MODULE, mark=mark) is not None:
            seen = judge_watch(meter, mark, None)
            clock.wait_until(lambda: first_give_up(meter.monitor.lines, seen.banner.index) is not None,
                             max(seen.power_on_s + observe_s - clock.now(), 0.0))
            if first_give_up(meter.monitor.lines, seen.banner.index) is None:
                # without a rail a cut without a command shows only as the module's next power-on banner
                meter.monitor.wait_for(POWER_ON_CAUSE, SILENT_CUT_WATCH_S, sender=MODULE, mark=seen.banner.index + 1)
        return judge_watch(meter, mark, None), None
    edges = RailEdges()
    started_s = rail.start_data_log(RAIL_PERIOD_S, BOOT_WITHIN_S + observe_s)
    meter.power_on()
    seen = GuardSeen()
    for chunk in rail.read_data_log(started_s, RAIL_PERIOD_S, BOOT_WITHIN_S + observe_s, RAIL_CHUNK_PERIODS):
        edges.feed(chunk)
        seen = judge_watch(meter, mark, edges)
        if seen.give_up_s is not None or (seen.power_on_s is not None and clock.now() >= seen.power_on_s + observe_s):
            break
    return seen, edges


def wait_attached(meter: MeterSession, mark: int, timeout_s: float) -> MonitorLine | None:
    """The module's first answer or URC saying it is attached, from `mark`."""
    found: list[MonitorLine] = []

    def attached() -> bool:
        found[:] = [line for line in meter.monitor.lines[mark:] if line.sender == MODULE and says_attached(line.text)]
        return bool(found)

    meter.bench.clock.wait_until(attached, timeout_s)
    return found[0] if found else None


@pytest.mark.check("C8")
@pytest.mark.needs("attenuator", "power_analyser", "monitor")
def test_c8_meter_lets_the_module_search_5_min_after_power_on_then_attaches_when_cells_return(
        meter: MeterSession, bench: Bench, device_profile: DeviceProfile, plan: PlanProfile,
        measure: Recorder) -> None:
    c8 = plan.checks.C8
    bench.attenuator.set_all(MAX_DB)
    measure("attenuation_every_path_db", MAX_DB, "dB", note="all cells off")
    meter.power_off()
    bench.clock.sleep(POWER_OFF_S)
    supply_on_s = bench.clock.now()
    mark = meter.monitor.mark()
    rail = module_rail(bench, device_profile)
    observe_s = c8.guard_min_s + OBSERVE_MARGIN_S
    seen, edges = watch_power_on_and_give_up(meter, rail, observe_s)
    allure.attach(meter.monitor.excerpt(mark), "AT monitor from power-on", allure.attachment_type.TEXT)
    if seen.power_on_s is None:
        measure("module_power_on", "none", note=f"no boot banner or rail current within {BOOT_WITHIN_S:.0f} s")
        pytest.fail("the module was never powered on, so the attach guard could not be measured")
    measure("module_power_on_after_supply_s", round(seen.power_on_s - supply_on_s, 1), "s", note=seen.power_on_by)
    if seen.give_up_s is None:
        watched_s = bench.clock.now() - seen.power_on_s
        measure("attach_guard_s", round(watched_s, 1), "s", low=c8.guard_min_s,
                note=f"no give-up in the {watched_s:.0f} s watched after module power-on")
    elif seen.give_up_s - seen.power_on_s < c8.guard_min_s <= seen.give_up_latest_s - seen.power_on_s:
        earliest, latest = seen.give_up_s - seen.power_on_s, seen.give_up_latest_s - seen.power_on_s
        measure("attach_guard_earliest_s", round(earliest, 1), "s", note=seen.give_up_by)
        measure("attach_guard_latest_s", round(latest, 1), "s", note=seen.give_up_by)
        measure("attach_guard", "inconclusive", note="without a module rail a silent cut is known only to an interval")
        inconclusive(f"the module was cut without a command between {earliest:.0f} s and {latest:.0f} s after "
                     f"power-on, across the {c8.guard_min_s:g} s limit; a module rail would tell")
    else:
        measure("attach_guard_s", round(seen.give_up_s - seen.power_on_s, 1), "s", low=c8.guard_min_s,
                note=f"module power-on ({seen.power_on_by}) to the first give-up ({seen.give_up_by})")
    if edges is not None and edges.kept:
        trace = Trace.from_chunks(edges.kept)
        marks = {"module power-on": seen.power_on_s}
        if seen.give_up_s is not None:
            marks["first give-up"] = seen.give_up_s
        allure.attach(trace_png(trace, "C8: module rail with all cells off", marks), "module rail",
                      allure.attachment_type.PNG)

    calculator = CoverageCalculator(bench.profile, plan)
    setting = calculator.setting(plan.behaviour_level)
    calculator.apply(bench.attenuator, setting)
    measure("restored_level", plan.behaviour_level, note=f"expected RSRP {setting.expected_rsrp_dbm:.1f} dBm, "
                                                         f"SINR {setting.expected_sinr_db:.1f} dB")
    restored_s, restored_mark, uplinks = bench.clock.now(), meter.monitor.mark(), len(meter.platform.uplinks)
    attached = wait_attached(meter, restored_mark, c8.attach_within_s)
    attached_s = attached.time_s if attached is not None else float("nan")
    measure("attach_after_restore_s", round(attached_s - restored_s, 1), "s", high=c8.attach_within_s,
            note="cells restored to the module's attach (+CGATT:1 or +CEREG registered on the monitor)")
    report = None
    if attached is not None:
        report = meter.wait_for_report(max(attached_s + c8.attach_within_s - bench.clock.now(), 0.0), since=uplinks)
    report_s = report.time_s if report is not None else float("nan")
    measure("report_after_attach_s", round(report_s - attached_s, 1), "s", high=c8.attach_within_s,
            note="attach to the first report the platform received (a daily meter reports at its next slot)")
    measure("report_after_restore_s", round(report_s - restored_s, 1), "s", note="recorded")
    allure.attach(meter.monitor.excerpt(restored_mark, attached.index + 5 if attached else None),
                  "AT monitor after the cells returned", allure.attachment_type.TEXT)
    measure.judge()

