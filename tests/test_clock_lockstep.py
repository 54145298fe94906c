"""The lockstep time protocol between the rig's clock and the twin, over real TCP and real ptys.

A small echo device inside the twin answers each line after a processing delay, mirroring it on a
second (monitor) port first, and emits a tick every minute on its own: enough to show drain before
advance, exact stamping, cross-channel ordering and input counters.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.clock import VirtualClock
from rig.errors import TwinError
from rig.ports import SerialLinePort, StampedLine
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model
from rig.sim.twin import Twin
from rig.sim.world import World, WorldStall
from rig.twinlink import TwinLink

START_S = 1_767_542_400.0
REPLY_DELAY_S = 0.25
TICK_S = 60.0
SIM_BENCH = Path(__file__).resolve().parents[1] / "profiles" / "benches" / "sim.yaml"


class EchoDevice:
    """Answers `OK <line>` after REPLY_DELAY_S, mirroring it on the monitor first; ticks every minute."""

    def __init__(self, twin: Twin):
        self.twin = twin
        self.at = twin.add_pty("at")
        self.monitor = twin.add_pty("mon")
        self.at.consumer = self.on_input
        self.received = bytearray()
        twin.world.env.process(self.tick())

    def on_input(self, data: bytes) -> None:
        self.received += data
        while b"\n" in self.received:
            line, _, rest = bytes(self.received).partition(b"\n")
            self.received = bytearray(rest)
            self.twin.world.env.process(self.answer(line.strip()))

    def answer(self, line: bytes):
        yield self.twin.world.env.timeout(REPLY_DELAY_S)
        lockstep = self.twin.lockstep
        self.monitor.write(b"saw " + line[:40] + b"\r\n", lockstep)
        self.at.write(b"OK " + str(len(line)).encode() + b"\r\n", lockstep)

    def tick(self):
        env = self.twin.world.env
        while True:
            yield env.timeout(TICK_S)
            self.at.write(b"TICK\r\n", self.twin.lockstep)


@pytest.fixture
def twin() -> Iterator[Twin]:
    bench = load_model(SIM_BENCH, BenchProfile)
    twin = Twin(bench, seed=7, start_s=START_S)
    EchoDevice(twin)
    thread = threading.Thread(target=twin.serve, kwargs={"locked_until_connected": True}, daemon=True)
    thread.start()
    yield twin
    twin.quit = True
    thread.join(timeout=5)
    twin.close()


@pytest.fixture
def link(twin: Twin) -> Iterator[TwinLink]:
    control = twin.servers["control"]
    link = TwinLink(control.host, control.port, timeout_s=10)
    yield link
    link.close()


@pytest.fixture
def ports(twin: Twin, link: TwinLink):
    clock = VirtualClock(link)
    seen: list[StampedLine] = []
    at = SerialLinePort("at", twin.channels["at"].path, clock, sink=seen.append)
    monitor = SerialLinePort("mon", twin.channels["mon"].path, clock, sink=seen.append)
    yield clock, at, seen
    at.close()
    monitor.close()


def test_clock_starts_at_the_twins_virtual_start(ports) -> None:
    clock, _, _ = ports
    assert clock.now() == START_S


def test_reply_is_stamped_with_the_twins_event_time_and_monitor_line_comes_first(ports) -> None:
    clock, at, seen = ports
    at.write_line("AT+CGMR")
    assert clock.wait_until(lambda: any(line.text.startswith("OK") for line in seen), timeout_s=10)
    assert [(line.channel, line.text) for line in seen] == [("mon", "saw AT+CGMR"), ("at", "OK 7")]
    assert {line.time_s for line in seen} == {START_S + REPLY_DELAY_S}
    assert clock.now() == START_S + REPLY_DELAY_S


def test_sleep_fast_forwards_and_every_spontaneous_line_carries_its_own_time(ports) -> None:
    clock, _, seen = ports
    clock.sleep(3600)
    assert clock.now() == START_S + 3600
    ticks = [line.time_s for line in seen if line.text == "TICK"]
    assert ticks == [START_S + TICK_S * k for k in range(1, 61)]


def test_wait_until_gives_up_at_its_virtual_deadline(ports) -> None:
    clock, _, _ = ports
    assert clock.wait_until(lambda: False, timeout_s=30) is False
    assert clock.now() == START_S + 30


def test_rig_side_deadline_is_a_run_target(ports) -> None:
    clock, _, _ = ports
    fired: list[float] = []
    clock.call_at(START_S + 12.5, lambda: fired.append(clock.now()))
    clock.sleep(20)
    assert fired == [START_S + 12.5]


def test_twin_consumes_everything_the_rig_sent_before_time_moves(ports) -> None:
    clock, at, seen = ports
    payload = "X" * 100_000
    at.write_line(payload)
    assert clock.wait_until(lambda: any(line.text.startswith("OK") for line in seen), timeout_s=10)
    assert [line.text for line in seen if line.channel == "at"] == [f"OK {len(payload)}"]
    assert seen[-1].time_s == START_S + REPLY_DELAY_S


def test_a_second_bench_cannot_take_a_held_clock(ports, twin: Twin) -> None:
    control = twin.servers["control"]
    other = TwinLink(control.host, control.port, timeout_s=5)
    try:
        with pytest.raises(TwinError, match="held by another bench"):
            other.query("SIM:LOCK")
        with pytest.raises(TwinError, match="SIM:LOCK first"):
            other.query(f"RUN {START_S + 1!r}")
    finally:
        other.close()


def test_run_naming_an_unknown_channel_is_refused(ports, link: TwinLink) -> None:
    with pytest.raises(TwinError, match="unknown channel"):
        link.query(f"RUN {START_S + 1!r} nosuch=3")


def test_hung_twin_is_a_rig_fault_not_a_hang() -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        link = TwinLink("127.0.0.1", silent.getsockname()[1], timeout_s=0.3)
        with pytest.raises(TwinError, match="did not answer"):
            link.query("SIM:TIME?")
        link.close()
    finally:
        silent.close()


def test_world_refuses_a_zero_delay_loop() -> None:
    world = World(START_S, seed=1)

    def spin():
        while True:
            yield world.env.timeout(0)

    world.env.process(spin())
    with pytest.raises(WorldStall, match="zero-delay loop"):
        world.run(START_S + 1)


def test_world_stops_at_the_first_instant_that_emits() -> None:
    world = World(START_S, seed=1)

    def talker():
        yield world.env.timeout(5)
        world.emit("a", 3)
        world.emit("b", 1)
        world.emit("a", 2)

    world.env.process(talker())
    emitted = world.run(START_S + 100)
    assert world.now == START_S + 5
    assert [(e.channel, e.count) for e in emitted] == [("a", 3), ("b", 1), ("a", 2)]
    assert world.run(START_S + 100) == []
    assert world.now == START_S + 100
