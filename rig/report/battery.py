"""Battery-life projection for the report: years per coverage level from B1's measured charges.

Each level's years come from the charge per day B1 measured there and the monthly events (point read,
valve) at their measured charge, over the plan's battery: usable capacity (capacity x usable fraction,
the derating) / (charge per year + self-discharge). Drawn as bars against the plan's target (6 + 1 years).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

from rig.analysis.energy import plan_battery_years  # noqa: E402
from rig.measurements import Measurement  # noqa: E402
from rig.profiles.plan import PlanProfile  # noqa: E402
from rig.report.plots import figure_png  # noqa: E402

CHECK = "B1"


@dataclass(frozen=True)
class LevelLife:
    """One level's projection and whether the plan judges it."""

    level: str
    charge_per_day_uah: float
    monthly_events_uah: float
    years: float
    limit_years: float | None

    @property
    def passed(self) -> bool | None:
        if self.limit_years is None:
            return None
        return not math.isnan(self.years) and self.years >= self.limit_years


def _value(measurements: list[Measurement], level: str, name: str) -> float | None:
    found = [m.value for m in measurements if m.check == CHECK and m.level == level and m.name == name]
    value = found[-1] if found else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def limit_years(plan: PlanProfile, level: str) -> float | None:
    battery = plan.battery
    if level in battery.judged_levels:
        return battery.target_years
    return battery.ce2_min_years if level == "CE2" else None


def project(measurements: list[Measurement], plan: PlanProfile) -> list[LevelLife]:
    """Levels (in plan order) where B1 measured a charge per day; monthly events count 0 where not measured."""
    lives = []
    for level in plan.levels:
        per_day = _value(measurements, level, "charge_per_day_uah")
        if per_day is None:
            continue
        monthly = _value(measurements, level, "monthly_events_uah") or 0.0
        years = plan_battery_years(plan.battery, per_day, monthly)
        lives.append(LevelLife(level, per_day, monthly, years, limit_years(plan, level)))
    return lives


def battery_chart_png(lives: list[LevelLife], plan: PlanProfile) -> bytes:
    """Bars of projected years per level, coloured by verdict, with the target drawn."""
    battery = plan.battery
    figure, axes = plt.subplots(figsize=(7, 3.8), dpi=100)
    colours = {True: "#2e7d32", False: "#c62828", None: "#607d8b"}
    levels = [life.level for life in lives]
    years = [life.years for life in lives]
    bars = axes.bar(levels, years, color=[colours[life.passed] for life in lives])
    for bar, life in zip(bars, lives, strict=True):
        axes.annotate(f"{life.years:.1f} y\n{life.charge_per_day_uah:.0f} uAh/day",
                      (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    axes.axhline(battery.target_years, color="#c62828", linestyle="--", linewidth=1,
                 label=f"target {battery.target_years:g} years (6 + 1)")
    axes.set_ylabel("projected battery life (years)")
    axes.set_ylim(0, max([battery.target_years, *[y for y in years if not math.isnan(y)]]) * 1.25)
    axes.set_title(f"Battery life per coverage level: {battery.chemistry} {battery.capacity_ah:g} Ah, "
                   f"{battery.usable_fraction:.0%} usable, {battery.self_discharge_fraction_per_year:.0%}/year",
                   fontsize=9)
    axes.legend(loc="upper right", fontsize=8)
    axes.grid(True, axis="y", alpha=0.3)
    return figure_png(figure)


def projection_markdown(lives: list[LevelLife], plan: PlanProfile) -> str:
    battery = plan.battery
    rows = ["| level | charge per day (uAh) | monthly events (uAh) | years | limit |", "|---|---|---|---|---|"]
    for life in lives:
        limit = f">= {life.limit_years:g}" if life.limit_years is not None else "recorded"
        rows.append(f"| {life.level} | {life.charge_per_day_uah:.1f} | {life.monthly_events_uah:.1f} | "
                    f"{life.years:.2f} | {limit} |")
    head = (f"Battery {battery.chemistry} {battery.capacity_ah:g} Ah, {battery.usable_fraction:.0%} usable, "
            f"self-discharge {battery.self_discharge_fraction_per_year:.0%} of capacity a year.")
    return head + "\n\n" + "\n".join(rows) + "\n"
