"""Bounded records: what the rig receives over a month unattended costs a bounded amount of memory, and a check
that reads past what was dropped is told so (RecordDropped, a rig fault) instead of judging a shortened record.

Real transports throughout: a pty for the serial ports, UDP for the platform, the twin for a meter and a module.
"""

from __future__ import annotations

import os
import socket
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig import ports
from rig.bench import Bench
from rig.clock import WallClock
from rig.codec.reference import ReferenceCodec
from rig.meter_session import MeterSession, reports_of
from rig.module_session import ModuleSession
from rig.platform import Platform
from rig.ports import LINE_LIMIT_BYTES, SerialLinePort
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model
from rig.window import RecordDropped, Window

ROOT = Path(__file__).resolve().parents[1]
SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
METER = ROOT / "profiles" / "devices" / "reference-meter.yaml"
MODULE = ROOT / "profiles" / "devices" / "bare-module.yaml"
DAY_S = 86400.0


def test_a_window_counts_everything_keeps_the_newest_and_refuses_to_read_what_it_dropped() -> None:
    window: Window[int] = Window("numbers", 10)
    for number in range(25):
        window.append(number)
    assert len(window) == 25 and window.dropped == 15 and window.kept() == list(range(15, 25))
    assert window[24] == window[-1] == 24 and window[20:22] == [20, 21] and window[25:] == []
    assert window.since(15) == list(range(15, 25)) and window.index(17, 15) == 17 and window.index(23, -3) == 23
    for read in (lambda: window[:], lambda: window[3], lambda: list(window), lambda: 5 in window,
                 lambda: window.since(14), lambda: window.index(20)):
        with pytest.raises(RecordDropped, match=r"^numbers: item \d+ was dropped \(the record keeps the newest 10"):
            read()


def test_a_window_that_dropped_nothing_reads_like_the_list_it_replaces() -> None:
    window: Window[str] = Window("letters", 100)
    for letter in "abcde":
        window.append(letter)
    assert window == list("abcde") and list(window) == list("abcde") and window[1:-1] == list("bcd")
    assert "c" in window and window.index("d") == 3 and list(reversed(window)) == list("edcba")


BACKLOG_LINES = 2000


@pytest.fixture
def pty_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, SerialLinePort]]:
    """A serial port on a pty (hardware mode: a reader thread, the wall clock), and the pty's device end;
    its backlog cap lowered so that a test reaches it quickly."""
    monkeypatch.setattr(ports, "BACKLOG_LINES", BACKLOG_LINES)
    device, rig_end = os.openpty()
    tty.setraw(rig_end)
    port = SerialLinePort("maintenance", os.ttyname(rig_end), WallClock())
    yield device, port
    port.close()
    os.close(device)
    os.close(rig_end)


def test_an_endless_line_on_a_serial_port_costs_one_line_limit_and_its_cut_is_counted(pty_port) -> None:
    device, port = pty_port
    sent = 0
    for _ in range(32):  # 2 MiB without a terminator
        sent += os.write(device, b"X" * 65536)
    assert WallClock().wait_until(lambda: port.assembler.overflows == 1, 10.0, 0.01)
    os.write(device, b"\r\nOK\r\n")
    assert WallClock().wait_until(lambda: len(port.lines) == 2, 10.0, 0.01)
    cut, ok = port.lines
    assert (len(cut.text), cut.overflow_bytes) == (LINE_LIMIT_BYTES, sent - LINE_LIMIT_BYTES)
    assert (ok.text, ok.overflow_bytes) == ("OK", 0)
    assert port.assembler.pending_bytes == 0


def test_lines_nobody_reads_are_capped_and_the_drop_is_counted(pty_port) -> None:
    device, port = pty_port
    extra = 25
    data = b"".join(b"LINE %d\r\n" % number for number in range(BACKLOG_LINES + extra))
    for start in range(0, len(data), 4096):
        os.write(device, data[start : start + 4096])
    last = f"LINE {BACKLOG_LINES + extra - 1}"
    assert WallClock().wait_until(lambda: port.lines and port.lines[-1].text == last, 10.0, 0.01)
    assert (len(port.lines), port.lines_dropped, port.lines[0].text) == (BACKLOG_LINES, extra, f"LINE {extra}")


