"""The access-stagger analysis (C4, C4f) on hand-made inputs: windows, days and deadlines, the start of an
attach on the monitor, the fitted rule and the fleet projection."""

from __future__ import annotations

import time as wall
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from rig.analysis.at_transcript import POWER_ON_CAUSE, Attempt
from rig.analysis.stagger import (
    StaggerRule,
    attach_start,
    cells_of,
    deadline_s,
    first_attempt_on,
    fit_rule,
    local_day,
    offset_sample,
    project_fleet,
    t1_on,
)
from rig.monitor import MCU, MODULE, MonitorLine

ZONE = ZoneInfo("Asia/Shanghai")
SEED_RULE = StaggerRule(t3_s=120.0, modulus=200, n2_max_s=60.0, wake_allowance_s=30.0)
NUMBERS = [12345, 0, 1, 199, 200]


def at(day: int, hour: int, minute: int = 0, second: float = 0.0) -> float:
    """POSIX time of a local clock time on 2026-01-`day`."""
    return datetime(2026, 1, day, hour, minute, tzinfo=ZONE).timestamp() + second


def attempt(time_s: float, index: int = 0) -> Attempt:
    return Attempt(time_s, index, "AT+QLWULDATAEX=3,010203,0x0100", "basic_report", "OK", time_s + 0.02)


def lines(*rows: tuple[float, str, str]) -> list[MonitorLine]:
    return [MonitorLine(index, time_s, sender, text) for index, (time_s, sender, text) in enumerate(rows)]


def seed_offsets(numbers: list[int], base_s: float = 3.5) -> np.ndarray:
    """What a meter following the seed's rule measures: (n mod 200) x 120 s + n mod 60 s + a common delay."""
    n = np.asarray(numbers)
    return (n % 200) * 120.0 + n % 60 + base_s


# ---- windows, days, deadlines ---------------------------------------------------------------------------


@pytest.mark.parametrize("number, window", [(0, (0, 90)), (1, (120, 210)), (199, (23880, 23970)),
                                            (200, (0, 90)), (12345, (17400, 17490))])
def test_window_opens_at_n_mod_200_slots_of_t3_and_lasts_n2_max_plus_the_wake_allowance(number: int,
                                                                                         window: tuple) -> None:
    assert SEED_RULE.window_s(number) == window


def test_t1_and_the_day_are_local_to_the_plans_zone() -> None:
    assert t1_on(date(2026, 1, 6), time(1), ZONE) == at(6, 1)
    assert local_day(at(6, 0, 0, 0.5), ZONE) == date(2026, 1, 6)
    assert local_day(at(6, 0) - 1.0, ZONE) == date(2026, 1, 5)  # 23:59:59 local, though 15:59:59 UTC


def test_deadline_closes_the_day_of_t1_or_the_next_when_it_is_not_after_t1() -> None:
    assert deadline_s(date(2026, 1, 6), time(1), time(8), ZONE) == at(6, 8)
    assert deadline_s(date(2026, 1, 6), time(22), time(8), ZONE) == at(7, 8)
    assert deadline_s(date(2026, 1, 6), time(8), time(8), ZONE) == at(7, 8)


def test_first_attempt_of_a_day_is_its_earliest_whatever_the_order() -> None:
    seen = [attempt(at(6, 7, 38), 3), attempt(at(6, 5, 50, 48.8), 1), attempt(at(5, 5, 50), 0),
            attempt(at(7, 1), 5)]
    assert first_attempt_on(seen, date(2026, 1, 6), ZONE).index == 1
    assert first_attempt_on(seen, date(2026, 1, 8), ZONE) is None


def test_offset_sample_counts_from_its_days_t1_and_says_whether_it_is_inside() -> None:
    sample = offset_sample(12345, at(6, 5, 50, 48.8), time(1), SEED_RULE, ZONE)
    assert (sample.day, round(sample.offset_s, 1), sample.low_s, sample.high_s) == (date(2026, 1, 6), 17448.8,
                                                                                   17400, 17490)
    assert sample.inside
    assert not offset_sample(12345, at(6, 1, 0, 3.8), time(1), SEED_RULE, ZONE).inside  # no stagger
    assert not offset_sample(0, at(6, 0, 59, 59.0), time(1), SEED_RULE, ZONE).inside  # before T1


# ---- the start of an attach on the monitor -------------------------------------------------------------


def test_attach_starts_at_the_modules_power_on_banner() -> None:
    transcript = lines((100.0, MODULE, POWER_ON_CAUSE), (100.0, MODULE, "Neul"), (100.1, MCU, "AT+CGATT?"),
                       (100.2, MODULE, "+CGATT:0"), (110.0, MCU, "AT+CGATT?"), (110.1, MODULE, "+CGATT:1"))
    assert attach_start(transcript).time_s == 100.0


def test_a_module_powered_at_once_but_held_off_the_air_starts_its_attach_at_cfun_1() -> None:
    transcript = lines((1.0, MODULE, POWER_ON_CAUSE), (1.1, MCU, "AT+CFUN=0"), (1.2, MODULE, "OK"),
                       (17445.0, MCU, "AT+CFUN=1"), (17445.1, MODULE, "OK"), (17452.0, MODULE, "+CEREG:1"))
    assert attach_start(transcript).time_s == 17445.0


