"""Property-based tests of both ends of the reference maintenance protocol (docs/maintenance-protocol.md).

- The meter's end, through the real pty of a twin's reference meter: any line a tool may send gets exactly
  one documented answer (`OK ...` or `ERR <code> <text>`), the port keeps answering, and a challenge-response
  login captured on the wire and replayed, as sent or mutated, is refused.
- The rig's end: whatever a meter answers to any command, only `MaintenanceError` (and its subclasses)
  escapes the driver. The driver is fed the answers through its line-port interface (`LinePort`), as a
  parser is: the wire is not what is being tested here.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.bench import Bench
from rig.maintenance import MaintenanceError
from rig.maintenance.reference import ReferenceMaintenance, login_response
from rig.ports import SerialLinePort, StampedLine
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
REFERENCE_METER = ROOT / "profiles" / "devices" / "reference-meter.yaml"
PASSWORD = load_model(REFERENCE_METER, DeviceProfile).maintenance.password.get_secret_value()
ANSWER_S = 5.0
REFUSAL = re.compile(r"^ERR (400|401|403|413) \S.*$")
NONCE = re.compile(r"^OK [0-9a-f]{32}$")
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])


class OnPty:
    """The twin meter's maintenance pty, opened by the rig, and the bench clock."""

    def __init__(self, bench: Bench, port: SerialLinePort):
        self.clock = bench.clock
        self.port = port

    def ask(self, data: bytes) -> list[str]:
        """Write `data` (one request line with its terminator) and return the answer's lines."""
        self.port.lines.clear()
        self.port.write(data)
        self.clock.wait_until(lambda: bool(self.port.lines), ANSWER_S)
        self.clock.sleep(0.1)  # nothing more may follow a single-line answer
        lines = [line.text for line in self.port.lines]
        self.port.lines.clear()
        return lines


@pytest.fixture(scope="module")
def meter_port() -> Iterator[OnPty]:
    with Bench(load_model(SIM_BENCH, BenchProfile), SIM_BENCH, device_path=REFERENCE_METER) as bench:
        port = SerialLinePort("maintenance", bench.endpoints["serial"]["maintenance"], bench.clock)
        try:
            bench.supply.set_output(True)
            bench.clock.sleep(1.0)
            yield OnPty(bench, port)
        finally:
            port.close()


def not_a_login(line: bytes) -> bool:
    return line.split(b" ", 1)[0].upper() != b"LOGIN"


REQUEST_LINES = st.binary(min_size=1, max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")).filter(
    lambda b: bool(b) and not_a_login(b)
) | st.sampled_from([b"CHALLENGE", b"challenge x", b"GET NUMBER", b"SET CONFIG a b c", b"UPGRADE mcu 1 zz", b" "])


# ---- the meter's end ----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(line=REQUEST_LINES)
def test_any_line_before_login_gets_one_documented_answer_and_the_port_keeps_answering(meter_port: OnPty,
                                                                                      line: bytes) -> None:
    answer = meter_port.ask(line + b"\r\n")
    assert len(answer) == 1, answer
    assert REFUSAL.match(answer[0]) or NONCE.match(answer[0]), answer
    if not NONCE.match(answer[0]):
        assert answer[0].startswith(("ERR 400", "ERR 401")), answer


def test_a_line_over_the_limit_is_refused_with_413_and_the_next_one_answered(meter_port: OnPty) -> None:
    assert meter_port.ask(b"A" * ((1 << 20) + 1) + b"\r\n") == ["ERR 413 line longer than 1048576 bytes"]
    assert meter_port.ask(b"GET NUMBER\r\n") == ["ERR 401 login required"]


MUTATIONS = st.one_of(
    st.just("as captured"),
    st.integers(0, 63).map(lambda i: f"flip {i}"),
    st.just("upper case"),
    st.just("password in clear"),
)


def mutate(response: str, how: str) -> str:
    if how.startswith("flip "):
        index = int(how.split()[1])
        flipped = "0" if response[index] != "0" else "1"
        return response[:index] + flipped + response[index + 1:]
    return {"as captured": response, "upper case": response.upper(), "password in clear": PASSWORD}[how]


