"""The twin meter's near-end maintenance port: the reference line protocol (docs/maintenance-protocol.md).

A technician's tool (or the rig) logs in by challenge-response (a fresh nonce from `CHALLENGE`, answered
with the HMAC-SHA256 of the nonce under the password, so a captured session cannot be replayed; the
`plaintext` login of the S2 defect takes the password itself), then reads and sets the meter's number,
readings, period, configuration and clock, downloads or clears its logs, queries and sets the module
through the MCU, turns storage mode on and loads images. Every session event goes to the meter's log
under `maintenance`; the password itself is never written anywhere. Wrong passwords lock the port for
`lockout_s` of the MCU's monotonic time after `lockout_after_failures` tries (the profile's switches).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import logging
import math
import random
from collections.abc import Callable, Generator

import simpy

from rig.sim.meter.firmware import Job, MeterFirmware
from rig.sim.meter.schedule import REPORT_PERIOD_S

log = logging.getLogger(__name__)

REPLY_DELAY_S = 0.02
MAX_LINE_BYTES = 1 << 20
BUSY_LIMIT_S = 60.0
VERSION_MAX_CHARS = 20
MASK = "****"
TOO_LONG = object()
NONCE_BITS = 128


def login_response(password: str, nonce: str) -> str:
    """The answer to a challenge: HMAC-SHA256 of the nonce's hex text under the password, lower-case hex."""
    return hmac.new(password.encode("utf-8"), nonce.encode("ascii"), hashlib.sha256).hexdigest()


class Refused(Exception):
    """A command the port answers with `ERR <code> <text>`."""

    def __init__(self, code: int, text: str):
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


