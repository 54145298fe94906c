"""Resuming a run that was interrupted or killed (`rig certify --resume RUN`).

A test (a check at a level: its pytest node id) is done when outcomes.jsonl has a record for it; the resumed
session deselects the done ones and appends to the same files. What a killed run may have left half-made is
tidied first: a torn last line (the write cut by the kill) is dropped, and the measurements of tests that were
in progress (no outcome) move to measurements-interrupted.csv, so the rerun's values are the ones reported.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rig.measurements import ONCE, read_measurements
from rig.report.certificate import OutcomeRecord, read_outcomes

if TYPE_CHECKING:
    import pytest

OUTCOMES, MEASUREMENTS, SET_ASIDE = "outcomes.jsonl", "measurements.csv", "measurements-interrupted.csv"


def trim_torn_tail(path: Path) -> bool:
    """Cut a last line that has no line end (a write cut short by a kill); True when one was cut."""
    if not path.exists():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with path.open("r+b") as handle:
        handle.truncate(data.rfind(b"\n") + 1)
    return True


def done_tests(outcomes: list[OutcomeRecord]) -> set[str]:
    """The node ids of the tests that already have an outcome."""
    return {record.test for record in outcomes}


def set_aside_unfinished(run: Path, outcomes: list[OutcomeRecord]) -> int:
    """Move the measurements of checks without any outcome at their level (in progress when the run stopped) to
    measurements-interrupted.csv; returns how many rows moved. measurements.csv is replaced atomically."""
    path = run / MEASUREMENTS
    if not path.exists():
        return 0
    finished = {(record.check, record.level) for record in outcomes} | {(record.check, ONCE) for record in outcomes}
    with path.open(newline="") as handle:
        header, *rows = [row for row in csv.reader(handle) if row]
    measurements = read_measurements(path)
    keep = [row for row, m in zip(rows, measurements, strict=True) if (m.check, m.level) in finished]
    unfinished = [row for row, m in zip(rows, measurements, strict=True) if (m.check, m.level) not in finished]
    if not unfinished:
        return 0
    aside = run / SET_ASIDE
    new_file = not aside.exists()
    with aside.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(header)
        writer.writerows(unfinished)
    replacement = path.with_suffix(".csv.tmp")
    with replacement.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *keep])
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(replacement, path)
    return len(unfinished)


def prepare(run: Path) -> tuple[set[str], list[str]]:
    """Tidy a run for resuming; the tests already done and what was tidied (for the operator)."""
    notes = [f"{name}: dropped a torn last line (cut by the kill)" for name in (OUTCOMES, MEASUREMENTS)
             if trim_torn_tail(run / name)]
    outcomes = read_outcomes(run / OUTCOMES) if (run / OUTCOMES).exists() else []
    moved = set_aside_unfinished(run, outcomes)
    if moved:
        notes.append(f"{MEASUREMENTS}: {moved} measurement(s) of checks in progress when the run stopped moved to "
                     f"{SET_ASIDE}")
    return done_tests(outcomes), notes


class SkipDone:
    """A pytest plugin object that deselects the tests that already have an outcome."""

    def __init__(self, done: set[str]):
        self.done = done

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        done = [item for item in items if item.nodeid in self.done]
        if done:
            config.hook.pytest_deselected(items=done)
            items[:] = [item for item in items if item.nodeid not in self.done]

