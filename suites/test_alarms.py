"""C17: magnetic interference and module separation go up at once, at most once a day each; over-flow,
reverse flow and low battery send nothing of their own and ride in the next periodic report.

After the meter's first report, on the next calendar day (the plan's time zone) from 08:00 each immediate
alarm's stimulus (the magnet, the separation relay) is applied the plan's number of times, 30 min apart:
the first must bring an alarm message to the platform within the plan's time, and no alarm may arrive more
often than the plan allows in a calendar day. Then the deferred conditions, with rates and durations from
the meter's own configuration (its near-end port, else the platform's queries): a flow above its over-flow
threshold held past its duration, a reverse flow held past its duration, then the supply lowered below the
low-battery threshold until the next report. None may bring a message of its own, and the first report
after each condition carries its flag. The next day each immediate stimulus is applied once more: a
once-a-day alarm goes up again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import first_report_at_level
from rig.analysis.reports import DAY_S, alarm_messages, alarms_per_day, first_alarm_after, is_report
from rig.coverage import CoverageSetting
from rig.meter_session import MeterSession
from rig.platform.server import Uplink
from rig.profiles.plan import PlanProfile

TRIGGERS_FROM = time(8, 0)  # local time of the first stimulus on each day
TRIGGER_SPACING_S = 1800.0
STIMULI_WINDOW_S = 12 * 3600.0  # every stimulus of a day fits in 08:00-20:00 (spacing shrinks if needed)
HOLD_MARGIN_S = 600.0  # a condition is held this much past the meter's own duration
RATE_FACTOR = 2.0  # flows at twice the meter's threshold, and at least the floor below
RATE_FLOOR_L_PER_H = 60.0
LOW_BATTERY_MARGIN_V = 0.1  # below the meter's threshold
REPORT_WITHIN_S = DAY_S + 3600.0  # any schedule reports at least daily
THRESHOLD_KEYS = ("high_flow_threshold", "high_flow_duration_s", "reverse_flow_threshold",
                  "reverse_flow_duration_s", "low_battery_threshold_mv")


@dataclass(frozen=True)
class Stimulus:
    """One thing done to the meter: what, when (bench time), and from when its condition holds."""

    name: str
    time_s: float
    holds_from_s: float
    detail: str = ""


def meter_thresholds(meter: MeterSession, plan: PlanProfile) -> dict[str, float]:
    """The over-flow, reverse-flow and low-battery settings, from the near-end port or the platform's queries."""
    if meter.device.parts.maintenance:
        values = meter.maintenance.config()
    else:
        tickets = {key: meter.platform.queue_downlink(meter.device.identity.imei, {"type": "config_query", "key": key})
                   for key in THRESHOLD_KEYS}
        meter.bench.clock.wait_until(lambda: all(t.answered_at is not None for t in tickets.values()),
                                     plan.business_model.downlink.response_max_s)
        values = {}
        for ticket in tickets.values():
            values.update((ticket.answer or {}).get("value") or {})
    missing = [key for key in THRESHOLD_KEYS if key not in values]
    if missing:
        pytest.fail(f"the meter did not tell its {', '.join(missing)}, so the deferred alarms could not be stimulated")
    return {key: float(values[key]) for key in THRESHOLD_KEYS}


def at_local(day: date, start: time, offset_s: float, zone: ZoneInfo) -> float:
    return datetime.combine(day, start, zone).timestamp() + offset_s


