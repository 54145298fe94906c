"""Plots a certification engineer looks at: current traces with the measured interval marked, and where
the bench put the device against table 4-4's coverage windows."""

from __future__ import annotations

import io

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first
from matplotlib.patches import Rectangle  # noqa: E402

from rig.analysis.trace import Trace  # noqa: E402
from rig.profiles.plan import PlanProfile  # noqa: E402


def figure_png(figure: plt.Figure) -> bytes:
    """The figure as PNG bytes (laid out tight), closed afterwards so long runs do not pile figures up."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def trace_png(trace: Trace, title: str, marks: dict[str, float] | None = None,
              spans: dict[str, tuple[float, float]] | None = None, log_scale: bool = True) -> bytes:
    """The trace in mA against seconds from its start, with named instants and intervals marked."""
    figure, axes = plt.subplots(figsize=(9, 3.6), dpi=100)
    duration_s = trace.period_s * len(trace.amps)
    times = trace.period_s * np.arange(len(trace.amps))
    milliamps = trace.amps * 1e3
    axes.plot(times, milliamps.clip(min=1e-4) if log_scale else milliamps, linewidth=0.8, color="#1f5fa8")
    if log_scale:
        axes.set_yscale("log")
    for index, (name, time_s) in enumerate((marks or {}).items()):
        axes.axvline(time_s - trace.start_s, color=f"C{index + 1}", linestyle="--", linewidth=1, label=name)
    for index, (name, (start_s, end_s)) in enumerate((spans or {}).items()):
        axes.axvspan(start_s - trace.start_s, end_s - trace.start_s, color=f"C{index + 4}", alpha=0.2, label=name)
    axes.set_xlim(0, max(duration_s, 1e-9))
    axes.set_xlabel("s from the start of the record")
    axes.set_ylabel("current (mA)")
    axes.set_title(title)
    if marks or spans:
        axes.legend(loc="upper right", fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    return figure_png(figure)


def coverage_png(plan: PlanProfile, level: str, expected: tuple[float, float],
                 reported: tuple[float, float] | None) -> bytes:
    """Table 4-4's windows in the RSRP-SINR plane, with where the bench set the device (expected from the
    calibration) and where the device said it was (its own report)."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    windows = plan.coverage.windows
    low_rsrp, high_rsrp = plan.coverage.no_service_rsrp_dbm, -80.0
    low_sinr, high_sinr = plan.coverage.no_service_sinr_db, 20.0
    for index, name in enumerate(("CE0", "CE1", "CE2")):
        window = getattr(windows, name)
        right = window.rsrp_max_dbm if window.rsrp_max_dbm is not None else high_rsrp
        top = window.sinr_max_db if window.sinr_max_db is not None else high_sinr
        axes.add_patch(Rectangle((window.rsrp_min_dbm, window.sinr_min_db), right - window.rsrp_min_dbm,
                                 top - window.sinr_min_db, alpha=0.35 if name == level else 0.12,
                                 color=f"C{index}", label=f"{name} window"))
    axes.plot(*expected, marker="o", color="black", linestyle="", label="bench (calibration)")
    if reported is not None:
        axes.plot(*reported, marker="x", markersize=10, color="#c62828", linestyle="", label="device report")
    axes.set_xlim(low_rsrp, high_rsrp)
    axes.set_ylim(low_sinr, high_sinr)
    axes.set_xlabel("RSRP (dBm)")
    axes.set_ylabel("SINR (dB)")
    axes.set_title(f"Coverage {level}: where the bench put the device")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(True, alpha=0.3)
    return figure_png(figure)
