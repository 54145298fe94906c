"""Battery-life projection for the report: years per coverage level from B1's measured charges.

Each level's years come from the charge per day B1 measured there and the monthly events (point read,
valve) at their measured charge, over the plan's battery: usable capacity (capacity x usable fraction,
the derating) / (charge per year + self-discharge), bounded by the cell's design life (the plan's cell
preset). Drawn as bars against the plan's target (6 + 1 years) and the design life, each bar with its bound and
the shares of the yearly drain (sleep floor, reports, retries and other wakes, monthly events, self-discharge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

from rig.analysis.energy import plan_battery_years  # noqa: E402
from rig.measurements import Measurement  # noqa: E402
from rig.profiles.plan import Battery, PlanProfile  # noqa: E402
from rig.report.plots import figure_png  # noqa: E402

CHECK = "B1"
HOURS_PER_YEAR = 24 * 365.25
PARTS = ("sleep_floor", "reports", "retries_other", "monthly_events", "self_discharge")
PART_LABELS = {"sleep_floor": "sleep", "reports": "reports", "retries_other": "retries/other",
               "monthly_events": "monthly", "self_discharge": "self-discharge"}


@dataclass(frozen=True)
class DrainParts:
    """A year's drain in uAh by part; their shares of the whole."""

    uah_per_year: dict[str, float]

    @property
    def shares(self) -> dict[str, float]:
        total = sum(self.uah_per_year.values())
        if not total or math.isnan(total):
            return {part: math.nan for part in self.uah_per_year}
        return {part: value / total for part, value in self.uah_per_year.items()}


def drain_parts(per_day_uah: float, floor_ua: float, reports_per_day: float, report_window_uah: float,
                window_s: float, monthly_uah: float, battery: Battery) -> DrainParts:
    """The day's charge split into the sleep floor (all day), the reports (each report window's charge above
    the floor) and the rest of the day's wakes (retries, freezes, TAU); plus monthly events and self-discharge."""
    floor_day = floor_ua * 24.0
    report_extra = max(report_window_uah - floor_ua * window_s / 3600.0, 0.0)
    reports_day = min(reports_per_day * report_extra, max(per_day_uah - floor_day, 0.0))
    rest_day = max(per_day_uah - floor_day - reports_day, 0.0)
    days = HOURS_PER_YEAR / 24.0
    return DrainParts({
        "sleep_floor": floor_day * days, "reports": reports_day * days, "retries_other": rest_day * days,
        "monthly_events": monthly_uah * 12.0, "self_discharge": battery.self_discharge_ah_per_year * 1e6,
    })


def shares_text(shares: dict[str, float]) -> str:
    """`sleep 80 %, reports 12 %, ...` (NaN shares as `?`)."""
    return ", ".join(f"{PART_LABELS.get(part, part)} " + ("?" if math.isnan(share) else f"{share:.0%}")
                     for part, share in shares.items())


@dataclass(frozen=True)
class LevelLife:
    """One level's projection and whether the plan judges it."""

    level: str
    charge_per_day_uah: float
    monthly_events_uah: float
    years: float
    limit_years: float | None
    charge_years: float = math.nan
    bound: str = "charge"
    shares: dict[str, float] = field(default_factory=dict)

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
        charge_years = plan_battery_years(plan.battery, per_day, monthly)
        years = min(charge_years, plan.battery.design_life_years)
        bound = "design life" if charge_years > plan.battery.design_life_years else "charge"
        shares = {part: share / 100 for part in PARTS
                  if (share := _value(measurements, level, f"share_{part}")) is not None}
        lives.append(LevelLife(level, per_day, monthly, years, limit_years(plan, level), charge_years, bound, shares))
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
        text = f"{life.years:.1f} y ({life.bound})\n{life.charge_per_day_uah:.0f} uAh/day"
        if life.shares:
            text += "\n" + shares_text(life.shares).replace(", ", "\n")
        axes.annotate(text,
                      (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    axes.axhline(battery.target_years, color="#c62828", linestyle="--", linewidth=1,
                 label=f"target {battery.target_years:g} years (6 + 1)")
    axes.axhline(battery.design_life_years, color="#455a64", linestyle=":", linewidth=1,
                 label=f"{battery.cell} design life {battery.design_life_years:g} years (ceiling)")
    axes.set_ylabel("projected battery life (years)")
    top = max([battery.target_years, battery.design_life_years, *[y for y in years if not math.isnan(y)]])
    axes.set_ylim(0, top * (1.9 if any(life.shares for life in lives) else 1.25))
    axes.set_title(f"Battery life per coverage level: {battery.label}", fontsize=8)
    axes.legend(loc="upper right", fontsize=8)
    axes.grid(True, axis="y", alpha=0.3)
    return figure_png(figure)


def projection_markdown(lives: list[LevelLife], plan: PlanProfile) -> str:
    battery = plan.battery
    rows = ["| level | charge per day (uAh) | monthly events (uAh) | charge-based years | years | bound | shares "
            "of the drain | limit |", "|---|---|---|---|---|---|---|---|"]
    for life in lives:
        limit = f">= {life.limit_years:g}" if life.limit_years is not None else "recorded"
        shares = shares_text(life.shares) if life.shares else "not recorded"
        rows.append(f"| {life.level} | {life.charge_per_day_uah:.1f} | {life.monthly_events_uah:.1f} | "
                    f"{life.charge_years:.2f} | {life.years:.2f} | {life.bound} | {shares} | {limit} |")
    head = (f"Battery {battery.chemistry} {battery.label}. Years = min(usable capacity / (charge per year + "
            "self-discharge), design life).")
    return head + "\n\n" + "\n".join(rows) + "\n"
