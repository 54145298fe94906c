"""Long waits on a wall clock (hardware) say what they wait for and how long is left."""

from __future__ import annotations

import io

from rig.clock import WallClock, duration_text


def test_duration_text_reads_like_a_person_would_say_it() -> None:
    assert [duration_text(s) for s in (12.4, 250, 7500)] == ["12 s", "4 min 10 s", "2 h 05 min"]


def test_a_long_wait_prints_its_progress_naming_what_it_waits_for() -> None:
    out = io.StringIO()
    clock = WallClock(progress_every_s=0.05, progress_out=out)
    with clock.waiting_for("the daily report"):
        assert clock.wait_until(lambda: False, 0.2, poll_s=0.01) is False
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("[rig] waiting for the daily report: ") and "left" in line for line in lines)
    assert clock.activity == "the bench"


def test_a_short_wait_prints_nothing() -> None:
    out = io.StringIO()
    clock = WallClock(progress_every_s=60.0, progress_out=out)
    clock.sleep(0.01)
    assert clock.wait_until(lambda: True, 1.0)
    assert out.getvalue() == ""
