"""The reference maintenance protocol, rig side: one method per command of docs/maintenance-protocol.md.

Each call writes one line, then waits on the bench clock for the answer (`OK ...`, `ERR <code> <text>`,
or the lines of a multi-line answer up to `END`), so it works the same on the twin and on hardware.
The login is challenge-response (`CHALLENGE`, then `LOGIN` with the HMAC of the nonce under the password);
a meter that does not know `CHALLENGE` gets the password itself (the plaintext login S2 finds).
The session's transcript masks the password (and any other secret the caller names) as `****`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from rig.clock import Clock
from rig.maintenance import (
    MASK,
    BaseReading,
    LogEntry,
    MaintenanceError,
    MaintenanceRefused,
    MaintenanceTimeout,
    TranscriptLine,
    Versions,
)
from rig.ports import StampedLine

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MODULE_TIMEOUT_S = 120.0
SHOWN_CHARS = 1000
NO_CHALLENGE_CODES = (400, 401)  # a meter with the plaintext login: CHALLENGE unknown, or refused before login
ConfigValue = int | float | str


class LinePort(Protocol):
    """What the driver needs of its port: send a line, and received lines collecting in `lines`."""

    lines: deque[StampedLine]

    def write_line(self, text: str, terminator: str = "\r\n") -> None: ...


def _secret_text(value: object) -> str:
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if reveal is not None else value)


def login_response(password: str, nonce: str) -> str:
    """The answer to a challenge: HMAC-SHA256 of the nonce's hex text under the password, lower-case hex."""
    return hmac.new(password.encode("utf-8"), nonce.encode("ascii", errors="replace"), hashlib.sha256).hexdigest()


def _value(text: str) -> ConfigValue:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _pairs(text: str) -> dict[str, ConfigValue]:
    pairs: dict[str, ConfigValue] = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {item!r}")
        pairs[key] = _value(value)
    return pairs


