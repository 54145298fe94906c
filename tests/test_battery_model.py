"""B1's battery model: cell presets, temperature classes, the design-life ceiling, the drain's shares."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from rig.measurements import Measurement
from rig.profiles.plan import Battery, PlanProfile
from rig.report.battery import drain_parts, project, projection_markdown, shares_text


def test_default_cell_is_the_4_ah_cell_with_an_hlc_at_20_c() -> None:
    battery = Battery()
    assert battery.cell == "ER18505-HLC" and battery.preset.hlc and battery.temperature_class == "20C"
    assert (battery.capacity_ah, battery.usable_fraction, battery.self_discharge_fraction_per_year) == (4.0, 0.75, 0.01)
    assert battery.design_life_years == 15


@pytest.mark.parametrize(("cell", "capacity_ah"), [("ER18505", 4.0), ("ER26500", 8.5), ("ER34615", 19.0)])
def test_every_cell_comes_with_and_without_an_hlc(cell: str, capacity_ah: float) -> None:
    bare, hybrid = Battery(cell=cell), Battery(cell=f"{cell}-HLC")
    assert bare.capacity_ah == hybrid.capacity_ah == capacity_ah
    assert not bare.preset.hlc and hybrid.preset.hlc
    assert bare.preset.pulse_ma < 300 < hybrid.preset.pulse_ma  # bobbin cells cannot carry NB-IoT TX pulses


def test_hot_box_uses_less_of_the_cell_and_loses_more_a_year() -> None:
    hot = Battery(cell="ER34615-HLC", temperature_class="hot_box")
    assert (hot.capacity_ah, hot.usable_fraction, hot.self_discharge_fraction_per_year) == (19.0, 0.65, 0.025)


def test_a_written_figure_overrides_its_preset() -> None:
    assert Battery(cell="ER26500", capacity_ah=9.0).capacity_ah == 9.0


def test_an_unknown_preset_is_refused() -> None:
    with pytest.raises(ValidationError, match="ER99999"):
        Battery(cell="ER99999")
    with pytest.raises(ValidationError, match="arctic"):
        Battery(temperature_class="arctic")


def test_life_is_the_smaller_of_charge_and_design_life() -> None:
    battery = Battery()  # 3 Ah usable, 0.04 Ah a year self-discharge, 15 years design life
    years, charge_years, bound = battery.life(0.1)
    assert charge_years == pytest.approx(3.0 / 0.14) and years == 15 and bound == "design life"
    years, charge_years, bound = battery.life(0.3)
    assert years == charge_years == pytest.approx(3.0 / 0.34) and bound == "charge"
    assert all(math.isnan(value) for value in battery.life(math.nan)[:2])


def test_drain_parts_split_the_day_and_sum_to_one() -> None:
    # 10 uA floor all day = 240 uAh; one report a day whose 180 s window holds 30.5 uAh (0.5 of floor) = 30 uAh
    parts = drain_parts(300.0, 10.0, 1.0, 30.5, 180.0, 20.0, Battery())
    per_day = {part: value / 365.25 for part, value in parts.uah_per_year.items()}
    assert per_day["sleep_floor"] == pytest.approx(240.0) and per_day["reports"] == pytest.approx(30.0)
    assert per_day["retries_other"] == pytest.approx(30.0)
    assert parts.uah_per_year["monthly_events"] == 240.0 and parts.uah_per_year["self_discharge"] == 40000.0
    assert sum(parts.shares.values()) == pytest.approx(1.0)
    assert shares_text(parts.shares).startswith("sleep ")


def test_projection_shows_bound_and_shares() -> None:
    plan = PlanProfile(name="p")
    measurements = [Measurement("B1", "CE0", "charge_per_day_uah", 200.0, "uAh"),
                    Measurement("B1", "CE0", "share_sleep_floor", 60.0, "%"),
                    Measurement("B1", "CE1", "charge_per_day_uah", 2500.0, "uAh")]
    ce0, ce1 = project(measurements, plan)
    assert ce0.bound == "design life" and ce0.years == 15 and ce0.charge_years > 15 and ce0.shares == {
        "sleep_floor": 0.6}
    assert ce1.bound == "charge" and ce1.years == ce1.charge_years < 7
    text = projection_markdown([ce0, ce1], plan)
    assert "ER18505-HLC" in text and "design life" in text and "sleep 60%" in text
