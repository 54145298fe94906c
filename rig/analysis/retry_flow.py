"""Retries, the +CME ERROR: 513 recovery, the exception flow and module power cuts, read from the AT monitor.

Pure functions on `MonitorLine`s (and the platform's receptions): each returns `Reading`s, measured values
with the limits their check judges them against (C7, C9, C10, C11), so a suite records them as they are and
the project's tests judge the twin with the very same arithmetic. A reading fails like a measurement does:
outside its limits, or judged without a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rig.analysis.at_transcript import (
    FINAL_RESULT,
    POWER_ON_CAUSE,
    SEND,
    Attempt,
    answer,
    attached_between,
    attempts,
    boots,
    commands,
    config_reboot,
    first_after,
    is_query,
)
from rig.codec import Codec
from rig.measurements import Measurement
from rig.monitor import MODULE, MonitorLine
from rig.platform.server import Uplink
from rig.profiles.plan import C7Retry, C9CmeError513, C10ExceptionFlow

CME_513 = "+CME ERROR: 513"
DELIVERED_STATUS = "+QLWULDATASTATUS:4"
POWER_OFF = "power_off"  # the exception flow's step name for a module power cut (the plan's final_steps)
NONE = "none"  # the value of a judged reading that could not be measured: it fails


@dataclass(frozen=True)
class Reading:
    """One measured value and its limits, as the check's `measure(...)` records it."""

    name: str
    value: float | str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        """True or False against the limits (a non-number judged fails); None when recorded only."""
        return Measurement("", "", self.name, self.value, self.unit, self.low, self.high).passed


def failing(readings: Sequence[Reading]) -> set[str]:
    """The names of the readings outside their limits."""
    return {reading.name for reading in readings if reading.passed is False}


def rounded(value_s: float) -> float:
    return round(value_s, 1)


# ---- C7: retries after a failed report, the long wait, the module reset --------------------------------


@dataclass(frozen=True)
class RetrySequence:
    """A report's failed attempts (start to start on the monitor), the module reset after the last of them,
    and the attempt that follows the reset."""

    failed: list[Attempt]
    failure_seen: list[MonitorLine | None]  # per failed attempt: the monitor line that showed it failed
    reset: MonitorLine | None  # `AT+NRB` or a module power-on banner between the last failure and the next attempt
    reattached: bool  # the module said it is attached between the reset and the next attempt
    next_attempt: Attempt | None


def failure_seen(lines: list[MonitorLine], attempt: Attempt, until: int | None) -> MonitorLine | None:
    """The line showing `attempt` failed: its send's error answer, or a `+QLWULDATASTATUS:` other than
    delivered before the next attempt (None: nothing showed it)."""
    if attempt.answer is not None and attempt.answer != "OK":
        return answer(lines, attempt.index)
    status = first_after(lines[:until], attempt.index, lambda line: line.sender == MODULE
                         and line.text.startswith("+QLWULDATASTATUS:"))
    return status if status is not None and status.text != DELIVERED_STATUS else None


def is_reset(lines: list[MonitorLine], line: MonitorLine) -> bool:
    """The MCU's `AT+NRB` (not one applying an `AT+NCONFIG=`), or the module's power-on banner (a power cycle)."""
    if line.sender == MODULE:
        return line.text == POWER_ON_CAUSE
    return line.is_command and line.text.upper() == "AT+NRB" and not config_reboot(lines, line)


def retry_sequence(lines: list[MonitorLine], codec: Codec, failures: int, start: int = 0,
                   kinds: tuple[str, ...] = ("basic_report",)) -> RetrySequence:
    """The first `failures` attempts of `kinds` from `start` (all failed when the platform swallowed them),
    the reset after the last of them and the attempt after that."""
    found = [a for a in attempts(lines, codec, kinds) if a.index >= start]
    failed, following = found[:failures], found[failures:failures + 1]
    next_attempt = following[0] if following else None
    ends = [a.index for a in found[1:failures + 1]] + [None] * failures
    seen = [failure_seen(lines, attempt, end) for attempt, end in zip(failed, ends, strict=False)]
    reset, reattached = None, False
    if len(failed) == failures:
        end = next_attempt.index if next_attempt else len(lines)
        reset = next((line for line in lines[failed[-1].index + 1:end] if is_reset(lines, line)), None)
        reattached = reset is not None and attached_between(lines, reset.index, end)
    return RetrySequence(failed, seen, reset, reattached, next_attempt)


