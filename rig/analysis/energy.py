"""Energy from data-log chunks, streamed: floor current, charge per day, off spans and battery life.

Each accumulator takes a data log one chunk at a time (`add(chunk)`, or `stream(chunks, *accumulators)`
for one pass feeding several), keeps a few running sums and forgets the chunk, so a day or a week of
periods never has to be in memory (DESIGN.md principle 7). Work inside a chunk is vectorised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rig.analysis.trace import Trace
from rig.instruments.power import DataLogChunk
from rig.profiles.plan import Battery

UAH_PER_COULOMB = 1e6 / 3600.0
DAY_S = 86400.0
DAYS_PER_YEAR = 365.25
MONTHS_PER_YEAR = 12.0
WAKE_ABOVE_A = 0.5e-3  # an awake MCU or a module out of PSM draws milliamps; asleep, a meter draws microamps
QUIET_SHARE_MIN = 0.5  # a device awake in most periods has no floor quieter than its average


class ChunkConsumer(Protocol):
    def add(self, chunk: DataLogChunk) -> None: ...


def stream(chunks: Iterable[DataLogChunk], *consumers: ChunkConsumer) -> int:
    """Feed every chunk to every consumer as it arrives (one pass over a data log); returns the chunk count."""
    count = 0
    for chunk in chunks:
        for consumer in consumers:
            consumer.add(chunk)
        count += 1
    return count


def _window_mask(chunk: DataLogChunk, from_s: float, to_s: float) -> np.ndarray | slice:
    """The chunk's periods that start in [from_s, to_s) (a plain slice when the window covers the chunk)."""
    end_s = chunk.start_s + len(chunk.mean_a) * chunk.period_s
    if from_s <= chunk.start_s and end_s <= to_s:
        return slice(None)
    starts = chunk.start_s + chunk.period_s * np.arange(len(chunk.mean_a))
    return (starts >= from_s) & (starts < to_s)


@dataclass
class EnergyTally:
    """Running charge, duration, extremes and sleep floor of the periods that start in [from_s, to_s).

    The floor is the mean of the quiet periods (maximum below `wake_above_a`: nothing woke up in them),
    so the 30-min freeze wakes and the like do not count; when fewer than half the periods are quiet the
    device has no quieter floor than its average, and the floor is the average.
    """

    from_s: float = -np.inf
    to_s: float = np.inf
    wake_above_a: float = WAKE_ABOVE_A
    periods: int = 0
    duration_s: float = 0.0
    charge_c: float = 0.0
    quiet_periods: int = 0
    quiet_sum_a: float = 0.0
    lowest_a: float = np.inf
    highest_a: float = -np.inf
    first_s: float | None = None

    def add(self, chunk: DataLogChunk) -> None:
        mask = _window_mask(chunk, self.from_s, self.to_s)
        means = np.asarray(chunk.mean_a, dtype=np.float64)[mask]
        if means.size == 0:
            return
        maxima = np.asarray(chunk.max_a, dtype=np.float64)[mask]
        minima = np.asarray(chunk.min_a, dtype=np.float64)[mask]
        if self.first_s is None:
            first = 0 if isinstance(mask, slice) else int(np.argmax(mask))
            self.first_s = chunk.start_s + first * chunk.period_s
        quiet = maxima < self.wake_above_a
        self.periods += means.size
        self.duration_s += means.size * chunk.period_s
        self.charge_c += float(np.sum(means)) * chunk.period_s
        self.quiet_periods += int(np.count_nonzero(quiet))
        self.quiet_sum_a += float(np.sum(means[quiet]))
        self.lowest_a = min(self.lowest_a, float(np.min(minima)))
        self.highest_a = max(self.highest_a, float(np.max(maxima)))

    @property
    def mean_a(self) -> float:
        return self.charge_c / self.duration_s if self.duration_s else float("nan")

    @property
    def quiet_share(self) -> float:
        return self.quiet_periods / self.periods if self.periods else float("nan")

    @property
    def floor_a(self) -> float:
        """Sleep floor: the mean of the quiet periods, or the average when most periods are awake."""
        if not self.periods:
            return float("nan")
        if self.quiet_periods >= QUIET_SHARE_MIN * self.periods:
            return self.quiet_sum_a / self.quiet_periods
        return self.mean_a

    @property
    def charge_uah(self) -> float:
        return self.charge_c * UAH_PER_COULOMB

    @property
    def charge_per_day_uah(self) -> float:
        """The record's charge scaled to one day (exact for a record of exactly a day)."""
        return charge_per_day_uah(self.charge_uah, self.duration_s)


def floor_current_a(chunks: Iterable[DataLogChunk], from_s: float = -np.inf, to_s: float = np.inf,
                    wake_above_a: float = WAKE_ABOVE_A) -> float:
    """The sleep floor of a data log (see `EnergyTally`), streamed chunk by chunk."""
    tally = EnergyTally(from_s, to_s, wake_above_a)
    stream(chunks, tally)
    return tally.floor_a


def charge_uah(chunks: Iterable[DataLogChunk], from_s: float = -np.inf, to_s: float = np.inf) -> float:
    """Charge drawn over the periods that start in [from_s, to_s), streamed chunk by chunk."""
    tally = EnergyTally(from_s, to_s)
    stream(chunks, tally)
    return tally.charge_uah


