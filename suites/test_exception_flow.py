"""C9 and C10: when the module answers a send with `+CME ERROR: 513` the MCU retries after 1, 3 and 10 min;
after the last failed retry it runs the exception flow `AT+NRB`, `AT+CFUN=0`, `AT+NCSEARFCN`, then powers
the module off or resets it again (`AT+NRB`).

The platform withholds the observe that enables uplink before the meter registers, so every send is
answered 513. C9 measures, on the AT monitor, each 513's answer to the MCU's next command that is not a
query, which must be a send after the plan's wait (within its fraction plus its seconds). C10 reads the
MCU's commands after the last 513 (queries aside where the plan allows them) until the next send, or until
the module's power is cut: seen on the module rail where the bench has one, else as the module's next
power-on banner. The flow must be the plan's order, then one of its final steps.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import allure
import pytest

from fixtures.checks import Recorder, module_rail
from fixtures.levels import confirm_from_monitor
from rig.analysis.at_transcript import Attempt
from rig.analysis.rail import RailEdges
from rig.analysis.retry_flow import (
    CME_513,
    POWER_OFF,
    Reading,
    annotated_excerpt,
    answered_513,
    c9_readings,
    c10_readings,
    exception_flow,
    retries_over,
    step_name,
)
from rig.bench import Bench
from rig.coverage import CoverageSetting
from rig.meter_session import MeterSession
from rig.monitor import MODULE, MonitorLine
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import C9CmeError513, PlanProfile

DAY_S = 86400.0
FIRST_SEND_WITHIN_S = 2 * DAY_S  # the power-on stagger and the first report slot
ANSWER_ALLOWANCE_S = 60.0  # per attempt: the module's time to answer a send
FLOW_WATCH_S = 1800.0  # ours: after the retries' windows, time for the exception flow to finish
BANNER_WITHIN_S = DAY_S  # without a rail, a flow ending in a power cut shows at the module's next power-on
RAIL_PERIOD_S = 1.0
RAIL_CHUNK_PERIODS = 60  # the watch stops within a minute of the flow's end
EXCERPT_CONTEXT = 6  # monitor lines shown after the flow


def record(measure: Recorder, readings: list[Reading]) -> None:
    for reading in readings:
        measure(reading.name, reading.value, reading.unit, low=reading.low, high=reading.high, note=reading.note)


def retries_window_s(check: C9CmeError513) -> float:
    """Long enough for every retry at its tolerance's upper edge and the module's answers."""
    return sum(wait * (1 + check.tolerance_fraction) + check.tolerance_s + ANSWER_ALLOWANCE_S for wait in check.waits_s)


def first_513(meter: MeterSession, measure: Recorder, purpose: str, coverage: CoverageSetting,
              plan: PlanProfile) -> int:
    """With the observe withheld, power the meter until its first send is answered 513, and confirm the level
    from the module's own readings on the monitor (no report reaches the platform); the monitor's mark."""
    mark = meter.monitor.mark()
    meter.platform.withhold_observe = True
    meter.power_on()
    if meter.monitor.wait_for(f"^{re.escape(CME_513)}$", FIRST_SEND_WITHIN_S, sender=MODULE, mark=mark) is None:
        measure("cme_513_answers", 0, "", low=1, note=f"none within {FIRST_SEND_WITHIN_S:.0f} s of power-on")
        pytest.fail(f"no send was answered {CME_513}, so {purpose}")
    confirm_from_monitor(meter, measure, coverage, plan, mark)
    return mark


def watch(meter: MeterSession, edges: RailEdges | None, rail, done: Callable[[], bool], timeout_s: float) -> None:
    """Until `done` or `timeout_s`: on the bench clock, and streaming the module rail into `edges` if any."""
    if rail is None:
        meter.bench.clock.wait_until(done, timeout_s)
        return
    for chunk in rail.data_log(RAIL_PERIOD_S, timeout_s, RAIL_CHUNK_PERIODS):
        edges.feed(chunk)
        if done():
            return


def retry_notes(lines: list[MonitorLine], errors: list[Attempt], check: C9CmeError513) -> dict[int, str]:
    """Each 513 marked, and each retry with its wait from the 513 before it and its window."""
    notes = {}
    for number, error in enumerate(errors, start=1):
        reply = next(line for line in lines[error.index + 1:] if line.sender == MODULE and line.text == error.answer)
        notes[reply.index] = f"513 number {number}"
        if number > 1 and number - 2 < len(check.waits_s):
            wait = check.waits_s[number - 2]
            tolerance = wait * check.tolerance_fraction + check.tolerance_s
            notes[error.index] = (f"retry {number - 1}, {error.time_s - errors[number - 2].answer_s:.1f} s after "
                                  f"513 number {number - 1} (window {wait - tolerance:g} .. {wait + tolerance:g} s)")
    return notes


@pytest.mark.check("C9")
@pytest.mark.needs("attenuator", "power_analyser", "monitor")
def test_c9_meter_retries_after_513_at_1_3_and_10_min(meter: MeterSession, coverage: CoverageSetting,
                                                       plan: PlanProfile, measure: Recorder) -> None:
    c9 = plan.checks.C9
    mark = first_513(meter, measure, "the retries after it could not be measured", coverage, plan)
    lines = meter.monitor.lines
    meter.bench.clock.wait_until(lambda: retries_over(lines, answered_513(lines, meter.codec, mark, ()), c9),
                                 retries_window_s(c9))
    errors = answered_513(lines, meter.codec, mark, ())
    record(measure, c9_readings(lines, errors, c9))
    end = errors[-1].index + EXCERPT_CONTEXT
    allure.attach(annotated_excerpt(lines, retry_notes(lines, errors, c9), errors[0].index, end, errors[0].time_s),
                  "AT monitor: each 513 and the retry after it (time, s from the first attempt)",
                  allure.attachment_type.TEXT)
    measure.judge()


@pytest.mark.check("C10")
@pytest.mark.needs("attenuator", "power_analyser", "monitor")
def test_c10_meter_runs_the_exception_flow_after_the_last_failed_retry(
        meter: MeterSession, bench: Bench, coverage: CoverageSetting, device_profile: DeviceProfile,
        plan: PlanProfile, measure: Recorder) -> None:
    c10 = plan.checks.C10
    mark = first_513(meter, measure, "no exception flow followed a failed retry", coverage, plan)
    lines = meter.monitor.lines
    rail = module_rail(bench, device_profile)
    edges = RailEdges() if rail is not None else None

    def steps() -> list[MonitorLine | float]:
        errors = answered_513(lines, meter.codec, mark, ())
        cuts = edges.falls_s if edges is not None else ()
        return exception_flow(lines, errors[-1].index, cuts, RAIL_PERIOD_S, c10.queries_allowed)

    def flow_over() -> bool:
        found = steps()
        return len(found) > len(c10.expected_order) or bool(found and step_name(found[-1]) == POWER_OFF)

    watch(meter, edges, rail, flow_over, retries_window_s(plan.checks.C9) + FLOW_WATCH_S)
    if rail is None and not flow_over() and POWER_OFF in c10.final_steps:
        # the module may have been cut in silence: its next power-on banner tells
        bench.clock.wait_until(flow_over, BANNER_WITHIN_S)
    errors = answered_513(lines, meter.codec, mark, ())
    flow = steps()
    measure("cme_513_answers", len(errors), "", note="the flow is read after the last")
    measure("power_cut_witness", "module rail" if rail is not None else "power-on banner on the monitor")
    record(measure, c10_readings(flow, c10))

    notes = {errors[-1].index: "the last attempt answered 513"}
    for number, step in enumerate(flow, start=1):
        if isinstance(step, MonitorLine):
            notes[step.index] = f"step {number}: {step_name(step)}"
    rail_cut = [f"module rail: power cut at {step:.1f} s (step {len(flow)})" for step in flow[-1:]
                if not isinstance(step, MonitorLine)]
    last = next((step.index for step in reversed(flow) if isinstance(step, MonitorLine)), errors[-1].index)
    excerpt = annotated_excerpt(lines, notes, errors[-1].index, last + EXCERPT_CONTEXT, errors[-1].time_s)
    allure.attach("\n".join([excerpt, *rail_cut]), "AT monitor: the exception flow (time, s from the last 513)",
                  allure.attachment_type.TEXT)
    measure.judge()