class ReferenceMaintenance:
    """A session on a meter's near-end port speaking the reference protocol."""

    name = "reference"

    def __init__(self, port: LinePort, clock: Clock, timeout_s: float = DEFAULT_TIMEOUT_S,
                 module_timeout_s: float = DEFAULT_MODULE_TIMEOUT_S, secrets: Iterable[object] = ()):
        self.port = port
        self.bench_clock = clock
        self.timeout_s = timeout_s
        self.module_timeout_s = module_timeout_s
        self.transcript: list[TranscriptLine] = []
        self._secrets = [text for text in (_secret_text(s) for s in secrets) if text]

    # ---- the session ---------------------------------------------------------------------------
    def login(self, password: object) -> None:
        """`CHALLENGE` then `LOGIN <response>`: raises MaintenanceRefused (403 wrong password, 423 locked out).

        A meter that refuses `CHALLENGE` (400 unknown, 401 before login) gets `LOGIN <password>` instead.
        """
        secret = _secret_text(password)
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
        try:
            nonce = self._single("CHALLENGE").strip()
        except MaintenanceRefused as refusal:
            if refusal.code not in NO_CHALLENGE_CODES:
                raise
            self._single(f"LOGIN {secret}", shown=f"LOGIN {MASK}")
            return
        self._single(f"LOGIN {login_response(secret, nonce)}", shown=f"LOGIN {MASK}")

    def logout(self) -> None:
        self._single("LOGOUT")

    # ---- reads and sets ------------------------------------------------------------------------
    def meter_number(self) -> int:
        return self._converted("GET NUMBER", int)

    def set_meter_number(self, number: int) -> None:
        """A test number (C4); the meter's stagger follows it."""
        self._single(f"SET NUMBER {int(number)}")

    def reading(self) -> BaseReading:
        values = self._parsed("GET READING")
        return self._fields("GET READING", lambda: BaseReading(float(values["cumulative_l"]),
                                                              float(values["reverse_l"])))

    def report_period_s(self) -> float:
        return self._converted("GET PERIOD", float)

    def config(self, key: str | None = None) -> dict[str, ConfigValue]:
        """Every setting, or just `key`'s, as {key: value}."""
        return self._parsed("GET CONFIG" if key is None else f"GET CONFIG {key}")

    def set_config(self, key: str, value: object) -> None:
        self._single(f"SET CONFIG {key} {value}")

    def clock(self) -> float:
        """The meter's clock, POSIX seconds."""
        return self._converted("GET CLOCK", float)

    def set_clock(self, time_s: float) -> None:
        self._single(f"SET CLOCK {time_s:.3f}")

    def versions(self) -> Versions:
        values = self._parsed("VERSION")
        return self._fields("VERSION", lambda: Versions(str(values["mcu"]), str(values["module"])))

    # ---- jobs ----------------------------------------------------------------------------------
    def report_now(self) -> None:
        """Asks for a report; the answer means accepted, the report follows (watch the platform)."""
        self._single("REPORT NOW")

    def storage_on(self) -> None:
        self._single("STORAGE ON")

    def module(self, at_command: str, timeout_s: float | None = None) -> list[str]:
        """The module's reply lines to `at_command`, final result (`OK`, `ERROR`, `+CME ERROR: n`) included."""
        timeout = self.module_timeout_s if timeout_s is None else timeout_s
        return self._multi(f"MODULE {at_command}", timeout)

    def upgrade(self, target: str, version: str, image: bytes, signature: bytes | None,
                timeout_s: float | None = None) -> None:
        """Near-end image for `mcu` or `module`; MaintenanceRefused (409) when the meter refuses it.

        The answer comes after the meter verified and stored the image, so it gets the long timeout.
        """
        command = f"UPGRADE {target} {version} {image.hex().upper()}"
        shown = f"UPGRADE {target} {version} <{len(image)} bytes>"
        if signature is not None:
            command += f" {signature.hex().upper()}"
            shown += f" <signature {len(signature)} bytes>"
        self._single(command, shown=shown, timeout_s=self.module_timeout_s if timeout_s is None else timeout_s)

    # ---- logs ----------------------------------------------------------------------------------
    def logs(self, days: float | None = None) -> list[LogEntry]:
        """The meter's log (all of it, or the last `days`), oldest first."""
        command = "LOG GET" if days is None else f"LOG GET {days:g}"
        lines = self._multi(command, self.timeout_s, counted=True)
        entries = []
        for line in lines:
            fields = line.split("|", 3)
            if len(fields) != 4:
                raise MaintenanceError(f"maintenance command {command!r}: bad log line {line[:80]!r}", command)
            try:
                entries.append(LogEntry(float(fields[0]), fields[1], fields[2], fields[3]))
            except ValueError:
                raise MaintenanceError(f"maintenance command {command!r}: bad time in {line[:80]!r}", command) from None
        return entries

    def clear_logs(self) -> None:
        self._single("LOG CLEAR")

    # ---- exchange ------------------------------------------------------------------------------
    def transcript_text(self) -> str:
        return "\n".join(str(line) for line in self.transcript)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _record(self, time_s: float, direction: str, text: str) -> None:
        text = self._mask(text)
        if len(text) > SHOWN_CHARS:
            text = text[:SHOWN_CHARS] + f"... ({len(text)} chars)"
        self.transcript.append(TranscriptLine(time_s, direction, text))

    def _send(self, command: str, shown: str | None) -> str:
        while self.port.lines:  # an answer nobody waited for (a late reply): keep it in the transcript only
            stale = self.port.lines.popleft()
            self._record(stale.time_s, "<", stale.text)
        self.port.write_line(command)
        shown = self._mask(shown or command)
        self._record(self.bench_clock.now(), ">", shown)
        return shown

    def _receive(self, shown: str, timeout_s: float, complete: Callable[[list[str]], bool]) -> list[str]:
        received: list[str] = []

        def arrived() -> bool:
            while self.port.lines:
                line = self.port.lines.popleft()
                self._record(line.time_s, "<", line.text)
                received.append(line.text)
            return complete(received)

        if not self.bench_clock.wait_until(arrived, timeout_s):
            raise MaintenanceTimeout(
                f"maintenance command {shown!r}: no complete answer within {timeout_s:g} s"
                f" (got {len(received)} lines)", shown,
            )
        return received

    def _single(self, command: str, shown: str | None = None, timeout_s: float | None = None) -> str:
        """A one-line answer: `OK [value]` gives the value; `ERR` raises."""
        shown = self._send(command, shown)
        lines = self._receive(shown, self.timeout_s if timeout_s is None else timeout_s, bool)
        answer = lines[0]
        self._raise_if_refused(shown, answer)
        if answer != "OK" and not answer.startswith("OK "):
            raise MaintenanceError(f"maintenance command {shown!r}: unexpected answer {self._mask(answer)[:80]!r}",
                                   shown)
        return answer[3:]

    def _converted(self, command: str, convert: Callable[[str], ConfigValue]) -> ConfigValue:
        """The one-line answer's value as `convert` reads it; MaintenanceError when it cannot."""
        value = self._single(command)
        try:
            return convert(value)
        except ValueError:
            raise MaintenanceError(f"maintenance command {command!r}: unexpected value {self._mask(value)[:80]!r}",
                                   command) from None

    def _fields(self, command: str, build: Callable[[], object]) -> object:
        """`build()` from an answer's fields; MaintenanceError naming the command when one is missing or bad."""
        try:
            return build()
        except (KeyError, ValueError) as error:
            raise MaintenanceError(f"maintenance command {command!r}: missing or bad field {error}", command) from None

    def _parsed(self, command: str) -> dict[str, ConfigValue]:
        value = self._single(command)
        try:
            return _pairs(value)
        except ValueError as error:
            raise MaintenanceError(f"maintenance command {command!r}: {error}", command) from None

    def _multi(self, command: str, timeout_s: float, counted: bool = False) -> list[str]:
        """Lines up to `END` (or `END <count>`, checked); an `ERR` first line raises."""
        shown = self._send(command, None)

        def complete(lines: list[str]) -> bool:
            return bool(lines) and (lines[0].startswith("ERR ") or lines[-1] == "END" or lines[-1].startswith("END "))

        lines = self._receive(shown, timeout_s, complete)
        self._raise_if_refused(shown, lines[0])
        end, body = lines[-1], lines[:-1]
        if counted:
            count = end.removeprefix("END").strip()
            if not count.isdigit() or int(count) != len(body):
                raise MaintenanceError(
                    f"maintenance command {shown!r}: {len(body)} lines arrived, the meter said {end!r}", shown
                )
        return body

    def _raise_if_refused(self, shown: str, answer: str) -> None:
        if not answer.startswith("ERR "):
            return
        code, _, text = answer[4:].partition(" ")
        if not code.isdigit():
            raise MaintenanceError(f"maintenance command {shown!r}: malformed refusal {self._mask(answer)[:80]!r}",
                                   shown)
        raise MaintenanceRefused(shown, int(code), self._mask(text))