def local(time_s: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(time_s, zone).strftime("%Y-%m-%d %H:%M:%S")


def beyond(threshold: float) -> float:
    return max(RATE_FACTOR * threshold, RATE_FLOOR_L_PER_H)


class Stimulator:
    """Applies stimuli at bench times and remembers them for the evidence."""

    def __init__(self, meter: MeterSession):
        self.meter = meter
        self.applied: list[Stimulus] = []

    def at(self, time_s: float, name: str, value: float | None = None, holds_after_s: float = 0.0,
           detail: str = "") -> Stimulus:
        self.meter.bench.clock.sleep(max(time_s - self.meter.bench.clock.now(), 0.0))
        now = self.meter.bench.clock.now()
        if name == "low_battery":
            self.meter.bench.supply.set_voltage(value)
        else:
            self.meter.stimulate(name, value)
        stimulus = Stimulus(name, now, now + holds_after_s, detail)
        self.applied.append(stimulus)
        return stimulus


def immediate_triggers(stimulator: Stimulator, day: date, names: list[str], times_each: int,
                       zone: ZoneInfo) -> dict[str, float]:
    """Each of `names` `times_each` times from 08:00 on `day`; the first trigger's time of each."""
    spacing_s = min(TRIGGER_SPACING_S, STIMULI_WINDOW_S / (len(names) * times_each + 1))
    first: dict[str, float] = {}
    for index, name in enumerate(name for name in names for _ in range(times_each)):
        stimulus = stimulator.at(at_local(day, TRIGGERS_FROM, index * spacing_s, zone), name)
        first.setdefault(name, stimulus.time_s)
    return first


def deferred_conditions(stimulator: Stimulator, thresholds: dict[str, float], start_s: float) -> dict[str, Stimulus]:
    """Over-flow, then reverse flow, each held past the meter's duration, then the supply below the threshold."""
    over_rate = beyond(thresholds["high_flow_threshold"])
    over_hold_s = thresholds["high_flow_duration_s"] + HOLD_MARGIN_S
    over = stimulator.at(start_s, "flow", over_rate, thresholds["high_flow_duration_s"],
                         f"{over_rate:g} L/h for {over_hold_s:g} s")
    reverse_rate = -beyond(thresholds["reverse_flow_threshold"])
    reverse_hold_s = thresholds["reverse_flow_duration_s"] + HOLD_MARGIN_S
    reverse = stimulator.at(over.time_s + over_hold_s, "flow", reverse_rate, thresholds["reverse_flow_duration_s"],
                            f"{reverse_rate:g} L/h for {reverse_hold_s:g} s")
    stopped = stimulator.at(reverse.time_s + reverse_hold_s, "flow", 0.0, detail="0 L/h: stopped")
    low_v = thresholds["low_battery_threshold_mv"] / 1000.0 - LOW_BATTERY_MARGIN_V
    low = stimulator.at(stopped.time_s + TRIGGER_SPACING_S, "low_battery", low_v,
                        detail=f"supply {low_v:g} V, threshold {thresholds['low_battery_threshold_mv']:g} mV")
    return {"over_flow": over, "reverse_flow": reverse, "low_battery": low}


def first_report_after(uplinks: list[Uplink], time_s: float) -> Uplink | None:
    return next((u for u in uplinks if is_report(u) and u.time_s >= time_s), None)


def timeline(stimuli: list[Stimulus], uplinks: list[Uplink], zone: ZoneInfo) -> str:
    """Stimuli and what the platform received, in bench-time order with local times (evidence)."""
    rows = [(s.time_s, f"stimulus {s.name} {s.detail}".rstrip()) for s in stimuli]
    rows += [(u.time_s, f"platform  {u.message['type']} {u.message.get('alarm', '')} "
                        f"{' '.join(u.message.get('alarms', []))} ({u.size_bytes} B)".rstrip())
             for u in uplinks if u.message is not None and u.message["type"] != "response"]
    return "\n".join(f"{local(t, zone)} {text}" for t, text in sorted(rows, key=lambda row: row[0]))


@pytest.mark.check("C17")
@pytest.mark.needs("attenuator", "power_analyser", "stimulus")
def test_c17_meter_raises_magnet_and_separation_at_once_and_the_others_in_the_next_report(
        meter: MeterSession, coverage: CoverageSetting, plan: PlanProfile, measure: Recorder) -> None:
    c17 = plan.checks.C17
    zone = ZoneInfo(plan.time.timezone)
    first = first_report_at_level(meter, measure, coverage, plan, "its alarms could not be observed")
    thresholds = meter_thresholds(meter, plan)
    for key, value in thresholds.items():
        measure(key, value, note="the meter's own setting, the stimuli follow it")
    stimulator = Stimulator(meter)
    day = datetime.fromtimestamp(first.time_s, zone).date() + timedelta(days=1)

    first_trigger = immediate_triggers(stimulator, day, c17.immediate_alarms, c17.triggers_per_day, zone)
    deferred_start_s = stimulator.applied[-1].time_s + TRIGGER_SPACING_S
    supply_v = meter.bench.supply.voltage_v()
    deferred = deferred_conditions(stimulator, thresholds, deferred_start_s)
    report = meter.wait_for_report(REPORT_WITHIN_S)
    meter.bench.supply.set_voltage(supply_v)
    if report is None:
        measure("report_after_the_conditions", "none", note=f"within {REPORT_WITHIN_S:.0f} s")
        pytest.fail("no periodic report followed the deferred conditions, so their flags could not be judged")
    next_day = immediate_triggers(stimulator, day + timedelta(days=1), c17.immediate_alarms, 1, zone)
    meter.bench.clock.sleep(max(stimulator.applied[-1].time_s + c17.immediate_within_s - meter.bench.clock.now(), 0))

    uplinks = list(meter.platform.uplinks)
    counted = alarms_per_day(uplinks, zone)
    for name in c17.immediate_alarms:
        for when, started_s in (("", first_trigger[name]), ("next_day_", next_day[name])):
            alarm = first_alarm_after(uplinks, name, started_s)
            latency_s = round(alarm.time_s - started_s, 1) if alarm is not None else "none"
            measure(f"{name}_{when}latency_s", latency_s, "s", high=c17.immediate_within_s,
                    note=f"trigger at {local(started_s, zone)} to the alarm at the platform")
        per_day = {d.isoformat(): n for (alarm_name, d), n in counted.items() if alarm_name == name}
        measure(f"{name}_per_day_max", max(per_day.values(), default=0), "", high=c17.immediate_per_day_max,
                note=f"{c17.triggers_per_day} triggers on {day}; per day: {per_day}")
    for name in c17.deferred_alarms:
        condition = deferred[name]
        own = alarm_messages(uplinks, [name])
        measure(f"{name}_immediate_messages", len(own), "", high=0,
                note="; ".join(local(u.time_s, zone) for u in own) or "none: it waits for the report")
        flagged = first_report_after(uplinks, condition.holds_from_s)
        carried = flagged is not None and name in flagged.message.get("alarms", [])
        measure(f"{name}_in_next_report", int(carried), "", low=1,
                note=f"{condition.detail}; report at {local(flagged.time_s, zone)}" if flagged else "no report")
    measure("battery_mv_in_next_report", report.message["battery_mv"], "mV", note="recorded")

    allure.attach(timeline(stimulator.applied, uplinks, zone), "stimuli and messages at the platform (local time)",
                  allure.attachment_type.TEXT)
    evidence = [{"received": local(u.time_s, zone), "size_bytes": u.size_bytes, "message": u.message}
                for u in uplinks if u.message is not None and (u.message["type"] == "alarm" or u is report)]
    allure.attach(json.dumps(evidence, indent=1, default=str), "decoded alarms and the report after the conditions",
                  allure.attachment_type.JSON)
    if meter.monitor is not None:
        start_s = stimulator.applied[0].time_s
        alarm = first_alarm_after(uplinks, stimulator.applied[0].name, start_s)
        lines = [line for line in meter.monitor.lines
                 if start_s <= line.time_s <= (alarm.time_s if alarm else start_s + c17.immediate_within_s) + 5.0]
        if lines:
            allure.attach(f"trigger at {start_s:.3f}\n" + meter.monitor.excerpt(lines[0].index, lines[-1].index + 1),
                          "AT monitor from the first trigger to its alarm", allure.attachment_type.TEXT)
    measure.judge()
