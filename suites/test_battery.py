"""B1: the battery lasts the plan's target (6 + 1 years): a day's charge at the level, measured, plus the
plan's monthly events (point read, valve) at their measured charge, projected over the plan's battery.

The day is one data-log record of the supply (reports, freezes, TAU and downlinks all included), streamed
chunk by chunk. An event's charge is the extra charge of a report that carries it over one that does not.
A day per level on hardware, plus the event reports (minutes with a near-end port, days without).

The projection is the smaller of the charge-based life and the cell's design life (the plan's cell preset and
temperature class); B1 records which bound it and the shares of the yearly drain (sleep floor, reports, retries
and other wakes, monthly events, self-discharge). The event windows' peak current and its duration (above half
the peak) are compared with the cell's pulse capability: recorded, judged only at the plan's
`battery.pulse_judged_levels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import allure
import numpy as np
import pytest

from fixtures.checks import Recorder
from fixtures.levels import first_report_at_level
from rig.analysis.energy import DAY_S, Decimator, EnergyTally, charge_per_year_ah, plan_battery_years, stream
from rig.instruments.power import DataLogChunk
from rig.meter_session import MeterSession, reports_of
from rig.platform.server import Ticket, Uplink
from rig.profiles.plan import PlanProfile
from rig.report.battery import drain_parts, shares_text
from rig.report.plots import trace_png

START_AFTER_REPORT_S = 900.0  # the day's record starts clear of the first report's active time
RECORD_PERIOD_S = 1.0
CHUNK_PERIODS = 3600  # an hour of 1 s periods per fetch: the day is never held in memory
PLOT_BIN_S = 60.0
EVENT_PERIOD_S = 0.01
EVENT_LEAD_S = 600.0  # without a near-end port: the record starts this long before the scheduled report
REPORT_WITHIN_S = 120.0
BASELINE_REPORTS = 2
EVENT_ATTEMPTS = 2  # a report window without its report is measured again
RETRIES_SETTLE_S = 2 * 3600.0 + 600.0  # after a failed report: past its retries (5 min, 1 h) before the next window


class PulseTally:
    """The peak current of the event windows and its duration: the longest run of periods above half the peak."""

    def __init__(self) -> None:
        self.windows: list[tuple[float, list[np.ndarray]]] = []

    def window(self, period_s: float) -> PulseTally:
        self.windows.append((period_s, []))
        return self

    def add(self, chunk: DataLogChunk) -> None:
        if not self.windows:
            self.window(chunk.period_s)
        self.windows[-1][1].append(np.asarray(chunk.max_a, dtype=np.float64))

    @property
    def peak_a(self) -> float:
        maxima = [float(np.max(part)) for _, parts in self.windows for part in parts if part.size]
        return max(maxima) if maxima else float("nan")

    @property
    def duration_s(self) -> float:
        """Longest run of consecutive periods whose maximum is above half the peak, in seconds."""
        half, longest = self.peak_a / 2, 0.0
        if math.isnan(half):
            return float("nan")
        for period_s, parts in self.windows:
            if not parts:
                continue
            above = np.concatenate(parts) > half
            edges = np.diff(np.concatenate(([0], above.astype(np.int8), [0])))
            runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
            longest = max(longest, float(runs.max(initial=0)) * period_s)
        return longest


@dataclass(frozen=True)
class ReportCharge:
    """One report's window on the data logger, and the downlink it carried (if any)."""

    charge_uah: float
    report: Uplink | None
    ticket: Ticket | None


def report_period_s(plan: PlanProfile) -> float:
    return DAY_S / plan.business_model.household.reports_per_day


def report_window(meter: MeterSession, plan: PlanProfile,
                  pulse: PulseTally | None = None) -> tuple[EnergyTally, Uplink | None]:
    """One data-log window holding one report.

    With a near-end port the report is asked for at the window's start; without one the window opens
    before the next scheduled report. Windows are the same length, so their differences are the events.
    """
    clock, supply = meter.bench.clock, meter.bench.supply
    window_s = plan.checks.B1.event_window_s
    since = len(meter.platform.uplinks)
    tally = EnergyTally()
    consumers = (tally,) if pulse is None else (tally, pulse.window(EVENT_PERIOD_S))
    if meter.device.parts.maintenance:
        started_s = supply.start_data_log(EVENT_PERIOD_S, window_s)
        meter.maintenance.report_now()
        stream(supply.read_data_log(started_s, EVENT_PERIOD_S, window_s, int(window_s)), *consumers)
    else:
        previous = reports_of(meter)[-1]
        due_s = previous.time_s + report_period_s(plan)
        clock.sleep(max(due_s - EVENT_LEAD_S - clock.now(), 0.0))
        stream(supply.data_log(EVENT_PERIOD_S, EVENT_LEAD_S + window_s, int(window_s)), *consumers)
    report = meter.wait_for_report(REPORT_WITHIN_S, since=since)
    if report is None or report.time_s >= (tally.first_s or 0.0) + tally.duration_s:
        return tally, None
    return tally, report