def test_a_module_that_never_attaches_started_at_its_first_banner_and_nothing_shown_is_none() -> None:
    transcript = lines((5.0, MODULE, POWER_ON_CAUSE), (305.0, MCU, "AT+CFUN=0"), (3905.0, MODULE, POWER_ON_CAUSE))
    assert attach_start(transcript).time_s == 5.0
    assert attach_start(transcript, start=3) is None
    assert attach_start(lines((1.0, MODULE, "+CGATT:1"), (2.0, MODULE, POWER_ON_CAUSE))) is None


# ---- the measured rule -------------------------------------------------------------------------------------


def test_fit_recovers_t3_n2_and_the_common_delay_of_a_meter_on_the_seed_rule() -> None:
    rule = fit_rule(NUMBERS, seed_offsets(NUMBERS), 200, 60)
    assert (rule.slope_s, rule.n2_gain_s, rule.base_s) == pytest.approx((120.0, 1.0, 3.5), abs=1e-6)
    assert rule.residual_max_s < 1e-6 and rule.samples == 5
    assert rule.offsets_s(np.array([199, 12345])) == pytest.approx([23902.5, 17448.5])


def test_fit_of_a_meter_that_does_not_stagger_puts_every_number_on_t1() -> None:
    rule = fit_rule(NUMBERS, [3.8] * 5, 200, 60)
    assert (rule.slope_s, rule.n2_gain_s, rule.base_s) == pytest.approx((0.0, 0.0, 3.8), abs=1e-9)


def test_fit_reports_how_far_a_meter_strays_from_the_rule() -> None:
    offsets = seed_offsets(NUMBERS)
    offsets[3] += 600.0  # number 199 five minutes late
    assert fit_rule(NUMBERS, offsets, 200, 60).residual_max_s > 100.0


def test_fit_without_an_n2_term_when_the_plan_has_none() -> None:
    rule = fit_rule([0, 1, 150], [2.0, 122.0, 18002.0], 200, 1)
    assert (rule.slope_s, rule.n2_gain_s, rule.base_s) == pytest.approx((120.0, 0.0, 2.0))


@pytest.mark.parametrize("numbers", [[12345], [0, 200, 400], [1, 201]], ids=["own-only", "same-slot", "too-few"])
def test_numbers_that_cannot_tell_the_terms_apart_are_refused(numbers: list[int]) -> None:
    with pytest.raises(ValueError, match="cannot determine"):
        fit_rule(numbers, seed_offsets(numbers), 200, 60)


# ---- the fleet -----------------------------------------------------------------------------------------------


def test_consecutive_meters_fill_the_cells_in_even_contiguous_blocks() -> None:
    assert cells_of(np.arange(10), 10, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert np.bincount(cells_of(np.arange(1_000_000), 1_000_000, 1000)).tolist() == [1000] * 1000


def test_a_fleet_on_the_seed_rule_has_five_first_attempts_a_minute_per_cell_and_ends_at_07_38_59() -> None:
    rule = fit_rule(NUMBERS, seed_offsets(NUMBERS, base_s=0.0), 200, 60)
    started = wall.perf_counter()
    projection = project_fleet(rule, 1_000_000, 1000)
    assert wall.perf_counter() - started < 2.0  # vectorised (tens of milliseconds on a laptop)
    assert projection.peak_per_minute_per_cell == 5  # 1000 meters of a cell: 5 per slot, every slot within a minute
    assert projection.last_offset_s == pytest.approx(199 * 120 + 59)  # 07:38:59 with T1 at 01:00
    assert projection.first_minute == 0 and len(projection.busiest_per_minute) == 399


def test_a_fleet_that_does_not_stagger_lands_a_whole_cell_in_one_minute() -> None:
    projection = project_fleet(fit_rule(NUMBERS, [3.8] * 5, 200, 60), 1_000_000, 1000)
    assert projection.peak_per_minute_per_cell == 1000 and projection.peak_minute == 0
    assert projection.last_offset_s == pytest.approx(3.8)


def test_busiest_minute_is_counted_per_cell_not_over_the_fleet() -> None:
    """Ten meters in two cells: numbers 0-4 in cell 0, 5-9 in cell 1; slope 30 s per unit of n mod 4."""
    rule = fit_rule([0, 1, 2, 3], [0.0, 30.0, 60.0, 90.0], 4, 1)
    projection = project_fleet(rule, 10, 2)
    # offsets 0, 30, 60, 90, 0 | 30, 60, 90, 0, 30: minute 0 holds n 0, 1, 4 | 5, 8, 9, minute 1 two a cell
    assert projection.busiest_per_minute.tolist() == [3, 2]
    assert projection.peak_minute == 0


def test_a_rule_spreading_over_weeks_projects_without_a_dense_table() -> None:
    rule = fit_rule(NUMBERS, seed_offsets(NUMBERS) * 1000.0, 200, 60)  # T3 of 33 h, n2 in steps of 1000 s
    projection = project_fleet(rule, 100_000, 100)
    assert len(projection.busiest_per_minute) > 390_000  # 1000 cells of 400,000 minutes would be 3 GB dense
    assert projection.peak_per_minute_per_cell == 2  # n and n + 600 share a slot and an n2 in a block of 1000
