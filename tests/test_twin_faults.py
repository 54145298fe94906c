"""Faults injected on the twin's ports (`SIM:FAULT` on its control port) and what the rig's drivers make of them.

A dropped link is reopened and the command re-sent; a frozen, downed or garbling port is InstrumentLost
(a rig fault: the check is broken) naming the instrument, the command and the cause within seconds; a
stalled twin is waited for (the same reply, never a re-sent query) up to its patience; a vanished twin
is given up at once. Real twin processes, real sockets, real ptys.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa

from rig.bench import Bench, TwinProcess
from rig.clock import WallClock
from rig.errors import InstrumentLost, RigFault
from rig.instruments.attenuator import Rc4datAttenuator
from rig.instruments.power import N6705CPowerAnalyser
from rig.instruments.visa import VisaTransport
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model
from rig.sim.transport import IoLoop, PtyChannel, UdpChannel
from rig.twinlink import probe_twin
from tests.test_twin_bad_input import LineClient

ROOT = Path(__file__).resolve().parents[1]
SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
TRY_MS = 300
PROBE_S = 0.5
PATIENCE_MS = 1000
BUDGET_S = 3.0  # three tries of TRY_MS, their probes and the back-off, with room for a loaded machine


@pytest.fixture(scope="module")
def twin() -> Iterator[TwinProcess]:
    process = TwinProcess(SIM_BENCH, seed=1, start=None)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def visa() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")


@pytest.fixture
def control(twin: TwinProcess) -> Iterator[LineClient]:
    client = LineClient(twin.endpoints["control"])
    yield client
    for port in ("supply", "attenuator"):
        client.query(f"SIM:FAULT {port} NONE")
    client.close()


def transport(twin: TwinProcess, visa: pyvisa.ResourceManager, name: str, termination: str = "\n") -> VisaTransport:
    """A transport set up as the bench sets up a twin's instrument, with the budget shrunk for the test."""
    host, port = twin.endpoints["control"].rsplit(":", 1)
    return VisaTransport(visa, twin.endpoints["instruments"][name], name, termination, timeout_ms=TRY_MS,
                         liveness=lambda: probe_twin(host, int(port), PROBE_S), patience_ms=PATIENCE_MS)


@pytest.fixture
def supply(twin, visa) -> Iterator[N6705CPowerAnalyser]:
    driver = N6705CPowerAnalyser(transport(twin, visa, "supply"), WallClock())
    driver.transport.query("*CLS;*OPC?")
    yield driver
    driver.close()


@pytest.fixture
def rc4dat(twin, visa) -> Iterator[Rc4datAttenuator]:
    driver = Rc4datAttenuator(transport(twin, visa, "attenuator", "\r\n"))
    yield driver
    driver.close()


def lost_within(budget_s: float, pattern: str, action) -> InstrumentLost:
    began = time.monotonic()
    with pytest.raises(InstrumentLost, match=pattern) as lost:
        action()
    assert time.monotonic() - began < budget_s
    assert isinstance(lost.value, RigFault)  # a rig fault: the check is broken, never failed
    return lost.value


def test_a_dropped_supply_link_is_reopened_and_the_setting_sent_again(supply, control):
    supply.set_voltage(3.3)
    assert control.query("SIM:FAULT supply DROP") == "OK"
    assert '"supply": "NONE"' in control.query("SIM:FAULT?")  # a drop is one reset, not a state
    supply.set_voltage(3.0)
    assert supply.voltage_v() == pytest.approx(3.0)


def test_a_frozen_supply_is_lost_in_seconds_naming_command_and_cause_then_recovers(supply, control):
    assert control.query("SIM:FAULT supply FREEZE") == "OK"
    lost_within(BUDGET_S, r"^supply \(TCPIP0::.*\) lost during 'MEAS:CURR\? \(@1\)' after 3 tries: .*"
                          r"twin answers on its control port: the supply port is stalled",
                supply.measure_current_a)
    assert control.query("SIM:FAULT supply NONE") == "OK"
    assert supply.identity().startswith("Keysight")


def test_a_supply_that_is_down_is_lost_in_seconds_then_comes_back(supply, control):
    assert control.query("SIM:FAULT supply DOWN") == "OK"
    lost_within(BUDGET_S, r"supply .* lost during 'OUTP OFF,\(@1\)' after 3 tries", lambda: supply.set_output(False))
    assert control.query("SIM:FAULT supply NONE") == "OK"
    supply.set_output(False)
    assert supply.output_on() is False


def test_garbled_replies_are_retried_then_lost_naming_the_reply(supply, control):
    assert control.query("SIM:FAULT supply GARBLE") == "OK"
    lost_within(BUDGET_S, r"supply .* lost during 'VOLT\? \(@1\)' after 3 tries: garbled reply '\?+'",
                supply.voltage_v)
    assert control.query("SIM:FAULT supply NONE") == "OK"
    assert supply.voltage_v() >= 0


def test_a_frozen_attenuator_is_lost_in_seconds(rc4dat, control):
    assert control.query("SIM:FAULT attenuator FREEZE") == "OK"
    lost_within(BUDGET_S, r"attenuator .* lost during ':CHAN:1:SETATT=20'", lambda: rc4dat.set_attenuation(1, 20))
    assert control.query("SIM:FAULT attenuator NONE") == "OK"
    assert rc4dat.set_attenuation(1, 20) == 20


