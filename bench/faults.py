"""The rig against hostile input, injected faults and kills: one table, with zeros where zeros are promised.

    .venv/bin/python bench/faults.py [--lines 2000] [--mutations 1000] [--kills 10] [--seed 1]

Rows:
- bad profiles: the malformed profiles of tests/test_bad_profiles.py, then seeded random mutations of the
  shipped profiles (bytes flipped, lines dropped, doubled or cut); each must load or be refused with
  `ProfileError`, never anything else;
- fuzzed lines: random and mutated lines to every port of a running twin (supply SCPI, attenuator, control,
  the module's AT port); after each batch the port must still answer, and the twin must still run;
- faults injected: `SIM:FAULT` on the supply and the attenuator (DROP, DOWN, FREEZE, GARBLE) under the
  bench's own drivers; each must be recovered (DROP) or end in a rig fault (`broken`, never `failed`) within
  the budget, and the bench must reach its safe state afterwards;
- kills: `rig certify` killed at random moments (SIGINT, SIGTERM, SIGKILL), from bench/kill_sweep.py.
Columns: tried, handled as documented, escaped (an exception or a dead twin), results lost, orphans left.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import serial

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rig.bench import Bench, TwinProcess  # noqa: E402
from rig.errors import RigFault  # noqa: E402
from rig.profiles.bench import BenchProfile  # noqa: E402
from rig.profiles.device import DeviceProfile  # noqa: E402
from rig.profiles.loader import ProfileError, load_model  # noqa: E402
from rig.profiles.plan import load_plan  # noqa: E402

SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
REFERENCE = ROOT / "profiles" / "devices" / "reference-meter.yaml"
BARE_MODULE = ROOT / "profiles" / "devices" / "bare-module.yaml"
PLAN = ROOT / "profiles" / "plans" / "white-paper-2018.yaml"
SHIPPED = {"bench": SIM_BENCH, "device": REFERENCE, "plan": PLAN}
LOADERS = {
    "bench": lambda path: load_model(path, BenchProfile),
    "device": lambda path: load_model(path, DeviceProfile),
    "plan": load_plan,
}
REPLY_TIMEOUT_S = 5.0
UART_BYTES_PER_S = 9600 / 10
"""The module's UART at 9600 baud, 8N1: the twin reads a long line no faster than the wire would carry it."""
FAULT_BUDGET_S = 10.0
"""A bench must call a frozen or dropped instrument lost within this (three 2 s tries and their probes)."""


@dataclass
class Row:
    """One line of the table."""

    what: str
    tried: int = 0
    handled: int = 0
    escaped: int = 0
    lost: int | str = "-"
    orphans: int | str = "-"
    note: str = ""


def _load(kind: str, path: Path, row: Row, examples: list[str]) -> None:
    row.tried += 1
    try:
        LOADERS[kind](path)
    except ProfileError:
        row.handled += 1
        return
    except Exception as error:  # noqa: BLE001 - what escapes is what the table counts
        row.escaped += 1
        examples.append(f"{path.name}: {type(error).__name__}: {error}")
        return
    row.handled += 1  # a mutation that is still a valid profile loads


def bad_profiles(mutations: int, rng: random.Random) -> tuple[Row, list[str]]:
    """The test corpus of malformed profiles, then random mutations of the shipped ones."""
    row, examples = Row("bad profiles"), []
    from tests.test_bad_profiles import CASES  # the corpus written by hand, one case per way a profile breaks

    with tempfile.TemporaryDirectory() as folder:
        for number, case in enumerate(CASES):
            case_folder = Path(folder) / f"case{number}"
            case_folder.mkdir()
            _load(case.kind, case.write(case_folder), row, examples)
        for number in range(mutations):
            kind = rng.choice(sorted(SHIPPED))
            path = Path(folder) / f"mutation{number}.yaml"
            path.write_bytes(_mutate(SHIPPED[kind].read_bytes(), rng))
            _load(kind, path, row, examples)
    row.note = f"{len(CASES)} written by hand, {mutations} mutations"
    return row, examples


