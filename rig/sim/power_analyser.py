"""The twin's bench power analyser: a Keysight N6705C mainframe with an N6781A source/measure module.

It sources the device (output on/off, voltage) and measures the device's current timeline: array
captures on its own time axis (binary float32 blocks), and a data logger keeping average/min/max per
period. Completion is never waited on inside a query: an acquisition completes at a virtual time,
emits an instrument event (which stops the rig's RUN) and clears MEAS-active in STAT:OPER:COND?.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rig.sim.scpi import ScpiError, ScpiInstrument, boolean, channel_list, number
from rig.sim.timeline import CurrentTimeline
from rig.sim.world import World

IDN_MAKER_MODEL = "Keysight Technologies,N6705C"
CHANNELS = 4
TINT_BASE_S = 5.12e-6
MAX_SWEEP_POINTS = 512 * 1024
DLOG_MIN_PERIOD_S = 20.48e-6
MEAS_POINTS = 1024
MEAS_TINT_S = 20.48e-6
NOISE_FLOOR_A = 20e-9
NOISE_GAIN = 0.001

STAT_CV, STAT_OFF, STAT_MEAS_ACTIVE = 1, 4, 32


def definite_block(payload: bytes) -> bytes:
    """IEEE 488.2 definite-length block: `#`, digit count, byte count, bytes."""
    size = str(len(payload))
    return b"#" + str(len(size)).encode() + size.encode() + payload


@dataclass
class Acquisition:
    """One array capture: the samples cover [first_sample_s, end_s) once triggered."""

    points: int
    interval_s: float
    offset_points: int
    noise_key: int = 0  # seeds the samples' noise: every fetch of one acquisition returns the same data
    triggered_s: float | None = None

    @property
    def first_sample_s(self) -> float:
        assert self.triggered_s is not None
        return self.triggered_s + self.offset_points * self.interval_s

    @property
    def end_s(self) -> float:
        return self.first_sample_s + self.points * self.interval_s


@dataclass
class DataLog:
    period_s: float
    duration_s: float
    noise_key: int = 0  # one draw per period and block, shared by mean/min/max (min <= mean <= max)
    started_s: float | None = None

    @property
    def periods(self) -> int:
        return int(round(self.duration_s / self.period_s))


@dataclass
class OutputChannel:
    voltage_v: float = 0.0
    current_limit_a: float = 1.0
    on: bool = False
    sweep_points: int = 1024
    sweep_interval_s: float = 20.48e-6
    sweep_offset_points: int = 0
    trigger_source: str = "BUS"
    acquisition: Acquisition | None = None
    dlog_trigger_source: str = "IMM"
    dlog_period_s: float = 0.1
    dlog_duration_s: float = 30.0
    dlog: DataLog | None = None
    listeners: list[Callable[[bool, float], None]] = field(default_factory=list)


class PowerAnalyserModel(ScpiInstrument):
    """N6705C command table over the device's current timeline (channel 1 supplies the device)."""

    def __init__(self, world: World, timelines: dict[int, CurrentTimeline], serial: str):
        super().__init__()
        self.idn = f"{IDN_MAKER_MODEL},{serial},E.02.09.3271"
        self.world = world
        self.timelines = timelines
        self.channels = {n: OutputChannel() for n in range(1, CHANNELS + 1)}
        self.binary = False
        self.big_endian = True
        self._register_commands()

    # ---- helpers -------------------------------------------------------------------------------
    def _channels(self, args: list[str], expected_values: int) -> tuple[list[str], list[OutputChannel]]:
        if len(args) == expected_values:
            numbers = [1]
        elif len(args) == expected_values + 1:
            numbers = channel_list(args[-1], CHANNELS)
        elif len(args) < expected_values:
            raise ScpiError(-109, "Missing parameter")
        else:
            raise ScpiError(-108, "Parameter not allowed; too many parameters")
        return args[:expected_values], [self.channels[n] for n in numbers]

    def _channel_numbers(self, args: list[str]) -> list[int]:
        return channel_list(args[-1], CHANNELS) if args and args[-1].startswith("(@") else [1]

    def _setting(self, attribute: str, parse: Callable[[str], object]) -> Callable[[list[str]], None]:
        def handler(args: list[str]) -> None:
            values, targets = self._channels(args, 1)
            value = parse(values[0])
            for channel in targets:
                setattr(channel, attribute, value)

        return handler

    def _query(self, attribute: str, fmt: Callable[[object], str]) -> Callable[[list[str]], str]:
        def handler(args: list[str]) -> str:
            return ",".join(fmt(getattr(self.channels[n], attribute)) for n in self._channel_numbers(args))

        return handler

    def _array_reply(self, values: np.ndarray) -> str | bytes:
        if not self.binary:
            return ",".join(f"{v:+.6E}" for v in values)
        dtype = ">f4" if self.big_endian else "<f4"
        return definite_block(values.astype(dtype).tobytes())

    def _noisy(self, values: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        sigma = NOISE_FLOOR_A + NOISE_GAIN * np.abs(values)
        return values + (rng or self.world.rng).normal(0.0, 1.0, values.shape) * sigma

    def _noise_key(self) -> int:
        return int(self.world.rng.integers(1 << 62))

    def _timeline(self, number: int) -> CurrentTimeline:
        timeline = self.timelines.get(number)
        if timeline is None:
            timeline = self.timelines[number] = CurrentTimeline(self.world.start_s)
        return timeline

    # ---- parsers -------------------------------------------------------------------------------
    @staticmethod
    def _points(text: str) -> int:
        value = number(text, "points")
        if value != int(value) or not 1 <= value <= MAX_SWEEP_POINTS:
            raise ScpiError(-222, f"Data out of range; points must be 1..{MAX_SWEEP_POINTS}")
        return int(value)

    @staticmethod
    def _interval(text: str) -> float:
        value = number(text, "interval")
        if not TINT_BASE_S <= value <= 60.0:
            raise ScpiError(-222, f"Data out of range; interval must be {TINT_BASE_S}..60 s")
        return round(value / TINT_BASE_S) * TINT_BASE_S

    @staticmethod
    def _offset(text: str) -> int:
        value = number(text, "offset points")
        if value != int(value) or not -MAX_SWEEP_POINTS <= value <= 2e9:
            raise ScpiError(-222, "Data out of range; offset points")
        return int(value)

    @staticmethod
    def _source(text: str) -> str:
        value = text.strip().upper()
        for full, accepted in (("BUS", ("BUS",)), ("IMM", ("IMM", "IMMEDIATE"))):
            if value in accepted:
                return full
        raise ScpiError(-224, f"Illegal parameter value; trigger source {text!r} (BUS|IMMediate)")

    # ---- command table -------------------------------------------------------------------------
    def _register_commands(self) -> None:
        c = self.command
        c("*RST", self._reset)
        c("*TRG", lambda args: self._bus_trigger())
        c("*OPC?", lambda args: "1")
        c("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", self._set_voltage)
        c("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]?", self._query("voltage_v", lambda v: f"{v:+.6E}"))
        c("[SOURce:]CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]", self._setting("current_limit_a", self._amps))
        c("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", self._setting("current_limit_a", self._amps))
        c(
            "[SOURce:]CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]?",
            self._query("current_limit_a", lambda v: f"{v:+.6E}"),
        )
        c("OUTPut[:STATe]", self._set_output)
        c("OUTPut[:STATe]?", self._query("on", lambda v: "1" if v else "0"))
        c("[SOURce:]EMULation", lambda args: None)
        c("SENSe:CURRent[:DC]:RANGe:AUTO", lambda args: None)
        c("SENSe:FUNCtion:CURRent", lambda args: None)
        c("MEASure[:SCALar]:CURRent[:DC]?", self._measure_current)
        c("MEASure[:SCALar]:VOLTage[:DC]?", self._measure_voltage)
        c("SENSe:SWEep:POINts", self._setting("sweep_points", self._points))
        c("SENSe:SWEep:POINts?", self._query("sweep_points", str))
        c("SENSe:SWEep:TINTerval", self._setting("sweep_interval_s", self._interval))
        c("SENSe:SWEep:TINTerval?", self._query("sweep_interval_s", lambda v: f"{v:+.6E}"))
        c("SENSe:SWEep:OFFSet:POINts", self._setting("sweep_offset_points", self._offset))
        c("SENSe:SWEep:OFFSet:POINts?", self._query("sweep_offset_points", str))
        c("TRIGger:ACQuire:SOURce", self._setting("trigger_source", self._source))
        c("TRIGger:ACQuire:SOURce?", self._query("trigger_source", str))
        c("TRIGger:ACQuire[:IMMediate]", lambda args: self._trigger(self._channel_numbers(args)))
        c("INITiate[:IMMediate]:ACQuire", self._init_acquisition)
        c("ABORt:ACQuire", self._abort_acquisition)
        c("FETCh:ARRay:CURRent[:DC]?", self._fetch_array)
        c("FETCh[:SCALar]:CURRent[:DC]?", self._fetch_mean)
        c("FORMat[:DATA]", self._set_format)
        c("FORMat[:DATA]?", lambda args: "REAL" if self.binary else "ASC")
        c("FORMat:BORDer", self._set_byte_order)
        c("FORMat:BORDer?", lambda args: "NORM" if self.big_endian else "SWAP")
        c("STATus:OPERation:CONDition?", self._operation_condition)
        c("SENSe:DLOG:FUNCtion:CURRent", lambda args: None)
        c("SENSe:DLOG:FUNCtion:MINMax", lambda args: None)
        c("SENSe:DLOG:PERiod", self._set_dlog_period)
        c("SENSe:DLOG:PERiod?", lambda args: f"{self.channels[1].dlog_period_s:+.6E}")
        c("SENSe:DLOG:TIME", self._set_dlog_time)
        c("SENSe:DLOG:TIME?", lambda args: f"{self.channels[1].dlog_duration_s:+.6E}")
        c("TRIGger:DLOG:SOURce", self._set_dlog_source)
        c("INITiate[:IMMediate]:DLOG", self._init_dlog)
        c("ABORt:DLOG", self._abort_dlog)
        c("FETCh:DLOG:CURRent[:AVERage]?", lambda args: self._fetch_dlog(args, "mean"))
        c("FETCh:DLOG:CURRent:MINimum?", lambda args: self._fetch_dlog(args, "min"))
        c("FETCh:DLOG:CURRent:MAXimum?", lambda args: self._fetch_dlog(args, "max"))
        c("FETCh:DLOG:POINts?", self._dlog_points_ready)

    @staticmethod
    def _amps(text: str) -> float:
        value = number(text, "current")
        if not 0 < value <= 3.06:
            raise ScpiError(-222, "Data out of range; current limit must be 0..3.06 A")
        return value

    # ---- source --------------------------------------------------------------------------------
    def _reset(self, args: list[str]) -> None:
        for n in self.channels:
            self._apply_output(n, on=False)
            listeners = self.channels[n].listeners
            self.channels[n] = OutputChannel(listeners=listeners)
        self.binary, self.big_endian = False, True

    def _set_voltage(self, args: list[str]) -> None:
        values, _ = self._channels(args, 1)
        value = number(values[0], "voltage")
        if not 0 <= value <= 20.4:
            raise ScpiError(-222, "Data out of range; voltage must be 0..20.4 V")
        for n in self._channel_numbers(args if len(args) > 1 else []):
            self.channels[n].voltage_v = value
            self._notify(n)

    def _set_output(self, args: list[str]) -> None:
        values, _ = self._channels(args, 1)
        on = boolean(values[0])
        for n in self._channel_numbers(args if len(args) > 1 else []):
            self._apply_output(n, on)

    def _apply_output(self, number_: int, on: bool) -> None:
        channel = self.channels[number_]
        if channel.on != on:
            channel.on = on
            self._notify(number_)

    def _notify(self, number_: int) -> None:
        channel = self.channels[number_]
        for listener in channel.listeners:
            listener(channel.on, channel.voltage_v)

    def supplied_voltage(self, number_: int) -> float:
        channel = self.channels[number_]
        return channel.voltage_v if channel.on else 0.0

    # ---- measurement ---------------------------------------------------------------------------
    def _measure_current(self, args: list[str]) -> str:
        replies = []
        for n in self._channel_numbers(args):
            start = self.world.now - MEAS_POINTS * MEAS_TINT_S
            mean = float(self._timeline(n).mean_over(start, MEAS_POINTS * MEAS_TINT_S, 1)[0])
            replies.append(f"{float(self._noisy(np.array([mean]))[0]):+.6E}")
        return ",".join(replies)

    def _measure_voltage(self, args: list[str]) -> str:
        return ",".join(f"{self.supplied_voltage(n):+.6E}" for n in self._channel_numbers(args))

    def _init_acquisition(self, args: list[str]) -> None:
        for n in self._channel_numbers(args):
            channel = self.channels[n]
            channel.acquisition = Acquisition(
                channel.sweep_points, channel.sweep_interval_s, channel.sweep_offset_points, self._noise_key()
            )
            if channel.trigger_source == "IMM":
                self._trigger([n])
        self._retain_history()

    def _bus_trigger(self) -> None:
        self._trigger([n for n, ch in self.channels.items() if ch.acquisition and ch.trigger_source == "BUS"])
        for n, channel in self.channels.items():
            if channel.dlog and channel.dlog.started_s is None:
                self._start_dlog(n)

    def _trigger(self, numbers: list[int]) -> None:
        for n in numbers:
            acquisition = self.channels[n].acquisition
            if acquisition is None or acquisition.triggered_s is not None:
                continue
            acquisition.triggered_s = self.world.now
            self._schedule_event(acquisition.end_s)

    def _schedule_event(self, at_s: float) -> None:
        """Completion is an instrument event: it stops the rig's RUN at the moment it happens."""
        env = self.world.env

        def complete():
            yield env.timeout(max(at_s - env.now, 0.0))
            self.world.emit("event:supply")

        env.process(complete())

    def _abort_acquisition(self, args: list[str]) -> None:
        for n in self._channel_numbers(args):
            self.channels[n].acquisition = None

    def _completed(self, number_: int) -> Acquisition:
        acquisition = self.channels[number_].acquisition
        if acquisition is None or acquisition.triggered_s is None or acquisition.end_s > self.world.now:
            raise ScpiError(-230, "Data corrupt or stale; acquisition not complete")
        return acquisition

    def _samples(self, number_: int) -> np.ndarray:
        acquisition = self._completed(number_)
        means = self._timeline(number_).mean_over(
            acquisition.first_sample_s, acquisition.interval_s, acquisition.points
        )
        return self._noisy(means, np.random.default_rng(acquisition.noise_key))

    def _fetch_array(self, args: list[str]) -> str | bytes:
        numbers = self._channel_numbers(args)
        if len(numbers) != 1:
            raise ScpiError(-108, "Parameter not allowed; fetch one channel at a time")
        return self._array_reply(self._samples(numbers[0]))

    def _fetch_mean(self, args: list[str]) -> str:
        return ",".join(f"{float(np.mean(self._samples(n))):+.6E}" for n in self._channel_numbers(args))

    def _operation_condition(self, args: list[str]) -> str:
        replies = []
        for n in self._channel_numbers(args):
            channel = self.channels[n]
            bits = STAT_CV if channel.on else STAT_OFF
            acquisition, dlog = channel.acquisition, channel.dlog
            if acquisition is not None and (acquisition.triggered_s is None or acquisition.end_s > self.world.now):
                bits |= STAT_MEAS_ACTIVE
            if dlog is not None and (dlog.started_s is None or dlog.started_s + dlog.duration_s > self.world.now):
                bits |= STAT_MEAS_ACTIVE
            replies.append(str(bits))
        return ",".join(replies)

    def _set_format(self, args: list[str]) -> None:
        value = (args[0] if args else "").strip().upper()
        if value in ("ASC", "ASCII", "ASCI"):
            self.binary = False
        elif value == "REAL":
            self.binary = True
        else:
            raise ScpiError(-224, f"Illegal parameter value; format {value!r} (ASCii|REAL)")

    def _set_byte_order(self, args: list[str]) -> None:
        value = (args[0] if args else "").strip().upper()
        if value in ("NORM", "NORMAL"):
            self.big_endian = True
        elif value in ("SWAP", "SWAPPED"):
            self.big_endian = False
        else:
            raise ScpiError(-224, f"Illegal parameter value; byte order {value!r} (NORMal|SWAPped)")

    # ---- data logger (channel 1 and any channel named in INIT:DLOG) ----------------------------
    def _set_dlog_period(self, args: list[str]) -> None:
        value = number(args[0] if args else "", "period")
        if not DLOG_MIN_PERIOD_S <= value <= 60.0:
            raise ScpiError(-222, f"Data out of range; period must be {DLOG_MIN_PERIOD_S}..60 s")
        for channel in self.channels.values():
            channel.dlog_period_s = value

    def _set_dlog_time(self, args: list[str]) -> None:
        value = number(args[0] if args else "", "time")
        if not 0 < value <= 99999 * 3600:
            raise ScpiError(-222, "Data out of range; logging time")
        for channel in self.channels.values():
            channel.dlog_duration_s = value

    def _set_dlog_source(self, args: list[str]) -> None:
        source = self._source(args[0] if args else "")
        for channel in self.channels.values():
            channel.dlog_trigger_source = source

    def _init_dlog(self, args: list[str]) -> None:
        numbers = [n for n in self._channel_numbers([a for a in args if a.startswith("(@")])]
        for n in numbers:
            channel = self.channels[n]
            if channel.dlog_duration_s / channel.dlog_period_s > 2e9:
                raise ScpiError(-221, "Settings conflict; too many logging periods")
            channel.dlog = DataLog(channel.dlog_period_s, channel.dlog_duration_s, self._noise_key())
            if channel.dlog_trigger_source == "IMM":
                self._start_dlog(n)
        self._retain_history()

    def _start_dlog(self, number_: int) -> None:
        dlog = self.channels[number_].dlog
        if dlog is None or dlog.started_s is not None:
            return
        dlog.started_s = self.world.now
        self._schedule_event(dlog.started_s + dlog.periods * dlog.period_s)

    def _abort_dlog(self, args: list[str]) -> None:
        for channel in self.channels.values():
            if channel.dlog is not None and channel.dlog.started_s is not None:
                elapsed = self.world.now - channel.dlog.started_s
                channel.dlog.duration_s = min(channel.dlog.duration_s, elapsed)

    def _dlog_ready(self, number_: int) -> tuple[DataLog, int]:
        dlog = self.channels[number_].dlog
        if dlog is None or dlog.started_s is None:
            raise ScpiError(-230, "Data corrupt or stale; no data log")
        elapsed = self.world.now - dlog.started_s
        return dlog, min(dlog.periods, int(elapsed / dlog.period_s + 1e-9))

    def _dlog_points_ready(self, args: list[str]) -> str:
        return ",".join(str(self._dlog_ready(n)[1]) for n in self._channel_numbers(args))

    def _fetch_dlog(self, args: list[str], statistic: str) -> str | bytes:
        numbers = self._channel_numbers(args)
        if len(numbers) != 1:
            raise ScpiError(-108, "Parameter not allowed; fetch one channel at a time")
        dlog, ready = self._dlog_ready(numbers[0])
        values = [a for a in args if not a.startswith("(@")]
        first = int(number(values[0], "first period")) if values else 0
        count = int(number(values[1], "count")) if len(values) > 1 else ready - first
        if first < 0 or count < 0 or first + count > ready:
            raise ScpiError(-222, f"Data out of range; periods {first}..{first + count} of {ready} ready")
        start = dlog.started_s + first * dlog.period_s
        timeline = self._timeline(numbers[0])
        if statistic == "mean":
            values_a = timeline.mean_over(start, dlog.period_s, count)
        else:
            lowest, highest = timeline.extremes_over(start, dlog.period_s, count)
            values_a = lowest if statistic == "min" else highest
        return self._array_reply(self._noisy(values_a, np.random.default_rng([dlog.noise_key, first, count])))

    def _retain_history(self) -> None:
        """History older than every acquisition and data log still open can be forgotten."""
        for n, channel in self.channels.items():
            starts = [self.world.now - MEAS_POINTS * MEAS_TINT_S]
            acquisition = channel.acquisition
            if acquisition is not None:
                pretrigger_s = min(acquisition.offset_points, 0) * acquisition.interval_s
                starts.append((acquisition.triggered_s or self.world.now) + pretrigger_s)
            if channel.dlog is not None and channel.dlog.started_s is not None:
                starts.append(channel.dlog.started_s)
            self._timeline(n).forget_before(min(starts))
