"""Energy analysis (rig/analysis/energy.py) on synthetic data-log chunks, and the C5 and B1 checks end to end.

The unit tests build chunks by hand, so every figure has a known answer and the streaming helpers are shown
to give the same result however a record is cut into chunks. The end-to-end tests run the suites as a user
does (`pytest suites --checks C5,B1 --device ...`) against the reference meter and the C5 defect profiles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from rig.analysis.energy import (
    DAY_S,
    Decimator,
    EnergyTally,
    OffSpans,
    battery_years,
    charge_per_day_uah,
    charge_per_year_ah,
    charge_uah,
    floor_current_a,
    plan_battery_years,
    stream,
)
from rig.instruments.power import DataLogChunk
from rig.profiles.plan import LEVELS, Battery, load_plan

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "profiles" / "plans" / "white-paper-2018.yaml"
DEVICES = ROOT / "profiles" / "devices"
DEFECTS = DEVICES / "defects"

FLOOR_A = 12e-6
FREEZE_A, FREEZE_S = 3e-3, 0.005  # the MCU awake for one freeze


def chunks_of(means_a: np.ndarray, period_s: float, size: int, start_s: float = 1000.0,
              mins_a: np.ndarray | None = None, maxs_a: np.ndarray | None = None) -> list[DataLogChunk]:
    """A data log cut into chunks of `size` periods (min and max default to the mean)."""
    mins_a = means_a if mins_a is None else mins_a
    maxs_a = means_a if maxs_a is None else maxs_a
    return [
        DataLogChunk(start_s + i * period_s, period_s, means_a[i:i + size], mins_a[i:i + size], maxs_a[i:i + size])
        for i in range(0, len(means_a), size)
    ]


def sleeping_meter(periods: int, wakes_at: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 s periods at the floor; in each period of `wakes_at` the MCU wakes for a freeze (mean up, max 3 mA)."""
    means = np.full(periods, FLOOR_A)
    maxs = np.full(periods, FLOOR_A)
    for index in wakes_at:
        means[index] += (FREEZE_A - FLOOR_A) * FREEZE_S
        maxs[index] = FREEZE_A
    return means, means.copy(), maxs