def _mutate(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(lines))
        action = rng.choice(("flip", "drop", "double", "cut", "insert"))
        if action == "flip" and lines[where]:
            at = rng.randrange(len(lines[where]))
            lines[where] = lines[where][:at] + bytes([rng.randrange(256)]) + lines[where][at + 1:]
        elif action == "drop":
            del lines[where]
        elif action == "double":
            lines.insert(where, lines[where])
        elif action == "cut":
            lines[where] = lines[where][: rng.randrange(len(lines[where]) + 1)]
        else:
            lines.insert(where, bytes(rng.randrange(32, 127) for _ in range(rng.randint(1, 30))))
        if not lines:
            lines = [b""]
    return b"\n".join(lines)


# ---- fuzzed lines ----------------------------------------------------------------------------------------
SCPI_SEEDS = ["VOLT 3.6,(@1)", "CURR:LIM 0.5,(@1)", "OUTP ON,(@1)", "MEAS:CURR? (@1)", "SENS:SWE:POIN 4096,(@1)",
              "FETC:ARR:CURR? (@1)", "SYST:ERR?", "*RST", "INIT:ACQ (@1)", "SENS:DLOG:TINT 0.001"]
ATTENUATOR_SEEDS = ["CHAN:1:SETATT:30.5", "SAA:40", "ATT?", ":MN?", ":SN?", "CHAN:2:ATT?"]
CONTROL_SEEDS = ["SIM:TIME?", "*IDN?", "SIM:FAULT? ", "SIM:OPEN nosuch", "RUN nan", "SIM:LOAD 1,2,3"]
AT_SEEDS = ["AT", "AT+CGMR", "AT+NUESTATS", "AT+CFUN=1", "AT+NMGS=3,AA0102", "AT+NCONFIG=AUTOCONNECT,TRUE",
            "AT+CGATT?", "AT+CSQ"]
ALPHABET = b"AT+:?*,;()@=\"' 0123456789.-eEnaiINFxMAXONOFF\x00\xff\x7f\r\t\\"


def _fuzz_line(seeds: list[str], rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return bytes(rng.choice(ALPHABET) for _ in range(rng.randint(0, 80)))
    line = bytearray(rng.choice(seeds).encode())
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(line) + 1)
        choice = rng.random()
        if choice < 0.4:
            line[at:at] = bytes([rng.choice(ALPHABET)])
        elif choice < 0.7 and line:
            del line[min(at, len(line) - 1)]
        elif choice < 0.9:
            line[at:at] = str(rng.choice([10**12, -1, 1e308, 0, 65535])).encode()
        else:
            line[at:at] = b"9" * rng.randint(100, 5000)
    return bytes(line).replace(b"\n", b" ")


