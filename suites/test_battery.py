"""B1: the battery lasts the plan's target (6 + 1 years): a day's charge at the level, measured, plus the
plan's monthly events (point read, valve) at their measured charge, projected over the plan's battery.

The day is one data-log record of the supply (reports, freezes, TAU and downlinks all included), streamed
chunk by chunk. An event's charge is the extra charge of a report that carries it over one that does not.
A day per level on hardware, plus the event reports (minutes with a near-end port, days without).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import first_report_at_level
from rig.analysis.energy import DAY_S, Decimator, EnergyTally, charge_per_year_ah, plan_battery_years, stream
from rig.meter_session import MeterSession, reports_of
from rig.platform.server import Ticket, Uplink
from rig.profiles.plan import PlanProfile
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


@dataclass(frozen=True)
class ReportCharge:
    """One report's window on the data logger, and the downlink it carried (if any)."""

    charge_uah: float
    report: Uplink | None
    ticket: Ticket | None


def report_period_s(plan: PlanProfile) -> float:
    return DAY_S / plan.business_model.household.reports_per_day


def report_window(meter: MeterSession, plan: PlanProfile) -> tuple[EnergyTally, Uplink | None]:
    """One data-log window holding one report.

    With a near-end port the report is asked for at the window's start; without one the window opens
    before the next scheduled report. Windows are the same length, so their differences are the events.
    """
    clock, supply = meter.bench.clock, meter.bench.supply
    window_s = plan.checks.B1.event_window_s
    since = len(meter.platform.uplinks)
    tally = EnergyTally()
    if meter.device.parts.maintenance:
        started_s = supply.start_data_log(EVENT_PERIOD_S, window_s)
        meter.maintenance.report_now()
        stream(supply.read_data_log(started_s, EVENT_PERIOD_S, window_s, int(window_s)), tally)
    else:
        previous = reports_of(meter)[-1]
        due_s = previous.time_s + report_period_s(plan)
        clock.sleep(max(due_s - EVENT_LEAD_S - clock.now(), 0.0))
        stream(supply.data_log(EVENT_PERIOD_S, EVENT_LEAD_S + window_s, int(window_s)), tally)
    report = meter.wait_for_report(REPORT_WITHIN_S, since=since)
    if report is None or report.time_s >= (tally.first_s or 0.0) + tally.duration_s:
        return tally, None
    return tally, report


def report_charge(meter: MeterSession, plan: PlanProfile, downlink: dict | None) -> ReportCharge:
    """Charge of a window holding one report that carries `downlink` (queued until a report takes it)."""
    ticket = None
    for _ in range(EVENT_ATTEMPTS):
        if downlink is not None and (ticket is None or ticket.sent_at is not None):  # a retry may have taken it
            ticket = meter.platform.queue_downlink(meter.device.identity.imei, downlink)
        tally, report = report_window(meter, plan)
        if report is not None and (ticket is None or ticket.sent_at is not None):
            return ReportCharge(tally.charge_uah, report, ticket)
        meter.bench.clock.sleep(RETRIES_SETTLE_S)
    return ReportCharge(float("nan"), None, ticket)


def event_extra_uah(meter: MeterSession, plan: PlanProfile, measure: Recorder, name: str, downlinks: list[dict],
                    baseline_uah: float) -> float:
    """The mean extra charge of reports carrying each of `downlinks` over the baseline report (never below 0)."""
    extras = []
    for downlink in downlinks:
        with allure.step(f"report with {downlink}"):
            charged = report_charge(meter, plan, downlink)
        answer = charged.ticket.answer if charged.ticket is not None else None
        status = answer.get("status") if isinstance(answer, dict) else None
        measure(f"{name}_{downlink.get('action', 'report')}_charge_uah", round(charged.charge_uah, 1), "uAh",
                note=f"report window with {downlink['type']}: answer {status or 'none'}")
        if not math.isnan(charged.charge_uah):
            extras.append(charged.charge_uah - baseline_uah)
    return max(sum(extras) / len(extras), 0.0) if extras else float("nan")


def monthly_events_uah(meter: MeterSession, plan: PlanProfile, measure: Recorder) -> float:
    """Point reads and valve operations per month at their measured extra charge."""
    b1 = plan.checks.B1
    baseline = [report_charge(meter, plan, None).charge_uah for _ in range(BASELINE_REPORTS)]
    valid = [value for value in baseline if not math.isnan(value)]
    baseline_uah = sum(valid) / len(valid) if valid else float("nan")
    measure("report_charge_uah", round(baseline_uah, 1), "uAh",
            note=f"mean of {len(valid)} report windows of {b1.event_window_s:g} s with nothing queued: "
                 + ", ".join(f"{value:.1f}" for value in baseline))
    if math.isnan(baseline_uah):
        return float("nan")
    point_uah = 0.0
    if b1.point_reads_per_month > 0:
        point_uah = event_extra_uah(meter, plan, measure, "point_read", [{"type": "point_read"}], baseline_uah)
    measure("point_read_uah", round(point_uah, 1), "uAh", note="extra charge of a report answering a point read")
    valve = meter.device.valve
    valve_uah, valve_note = 0.0, "the meter has no valve: 0"
    if b1.valve_operations_per_month > 0 and valve.present:
        actions = ["close", "open"] if valve.close_allowed else ["open"]
        downlinks = [{"type": "valve", "action": action} for action in actions]
        valve_uah = event_extra_uah(meter, plan, measure, "valve", downlinks, baseline_uah)
        valve_note = "extra charge of a report with a valve command, mean of " + " and ".join(actions)
    measure("valve_operation_uah", round(valve_uah, 1), "uAh", note=valve_note)
    monthly = b1.point_reads_per_month * point_uah + b1.valve_operations_per_month * valve_uah
    measure("monthly_events_uah", round(monthly, 1), "uAh",
            note=f"{b1.point_reads_per_month:g} point read(s) and {b1.valve_operations_per_month:g} valve "
                 "operation(s) a month")
    return monthly


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
    monthly_uah = monthly_events_uah(meter, plan, measure)
    yearly_ah = charge_per_year_ah(per_day_uah, monthly_uah) if not math.isnan(monthly_uah) else float("nan")
    measure("charge_per_year_mah", round(yearly_ah * 1e3, 1), "mAh", note="days and monthly events")
    measure("self_discharge_mah_per_year", round(battery.self_discharge_fraction_per_year * battery.capacity_ah * 1e3,
                                                 1), "mAh", note=f"{battery.chemistry} {battery.capacity_ah:g} Ah")
    years = plan_battery_years(battery, per_day_uah, monthly_uah) if not math.isnan(monthly_uah) else float("nan")
    limit = years_limit(plan, level)
    measure("projected_years", round(years, 2), "years", low=limit,
            note=f"{battery.usable_ah:g} Ah usable / (charge per year + self-discharge)"
                 + ("" if limit is not None else f"; {level} recorded, not judged"))
    measure.judge()