@PROPERTY_SETTINGS
@given(how=MUTATIONS)
def test_a_captured_challenge_response_login_replayed_as_sent_or_mutated_is_refused(meter_port: OnPty,
                                                                                   how: str) -> None:
    challenge = meter_port.ask(b"CHALLENGE\r\n")
    assert NONCE.match(challenge[0]), challenge
    response = login_response(PASSWORD, challenge[0][3:])
    assert meter_port.ask(f"LOGIN {response}\r\n".encode()) == ["OK"]
    assert meter_port.ask(b"LOGOUT\r\n") == ["OK"]
    assert meter_port.ask(f"LOGIN {response}\r\n".encode()) == ["ERR 403 wrong password"]  # no new challenge
    fresh = meter_port.ask(b"CHALLENGE\r\n")[0][3:]
    assert meter_port.ask(f"LOGIN {mutate(response, how)}\r\n".encode()) == ["ERR 403 wrong password"]
    assert fresh != challenge[0][3:]
    right = login_response(PASSWORD, meter_port.ask(b"CHALLENGE\r\n")[0][3:])
    assert meter_port.ask(f"LOGIN {right}\r\n".encode()) == ["OK"]  # two failures, then a good login: no lock-out
    assert meter_port.ask(b"LOGOUT\r\n") == ["OK"]


# ---- the rig's end ------------------------------------------------------------------------------


class ScriptedPort:
    """The driver's `LinePort`: each line written is answered at once with the next scripted answer."""

    def __init__(self, answers: list[list[str]]):
        self.lines: deque[StampedLine] = deque()
        self.answers = deque(answers)

    def write_line(self, text: str, terminator: str = "\r\n") -> None:
        for line in self.answers.popleft() if self.answers else []:
            self.lines.append(StampedLine(0.0, "maintenance", line))


class InstantClock:
    """Answers are already there when the driver waits: one look, no time passes."""

    def now(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        return None

    def wait_until(self, predicate: Callable[[], object], timeout_s: float, poll_s: float = 0.5) -> bool:
        return bool(predicate())


COMMANDS: dict[str, Callable[[ReferenceMaintenance], object]] = {
    "login": lambda d: d.login(PASSWORD), "logout": lambda d: d.logout(), "number": lambda d: d.meter_number(),
    "set number": lambda d: d.set_meter_number(7), "reading": lambda d: d.reading(),
    "period": lambda d: d.report_period_s(), "config": lambda d: d.config(), "config key": lambda d: d.config("k"),
    "set config": lambda d: d.set_config("k", 1), "clock": lambda d: d.clock(), "set clock": lambda d: d.set_clock(1.0),
    "report": lambda d: d.report_now(), "logs": lambda d: d.logs(), "logs days": lambda d: d.logs(1.0),
    "clear": lambda d: d.clear_logs(), "module": lambda d: d.module("AT"), "storage": lambda d: d.storage_on(),
    "upgrade": lambda d: d.upgrade("mcu", "1", b"\x01", b"\x02"), "versions": lambda d: d.versions(),
}
ANSWER_LINE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["OK", "OK ", "OK x", "OK 1", "OK a=1 b", "OK mcu=1", "OK cumulative_l=x reverse_l=1",
                     "ERR", "ERR x y", "ERR 403", "ERR 401 login required", "END", "END 2", "END x", "1|m", "x|m|e|d"]),
    st.builds(lambda k, v: f"OK {k}={v}", st.text(min_size=1, max_size=8), st.text(max_size=8)),
)


@settings(max_examples=400, deadline=None)
@given(command=st.sampled_from(sorted(COMMANDS)), answers=st.lists(st.lists(ANSWER_LINE, max_size=4), max_size=3))
def test_whatever_the_meter_answers_only_maintenance_errors_escape_the_driver(command: str,
                                                                              answers: list[list[str]]) -> None:
    driver = ReferenceMaintenance(ScriptedPort(answers), InstantClock(), secrets=[PASSWORD])
    with contextlib.suppress(MaintenanceError):
        COMMANDS[command](driver)
    assert all(PASSWORD not in line.text for line in driver.transcript)