def test_the_platform_keeps_the_newest_datagrams_and_a_late_mark_still_reads() -> None:
    with Platform(ReferenceCodec(), WallClock(), seed=1) as platform:
        platform.received.cap = 40
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for number in range(100):
            sender.sendto(b"\xff not coap %d" % number, platform.address)
        assert WallClock().wait_until(lambda: len(platform.received) == 100, 5.0, 0.01)
        sender.close()
        assert len(platform.received.kept()) <= 40 and platform.received[-1].size_bytes == len(b"\xff not coap 99")
        assert all(datagram.error for datagram in platform.received[90:])
        with pytest.raises(RecordDropped, match=r"^the platform's received datagrams: item 0 was dropped"):
            platform.received[0:]


@pytest.fixture(scope="module")
def month_on_the_twin() -> Iterator[MeterSession]:
    """The reference meter reporting for 40 days with its records capped far below a month's traffic."""
    with Bench(load_model(SIM_BENCH, BenchProfile), SIM_BENCH, device_path=METER) as bench, MeterSession(
        bench, load_model(METER, DeviceProfile)
    ) as meter:
        meter.monitor.lines.cap = 200
        for record in (meter.platform.received, meter.platform.uplinks, meter.platform.tickets):
            record.cap = 12
        bench.attenuator.set_all(95)
        bench.attenuator.set_attenuation(1, 20)
        meter.power_on()
        bench.clock.sleep(40 * DAY_S)
        yield meter


def test_a_month_of_monitor_lines_and_uplinks_stays_within_the_caps(month_on_the_twin: MeterSession) -> None:
    meter = month_on_the_twin
    assert meter.monitor is not None
    assert len(meter.monitor.lines) > 1000 and len(meter.monitor.lines.kept()) <= 200
    assert len(meter.platform.uplinks) > 60 and len(meter.platform.uplinks.kept()) <= 12
    assert len(meter.platform.received.kept()) <= 12 and len(meter.platform.tickets.kept()) <= 12
    assert "earlier lines dropped" in meter.monitor.excerpt().splitlines()[0]


def test_a_check_that_starts_late_reads_from_its_mark_as_before(month_on_the_twin: MeterSession) -> None:
    meter = month_on_the_twin
    assert meter.monitor is not None
    mark = meter.monitor.mark()
    report = meter.wait_for_report(2 * DAY_S)
    assert report is not None and report.message["type"] == "basic_report"
    assert meter.monitor.since(mark) and meter.monitor.lines[mark].index == mark
    assert reports_of(meter, len(meter.platform.uplinks) - 1) == [report]


def test_a_check_that_reads_past_the_cap_is_broken_with_the_reason(month_on_the_twin: MeterSession) -> None:
    meter = month_on_the_twin
    assert meter.monitor is not None
    with pytest.raises(RecordDropped, match=r"^the AT monitor's transcript: item 0 was dropped"):
        meter.monitor.since(0)
    with pytest.raises(RecordDropped, match=r"^the platform's uplinks: item 0 was dropped"):
        reports_of(meter)
    with pytest.raises(RecordDropped, match=r"^the AT monitor's transcript"):
        meter.monitor.wait_for(r"^AT", 60.0, mark=0)


def test_module_replies_stay_whole_while_its_history_drops_old_lines() -> None:
    with Bench(load_model(SIM_BENCH, BenchProfile), SIM_BENCH, device_path=MODULE) as bench:
        module = ModuleSession(bench, load_model(MODULE, DeviceProfile), keep=30)
        try:
            bench.attenuator.set_all(95)
            bench.attenuator.set_attenuation(1, 5)
            module.power_on()
            replies = [module.command("AT+CGMR") for _ in range(12)]
            assert all(reply.ok and reply.lines == replies[0].lines and len(reply.lines) > 3 for reply in replies)
            assert module.history.dropped > 0 and len(module.history.kept()) <= 30
            with pytest.raises(RecordDropped, match=r"^the module's AT history"):
                module.history[0:]
        finally:
            module.close()
