"""C4 and C4f: the access stagger. A meter's first report attempt of the day falls at T1 + (n mod 200) x T3 + n2
(n2 = n mod 60 s, seed), so a fleet's reports spread over hours and are all in before 08:00; T1 and T3 written
from the platform hold from the next day; after a power loss the first attach is spread by the same rule.

C4 judges the first uplink attempt of a day (a periodic report's `AT+QLWULDATAEX` or `AT+NMGS` on the AT
monitor) by its offset from that day's T1: within [(n mod modulus) x T3, that + n2_max + wake allowance]. The
meter numbers are the meter's own (over the near-end port, else from its report) and, where the maintenance
protocol can set one, the plan's test numbers, each judged on the first day that starts after it was set; the
platform must have that report before the deadline. T1 and T3 are written from the platform (configuration
downlinks) on a day whose report is judged on the old rule, and the day after the meter answered them is
judged on the new one (under a test number with n mod modulus > 0 where the own number's would hide T3).
After a supply cut of the plan's length, the start of the first attach (the module's power-on banner, or the
MCU's `AT+CFUN=1` / `AT+CGATT=1` that follows it) is judged in the same window, counted from the supply's
return, for the same meter numbers as the daily stagger: the own number, then each test number the near-end
port can set, each with its own cut.

C4f measures the offsets of the plan's test numbers on its own bench, fits the rule the meter follows
(rig/analysis/stagger.py) and projects a fleet of consecutive numbers spread in contiguous blocks over the
plan's cells: the busiest minute of the busiest cell against the plan's limit, and the last first attempt
against the deadline. A meter that does not stagger projects its whole fleet onto T1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import first_report_at_level
from fixtures.verdicts import inconclusive
from rig.analysis.at_transcript import POWER_ON_CAUSE, Attempt, attempts, says_attached
from rig.analysis.stagger import (
    MINUTE_S,
    OffsetSample,
    StaggerRule,
    attach_start,
    clock_text,
    deadline_s,
    first_attempt_on,
    fit_rule,
    local_day,
    local_midnight_s,
    offset_sample,
    project_fleet,
    t1_on,
)
from rig.coverage import CoverageSetting
from rig.maintenance import MaintenanceRefused
from rig.meter_session import MeterSession
from rig.monitor import MCU, MODULE, MonitorLine
from rig.platform.server import Ticket, Uplink
from rig.profiles.plan import C4Stagger, PlanProfile, seconds_of_day
from rig.report.stagger_plots import fleet_png, offsets_png

REPORT_KINDS = ("basic_report", "enhanced_report")
ANSWER_WITHIN_S = 2 * 86400.0  # configuration writes ride on the next report's exchange
SETTLE_S = 600.0  # after a report, before a test number is set or the supply cut: the meter is asleep again
ATTACH_WATCH_S = 900.0  # watched beyond the window's end for the module to say it is attached
EXCERPT_BEFORE, EXCERPT_AFTER = 3, 8  # monitor lines around a marked event
EXCERPT_CHARS = 100


def plan_rule(c4: C4Stagger, t3_s: float) -> StaggerRule:
    return StaggerRule(t3_s, c4.modulus, c4.n2_max_s, c4.wake_allowance_s)


def hms(seconds: float) -> str:
    """A duration or a time of day as H:MM:SS (hours past 24 kept)."""
    whole = round(seconds)
    return f"{'-' if whole < 0 else ''}{abs(whole) // 3600}:{abs(whole) % 3600 // 60:02d}:{abs(whole) % 60:02d}"


def is_report(uplink: Uplink) -> bool:
    return uplink.message is not None and uplink.message["type"] in REPORT_KINDS


def marked_excerpt(lines: list[MonitorLine], event: MonitorLine, origin_s: float, zone: ZoneInfo,
                   heading: str) -> str:
    """The monitor around `event`, each line with its local time and its offset from `origin_s`."""
    rows = [heading]
    for line in lines[max(event.index - EXCERPT_BEFORE, 0):event.index + EXCERPT_AFTER]:
        arrow = "MCU>" if line.sender == MCU else "   <"
        mark = "  <== " if line.index == event.index else ""
        stamp = datetime.fromtimestamp(line.time_s, zone).strftime("%H:%M:%S.%f")[:-3]
        rows.append(f"{stamp} (+{line.time_s - origin_s:9.1f} s) {arrow} {line.text[:EXCERPT_CHARS]}{mark}")
    return "\n".join(rows)


def own_number(meter: MeterSession, first: Uplink, measure: Recorder) -> int:
    """The meter's number, recorded with where it came from: the near-end port, else its own report; without
    either the check is inconclusive (the window depends on the number)."""
    if meter.device.parts.maintenance:
        number, source = meter.maintenance.meter_number(), "over the near-end port"
    else:
        number, source = first.message.get("meter_number"), "from its report"
    if number is None:
        measure("own_meter_number", "unknown", note="no near-end port, and the report carries no number")
        inconclusive("the meter's number is unknown, so its stagger window is too")
    measure("own_meter_number", int(number), "", note=source)
    return int(number)


@dataclass
class DaySeen:
    """A watched day's first periodic-report attempt on the monitor and that report at the platform."""

    day: date
    attempt: Attempt | None
    report: Uplink | None


