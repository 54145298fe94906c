"""rig/analysis/downlinks.py on hand-made tickets, uplinks and current means (C6, C18, C19, C20 judges)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import pytest

from rig.analysis.downlinks import (
    DAY_S,
    Delivery,
    answer_delay_s,
    clock_residual_s,
    config_mismatches,
    configuration_commands,
    delivered_in_queue_order,
    delivered_on_monitor,
    delivery_order,
    first_after,
    fleet_size,
    fraction_within,
    longest_pulse_s,
    point_read_judged,
    query_mismatches,
    report_mismatches,
    report_skews_s,
    required_valve_outcome,
    status_of,
    sync_residual_s,
    wake_uplink,
    write_times_s,
)
from rig.codec import load_codec
from rig.monitor import MCU, MODULE, MonitorLine

CODEC = load_codec("reference")


@dataclass
class FakeTicket:
    message: dict
    queued_at: float
    answered_at: float | None = None
    answer: dict | None = None


@dataclass
class FakeUplink:
    time_s: float
    message: dict | None


def write(command_id: int, key: str, value: object, answered_at: float | None = 10.0, status: str = "ok") -> FakeTicket:
    message = {"type": "config_write", "key": key, "value": value, "command_id": command_id}
    answer = {"command_id": command_id, "status": status} if answered_at is not None else None
    return FakeTicket(message, 0.0, answered_at, answer)


def query(command_id: int, key: str, shown: object, answered_at: float = 10.0) -> FakeTicket:
    message = {"type": "config_query", "key": key, "command_id": command_id}
    return FakeTicket(message, 0.0, answered_at, {"command_id": command_id, "status": "ok", "value": {key: shown}})


def in_order(*tickets: FakeTicket) -> list[Delivery]:
    """Deliveries one second apart, in the order given."""
    return [Delivery(float(index), ticket) for index, ticket in enumerate(tickets)]


def nnmi(time_s: float, index: int, message: dict) -> MonitorLine:
    payload = CODEC.encode_downlink(message)
    return MonitorLine(index, time_s, MODULE, f"+NNMI:{len(payload)},{payload.hex().upper()}")


def report(received_s: float, **fields: object) -> FakeUplink:
    return FakeUplink(received_s, {"type": "basic_report", **fields})


# ---- answers ------------------------------------------------------------------------------------------


def test_answer_delay_is_queue_to_answer_and_nan_while_unanswered() -> None:
    assert answer_delay_s(FakeTicket({}, 100.0, 400.0)) == 300.0
    assert math.isnan(answer_delay_s(FakeTicket({}, 100.0)))


def test_fraction_within_counts_unanswered_as_late() -> None:
    assert fraction_within([10.0, DAY_S, DAY_S + 1, math.nan], DAY_S) == 0.5
    assert math.isnan(fraction_within([], DAY_S))


def test_status_says_unanswered_without_an_answer() -> None:
    assert status_of(FakeTicket({}, 0.0)) == "unanswered"
    assert status_of(FakeTicket({}, 0.0, 1.0, {"status": "refused"})) == "refused"


@pytest.mark.parametrize("answered_at, answer, judged", [
    (3600.0, {"status": "ok", "value": {"cumulative_l": 12, "reverse_l": 0}}, True),
    (DAY_S + 1.0, {"status": "ok", "value": {"cumulative_l": 12}}, False),  # late
    (3600.0, {"status": "unknown"}, False),  # the c18 defect: not understood
    (3600.0, {"status": "ok"}, False),  # no reading
    (None, None, False),
], ids=["answered", "late", "unknown", "no-reading", "unanswered"])
def test_point_read_judged_needs_a_reading_within_the_window(answered_at: float | None, answer: dict | None,
                                                              judged: bool) -> None:
    assert point_read_judged(FakeTicket({"type": "point_read"}, 0.0, answered_at, answer), DAY_S) is judged


def test_the_wake_is_the_first_uplink_after_the_queueing() -> None:
    uplinks = [report(100.0), FakeUplink(150.0, None), FakeUplink(200.0, {"type": "alarm"}), report(300.0)]
    assert wake_uplink(uplinks, FakeTicket({}, 120.0)).time_s == 200.0
    assert first_after(uplinks, 120.0, "basic_report").time_s == 300.0
    assert first_after(uplinks, 300.0) is None


# ---- C6 ---------------------------------------------------------------------------------------------


def test_clock_residual_is_taken_against_the_middle_of_the_read() -> None:
    assert clock_residual_s(1000.0, 998.0, 1000.0) == 1.0
    assert clock_residual_s(1299.0, 998.0, 1000.0) == 300.0


@pytest.mark.parametrize("shown, residual", [(105.0, 0.0), (98.5, 0.5), (112.0, 1.0), (410.0, 299.0)])
def test_sync_residual_is_the_distance_outside_sent_to_received(shown: float, residual: float) -> None:
    assert sync_residual_s(100.0, 110.0, shown) == residual


def test_report_skews_are_meter_time_minus_reception() -> None:
    assert report_skews_s([report(1000.0, time_s=1300), report(2000.0, time_s=1998)]) == [300.0, -2.0]


# ---- C19 --------------------------------------------------------------------------------------------


def test_fleet_size_keeps_the_days_share_within_the_fraction() -> None:
    fleet = fleet_size(1000, 30, 0.02)
    assert fleet == 1700 and math.ceil(1000 / 30) / fleet <= 0.02


def test_write_times_give_each_day_its_share_at_random_and_are_reproducible() -> None:
    times = write_times_s(random.Random(7), 100, 30, 1000.0)
    per_day = np.bincount([int((t - 1000.0) // DAY_S) for t in times], minlength=30)
    assert len(times) == 100 and times == sorted(times)
    assert per_day.min() >= 3 and per_day.max() <= 4 and len(per_day) == 30
    assert times == write_times_s(random.Random(7), 100, 30, 1000.0)


def test_configuration_commands_use_the_listed_values() -> None:
    values = {"a": (1, 2), "b": (5,)}
    commands = configuration_commands(random.Random(3), 200, values, 1 / 3)
    writes = [c for c in commands if c["type"] == "config_write"]
    queries = [c for c in commands if c["type"] == "config_query"]
    assert len(writes) + len(queries) == 200 and 40 < len(queries) < 95
    assert all(c["value"] in values[c["key"]] for c in writes)
    assert {c["key"] for c in commands} == {"a", "b"}


def test_a_query_must_show_the_last_executed_write_before_it() -> None:
    baseline = {"a": 1, "b": 7}
    tickets = [query(1, "a", 1), write(2, "a", 5), query(3, "a", 5), write(4, "a", 9, status="refused"),
               query(5, "a", 5), query(6, "b", 7)]
    assert query_mismatches(in_order(*tickets), baseline) == []
    not_applied = [query(1, "a", 1), write(2, "a", 5), query(3, "a", 1)]  # the c19 defect: acknowledged only
    [found] = query_mismatches(in_order(*not_applied), baseline)
    assert (found.key, found.expected, found.shown) == ("a", 5, 1)


def test_a_write_sent_again_counts_where_it_landed_and_a_query_at_its_first_delivery() -> None:
    first, second, asked = write(1, "a", 5), write(2, "a", 6), query(3, "a", 6)
    again = query(4, "a", 5)
    assert query_mismatches(in_order(first, second, asked, first, again, asked), {"a": 1}) == []


def test_the_settings_at_the_end_must_be_the_last_written() -> None:
    deliveries = delivered_in_queue_order([write(1, "a", 5), write(2, "a", 6), write(3, "b", 2, answered_at=None)])
    assert config_mismatches(deliveries, {"a": 1, "b": 7}, {"a": 6, "b": 7}, "end") == []
    [found] = config_mismatches(deliveries, {"a": 1, "b": 7}, {"a": 1, "b": 7}, "end")
    assert (found.key, found.expected, found.shown) == ("a", 6, 1)


def test_a_report_shows_the_write_answered_before_it_not_one_of_its_own_wake() -> None:
    deliveries = [Delivery(1001.0, write(1, "freeze_interval_s", 3600, answered_at=1003.0))]
    reports = [report(1000.0, freeze_interval_s=1800), report(2000.0, freeze_interval_s=3600)]
    assert report_mismatches(reports, deliveries, {"freeze_interval_s": 1800}, "freeze_interval_s") == []
    stale = [report(1000.0, freeze_interval_s=1800), report(2000.0, freeze_interval_s=1800)]
    [found] = report_mismatches(stale, deliveries, {"freeze_interval_s": 1800}, "freeze_interval_s")
    assert (found.expected, found.shown) == (3600, 1800)


def test_deliveries_are_read_from_the_nnmi_lines_in_order_repeats_included() -> None:
    first, second = write(7, "pressure_low_kpa", 150), query(8, "pressure_low_kpa", 150)
    lines = [nnmi(1.0, 0, first.message), MonitorLine(1, 1.5, MCU, "AT+NUESTATS"),
             nnmi(2.0, 2, {"type": "time_sync", "time_s": 5.0, "command_id": 9}), nnmi(3.0, 3, second.message),
             nnmi(4.0, 4, first.message), MonitorLine(5, 5.0, MODULE, "+NNMI:2,ZZ")]
    found = delivered_on_monitor(lines, CODEC, [first, second])
    assert [(d.time_s, d.ticket.message["command_id"]) for d in found] == [(1.0, 7), (3.0, 8), (4.0, 7)]


def test_the_queue_order_stands_in_where_the_monitor_misses_an_answered_command() -> None:
    first, second = write(7, "pressure_low_kpa", 150), query(8, "pressure_low_kpa", 150)
    lines = [nnmi(1.0, 0, first.message), nnmi(3.0, 1, second.message)]
    assert delivery_order(lines, CODEC, [first, second])[1].startswith("as received")
    deliveries, order = delivery_order(lines[:1], CODEC, [first, second])
    assert order == "in the platform's queue order" and [d.ticket for d in deliveries] == [first, second]
    assert delivery_order(None, CODEC, [first])[1] == "in the platform's queue order"


# ---- C20 --------------------------------------------------------------------------------------------


def test_longest_pulse_counts_consecutive_periods_above_the_threshold() -> None:
    means = np.array([0.05, 0.2, 0.05, 0.2, 0.2, 0.2, 0.05])
    assert longest_pulse_s(means, 0.1, 0.13) == pytest.approx(0.3)
    assert longest_pulse_s(np.zeros(5), 0.1, 0.13) == 0.0


@pytest.mark.parametrize("action, allowed, outcome", [
    ("open", True, ("ok", "open")), ("open", False, ("ok", "open")),
    ("close", True, ("ok", "closed")), ("close", False, ("refused", None)),
])
def test_closing_is_refused_only_where_the_profile_forbids_it(action: str, allowed: bool,
                                                             outcome: tuple[str, str | None]) -> None:
    assert required_valve_outcome(action, allowed) == outcome
