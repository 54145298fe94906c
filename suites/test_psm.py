"""C5: between reports the module sleeps in PSM (stays attached, no re-attach on wake) instead of being
powered off, and the whole meter sleeps at a low floor.

Observed with what every bench has: the supply's data logger (meter floor), the module rail where the
meter offers one (module PSM current, module power cuts), and the AT monitor (`+NPSMR:1`, boot banners,
attach sequences). The network log of a simulated bench is recorded as extra evidence, never judged.
The meter is watched over the plan's number of daily wakes: seconds on the twin, days on hardware.
"""

from __future__ import annotations

import json
import re

import allure
import pytest

from fixtures.checks import Recorder, not_applicable
from fixtures.levels import first_report_at_level, module_at_level
from rig.analysis.energy import Decimator, EnergyTally, OffSpans, stream
from rig.bench import Bench
from rig.instruments.power import N6705CPowerAnalyser
from rig.meter_session import MeterSession
from rig.module_session import ModuleSession
from rig.monitor import MCU, MODULE, AtMonitor, MonitorLine
from rig.platform.server import Uplink
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import DAY_S, PlanProfile
from rig.report.plots import trace_png

SPARE_REPORT_PERIODS = 2  # budget: twice the wakes plus this many report periods, for days whose report fails
PSM_SETTLE_S = 5.0  # after +NPSMR:1, before logging the floor
FLOOR_PERIOD_S = 1.0
WATCH_PERIOD_S = 1.0  # module rail between reports: each period's minimum shows a power cut however short
WATCH_PAST_NEXT_REPORT_S = 900.0  # the rail is watched until this long after the next report is due
CHUNK_PERIODS = 3600  # an hour of 1 s periods per fetch: a day is never held in memory
PLOT_BIN_S = 60.0
POWER_ON_BANNER = "REBOOT_CAUSE_SECURITY_PMU_POWER_ON_RESET"
BOOT_BANNER = re.compile(r"^REBOOT_CAUSE_")
UPLINK_COMMAND = re.compile(r"^AT\+(QLWULDATA|QLWULDATAEX|NMGS|NMGSEXT|NSOST|NSOSTF|NSOSD|QLWSEND|MIPLNOTIFY)=")


# ---- what the monitor shows ------------------------------------------------------------------------------
def index_at(monitor: AtMonitor, time_s: float) -> int:
    """The index of the first monitor line at or after `time_s` (a mark for lines from then on)."""
    return next((line.index for line in monitor.lines if line.time_s >= time_s), monitor.mark())


def attach_sequences(lines: list[MonitorLine]) -> list[MonitorLine]:
    """Attaches on the monitor: a module boot banner or `+CGATT:0`, then `+CGATT:1` (one entry per sequence).

    A detach (banner or `+CGATT:0`) that no `+CGATT:1` follows within `lines` counts too: the attach was lost.
    The line returned is where the sequence started.
    """
    found: list[MonitorLine] = []
    started: MonitorLine | None = None
    for line in lines:
        if line.sender != MODULE:
            continue
        if BOOT_BANNER.match(line.text) or line.text == "+CGATT:0":
            if started is None:
                started = line
        elif line.text == "+CGATT:1" and started is not None:
            found.append(started)
            started = None
    if started is not None:
        found.append(started)
    return found


def next_wake_attempt(lines: list[MonitorLine], after_s: float, quiet_s: float) -> MonitorLine | None:
    """The MCU's first uplink command after the monitor fell quiet for `quiet_s` (the sleep) following `after_s`."""
    previous_s, slept = after_s, False
    for line in lines:
        if line.time_s < after_s:
            continue
        slept = slept or line.time_s - previous_s >= quiet_s
        previous_s = line.time_s
        if slept and line.sender == MCU and UPLINK_COMMAND.match(line.text):
            return line
    return None


def sleeps(lines: list[MonitorLine], reports: list[Uplink], quiet_s: float) -> list[tuple[float, float]]:
    """From each report that another follows to the next wake's first uplink attempt: the sleep and the wake-up.

    What the meter does after a failed attempt (retries, resets, the exception flow) belongs to C7-C10,
    so C5 counts power cuts and attaches only inside these intervals.
    """
    found = []
    for report, following in zip(reports, reports[1:], strict=False):
        attempt = next_wake_attempt(lines, report.time_s, quiet_s)
        end_s = attempt.time_s if attempt is not None and attempt.time_s <= following.time_s else following.time_s
        found.append((report.time_s, end_s))
    return found


def inside(time_s: float, intervals: list[tuple[float, float]]) -> bool:
    return any(start_s <= time_s <= end_s for start_s, end_s in intervals)


def power_on_banners(lines: list[MonitorLine]) -> list[MonitorLine]:
    return [line for line in lines if line.sender == MODULE and line.text == POWER_ON_BANNER]


