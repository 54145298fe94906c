"""C16: the meter reports on its configured schedule, with the business model's content and within the
sizes of table 4-1 (white paper 4.1).

The supply is set to the plan's voltage and a known forward flow is injected by the stimulus. For each
schedule the plan lists (household: a report a day, a freeze every 30 min; leak investigation: hourly,
every 5 min; large meter: twice a day; intensive: every 2 h) the meter is configured over its near-end
port (over the platform where it has none). Its first report under the new schedule lets it settle (its
freezes may straddle the switch); then the plan's days are watched. Times are the platform's receptions:
every gap between consecutive reports is judged against the schedule's period, and the count against the
days watched. Content is decoded with the device codec and judged against the bench: the freeze interval
and count, the configured period, each freeze's volume against the flow injected, no reverse volume, and
the battery voltage against the supply. Sizes: every message the platform received during the check, the
report of each schedule and one immediate alarm (a magnet, so its size is seen too) included.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import first_report_at_level
from rig.analysis.reports import (
    DAY_S,
    REPORT_KINDS,
    UNDECODED,
    Schedule,
    alarm_messages,
    interval_errors_s,
    largest_sizes,
    report_content,
    reports_between,
    schedule_of,
    size_limit_bytes,
)
from rig.coverage import CoverageSetting
from rig.meter_session import MeterSession
from rig.platform.server import Uplink
from rig.profiles.plan import PlanProfile

SIZED_KINDS = (*REPORT_KINDS, "alarm")  # the kinds table 4-1 gives a budget of their own


def furthest(values: list[float], target: float) -> float:
    """The value furthest from `target` (NaN when there is none)."""
    return max(values, key=lambda value: abs(value - target), default=float("nan"))


def decoded_json(uplinks: list[Uplink], zone: ZoneInfo) -> str:
    """The uplinks as the platform received and decoded them (evidence)."""
    return json.dumps([
        {"received": datetime.fromtimestamp(u.time_s, zone).isoformat(timespec="seconds"), "size_bytes": u.size_bytes,
         "message": u.message, "error": u.error} for u in uplinks
    ], indent=1, default=str)


def configure_schedule(meter: MeterSession, setting: str, plan: PlanProfile) -> str:
    """Puts the meter on `setting` over its near-end port (takes effect at once) or the platform; says which."""
    if meter.device.parts.maintenance:
        meter.maintenance.set_config("schedule", setting)
        return "set over the near-end port"
    ticket = meter.platform.queue_downlink(meter.device.identity.imei,
                                           {"type": "config_write", "key": "schedule", "value": setting})
    meter.bench.clock.wait_until(lambda: ticket.answered_at is not None, plan.business_model.downlink.response_max_s)
    if ticket.answer is None or ticket.answer.get("status") != "ok":
        pytest.fail(f"the meter did not accept schedule {setting} from the platform ({ticket.answer}), "
                    "so its reports could not be judged against it")
    return "written by the platform"


def watch_schedule(meter: MeterSession, schedule: Schedule, plan: PlanProfile, measure: Recorder) -> None:
    """Configure `schedule`, let one report settle it, watch the plan's days and judge times and content."""
    c16 = plan.checks.C16
    zone = ZoneInfo(plan.time.timezone)
    name = schedule.name
    how = configure_schedule(meter, schedule.setting, plan)
    measure(f"{name}_setting", schedule.setting, note=how)
    settle = meter.wait_for_report(DAY_S + c16.report_time_tolerance_s)
    if settle is None:
        measure(f"{name}_reports", 0, "", low=schedule.reports_in(c16.days_per_schedule * DAY_S),
                note="no report within a day of the switch")
        return
    watched_s = c16.days_per_schedule * DAY_S
    end_s = settle.time_s + watched_s + c16.report_time_tolerance_s
    meter.bench.clock.sleep(max(end_s - meter.bench.clock.now(), 0.0))
    reports = reports_between(meter.platform.uplinks, settle.time_s, end_s)
    allure.attach(decoded_json([settle, *reports], zone), f"{name}: decoded reports (the first settles the switch)",
                  allure.attachment_type.JSON)

    expected = schedule.reports_in(watched_s)
    measure(f"{name}_reports", len(reports), "", low=expected, high=expected,
            note=f"received in the {c16.days_per_schedule} days after the settling report")
    errors = interval_errors_s([settle.time_s, *(r.time_s for r in reports)], schedule.report_period_s)
    measure(f"{name}_interval_error_max_s", round(abs(furthest(errors, 0.0)), 1), "s",
            high=c16.report_time_tolerance_s, note=f"gaps between receptions vs the {schedule.report_period_s:g} s "
                                                    "period (a missing report shows as a whole period)")
    if name == "household":
        times = sorted({datetime.fromtimestamp(r.time_s, zone).strftime("%H:%M:%S") for r in reports})
        window = plan.business_model.household
        measure("household_report_local_times", ", ".join(times),
                note=f"the plan's window {window.report_window_start:%H:%M}-{window.report_window_end:%H:%M}; "
                     "the time of day is the stagger's (C4)")
    if not reports:
        return
    contents = [report_content(r.message, c16.flow_l_per_h, c16.supply_voltage_v) for r in reports]
    measure(f"{name}_freeze_interval_s", furthest([c.freeze_interval_s for c in contents], schedule.freeze_interval_s),
            "s", low=schedule.freeze_interval_s, high=schedule.freeze_interval_s, note="the worst report")
    measure(f"{name}_freeze_count", furthest([c.freeze_count for c in contents], schedule.freezes_per_report), "",
            low=schedule.freezes_per_report, high=schedule.freezes_per_report, note="the worst report")
    measure(f"{name}_report_period_s", furthest([c.report_period_s for c in contents], schedule.report_period_s),
            "s", low=schedule.report_period_s, high=schedule.report_period_s, note="as the report states it")
    volume_error_l = abs(furthest([c.freeze_volume_error_l for c in contents], 0))
    measure(f"{name}_freeze_volume_error_max_l", round(volume_error_l, 2), "L", high=c16.volume_tolerance_l,
            note=f"each freeze vs {c16.flow_l_per_h:g} L/h x its interval")
    measure(f"{name}_reverse_volume_max_l", max(c.reverse_l for c in contents), "L", high=c16.volume_tolerance_l,
            note="no reverse flow injected")
    measure(f"{name}_battery_error_max_v", round(abs(furthest([c.battery_error_v for c in contents], 0)), 3), "V",
            high=c16.voltage_tolerance_v, note=f"reported battery voltage vs {c16.supply_voltage_v:g} V on the supply")
    measure(f"{name}_flow_error_max_l_per_h", furthest([c.flow_error_l_per_h for c in contents], 0), "L/h",
            note="instantaneous flow vs the flow injected, recorded")
    cumulative = sorted({r.message["daily_cumulative_l"] for r in reports})
    measure(f"{name}_cumulative_l", ", ".join(map(str, cumulative)),
            note="daily_cumulative_l as reported, recorded (the codec reference calls it the total register)")


