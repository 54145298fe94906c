"""C21: storage mode and the search backoff in no coverage.

C21a: storage mode (software shutdown for the stock period), set over the near-end port, keeps the meter
at its floor with no search for a day; its wake trigger (the reference meter: a magnet) brings it back
to report. C21b: a module left to itself in no coverage searches at 10, 20, 40 min ... doubling up to
every 24 h. Both are read from the data logger, streamed in chunks: C21a keeps a running sum and the
search bursts, C21b only the start time of each burst.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import allure
import numpy as np
import pytest

from fixtures.checks import Recorder, module_rail, not_applicable
from fixtures.levels import power_on_until_first_report
from rig.analysis.at_transcript import POWER_ON_CAUSE
from rig.analysis.rail import RAIL_OFF_A
from rig.analysis.trace import Trace
from rig.bench import Bench
from rig.coverage import CoverageCalculator
from rig.errors import RigFault
from rig.instruments.attenuator import MAX_DB
from rig.instruments.power import DataLogChunk
from rig.maintenance import MaintenanceRefused
from rig.meter_session import MeterSession
from rig.module_session import ModuleSession
from rig.monitor import MODULE
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile
from rig.report.plots import trace_png

AFTER_REPORT_S = 120.0  # the report's connection released, the module back in PSM
STORAGE_SETTLE_S = 600.0  # from STORAGE ON to the start of the record
LOG_PERIOD_S = 1.0
LOG_CHUNK_PERIODS = 21_600  # 6 h a chunk: memory stays bounded whatever the duration
PLOT_BIN_S = 60.0
BOOT_WITHIN_S = 8 * 3600.0  # a meter powers its module after at most its power-on stagger


@dataclass
class BurstStarts:
    """Streams data-log chunks and keeps only when each burst above `threshold_a` (period means) starts."""

    threshold_a: float
    above: bool = False
    starts_s: list[float] = field(default_factory=list)

    def feed(self, chunk: DataLogChunk) -> None:
        high = chunk.mean_a > self.threshold_a
        before = np.concatenate([[self.above], high[:-1]])
        self.starts_s += [float(chunk.start_s + i * chunk.period_s) for i in np.flatnonzero(high & ~before)]
        self.above = bool(high[-1])


@dataclass
class RailCuts:
    """Streams the module rail's data log, keeping the times its current stops (the module's power cut)."""

    threshold_a: float = RAIL_OFF_A
    on: bool = False
    cuts_s: list[float] = field(default_factory=list)

    def feed(self, chunk: DataLogChunk) -> None:
        powered = chunk.max_a > self.threshold_a
        before = np.concatenate([[self.on], powered[:-1]])
        self.cuts_s += [float(chunk.start_s + i * chunk.period_s) for i in np.flatnonzero(~powered & before)]
        self.on = bool(powered[-1])


def set_behaviour_level(bench: Bench, plan: PlanProfile, measure: Recorder) -> None:
    """The serving cell at the plan's behaviour level: the meter reports before and after storage."""
    calculator = CoverageCalculator(bench.profile, plan)
    setting = calculator.setting(plan.behaviour_level)
    calculator.apply(bench.attenuator, setting)
    measure("coverage_level", plan.behaviour_level, note=f"expected RSRP {setting.expected_rsrp_dbm:.1f} dBm, "
                                                         f"SINR {setting.expected_sinr_db:.1f} dB")


# ---- C21a ------------------------------------------------------------------------------------------


@dataclass
class StoredRecord:
    """What the data log of the storage period leaves: sums, the peak, burst starts and the trace."""

    bursts: BurstStarts
    total_a: float = 0.0
    periods: int = 0
    peak_a: float = 0.0
    plot_start_s: float | None = None
    plot_means_a: list[np.ndarray] = field(default_factory=list)

    def feed(self, chunk: DataLogChunk) -> None:
        self.total_a += float(np.sum(chunk.mean_a))
        self.periods += len(chunk.mean_a)
        self.peak_a = max(self.peak_a, float(np.max(chunk.max_a)))
        self.bursts.feed(chunk)
        # the plot keeps one mean per PLOT_BIN_S, so any duration fits in memory
        width = max(1, round(PLOT_BIN_S / chunk.period_s))
        whole = len(chunk.mean_a) // width * width
        if self.plot_start_s is None:
            self.plot_start_s = chunk.start_s
        self.plot_means_a.append(chunk.mean_a[:whole].reshape(-1, width).mean(axis=1))

    def plot_trace(self) -> Trace:
        return Trace(self.plot_start_s or 0.0, PLOT_BIN_S, np.concatenate(self.plot_means_a or [np.zeros(0)]))

    @property
    def average_a(self) -> float:
        return self.total_a / self.periods if self.periods else float("nan")


