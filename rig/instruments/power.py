"""Driver for a Keysight N6705C power analyser with an N6781A source/measure module.

It supplies the device under test and measures its current: array captures on the analyser's own
time axis (binary float32 blocks) and the data logger (average/min/max per period, fetched in
chunks). Completion is polled through STAT:OPER:COND? with `clock.wait_until`, never a blocking
query, so it works the same on hardware and on the twin's virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rig.clock import Clock
from rig.errors import InstrumentError, RigFault
from rig.instruments.visa import VisaTransport

MEAS_ACTIVE = 32
OUTPUT_OFF = 4
TINT_BASE_S = 5.12e-6
MAX_POINTS = 512 * 1024
DLOG_CHUNK_PERIODS = 100_000


@dataclass(frozen=True)
class Capture:
    """Samples of current on the analyser's time axis: sample i is the mean over [t_i, t_i + interval)."""

    start_s: float
    interval_s: float
    currents_a: np.ndarray

    @property
    def times_s(self) -> np.ndarray:
        return self.start_s + self.interval_s * np.arange(len(self.currents_a))

    @property
    def charge_c(self) -> float:
        return float(np.sum(self.currents_a) * self.interval_s)


@dataclass(frozen=True)
class DataLogChunk:
    """Consecutive logging periods: mean, minimum and maximum current in each."""

    start_s: float
    period_s: float
    mean_a: np.ndarray
    min_a: np.ndarray
    max_a: np.ndarray


def no_error(reply: str) -> bool:
    """`SYST:ERR?` answered `+0,"No error"` (ValueError if the reply is not an error-queue entry)."""
    code, separator, _ = reply.partition(",")
    if not separator:
        raise ValueError("expected <code>,\"<message>\"")
    return int(code) == 0


def output_state(reply: str) -> bool:
    """`OUTP?` answers 1 or 0."""
    if reply not in ("0", "1"):
        raise ValueError("expected 0 or 1")
    return reply == "1"


def check_range(name: str, value: float, low: float, high: float, unit: str) -> float:
    if not low <= value <= high:
        raise ValueError(f"{name} {value} {unit} is out of range {low}..{high} {unit}")
    return value


