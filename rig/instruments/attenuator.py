"""Driver for a Mini-Circuits RCDAT/RC4DAT programmable attenuator (reached as a raw socket).

Values are checked against the datasheet (0-95 dB in 0.25 dB steps, channels 1-4) before anything is
sent; every set is confirmed by the instrument's reply and read back.
"""

from __future__ import annotations

import math

from rig.errors import InstrumentError
from rig.instruments.visa import VisaTransport

MAX_DB = 95.0
STEP_DB = 0.25
CHANNELS = (1, 2, 3, 4)
REPLY_MEANING = {"0": "failed", "1": "ok", "2": "above range (set to maximum)"}


def check_attenuation(value_db: float) -> float:
    """The value as the instrument will hold it, or ValueError naming the allowed range and step."""
    if not isinstance(value_db, int | float) or math.isnan(value_db):
        raise ValueError(f"attenuation must be a number of dB, got {value_db!r}")
    if not 0.0 <= value_db <= MAX_DB:
        raise ValueError(f"attenuation {value_db} dB is out of range 0..{MAX_DB} dB")
    steps = value_db / STEP_DB
    if abs(steps - round(steps)) > 1e-9:
        raise ValueError(f"attenuation {value_db} dB is not a multiple of the {STEP_DB} dB step")
    return round(steps) * STEP_DB


def check_channel(channel: int) -> int:
    if channel not in CHANNELS:
        raise ValueError(f"attenuator channel {channel!r} does not exist (channels {CHANNELS})")
    return channel


class Rc4datAttenuator:
    """Four-channel programmable attenuator."""

    def __init__(self, transport: VisaTransport):
        self.transport = transport

    @property
    def model(self) -> str:
        return self._tagged(":MN?", "MN")

    @property
    def serial(self) -> str:
        return self._tagged(":SN?", "SN")

    def _tagged(self, command: str, tag: str) -> str:
        reply = self.transport.query(command)
        if not reply.startswith(tag + "="):
            raise InstrumentError(f"{self.transport.name}: {command} answered {reply!r}, expected {tag}=...")
        return reply[len(tag) + 1 :]

    def attenuation_db(self, channel: int) -> float:
        command = f":CHAN:{check_channel(channel)}:ATT?"
        reply = self.transport.query(command)
        try:
            return float(reply)
        except ValueError:
            raise InstrumentError(f"{self.transport.name}: {command} answered {reply!r}") from None

    def attenuations_db(self) -> list[float]:
        reply = self.transport.query(":ATT?")
        try:
            return [float(v) for v in reply.split()]
        except ValueError:
            raise InstrumentError(f"{self.transport.name}: :ATT? answered {reply!r}") from None

    def set_attenuation(self, channel: int, value_db: float) -> float:
        """Set one channel, confirm the reply and the read-back; return the value the channel holds."""
        value_db = check_attenuation(value_db)
        command = f":CHAN:{check_channel(channel)}:SETATT={value_db:g}"
        self._confirm(command, self.transport.query(command))
        held = self.attenuation_db(channel)
        if abs(held - value_db) > 1e-6:
            raise InstrumentError(f"{self.transport.name}: {command} read back {held} dB")
        return held

    def set_all(self, value_db: float) -> None:
        """Set every channel to the same value (one command), then read all back."""
        value_db = check_attenuation(value_db)
        command = f":SETATT={value_db:g}"
        self._confirm(command, self.transport.query(command))
        held = self.attenuations_db()
        if any(abs(v - value_db) > 1e-6 for v in held):
            raise InstrumentError(f"{self.transport.name}: {command} read back {held}")

    def _confirm(self, command: str, reply: str) -> None:
        if reply != "1":
            meaning = REPLY_MEANING.get(reply, "unexpected reply")
            raise InstrumentError(f"{self.transport.name}: {command} answered {reply!r} ({meaning})")

    def close(self) -> None:
        self.transport.close()