@pytest.mark.check("C21a")
@pytest.mark.needs("attenuator", "power_analyser", "maintenance")
def test_c21a_storage_mode_holds_the_floor_without_searching_and_the_wake_trigger_brings_a_report(
        meter: MeterSession, bench: Bench, device_profile: DeviceProfile, plan: PlanProfile,
        measure: Recorder) -> None:
    c21a = plan.checks.C21a
    set_behaviour_level(bench, plan, measure)
    power_on_until_first_report(meter, measure, "it never ran normally before storage")
    bench.clock.sleep(AFTER_REPORT_S)
    try:
        meter.maintenance.storage_on()
    except MaintenanceRefused as refusal:
        measure("storage_mode_accepted", 0, "", low=1, note=f"STORAGE ON refused: ERR {refusal.code} {refusal.text}")
        measure.judge()
    measure("storage_mode_accepted", 1, "", low=1, note="over the near-end port")
    bench.clock.sleep(STORAGE_SETTLE_S)
    mark = meter.monitor.mark() if meter.monitor is not None else 0
    record = StoredRecord(BurstStarts(c21a.search_burst_above_ma * 1e-3))
    for chunk in bench.supply.data_log(LOG_PERIOD_S, c21a.duration_s, LOG_CHUNK_PERIODS):
        record.feed(chunk)
    measure("average_ua", round(record.average_a * 1e6, 2), "uA", high=c21a.average_max_ua,
            note=f"supply data log, {c21a.duration_s:.0f} s at {LOG_PERIOD_S:g} s periods")
    measure("search_bursts", len(record.bursts.starts_s), "", high=c21a.searches_max,
            note=f"periods averaging above {c21a.search_burst_above_ma:g} mA, counted by their starts")
    measure("peak_ma", round(record.peak_a * 1e3, 3), "mA", note="highest period maximum")
    if meter.monitor is not None:
        measure("monitor_lines_in_storage", len(meter.monitor.lines) - mark, "", note="AT traffic while stored")
    marks = {"first search burst": record.bursts.starts_s[0]} if record.bursts.starts_s else None
    allure.attach(trace_png(record.plot_trace(), f"C21a: supply current in storage mode ({PLOT_BIN_S:g} s means)",
                            marks), "storage current", allure.attachment_type.PNG)

    if not device_profile.parts.stimulus:
        measure("wake_report_s", "not tested", note="the device profile declares no stimulus (wake trigger)")
    else:
        uplinks = len(meter.platform.uplinks)
        woken_s = bench.clock.now()
        try:
            meter.stimulate("magnetic")
        except RigFault as fault:
            measure("wake_report_s", "not tested", note=f"no stimulus driver on this bench: {fault}")
        else:
            report = meter.wait_for_report(c21a.wake_report_max_s, since=uplinks)
            measure("wake_report_s", round(report.time_s - woken_s, 1) if report else float("nan"), "s",
                    high=c21a.wake_report_max_s, note="magnet to the first report at the platform")
    measure.judge()


# ---- C21b ------------------------------------------------------------------------------------------


def expected_intervals_s(plan: PlanProfile) -> np.ndarray:
    c21b = plan.checks.C21b
    return np.minimum(c21b.first_interval_s * c21b.factor ** np.arange(c21b.intervals), c21b.cap_s)


def judge_intervals(starts_s: list[float], plan: PlanProfile, measure: Recorder, source: str) -> None:
    """Each interval between burst starts against first x factor^k capped, within the tolerance."""
    c21b = plan.checks.C21b
    expected = expected_intervals_s(plan)
    intervals = np.diff(starts_s)[:len(expected)]
    measure("intervals_seen", len(intervals), "", low=c21b.intervals, note=f"between search bursts on the {source}")
    for number, (seen, wanted) in enumerate(zip(intervals, expected, strict=False), start=1):
        margin = c21b.tolerance_fraction * wanted
        measure(f"interval_{number}_s", round(float(seen), 1), "s", low=float(wanted - margin),
                high=float(wanted + margin), note=f"expected {wanted:g} s")
    rows = [f"{t - starts_s[0]:12.1f}" for t in starts_s[:len(expected) + 1]]
    allure.attach("burst start, s from the first\n" + "\n".join(rows), "search burst starts",
                  allure.attachment_type.TEXT)
    measure.judge()