@pytest.mark.parametrize(
    "pause_s",
    [TRY_MS / 1000 + 0.1, TRY_MS / 1000 + PROBE_S + 0.2],
    ids=["resumed-while-probed", "resumed-after-the-probe-gave-up"],
)
def test_a_stalled_twin_is_waited_for_without_resending_the_query(twin, supply, pause_s):
    supply.transport.write("NO:SUCH:ONE")
    supply.transport.write("NO:SUCH:TWO")
    os.kill(twin.process.pid, signal.SIGSTOP)
    resume = threading.Timer(pause_s, os.kill, (twin.process.pid, signal.SIGCONT))
    resume.start()
    try:
        first = supply.transport.query("SYST:ERR?")
    finally:
        resume.join()
    assert first.startswith("-113") and "ONE" in first
    assert "TWO" in supply.transport.query("SYST:ERR?")  # the first query ran once: the second error is still there


def test_a_twin_stalled_past_its_patience_is_lost_without_retries(twin, supply):
    os.kill(twin.process.pid, signal.SIGSTOP)
    try:
        error = lost_within(BUDGET_S, r"supply .* lost during 'VOLT\? \(@1\)': neither the supply port nor the "
                                      r"twin's control port answered .*: the twin is stalled", supply.voltage_v)
    finally:
        os.kill(twin.process.pid, signal.SIGCONT)
    assert "tries" not in str(error)
    assert supply.identity().startswith("Keysight")  # the next command reopens; the stale reply never answers it


def test_a_vanished_twin_is_given_up_at_once(visa):
    gone = TwinProcess(SIM_BENCH, seed=1, start=None)
    try:
        driver = N6705CPowerAnalyser(transport(gone, visa, "supply"), WallClock())
        gone.process.kill()
        gone.process.wait()
        # a reset seen at once makes the reconnects fail (refused); a silent close makes the probe find it gone
        lost_within(BUDGET_S, r"supply .* lost during 'VOLT\? \(@1\)'.*(the twin is gone|Connection refused)",
                    driver.voltage_v)
    finally:
        gone.stop()


def test_a_bench_reaches_safe_state_in_seconds_when_an_instrument_freezes(sim_bench_path):
    profile = load_model(sim_bench_path, BenchProfile)
    profile = profile.model_copy(update={"twin": profile.twin.model_copy(update={"control_timeout_s": 0.5})})
    with Bench(profile, sim_bench_path) as bench:
        bench.twin_link.query("SIM:FAULT attenuator FREEZE")
        bench.supply.set_output(True)
        began = time.monotonic()
        problems = bench.safe_state()
        assert time.monotonic() - began < 5.0
        assert len(problems) == 1 and problems[0].startswith("attenuator: attenuator")
        assert bench.supply.output_on() is False  # the other instrument was still made safe
        bench.twin_link.query("SIM:FAULT attenuator NONE")


# ---- ptys and UDP channels: the same faults on the other ports -----------------------------------------
@pytest.fixture
def loop() -> IoLoop:
    return IoLoop()


def read_pty(fd: int, loop: IoLoop, expected: int, deadline_s: float = 0.5) -> bytes:
    """What arrives on the rig's side of a pty: `expected` bytes, or whatever came by the deadline."""
    received = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and len(received) < expected:
        loop.poll(0.02)
        with contextlib.suppress(BlockingIOError):
            received += os.read(fd, 4096)
    return received


def test_a_garbling_pty_delivers_question_marks_of_the_same_length_and_a_frozen_one_nothing(loop):
    channel = PtyChannel("mon", loop, lambda name, count: None)
    rig_side = os.open(channel.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        channel.set_fault("GARBLE")
        channel.write(b"+NNMI:2,AB\r\n", lockstep=False)
        assert read_pty(rig_side, loop, 12) == b"??????????\r\n"
        channel.set_fault("FREEZE")
        channel.write(b"OK\r\n", lockstep=False)
        os.write(rig_side, b"AT\r")
        assert read_pty(rig_side, loop, 1, deadline_s=0.2) == b""
        assert channel.received_total == 0  # never counted: a lockstep RUN says the input never arrived
        with pytest.raises(ValueError, match="port 'mon' takes NONE|FREEZE|GARBLE, not 'DROP'"):
            channel.set_fault("DROP")
    finally:
        os.close(rig_side)
        channel.close()


def test_a_frozen_udp_channel_loses_datagrams_both_ways_and_a_garbling_one_corrupts_them(loop):
    channel = UdpChannel("udp", loop, lambda name, count: None)
    platform = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    platform.bind(("127.0.0.1", 0))
    platform.settimeout(0.3)
    try:
        channel.set_fault("GARBLE")
        channel.send(b"\x40\x02", platform.getsockname(), lockstep=False)
        assert platform.recvfrom(100)[0] == b"??"
        channel.set_fault("FREEZE")
        channel.send(b"\x40\x02", platform.getsockname(), lockstep=False)
        platform.sendto(b"\x40\x01", channel.address)
        loop.poll(0.2)
        assert channel.received_total == 0
        with pytest.raises(TimeoutError):
            platform.recvfrom(100)
    finally:
        platform.close()
        channel.close()
