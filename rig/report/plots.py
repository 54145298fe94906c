"""Plots a certification engineer looks at: current traces with the measured interval marked."""

from __future__ import annotations

import io

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

from rig.analysis.trace import Trace  # noqa: E402


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
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