def mcu_enables_npsmr(monitor: AtMonitor) -> bool:
    return any(True for _ in monitor.matching(r"^AT\+NPSMR=1\s*$", MCU))


# ---- the check ------------------------------------------------------------------------------------------
def report_period_s(plan: PlanProfile) -> float:
    return DAY_S / plan.business_model.household.reports_per_day


def has_module_rail(bench: Bench, device: DeviceProfile) -> bool:
    supply = bench.profile.instruments.supply
    return bench.supply is not None and supply is not None and supply.module_rail_channel is not None \
        and device.parts.module_rail


class PsmWatch:
    """One meter over its wakes: per cycle (report to report) the PSM entry, floors and rail power cuts."""

    def __init__(self, meter: MeterSession, plan: PlanProfile):
        self.meter = meter
        self.plan = plan
        self.clock = meter.bench.clock
        self.monitor = meter.monitor
        self.rail = None
        if has_module_rail(meter.bench, meter.device):
            self.rail = N6705CPowerAnalyser(meter.bench.supply.transport, meter.bench.clock,
                                            channel=meter.bench.profile.instruments.supply.module_rail_channel)
        self.reports: list[Uplink] = []
        self.psm_entries: list[MonitorLine | None] = []
        self.floors: list[EnergyTally] = []
        self.rail_floors: list[EnergyTally] = []
        self.off_spans = OffSpans(plan.checks.C5.module_off_below_ua * 1e-6)
        self.first_floor: Decimator | None = None
        self.first_cycle: Decimator | None = None

    def wait_for_psm(self, report: Uplink, npsmr: bool) -> MonitorLine | None:
        """`+NPSMR:1` after the report; without the URC enabled, the longest PSM entry time passes instead."""
        if not npsmr:
            self.clock.sleep(max(report.time_s + self.plan.checks.C5.psm_entry_within_s - self.clock.now(), 0.0))
            return None
        mark = index_at(self.monitor, report.time_s)
        timeout_s = max(report.time_s + self.plan.checks.C5.psm_entry_within_s - self.clock.now(), 0.0)
        return self.monitor.wait_for(r"^\+NPSMR:1$", timeout_s, sender=MODULE, mark=mark)

    def cycle(self, report: Uplink, last: bool) -> None:
        """PSM entry after `report`, the meter floor, then the module rail until after the next report."""
        c5 = self.plan.checks.C5
        self.reports.append(report)
        self.psm_entries.append(self.wait_for_psm(report, mcu_enables_npsmr(self.monitor)))
        self.clock.sleep(PSM_SETTLE_S)
        floor = EnergyTally()
        plot = Decimator(FLOOR_PERIOD_S) if self.first_floor is None else None
        stream(self.meter.bench.supply.data_log(FLOOR_PERIOD_S, c5.log_window_s, CHUNK_PERIODS),
               *[x for x in (floor, plot) if x is not None])
        self.floors.append(floor)
        self.first_floor = self.first_floor or plot
        if self.rail is None:
            return
        started_s = self.clock.now()
        duration_s = c5.log_window_s if last else max(
            report.time_s + report_period_s(self.plan) + WATCH_PAST_NEXT_REPORT_S - started_s, c5.log_window_s)
        rail_floor = EnergyTally(to_s=started_s + c5.log_window_s)
        plot = Decimator(PLOT_BIN_S) if self.first_cycle is None else None
        stream(self.rail.data_log(WATCH_PERIOD_S, duration_s, CHUNK_PERIODS),
               *[x for x in (rail_floor, self.off_spans, plot) if x is not None])
        self.rail_floors.append(rail_floor)
        self.first_cycle = self.first_cycle or plot

    def run(self, first: Uplink) -> None:
        """Report after report until `wakes` sleeps are seen; days whose report fails are waited over."""
        wakes = self.plan.checks.C5.wakes
        deadline_s = first.time_s + (2 * wakes + SPARE_REPORT_PERIODS) * report_period_s(self.plan)
        report: Uplink | None = first
        while report is not None:
            last = len(self.reports) == wakes
            self.cycle(report, last)
            if last:
                return
            since = self.meter.platform.uplinks.index(report) + 1
            report = self.meter.wait_for_report(max(deadline_s - self.clock.now(), 0.0), since=since)


def network_attaches(bench: Bench, intervals: list[tuple[float, float]]) -> int | None:
    """Attaches in the simulated network's log inside `intervals` (a callbox's log would serve the same)."""
    if bench.twin_link is None:
        return None
    events = json.loads(bench.twin_link.query("SIM:NET:LOG?"))
    return sum(1 for event in events if event["event"] == "attach" and inside(event["time_s"], intervals))


