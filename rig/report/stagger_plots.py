"""Plots of the access stagger (C4, C4f): each first attempt's minute against its window, and the fleet's
first attempts per minute in the busiest cell against the plan's limit."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

from rig.analysis.stagger import MINUTE_S, FleetProjection, MeasuredRule, OffsetSample  # noqa: E402
from rig.report.plots import figure_png  # noqa: E402

INSIDE, OUTSIDE, WINDOW = "#1f7a3a", "#c0392b", "#9db8d9"
MARGIN_MIN = 10  # minutes shown beyond the fleet's span and the deadline


def _draw_offsets(axes: plt.Axes, samples: Sequence[OffsetSample], labels: Sequence[str], origin: str,
                  event: str) -> None:
    """Minutes from `origin` against meter number: the window as a bar, the event as a diamond."""
    positions = np.arange(len(samples))
    lows = np.array([s.low_s for s in samples]) / MINUTE_S
    highs = np.array([s.high_s for s in samples]) / MINUTE_S
    axes.bar(positions, highs - lows, bottom=lows, width=0.5, color=WINDOW, edgecolor=WINDOW, linewidth=2,
             label="window")
    colours = [INSIDE if s.inside else OUTSIDE for s in samples]
    axes.scatter(positions, [s.offset_s / MINUTE_S for s in samples], color=colours, zorder=3, marker="D",
                 label=event)
    axes.set_xticks(positions, labels, fontsize=8)
    axes.set_xlabel("meter number")
    axes.set_ylabel(f"minutes from {origin}")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)


def _draw_within_window(axes: plt.Axes, samples: Sequence[OffsetSample], labels: Sequence[str]) -> None:
    """Seconds from each window's opening, so a window of a minute and a half stays readable."""
    positions = np.arange(len(samples))
    axes.bar(positions, [s.high_s - s.low_s for s in samples], width=0.5, color=WINDOW, label="window")
    axes.scatter(positions, [s.offset_s - s.low_s for s in samples], zorder=3, marker="D",
                 color=[INSIDE if s.inside else OUTSIDE for s in samples], label="first attempt")
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_xticks(positions, labels, fontsize=8)
    axes.set_xlabel("meter number")
    axes.set_ylabel("seconds from the window's opening")
    axes.grid(True, axis="y", alpha=0.3)


def offsets_png(samples: Sequence[OffsetSample], title: str, labels: Sequence[str] | None = None,
                origin: str = "T1", event: str = "first attempt") -> bytes:
    """Each sample's minute from `origin` against meter number over its window, and the same within the window
    (green inside, red outside)."""
    figure, (minutes, within) = plt.subplots(1, 2, figsize=(12, 4), dpi=100)
    names = labels or [f"{s.number}\n{s.day:%m-%d}" for s in samples]
    _draw_offsets(minutes, samples, names, origin, event)
    _draw_within_window(within, samples, names)
    figure.suptitle(title)
    return figure_png(figure)


def fleet_png(projection: FleetProjection, rule: MeasuredRule, samples: Sequence[OffsetSample],
              limit_per_minute: float, deadline_minute: float, title: str) -> bytes:
    """Left: the measured minutes and the fitted rule's; right: the busiest cell's first attempts per minute
    with the plan's limit and the deadline."""
    figure, (measured, fleet) = plt.subplots(1, 2, figsize=(12, 4), dpi=100, gridspec_kw={"width_ratios": [1, 2]})
    _draw_offsets(measured, samples, [str(s.number) for s in samples], "T1", "first attempt")
    fitted = rule.offsets_s(np.array([s.number for s in samples])) / MINUTE_S
    measured.scatter(np.arange(len(samples)), fitted, marker="x", color="black", zorder=4, label="fitted rule")
    measured.legend(loc="upper left", fontsize=8)
    measured.set_title("measured on the meter", fontsize=10)
    minutes = projection.first_minute + np.arange(len(projection.busiest_per_minute))
    fleet.bar(minutes, projection.busiest_per_minute, width=1.0, align="edge", color="#1f5fa8",
              label="busiest cell")
    fleet.axhline(limit_per_minute, color=OUTSIDE, linestyle="--", linewidth=1, label=f"limit {limit_per_minute:g}")
    fleet.axvline(deadline_minute, color="black", linestyle=":", linewidth=1, label="deadline")
    fleet.set_xlim(min(projection.first_minute, 0) - MARGIN_MIN, max(minutes[-1] + 1, deadline_minute) + MARGIN_MIN)
    fleet.set_xlabel("minutes from T1")
    fleet.set_ylabel("first attempts per minute")
    fleet.set_title(f"{projection.fleet_size:,} meters over {projection.cells:,} cells", fontsize=10)
    fleet.grid(True, alpha=0.3)
    fleet.legend(loc="upper right", fontsize=8)
    figure.suptitle(title)
    return figure_png(figure)