def report_charge(meter: MeterSession, plan: PlanProfile, downlink: dict | None,
                  pulse: PulseTally | None = None) -> ReportCharge:
    """Charge of a window holding one report that carries `downlink` (queued until a report takes it)."""
    ticket = None
    for _ in range(EVENT_ATTEMPTS):
        if downlink is not None and (ticket is None or ticket.sent_at is not None):  # a retry may have taken it
            ticket = meter.platform.queue_downlink(meter.device.identity.imei, downlink)
        tally, report = report_window(meter, plan, pulse)
        if report is not None and (ticket is None or ticket.sent_at is not None):
            return ReportCharge(tally.charge_uah, report, ticket)
        meter.bench.clock.sleep(RETRIES_SETTLE_S)
    return ReportCharge(float("nan"), None, ticket)


def event_extra_uah(meter: MeterSession, plan: PlanProfile, measure: Recorder, name: str, downlinks: list[dict],
                    baseline_uah: float, pulse: PulseTally | None = None) -> float:
    """The mean extra charge of reports carrying each of `downlinks` over the baseline report (never below 0)."""
    extras = []
    for downlink in downlinks:
        with allure.step(f"report with {downlink}"):
            charged = report_charge(meter, plan, downlink, pulse)
        answer = charged.ticket.answer if charged.ticket is not None else None
        status = answer.get("status") if isinstance(answer, dict) else None
        measure(f"{name}_{downlink.get('action', 'report')}_charge_uah", round(charged.charge_uah, 1), "uAh",
                note=f"report window with {downlink['type']}: answer {status or 'none'}")
        if not math.isnan(charged.charge_uah):
            extras.append(charged.charge_uah - baseline_uah)
    return max(sum(extras) / len(extras), 0.0) if extras else float("nan")


def monthly_events_uah(meter: MeterSession, plan: PlanProfile, measure: Recorder,
                       pulse: PulseTally | None = None) -> tuple[float, float]:
    """Point reads and valve operations per month at their measured extra charge, and the baseline report's
    window charge."""
    b1 = plan.checks.B1
    baseline = [report_charge(meter, plan, None, pulse).charge_uah for _ in range(BASELINE_REPORTS)]
    valid = [value for value in baseline if not math.isnan(value)]
    baseline_uah = sum(valid) / len(valid) if valid else float("nan")
    measure("report_charge_uah", round(baseline_uah, 1), "uAh",
            note=f"mean of {len(valid)} report windows of {b1.event_window_s:g} s with nothing queued: "
                 + ", ".join(f"{value:.1f}" for value in baseline))
    if math.isnan(baseline_uah):
        return float("nan"), baseline_uah
    point_uah = 0.0
    if b1.point_reads_per_month > 0:
        point_uah = event_extra_uah(meter, plan, measure, "point_read", [{"type": "point_read"}], baseline_uah,
                                    pulse)
    measure("point_read_uah", round(point_uah, 1), "uAh", note="extra charge of a report answering a point read")
    valve = meter.device.valve
    valve_uah, valve_note = 0.0, "the meter has no valve: 0"
    if b1.valve_operations_per_month > 0 and valve.present:
        actions = ["close", "open"] if valve.close_allowed else ["open"]
        downlinks = [{"type": "valve", "action": action} for action in actions]
        valve_uah = event_extra_uah(meter, plan, measure, "valve", downlinks, baseline_uah, pulse)
        valve_note = "extra charge of a report with a valve command, mean of " + " and ".join(actions)
    measure("valve_operation_uah", round(valve_uah, 1), "uAh", note=valve_note)
    monthly = b1.point_reads_per_month * point_uah + b1.valve_operations_per_month * valve_uah
    measure("monthly_events_uah", round(monthly, 1), "uAh",
            note=f"{b1.point_reads_per_month:g} point read(s) and {b1.valve_operations_per_month:g} valve "
                 "operation(s) a month")
    return monthly, baseline_uah


