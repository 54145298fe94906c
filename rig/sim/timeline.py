"""The device's current as a piecewise-constant timeline, integrated exactly and vectorised.

One entry per state change. The analyser computes a capture's samples and a data log's
average/min/max per period from it, never by stepping sample by sample. Times are kept relative to
an origin so float64 keeps sub-nanosecond resolution over a year of virtual time.
"""

from __future__ import annotations

import numpy as np

_GROW = 1024


class CurrentTimeline:
    """Current in amperes from each breakpoint until the next; 0 A before the first."""

    def __init__(self, origin_s: float):
        self.origin_s = origin_s
        self._times = np.empty(_GROW)
        self._amps = np.empty(_GROW)
        self._size = 0
        self._charge: np.ndarray | None = None

    def __len__(self) -> int:
        return self._size

    @property
    def times_s(self) -> np.ndarray:
        """Breakpoints relative to the origin (a view; do not modify)."""
        return self._times[: self._size]

    @property
    def amps(self) -> np.ndarray:
        return self._amps[: self._size]

    def set(self, time_s: float, amps: float) -> None:
        """From absolute time `time_s` on, the current is `amps` (times never go backwards)."""
        rel = time_s - self.origin_s
        n = self._size
        if n and rel < self._times[n - 1]:
            raise ValueError(f"timeline entry at {time_s} is before the last one")
        if n and self._amps[n - 1] == amps:
            return
        if n and rel == self._times[n - 1]:
            self._amps[n - 1] = amps
            if n > 1 and self._amps[n - 2] == amps:
                self._size -= 1
        else:
            if n == len(self._times):
                self._times = np.concatenate([self._times, np.empty(max(n, _GROW))])
                self._amps = np.concatenate([self._amps, np.empty(max(n, _GROW))])
            self._times[n] = rel
            self._amps[n] = amps
            self._size += 1
        self._charge = None

    def current_at(self, time_s: float) -> float:
        index = int(np.searchsorted(self.times_s, time_s - self.origin_s, side="right")) - 1
        return float(self._amps[index]) if index >= 0 else 0.0

    def forget_before(self, time_s: float) -> None:
        """Drop history no acquisition can still ask for (keeps the entry in force at `time_s`)."""
        index = int(np.searchsorted(self.times_s, time_s - self.origin_s, side="right")) - 1
        if index > 0:
            keep = self._size - index
            self._times[:keep] = self._times[index : self._size]
            self._amps[:keep] = self._amps[index : self._size]
            self._size = keep
            self._charge = None

    def _cumulative_charge(self) -> np.ndarray:
        if self._charge is None:
            times, amps = self.times_s, self.amps
            charge = np.zeros(self._size)
            if self._size > 1:
                np.cumsum(amps[:-1] * np.diff(times), out=charge[1:])
            self._charge = charge
        return self._charge

    def charge_until(self, rel_times_s: np.ndarray) -> np.ndarray:
        """Charge in coulombs from the first breakpoint to each relative time (vectorised)."""
        if self._size == 0:
            return np.zeros_like(rel_times_s, dtype=float)
        times, amps, charge = self.times_s, self.amps, self._cumulative_charge()
        index = np.searchsorted(times, rel_times_s, side="right") - 1
        clipped = np.clip(index, 0, None)
        result = charge[clipped] + amps[clipped] * (rel_times_s - times[clipped])
        return np.where(index >= 0, result, 0.0)

    def mean_over(self, start_s: float, interval_s: float, count: int) -> np.ndarray:
        """Average current over each of `count` consecutive intervals starting at absolute `start_s`."""
        edges = (start_s - self.origin_s) + interval_s * np.arange(count + 1)
        return np.diff(self.charge_until(edges)) / interval_s

    def extremes_over(self, start_s: float, interval_s: float, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Minimum and maximum current within each of `count` consecutive intervals."""
        edges = (start_s - self.origin_s) + interval_s * np.arange(count + 1)
        times = self.times_s
        amps = np.concatenate([[0.0], self.amps, [0.0]])  # 0 A before the first entry; a sentinel after
        first = np.searchsorted(times, edges[:-1], side="right")  # index into amps (shifted by one)
        last = np.searchsorted(times, edges[1:], side="left")  # last segment starting before the end
        bounds = np.empty(2 * count, dtype=np.intp)
        bounds[0::2] = first
        bounds[1::2] = last + 1
        lowest = np.minimum.reduceat(amps, bounds)[0::2]
        highest = np.maximum.reduceat(amps, bounds)[0::2]
        return lowest, highest
