"""Driving a bare NB-IoT module on the simulated bench the way a host MCU would, over its AT port.

`module_bench()` opens a bench on its own twin with the bare-module profile (or another device profile)
and hands out a `ModuleSession`: `send()` writes one command line and collects the stamped reply lines
up to the final result code (`OK`, `ERROR`, `+CME ERROR: <n>`); `wait_line()` waits for a URC.
Every line the module wrote is kept in `history`, so a check can look back at stamps and order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from rig.bench import Bench
from rig.ports import SerialLinePort, StampedLine
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
BARE_MODULE = ROOT / "profiles" / "devices" / "bare-module.yaml"
FINAL_RESULT = re.compile(r"OK|ERROR|\+CME ERROR: ?\d+")
REPLY_TIMEOUT_S = 10.0
BOOT_TIMEOUT_S = 10.0
FAR_DB = 95.0
# bench calibration of profiles/benches/sim.yaml: RS power -60 dBm, 30 dB path loss on every channel
RS_POWER_DBM = -60.0
PATH_LOSS_DB = 30.0

DATAGRAM_PEER = "127.0.0.1,9999"  # some local UDP port: nobody needs to listen
CONNECT_TIMEOUT_S = 10.0

Match = str | re.Pattern | Callable[[str], bool]


def attenuation_for_rsrp(rsrp_dbm: float) -> float:
    """The attenuator setting that puts a cell of the sim bench at `rsrp_dbm` at the module."""
    return RS_POWER_DBM - PATH_LOSS_DB - rsrp_dbm


def _matcher(match: Match) -> Callable[[str], bool]:
    if isinstance(match, str):
        return lambda text: text == match
    if isinstance(match, re.Pattern):
        return lambda text: match.fullmatch(text) is not None
    return match


@dataclass(frozen=True)
class Reply:
    """What the module wrote after one command: every line up to and including the final result code."""

    command: str
    sent_s: float
    lines: list[StampedLine]

    @property
    def final(self) -> str:
        return self.lines[-1].text

    @property
    def final_s(self) -> float:
        return self.lines[-1].time_s

    @property
    def body(self) -> list[str]:
        """The information lines (final result code excluded)."""
        return [line.text for line in self.lines[:-1]]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True)
class Sent:
    """A datagram the module took (`sent_s`: its reply), and the connection it set up for it."""

    sent_s: float
    since: int
    connected: StampedLine


class ModuleSession:
    """One bare module on one bench: its AT port, the instruments around it and the network log."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.clock = bench.clock
        self.supply = bench.supply
        self.attenuator = bench.attenuator
        self.port = SerialLinePort("at", bench.endpoints["serial"]["at"], bench.clock)
        self.history: list[StampedLine] = []
        self.last_sent_index = 0

    # ---- lines ---------------------------------------------------------------------------------
    def pump(self) -> None:
        while self.port.lines:
            self.history.append(self.port.lines.popleft())

    def mark(self) -> int:
        """Index of the next line to arrive: pass it as `since` to look only at later lines."""
        self.pump()
        return len(self.history)

    def lines_since(self, since: int) -> list[StampedLine]:
        self.pump()
        return self.history[since:]

    def find(self, match: Match, since: int = 0) -> StampedLine | None:
        matches = _matcher(match)
        return next((line for line in self.lines_since(since) if matches(line.text)), None)

    def transcript(self, since: int = 0) -> str:
        origin = self.history[0].time_s if self.history else self.clock.now()
        return "\n".join(f"{line.time_s - origin:12.3f} {line.text}" for line in self.lines_since(since))

    def wait_line(self, match: Match, timeout_s: float, since: int | None = None) -> StampedLine:
        """Wait (virtual time) for a line such as a URC; `since` defaults to the last command sent."""
        start = self.last_sent_index if since is None else since
        found: list[StampedLine] = []

        def seen() -> bool:
            line = self.find(match, start)
            if line is not None:
                found.append(line)
            return line is not None

        if not self.clock.wait_until(seen, timeout_s):
            raise AssertionError(f"no line matching {match!r} within {timeout_s} s:\n{self.transcript(start)}")
        return found[0]

    # ---- commands ------------------------------------------------------------------------------
    def write_raw(self, data: bytes) -> None:
        self.port.write(data)

    def send(self, command: str, timeout_s: float = REPLY_TIMEOUT_S) -> Reply:
        """Write `command` and return the lines up to the final result code (URCs in between included)."""
        start = self.mark()
        self.last_sent_index = start
        sent_s = self.clock.now()
        self.port.write_line(command)
        done = lambda: any(FINAL_RESULT.fullmatch(line.text) for line in self.lines_since(start))  # noqa: E731
        if not self.clock.wait_until(done, timeout_s):
            raise AssertionError(f"{command}: no final result code within {timeout_s} s:\n{self.transcript(start)}")
        lines = self.lines_since(start)
        end = next(i for i, line in enumerate(lines) if FINAL_RESULT.fullmatch(line.text))
        return Reply(command, sent_s, lines[: end + 1])

    def ok(self, command: str, timeout_s: float = REPLY_TIMEOUT_S) -> list[str]:
        """Send and insist on `OK`; returns the information lines."""
        reply = self.send(command, timeout_s)
        assert reply.final == "OK", f"{command} -> {reply.text}"
        return reply.body

    # ---- power and state -----------------------------------------------------------------------
    def power_on(self) -> list[StampedLine]:
        """Switch the supply on and return the boot banner (up to its `OK`)."""
        start = self.mark()
        self.last_sent_index = start
        self.supply.set_output(True)
        self.wait_line("OK", BOOT_TIMEOUT_S, since=start)
        return self.lines_since(start)

    def wait_registered(self, timeout_s: float = 120.0, poll_s: float = 1.0) -> float:
        """Poll `AT+CGATT?` until attached; returns the time of the answer that said so."""
        deadline = self.clock.now() + timeout_s
        while True:
            reply = self.send("AT+CGATT?")
            if reply.body == ["+CGATT:1"]:
                return reply.final_s
            assert self.clock.now() < deadline, f"not attached within {timeout_s} s:\n{self.transcript()}"
            self.clock.sleep(poll_s)

    def wait_released(self, timeout_s: float = 60.0) -> None:
        """Turn `+CSCON` URCs on and, if the module is RRC connected, wait for the network's release."""
        self.ok("AT+CSCON=1")
        if self.ok("AT+CSCON?") == ["+CSCON:1,1"]:
            self.wait_line("+CSCON:0", timeout_s)

    def send_datagram(self, flags: str | None = None, attempts: int = 3) -> Sent:
        """From RRC idle or PSM, send 4 bytes of UDP to a local port and wait for the connection (`+CSCON:1`).

        `AT+NSOST`, or `AT+NSOSTF` with `flags` (`0x200`: release assistance). The twin's network may
        refuse an RRC setup now and then, as a real one does (the log says `rrc_setup_failed`, and the
        module drops the datagram): then the datagram is sent again, up to `attempts` times.
        """
        self.ok("AT+CSCON=1")
        for _ in range(attempts):
            since = self.mark()
            socket = self.ok("AT+NSOCR=DGRAM,17,5000,1")[0]
            command = (
                f"AT+NSOST={socket},{DATAGRAM_PEER},4,DEADBEEF" if flags is None
                else f"AT+NSOSTF={socket},{DATAGRAM_PEER},{flags},4,DEADBEEF"
            )
            reply = self.send(command)
            assert reply.text.splitlines() == [f"{socket},4", "OK"], reply.text
            self.ok(f"AT+NSOCL={socket}")
            self.clock.wait_until(lambda s=since: self.find("+CSCON:1", s) is not None, CONNECT_TIMEOUT_S)
            connected = self.find("+CSCON:1", since)
            if connected is not None:
                return Sent(reply.final_s, since, connected)
            assert self.events("rrc_setup_failed", reply.sent_s), (
                f"{command}: no RRC connection and none refused:\n{self.transcript(since)}"
            )
        raise AssertionError(f"no RRC connection in {attempts} attempts:\n{self.transcript()}")

    def nuestats(self) -> dict[str, int]:
        """`AT+NUESTATS` as a dict of its integer fields, in the module's order."""
        return {key: int(value) for key, _, value in (line.partition(":") for line in self.ok("AT+NUESTATS"))}

    def network_log(self, since: int = 0) -> list[dict]:
        """The twin's network log (what a callbox would show): events with virtual times."""
        return json.loads(self.bench.twin_link.query(f"SIM:NET:LOG? {since}"))

    def events(self, name: str, since_s: float = 0.0) -> list[dict]:
        return [e for e in self.network_log() if e["event"] == name and e["time_s"] >= since_s]

    def mean_current_a(self, duration_s: float, period_s: float = 1.0) -> float:
        """Mean supply current over the next `duration_s` from the analyser's data logger."""
        chunks = list(self.supply.data_log(period_s, duration_s))
        return float(np.mean(np.concatenate([chunk.mean_a for chunk in chunks])))

    def close(self) -> None:
        self.port.close()


@contextmanager
def module_bench(
    device_path: Path = BARE_MODULE,
    attenuation_db: dict[int, float] | None = None,
    power: bool = True,
    seed: int | None = None,
) -> Iterator[ModuleSession]:
    """A bench on its own twin with one bare module; by default CE0 on cell 1 only, powered and booted."""
    bench = Bench(load_model(SIM_BENCH, BenchProfile), SIM_BENCH, seed=seed, device_path=device_path).open()
    session = None
    try:
        session = ModuleSession(bench)
        bench.attenuator.set_all(FAR_DB)
        for channel, value in (attenuation_db if attenuation_db is not None else {1: 5.0}).items():
            bench.attenuator.set_attenuation(channel, value)
        if power:
            session.power_on()
        yield session
    finally:
        if session is not None:
            session.close()
        bench.close()


def module_profile_variant(tmp_path: Path, name: str, **module_settings) -> Path:
    """A copy of the bare-module profile with `sim.module` settings changed (a defect profile)."""
    profile = yaml.safe_load(BARE_MODULE.read_text())
    profile["name"] = name
    profile["sim"]["module"] = {**(profile["sim"].get("module") or {}), **module_settings}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path
