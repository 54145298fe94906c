"""Safe on every exit: the bench leaves the attenuator at the profile's safe value and the supply off.

The benches here connect to a twin this module starts itself (free-running, as `rig sim` by hand),
so the instruments can still be asked, through pyvisa, what state the bench left them in after the
bench (or the whole process holding it) is gone. The bench opens with `twin.launch: false`.

Also: an instrument that drops off the network mid-run becomes InstrumentLost (a rig fault) naming
the instrument and the command, after a bounded number of retries, never a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa

from rig.bench import Bench
from rig.errors import InstrumentLost, RigFault
from rig.instruments.visa import VisaTransport
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
SAFE_DB = 95.0
START_TIMEOUT_S = 20.0


def child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def read_line(process: subprocess.Popen, timeout_s: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    return process.stdout.readline().decode() if ready else ""


@pytest.fixture(scope="module")
def free_twin(sim_bench_path: Path) -> Iterator[dict]:
    """A twin started by hand (free-running); its endpoints. Terminated at the end of the module."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rig.sim", "--bench", str(sim_bench_path), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        line = read_line(process, START_TIMEOUT_S)
        assert line, f"the twin did not start: {process.stderr.read1().decode() if process.poll() else 'no output'}"
        yield json.loads(line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


@pytest.fixture(scope="module")
def connect_profile(free_twin: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bench profile that connects to `free_twin` instead of launching one."""
    port = int(free_twin["control"].rsplit(":", 1)[1])
    path = tmp_path_factory.mktemp("benches") / "connect.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: sim-connect
        clock: virtual
        twin:
          launch: false
          host: 127.0.0.1
          control_port: {port}
          control_timeout_s: 10
        instruments:
          attenuator:
            resource: twin:attenuator
          supply:
            resource: twin:supply
            channel: 1
            voltage_v: 3.6
            current_limit_a: 0.5
        safe_state:
          attenuation_db: {SAFE_DB}
          supply_output: "off"
        """)
    )
    return path


class Inspector:
    """Asks the twin's instruments directly (its own VISA sessions) what state they are in."""

    def __init__(self, endpoints: dict):
        self.instruments = endpoints["instruments"]

    def _session(self, name: str, termination: str):
        # pyvisa's "@py" manager is one per process and a closing bench closes it: take it afresh each time
        manager = pyvisa.ResourceManager("@py")
        return manager.open_resource(
            self.instruments[name], read_termination=termination, write_termination=termination, timeout=2000
        )

    def attenuations_db(self) -> list[float]:
        session = self._session("attenuator", "\r\n")
        try:
            return [float(v) for v in session.query(":ATT?").split()]
        finally:
            session.close()

    def output_on(self) -> bool:
        session = self._session("supply", "\n")
        try:
            return session.query("OUTP? (@1)") == "1"
        finally:
            session.close()

    def unsafe(self) -> None:
        """Put the instruments out of their safe state, as a run in progress would."""
        attenuator = self._session("attenuator", "\r\n")
        supply = self._session("supply", "\n")
        try:
            assert attenuator.query(":SETATT=10") == "1"
            supply.write("OUTP ON,(@1)")
        finally:
            attenuator.close()
            supply.close()

    def assert_safe(self) -> None:
        assert self.attenuations_db() == [SAFE_DB] * 4
        assert not self.output_on()

    def assert_running(self) -> None:
        assert self.attenuations_db() == [10.0] * 4
        assert self.output_on()


@pytest.fixture
def inspector(free_twin: dict) -> Inspector:
    inspector = Inspector(free_twin)
    inspector.unsafe()
    return inspector


def open_bench(profile_path: Path) -> Bench:
    return Bench(load_model(profile_path, BenchProfile), profile_path)


def run_in_progress(bench: Bench, inspector: Inspector) -> None:
    """What a check does before it is interrupted: attenuation down, device powered, time moving."""
    bench.attenuator.set_all(10)
    bench.supply.set_output(True)
    bench.clock.sleep(5.0)
    inspector.assert_running()


def assert_clock_given_back(connect_profile: Path) -> None:
    """The twin free-runs again: another bench can take its clock."""
    with open_bench(connect_profile) as bench:
        assert bench.clock.now() > 0


# ---- exits in this process ----------------------------------------------------------------------
def test_a_normal_close_leaves_the_bench_safe(connect_profile, inspector):
    with open_bench(connect_profile) as bench:
        run_in_progress(bench, inspector)
    inspector.assert_safe()
    assert_clock_given_back(connect_profile)