class N6705CPowerAnalyser:
    """One output channel of the analyser (the one powering the device)."""

    def __init__(self, transport: VisaTransport, clock: Clock, channel: int = 1):
        self.transport = transport
        self.clock = clock
        self.channel = channel
        self.at = f"(@{channel})"

    # ---- plumbing ------------------------------------------------------------------------------
    def configure(self, *commands: str) -> None:
        """Send configuration commands, each confirmed by the error queue; an error names its command.

        A command and its error check are one exchange: after a dropped link both are sent again.
        """
        for command in commands:
            errors = self.transport.write_and_drain(command, "SYST:ERR?", no_error)
            if errors:
                raise InstrumentError(f"{self.transport.name}: {command!r} was refused: {'; '.join(errors)}")

    def identity(self) -> str:
        return self.transport.query("*IDN?")

    # ---- source --------------------------------------------------------------------------------
    def set_voltage(self, volts: float) -> None:
        check_range("voltage", volts, 0.0, 20.4, "V")
        self.configure(f"VOLT {volts:g},{self.at}")

    def voltage_v(self) -> float:
        return self.transport.query(f"VOLT? {self.at}", float)

    def set_current_limit(self, amps: float) -> None:
        check_range("current limit", amps, 1e-6, 3.06, "A")
        self.configure(f"CURR:LIM {amps:g},{self.at}")

    def set_output(self, on: bool) -> None:
        self.configure(f"OUTP {'ON' if on else 'OFF'},{self.at}")

    def output_on(self) -> bool:
        return self.transport.query(f"OUTP? {self.at}", output_state)

    def measure_current_a(self) -> float:
        return self.transport.query(f"MEAS:CURR? {self.at}", float)

    def measure_voltage_v(self) -> float:
        return self.transport.query(f"MEAS:VOLT? {self.at}", float)

    # ---- array capture -------------------------------------------------------------------------
    def measuring(self) -> bool:
        return bool(self.transport.query(f"STAT:OPER:COND? {self.at}", int) & MEAS_ACTIVE)

    def capture(self, points: int, interval_s: float, pretrigger_points: int = 0) -> Capture:
        """Trigger now and return `points` samples `interval_s` apart (the analyser rounds the interval)."""
        check_range("points", points, 1, MAX_POINTS, "points")
        check_range("sample interval", interval_s, TINT_BASE_S, 60.0, "s")
        check_range("pretrigger points", pretrigger_points, 0, points, "points")
        self.configure(
            f"SENS:SWE:POIN {points},{self.at}",
            f"SENS:SWE:TINT {interval_s:.9g},{self.at}",
            f"SENS:SWE:OFFS:POIN {-pretrigger_points},{self.at}",
            f"TRIG:ACQ:SOUR IMM,{self.at}",
            "FORM REAL",
            "FORM:BORD NORM",
        )
        # the reply has 7 significant digits; the interval is a whole multiple of the base interval
        reply_s = self.transport.query(f"SENS:SWE:TINT? {self.at}", float)
        actual_interval_s = round(reply_s / TINT_BASE_S) * TINT_BASE_S
        triggered_s = self.clock.now()
        self.configure(f"INIT:ACQ {self.at}")
        duration_s = points * actual_interval_s
        if not self.clock.wait_until(lambda: not self.measuring(), timeout_s=duration_s * 1.5 + 10.0):
            raise RigFault(f"{self.transport.name}: acquisition of {duration_s:g} s did not complete")
        currents = self.transport.query_float32_block(f"FETC:ARR:CURR? {self.at}", big_endian=True)
        if len(currents) != points:
            raise InstrumentError(f"{self.transport.name}: fetched {len(currents)} samples, asked {points}")
        return Capture(triggered_s - pretrigger_points * actual_interval_s, actual_interval_s, currents)

    # ---- data logger ---------------------------------------------------------------------------
    def start_data_log(self, period_s: float, duration_s: float) -> float:
        """Start logging mean/min/max current per period now; returns the start time."""
        check_range("logging period", period_s, 20.48e-6, 60.0, "s")
        check_range("logging time", duration_s, period_s, 99999 * 3600.0, "s")
        self.configure(
            f"SENS:DLOG:FUNC:CURR ON,{self.at}",
            f"SENS:DLOG:FUNC:MINM ON,{self.at}",
            f"SENS:DLOG:PER {period_s:.9g}",
            f"SENS:DLOG:TIME {duration_s:.9g}",
            "TRIG:DLOG:SOUR IMM",
            "FORM REAL",
            "FORM:BORD NORM",
        )
        started_s = self.clock.now()
        self.configure(f'INIT:DLOG "internal:\\rig.dlog",{self.at}')
        return started_s

    def data_log(
        self, period_s: float, duration_s: float, chunk_periods: int = DLOG_CHUNK_PERIODS
    ) -> Iterator[DataLogChunk]:
        """Log for `duration_s` and yield the record chunk by chunk as the periods complete.

        Memory stays bounded by `chunk_periods` whatever the duration: the caller streams.
        """
        started_s = self.start_data_log(period_s, duration_s)
        yield from self.read_data_log(started_s, period_s, duration_s, chunk_periods)

    def read_data_log(
        self, started_s: float, period_s: float, duration_s: float, chunk_periods: int = DLOG_CHUNK_PERIODS
    ) -> Iterator[DataLogChunk]:
        """Yield a running data log's periods chunk by chunk, waiting on the bench clock for each."""
        total = int(round(duration_s / period_s))
        fetched = 0
        while fetched < total:
            want = min(chunk_periods, total - fetched)
            self.clock.sleep(started_s + (fetched + want) * period_s - self.clock.now())
            needed = fetched + want
            if not self.clock.wait_until(lambda n=needed: self._periods_ready() >= n, timeout_s=10.0):
                raise RigFault(f"{self.transport.name}: data log stopped delivering at period {fetched}")
            block = f"{fetched},{want},{self.at}"
            yield DataLogChunk(
                start_s=started_s + fetched * period_s,
                period_s=period_s,
                mean_a=self.transport.query_float32_block(f"FETC:DLOG:CURR? {block}"),
                min_a=self.transport.query_float32_block(f"FETC:DLOG:CURR:MIN? {block}"),
                max_a=self.transport.query_float32_block(f"FETC:DLOG:CURR:MAX? {block}"),
            )
            fetched += want

    def _periods_ready(self) -> int:
        return self.transport.query(f"FETC:DLOG:POIN? {self.at}", int)

    def close(self) -> None:
        self.transport.close()