def watch_day(meter: MeterSession, day: date, zone: ZoneInfo) -> DaySeen:
    """Waits through local `day` for its first report attempt, then for the platform's reception."""
    clock = meter.bench.clock
    end_s = local_midnight_s(day + timedelta(days=1), zone)

    def first() -> Attempt | None:
        return first_attempt_on(attempts(meter.monitor.lines, meter.codec, REPORT_KINDS), day, zone)

    clock.wait_until(lambda: first() is not None, max(end_s - clock.now(), 0.0))
    attempt = first()
    report = None
    if attempt is not None:
        report = meter.platform.wait_for_uplink(lambda u: is_report(u) and u.time_s >= attempt.time_s,
                                                max(end_s - clock.now(), 0.0))
    return DaySeen(day, attempt, report)


class DayJudge:
    """Records a watched day's first attempt against the rule (and its report against the deadline)."""

    def __init__(self, meter: MeterSession, measure: Recorder, c4: C4Stagger, zone: ZoneInfo, judged: bool):
        self.meter = meter
        self.measure = measure
        self.c4 = c4
        self.zone = zone
        self.judged = judged
        self.samples: list[OffsetSample] = []
        self.labels: list[str] = []
        self.excerpts: list[str] = []

    def __call__(self, name: str, number: int, seen: DaySeen, t1: time, t3_s: float, label: str = "") -> None:
        rule = plan_rule(self.c4, t3_s)
        low, high = rule.window_s(number)
        limits = {"low": low, "high": high} if self.judged else {}
        what = f"n = {number} (n mod {self.c4.modulus} = {number % self.c4.modulus}), T1 {t1:%H:%M}, T3 {t3_s:g} s"
        if seen.attempt is None:
            self.measure(f"{name}_offset_s", "none", "s", **limits, note=f"{what}: no report attempt on {seen.day}")
            return
        sample = offset_sample(number, seen.attempt.time_s, t1, rule, self.zone)
        origin_s = t1_on(sample.day, t1, self.zone)
        self.measure(f"{name}_offset_s", round(sample.offset_s, 1), "s", **limits,
                     note=f"{what}: first attempt {clock_text(seen.attempt.time_s, self.zone)}, window "
                          f"{hms(low)} .. {hms(high)} after T1")
        if self.judged:
            closing_s = deadline_s(sample.day, t1, self.c4.deadline, self.zone)
            received = (f"received {clock_text(seen.report.time_s, self.zone)}" if seen.report is not None
                        else "never received")
            margin_s = closing_s - seen.report.time_s if seen.report is not None else float("nan")
            self.measure(f"{name}_deadline_margin_s", round(margin_s, 1), "s", low=0.0,
                         note=f"report {received}, deadline {self.c4.deadline:%H:%M}")
        self.samples.append(sample)
        self.labels.append(f"{number}\n{sample.day:%m-%d}{label}")
        self.excerpts.append(marked_excerpt(
            self.meter.monitor.lines, self.meter.monitor.lines[seen.attempt.index], origin_s, self.zone,
            f"== {name}: {what}; {sample.day} T1 {clock_text(origin_s, self.zone)}; window "
            f"+{low:g} .. +{high:g} s; first attempt +{sample.offset_s:.1f} s ({'in' if sample.inside else 'OUT'})"))

    def attach(self, title: str) -> None:
        if self.excerpts:
            allure.attach("\n\n".join(self.excerpts), f"{title}: AT monitor, offsets from T1 marked",
                          allure.attachment_type.TEXT)
        if self.samples:
            allure.attach(offsets_png(self.samples, f"{title}: first attempt of the day against the window",
                                      self.labels),
                          f"{title}: stagger plot", allure.attachment_type.PNG)


