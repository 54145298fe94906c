"""The access stagger (C4, C4f): where a meter's first report attempt of the day must fall, where it fell,
and what the rule measured on one meter means for a fleet.

The plan's rule: offset from the day's T1 = (n mod modulus) x T3 + n2, n2 in [0, n2_max_s] (the seed's
n2 = n mod 60 s); a first attempt is judged inside [(n mod modulus) x T3, that + n2_max_s + wake allowance].
The fleet projection fits the offsets measured on one meter under several test numbers to
offset = slope x (n mod modulus) + n2 gain x (n mod n2 period) + base, so the fleet follows what the meter
did (a meter that does not stagger fits slope 0 and puts its whole fleet on T1), then spreads consecutive
numbers over the cells in contiguous blocks (meters numbered together are installed together) and counts
first attempts per minute and cell, vectorised: a million meters take milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from rig.analysis.at_transcript import POWER_ON_CAUSE, Attempt, says_attached
from rig.monitor import MCU, MODULE, MonitorLine

MINUTE_S = 60.0
ATTACH_COMMANDS = ("AT+CFUN=1", "AT+CGATT=1")  # the MCU turning the radio on, or asking for the attach


@dataclass(frozen=True)
class StaggerRule:
    """The plan's stagger figures: slot length T3, modulus, n2's upper bound and the wake allowance."""

    t3_s: float
    modulus: int
    n2_max_s: float
    wake_allowance_s: float

    def window_s(self, number: int) -> tuple[float, float]:
        """Earliest and latest offset from T1 of meter `number`'s first attempt."""
        low = (number % self.modulus) * self.t3_s
        return low, low + self.n2_max_s + self.wake_allowance_s


@dataclass(frozen=True)
class OffsetSample:
    """One meter number's first attempt on one day: its offset from that day's T1 and the rule's window."""

    number: int
    day: date
    offset_s: float
    low_s: float
    high_s: float

    @property
    def inside(self) -> bool:
        return self.low_s <= self.offset_s <= self.high_s


def local_day(time_s: float, zone: ZoneInfo) -> date:
    """The calendar day of `time_s` in `zone`."""
    return datetime.fromtimestamp(time_s, zone).date()


def local_midnight_s(day: date, zone: ZoneInfo) -> float:
    """POSIX time of the start of `day` in `zone`."""
    return datetime.combine(day, time(0), zone).timestamp()


def t1_on(day: date, t1: time, zone: ZoneInfo) -> float:
    """POSIX time of T1 on `day` in `zone`."""
    return datetime.combine(day, t1, zone).timestamp()


def clock_text(time_s: float, zone: ZoneInfo) -> str:
    """`time_s` as a local date and time to the second, for notes and evidence."""
    return datetime.fromtimestamp(time_s, zone).strftime("%Y-%m-%d %H:%M:%S")


def deadline_s(day: date, t1: time, deadline: time, zone: ZoneInfo) -> float:
    """POSIX time of the deadline that closes `day`'s reports: the first one after that day's T1."""
    closing = datetime.combine(day, deadline, zone)
    if deadline <= t1:
        closing = datetime.combine(day + timedelta(days=1), deadline, zone)
    return closing.timestamp()


def first_attempt_on(attempts: Sequence[Attempt], day: date, zone: ZoneInfo) -> Attempt | None:
    """The earliest attempt on local `day`."""
    return min((a for a in attempts if local_day(a.time_s, zone) == day), key=lambda a: a.time_s, default=None)


def offset_sample(number: int, attempt_s: float, t1: time, rule: StaggerRule, zone: ZoneInfo) -> OffsetSample:
    """The first attempt at `attempt_s` as an offset from its day's T1, with `number`'s window."""
    day = local_day(attempt_s, zone)
    low, high = rule.window_s(number)
    return OffsetSample(number, day, attempt_s - t1_on(day, t1, zone), low, high)


def attach_start(lines: Sequence[MonitorLine], start: int = 0) -> MonitorLine | None:
    """Where the first attach from index `start` began: the last module power-on banner, `AT+CFUN=1` or
    `AT+CGATT=1` before the module first says it is attached (a meter may power its module at once and hold
    its radio off until its slot); the first power-on banner when the module never says so."""
    starts: list[MonitorLine] = []
    for line in lines[start:]:
        if line.sender == MODULE and says_attached(line.text):
            return starts[-1] if starts else None
        if (line.sender == MODULE and line.text == POWER_ON_CAUSE) or (
                line.sender == MCU and line.text.replace(" ", "").upper() in ATTACH_COMMANDS):
            starts.append(line)
    return next((line for line in starts if line.sender == MODULE), None)