def retry_window_s(wait_s: float, check: C7Retry, detection_max_s: float) -> tuple[float, float]:
    """PROCEDURES: the seed's wait, plus the plan's fraction of it and the device's failure detection."""
    return wait_s, wait_s * (1 + check.tolerance_fraction) + detection_max_s


def delivered(attempt: Attempt, uplinks: Sequence[Uplink], within_s: float) -> bool:
    """The platform received a message of the attempt's kind within `within_s` of its start."""
    return any(u.message and u.message.get("type") == attempt.kind
               and attempt.time_s <= u.time_s <= attempt.time_s + within_s for u in uplinks)


def c7_readings(sequence: RetrySequence, uplinks: Sequence[Uplink], check: C7Retry, detection_max_s: float
                ) -> list[Reading]:
    """Each retry's gap and the wait before the reset against their windows; the reset, the re-attach and
    the attempt after it; when each failure showed and whether the last attempt was delivered (recorded)."""
    readings = []
    for number, (attempt, seen) in enumerate(zip(sequence.failed, sequence.failure_seen, strict=True), start=1):
        after_s = rounded(seen.time_s - attempt.time_s) if seen is not None else NONE
        readings.append(Reading(f"failure_{number}_seen_after_s", after_s, "s",
                                note=f"attempt {number} to its failure on the monitor; "
                                     f"the device declares <= {detection_max_s:g} s"))
    for number, wait_s in enumerate(check.retry_waits_s, start=1):
        low, high = retry_window_s(wait_s, check, detection_max_s)
        if len(sequence.failed) > number:
            gap = rounded(sequence.failed[number].time_s - sequence.failed[number - 1].time_s)
            readings.append(Reading(f"retry_{number}_gap_s", gap, "s", low, high,
                                    f"attempt {number} to attempt {number + 1}, start to start"))
        else:
            readings.append(Reading(f"retry_{number}_gap_s", NONE, "s", low, high,
                                    f"{len(sequence.failed)} attempts seen, no retry {number}"))
    last = sequence.failed[-1] if len(sequence.failed) > len(check.retry_waits_s) else None
    low, high = retry_window_s(check.reset_wait_s, check, detection_max_s)
    end = sequence.reset or sequence.next_attempt
    if last is None or end is None:
        readings.append(Reading("wait_after_last_failure_s", NONE, "s", low, high,
                                "no last failed attempt" if last is None else "no reset nor attempt after it"))
    else:
        to = "the module reset" if sequence.reset else "the next attempt (no reset)"
        readings.append(Reading("wait_after_last_failure_s", rounded(end.time_s - last.time_s), "s", low, high,
                                f"last failed attempt to {to}"))
    reset_by = "" if sequence.reset is None else (sequence.reset.text if sequence.reset.is_command
                                                  else "module power cycle")
    readings.append(Reading("module_resets", int(sequence.reset is not None), "", 1, None,
                            reset_by or "no AT+NRB nor power-on banner between the last failure and the next attempt"))
    if sequence.reset is not None:
        readings.append(Reading("attached_after_reset", int(sequence.reattached), "", 1, None,
                                "the module said it is attached between the reset and the next attempt"))
    start = sequence.reset or last
    if start is None:
        readings.append(Reading("attempt_after_reset_s", NONE, "s", 0, None, "no last failed attempt"))
        return readings
    following = sequence.next_attempt
    readings.append(Reading("attempt_after_reset_s", rounded(following.time_s - start.time_s) if following else NONE,
                            "s", 0, None, "from the reset (or the last failure) to the next attempt"))
    if following is not None:
        readings.append(Reading("attempt_after_reset_delivered",
                                "yes" if delivered(following, uplinks, detection_max_s) else "no",
                                note="recorded: the platform received it (a radio loss is not C7's business)"))
    return readings


# ---- C9: the waits after each +CME ERROR: 513 -----------------------------------------------------------


