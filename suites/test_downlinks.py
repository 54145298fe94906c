"""C18 point read, C19 configuration, C20 valve: the platform's commands, queued while the meter sleeps,
are answered at its next wake (the white paper's 24 h response window, low power first).

A command is queued on the platform while the meter sleeps (C18, C20: an hour after a report; C19: at
random times); the platform delivers it at the meter's next uplink and the meter's `response` answers
it. Queue-to-answer is the platform's queueing time to its reception of that response. The size of every
command queued is judged against table 4-2 (config < 50 B, point read and valve < 40 B).

- C18: one point read; answered within the plan's window, executed, with a reading.
- C19: the plan's number of configuration writes and queries at random times (seeded by the bench seed,
  reproducible), each day's share on its day, over the plan's days. A batch of meters as seen by one
  device: after each report the meter number is set over the near-end port to a number drawn from a
  fleet in which a day's writes are at most the plan's daily share of terminals, so the report slot
  moves over the stagger range (set at once: a meter that plans its next slot after the present time
  never waits more than a day for it). Queue-to-answer against the plan's limits; the values applied:
  every query shows the last value written before it, the reports carry the written freeze interval,
  and the near-end port shows the last values at the end (the meter's number and settings are restored
  afterwards).
- C20: the plan's valve operations, one at a time: the reply, the valve state in the report after the
  answer, and the motor's current pulse in the supply's data log around the wake (recorded). Executed
  where the device profile allows closing, refused with an error where it does not.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import random
from collections.abc import Iterator

import allure
import pytest

from fixtures.checks import Recorder, not_applicable
from fixtures.levels import first_report_at_level
from rig.analysis.downlinks import (
    DAY_S,
    answer_delay_s,
    config_mismatches,
    configuration_commands,
    delivery_order,
    first_after,
    fleet_size,
    fraction_within,
    longest_pulse_s,
    point_read_judged,
    query_mismatches,
    report_mismatches,
    required_valve_outcome,
    status_of,
    wake_uplink,
    write_times_s,
)
from rig.analysis.trace import Trace
from rig.bench import Bench
from rig.coverage import CoverageSetting
from rig.meter_session import MeterSession, reports_of
from rig.platform.server import Ticket, Uplink
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile
from rig.report.plots import trace_png

ASLEEP_AFTER_REPORT_S = 3600.0  # the report's exchange is long over: the meter sleeps
NEXT_REPORT_WITHIN_S = 2 * DAY_S  # a daily report, and a failed day
# C19: keys that leave the schedule alone (T1/T3/schedule are C4's and C16's), values that raise no alarm
# at the bench's supply and flow; the freeze interval shows in every report
CONFIG_VALUES: dict[str, tuple[int, ...]] = {
    "freeze_interval_s": (1800, 3600),
    "low_flow_threshold": (1, 2, 3),
    "high_flow_threshold": (2000, 2500, 3000),
    "low_battery_threshold_mv": (3100, 3200, 3300),
    "reverse_flow_threshold": (1, 2, 5),
    "pressure_high_kpa": (500, 600, 700),
    "pressure_low_kpa": (100, 150),
}
VISIBLE_KEY = "freeze_interval_s"
QUERY_SHARE = 1 / 3
# C20: the supply is logged around the expected wake; a valve motor (~150 mA on top of the module) shows as
# the longest run of 0.1 s means above 130 mA (TX bursts are shorter): recorded, the judgement is the reply
LOG_PERIOD_S = 0.1
LOG_BEFORE_WAKE_S = 120.0
LOG_AFTER_WAKE_S = 240.0


def queue(meter: MeterSession, message: dict) -> Ticket:
    return meter.platform.queue_downlink(meter.device.identity.imei, message)


def sleep_until(meter: MeterSession, time_s: float) -> None:
    meter.bench.clock.sleep(max(time_s - meter.bench.clock.now(), 0.0))


def wait_answered(meter: MeterSession, tickets: list[Ticket], until_s: float) -> None:
    meter.bench.clock.wait_until(lambda: all(t.answered_at is not None for t in tickets),
                                 max(until_s - meter.bench.clock.now(), 0.0))


def describe(ticket: Ticket) -> str:
    delay = answer_delay_s(ticket)
    return (f"{ticket.message} ({len(ticket.payload)} B, {ticket.payload.hex()}): queued {ticket.queued_at:.3f}, "
            f"answered {ticket.answered_at if ticket.answered_at is not None else 'never'} "
            f"({delay:.1f} s) with {ticket.answer}")


def attach_wake(meter: MeterSession, mark: int | None, title: str) -> None:
    if meter.monitor is not None and mark is not None:
        allure.attach(meter.monitor.excerpt(mark), title, allure.attachment_type.TEXT)


# ---- C18 ------------------------------------------------------------------------------------------------


@pytest.mark.check("C18")
@pytest.mark.needs("attenuator", "power_analyser")
def test_c18_point_read_queued_while_the_meter_sleeps_is_answered_at_its_next_wake(
        meter: MeterSession, coverage: CoverageSetting, level: str, plan: PlanProfile, measure: Recorder) -> None:
    c18 = plan.checks.C18
    report = first_report_at_level(meter, measure, coverage, plan, "no point read could be fetched")
    sleep_until(meter, report.time_s + ASLEEP_AFTER_REPORT_S)
    mark = meter.monitor.mark() if meter.monitor is not None else None
    ticket = queue(meter, {"type": "point_read"})
    measure("downlink_bytes", len(ticket.payload), "B", high=plan.business_model.downlink.point_read_below_bytes - 1,
            note=f"< {plan.business_model.downlink.point_read_below_bytes} B (table 4-2)")
    wait_answered(meter, [ticket], ticket.queued_at + c18.response_max_s)
    measure("queue_to_answer_s", round(answer_delay_s(ticket), 1), "s", high=c18.response_max_s,
            note=f"queued {ASLEEP_AFTER_REPORT_S:.0f} s after a report, while the meter sleeps")
    wake = wake_uplink(meter.platform.uplinks, ticket)
    if wake is not None and ticket.answered_at is not None:
        measure("answer_after_wake_s", round(ticket.answered_at - wake.time_s, 1), "s",
                note=f"the meter's first uplink after the queueing: {wake.message['type']}")
    measure("answer_status", status_of(ticket), note="ok: executed")
    measure("answered_with_reading", int(point_read_judged(ticket, c18.response_max_s)), "", low=1,
            note="executed, with cumulative_l in the answer")
    value = (ticket.answer or {}).get("value") or {}
    if "cumulative_l" in value and meter.device.parts.maintenance:
        reading = meter.maintenance.reading()
        measure("point_read_cumulative_l", value["cumulative_l"], "L", note=f"answer {value}")
        measure("near_end_cumulative_l", round(reading.cumulative_l, 1), "L",
                note="the near-end port's reading just after the answer (the flow runs on meanwhile)")
    allure.attach(describe(ticket), "point read and its answer (decoded)", allure.attachment_type.TEXT)
    attach_wake(meter, mark, "AT monitor from the queueing: the wake and its exchange")
    measure.judge()


# ---- C19 ------------------------------------------------------------------------------------------------


def set_number(meter: MeterSession, number: int) -> int:
    """The meter becomes another meter of the batch: its report slot follows the number."""
    meter.maintenance.set_meter_number(number)
    return number


def configure_batch(meter: MeterSession, times: list[float], commands: list[dict], numbers: Iterator[int]
                    ) -> tuple[list[Ticket], list[int]]:
    """Queue each command at its time; the meter takes the next number at the start and after each report."""
    used = [set_number(meter, next(numbers))]
    seen = len(meter.platform.uplinks)
    tickets = []
    for time_s, command in zip(times, commands, strict=True):
        while (report := meter.wait_for_report(max(time_s - meter.bench.clock.now(), 0.0), since=seen)) is not None:
            seen = meter.platform.uplinks.index(report) + 1
            used.append(set_number(meter, next(numbers)))
        tickets.append(queue(meter, command))
    return tickets, used


def tickets_csv(tickets: list[Ticket]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["command_id", "type", "key", "value", "bytes", "queued_s", "answered_s", "delay_s", "status",
                     "answer_value"])
    for t in tickets:
        answer_value = (t.answer or {}).get("value")
        writer.writerow([t.command_id, t.message["type"], t.message["key"], t.message.get("value", ""),
                         len(t.payload), f"{t.queued_at:.3f}", t.answered_at, f"{answer_delay_s(t):.1f}",
                         status_of(t), answer_value if answer_value is not None else ""])
    return out.getvalue()


@pytest.mark.check("C19")
@pytest.mark.needs("attenuator", "power_analyser", "maintenance")
def test_c19_configuration_of_a_batch_is_answered_in_time_and_applied(
        meter: MeterSession, bench: Bench, coverage: CoverageSetting, level: str, plan: PlanProfile,
        measure: Recorder) -> None:
    c19 = plan.checks.C19
    limit_bytes = plan.business_model.downlink.config_below_bytes
    first_report_at_level(meter, measure, coverage, plan, "no configuration could be delivered")
    own_number = meter.maintenance.meter_number()
    baseline = meter.maintenance.config()
    rng = random.Random(f"C19 {bench.seed}")
    fleet = fleet_size(c19.writes, c19.days, c19.daily_terminal_fraction_max)
    numbers = (rng.randrange(fleet) for _ in itertools.count())
    first_uplink = len(meter.platform.uplinks)
    times = write_times_s(rng, c19.writes, c19.days, meter.bench.clock.now())
    commands = configuration_commands(rng, len(times), CONFIG_VALUES, QUERY_SHARE)
    tickets, used = configure_batch(meter, times, commands, numbers)
    measure("fleet_size", fleet, "meters", note=f"{c19.writes} writes over {c19.days} days are at most "
                                                f"{c19.daily_terminal_fraction_max:.0%} of it a day")
    measure("meter_numbers_set", len(used), "", note="over the near-end port, at the start and after each report")
    last_limit_s = c19.answer_limits[-1].within_s
    wait_answered(meter, tickets, tickets[-1].queued_at + last_limit_s)
    final = meter.maintenance.config()
    meter.maintenance.set_meter_number(own_number)
    for key in CONFIG_VALUES:
        meter.maintenance.set_config(key, baseline[key])

    delays = [answer_delay_s(t) for t in tickets]
    answered = [d for d in delays if not math.isnan(d)]
    measure("commands", len(tickets), "", note=f"{sum(t.message['type'] == 'config_write' for t in tickets)} writes, "
                                               f"{sum(t.message['type'] == 'config_query' for t in tickets)} queries")
    measure("largest_downlink_bytes", max(len(t.payload) for t in tickets), "B", high=limit_bytes - 1,
            note=f"< {limit_bytes} B (table 4-2)")
    measure("unanswered", len(delays) - len(answered), "", note=f"within {last_limit_s:.0f} s of the last queueing")
    if answered:
        measure("longest_queue_to_answer_s", round(max(answered), 1), "s", note="recorded")
    for limit in c19.answer_limits:
        measure(f"answered_within_{limit.within_s:g}s", round(fraction_within(delays, limit.within_s), 4), "",
                low=limit.fraction_min, note=f"of {len(delays)} commands")
    refused = [t for t in tickets if status_of(t) not in ("ok", "unanswered")]
    measure("not_executed", len(refused), "", high=0, note="answered with another status than ok")
    deliveries, order = delivery_order(meter.monitor.lines if meter.monitor else None, meter.codec, tickets)
    queried = query_mismatches(deliveries, baseline)
    measure("queries_not_showing_the_last_write", len(queried), "", high=0,
            note=f"of {sum(t.message['type'] == 'config_query' for t in tickets)} queries, writes {order}")
    reports = reports_of(meter, first_uplink)
    in_reports = report_mismatches(reports, deliveries, baseline, VISIBLE_KEY)
    measure(f"reports_with_another_{VISIBLE_KEY}", len(in_reports), "", high=0,
            note=f"of {len(reports)} reports: the value written before each")
    at_end = config_mismatches(deliveries, baseline, final, "near-end port at the end")
    measure("settings_not_as_last_written", len(at_end), "", high=0, note="GET CONFIG over the near-end port")

    allure.attach(tickets_csv(tickets), "configuration commands and answers", allure.attachment_type.CSV)
    mismatches = [*queried, *in_reports, *at_end]
    allure.attach("\n".join(str(m) for m in mismatches) or "none", "values not applied", allure.attachment_type.TEXT)
    allure.attach(" ".join(str(n) for n in used), "meter numbers set", allure.attachment_type.TEXT)
    allure.attach("\n".join(f"{r.time_s:.3f} number {r.message['meter_number']} {VISIBLE_KEY} "
                            f"{r.message.get(VISIBLE_KEY)}" for r in reports), "reports in the run",
                  allure.attachment_type.TEXT)
    measure.judge()


# ---- C20 ------------------------------------------------------------------------------------------------


def supply_around_wake(meter: MeterSession, expected_wake_s: float) -> Trace:
    """The supply's data log from a little before the expected wake to a while after it."""
    sleep_until(meter, expected_wake_s - LOG_BEFORE_WAKE_S)
    chunks = list(meter.bench.supply.data_log(LOG_PERIOD_S, LOG_BEFORE_WAKE_S + LOG_AFTER_WAKE_S))
    return Trace.from_chunks(chunks)