def test_keyboard_interrupt_inside_the_bench_leaves_it_safe(connect_profile, inspector):
    with pytest.raises(KeyboardInterrupt), open_bench(connect_profile) as bench:
        run_in_progress(bench, inspector)
        raise KeyboardInterrupt
    inspector.assert_safe()
    assert_clock_given_back(connect_profile)


def test_a_crash_inside_the_bench_leaves_it_safe(connect_profile, inspector):
    with pytest.raises(ZeroDivisionError), open_bench(connect_profile) as bench:
        run_in_progress(bench, inspector)
        _ = 1 / 0
    inspector.assert_safe()
    assert_clock_given_back(connect_profile)


def test_a_rig_fault_inside_the_bench_leaves_it_safe(connect_profile, inspector):
    with pytest.raises(RigFault), open_bench(connect_profile) as bench:
        run_in_progress(bench, inspector)
        raise RigFault("calibration impossible")
    inspector.assert_safe()


def test_a_bench_that_fails_to_open_leaves_what_it_opened_safe(connect_profile, inspector, tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    nowhere = f"TCPIP0::127.0.0.1::{listener.getsockname()[1]}::SOCKET"
    listener.close()
    broken = tmp_path / "broken.yaml"
    broken.write_text(connect_profile.read_text().replace("resource: twin:supply", f"resource: {nowhere}"))
    with pytest.raises(InstrumentLost, match="supply"):
        open_bench(broken).open()  # the attenuator opened, then the supply was not there
    assert inspector.attenuations_db() == [SAFE_DB] * 4
    assert_clock_given_back(connect_profile)


# ---- SIGINT to another process holding the bench ------------------------------------------------
CHILD = """
import faulthandler
import signal
import sys
import time
from pathlib import Path

from rig.bench import Bench
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model

faulthandler.register(signal.SIGUSR1)  # the test asks where it hangs, if it does
# a shell's background job starts with SIGINT ignored, and Python keeps it so: Ctrl-C must reach this process
signal.signal(signal.SIGINT, signal.default_int_handler)
path = Path(sys.argv[1])
with Bench(load_model(path, BenchProfile), path) as bench:
    bench.attenuator.set_all(10)
    bench.supply.set_output(True)
    print("ready", flush=True)
    while True:  # a long check: time moves in lockstep until Ctrl-C
        bench.clock.sleep(1.0)
        time.sleep(0.005)
"""


def test_sigint_to_the_process_holding_the_bench_leaves_it_safe(connect_profile, inspector, tmp_path):
    script = tmp_path / "hold_bench.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(connect_profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        assert read_line(child, START_TIMEOUT_S).strip() == "ready", child.stderr.read1().decode()
        time.sleep(0.2)  # let it run a few lockstep rounds
        assert child.poll() is None
        inspector.assert_running()
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=60)  # the safe state takes a moment; a loaded machine much longer
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGUSR1)  # its threads' stacks to stderr, then the finally kills it
            time.sleep(0.5)
            child.kill()
            pytest.fail("the process holding the bench did not end on SIGINT:\n" + child.stderr.read().decode())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        stderr = child.stderr.read().decode()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr, stderr
    assert "safe state not reached" not in stderr
    inspector.assert_safe()
    assert_clock_given_back(connect_profile)


