"""Measurements with their limits: a check records first and judges second.

Each record names its checklist item, coverage level, value, unit and limit, and is appended to
`measurements.csv` the moment it is made, so a run that dies loses nothing already measured. The
certification matrix and the report are built from these records, never from logs.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
from dataclasses import asdict, dataclass, fields
from pathlib import Path

ONCE = "once"


@dataclass(frozen=True)
class Measurement:
    """One measured value and its verdict against [low, high] (a missing bound is open)."""

    check: str
    level: str
    name: str
    value: float | str | None
    unit: str = ""
    low: float | None = None
    high: float | None = None
    note: str = ""

    @property
    def judged(self) -> bool:
        return self.low is not None or self.high is not None

    @property
    def passed(self) -> bool | None:
        """True or False against the limits; None when recorded only (no limit)."""
        if not self.judged:
            return None
        if not isinstance(self.value, numbers.Real) or isinstance(self.value, bool) or math.isnan(self.value):
            return False
        value = float(self.value)  # numpy numbers compare to numpy booleans, which are never `is False`
        return bool((self.low is None or value >= self.low) and (self.high is None or value <= self.high))

    @property
    def limit_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} .. {self.high:g} {self.unit}".strip()
        if self.low is not None:
            return f">= {self.low:g} {self.unit}".strip()
        if self.high is not None:
            return f"<= {self.high:g} {self.unit}".strip()
        return "recorded"

    def describe(self) -> str:
        value = f"{float(self.value):.4g}" if isinstance(self.value, numbers.Real) else str(self.value)
        verdict = {True: "pass", False: "FAIL", None: "recorded"}[self.passed]
        note = f" ({self.note})" if self.note else ""
        return f"{self.check} {self.level} {self.name} = {value} {self.unit} [{self.limit_text}] {verdict}{note}"


COLUMNS = [f.name for f in fields(Measurement)] + ["passed"]


class MeasurementLog:
    """Appends every measurement to a CSV file as it is made (flushed at once)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.records: list[Measurement] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                with path.open("w", newline="") as handle:
                    csv.writer(handle).writerow(COLUMNS)

    def append(self, measurement: Measurement) -> None:
        self.records.append(measurement)
        if self.path is None:
            return
        row = asdict(measurement) | {"passed": measurement.passed}
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, COLUMNS).writerow(row)


def read_measurements(path: Path) -> list[Measurement]:
    """The records of a run's measurements.csv (values back as numbers where they were numbers; a last row without
    its line end, cut by a kill while it was written, is left out)."""

    def number(text: str) -> float | None:
        return float(text) if text not in ("", "None") else None

    records = []
    with path.open(newline="") as handle:
        text = handle.read()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    for row in csv.DictReader(io.StringIO(complete, newline="")):
        try:
            value: float | str | None = float(row["value"])
        except ValueError:
            value = row["value"] or None
        records.append(Measurement(row["check"], row["level"], row["name"], value, row["unit"],
                                   number(row["low"]), number(row["high"]), row["note"]))
    return records