class MeterNumbers:
    """Test meter numbers set over the near-end port (where its protocol can); on leaving, the meter's own
    number is set back if any was set."""

    def __init__(self, meter: MeterSession, measure: Recorder, own: int):
        self.meter = meter
        self.measure = measure
        self.own = own
        self.changed = False

    def set(self, number: int) -> bool:
        """Sets `number` once the last exchange is over, in a fresh session (a power cut or the hours since the
        last one may have ended it); False (recorded) when the device has no near-end port or its protocol
        refuses."""
        if not self.meter.device.parts.maintenance:
            self.measure("test_numbers", "not settable", note="the device has no near-end port")
            return False
        self.meter.bench.clock.sleep(SETTLE_S)
        try:
            self.meter.log_in().set_meter_number(number)
        except (MaintenanceRefused, NotImplementedError) as refusal:
            self.measure("test_numbers", "not settable", note=f"SET NUMBER {number}: {refusal}")
            return False
        self.changed = True
        return True

    def __enter__(self) -> MeterNumbers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.changed:
            self.meter.log_in().set_meter_number(self.own)


def offsets_by_number(meter: MeterSession, first: Uplink, judge: DayJudge, plan: PlanProfile) -> None:
    """The meter's own number on the first whole day after its first report, then each of the plan's test
    numbers the near-end port can set, judged on the first day that starts after it was set."""
    c4, zone = plan.checks.C4, judge.zone
    own = own_number(meter, first, judge.measure)
    judge("own", own, watch_day(meter, local_day(first.time_s, zone) + timedelta(days=1), zone), c4.t1, c4.t3_s)
    with MeterNumbers(meter, judge.measure, own) as numbers:
        for number in [n for n in c4.meter_numbers if n != own]:
            if not numbers.set(number):
                return
            day = local_day(meter.bench.clock.now(), zone) + timedelta(days=1)
            judge(f"n{number}", number, watch_day(meter, day, zone), c4.t1, c4.t3_s)


def number_showing_t3(numbers: MeterNumbers, c4: C4Stagger) -> int:
    """A number whose window moves with T3: the meter's own, else (n mod modulus = 0) the plan's test number
    with the largest n mod modulus, where it can be set; else the own number, and T3 is recorded as unseen."""
    if numbers.own % c4.modulus:
        return numbers.own
    showing = max(c4.meter_numbers, key=lambda n: n % c4.modulus)
    if showing % c4.modulus and numbers.set(showing):
        numbers.measure("test_number", showing, "", note=f"the own n mod {c4.modulus} = 0 would hide T3")
        return showing
    numbers.measure("t3_observable", "no", note=f"n mod {c4.modulus} = 0: the window judges T1 alone")
    return numbers.own


def queue_t1_t3_writes(meter: MeterSession, c4: C4Stagger) -> dict[str, tuple[object, Ticket]]:
    """The plan's changed T1 and T3 queued on the platform as configuration writes: {key: (value, ticket)}."""
    t3 = c4.changed_t3_s
    values = {"report_t1": f"{c4.changed_t1:%H:%M}", "report_t3_s": int(t3) if float(t3).is_integer() else t3}
    return {key: (value, meter.platform.queue_downlink(meter.device.identity.imei,
                                                       {"type": "config_write", "key": key, "value": value}))
            for key, value in values.items()}


def record_answers(measure: Recorder, writes: dict[str, tuple[object, Ticket]]) -> float | None:
    """Records each write's answer and that all were answered; the last answer's time, None if one is missing."""
    for key, (value, ticket) in writes.items():
        status = ticket.answer["status"] if ticket.answer else "no answer"
        waited = f" {ticket.answered_at - ticket.queued_at:.0f} s after queueing" if ticket.answered_at else ""
        measure(f"write_{key}", status, note=f"{key} = {value}{waited}")
    answered = [ticket.answered_at for _, ticket in writes.values() if ticket.answered_at is not None]
    measure("writes_answered", len(answered), "", low=len(writes),
            note=f"configuration downlinks answered within {ANSWER_WITHIN_S:.0f} s")
    return max(answered) if len(answered) == len(writes) else None


# ---- C4 ------------------------------------------------------------------------------------------------


@pytest.mark.check("C4")
@pytest.mark.needs("power_analyser", "monitor")
def test_c4_meter_reports_at_t1_plus_its_stagger_for_each_meter_number(
        meter: MeterSession, coverage: CoverageSetting, plan: PlanProfile, measure: Recorder) -> None:
    zone = ZoneInfo(plan.time.timezone)
    first = first_report_at_level(meter, measure, coverage, plan, "its stagger could not be measured")
    judge = DayJudge(meter, measure, plan.checks.C4, zone, judged=True)
    offsets_by_number(meter, first, judge, plan)
    judge.attach("C4 meter numbers")
    measure.judge()


