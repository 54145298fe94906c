"""C7: when a report fails the meter retries after 5 min, then after 1 h; after the third failure it waits
8 h, resets its module, re-attaches and sends again.

The meter reports once normally (its own report confirms the coverage level), then the platform swallows
every uplink (no ACK, no reply) until the report's third attempt has had the device's failure-detection time
to fail; the platform then accepts again. Attempts are the MCU's send commands of the report on the AT
monitor; each gap, start to start, must lie between the plan's wait and that wait plus the plan's fraction
plus the device's `failure_detection_max_s` (PROCEDURES "Time"). The last failed attempt to the module reset
(`AT+NRB`, or a module power cycle seen as its power-on banner) is the long wait, judged the same way; the
module must then say it is attached and the MCU must send again. Whether the platform received that attempt
is recorded (at CE2 a radio loss is the coverage's business, not the retry rule's).
"""

from __future__ import annotations

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import first_report_at_level
from rig.analysis.at_transcript import attempts
from rig.analysis.retry_flow import (
    Reading,
    RetrySequence,
    annotated_excerpt,
    c7_readings,
    retry_sequence,
    retry_window_s,
)
from rig.coverage import CoverageSetting
from rig.meter_session import MeterSession
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import C7Retry, PlanProfile

DAY_S = 86400.0
SETTLE_S = 600.0  # after the normal report: its exchange (downlinks, the answer, the release) is over
SWALLOW_ALL = 1_000_000  # swallowed until the third failure is in, then the platform accepts again
REATTACH_WITHIN_S = 3600.0  # ours: from the end of the long wait's window to the attempt after the reset
EXCERPT_CONTEXT = 12  # monitor lines shown after the attempt following the reset


def record(measure: Recorder, readings: list[Reading]) -> None:
    for reading in readings:
        measure(reading.name, reading.value, reading.unit, low=reading.low, high=reading.high, note=reading.note)


def timing_notes(sequence: RetrySequence, check: C7Retry, detection_max_s: float) -> dict[int, str]:
    """What each marked monitor line is, with its gap and window."""
    notes = {}
    for number, attempt in enumerate(sequence.failed, start=1):
        notes[attempt.index] = f"attempt {number}"
        seen = sequence.failure_seen[number - 1]
        if seen is not None:
            notes[seen.index] = f"attempt {number} failed, {seen.time_s - attempt.time_s:.1f} s after it"
        if number > 1:
            low, high = retry_window_s(check.retry_waits_s[number - 2], check, detection_max_s)
            gap = attempt.time_s - sequence.failed[number - 2].time_s
            notes[attempt.index] += (f": retry {number - 1}, {gap:.1f} s after attempt {number - 1} "
                                     f"(window {low:g} .. {high:g} s)")
    if sequence.reset is not None and sequence.failed:
        low, high = retry_window_s(check.reset_wait_s, check, detection_max_s)
        wait = sequence.reset.time_s - sequence.failed[-1].time_s
        notes[sequence.reset.index] = (f"module reset, {wait:.1f} s after the last failure "
                                       f"(window {low:g} .. {high:g} s)")
    if sequence.next_attempt is not None:
        attached = " (re-attached)" if sequence.reattached else ""
        notes[sequence.next_attempt.index] = f"attempt after the reset{attached}"
    return notes


@pytest.mark.check("C7")
@pytest.mark.needs("attenuator", "power_analyser", "monitor")
def test_c7_meter_retries_at_5_min_and_1_h_then_waits_8_h_resets_the_module_and_reattaches(
        meter: MeterSession, coverage: CoverageSetting, level: str, plan: PlanProfile,
        device_profile: DeviceProfile, measure: Recorder) -> None:
    c7 = plan.checks.C7
    detection_s = device_profile.failure_detection_max_s
    clock = meter.bench.clock
    first = first_report_at_level(meter, measure, coverage, plan, "no report could be made to fail")
    kinds = (first.message["type"],)
    clock.sleep(SETTLE_S)

    failures = len(c7.retry_waits_s) + 1
    mark = meter.monitor.mark()
    swallowed_before = len(meter.platform.swallowed)
    meter.platform.swallow_next_uplinks(SWALLOW_ALL)

    def started(count: int) -> bool:
        return len([a for a in attempts(meter.monitor.lines, meter.codec, kinds) if a.index >= mark]) >= count

    retries_s = sum(retry_window_s(wait, c7, detection_s)[1] for wait in c7.retry_waits_s)
    clock.wait_until(lambda: started(failures), DAY_S + retries_s)
    if started(failures):
        clock.sleep(detection_s)  # the last swallowed attempt has failed for the meter too
    meter.platform.swallow_next_uplinks(0)
    accepted_from = len(meter.platform.uplinks)
    measure("uplinks_swallowed", len(meter.platform.swallowed) - swallowed_before, "",
            note="by the platform (no ACK, no reply), retransmissions included")
    if started(failures):
        long_wait_s = retry_window_s(c7.reset_wait_s, c7, detection_s)[1]
        clock.wait_until(lambda: started(failures + 1), long_wait_s + REATTACH_WITHIN_S)
        if started(failures + 1):  # give the platform the detection time to receive it
            meter.platform.wait_for_uplink(lambda u: u.message and u.message.get("type") in kinds, detection_s,
                                           since=accepted_from)

    sequence = retry_sequence(meter.monitor.lines, meter.codec, failures, mark, kinds)
    record(measure, c7_readings(sequence, meter.platform.uplinks, c7, detection_s))
    start = sequence.failed[0].index if sequence.failed else mark
    end = sequence.next_attempt.index + EXCERPT_CONTEXT if sequence.next_attempt else None
    origin = sequence.failed[0].time_s if sequence.failed else None
    allure.attach(annotated_excerpt(meter.monitor.lines, timing_notes(sequence, c7, detection_s), start, end, origin),
                  "AT monitor: failed attempts, retries, reset (time, s from the first attempt)",
                  allure.attachment_type.TEXT)
    measure.judge()
