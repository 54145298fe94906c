"""rig/analysis/retry_flow.py on hand-made monitor transcripts: the readings C7, C9, C10 and C11 record."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.analysis.at_transcript import POWER_ON_CAUSE
from rig.analysis.retry_flow import (
    NONE,
    POWER_OFF,
    Reading,
    annotated_excerpt,
    answered_513,
    banner_cut_boundaries,
    c7_readings,
    c9_readings,
    c10_readings,
    c11_readings,
    clean_cut,
    exception_flow,
    failing,
    module_word_after,
    rail_cut_boundaries,
    retries_over,
    retry_sequence,
    step_name,
)
from rig.codec import load_codec
from rig.monitor import MCU, MODULE, MonitorLine
from rig.platform.server import Uplink
from rig.profiles.plan import load_plan

PLAN = load_plan(Path(__file__).resolve().parents[1] / "profiles" / "plans" / "white-paper-2018.yaml")
CODEC = load_codec("reference")
REPORT = CODEC.encode_uplink({"type": "basic_report", "meter_number": 1, "time_s": 0, "battery_mv": 3600,
                              "alarms": [], "daily_cumulative_l": 0, "daily_reverse_l": 0,
                              "instantaneous_l_per_h": 0, "freeze_interval_s": 1800, "report_period_s": 86400,
                              "valve": "open", "mcu_firmware": "1", "module_firmware": "1",
                              "period_consumption_l": []})
SEND = f"AT+QLWULDATAEX={len(REPORT)},{REPORT.hex().upper()},0x0100"
DETECTION_S = 120.0
BOOT = ["REBOOTING", "REBOOT_CAUSE_APPLICATION_AT", "Neul", "OK"]


def transcript(*events: tuple[float, str, str]) -> list[MonitorLine]:
    """(time, sender, text) in order, numbered."""
    return [MonitorLine(i, time_s, sender, text) for i, (time_s, sender, text) in enumerate(events)]


def failed_attempt(at_s: float, status_after_s: float = 80.0) -> list[tuple[float, str, str]]:
    return [(at_s, MCU, "AT+NUESTATS"), (at_s, MODULE, "OK"), (at_s, MCU, SEND), (at_s + 0.02, MODULE, "OK"),
            (at_s + status_after_s, MODULE, "+QLWULDATASTATUS:3")]


def reset_at(at_s: float, command: bool = True) -> list[tuple[float, str, str]]:
    if command:
        return [(at_s, MCU, "AT+NRB"), *[(at_s + 1.5, MODULE, text) for text in BOOT]]
    return [(at_s, MODULE, POWER_ON_CAUSE), (at_s, MODULE, "Neul")]


def delivered_attempt(at_s: float) -> list[tuple[float, str, str]]:
    return [(at_s - 10, MCU, "AT+CGATT?"), (at_s - 10, MODULE, "+CGATT:1"), (at_s - 10, MODULE, "OK"),
            (at_s, MCU, SEND), (at_s + 0.02, MODULE, "OK"), (at_s + 1.3, MODULE, "+QLWULDATASTATUS:4")]


def uplink_at(time_s: float) -> Uplink:
    return Uplink(time_s, "meter", len(REPORT), REPORT, {"type": "basic_report"}, None, "CON", 1, time_s)


def c7(lines: list[MonitorLine], uplinks: list[Uplink] | None = None) -> list[Reading]:
    sequence = retry_sequence(lines, CODEC, len(PLAN.checks.C7.retry_waits_s) + 1)
    return c7_readings(sequence, uplinks or [], PLAN.checks.C7, DETECTION_S)


def values(readings: list[Reading]) -> dict[str, float | str]:
    return {reading.name: reading.value for reading in readings}


# ---- C7 ------------------------------------------------------------------------------------------------


def test_c7_retries_at_5_min_and_1_h_then_a_reset_after_8_h_pass_with_each_gap_measured():
    lines = transcript(*failed_attempt(0), *failed_attempt(380), *failed_attempt(4060), *reset_at(32950),
                       *delivered_attempt(32970))
    readings = c7(lines, [uplink_at(32971)])
    assert failing(readings) == set()
    got = values(readings)
    assert (got["retry_1_gap_s"], got["retry_2_gap_s"], got["wait_after_last_failure_s"]) == (380, 3680, 28890)
    assert (got["failure_1_seen_after_s"], got["module_resets"], got["attached_after_reset"]) == (80, 1, 1)
    assert got["attempt_after_reset_s"] == 20 and got["attempt_after_reset_delivered"] == "yes"
    limits = {r.name: (r.low, r.high) for r in readings}
    assert limits["retry_1_gap_s"] == (300, 300 * 1.02 + DETECTION_S)
    assert limits["wait_after_last_failure_s"] == (28800, 28800 * 1.02 + DETECTION_S)


def test_c7_retries_every_5_min_fail_the_hour_and_the_long_wait():
    lines = transcript(*failed_attempt(0), *failed_attempt(380), *failed_attempt(760), *reset_at(1140),
                       *delivered_attempt(1160))
    assert failing(c7(lines)) == {"retry_2_gap_s", "wait_after_last_failure_s"}


def test_c7_without_a_reset_fails_the_reset_and_measures_the_wait_to_the_next_attempt():
    lines = transcript(*failed_attempt(0), *failed_attempt(380), *failed_attempt(4060), *delivered_attempt(32950))
    readings = c7(lines)
    assert failing(readings) == {"module_resets"}
    assert values(readings)["wait_after_last_failure_s"] == 28890
    assert "attached_after_reset" not in values(readings)


def test_c7_a_module_power_cycle_counts_as_the_reset_and_a_missing_attach_fails():
    cycled = transcript(*failed_attempt(0), *failed_attempt(380), *failed_attempt(4060), *reset_at(32950, False),
                        *delivered_attempt(32970))
    assert failing(c7(cycled)) == set()
    unattached = [line for line in cycled if line.text != "+CGATT:1"]
    assert failing(c7(transcript(*[(line.time_s, line.sender, line.text) for line in unattached]))) == {
        "attached_after_reset"}


def test_c7_an_nrb_applying_a_configuration_is_not_the_reset():
    configured = [(20000, MCU, "AT+NCONFIG=CELL_RESELECTION,TRUE"), (20000, MODULE, "OK"), *reset_at(20001)]
    lines = transcript(*failed_attempt(0), *failed_attempt(380), *failed_attempt(4060), *configured,
                       *reset_at(32950), *delivered_attempt(32970))
    sequence = retry_sequence(lines, CODEC, 3)
    assert sequence.reset is not None and sequence.reset.time_s == 32950


def test_c7_a_meter_that_stops_retrying_fails_every_missing_wait():
    readings = c7(transcript(*failed_attempt(0), *failed_attempt(380)))
    assert failing(readings) == {"retry_2_gap_s", "wait_after_last_failure_s", "module_resets", "attempt_after_reset_s"}
    assert values(readings)["retry_2_gap_s"] == NONE


def test_c7_an_error_answer_is_a_failure_seen_at_once():
    lines = transcript((0, MCU, SEND), (4, MODULE, "ERROR"), (304, MCU, SEND), (304.02, MODULE, "OK"))
    sequence = retry_sequence(lines, CODEC, 3)
    assert [line.text if line else None for line in sequence.failure_seen] == ["ERROR", None]


# ---- C9 ------------------------------------------------------------------------------------------------


def cme_513(at_s: float) -> list[tuple[float, str, str]]:
    return [(at_s, MCU, "AT+NUESTATS"), (at_s, MODULE, "OK"), (at_s, MCU, SEND), (at_s + 4, MODULE, "+CME ERROR: 513")]


FLOW = [(0.0, MCU, "AT+NRB"), *[(1.5, MODULE, text) for text in BOOT], (1.5, MCU, "AT+CFUN=0"), (2, MODULE, "OK"),
        (2, MCU, "AT+NCSEARFCN"), (2, MODULE, "OK"), (2, MCU, "AT+NRB"), *[(3.5, MODULE, text) for text in BOOT]]


def after(at_s: float, events: list[tuple[float, str, str]]) -> list[tuple[float, str, str]]:
    return [(at_s + time_s, sender, text) for time_s, sender, text in events]


def test_c9_waits_are_measured_from_each_513_to_the_next_send():
    lines = transcript(*cme_513(0), *cme_513(64), *cme_513(248), *cme_513(852), *after(856, FLOW))
    errors = answered_513(lines, CODEC)
    readings = c9_readings(lines, errors, PLAN.checks.C9)
    assert failing(readings) == set() and retries_over(lines, errors, PLAN.checks.C9)
    got = values(readings)
    assert (got["cme_513_answers"], got["wait_after_513_1_s"], got["wait_after_513_3_s"]) == (4, 60, 600)
    assert {r.name: (r.low, r.high) for r in readings}["wait_after_513_1_s"] == (49, 71)


def test_c9_an_early_retry_and_a_flow_at_the_first_513_fail():
    early = transcript(*cme_513(0), *cme_513(44), *cme_513(228), *cme_513(832))
    assert failing(c9_readings(early, answered_513(early, CODEC), PLAN.checks.C9)) == {"wait_after_513_1_s"}
    at_once = transcript(*cme_513(0), *after(4, FLOW))
    errors = answered_513(at_once, CODEC)
    readings = c9_readings(at_once, errors, PLAN.checks.C9)
    assert failing(readings) == {"wait_after_513_1_s", "wait_after_513_2_s", "wait_after_513_3_s"}
    assert "came AT+NRB" in readings[1].note and retries_over(at_once, errors, PLAN.checks.C9)
    assert not retries_over(transcript(*cme_513(0)), answered_513(transcript(*cme_513(0)), CODEC), PLAN.checks.C9)


# ---- C10 -----------------------------------------------------------------------------------------------


def c10(lines: list[MonitorLine], cuts_s: tuple[float, ...] = (), queries_allowed: bool = True
        ) -> tuple[list[str], set[str]]:
    last = answered_513(lines, CODEC)[-1]
    steps = exception_flow(lines, last.index, cuts_s, 1.0, queries_allowed)
    return [step_name(step) for step in steps], failing(c10_readings(steps, PLAN.checks.C10))


def test_c10_the_reference_flow_passes_with_queries_between_its_steps():
    lines = transcript(*cme_513(0), *after(4, FLOW[:7]), (6, MCU, "AT+CGMR"), (6, MODULE, "OK"),
                       *after(4, FLOW[7:]), *delivered_attempt(90000))
    assert c10(lines) == (["AT+NRB", "AT+CFUN=0", "AT+NCSEARFCN", "AT+NRB"], set())
    assert c10(lines, queries_allowed=False)[1] == {"exception_flow_steps_in_order"}


def test_c10_a_flow_ending_in_a_power_cut_seen_on_the_rail_or_by_the_next_power_on_passes():
    flow = after(4, FLOW[:9])  # up to AT+NCSEARFCN's OK, at 6 s
    by_rail = transcript(*cme_513(0), *flow, (20, MODULE, "+CSCON:0"))
    assert c10(by_rail, cuts_s=(6.0,)) == (["AT+NRB", "AT+CFUN=0", "AT+NCSEARFCN", POWER_OFF], set())
    assert c10(by_rail) == (["AT+NRB", "AT+CFUN=0", "AT+NCSEARFCN"], {"exception_flow_steps_in_order"})
    by_banner = transcript(*cme_513(0), *flow, *reset_at(3600, command=False))
    assert c10(by_banner)[1] == set()


def test_c10_a_flow_without_ncsearfcn_matches_two_steps():
    lines = transcript(*cme_513(0), *after(4, FLOW[:7]), *after(4, FLOW[-5:]))
    steps, problems = c10(lines)
    assert steps == ["AT+NRB", "AT+CFUN=0", "AT+NRB"] and problems == {"exception_flow_steps_in_order"}
    last = answered_513(lines, CODEC)[-1]
    readings = c10_readings(exception_flow(lines, last.index), PLAN.checks.C10)
    assert values(readings)["exception_flow_steps_in_order"] == 2


# ---- C11 -----------------------------------------------------------------------------------------------


def give_up(at_s: float, cfun0: str | None = "OK") -> list[tuple[float, str, str]]:
    events = [(at_s, MODULE, POWER_ON_CAUSE), (at_s, MODULE, "Neul"), (at_s + 300, MCU, "AT+CGATT?"),
              (at_s + 300, MODULE, "+CGATT:0"), (at_s + 300, MODULE, "OK")]
    if cfun0 is not None:
        events += [(at_s + 301, MCU, "AT+CFUN=0"), (at_s + 301.5, MODULE, cfun0)]
    return events


def test_c11_every_cut_after_cfun0_answered_ok_passes_by_banner_and_by_rail():
    lines = transcript(*give_up(0), *give_up(3900), *give_up(7800))
    boundaries = banner_cut_boundaries(lines)
    assert [lines[b].time_s for b in boundaries] == [3900, 7800]
    readings = c11_readings(lines, boundaries, "banner")
    assert failing(readings) == set() and values(readings) == {"power_cuts_by_banner": 2,
                                                                "cuts_without_cfun0_by_banner": 0}
    rail = rail_cut_boundaries(lines, [301.0, 4201.0], 1.0)
    assert rail == [7, 14] and failing(c11_readings(lines, rail, "rail")) == set()


def test_c11_a_cut_without_cfun0_or_with_cfun0_refused_or_undone_fails():
    lines = transcript(*give_up(0, None), *give_up(3900, "ERROR"), *give_up(7800), (8101.6, MCU, "AT+CFUN=1"),
                       (8101.7, MODULE, "OK"), *give_up(11700))
    assert [clean_cut(lines, b) for b in banner_cut_boundaries(lines)] == [False, False, False]
    readings = c11_readings(lines, banner_cut_boundaries(lines), "banner")
    assert failing(readings) == {"cuts_without_cfun0_by_banner"}
    assert values(readings)["cuts_without_cfun0_by_banner"] == 3


def test_c11_cfun0_before_the_flows_ncsearfcn_still_counts():
    lines = transcript(*cme_513(0), *after(4, FLOW[:9]), (3600, MODULE, POWER_ON_CAUSE))
    assert clean_cut(lines, len(lines) - 1)


def test_c11_the_modules_next_word_shows_a_silent_cut_by_its_power_on_banner_and_skips_the_boot_preamble():
    preamble = [(90000, MODULE, "Boot: Unsigned"), (90000, MODULE, "Apps A...... Verified")]
    assert module_word_after(transcript(*give_up(0), *preamble), 7) is None  # nothing said either way yet
    cut = transcript(*give_up(0), *preamble, (90000, MODULE, POWER_ON_CAUSE), (90000, MODULE, "Neul"),
                     (90001, MCU, "AT"), (90001, MODULE, "OK"))
    assert module_word_after(cut, 7).text == POWER_ON_CAUSE
    alive = transcript(*give_up(0), (90000, MCU, "AT"), (90000, MODULE, "OK"))
    assert module_word_after(alive, 7).text == "OK"


# ---- evidence ------------------------------------------------------------------------------------------


def test_annotated_excerpt_marks_notes_offsets_and_cuts_long_lines():
    lines = transcript((100.0, MCU, SEND), (104.0, MODULE, "+CME ERROR: 513"))
    text = annotated_excerpt(lines, {1: "513 number 1"}, origin_s=100.0)
    first, second = text.splitlines()
    assert first.startswith("100.000       +0.0 MCU> AT+QLWULDATAEX=") and f"({len(SEND)} chars)" in first
    assert second == "104.000       +4.0    < +CME ERROR: 513   <== 513 number 1"


@pytest.mark.parametrize(("value", "passed"), [(5.0, True), (NONE, False), (11.0, False)])
def test_a_reading_fails_outside_its_limits_or_without_a_number(value: float | str, passed: bool):
    assert Reading("x", value, "s", 0, 10).passed is passed
    assert Reading("x", value).passed is None