def judge_sizes(uplinks: list[Uplink], plan: PlanProfile, measure: Recorder) -> None:
    """Every message the platform received during the check, against table 4-1."""
    sizes = plan.business_model.uplink
    largest = largest_sizes(uplinks)
    for kind in SIZED_KINDS:
        if kind not in largest:
            measure(f"{kind}_size_max_bytes", "none received")
    for kind, (size, count) in sorted(largest.items()):
        budget = size_limit_bytes(kind, sizes)
        budget_text = f"< {budget + 1} B" if kind in SIZED_KINDS else f"<= {sizes.message_max_bytes} B"
        measure(f"{kind}_size_max_bytes", size, "B", high=budget, note=f"{count} received; table 4-1 {budget_text}")
    measure("uplink_size_max_bytes", max((size for size, _ in largest.values()), default=0), "B",
            high=sizes.message_max_bytes, note=f"{len(uplinks)} messages, the raw payload at the platform")
    measure("undecoded_uplinks", largest.get(UNDECODED, (0, 0))[1], "", high=0, note="the device codec refused them")
    rows = [f"{u.time_s:.3f} {u.size_bytes:4d} B {u.message['type'] if u.message else UNDECODED}" for u in uplinks]
    allure.attach("\n".join(rows), "size of every message the platform received", allure.attachment_type.TEXT)


@pytest.mark.check("C16")
@pytest.mark.needs("attenuator", "power_analyser", "stimulus")
def test_c16_meter_reports_on_each_schedule_with_its_content_and_sizes(
        meter: MeterSession, coverage: CoverageSetting, plan: PlanProfile, measure: Recorder) -> None:
    c16 = plan.checks.C16
    meter.bench.supply.set_voltage(c16.supply_voltage_v)
    measure("supply_voltage_v", c16.supply_voltage_v, "V", note="set on the supply")
    first_report_at_level(meter, measure, coverage, plan, "its schedules could not be observed")
    meter.stimulate("flow", c16.flow_l_per_h)
    measure("flow_injected_l_per_h", c16.flow_l_per_h, "L/h", note="steady forward flow from the first report on")
    for name in c16.schedules:
        watch_schedule(meter, schedule_of(name, plan.business_model), plan, measure)

    alarm_wait_s = plan.checks.C17.immediate_within_s
    since = len(meter.platform.uplinks)
    meter.stimulate("magnetic")
    alarm = meter.platform.wait_for_uplink(lambda u: bool(alarm_messages([u])), alarm_wait_s, since=since)
    if alarm is None:
        measure("alarm_for_its_size", "none", note=f"no alarm within {alarm_wait_s:g} s of a magnet (C17's business)")
    judge_sizes(list(meter.platform.uplinks), plan, measure)
    allure.attach(decoded_json(list(meter.platform.uplinks), ZoneInfo(plan.time.timezone)),
                  "every message the platform received, decoded", allure.attachment_type.JSON)
    measure.judge()
