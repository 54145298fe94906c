"""A month unattended, in short: the soak of `make soak` (rig/soak.py) for 90 simulated days instead of 365.

The same driver and the same judgement as the year: every daily report, and every week an alarm, a downlink
answered and a swallowed report retried; the rig's RSS, the heap it kept and the twin's RSS on day 90 within
the year's allowance pro rata (20 % x 60 / 335 of day 30's RSS); the twin gone and every descriptor closed.
The judgement itself is checked on hand-made samples, so a leak, a lost event or an orphan would fail it.
"""

from __future__ import annotations

import pytest

from rig.soak import BASELINE_DAY, MemorySample, SoakResult, pro_rata_tolerance, soak

QUARTER_DAYS = 90
WEEKS = QUARTER_DAYS // 7


@pytest.fixture(scope="module")
def quarter() -> SoakResult:
    return soak(QUARTER_DAYS)


def test_reference_meter_soaks_a_quarter_with_every_weekly_event_and_flat_memory(quarter: SoakResult) -> None:
    assert quarter.problems() == []
    assert quarter.reports == QUARTER_DAYS
    assert quarter.alarms_received == quarter.alarms_raised >= WEEKS
    assert quarter.downlinks_answered >= WEEKS and quarter.downlinks_queued - quarter.downlinks_answered <= 1
    assert quarter.retries_seen == quarter.swallowed >= WEEKS
    assert [sample.day for sample in quarter.samples] == [30, 60, 90]
    assert quarter.tolerance == pytest.approx(0.20 * 60 / 335)


def test_soak_ends_clean_twin_gone_and_every_descriptor_closed(quarter: SoakResult) -> None:
    assert quarter.twin_pid is not None and not quarter.twin_left
    assert quarter.fds_left == []


def test_soak_reports_what_grew_and_the_twins_memory(quarter: SoakResult) -> None:
    last = quarter.samples[-1]
    assert last.twin_rss_kib > 0 and last.rig_rss_kib > 0
    assert last.rig_traced_kib > 0  # the run's record (transcript, uplinks) is kept: tracemalloc sees it
    assert quarter.growth and all("KiB" in row for row in quarter.growth)


def judged(last: MemorySample, **events: int) -> list[str]:
    """The problems of a 365-day result whose events all happened, with day 30 at 50 MiB and `last` last."""
    weeks = 365 // 7
    counts = dict(reports=365, alarms_raised=weeks, alarms_received=weeks, downlinks_queued=weeks,
                  downlinks_answered=weeks, swallowed=weeks, retries_seen=weeks)
    result = SoakResult(365, pro_rata_tolerance(365), **{**counts, **events})
    result.samples = [MemorySample(BASELINE_DAY, 51200, 0, 51200), last]
    result.twin_pid, result.twin_left = 1234, False
    return result.problems()


def test_a_year_within_20_percent_passes() -> None:
    assert judged(MemorySample(365, 61000, 10000, 61000)) == []


@pytest.mark.parametrize("last, named", [
    (MemorySample(365, 61500, 0, 51200), "rig RSS"),
    (MemorySample(365, 51200, 10500, 51200), "rig heap"),
    (MemorySample(365, 51200, 0, 61500), "twin RSS"),
], ids=["rig-rss", "rig-heap", "twin-rss"])
def test_growth_over_the_allowance_fails_the_soak(last: MemorySample, named: str) -> None:
    problems = judged(last)
    assert len(problems) == 1 and problems[0].startswith(named), problems


@pytest.mark.parametrize("events, named", [
    ({"reports": 364}, "reports: 364"), ({"alarms_received": 51}, "alarms received"),
    ({"downlinks_answered": 0}, "downlinks answered"), ({"retries_seen": 50}, "retries seen"),
], ids=["report", "alarm", "downlink", "retry"])
def test_a_missing_weekly_event_fails_the_soak(events: dict[str, int], named: str) -> None:
    problems = judged(MemorySample(365, 51200, 0, 51200), **events)
    assert len(problems) == 1 and problems[0].startswith(named), problems


def test_an_orphan_twin_or_an_open_descriptor_fails_the_soak() -> None:
    result = SoakResult(365, 0.2, samples=[MemorySample(30, 1, 0, 1), MemorySample(365, 1, 0, 1)], twin_pid=99,
                        twin_left=True, fds_left=["fd 7 -> socket:[1]"], reports=365, alarms_received=52,
                        downlinks_answered=52, retries_seen=52)
    assert result.problems() == ["the twin (pid 99) is still running", "left open: fd 7 -> socket:[1]"]


def test_a_soak_needs_days_after_its_baseline() -> None:
    with pytest.raises(ValueError, match="more than 30 days"):
        soak(BASELINE_DAY)