def record_watch(watch: PsmWatch, plan: PlanProfile, measure: Recorder) -> None:
    c5 = plan.checks.C5
    monitor = watch.monitor
    intervals = sleeps(monitor.lines, watch.reports, c5.wake_quiet_s)
    in_sleeps = [line for line in monitor.lines if inside(line.time_s, intervals)]
    measure("wakes_observed", len(intervals), "", low=c5.wakes,
            note="sleeps from a report to the next wake's first uplink attempt")
    if mcu_enables_npsmr(monitor):
        entered = sum(1 for line in watch.psm_entries if line is not None)
        measure("psm_entries", entered, "", low=len(watch.reports),
                note=f"+NPSMR:1 within {c5.psm_entry_within_s:.0f} s of each of {len(watch.reports)} reports")
    else:
        measure("psm_entries", "n/a", note="the MCU never enables AT+NPSMR=1: PSM judged by the current alone")
    floors_ua = [tally.floor_a * 1e6 for tally in watch.floors]
    measure("meter_floor_ua", round(max(floors_ua), 2), "uA", high=c5.meter_floor_max_ua,
            note=f"worst of {len(floors_ua)} windows of {c5.log_window_s:g} s in PSM: "
                 + ", ".join(f"{value:.2f}" for value in floors_ua))
    measure("meter_average_in_psm_ua", round(max(t.mean_a for t in watch.floors) * 1e6, 2), "uA",
            note="worst window average, wakes included")
    rail_cuts = 0
    if watch.rail is None:
        measure("module_psm_ua", "n/a", note="no module rail on this bench or meter: module current not measured")
    else:
        rails_ua = [tally.floor_a * 1e6 for tally in watch.rail_floors]
        off = [value for value in rails_ua if value < c5.module_off_below_ua]
        measure("module_psm_ua", round(max(rails_ua), 2), "uA", high=c5.module_psm_max_ua,
                note=f"worst of {len(rails_ua)} windows: " + ", ".join(f"{value:.2f}" for value in rails_ua)
                + (f"; {len(off)} with the module unpowered" if off else ""))
        rail_cuts = sum(1 for start_s in watch.off_spans.first_off_s if inside(start_s, intervals))
        measure("module_rail_power_cuts", rail_cuts, "",
                note=f"drops below {c5.module_off_below_ua:g} uA on the module rail during the sleeps")
    banners = power_on_banners(in_sleeps)
    measure("module_power_on_banners", len(banners), "", note="power-on boot banners during the sleeps")
    measure("module_power_cycles", max(len(banners), rail_cuts), "", high=0,
            note="power-off in place of PSM: power-on banners or module rail cuts during the sleeps")
    attaches = [line for start_s, end_s in intervals
                for line in attach_sequences([x for x in in_sleeps if start_s <= x.time_s <= end_s])]
    measure("reattaches", len(attaches), "", high=c5.reattaches_max,
            note="boot banner or +CGATT:0 then +CGATT:1 on the monitor during the sleeps"
                 + (": at " + ", ".join(f"{line.time_s:.0f}" for line in attaches[:5]) if attaches else ""))
    network = network_attaches(watch.meter.bench, intervals)
    if network is not None:
        measure("network_log_attaches", network, "", note="the simulated network's log (evidence, not judged)")


def attach_evidence(watch: PsmWatch, first: Uplink, level: str) -> None:
    if watch.first_floor is not None:
        allure.attach(trace_png(watch.first_floor.trace(), f"C5 {level}: meter supply in PSM after the first report",
                                log_scale=True), "meter supply in PSM", allure.attachment_type.PNG)
    if watch.first_cycle is not None:
        trace = watch.first_cycle.trace()
        marks = {f"report {n}": r.time_s for n, r in enumerate(watch.reports[:2])
                 if trace.start_s <= r.time_s <= trace.start_s + len(trace.amps) * trace.period_s}
        allure.attach(trace_png(trace, f"C5 {level}: module rail from one report to the next "
                                       f"({PLOT_BIN_S:g} s means)", marks),
                      "module rail between reports", allure.attachment_type.PNG)
    monitor = watch.monitor
    allure.attach(monitor.excerpt(max(index_at(monitor, first.time_s) - 40, 0)), "AT monitor",
                  allure.attachment_type.TEXT)


@pytest.mark.check("C5")
@pytest.mark.needs("power_analyser", "monitor")
def test_c5_meter_sleeps_in_psm_and_stays_attached(meter: MeterSession, coverage, level: str, plan: PlanProfile,
                                                   measure: Recorder) -> None:
    """Takes plan.checks.C5.wakes daily wakes: seconds on the twin, that many days on hardware.

    Only the sleeps count (a report to the next wake's first uplink attempt): what follows a failed attempt
    (retries, module resets) is judged by C7-C10, so a meter failing reports is watched for more days.
    """
    first = first_report_at_level(meter, measure, coverage, plan, "its sleep after a report could not be observed")
    watch = PsmWatch(meter, plan)
    try:
        watch.run(first)
    finally:
        attach_evidence(watch, first, level)
    record_watch(watch, plan, measure)
    measure.judge()


