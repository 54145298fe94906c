"""The twin's programmable attenuator: a Mini-Circuits RC4DAT-6G-95 over its Telnet-style command set."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable

from rig.sim.transport import Connection

MODEL = "RC4DAT-6G-95"
MAX_DB = 95.0
STEP_DB = 0.25

MAX_LINE_BYTES = 256  # the instrument's command buffer: a longer line is an invalid command

SET_FAILED, SET_OK, SET_ABOVE_RANGE = "0", "1", "2"
INVALID = "Invalid Command"

log = logging.getLogger(__name__)

_CHAN_SET = re.compile(r":?CHAN((?::\d{1,3})+):SETATT[=:](.+)")
_CHAN_GET = re.compile(r":?CHAN:(\d{1,3}):ATT\?")
_ALL_SET = re.compile(r":?SETATT[=:](.+)")
_STARTUP_SET = re.compile(r":?STARTUPATT:VALUE[=:](.+)")
_INDICATOR_SET = re.compile(r":?STARTUPATT:INDICATOR[=:]([LFN])")


def format_db(value: float) -> str:
    return f"{value:g}"


def parse_db(text: str) -> float | None:
    """A finite attenuation value as the firmware reads it, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class AttenuatorModel:
    """Four attenuation channels; listeners hear every change (the radio model follows them live)."""

    def __init__(self, serial: str, channels: int = 4, startup_db: float = 0.0):
        self.serial = serial
        self.startup_db = startup_db
        self.startup_indicator = "F"
        self.values_db = [startup_db] * channels
        self.listeners: list[Callable[[int, float], None]] = []

    def set_channel(self, channel: int, value_db: float) -> str:
        """Set one channel (1-based) as the hardware does: quantise, clamp above range, refuse below 0."""
        if value_db < 0:
            return SET_FAILED
        result = SET_OK
        if value_db > MAX_DB:
            value_db, result = MAX_DB, SET_ABOVE_RANGE
        value_db = round(value_db / STEP_DB) * STEP_DB
        if self.values_db[channel - 1] != value_db:
            self.values_db[channel - 1] = value_db
            for listener in self.listeners:
                listener(channel, value_db)
        return result

    def execute(self, line: str) -> str:
        """Answer one command line exactly as the instrument would."""
        text = line.strip().upper()
        if text in (":MN?", "MN?"):
            return f"MN={MODEL}"
        if text in (":SN?", "SN?"):
            return f"SN={self.serial}"
        if text in (":FIRMWARE?", "FIRMWARE?"):
            return "FIRMWARE=C1"
        if text in (":ATT?", "ATT?"):
            return "  ".join(format_db(v) for v in self.values_db)
        if text in (":STARTUPATT:VALUE?", "STARTUPATT:VALUE?"):
            return format_db(self.startup_db)
        if text in (":STARTUPATT:INDICATOR?", "STARTUPATT:INDICATOR?"):
            return self.startup_indicator
        if match := _CHAN_GET.fullmatch(text):
            channel = int(match.group(1))
            if not 1 <= channel <= len(self.values_db):
                return SET_FAILED
            return format_db(self.values_db[channel - 1])
        if match := _CHAN_SET.fullmatch(text):
            channels = [int(c) for c in match.group(1).strip(":").split(":")]
            return self._set_many(channels, match.group(2))
        if match := _ALL_SET.fullmatch(text):
            return self._set_many(list(range(1, len(self.values_db) + 1)), match.group(1))
        if match := _STARTUP_SET.fullmatch(text):
            value_db = parse_db(match.group(1))
            if value_db is None:
                return SET_FAILED
            self.startup_db = min(max(value_db, 0.0), MAX_DB)
            return SET_OK
        if match := _INDICATOR_SET.fullmatch(text):
            self.startup_indicator = match.group(1)
            return SET_OK
        return INVALID

    def _set_many(self, channels: list[int], value_text: str) -> str:
        value_db = parse_db(value_text)
        if value_db is None:
            return SET_FAILED
        if any(not 1 <= c <= len(self.values_db) for c in channels):
            return SET_FAILED
        results = {self.set_channel(c, value_db) for c in channels}
        for worst in (SET_FAILED, SET_ABOVE_RANGE):
            if worst in results:
                return worst
        return SET_OK


class AttenuatorSession:
    """One Telnet-style connection: each line gets one reply line ending in CR LF."""

    def __init__(self, model: AttenuatorModel, connection: Connection):
        self.model = model
        self.connection = connection

    def on_line(self, line: str) -> None:
        try:
            reply = self.model.execute(line)
        except Exception:  # noqa: BLE001 - last resort: one bad line must not take the instrument down
            log.exception("attenuator command %r raised", line[:80])
            reply = INVALID
        self.connection.send(reply)

    def on_overrun(self) -> None:
        self.connection.send(INVALID)

    def on_close(self) -> None:
        pass