# ---- charge and floor -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 7, 60, 1000])
def test_charge_and_floor_do_not_depend_on_how_the_record_is_chunked(size: int) -> None:
    means, mins, maxs = sleeping_meter(600, wakes_at=(100, 400))
    tally = EnergyTally()
    assert stream(chunks_of(means, 1.0, size, mins_a=mins, maxs_a=maxs), tally) == -(-600 // size)
    expected_uah = (600 * FLOOR_A + 2 * (FREEZE_A - FLOOR_A) * FREEZE_S) / 3600 * 1e6
    assert tally.charge_uah == pytest.approx(expected_uah, rel=1e-12)
    assert tally.duration_s == 600.0 and tally.periods == 600
    assert tally.floor_a == pytest.approx(FLOOR_A, rel=1e-12)
    assert tally.mean_a > FLOOR_A


def test_floor_leaves_out_the_periods_in_which_the_mcu_woke() -> None:
    means, mins, maxs = sleeping_meter(60, wakes_at=(30,))
    chunks = chunks_of(means, 1.0, 16, mins_a=mins, maxs_a=maxs)
    assert floor_current_a(chunks) == pytest.approx(FLOOR_A, rel=1e-12)
    tally = EnergyTally()
    stream(chunks, tally)
    assert tally.quiet_periods == 59 and tally.quiet_share == pytest.approx(59 / 60)
    assert tally.highest_a == FREEZE_A and tally.lowest_a == FLOOR_A


def test_a_meter_awake_in_most_periods_has_its_average_as_floor() -> None:
    means = np.full(100, 2e-3)
    means[:10] = 10e-6  # ten quiet seconds, ninety awake
    maxs = np.where(means > 1e-3, 5e-3, means)
    chunks = chunks_of(means, 1.0, 25, maxs_a=maxs)
    assert floor_current_a(chunks) == pytest.approx(float(np.mean(means)), rel=1e-12)


def test_a_floor_of_300_ua_that_never_wakes_is_its_own_floor() -> None:
    means = np.full(60, 300e-6)
    assert floor_current_a(chunks_of(means, 1.0, 10)) == pytest.approx(300e-6)


def test_window_takes_only_the_periods_that_start_inside_it() -> None:
    means = np.concatenate([np.full(60, 1e-3), np.full(60, 5e-6), np.full(60, 1e-3)])
    maxs = np.where(means > 1e-4, 20e-3, means)
    chunks = chunks_of(means, 1.0, 50, start_s=0.0, maxs_a=maxs)
    assert floor_current_a(chunks, from_s=60.0, to_s=120.0) == pytest.approx(5e-6)
    assert charge_uah(chunks, from_s=60.0, to_s=120.0) == pytest.approx(60 * 5e-6 / 3600 * 1e6)
    tally = EnergyTally(from_s=75.0, to_s=80.0)
    stream(chunks, tally)
    assert (tally.first_s, tally.duration_s) == (75.0, 5.0)
    empty = EnergyTally(from_s=1e6)
    stream(chunks, empty)
    assert empty.periods == 0 and np.isnan(empty.floor_a) and np.isnan(empty.mean_a)


def test_charge_per_day_scales_a_record_to_a_day() -> None:
    assert charge_per_day_uah(100.0, DAY_S) == 100.0
    assert charge_per_day_uah(100.0, DAY_S / 4) == 400.0
    means = np.full(3600, 12e-6)
    tally = EnergyTally()
    stream(chunks_of(means, 1.0, 600), tally)
    assert tally.charge_per_day_uah == pytest.approx(12 * 24)  # 12 uA for a day is 288 uAh
    with pytest.raises(ValueError):
        charge_per_day_uah(1.0, 0.0)


def test_a_day_at_10_ms_periods_streams_in_bounded_memory() -> None:
    """8.64 million periods (about 200 MB as mean/min/max arrays) pass through in chunks of 100,000."""
    period_s, size = 0.01, 100_000
    total = int(DAY_S / period_s)

    def day() -> Iterator[DataLogChunk]:
        for first in range(0, total, size):
            means = np.full(min(size, total - first), FLOOR_A, dtype=np.float32)
            yield DataLogChunk(first * period_s, period_s, means, means, means)

    tally, plot = EnergyTally(), Decimator(60.0)
    tracemalloc.start()
    try:
        stream(day(), tally, plot)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10e6, f"peak {peak / 1e6:.1f} MB"
    assert tally.periods == total
    assert tally.charge_per_day_uah == pytest.approx(FLOOR_A * 24 * 1e6, rel=1e-4)
    assert len(plot.trace().amps) == 1440


# ---- module rail power cuts ---------------------------------------------------------------------------------
def test_off_spans_count_cuts_across_chunks_and_see_a_short_cut_through_the_minimum() -> None:
    means = np.full(20, 3e-6)
    mins = means.copy()
    mins[3] = 0.0  # a cut shorter than a period: the mean barely moves, the minimum shows it
    means[3] = 2.9e-6
    mins[9:13] = means[9:13] = 0.0  # a longer cut over a chunk boundary (chunks of 5: periods 9 | 10-12)
    mins[19] = means[19] = 0.0  # cut again at the end
    spans = OffSpans(0.5e-6)
    stream(chunks_of(means, 1.0, 5, start_s=0.0, mins_a=mins), spans)
    assert spans.spans == 3
    assert spans.first_off_s == [3.0, 9.0, 19.0]
    assert spans.off_periods == 6 and spans.off_s == 6.0


def test_a_rail_in_psm_has_no_off_spans_and_one_already_off_has_one() -> None:
    psm = OffSpans(0.5e-6)
    stream(chunks_of(np.full(30, 3e-6), 1.0, 7), psm)
    assert psm.spans == 0
    off = OffSpans(0.5e-6)
    stream(chunks_of(np.zeros(30), 1.0, 7, start_s=0.0), off)
    assert (off.spans, off.first_off_s) == (1, [0.0])


# ---- plots -----------------------------------------------------------------------------------------------
def test_decimator_keeps_bin_means_across_chunks_with_a_partial_last_bin() -> None:
    means = np.arange(10, dtype=float)
    plot = Decimator(3.0)
    stream(chunks_of(means, 1.0, 4, start_s=50.0), plot)
    trace = plot.trace()
    assert (trace.start_s, trace.period_s) == (50.0, 3.0)
    assert trace.amps.tolist() == [1.0, 4.0, 7.0, 9.0]


# ---- battery -------------------------------------------------------------------------------------------
def test_years_are_usable_capacity_over_the_yearly_charge_plus_self_discharge() -> None:
    # 4 Ah, 75 % usable, 1 % a year: 3 Ah / (337.5 uAh x 365.25 + 40 mAh) = 18.37 years
    years = battery_years(4.0, 0.75, 0.01, charge_per_day_uah=337.5)
    assert years == pytest.approx(3.0 / (337.5e-6 * 365.25 + 0.04))
    assert years == pytest.approx(18.37, abs=0.01)
    # monthly events add twelve times their charge a year
    assert charge_per_year_ah(100.0, monthly_uah=1000.0) == pytest.approx((36525 + 12000) * 1e-6)
    with_events = battery_years(4.0, 0.75, 0.01, charge_per_day_uah=337.5, monthly_uah=128.0)
    assert with_events == pytest.approx(3.0 / (337.5e-6 * 365.25 + 128e-6 * 12 + 0.04))


def test_a_300_ua_floor_empties_the_battery_in_about_a_year() -> None:
    per_day_uah = 300e-6 * DAY_S / 3600 * 1e6  # 7.2 mAh a day
    assert battery_years(4.0, 0.75, 0.01, per_day_uah) == pytest.approx(1.12, abs=0.01)


def test_self_discharge_alone_bounds_the_life() -> None:
    assert battery_years(4.0, 0.75, 0.01, 0.0) == pytest.approx(75.0)
    assert battery_years(4.0, 0.75, 0.0, 0.0) == float("inf")


def test_plan_battery_is_the_papers_li_socl2_cell() -> None:
    battery = load_plan(PLAN).battery
    assert plan_battery_years(battery, 400.0, 50.0) == battery_years(4.0, 0.75, 0.01, 400.0, 50.0)
    assert plan_battery_years(Battery(capacity_ah=8.0), 400.0) == battery_years(8.0, 0.75, 0.01, 400.0)


@pytest.mark.parametrize("arguments", [(0.0, 0.75, 0.01, 1.0), (4.0, 0.0, 0.01, 1.0), (4.0, 1.5, 0.01, 1.0),
                                       (4.0, 0.75, -0.1, 1.0), (4.0, 0.75, 0.01, -1.0)])
def test_battery_refuses_impossible_figures(arguments: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        battery_years(*arguments)


# ---- the checks end to end -----------------------------------------------------------------------------------
RUNS = {
    "reference-meter": DEVICES / "reference-meter.yaml",
    "c5-module-psm-12ua": DEFECTS / "c5-module-psm-12ua.yaml",
    "c5-power-off-instead-of-psm": DEFECTS / "c5-power-off-instead-of-psm.yaml",
    "c5-mcu-never-sleeps": DEFECTS / "c5-mcu-never-sleeps.yaml",
    "bare-module": DEVICES / "bare-module.yaml",
    "bare-module-psm-12ua": None,  # written into the run directory
}


def expected_failures(name: str) -> set[tuple[str, str]]:
    """Which (check, level) cells each profile fails: C5 everywhere for the C5 defects, B1 where it is judged."""
    judged = load_plan(PLAN).battery.judged_levels
    if name in ("reference-meter", "bare-module"):
        return set()
    failures = {("C5", level) for level in LEVELS}
    if name == "c5-mcu-never-sleeps":
        failures |= {("B1", level) for level in judged}
    return failures


def run_checks(device: Path, directory: Path) -> list[dict]:
    outcomes = directory / "o.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "-o", "testpaths=suites", "--checks", "C5,B1",
         "--device", str(device), "--outcomes", str(outcomes), "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    return [json.loads(line) for line in outcomes.read_text().splitlines()]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Every profile of RUNS through C5 and B1, two runs at a time."""
    directories = {name: tmp_path_factory.mktemp(name) for name in RUNS}
    devices = dict(RUNS)
    devices["bare-module-psm-12ua"] = directories["bare-module-psm-12ua"] / "device.yaml"
    devices["bare-module-psm-12ua"].write_text(yaml.safe_dump({
        "extends": str(DEVICES / "bare-module.yaml"), "name": "bare-module-psm-12ua",
        "sim": {"module": {"psm_current_ua": 12}}}))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_checks, devices[name], directories[name]) for name in RUNS}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", [name for name in RUNS if not name.startswith("bare")])
