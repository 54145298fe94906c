"""Near-end maintenance drivers: how the rig talks to a meter's local maintenance port (C15, C13, C14).

What differs between meters is a plugin named by the device profile (`maintenance.protocol: <name>`),
found through the `rig.maintenance` entry-point group, so a vendor adds theirs without forking. A driver
is built with the port (a `SerialLinePort`) and the bench clock; the reference protocol is documented
in docs/maintenance-protocol.md and implemented by `rig.maintenance.reference.ReferenceMaintenance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol

from rig.errors import RigFault

MASK = "****"


class MaintenanceError(RigFault):
    """The maintenance session did not go as asked; the message names the command (password masked).

    A check that judges the meter's answer (a refusal it expects, a reply it times) catches the
    subclasses; left uncaught, the check reports broken: it could not do what it needed.
    """

    def __init__(self, message: str, command: str = ""):
        super().__init__(message)
        self.command = command


class MaintenanceRefused(MaintenanceError):
    """The meter answered `ERR <code> <text>`."""

    def __init__(self, command: str, code: int, text: str):
        super().__init__(f"maintenance command {command!r} refused: ERR {code} {text}", command)
        self.code = code
        self.text = text


class MaintenanceTimeout(MaintenanceError):
    """The meter did not answer in time."""


@dataclass(frozen=True)
class LogEntry:
    """One line of a meter's log: meter-clock time (POSIX s), internal module, event, detail."""

    time_s: float
    module: str
    event: str
    detail: str = ""


@dataclass(frozen=True)
class BaseReading:
    """The meter's totals: forward (cumulative) and reverse volume, litres."""

    cumulative_l: float
    reverse_l: float


@dataclass(frozen=True)
class Versions:
    """Firmware versions as the MCU knows them."""

    mcu: str
    module: str


@dataclass(frozen=True)
class TranscriptLine:
    """One line of a session as the rig saw it: bench time, `>` sent or `<` received, text (secrets masked)."""

    time_s: float
    direction: str
    text: str

    def __str__(self) -> str:
        return f"{self.time_s:.3f} {self.direction} {self.text}"


class MaintenanceDriver(Protocol):
    """What every maintenance plugin offers; each call waits for the meter's answer on the bench clock."""

    transcript: list[TranscriptLine]

    def login(self, password: object) -> None: ...

    def logout(self) -> None: ...

    def meter_number(self) -> int: ...

    def set_meter_number(self, number: int) -> None: ...

    def reading(self) -> BaseReading: ...

    def report_period_s(self) -> float: ...

    def config(self, key: str | None = None) -> dict[str, int | float | str]: ...

    def set_config(self, key: str, value: object) -> None: ...

    def clock(self) -> float: ...

    def set_clock(self, time_s: float) -> None: ...

    def report_now(self) -> None: ...

    def logs(self, days: float | None = None) -> list[LogEntry]: ...

    def clear_logs(self) -> None: ...

    def module(self, at_command: str, timeout_s: float | None = None) -> list[str]: ...

    def storage_on(self) -> None: ...

    def upgrade(self, target: str, version: str, image: bytes, signature: bytes | None,
                timeout_s: float | None = None) -> None: ...

    def versions(self) -> Versions: ...


def load_maintenance(name: str) -> type[MaintenanceDriver]:
    """The driver class registered under `name` in the `rig.maintenance` entry-point group."""
    found = {ep.name: ep for ep in entry_points(group="rig.maintenance")}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise RigFault(f"no maintenance protocol named {name!r} is installed (rig.maintenance entry points: {known})")
    return found[name].load()