def charge_per_day_uah(charge_uah: float, duration_s: float) -> float:
    """A record's charge scaled to one day."""
    if duration_s <= 0:
        raise ValueError(f"a record of {duration_s} s has no charge per day")
    return charge_uah * DAY_S / duration_s


@dataclass
class OffSpans:
    """Counts the spans in which a rail's current fell below `off_below_a` (a module powered off).

    A period is off when its minimum is below the threshold, so even a short power cut inside a long
    logging period is seen; consecutive off periods, across chunks too, are one span.
    """

    off_below_a: float
    spans: int = 0
    off_periods: int = 0
    off_s: float = 0.0
    first_off_s: list[float] = field(default_factory=list)
    _was_off: bool = False

    def add(self, chunk: DataLogChunk) -> None:
        off = np.asarray(chunk.min_a) < self.off_below_a
        if off.size == 0:
            return
        previous = np.concatenate([[self._was_off], off[:-1]])
        starts = np.flatnonzero(off & ~previous)
        self.spans += int(starts.size)
        self.first_off_s.extend(float(chunk.start_s + i * chunk.period_s) for i in starts)
        self.off_periods += int(np.count_nonzero(off))
        self.off_s += float(np.count_nonzero(off)) * chunk.period_s
        self._was_off = bool(off[-1])


@dataclass
class Decimator:
    """Keeps the mean of every `bin_s` of a data log, for plotting a long record in bounded memory.

    `bin_s` should be a whole number of logging periods; a chunk's last partial bin carries over.
    """

    bin_s: float
    start_s: float | None = None
    _means: list[float] = field(default_factory=list)
    _carry: np.ndarray = field(default_factory=lambda: np.empty(0))
    _period_s: float | None = None

    def add(self, chunk: DataLogChunk) -> None:
        if self.start_s is None:
            self.start_s, self._period_s = chunk.start_s, chunk.period_s
        width = max(1, int(round(self.bin_s / chunk.period_s)))
        values = np.concatenate([self._carry, np.asarray(chunk.mean_a, dtype=np.float64)])
        whole = len(values) // width * width
        if whole:
            self._means.extend(values[:whole].reshape(-1, width).mean(axis=1).tolist())
        self._carry = values[whole:]

    @property
    def period_s(self) -> float:
        if self._period_s is None:
            return self.bin_s
        return max(1, int(round(self.bin_s / self._period_s))) * self._period_s

    def trace(self) -> Trace:
        """The bins so far (a last partial bin included) as a trace for `trace_png`."""
        means = list(self._means)
        if self._carry.size:
            means.append(float(np.mean(self._carry)))
        return Trace(self.start_s or 0.0, self.period_s, np.asarray(means))


# ---- battery ------------------------------------------------------------------------------------------
def charge_per_year_ah(charge_per_day_uah: float, monthly_uah: float = 0.0) -> float:
    """Daily charge over a year plus monthly events (point reads, valve operations), in Ah."""
    return (charge_per_day_uah * DAYS_PER_YEAR + monthly_uah * MONTHS_PER_YEAR) * 1e-6


def battery_years(capacity_ah: float, usable_fraction: float, self_discharge_fraction_per_year: float,
                  charge_per_day_uah: float, monthly_uah: float = 0.0) -> float:
    """years = usable capacity / (charge per year + self-discharge); self-discharge is of the nominal capacity."""
    if capacity_ah <= 0 or not 0 < usable_fraction <= 1 or self_discharge_fraction_per_year < 0:
        raise ValueError("capacity must be positive, usable fraction in (0, 1], self-discharge not negative")
    if charge_per_day_uah < 0 or monthly_uah < 0:
        raise ValueError("charges cannot be negative")
    drain_ah_per_year = charge_per_year_ah(charge_per_day_uah, monthly_uah) + (
        self_discharge_fraction_per_year * capacity_ah)
    if drain_ah_per_year == 0:
        return float("inf")
    return capacity_ah * usable_fraction / drain_ah_per_year


def plan_battery_years(battery: Battery, charge_per_day_uah: float, monthly_uah: float = 0.0) -> float:
    """`battery_years` with the plan's battery (`plan.battery`: capacity_ah, usable_fraction, ...)."""
    return battery_years(battery.capacity_ah, battery.usable_fraction, battery.self_discharge_fraction_per_year,
                         charge_per_day_uah, monthly_uah)


# ---- connected mode -----------------------------------------------------------------------------------
def connected_current_a(trace: Trace, from_s: float, to_s: float, tx_above_a: float) -> float:
    """The connected-mode current of [from_s, to_s) without its TX bursts, measured on the trace.

    The span is a report's RRC connection (set-up to release, or to the end of its last exchange); a
    period whose mean is above `tx_above_a` is a TX burst and is left out; what stays is the radio in
    connected mode (DRX on-durations, reception and the quiet between), averaged: the current a device
    keeps drawing while it waits for the network's inactivity timer. NaN when the span holds no such period.
    """
    if to_s <= from_s:
        return float("nan")
    segment = trace.amps[trace.index(from_s):trace.index(to_s)]
    kept = segment[segment <= tx_above_a]
    return float(np.mean(kept)) if kept.size else float("nan")


def charge_saved_uah(timer_s: float, tail_s: float, connected_a: float) -> float:
    """Charge a release after `tail_s` saves against waiting `timer_s` at the connected current, in uAh."""
    return max(timer_s - tail_s, 0.0) * connected_a * UAH_PER_COULOMB