def answered_513(lines: list[MonitorLine], codec: Codec, start: int = 0,
                 kinds: tuple[str, ...] = ("basic_report",)) -> list[Attempt]:
    """The attempts from `start` the module answered `+CME ERROR: 513`."""
    return [a for a in attempts(lines, codec, kinds) if a.index >= start and a.answer == CME_513]


def next_command(lines: list[MonitorLine], index: int) -> MonitorLine | None:
    """The MCU's first command after `index` that is not a query."""
    return next((c for c in commands(lines, index + 1) if not is_query(c.text)), None)


def retries_over(lines: list[MonitorLine], errors: list[Attempt], check: C9CmeError513) -> bool:
    """Every retry was answered 513, or the MCU went on to something other than a send after the last."""
    after = next_command(lines, errors[-1].index) if errors else None
    return len(errors) > len(check.waits_s) or (after is not None and not SEND.match(after.text))


def c9_readings(lines: list[MonitorLine], errors: list[Attempt], check: C9CmeError513) -> list[Reading]:
    """From each 513's answer to the MCU's next command that is not a query: a send, after the plan's wait."""
    readings = [Reading("cme_513_answers", len(errors), "", 1, None, "attempts answered +CME ERROR: 513")]
    for number, wait_s in enumerate(check.waits_s, start=1):
        tolerance = wait_s * check.tolerance_fraction + check.tolerance_s
        name, low, high = f"wait_after_513_{number}_s", wait_s - tolerance, wait_s + tolerance
        if len(errors) < number:
            readings.append(Reading(name, NONE, "s", low, high, f"only {len(errors)} attempts answered 513"))
            continue
        error = errors[number - 1]
        after = next_command(lines, error.index)
        if after is None or not SEND.match(after.text):
            came = after.text if after else "nothing"
            readings.append(Reading(name, NONE, "s", low, high, f"no retry: after 513 number {number} came {came}"))
            continue
        readings.append(Reading(name, rounded(after.time_s - error.answer_s), "s", low, high,
                                f"513 number {number} answered to the next attempt"))
    return readings


# ---- C10: the exception flow after the last 513 ---------------------------------------------------------


def exception_flow(lines: list[MonitorLine], start: int, cuts_s: Sequence[float] = (), cut_resolution_s: float = 0.0,
                   queries_allowed: bool = True) -> list[MonitorLine | float]:
    """The MCU's steps after `start` (the last attempt answered 513) until the module's power is cut or the next send:
    its commands (queries aside when allowed), then the cut, if any: the time it was seen on the module rail
    (`cuts_s`, each known to `cut_resolution_s`) or the module's power-on banner, whichever shows first."""
    steps: list[MonitorLine | float] = []
    pending = sorted(cut for cut in cuts_s if cut >= lines[start].time_s) if start < len(lines) else []
    for line in lines[start + 1:]:
        if pending and pending[0] + cut_resolution_s < line.time_s:
            return [*steps, pending[0]]
        if line.sender == MODULE and line.text == POWER_ON_CAUSE:
            return [*steps, line]
        if not line.is_command or (queries_allowed and is_query(line.text)):
            continue
        if SEND.match(line.text):
            return steps
        steps.append(line)
    return [*steps, pending[0]] if pending else steps


def step_name(step: MonitorLine | float) -> str:
    """A command's text, or `power_off` for a cut (a rail time or a power-on banner)."""
    if isinstance(step, MonitorLine) and step.is_command:
        return step.text.upper()
    return POWER_OFF


def flow_matched(names: list[str], check: C10ExceptionFlow) -> int:
    """How many of the expected steps come in order from the first, the final step counted as one."""
    order = [step.upper() for step in check.expected_order]
    finals = [step if step == POWER_OFF else step.upper() for step in check.final_steps]
    matched = 0
    for expected, seen in zip(order, names, strict=False):
        if expected != seen:
            return matched
        matched += 1
    if matched == len(order) and len(names) > matched and names[matched] in finals:
        matched += 1
    return matched