class _LineSocket:
    """A raw TCP line client: what a terminal program on the bench network could send."""

    def __init__(self, resource: str, terminator: bytes):
        host, port = resource.removeprefix("TCPIP0::").removesuffix("::SOCKET").split("::")
        self.sock = socket.create_connection((host, int(port)), timeout=REPLY_TIMEOUT_S)
        self.terminator = terminator
        self.buffer = b""

    def send(self, line: bytes) -> None:
        self.sock.sendall(line + b"\n")

    def query(self, line: bytes) -> bytes:
        self.send(line)
        while self.terminator not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        reply, _, self.buffer = self.buffer.partition(self.terminator)
        return reply

    def drain(self) -> None:
        self.sock.settimeout(0.05)
        try:
            while self.sock.recv(65536):
                pass
        except (TimeoutError, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(REPLY_TIMEOUT_S)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()


def _alive(process: TwinProcess) -> bool:
    return process.process.poll() is None


def fuzz_port(name: str, process: TwinProcess, lines: int, rng: random.Random) -> Row:
    """`lines` fuzzed lines to one TCP port of the twin, in batches; after each batch the port must answer."""
    seeds, terminator, probe = {
        "supply": (SCPI_SEEDS, b"\n", b"*IDN?"),
        "attenuator": (ATTENUATOR_SEEDS, b"\r\n", b":MN?"),
        "control": (CONTROL_SEEDS, b"\n", b"*IDN?"),
    }[name]
    resource = process.endpoints["control"] if name == "control" else process.endpoints["instruments"][name]
    if name == "control":
        resource = "TCPIP0::" + resource.replace(":", "::") + "::SOCKET"
    row = Row(f"fuzzed lines: {name}")
    client = _LineSocket(resource, terminator)
    batch = 50
    try:
        for start in range(0, lines, batch):
            count = min(batch, lines - start)
            for _ in range(count):
                client.send(_fuzz_line(seeds, rng))
            row.tried += count
            client.drain()
            try:
                answer = client.query(probe)
            except (OSError, ConnectionError):
                client.close()
                client = _LineSocket(resource, terminator)  # a port may reset one connection, never die
                answer = client.query(probe)
            if answer and _alive(process):
                row.handled += count
            else:
                row.escaped += count
    except (OSError, ConnectionError) as error:
        row.escaped += lines - row.handled - row.escaped
        row.note = f"port lost: {error}"
    finally:
        client.close()
    if not _alive(process):
        row.note = f"the twin died (exit {process.process.returncode})"
    return row


def fuzz_at_port(lines: int, rng: random.Random) -> Row:
    """Fuzzed AT lines to a bare module's pty; after each batch `AT` must still be answered `OK`."""
    row = Row("fuzzed lines: module AT")
    with free_running_module() as endpoints:
        port = serial.serial_for_url(endpoints["serial"]["at"], timeout=REPLY_TIMEOUT_S)
        if not any(_at_answers(port, 1.0) for _ in range(10)):  # the module boots after its power-on
            raise RuntimeError("the bare module never answered AT+CGSN=1 after power-on")
        _fuzz_at(port, lines, rng, row)
        port.close()
    return row


def _fuzz_at(port: serial.Serial, lines: int, rng: random.Random, row: Row) -> None:
    batch = 25
    for start in range(0, lines, batch):
        count = min(batch, lines - start)
        written = 0
        for _ in range(count):
            written += port.write(_fuzz_line(AT_SEEDS, rng).replace(b"\r", b" ") + b"\r\n")
        row.tried += count
        if _at_answers(port, REPLY_TIMEOUT_S + written / UART_BYTES_PER_S):
            row.handled += count
        else:
            row.escaped += count


def _at_answers(port: serial.Serial, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    port.write(b"AT+CGSN=1\r\n")  # its answer is unlike any other, so earlier lines' answers cannot stand in
    seen = b""
    while time.monotonic() < deadline:
        seen += port.read(port.in_waiting or 1)
        if b"+CGSN:" in seen:
            return True
    return False


def fuzz_lines(lines: int, rng: random.Random) -> list[Row]:
    process = TwinProcess(SIM_BENCH, seed=1, start=None)
    try:
        rows = [fuzz_port(name, process, lines, rng) for name in ("supply", "attenuator", "control")]
    finally:
        process.stop()
    return [*rows, fuzz_at_port(lines // 4, rng)]


@contextmanager
def free_running_module() -> Iterator[dict]:
    """A bare-module twin on its own (time follows the wall clock), powered from its supply: its endpoints."""
    process = subprocess.Popen([sys.executable, "-m", "rig.sim", "--json", "--device", str(BARE_MODULE)],
                               cwd=ROOT, stdout=subprocess.PIPE)
    try:
        endpoints = json.loads(process.stdout.readline())
        supply = _LineSocket(endpoints["instruments"]["supply"], b"\n")
        supply.send(b"VOLT 3.6,(@1);OUTP ON,(@1)")
        supply.query(b"*OPC?")
        supply.close()
        yield endpoints
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
# ---- injected faults -------------------------------------------------------------------------------------
FAULTS = ("DROP", "DOWN", "FREEZE", "GARBLE")


def inject_faults() -> Row:
    """Each fault on each instrument port under the bench's own drivers, then the bench's safe state."""
    row = Row("faults injected (supply, attenuator)")
    slowest = 0.0
    bench = Bench(load_model(SIM_BENCH, BenchProfile), SIM_BENCH).open()
    try:
        actions = {
            "supply": lambda: bench.supply.set_output(False),
            "attenuator": lambda: bench.attenuator.set_all(30.0),
        }
        for port, action in actions.items():
            for fault in FAULTS:
                row.tried += 1
                bench.twin_link.query(f"SIM:FAULT {port} {fault}")
                began = time.monotonic()
                try:
                    action()
                    outcome = "recovered"
                except RigFault:  # InstrumentLost, or the instrument's error for a garbled reply: `broken`
                    outcome = "lost"
                except Exception:  # noqa: BLE001 - anything else escaped the driver's contract
                    outcome = "escaped"
                took = time.monotonic() - began
                slowest = max(slowest, took)
                bench.twin_link.query(f"SIM:FAULT {port} NONE")
                expected = "recovered" if fault == "DROP" else "lost"
                if outcome == expected and took <= FAULT_BUDGET_S:
                    row.handled += 1
                else:
                    row.escaped += 1
                    row.note += f" {port}/{fault}: {outcome} in {took:.1f} s;"
        problems = bench.safe_state()
        row.escaped += len(problems)
    finally:
        bench.close()
    row.note = (row.note + f" slowest {slowest:.1f} s (budget {FAULT_BUDGET_S:.0f} s); safe state reached").strip()
    return row


# ---- kills -----------------------------------------------------------------------------------------------
def kill_rows(kills: int, seed: int) -> list[Row]:
    """bench/kill_sweep.py's sweep, one row per signal."""
    from kill_sweep import SIGNALS, sweep

    results, _ = sweep(kills, seed, "C1,C16", show=False)
    rows = []
    for how in SIGNALS:
        mine = [result for result in results if result.how == how]
        lost = sum(len(result.lost) for result in mine)
        rows.append(Row(f"kills: {how}", tried=len(mine), handled=len(mine) - sum(bool(r.lost) for r in mine),
                        lost=lost, orphans=sum(r.orphans + r.sockets_left for r in mine),
                        note="then --resume; orphans count twins and their listening sockets"))
    return rows


# ---- the table -------------------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    header = ("", "tried", "handled", "escaped", "results lost", "orphans left", "")
    width = max(len(row.what) for row in rows)
    print(f"{header[0]:<{width}}  {header[1]:>7}  {header[2]:>7}  {header[3]:>7}  {header[4]:>12}  {header[5]:>12}")
    for row in rows:
        print(f"{row.what:<{width}}  {row.tried:>7}  {row.handled:>7}  {row.escaped:>7}  {row.lost!s:>12}  "
              f"{row.orphans!s:>12}  {row.note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2000, help="fuzzed lines per twin port")
    parser.add_argument("--mutations", type=int, default=1000, help="random mutations of the shipped profiles")
    parser.add_argument("--kills", type=int, default=10, help="random kills of `rig certify`")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    began = time.monotonic()
    profile_row, escapes = bad_profiles(args.mutations, rng)
    rows = [profile_row, *fuzz_lines(args.lines, rng), inject_faults()]
    rows.extend(kill_rows(args.kills, args.seed))
    print_table(rows)
    for example in escapes[:10]:
        print(f"  escaped: {example}")
    print(f"wall time {time.monotonic() - began:.1f} s")
    promised_zero = sum(row.escaped for row in rows) + sum(
        value for row in rows for value in (row.lost, row.orphans) if isinstance(value, int))
    return 0 if promised_zero == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