def record_pulse(pulse: PulseTally, plan: PlanProfile, level: str, measure: Recorder) -> None:
    """The event windows' peak current and its duration against the cell's pulse capability."""
    battery = plan.battery
    cell, judged = battery.preset, level in battery.pulse_judged_levels
    how = "judged" if judged else "recorded, not judged (battery.pulse_judged_levels)"
    measure("peak_current_ma", round(pulse.peak_a * 1e3, 1), "mA", high=cell.pulse_ma if judged else None,
            note=f"highest {EVENT_PERIOD_S:g} s period maximum of the report windows; {battery.cell} delivers "
                 f"{cell.pulse_ma:g} mA for {cell.pulse_s:g} s; {how}")
    measure("peak_duration_s", round(pulse.duration_s, 3), "s", high=cell.pulse_s if judged else None,
            note=f"longest run of periods above half the peak; {how}")


def years_limit(plan: PlanProfile, level: str) -> float | None:
    battery = plan.battery
    if level in battery.judged_levels:
        return battery.target_years
    if level == "CE2" and battery.ce2_min_years is not None:
        return battery.ce2_min_years
    return None


@pytest.mark.check("B1")
@pytest.mark.needs("power_analyser")
def test_b1_meter_battery_lasts_the_target_years(meter: MeterSession, coverage, level: str, plan: PlanProfile,
                                                measure: Recorder) -> None:
    """A day at the level on the data logger, the monthly events, and the battery's projected life."""
    b1, battery = plan.checks.B1, plan.battery
    first_report_at_level(meter, measure, coverage, plan, "its day could not be recorded")
    meter.bench.clock.sleep(START_AFTER_REPORT_S)
    day, plot = EnergyTally(), Decimator(PLOT_BIN_S)
    since = len(meter.platform.uplinks)
    stream(meter.bench.supply.data_log(RECORD_PERIOD_S, b1.record_s, CHUNK_PERIODS), day, plot)
    end_s = (day.first_s or 0.0) + day.duration_s
    reports = [r for r in reports_of(meter, since) if r.time_s < end_s]
    measure("record_s", day.duration_s, "s", note=f"data log of {RECORD_PERIOD_S:g} s periods")
    measure("reports_in_record", len(reports), "", note="periodic reports the platform received in the record")
    measure("floor_ua", round(day.floor_a * 1e6, 2), "uA", note="mean of the periods in which nothing woke")
    measure("average_ua", round(day.mean_a * 1e6, 2), "uA")
    per_day_uah = day.charge_per_day_uah
    measure("charge_per_day_uah", round(per_day_uah, 1), "uAh")
    allure.attach(trace_png(plot.trace(), f"B1 {level}: supply current over the day ({PLOT_BIN_S:g} s means)",
                            {f"report {n + 1}": r.time_s for n, r in enumerate(reports)}),
                  "the day's current", allure.attachment_type.PNG)
    pulse = PulseTally()
    monthly_uah, report_uah = monthly_events_uah(meter, plan, measure, pulse)
    record_pulse(pulse, plan, level, measure)
    yearly_ah = charge_per_year_ah(per_day_uah, monthly_uah) if not math.isnan(monthly_uah) else float("nan")
    measure("charge_per_year_mah", round(yearly_ah * 1e3, 1), "mAh", note="days and monthly events")
    measure("self_discharge_mah_per_year", round(battery.self_discharge_ah_per_year * 1e3, 1), "mAh",
            note=f"{battery.chemistry} {battery.label}")
    charge_years = plan_battery_years(battery, per_day_uah, monthly_uah) if not math.isnan(monthly_uah) else math.nan
    years, _, bound = battery.life(yearly_ah)
    if math.isnan(charge_years):
        years = charge_years
    measure("charge_years", round(charge_years, 2), "years",
            note=f"{battery.usable_ah:g} Ah usable / (charge per year + self-discharge)")
    measure("design_life_years", battery.design_life_years, "years", note=f"{battery.cell}: the projection's ceiling")
    parts = drain_parts(per_day_uah, day.floor_a * 1e6, len(reports) * DAY_S / max(day.duration_s, 1.0), report_uah,
                        b1.event_window_s, monthly_uah, battery)
    for part, share in parts.shares.items():
        measure(f"share_{part}", round(share * 100, 1), "%", note="of the yearly drain")
    measure("shares", shares_text(parts.shares), note="of the yearly drain (sleep floor, reports, retries and other "
                                                      "wakes, monthly events, self-discharge)")
    measure("projection_bound", f"{bound} ({battery.cell}, {battery.temperature_class})",
            note=f"years = min(charge-based {charge_years:.1f}, design life {battery.design_life_years:g})")
    limit = years_limit(plan, level)
    measure("projected_years", round(years, 2), "years", low=limit,
            note=f"min(charge-based life, {battery.cell}'s design life): bound by {bound}"
                 + ("" if limit is not None else f"; {level} recorded, not judged"))
    measure.judge()
