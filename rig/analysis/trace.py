"""Current traces: moving averages, threshold crossings and charge, on numpy arrays of one chunk.

A trace is evenly sampled (a capture or a data log's means): `start_s`, `period_s`, `amps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rig.instruments.power import DataLogChunk

UAH_PER_COULOMB = 1e6 / 3600.0


@dataclass(frozen=True)
class Trace:
    start_s: float
    period_s: float
    amps: np.ndarray

    @classmethod
    def from_chunks(cls, chunks: list[DataLogChunk]) -> Trace:
        return cls(chunks[0].start_s, chunks[0].period_s, np.concatenate([c.mean_a for c in chunks]))

    def index(self, time_s: float) -> int:
        return int(np.clip(np.floor((time_s - self.start_s) / self.period_s), 0, len(self.amps)))

    def time(self, index: int) -> float:
        return self.start_s + index * self.period_s

    def moving_average(self, window_s: float) -> np.ndarray:
        """Average over the `window_s` that ends at each sample (shorter at the start)."""
        width = max(1, int(round(window_s / self.period_s)))
        cumulative = np.concatenate([[0.0], np.cumsum(self.amps)])
        ends = np.arange(1, len(self.amps) + 1)
        starts = np.maximum(ends - width, 0)
        return (cumulative[ends] - cumulative[starts]) / (ends - starts)

    def first_below(self, threshold_a: float, after_s: float, window_s: float) -> float | None:
        """First time after `after_s` at which the `window_s` average is below `threshold_a`."""
        average = self.moving_average(window_s)
        start = self.index(after_s)
        below = np.nonzero(average[start:] < threshold_a)[0]
        return self.time(start + int(below[0]) + 1) if below.size else None

    def first_above(self, threshold_a: float, after_s: float = -np.inf) -> float | None:
        start = self.index(after_s) if np.isfinite(after_s) else 0
        above = np.nonzero(self.amps[start:] > threshold_a)[0]
        return self.time(start + int(above[0])) if above.size else None

    def last_above(self, threshold_a: float) -> float | None:
        above = np.nonzero(self.amps > threshold_a)[0]
        return self.time(int(above[-1]) + 1) if above.size else None

    def charge_uah(self, from_s: float, to_s: float, above_a: float = 0.0) -> float:
        """Charge between two times (minus a baseline current), in uAh."""
        segment = self.amps[self.index(from_s):self.index(to_s)]
        return float(np.sum(segment - above_a) * self.period_s * UAH_PER_COULOMB)