# ---- an instrument lost mid-run ---------------------------------------------------------------------
class LineInstrument:
    """A TCP instrument on loopback answering `ok` to each line, which can drop or vanish on demand."""

    def __init__(self, answer: bool = True):
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.lines: list[str] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def resource(self) -> str:
        return f"TCPIP0::127.0.0.1::{self.port}::SOCKET"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                data = connection.recv(4096)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self.lines.append(line.decode().rstrip("\r"))
                if self.answer:
                    try:
                        connection.sendall(b"ok\r\n" if line.endswith(b"\r") else b"ok\n")
                    except OSError:
                        return

    def drop_connections(self) -> None:
        for connection in self.connections:
            connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self.connections.clear()

    def vanish(self) -> None:
        """Unplugged: the connections drop and nothing listens any more."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close alone would not
        self.listener.close()
        self.drop_connections()


@pytest.fixture
def line_instrument() -> Iterator[LineInstrument]:
    instrument = LineInstrument()
    yield instrument
    instrument.vanish()


@pytest.fixture(scope="module")
def visa_manager() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")


def test_an_instrument_that_vanishes_mid_run_is_lost_naming_instrument_and_command(line_instrument, visa_manager):
    transport = VisaTransport(visa_manager, line_instrument.resource, "supply", timeout_ms=300)
    assert transport.query("*IDN?") == "ok"
    line_instrument.vanish()
    began = time.monotonic()
    with pytest.raises(
        InstrumentLost,
        match=r"^supply \(TCPIP0::127\.0\.0\.1::\d+::SOCKET\) lost during "
        r"'MEAS:CURR\? \(@1\)' after 3 tries",
    ) as lost:
        transport.query("MEAS:CURR? (@1)")
    assert isinstance(lost.value, RigFault)
    assert time.monotonic() - began < 5.0
    transport.close()


def test_a_write_to_an_instrument_that_vanished_is_lost_too(line_instrument, visa_manager):
    transport = VisaTransport(visa_manager, line_instrument.resource, "attenuator", termination="\r\n", timeout_ms=300)
    assert transport.query(":MN?") == "ok"
    line_instrument.vanish()
    began = time.monotonic()
    with pytest.raises(InstrumentLost, match=r"attenuator .* lost during ':SETATT=95'"):
        for _ in range(3):  # the first write after a drop may still be taken by the kernel
            transport.write(":SETATT=95")
            time.sleep(0.05)
    assert time.monotonic() - began < 5.0
    transport.close()


def test_an_instrument_that_stops_answering_is_lost_after_bounded_timeouts(visa_manager):
    silent = LineInstrument(answer=False)
    try:
        transport = VisaTransport(visa_manager, silent.resource, "supply", timeout_ms=200, attempts=3)
        began = time.monotonic()
        with pytest.raises(InstrumentLost, match=r"supply .* lost during 'SYST:ERR\?' after 3 tries"):
            transport.query("SYST:ERR?")
        assert time.monotonic() - began < 3.0
        assert silent.lines.count("SYST:ERR?") == 3  # one try per reconnection, no more
        transport.close()
    finally:
        silent.vanish()


def test_a_dropped_connection_is_reopened_when_the_instrument_is_still_there(line_instrument, visa_manager):
    transport = VisaTransport(visa_manager, line_instrument.resource, "supply", timeout_ms=300)
    assert transport.query("*IDN?") == "ok"
    line_instrument.drop_connections()
    assert transport.query("*IDN?") == "ok"  # within the retry budget, on a new connection
    transport.close()


class UnreachableAfterFirstOpen:
    """A resource manager whose reconnects fail as pyvisa-py's do on an unreachable host."""

    def __init__(self, manager: pyvisa.ResourceManager):
        self.manager = manager
        self.opened = 0

    def open_resource(self, *args, **kwargs):
        self.opened += 1
        if self.opened > 1:
            raise Exception("could not connect: StatusCode.error_timeout")  # what pyvisa-py raises
        return self.manager.open_resource(*args, **kwargs)


def test_an_instrument_whose_reconnects_fail_is_lost_not_a_bare_error(line_instrument, visa_manager):
    manager = UnreachableAfterFirstOpen(visa_manager)
    transport = VisaTransport(manager, line_instrument.resource, "supply", timeout_ms=300)
    assert transport.query("*IDN?") == "ok"
    line_instrument.vanish()
    with pytest.raises(InstrumentLost, match=r"supply .* lost during 'OUTP\? \(@1\)'"):
        transport.query("OUTP? (@1)")
    assert manager.opened == 4  # the first open, then one reconnect per try


def test_an_instrument_that_is_not_there_at_all_is_lost_when_opened(visa_manager):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    manager = UnreachableAfterFirstOpen(visa_manager)
    manager.opened = 1  # every open fails
    with pytest.raises(InstrumentLost, match=r"attenuator .* lost during 'open'"):
        VisaTransport(manager, f"TCPIP0::127.0.0.1::{port}::SOCKET", "attenuator", timeout_ms=200)


def test_closing_one_bench_leaves_another_working(sim_bench_path: Path) -> None:
    """pyvisa's resource manager is shared by the process: one bench's close must not end another's sessions."""
    first = Bench(load_model(sim_bench_path, BenchProfile), sim_bench_path).open()
    try:
        with Bench(load_model(sim_bench_path, BenchProfile), sim_bench_path) as second:
            assert second.attenuator.model == "RC4DAT-6G-95"
        assert first.attenuator.set_attenuation(1, 12.0) == 12.0
        assert first.safe_state() == []
    finally:
        first.close()


def test_a_cut_off_exchange_does_not_answer_the_next_command(sim_bench_path: Path) -> None:
    """Ctrl-C between a query and its reply leaves the reply in flight; the next command must not read it."""
    with Bench(load_model(sim_bench_path, BenchProfile), sim_bench_path) as bench:
        transport = bench.attenuator.transport
        transport._session.write(":MN?")  # the reply is never read, as if interrupted mid-query
        transport._interrupted = True
        assert bench.attenuator.attenuation_db(2) == 0.0