# ---- a bare module, driven by the rig as its MCU would -------------------------------------------------------
PSM_REQUEST = 'AT+CPSMS=1,,,"00111000","00001111"'  # T3412 24 h, T3324 30 s
DATAGRAM_PEER = "127.0.0.1,9999"  # some local port: nobody needs to answer
MODULE_ATTACH_WITHIN_S = 300.0
MODULE_WAKE_GAP_S = 3600.0  # an hour in PSM between datagrams
MODULE_CONNECT_WITHIN_S = 30.0


def module_send_datagram(module: ModuleSession, attempts: int = 3) -> bool:
    """4 bytes of UDP with release assistance (`AT+NSOSTF ...,0x200`), from idle or PSM, until `+CSCON:1`.

    A network may refuse an RRC setup now and then, and the module then drops the datagram: it is sent again.
    """
    for _ in range(attempts):
        mark = len(module.history)
        socket = module.command("AT+NSOCR=DGRAM,17,5000,1")
        if not socket.ok or not socket.lines:
            pytest.fail(f"AT+NSOCR refused: {socket.final}")
        number = socket.lines[0]
        module.command(f"AT+NSOSTF={number},{DATAGRAM_PEER},0x200,4,DEADBEEF")
        module.command(f"AT+NSOCL={number}")
        if module.clock.wait_until(lambda m=mark: any(line.text == "+CSCON:1" for line in module.history[m:]),
                                   MODULE_CONNECT_WITHIN_S):
            return True
    return False


@pytest.fixture
def bare_module(device_profile: DeviceProfile) -> DeviceProfile:
    """The device profile of a bare module; a meter skips here, before a bench is opened."""
    if device_profile.kind != "module":
        not_applicable("the device is a meter: its module is judged through the meter check")
    return device_profile


@pytest.mark.check("C5")
@pytest.mark.needs("power_analyser")
def test_c5_bare_module_sleeps_in_psm_and_stays_attached(bare_module: DeviceProfile, bench: Bench, coverage,
                                                         level: str, plan: PlanProfile, measure: Recorder) -> None:
    """The rig asks for PSM, sends a datagram with release assistance and logs the supply in PSM, per wake."""
    c5 = plan.checks.C5
    module = ModuleSession(bench, bare_module)
    floors: list[EnergyTally] = []
    entries = 0
    plot = Decimator(FLOOR_PERIOD_S)
    try:
        module.power_on()
        for command in ("AT+CSCON=1", "AT+NPSMR=1", PSM_REQUEST):
            module.command(command)
        module_at_level(module, measure, coverage, plan, MODULE_ATTACH_WITHIN_S)
        attached_at = len(module.history)
        for wake in range(c5.wakes + 1):
            mark = len(module.history)
            if not module_send_datagram(module):
                measure(f"wake_{wake}_connected", 0, "", low=1, note="no +CSCON:1 after the datagram")
            if module.clock.wait_until(lambda m=mark: any(line.text == "+NPSMR:1" for line in module.history[m:]),
                                       c5.psm_entry_within_s):
                entries += 1
            module.clock.sleep(PSM_SETTLE_S)
            floor = EnergyTally()
            stream(bench.supply.data_log(FLOOR_PERIOD_S, c5.log_window_s, CHUNK_PERIODS),
                   *([floor, plot] if wake == 0 else [floor]))
            floors.append(floor)
            module.clock.sleep(MODULE_WAKE_GAP_S)
        reattached = module.command("AT+CGATT?").value("+CGATT:") == "1"
        after = [line for line in module.history[attached_at:]]
    finally:
        module.close()
    banners = [line for line in after if BOOT_BANNER.match(line.text)]
    detaches = [line for line in after if line.text == "+CGATT:0"]
    measure("psm_entries", entries, "", low=c5.wakes + 1, note="+NPSMR:1 after each datagram")
    floors_ua = [tally.floor_a * 1e6 for tally in floors]
    measure("module_psm_ua", round(max(floors_ua), 2), "uA", high=c5.module_psm_max_ua,
            note="worst window: " + ", ".join(f"{value:.2f}" for value in floors_ua))
    measure("reattaches", len(banners) + len(detaches), "", high=c5.reattaches_max,
            note="boot banners or +CGATT:0 after the first attach")
    measure("still_attached", int(reattached), "", low=1, note="AT+CGATT? after the last wake")
    allure.attach(trace_png(plot.trace(), f"C5 {level}: bare module in PSM"), "module supply in PSM",
                  allure.attachment_type.PNG)
    measure.judge()