def _format(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _clean(text: str) -> str:
    """A log field on one line: the log download is line-framed."""
    return text.replace("\r", " ").replace("\n", " ")


class MaintenancePort:
    """The MCU's side of the near-end port: fed bytes by the pty, answering line by line, in order."""

    def __init__(self, meter: MeterFirmware, password: str, write: Callable[[bytes], None]):
        self.meter = meter
        self.env = meter.env
        self.sim = meter.sim
        self._password = password
        self._write = write
        self._partial = bytearray()
        self._too_long = False
        self._lines = simpy.Store(self.env)
        self._process: simpy.Process | None = None
        self.logged_in = False
        self.failures = 0
        self.locked_until_s: float | None = None  # world (monotonic) time; survives a power cycle
        self._nonce: str | None = None  # the outstanding challenge: good for one LOGIN
        self._nonces = random.Random(f"maintenance-nonce:{meter.world.seed}")  # apart from the world's draws

    # ---- wiring --------------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes from the pty; an unpowered MCU hears nothing."""
        if not self.meter.powered:
            return
        if self._process is None or not self._process.is_alive:
            self._process = self.env.process(self._serve())
        for byte in data:
            if byte in (10, 13):
                if self._too_long:
                    self._lines.put(TOO_LONG)
                elif self._partial:
                    self._lines.put(self._partial.decode("latin-1"))
                self._partial.clear()
                self._too_long = False
            elif not self._too_long:
                self._partial.append(byte)
                if len(self._partial) > MAX_LINE_BYTES:
                    self._partial.clear()
                    self._too_long = True

    def on_supply(self, powered: bool) -> None:
        """Power loss ends the session and drops what was not answered; the lock-out stays."""
        if powered:
            return
        if self._process is not None and self._process.is_alive:
            self._process.interrupt()
        self._process = None
        self._lines = simpy.Store(self.env)  # a fresh queue: the dead process's pending get must not eat a line
        self._partial.clear()
        self._too_long = False
        self.logged_in = False
        self._nonce = None

    # ---- the session ---------------------------------------------------------------------------
    def _serve(self) -> Generator[simpy.Event, None, None]:
        try:
            while True:
                line = yield self._lines.get()
                yield self.env.timeout(REPLY_DELAY_S)
                try:
                    if line is TOO_LONG:
                        raise Refused(413, f"line longer than {MAX_LINE_BYTES} bytes")
                    reply = yield from self._handle(line.strip())
                except Refused as refusal:
                    reply = [f"ERR {refusal.code} {refusal.text}"]
                except Exception:  # noqa: BLE001 - a bug in one command must not stop the port or the world
                    log.exception("maintenance command failed")
                    reply = ["ERR 500 internal error"]
                self._write("".join(f"{text}\r\n" for text in reply).encode("latin-1", errors="replace"))
        except simpy.Interrupt:
            return

    def _log(self, event: str, detail: str = "") -> None:
        if self._password:
            detail = detail.replace(self._password, MASK)
        self.meter.record("maintenance", event, _clean(detail))

    def _handle(self, line: str) -> Generator[simpy.Event, None, list[str]]:
        verb, _, rest = line.partition(" ")
        verb = verb.upper()
        if not verb:
            raise Refused(400, "empty command")
        if verb == "LOGIN":
            return self._login(rest)
        if verb == "CHALLENGE" and self._challenge_response:
            return self._challenge(rest)
        words = rest.split()
        command = " ".join([verb, *(w.upper() for w in words[:1]), *words[1:]])
        if not self.logged_in and self.sim.password_required:
            self._log("refused", f"{' '.join(command.split()[:2])} before login")
            raise Refused(401, "login required")
        if verb == "UPGRADE":
            return self._upgrade(words)
        self._log("command", command)
        if verb == "MODULE":
            return (yield from self._module(rest.strip()))
        handler = self._handlers().get((verb, words[0].upper() if words else ""))
        if handler is None:
            raise Refused(400, f"unknown command {command[:60]}")
        return handler(words[1:])

    def _handlers(self) -> dict[tuple[str, str], Callable[[list[str]], list[str]]]:
        return {
            ("LOGOUT", ""): self._logout,
            ("GET", "NUMBER"): lambda args: [f"OK {self.meter.meter_number}"],
            ("SET", "NUMBER"): self._set_number,
            ("GET", "READING"): self._reading,
            ("GET", "PERIOD"): lambda args: [f"OK {_format(self.meter.config.get('report_period_s'))}"],
            ("GET", "CONFIG"): self._get_config,
            ("SET", "CONFIG"): self._set_config,
            ("GET", "CLOCK"): lambda args: [f"OK {self.meter.meter_now():.3f}"],
            ("SET", "CLOCK"): self._set_clock,
            ("REPORT", "NOW"): self._report_now,
            ("LOG", "GET"): self._log_get,
            ("LOG", "CLEAR"): self._log_clear,
            ("STORAGE", "ON"): self._storage_on,
            ("VERSION", ""): self._version,
        }

    def _version(self, args: list[str]) -> list[str]:
        return [f"OK mcu={self.meter.mcu_firmware} module={self.meter.module_firmware or '-'}"]

    # ---- login ---------------------------------------------------------------------------------
    @property
    def _challenge_response(self) -> bool:
        return self.sim.password_required and self.sim.maintenance_login == "challenge"

    def _challenge(self, rest: str) -> list[str]:
        if rest.strip():
            raise Refused(400, "expected CHALLENGE")
        self._nonce = f"{self._nonces.getrandbits(NONCE_BITS):0{NONCE_BITS // 4}x}"
        return [f"OK {self._nonce}"]

    def _credential_valid(self, credential: str) -> tuple[bool, str]:
        """(valid, why not): the password itself, or the response to the outstanding challenge (used up)."""
        if not self._challenge_response:
            return credential == self._password, "wrong password"
        nonce, self._nonce = self._nonce, None
        if nonce is None:
            return False, "no challenge"
        expected = login_response(self._password, nonce).encode("ascii")
        return hmac.compare_digest(credential.strip().lower().encode("latin-1"), expected), "wrong password"

    def _login(self, password: str) -> list[str]:
        now = self.meter.world.now
        if not self.sim.password_required:
            self.logged_in = True
            self._log("login", "no password required")
            return ["OK"]
        if self.locked_until_s is not None:
            if now < self.locked_until_s:
                self._log("login_refused", "locked out")
                raise Refused(423, f"locked out for {self.locked_until_s - now:.0f} s")
            self.locked_until_s = None
            self.failures = 0
        valid, reason = self._credential_valid(password)
        if valid:
            self.logged_in = True
            self.failures = 0
            self._log("login")
            return ["OK"]
        self.logged_in = False
        self.failures += 1
        self._log("login_refused", f"{reason} (failure {self.failures})")
        limit = self.sim.lockout_after_failures
        if limit is not None and self.failures >= limit:
            self.locked_until_s = now + self.sim.lockout_s
            self._log("lockout", f"{self.failures} wrong passwords: locked for {self.sim.lockout_s:.0f} s")
        raise Refused(403, "wrong password")

    def _logout(self, args: list[str]) -> list[str]:
        self.logged_in = False
        self._log("logout")
        return ["OK"]

    # ---- reads and sets ------------------------------------------------------------------------
    def _set_number(self, args: list[str]) -> list[str]:
        if len(args) != 1 or not args[0].isdigit():
            raise Refused(400, "expected SET NUMBER <n>, n a whole number >= 0")
        self.meter.meter_number = int(args[0])
        if not self.meter.replan.triggered:  # the next report time follows the new number (the protocol's promise)
            self.meter.replan.succeed()
        self.meter.record("meter", "number", args[0])
        return ["OK"]

    def _reading(self, args: list[str]) -> list[str]:
        readings = self.meter.readings
        readings.advance(self.meter.world.now)
        return [f"OK cumulative_l={readings.forward_l:.3f} reverse_l={readings.reverse_l:.3f}"]

    def _get_config(self, args: list[str]) -> list[str]:
        values = self.meter.config.values
        if not args:
            return ["OK " + " ".join(f"{key}={_format(value)}" for key, value in values.items())]
        if len(args) != 1:
            raise Refused(400, "expected GET CONFIG [key]")
        if args[0] not in values:
            raise Refused(404, f"unknown key {args[0][:40]}")
        return [f"OK {args[0]}={_format(values[args[0]])}"]

    def _set_config(self, args: list[str]) -> list[str]:
        if len(args) != 2:
            raise Refused(400, "expected SET CONFIG <key> <value>")
        key, text = args
        config = self.meter.config
        if key not in config.values:
            raise Refused(404, f"unknown key {key[:40]}")
        value = self._parse_config(key, text, config.get(key))
        config.set(key, value)
        if key in ("schedule", "report_t1", "report_t3_s") and not self.meter.replan.triggered:
            self.meter.replan.succeed()  # takes effect at once: the next report follows the new setting
        self.meter.record("meter", "config", f"{key}={_format(value)}")
        return ["OK"]

    @staticmethod
    def _parse_config(key: str, text: str, current: object) -> object:
        if key == "schedule":
            if text not in REPORT_PERIOD_S:
                raise Refused(409, f"schedule must be one of {', '.join(REPORT_PERIOD_S)}")
            return text
        if key == "report_t1":
            hours, _, minutes = text.partition(":")
            if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
                raise Refused(409, "report_t1 must be a time of day HH:MM")
            return text
        if key == "report_period_s":
            raise Refused(409, "report_period_s follows the schedule: set schedule")
        try:
            number = float(text)
        except ValueError:
            raise Refused(409, f"{key} needs a number") from None
        if not math.isfinite(number) or number < 0:
            raise Refused(409, f"{key} needs a finite number >= 0")
        if isinstance(current, int):
            if not number.is_integer():
                raise Refused(409, f"{key} needs a whole number")
            return int(number)
        return number

    def _set_clock(self, args: list[str]) -> list[str]:
        try:
            meter_time_s = float(args[0]) if len(args) == 1 else float("nan")
        except ValueError:
            meter_time_s = float("nan")
        if not (math.isfinite(meter_time_s) and meter_time_s >= 0):
            raise Refused(400, "expected SET CLOCK <POSIX seconds>")
        before = self.meter.meter_now()
        self.meter.clock.set(meter_time_s, self.meter.world.now)
        self.meter.record("meter", "clock_set", f"{meter_time_s - before:+.3f} s")
        return ["OK"]

    # ---- jobs ----------------------------------------------------------------------------------
    def _report_now(self, args: list[str]) -> list[str]:
        self.meter.request("report")
        return ["OK"]

    def _storage_on(self, args: list[str]) -> list[str]:
        if not self.sim.storage_mode:
            raise Refused(409, "storage mode not supported")
        self.meter.request("storage")
        return ["OK"]

    def _module(self, command: str) -> Generator[simpy.Event, None, list[str]]:
        if not command.upper().startswith("AT"):
            raise Refused(400, "expected MODULE <AT command>")
        done = self.env.event()

        def finished(lines: list[str]) -> None:
            if not done.triggered:
                done.succeed(lines)

        self.meter.request("module_command", command, finished)
        result = yield done | self.env.timeout(BUSY_LIMIT_S)
        if done not in result:
            queued = [job for job in self.meter.jobs.items if isinstance(job, Job) and job.done is finished]
            if queued:
                self.meter.jobs.items.remove(queued[0])
                raise Refused(503, f"meter busy: the command waited {BUSY_LIMIT_S:.0f} s and was dropped")
            lines = yield done  # already running: the module answers within its own AT timeout
        else:
            lines = result[done]
        if lines and lines[-1] == "timeout":
            raise Refused(504, "the module did not answer")
        return [*lines, "END"]

    # ---- logs ----------------------------------------------------------------------------------
    def _log_get(self, args: list[str]) -> list[str]:
        try:
            days = float(args[0]) if args else None
        except ValueError:
            days = -1.0
        if len(args) > 1 or (days is not None and not days > 0):
            raise Refused(400, "expected LOG GET [days], days > 0")
        if days is None:
            entries = list(self.meter.log.entries)
        else:
            entries = self.meter.log.since(self.meter.meter_now() - days * 86400.0)
        lines = [f"{e.time_s:.0f}|{_clean(e.module)}|{_clean(e.event)}|{_clean(e.detail)}" for e in entries]
        return [*lines, f"END {len(lines)}"]

    def _log_clear(self, args: list[str]) -> list[str]:
        count = len(self.meter.log.entries)
        self.meter.log.clear()
        self._log("log_cleared", f"{count} entries")
        return ["OK"]

    # ---- images --------------------------------------------------------------------------------
    def _upgrade(self, words: list[str]) -> list[str]:
        if len(words) not in (3, 4):
            self._log("command", "UPGRADE (malformed)")
            raise Refused(400, "expected UPGRADE <mcu|module> <version> <hex image> [<hex signature>]")
        target, version = words[0].lower(), words[1]
        try:
            image = binascii.unhexlify(words[2])
            signature = binascii.unhexlify(words[3]) if len(words) == 4 else None
        except (binascii.Error, ValueError):
            self._log("command", f"UPGRADE {target} {version} (not hex)")
            raise Refused(400, "image and signature must be hexadecimal") from None
        state = "signed" if signature is not None else "unsigned"
        self._log("command", f"UPGRADE {target} {version} ({len(image)} bytes, {state})")
        if target not in ("mcu", "module"):
            raise Refused(400, "target must be mcu or module")
        if not version or len(version.encode()) > VERSION_MAX_CHARS:
            raise Refused(400, f"version must be 1 to {VERSION_MAX_CHARS} characters")
        if not self.meter.apply_image(target, version, image, signature):
            raise Refused(409, "image refused: signature check failed")
        if target == "module":
            self.meter.module_firmware = version  # the MCU knows what it flashed; the module is rebooting
        return ["OK"]
