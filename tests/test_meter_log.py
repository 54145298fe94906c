"""The meter's log as the rig reads it (C13, C15): uploads, event windows, clock maps, upload vs. download."""

from __future__ import annotations

import pytest

from rig.analysis.meter_log import (
    ClockMap,
    compare_upload,
    entries_between,
    entry_line,
    largest_gap_days,
    masked,
    module_counts,
    oldest_age_days,
    oldest_age_min_days,
    parse_log_text,
    reassemble,
)
from rig.maintenance import LogEntry

TEXT = "100|meter|power_on|\n160|comm|report_sent|attempt 1\n170|maintenance|command|SET CONFIG a|b\n"


def entries(*times: int) -> list[LogEntry]:
    return [LogEntry(float(t), "comm", "e", str(t)) for t in times]


def test_log_lines_parse_with_a_detail_that_may_hold_bars() -> None:
    parsed = parse_log_text(TEXT)
    assert parsed[2] == LogEntry(170.0, "maintenance", "command", "SET CONFIG a|b")
    assert [entry_line(e) for e in parsed] == TEXT.splitlines()
    with pytest.raises(ValueError, match="line 2"):
        parse_log_text("1|a|b|\nnot a log line\n")


def test_an_upload_is_reassembled_in_index_order_and_gaps_are_named() -> None:
    chunks = [{"index": 1, "total": 3, "entries": b"B"}, {"index": 0, "total": 3, "entries": b"A"}]
    partial = reassemble(chunks)
    assert partial.missing == [2] and not partial.complete
    whole = reassemble([*chunks, {"index": 2, "total": 3, "entries": b"C"}, {"index": 1, "total": 3, "entries": b"B"}])
    assert whole.complete and whole.text == "ABC"
    assert not reassemble([]).complete


def test_age_counts_and_windows() -> None:
    parsed = parse_log_text(TEXT)
    assert oldest_age_days(parsed, 100 + 2 * 86400) == pytest.approx(2.0)
    assert oldest_age_days([], 0) != oldest_age_days([], 0)  # NaN
    assert module_counts(parsed) == {"meter": 1, "comm": 1, "maintenance": 1}
    assert [e.time_s for e in entries_between(parsed, 150, 170)] == [160, 170]
    assert [e.module for e in entries_between(parsed, 0, 999, "comm")] == ["comm"]


def test_the_oldest_entry_may_be_younger_than_the_limit_by_the_largest_gap_between_entries() -> None:
    daily = entries(*(day * 86400 for day in (3, 1, 2, 5)))  # out of order (a clock set back): sorted first
    assert largest_gap_days(daily) == pytest.approx(2.0)
    assert oldest_age_min_days(30, largest_gap_days(daily)) == pytest.approx(28.0)
    assert oldest_age_min_days(30, largest_gap_days(entries(7))) == 30  # one entry: no gap to allow


def test_the_clock_map_interpolates_the_offset_between_reads_and_holds_it_beyond() -> None:
    clock_map = ClockMap(((1000.0, 1010.0), (2000.0, 1990.0)))
    assert clock_map.meter_time(500.0) == 510.0
    assert clock_map.meter_time(1500.0) == pytest.approx(1500.0)
    assert clock_map.meter_time(3000.0) == 2990.0
    assert ClockMap(()).meter_time(7.0) == 7.0


def test_an_upload_that_is_a_run_of_the_download_is_identical() -> None:
    comparison = compare_upload(entries(2, 3, 4), entries(1, 2, 3, 4, 5, 6))
    assert comparison.identical and comparison.compared == 3


def test_upload_entries_dropped_by_retention_since_are_not_held_against_the_download() -> None:
    assert compare_upload(entries(1, 2, 3), entries(2, 3, 4)).identical


def test_an_upload_read_after_the_download_is_compared_up_to_the_downloads_last_entry() -> None:
    later = compare_upload(entries(3, 4, 5, 6, 7, 8), entries(1, 2, 3, 4, 5))
    assert later.identical and later.compared == 3


def test_a_missing_or_extra_entry_is_counted_once_and_shown() -> None:
    missing = compare_upload(entries(2, 3, 4, 5), entries(1, 2, 4, 5, 6))
    assert (missing.only_in_upload, missing.only_in_download) == (1, 0) and "-3|comm|e|3" in missing.diff
    extra = compare_upload(entries(2, 4, 5), entries(1, 2, 3, 4, 5, 6))
    assert (extra.only_in_upload, extra.only_in_download) == (0, 1) and not extra.identical
    nothing = compare_upload(entries(7, 8), [])
    assert nothing.only_in_upload == 2 and not nothing.identical


def test_secrets_are_masked() -> None:
    assert masked("LOGIN hunter2 ok", ["hunter2", ""]) == "LOGIN **** ok"