# ---- the measured rule and the fleet -----------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredRule:
    """offset = slope_s x (n mod modulus) + n2_gain_s x (n mod n2_period) + base_s, fitted to measured offsets."""

    modulus: int
    n2_period: int
    slope_s: float  # the T3 the meter follows
    n2_gain_s: float  # seconds per unit of n mod n2_period (the seed's n2 has 1)
    base_s: float  # what every meter adds: wake, AT and radio delays
    residual_max_s: float  # the largest distance of a measured offset from the fitted rule
    samples: int

    def offsets_s(self, numbers: np.ndarray) -> np.ndarray:
        """Offsets from T1 of meters `numbers` by the measured rule."""
        numbers = np.asarray(numbers, dtype=np.int64)
        offsets = self.slope_s * (numbers % self.modulus) + self.base_s
        if self.n2_period > 1:
            offsets = offsets + self.n2_gain_s * (numbers % self.n2_period)
        return offsets


def _terms(numbers: np.ndarray, modulus: int, n2_period: int) -> np.ndarray:
    columns = [numbers % modulus]
    if n2_period > 1:
        columns.append(numbers % n2_period)
    columns.append(np.ones_like(numbers))
    return np.column_stack(columns).astype(float)


def fit_rule(numbers: Sequence[int], offsets_s: Sequence[float], modulus: int, n2_period: int) -> MeasuredRule:
    """Least-squares fit of the measured offsets; ValueError when the numbers cannot tell the terms apart
    (fewer distinct combinations of n mod modulus and n mod n2_period than terms)."""
    n = np.asarray(numbers, dtype=np.int64)
    measured = np.asarray(offsets_s, dtype=float)
    if len(n) != len(measured):
        raise ValueError(f"{len(n)} meter numbers but {len(measured)} offsets")
    terms = _terms(n, modulus, n2_period)
    if len(n) < terms.shape[1] or np.linalg.matrix_rank(terms) < terms.shape[1]:
        raise ValueError(f"meter numbers {sorted(set(n.tolist()))} cannot determine the {terms.shape[1]} terms "
                         f"of the rule (n mod {modulus}{f', n mod {n2_period}' if n2_period > 1 else ''}, a base)")
    coefficients, *_ = np.linalg.lstsq(terms, measured, rcond=None)
    residual = float(np.max(np.abs(terms @ coefficients - measured)))
    n2_gain = float(coefficients[1]) if n2_period > 1 else 0.0
    return MeasuredRule(modulus, n2_period, float(coefficients[0]), n2_gain, float(coefficients[-1]), residual, len(n))


@dataclass(frozen=True)
class FleetProjection:
    """First attempts of a fleet by minute from T1: the busiest cell's count in each minute, the peak, the span."""

    fleet_size: int
    cells: int
    first_minute: int  # minutes from T1 of busiest_per_minute[0]
    busiest_per_minute: np.ndarray  # first attempts in that minute in the busiest cell
    first_offset_s: float
    last_offset_s: float

    @property
    def peak_per_minute_per_cell(self) -> int:
        return int(self.busiest_per_minute.max())

    @property
    def peak_minute(self) -> int:
        """Minutes from T1 of the (first) busiest minute."""
        return self.first_minute + int(np.argmax(self.busiest_per_minute))


def cells_of(numbers: np.ndarray, fleet_size: int, cells: int) -> np.ndarray:
    """The cell of each meter of a fleet numbered 0 .. fleet_size - 1 in `cells` even, contiguous blocks."""
    return np.asarray(numbers, dtype=np.int64) * cells // fleet_size


def project_fleet(rule: MeasuredRule, fleet_size: int, cells: int) -> FleetProjection:
    """Meters numbered 0 .. fleet_size - 1, spread evenly over `cells`, each reporting by `rule`."""
    numbers = np.arange(fleet_size, dtype=np.int64)
    offsets = np.round(rule.offsets_s(numbers), 3)  # to the ms: a fit's float noise moves no one across a minute
    minutes = np.floor(offsets / MINUTE_S).astype(np.int64)
    first = int(minutes.min())
    span = int(minutes.max()) - first + 1
    # count only the (cell, minute) pairs that occur: memory stays with the fleet however long the spread
    occupied, counts = np.unique(cells_of(numbers, fleet_size, cells) * span + (minutes - first), return_counts=True)
    busiest = np.zeros(span, dtype=np.int64)
    np.maximum.at(busiest, occupied % span, counts)
    return FleetProjection(fleet_size, cells, first, busiest, float(offsets.min()), float(offsets.max()))
