"""The twin process: the world, its instrument servers, its ports, and the control port that moves time.

Free-running when alone (virtual time follows the wall clock, times `speed`); a bench that sends
`SIM:LOCK` takes the clock and moves it only with `RUN` (lockstep), until it frees it or disconnects.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field

from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.sim import attenuator, scpi
from rig.sim.attenuator import AttenuatorModel, AttenuatorSession
from rig.sim.device_twin import DeviceTwin
from rig.sim.load import ProgrammedLoad
from rig.sim.power import DevicePower
from rig.sim.power_analyser import PowerAnalyserModel
from rig.sim.scpi import ScpiSession
from rig.sim.timeline import CurrentTimeline
from rig.sim.transport import Connection, IoLoop, LineServer, PtyChannel, UdpChannel
from rig.sim.world import Emission, World, WorldStall

log = logging.getLogger(__name__)

COUNTER_WAIT_LIMIT_S = 10.0
FREE_RUNNING_TICK_S = 0.05


@dataclass
class PendingRun:
    """A RUN waiting until the twin has consumed everything the rig says it sent."""

    session: ControlSession
    target_s: float
    consumed: dict[str, int]
    asked_at: float = field(default_factory=time.monotonic)


class Twin:
    """Everything simulated on one bench, served on real transports."""

    def __init__(self, bench: BenchProfile, seed: int, start_s: float, host: str = "127.0.0.1",
                 device: DeviceProfile | None = None):
        self.bench = bench
        self.loop = IoLoop()
        self.world = World(start_s, seed)
        self.host = host
        self.lock_holder: ControlSession | None = None
        self.pending: PendingRun | None = None
        self.quit = False
        self.tied = False  # launched by a bench (`--tied`): ends when that bench's control connection drops
        self.speed = 1.0
        self._free_anchor = (time.monotonic(), start_s)
        self.channels: dict[str, PtyChannel | UdpChannel] = {}
        self.servers: dict[str, LineServer] = {}

        self.timelines = {1: CurrentTimeline(start_s), 2: CurrentTimeline(start_s)}
        self.attenuator = AttenuatorModel(serial=f"{11906000000 + seed}")
        self.power_analyser = PowerAnalyserModel(self.world, self.timelines, serial=f"MY5600{seed:04d}")
        self.power = DevicePower(self.world, self.timelines)
        self.load = ProgrammedLoad(self.world, self.power)
        self.power_analyser.channels[1].listeners.append(self.load.on_supply)
        self.device: DeviceTwin | None = None
        if device is not None and bench.twin is not None:
            self.device = DeviceTwin(self, bench.twin, device)
            self.power_analyser.channels[1].listeners.append(self.device.on_supply)

        control_port = bench.twin.control_port if bench.twin else 0
        self.servers["control"] = LineServer(
            "control", self.loop, lambda conn: ControlSession(self, conn), host, control_port
        )
        if bench.instruments.attenuator is not None:
            self.servers["attenuator"] = LineServer(
                "attenuator",
                self.loop,
                lambda conn: AttenuatorSession(self.attenuator, conn),
                host,
                terminator=b"\r\n",
                max_line=attenuator.MAX_LINE_BYTES,
            )
        if bench.instruments.supply is not None:
            self.servers["supply"] = LineServer(
                "supply", self.loop, lambda conn: ScpiSession(self.power_analyser, conn), host,
                max_line=scpi.MAX_LINE_BYTES,
            )

    # ---- endpoints -----------------------------------------------------------------------------
    def add_pty(self, name: str) -> PtyChannel:
        channel = PtyChannel(name, self.loop, self._on_output)
        self.channels[name] = channel
        return channel

    def add_udp(self, name: str) -> UdpChannel:
        channel = UdpChannel(name, self.loop, self._on_output, self.host)
        self.channels[name] = channel
        return channel

    def endpoints(self) -> dict:
        control = self.servers["control"]
        return {
            "control": f"{control.host}:{control.port}",
            "instruments": {name: server.visa_resource() for name, server in self.servers.items() if name != "control"},
            "serial": {name: ch.path for name, ch in self.channels.items() if isinstance(ch, PtyChannel)},
            "udp": {
                name: f"{ch.address[0]}:{ch.address[1]}"
                for name, ch in self.channels.items()
                if isinstance(ch, UdpChannel)
            },
            "seed": self.world.seed,
            "start": self.world.start_s,
        }

    def _on_output(self, channel: str, count: int) -> None:
        self.world.emit(channel, count)

    # ---- lockstep ------------------------------------------------------------------------------
    @property
    def lockstep(self) -> bool:
        return self.lock_holder is not None

    def take_lock(self, session: ControlSession) -> str:
        if self.lock_holder not in (None, session):
            return "ERR the clock is held by another bench"
        self.lock_holder = session
        return "OK"

    def free_lock(self, session: ControlSession) -> None:
        if self.lock_holder is session:
            self.lock_holder = None
            self.pending = None
            for channel in self.channels.values():
                channel.close_for_counting()
            self._free_anchor = (time.monotonic(), self.world.now)

    def request_run(self, session: ControlSession, target_s: float, consumed: dict[str, int]) -> None:
        if self.lock_holder is not session:
            session.reply("ERR RUN needs the clock: send SIM:LOCK first")
            return
        unknown = [name for name in consumed if name not in self.channels]
        if unknown:
            session.reply(f"ERR unknown channel {unknown[0]}")
            return
        self.pending = PendingRun(session, target_s, consumed)
        self._serve_pending()

    def _serve_pending(self) -> None:
        run = self.pending
        if run is None:
            return
        missing = {
            name: (count, self.channels[name].received_total)
            for name, count in run.consumed.items()
            if self.channels[name].received_total < count
        }
        if missing:
            if time.monotonic() - run.asked_at > COUNTER_WAIT_LIMIT_S:
                self.pending = None
                detail = ", ".join(f"{n}: sent {want}, received {got}" for n, (want, got) in missing.items())
                run.session.reply(f"ERR input never arrived ({detail})")
            return
        self.pending = None
        for channel in self.channels.values():
            channel.deliver()
        try:
            emitted = self.world.run(run.target_s)
        except WorldStall as error:
            run.session.reply(f"ERR {error}")
            return
        run.session.reply(format_stop(self.world.now, emitted))

    # ---- main loop -----------------------------------------------------------------------------
    def serve(self, locked_until_connected: bool = False, speed: float = 1.0) -> None:
        """Serve until SIM:QUIT; free-running unless a bench holds the clock."""
        self.speed = speed
        waiting_for_master = locked_until_connected
        while not self.quit:
            if self.lockstep:
                waiting_for_master = False
                self.loop.poll(0.2 if self.pending is None else 0.001)
                self._serve_pending()
            elif waiting_for_master:
                self.loop.poll(0.2)
                self._free_anchor = (time.monotonic(), self.world.now)
            else:
                self._free_run_step()

    def _free_run_step(self) -> None:
        wall0, world0 = self._free_anchor
        target = world0 + (time.monotonic() - wall0) * self.speed
        for channel in self.channels.values():
            channel.deliver()
        while self.world.now < target:
            self.world.run(target)
        next_event = self.world.env.peek()
        timeout = min(FREE_RUNNING_TICK_S, max((next_event - self.world.now) / self.speed, 0.0))
        self.loop.poll(timeout)

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        for channel in self.channels.values():
            channel.close()


def format_stop(time_s: float, emitted: list[Emission]) -> str:
    """RUN's answer: the stop time, then `channel=count` per emission in emission order."""
    return " ".join([repr(time_s), *(f"{e.channel}={e.count}" for e in emitted)])