def operate_valve(meter: MeterSession, action: str, after: Uplink, response_max_s: float
                  ) -> tuple[Ticket, Trace, Uplink | None]:
    """Queue `action` while the meter sleeps after `after`; the ticket, the supply around the wake, and the
    report after the answer (which shows the valve state)."""
    sleep_until(meter, after.time_s + ASLEEP_AFTER_REPORT_S)
    mark = meter.monitor.mark() if meter.monitor is not None else None
    ticket = queue(meter, {"type": "valve", "action": action})
    trace = supply_around_wake(meter, after.time_s + after.message["report_period_s"])
    wait_answered(meter, [ticket], ticket.queued_at + response_max_s)
    attach_wake(meter, mark, f"AT monitor from the {action} command's queueing")
    since = ticket.answered_at if ticket.answered_at is not None else meter.bench.clock.now()
    meter.bench.clock.wait_until(lambda: first_after(reports_of(meter), since) is not None, NEXT_REPORT_WITHIN_S)
    return ticket, trace, first_after(reports_of(meter), since)


@pytest.mark.check("C20")
@pytest.mark.needs("attenuator", "power_analyser")
def test_c20_valve_opens_and_closes_where_the_profile_allows_and_refuses_where_not(
        meter: MeterSession, coverage: CoverageSetting, level: str, plan: PlanProfile, device_profile: DeviceProfile,
        measure: Recorder) -> None:
    c20 = plan.checks.C20
    if not device_profile.valve.present:
        not_applicable("the device profile declares no remotely controlled valve")
    limit_bytes = plan.business_model.downlink.valve_below_bytes
    close_allowed = device_profile.valve.close_allowed
    report = first_report_at_level(meter, measure, coverage, plan, "no valve command could be delivered")
    measure("close_allowed", str(close_allowed).lower(), note="the device profile's remote-closing policy")
    measure("valve_at_start", report.message.get("valve"))
    evidence = []
    for action in c20.operations:
        state_before = report.message.get("valve")
        reply_required, state_required = required_valve_outcome(action, close_allowed)
        ticket, trace, after = operate_valve(meter, action, report, c20.response_max_s)
        measure(f"{action}_downlink_bytes", len(ticket.payload), "B", high=limit_bytes - 1,
                note=f"< {limit_bytes} B (table 4-2)")
        measure(f"{action}_queue_to_answer_s", round(answer_delay_s(ticket), 1), "s", high=c20.response_max_s)
        reply = status_of(ticket)
        measure(f"{action}_reply", reply, note=f"required: {reply_required}")
        measure(f"{action}_reply_as_required", int(reply == reply_required), "", low=1,
                note="executed where the profile allows, refused with an error where it does not")
        state_after = after.message.get("valve") if after is not None else "no report"
        wanted = state_required or state_before
        measure(f"{action}_valve_in_next_report", state_after, note=f"required: {wanted}")
        measure(f"{action}_state_as_required", int(state_after == wanted), "", low=1)
        pulse_s = longest_pulse_s(trace.amps, trace.period_s, c20.motor_above_ma * 1e-3)
        measure(f"{action}_motor_pulse_s", round(pulse_s, 1), "s",
                note=f"longest run of {LOG_PERIOD_S:g} s supply means above {c20.motor_above_ma:g} mA at the wake")
        marks = {"answered": ticket.answered_at} if ticket.answered_at is not None else {}
        allure.attach(trace_png(trace, f"C20 {action}: supply around the wake", marks), f"supply, {action}",
                      allure.attachment_type.PNG)
        evidence.append(describe(ticket))
        if after is None:
            pytest.fail(f"no report followed the {action} command, so the valve state could not be seen")
        report = after
    if report.message.get("valve") == "closed":
        restore = queue(meter, {"type": "valve", "action": "open"})
        wait_answered(meter, [restore], restore.queued_at + c20.response_max_s)
        measure("valve_reopened", status_of(restore), note="the bench's valve left open")
        evidence.append(describe(restore))
    allure.attach("\n".join(evidence), "valve commands and answers (decoded)", allure.attachment_type.TEXT)
    measure.judge()