@pytest.mark.check("C4")
@pytest.mark.needs("power_analyser", "monitor")
def test_c4_t1_and_t3_written_from_the_platform_hold_from_the_next_day(
        meter: MeterSession, coverage: CoverageSetting, plan: PlanProfile, measure: Recorder) -> None:
    c4, zone, clock = plan.checks.C4, ZoneInfo(plan.time.timezone), meter.bench.clock
    first = first_report_at_level(meter, measure, coverage, plan, "the effect of new T1 and T3 could not be measured")
    judge = DayJudge(meter, measure, c4, zone, judged=True)
    with MeterNumbers(meter, measure, own_number(meter, first, measure)) as numbers:
        number = number_showing_t3(numbers, c4)
        before_day = local_day(clock.now(), zone) + timedelta(days=1)
        clock.sleep(max(local_midnight_s(before_day, zone) - clock.now(), 0.0))
        writes = queue_t1_t3_writes(meter, c4)
        judge("before", number, watch_day(meter, before_day, zone), c4.t1, c4.t3_s,
              f" T1 {c4.t1:%H:%M}, T3 {c4.t3_s:g} s")
        clock.wait_until(lambda: all(t.answered_at is not None for _, t in writes.values()), ANSWER_WITHIN_S)
        answered_s = record_answers(measure, writes)
        if answered_s is not None:
            judge("after", number, watch_day(meter, local_day(answered_s, zone) + timedelta(days=1), zone),
                  c4.changed_t1, c4.changed_t3_s, f" T1 {c4.changed_t1:%H:%M}, T3 {c4.changed_t3_s:g} s")
    judge.attach("C4 T1/T3 from the platform")
    measure.judge()


@dataclass
class CutSeen:
    """One power cut's re-attach: its offset against the window, and the monitor around the attach's start."""

    sample: OffsetSample
    label: str
    excerpt: str


def reattach_after_power_cut(meter: MeterSession, measure: Recorder, c4: C4Stagger, zone: ZoneInfo, name: str,
                             number: int) -> CutSeen | None:
    """Cuts the supply for the plan's time once the meter is asleep, and records the start of the first attach
    from the supply's return against meter `number`'s window (None when no attach started)."""
    clock, lines = meter.bench.clock, meter.monitor.lines
    clock.sleep(SETTLE_S)
    meter.power_off()
    clock.sleep(c4.power_cut_s)
    mark = meter.monitor.mark()
    supply_on_s = clock.now()
    meter.power_on()
    low, high = plan_rule(c4, c4.t3_s).window_s(number)
    attached = clock.wait_until(
        lambda: any(line.sender == MODULE and says_attached(line.text) for line in lines[mark:]), high + ATTACH_WATCH_S)
    start = attach_start(lines, mark)
    what = (f"n = {number} (n mod {c4.modulus} = {number % c4.modulus}), T3 {c4.t3_s:g} s, "
            f"supply off {c4.power_cut_s:g} s")
    if start is None:
        measure(f"{name}_reattach_offset_s", "none", "s", low=low, high=high,
                note=f"{what}: no module power-on within {high + ATTACH_WATCH_S:.0f} s of the supply's return")
        return None
    offset = start.time_s - supply_on_s
    measure(f"{name}_reattach_offset_s", round(offset, 1), "s", low=low, high=high,
            note=f"{what}: supply on to the attach's start ({start.text} at {clock_text(start.time_s, zone)})")
    banner = next((line for line in lines[mark:] if line.sender == MODULE and line.text == POWER_ON_CAUSE), None)
    if banner is not None:
        measure(f"{name}_module_power_on_after_supply_s", round(banner.time_s - supply_on_s, 1), "s",
                note="boot banner")
    measure(f"{name}_attached", "yes" if attached else "no",
            note="the module said it is attached (+CGATT:1 or +CEREG)")
    sample = OffsetSample(number, local_day(supply_on_s, zone), offset, low, high)
    heading = (f"== {name}: {what}; supply on {clock_text(supply_on_s, zone)}; window +{low:g} .. +{high:g} s; "
               f"attach start +{offset:.1f} s ({'in' if sample.inside else 'OUT'})")
    return CutSeen(sample, f"{number}\n{sample.day:%m-%d}", marked_excerpt(lines, start, supply_on_s, zone, heading))