class ControlSession:
    """The control port's line protocol (SCPI-style)."""

    def __init__(self, twin: Twin, connection: Connection):
        self.twin = twin
        self.connection = connection

    def reply(self, text: str) -> None:
        self.connection.send(text)

    def on_close(self) -> None:
        if self.twin.tied and self.twin.lock_holder is self:
            self.twin.quit = True  # the bench that launched us went away holding the clock
        self.twin.free_lock(self)

    def on_overrun(self) -> None:
        self.reply("ERR line too long")

    def on_line(self, line: str) -> None:
        verb, _, rest = line.partition(" ")
        verb = verb.upper()
        handler = {
            "*IDN?": lambda: f"Rig,Twin,{self.twin.bench.name},seed {self.twin.world.seed}",
            "SIM:TIME?": lambda: repr(self.twin.world.now),
            "SIM:LOCK": lambda: self.twin.take_lock(self),
            "SIM:FREE": self._free,
            "SIM:ENDP?": lambda: json.dumps(self.twin.endpoints()),
            "SIM:OPEN": lambda: self._open(rest.strip(), True),
            "SIM:CLOSE": lambda: self._open(rest.strip(), False),
            "SIM:LOAD": lambda: self._load(rest),
            "SIM:NET:LOG?": lambda: self._device().network_log(int(rest or 0)),
            "SIM:CELL": lambda: self._device().switch_cell(rest),
            "SIM:PLATFORM": lambda: self._device().set_platform(rest.strip()),
            "SIM:STIM": lambda: self._device().stimulate(rest),
            "SIM:QUIT": self._quit,
            "SIM:FAULT": lambda: self._fault(rest),
            "SIM:FAULT?": lambda: self._faults(),
            "RUN": lambda: self._run(rest),
        }.get(verb)
        if handler is None:
            self.reply(f"ERR unknown command {verb[:40]}")
            return
        try:
            answer = handler()
        except (ValueError, IndexError, KeyError, OverflowError) as error:
            answer = f"ERR {verb}: {error}"
        except Exception as error:  # noqa: BLE001 - last resort: the twin stays up and says what went wrong
            log.exception("control command %r raised", line[:80])
            answer = f"ERR {verb}: internal error {type(error).__name__}: {error}"
        if answer is not None:
            self.reply(answer)

    def _device(self) -> DeviceTwin:
        if self.twin.device is None:
            raise ValueError("this twin simulates no device (start it with --device)")
        return self.twin.device

    def _free(self) -> str:
        self.twin.free_lock(self)
        return "OK"

    def _quit(self) -> str:
        self.twin.quit = True
        return "OK"

    def _open(self, name: str, is_open: bool) -> str:
        channel = self.twin.channels.get(name)
        if channel is None:
            return f"ERR unknown channel {name!r}; known: {', '.join(self.twin.channels) or 'none'}"
        if is_open:
            channel.open_for_counting()
        else:
            channel.close_for_counting()
        return "OK"

    def _ports(self) -> dict:
        """Every port a fault can be injected on: instrument servers, ptys and UDP channels."""
        servers = {name: server for name, server in self.twin.servers.items() if name != "control"}
        return {**servers, **self.twin.channels}

    def _fault(self, text: str) -> str:
        name, _, kind = text.replace(",", " ").strip().partition(" ")
        port = self._ports().get(name)
        if port is None:
            raise ValueError(f"unknown port {name!r}; known: {', '.join(self._ports()) or 'none'}")
        port.set_fault(kind)
        log.warning("fault injected on %s: %s", name, kind.strip().upper())
        return "OK"

    def _faults(self) -> str:
        return json.dumps({name: port.fault for name, port in self._ports().items()})

    def _load(self, text: str) -> str:
        values = [float(v) for v in text.replace(",", " ").split()]
        if len(values) % 2:
            raise ValueError("expected pairs of <time_s>,<amps>")
        self.twin.load.program(list(zip(values[0::2], values[1::2], strict=True)))
        return "OK"

    def _run(self, text: str) -> None:
        words = text.split()
        if not words:
            raise ValueError("expected RUN <target_s> [channel=consumed ...]")
        consumed = {}
        for word in words[1:]:
            name, _, count = word.partition("=")
            consumed[name] = int(count)
        target_s = float(words[0])
        if not math.isfinite(target_s):
            raise ValueError(f"RUN target must be a finite time, got {words[0][:40]!r}")
        self.twin.request_run(self, target_s, consumed)
