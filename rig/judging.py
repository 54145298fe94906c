"""Judging a check from its measurements: the one rule the run (fixtures/checks.py) and the certificate share.

A judged measurement outside its limits fails the check. Otherwise a key measurement (the figures its plan
entry names) that is NaN was not measured, so the check is inconclusive, judged or not; a judged NaN that is
not a key never passes either. An event that did not happen is recorded as such (e.g. "none"), a failure.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fnmatch import fnmatchcase

from rig.measurements import Measurement

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"


def is_nan(value: object) -> bool:
    """A number that is NaN (numpy's included)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(float(value))


def key_measurements(measurements: list[Measurement], patterns: list[str]) -> list[Measurement]:
    """One record per name matching the patterns (exact names or fnmatch patterns), in pattern order: its
    failing record if one failed, else its last."""
    chosen: dict[str, Measurement] = {}
    for pattern in patterns:
        for measurement in measurements:
            if not fnmatchcase(measurement.name, pattern):
                continue
            held = chosen.get(measurement.name)
            if held is None or held.passed is not False:
                chosen[measurement.name] = measurement
    return list(chosen.values())


@dataclass(frozen=True)
class Judgement:
    """A check's outcome from its measurements, and why."""

    outcome: str
    reason: str = ""


def judge(measurements: list[Measurement], patterns: list[str]) -> Judgement:
    """Failed if a judged value is outside its limits; inconclusive if a key measurement is NaN; failed if
    another judged value is NaN; else passed."""
    measured_failures = [m for m in measurements if m.passed is False and not is_nan(m.value)]
    if measured_failures:
        return Judgement(FAILED, "; ".join(m.describe() for m in measured_failures))
    unmeasured = [m for m in key_measurements(measurements, patterns) if is_nan(m.value)]
    if unmeasured:
        names = ", ".join(m.name for m in unmeasured)
        return Judgement(INCONCLUSIVE, f"key measurement not measured (NaN): {names}")
    nan_failures = [m for m in measurements if m.passed is False]
    if nan_failures:
        return Judgement(FAILED, "; ".join(m.describe() for m in nan_failures))
    return Judgement(PASSED)
