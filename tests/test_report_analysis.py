"""The judges of C16 and C17 (rig/analysis/reports.py) on hand-made uplinks: schedules, content, sizes, alarms."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from rig.analysis.reports import (
    Schedule,
    alarm_messages,
    alarms_per_day,
    first_alarm_after,
    interval_errors_s,
    largest_sizes,
    report_content,
    reports_between,
    schedule_of,
    size_limit_bytes,
)
from rig.platform.server import Uplink
from rig.profiles.plan import BusinessModel, UplinkSizes

ZONE = ZoneInfo("Asia/Shanghai")


def uplink(time_s: float, message: dict | None, size_bytes: int = 17) -> Uplink:
    return Uplink(time_s, "869405035846048", size_bytes, b"", message, None if message else "CodecError: bad",
                  "CON", 1, time_s)


def report(time_s: float, **fields: object) -> Uplink:
    message = {"type": "basic_report", "battery_mv": 3500, "alarms": [], "daily_cumulative_l": 1440,
               "daily_reverse_l": 0, "instantaneous_l_per_h": 60, "freeze_interval_s": 1800,
               "report_period_s": 86400, "period_consumption_l": [30] * 48, **fields}
    return uplink(time_s, message, 172)


def alarm(time_s: float, name: str) -> Uplink:
    return uplink(time_s, {"type": "alarm", "alarm": name, "value": 1})


def local_s(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp()


@pytest.mark.parametrize("name, setting, period_s, freeze_s, freezes", [
    ("household", "household", 86400, 1800, 48),
    ("leak", "leak", 3600, 300, 12),
    ("large_meter", "large", 43200, 1800, 24),
    ("large_meter_intensive", "large_intensive", 7200, 1800, 4),
])
def test_each_schedule_of_the_business_model_gives_its_period_and_freezes(
        name: str, setting: str, period_s: float, freeze_s: float, freezes: int) -> None:
    schedule = schedule_of(name, BusinessModel())
    assert schedule == Schedule(name, setting, period_s, freeze_s)
    assert schedule.freezes_per_report == freezes
    assert schedule.reports_in(2 * 86400) == 2 * 86400 / period_s


def test_large_meters_freeze_at_the_households_period_the_plan_sets() -> None:
    business = BusinessModel(household={"freeze_period_s": 900})
    assert schedule_of("large_meter", business).freeze_interval_s == 900
    assert schedule_of("leak", business).freeze_interval_s == 300


def test_a_missed_report_shows_as_a_whole_period_and_a_late_one_twice() -> None:
    assert interval_errors_s([0.0, 3600.5, 7199.0], 3600) == pytest.approx([0.5, -1.5])
    assert interval_errors_s([0.0, 7200.0], 3600) == [3600.0]
    assert interval_errors_s([0.0, 3900.0, 7200.0], 3600) == [300.0, -300.0]
    assert interval_errors_s([5.0], 3600) == []


def test_reports_between_keeps_only_reports_in_the_half_open_window() -> None:
    uplinks = [report(10.0), alarm(20.0, "magnetic"), uplink(30.0, {"type": "response"}), report(40.0),
               uplink(45.0, None), report(50.0, type="enhanced_report")]
    assert [u.time_s for u in reports_between(uplinks, 10.0, 50.0)] == [40.0, 50.0]


def test_report_content_against_the_flow_injected_and_the_supply() -> None:
    message = report(0.0, period_consumption_l=[30] * 46 + [32, 29], instantaneous_l_per_h=59, battery_mv=3460,
                     daily_reverse_l=2, alarms=["low_battery"]).message
    content = report_content(message, 60.0, 3.5)
    assert content.freeze_count == 48 and content.freeze_interval_s == 1800 and content.report_period_s == 86400
    assert content.freeze_volume_error_l == 2.0  # the worst freeze, signed
    assert content.flow_error_l_per_h == -1.0
    assert content.battery_error_v == pytest.approx(-0.04)
    assert content.reverse_l == 2.0 and content.alarms == ("low_battery",)


def test_report_content_reads_each_freeze_against_its_own_interval() -> None:
    hourly = report(0.0, freeze_interval_s=3600, period_consumption_l=[60] * 24).message
    content = report_content(hourly, 60.0, 3.5)
    assert content.freeze_volume_error_l == 0.0 and content.freeze_count == 24  # the count is what gives it away
    assert math.isnan(report_content(report(0.0, period_consumption_l=[]).message, 60.0, 3.5).freeze_volume_error_l)


def test_largest_size_per_kind_with_undecoded_payloads_apart() -> None:
    uplinks = [report(1.0), uplink(2.0, {"type": "basic_report"}, 300), alarm(3.0, "magnetic"),
               uplink(4.0, None, 600), uplink(5.0, {"type": "response"}, 78)]
    assert largest_sizes(uplinks) == {"basic_report": (300, 2), "alarm": (17, 1), "undecoded": (600, 1),
                                      "response": (78, 1)}
    assert largest_sizes([]) == {}


def test_table_4_1_budgets_are_strict_and_the_rest_gets_the_message_maximum() -> None:
    sizes = UplinkSizes()
    assert size_limit_bytes("basic_report", sizes) == 199
    assert size_limit_bytes("enhanced_report", sizes) == 299
    assert size_limit_bytes("alarm", sizes) == 49
    assert size_limit_bytes("response", sizes) == 512
    assert size_limit_bytes("undecoded", sizes) == 512
    assert size_limit_bytes("basic_report", UplinkSizes(basic_report_below_bytes=513)) == 512


def test_alarms_are_counted_per_calendar_day_of_the_plans_zone() -> None:
    uplinks = [alarm(local_s("2026-01-06T23:59:00"), "magnetic"), alarm(local_s("2026-01-07T00:01:00"), "magnetic"),
               alarm(local_s("2026-01-07T08:00:00"), "magnetic"), alarm(local_s("2026-01-07T08:00:00"), "separation"),
               report(local_s("2026-01-07T05:50:00"), alarms=["magnetic"])]
    counted = alarms_per_day(uplinks, ZONE)
    day6, day7 = datetime(2026, 1, 6).date(), datetime(2026, 1, 7).date()
    assert counted == {("magnetic", day6): 1, ("magnetic", day7): 2, ("separation", day7): 1}


def test_first_alarm_after_a_trigger_and_alarms_by_name() -> None:
    uplinks = [alarm(5.0, "magnetic"), alarm(20.0, "separation"), alarm(30.0, "magnetic"), report(40.0)]
    assert first_alarm_after(uplinks, "magnetic", 10.0).time_s == 30.0
    assert first_alarm_after(uplinks, "magnetic", 5.0).time_s == 5.0
    assert first_alarm_after(uplinks, "low_battery", 0.0) is None
    assert [u.time_s for u in alarm_messages(uplinks, ["separation", "low_battery"])] == [20.0]
    assert len(alarm_messages(uplinks)) == 3