@pytest.mark.check("C4")
@pytest.mark.needs("power_analyser", "monitor")
def test_c4_first_attach_after_a_power_cut_waits_its_stagger(
        meter: MeterSession, coverage: CoverageSetting, plan: PlanProfile, measure: Recorder) -> None:
    c4, zone = plan.checks.C4, ZoneInfo(plan.time.timezone)
    first = first_report_at_level(meter, measure, coverage, plan,
                                  "the re-attach after a power cut could not be measured")
    own = own_number(meter, first, measure)
    seen = [reattach_after_power_cut(meter, measure, c4, zone, "own", own)]
    with MeterNumbers(meter, measure, own) as numbers:
        for number in [n for n in c4.meter_numbers if n != own]:
            if not numbers.set(number):
                break
            seen.append(reattach_after_power_cut(meter, measure, c4, zone, f"n{number}", number))
    cuts = [cut for cut in seen if cut is not None]
    if cuts:
        allure.attach("\n\n".join(cut.excerpt for cut in cuts),
                      "C4 power cut: AT monitor, offsets from the supply's return marked", allure.attachment_type.TEXT)
        allure.attach(offsets_png([cut.sample for cut in cuts], "C4: first attach after a power cut against the window",
                                  [cut.label for cut in cuts], origin="supply on", event="attach start"),
                      "C4 power cut: stagger plot", allure.attachment_type.PNG)
    measure.judge()


# ---- C4f -----------------------------------------------------------------------------------------------


@pytest.mark.check("C4f")
@pytest.mark.needs("power_analyser", "monitor", "maintenance")
def test_c4f_fleet_projected_from_the_measured_stagger_stays_under_the_cell_limit_and_the_deadline(
        meter: MeterSession, coverage: CoverageSetting, plan: PlanProfile, measure: Recorder) -> None:
    c4, c4f, zone = plan.checks.C4, plan.checks.C4f, ZoneInfo(plan.time.timezone)
    first = first_report_at_level(meter, measure, coverage, plan,
                                  "its stagger could not be measured for the projection")
    judge = DayJudge(meter, measure, c4, zone, judged=False)
    offsets_by_number(meter, first, judge, plan)
    n2_period = round(c4.n2_max_s)
    try:
        rule = fit_rule([s.number for s in judge.samples], [s.offset_s for s in judge.samples], c4.modulus, n2_period)
    except ValueError as error:
        judge.attach("C4f measured")
        inconclusive(f"{error}")
    measure("measured_t3_s", round(rule.slope_s, 2), "s", note=f"seconds per unit of n mod {c4.modulus} (plan "
                                                                f"T3 {c4.t3_s:g} s), fitted to {rule.samples} offsets")
    measure("measured_n2_gain", round(rule.n2_gain_s, 3), "s", note=f"seconds per unit of n mod {n2_period}")
    measure("measured_base_s", round(rule.base_s, 1), "s", note="common delay after T1 (wake, AT, radio)")
    measure("fit_residual_max_s", round(rule.residual_max_s, 1), "s", note="largest measured offset off the fit")
    projection = project_fleet(rule, c4f.fleet_size, c4f.cells)
    day = local_day(first.time_s, zone)
    to_deadline_s = deadline_s(day, c4.t1, c4.deadline, zone) - t1_on(day, c4.t1, zone)
    last_clock = hms(seconds_of_day(c4.t1) + projection.last_offset_s)
    measure("peak_per_minute_per_cell", projection.peak_per_minute_per_cell, "", high=c4f.peak_per_minute_per_cell_max,
            note=f"{c4f.fleet_size} consecutive meters in {c4f.cells} even blocks; busiest minute "
                 f"{projection.peak_minute} min after T1")
    measure("last_first_attempt_after_t1_s", round(projection.last_offset_s, 1), "s", high=to_deadline_s,
            note=f"last first attempt at {last_clock} (T1 {c4.t1:%H:%M}), deadline {c4.deadline:%H:%M}")
    measure("first_attempts_span_min", round((projection.last_offset_s - projection.first_offset_s) / MINUTE_S, 1),
            "min", note="first to last first attempt of the fleet")
    judge.attach("C4f measured")
    allure.attach(fleet_png(projection, rule, judge.samples, c4f.peak_per_minute_per_cell_max,
                            to_deadline_s / MINUTE_S, "C4f: fleet projection from the measured stagger"),
                  "C4f fleet histogram", allure.attachment_type.PNG)
    measure.judge()