def c10_readings(steps: list[MonitorLine | float], check: C10ExceptionFlow) -> list[Reading]:
    """The flow's steps in order against the plan's, then one of its final steps."""
    names = [step_name(step) for step in steps]
    wanted = len(check.expected_order) + 1
    expected = f"{', '.join(check.expected_order)}, then one of {' or '.join(check.final_steps)}"
    return [
        Reading("exception_flow", " > ".join(names) or NONE, note=f"expected {expected}"),
        Reading("exception_flow_steps_in_order", flow_matched(names, check), "", wanted, wanted,
                f"steps matching from the first (of {expected})"),
    ]


# ---- C11: AT+CFUN=0 before every module power cut ------------------------------------------------------


def banner_cut_boundaries(lines: list[MonitorLine], start: int = 0) -> list[int]:
    """Power-on banners from `start` after the first (the supply's): the module's power was cut before each."""
    return [banner.index for banner in boots(lines[start:], POWER_ON_CAUSE)[1:]]


def rail_cut_boundaries(lines: list[MonitorLine], cuts_s: Sequence[float], resolution_s: float) -> list[int]:
    """A cut seen on the module rail at `cut_s` (its earliest time) is over `resolution_s` later: every line
    stamped up to then came before it."""
    return [sum(1 for line in lines if line.time_s <= cut_s + resolution_s) for cut_s in cuts_s]


def clean_cut(lines: list[MonitorLine], boundary: int) -> bool:
    """An `AT+CFUN=0` answered OK came before `boundary` since the module's last boot or `AT+CFUN=1`."""
    anchor = max((line.index for line in lines[:boundary]
                  if (line.sender == MODULE and line.text.startswith("REBOOT_CAUSE_"))
                  or (line.is_command and line.text.upper() == "AT+CFUN=1")), default=-1)
    for command in commands(lines, anchor + 1, boundary):
        ok = answer(lines, command.index) if command.text.upper() == "AT+CFUN=0" else None
        if ok is not None and ok.text == "OK" and ok.index < boundary:
            return True
    return False


def module_word_after(lines: list[MonitorLine], start: int) -> MonitorLine | None:
    """The module's first boot cause or final result code from `start`: a power-on banner shows it was cut
    since it last spoke; anything else, that it was not (a boot's preamble lines say neither)."""
    return next((line for line in lines[start:] if line.sender == MODULE
                 and (line.text.startswith("REBOOT_CAUSE_") or FINAL_RESULT.match(line.text))), None)


def c11_readings(lines: list[MonitorLine], boundaries: list[int], witness: str) -> list[Reading]:
    """The cuts one witness saw and how many came without `AT+CFUN=0` (none allowed)."""
    def at(boundary: int) -> str:
        return f"{lines[boundary - 1].time_s:.1f}" if boundary else "the start"

    unclean = [boundary for boundary in boundaries if not clean_cut(lines, boundary)]
    return [
        Reading(f"power_cuts_by_{witness}", len(boundaries), "",
                note=", ".join(f"after {at(b)} s" for b in boundaries) or "no module power cut seen"),
        Reading(f"cuts_without_cfun0_by_{witness}", len(unclean), "", None, 0,
                ", ".join(f"after {at(b)} s" for b in unclean) or "every cut followed AT+CFUN=0 answered OK"),
    ]


# ---- evidence ------------------------------------------------------------------------------------------


EXCERPT_TEXT_CHARS = 60  # a longer line (a send's hex payload) is cut, its length said


def annotated_excerpt(lines: list[MonitorLine], notes: dict[int, str], start: int = 0, end: int | None = None,
                      origin_s: float | None = None) -> str:
    """The monitor from `start` to `end`, each line with its time (and its offset from `origin_s`), and
    `notes` (by line index) marked beside their lines."""
    rows = []
    for line in lines[start:end]:
        arrow = "   <" if line.sender == MODULE else "MCU>"
        offset = f" {line.time_s - origin_s:+10.1f}" if origin_s is not None else ""
        text = line.text
        if len(text) > EXCERPT_TEXT_CHARS:
            text = f"{text[:EXCERPT_TEXT_CHARS]}... ({len(line.text)} chars)"
        note = f"   <== {notes[line.index]}" if line.index in notes else ""
        rows.append(f"{line.time_s:.3f}{offset} {arrow} {text}{note}")
    return "\n".join(rows)