def log_s(plan: PlanProfile) -> float:
    """Long enough for every judged interval at its tolerance's upper edge, and the first burst."""
    c21b = plan.checks.C21b
    return float(np.sum(expected_intervals_s(plan)) * (1 + c21b.tolerance_fraction) + c21b.first_interval_s)


@pytest.mark.check("C21b")
@pytest.mark.needs("attenuator", "power_analyser")
def test_c21b_bare_module_in_no_coverage_backs_off_10_20_40_min_up_to_24_h(
        bench: Bench, device_profile: DeviceProfile, plan: PlanProfile, measure: Recorder) -> None:
    if device_profile.kind != "module":
        not_applicable("the device is a meter: see the meter's C21b check")
    bench.attenuator.set_all(MAX_DB)
    measure("attenuation_every_path_db", MAX_DB, "dB", note="no coverage")
    needed = plan.checks.C21b.intervals + 1
    bursts = BurstStarts(plan.checks.C21b.search_burst_above_ma * 1e-3)
    duration_s = log_s(plan)
    module = ModuleSession(bench, device_profile)
    try:
        started_s = bench.supply.start_data_log(LOG_PERIOD_S, duration_s)
        module.power_on()
        for chunk in bench.supply.read_data_log(started_s, LOG_PERIOD_S, duration_s, LOG_CHUNK_PERIODS):
            bursts.feed(chunk)
            if len(bursts.starts_s) >= needed:
                break
    finally:
        module.close()
    judge_intervals(bursts.starts_s, plan, measure, "supply (the module alone)")


@pytest.mark.check("C21b")
@pytest.mark.needs("attenuator", "power_analyser", "monitor")
def test_c21b_meter_that_leaves_its_module_searching_backs_off_10_20_40_min_up_to_24_h(
        meter: MeterSession, bench: Bench, device_profile: DeviceProfile, plan: PlanProfile,
        measure: Recorder) -> None:
    """Applies only to a meter that leaves its module searching: a cut or `AT+CFUN=0` ends the module's search."""
    bench.attenuator.set_all(MAX_DB)
    measure("attenuation_every_path_db", MAX_DB, "dB", note="no coverage")
    rail = module_rail(bench, device_profile)
    analyser, source = (rail, "module rail") if rail is not None else (bench.supply, "supply")
    needed = plan.checks.C21b.intervals + 1
    bursts, cuts = BurstStarts(plan.checks.C21b.search_burst_above_ma * 1e-3), RailCuts()
    duration_s = BOOT_WITHIN_S + log_s(plan)
    mark = meter.monitor.mark()
    started_s = analyser.start_data_log(LOG_PERIOD_S, duration_s)
    meter.power_on()
    for chunk in analyser.read_data_log(started_s, LOG_PERIOD_S, duration_s, LOG_CHUNK_PERIODS):
        bursts.feed(chunk)
        cuts.feed(chunk)
        stop = stopped_by_mcu(meter, mark)
        if stop is None and rail is not None and cuts.cuts_s:
            stop = f"module power cut on the module rail at {cuts.cuts_s[0] - started_s:.0f} s after supply on"
        if stop is not None:
            measure("applicability", "not applicable", note=f"the MCU stops the module's search: {stop}")
            not_applicable(f"the MCU powers the module off or stops its search ({stop})")
        if len(bursts.starts_s) >= needed:
            break
    judge_intervals(bursts.starts_s, plan, measure, source)


def stopped_by_mcu(meter: MeterSession, mark: int) -> str | None:
    """`AT+CFUN=0` from the MCU, or the module's power cut (a second power-on banner), since `mark`."""
    lines = meter.monitor.lines
    for line in lines[mark:]:
        if line.is_command and line.text.upper() == "AT+CFUN=0":
            return f"AT+CFUN=0 at {line.time_s - lines[mark].time_s:.0f} s on the monitor"
    banners = [line for line in lines[mark:] if line.sender == MODULE and line.text == POWER_ON_CAUSE]
    if len(banners) > 1:
        return f"the module was powered again at {banners[1].time_s - banners[0].time_s:.0f} s after power-on"
    return None