def test_meter_checks_fail_exactly_where_the_profile_is_faulty(outcomes: dict[str, list[dict]], name: str) -> None:
    records = outcomes[name]
    meter = {(r["check"], r["level"]): r["outcome"] for r in records if "bare_module" not in r["test"]}
    assert set(meter) == {(check, level) for check in ("C5", "B1") for level in LEVELS}, records
    failing = expected_failures(name)
    assert {cell for cell, outcome in meter.items() if outcome == "failed"} == failing, records
    assert {cell for cell, outcome in meter.items() if outcome == "passed"} == set(meter) - failing, records
    assert all(r["outcome"] == "n/a" for r in records if "bare_module" in r["test"]), records  # the other kind


@pytest.mark.parametrize("name, outcome", [("bare-module", "passed"), ("bare-module-psm-12ua", "failed")])
def test_bare_module_c5_judges_the_modules_own_psm_current(outcomes: dict[str, list[dict]], name: str,
                                                           outcome: str) -> None:
    records = outcomes[name]
    module = {r["level"]: r["outcome"] for r in records if "bare_module" in r["test"]}
    assert module == dict.fromkeys(LEVELS, outcome), records
    others = [r for r in records if "bare_module" not in r["test"]]
    # meter checks on a module: n/a (B1's meter fixture) or skipped for a part the module lacks (the monitor)
    assert others and all(r["outcome"] in ("n/a", "skipped") for r in others), records
