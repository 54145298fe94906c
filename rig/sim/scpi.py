"""A small SCPI command-table server for the twin's instruments.

Commands are data: a mnemonic spec in SCPI's long/short form (`[SOURce:]VOLTage[:LEVel]`) mapped to
a handler. Errors go to the instrument's error queue in SCPI form and, as on real instruments, a
query that fails produces no reply.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rig.sim.transport import Connection

Reply = str | bytes | None
Handler = Callable[[list[str]], Reply]

log = logging.getLogger(__name__)

_NODE = re.compile(r"(\[)?:?([A-Za-z*][A-Za-z0-9]*)(\])?")
_CHANNEL_LIST = re.compile(r"\(@\s*([0-9]+(?:\s*:\s*[0-9]+)?(?:\s*,\s*[0-9]+(?:\s*:\s*[0-9]+)?)*)\s*\)")
MAX_LINE_BYTES = 16384  # the instrument's input buffer: a longer program message is an overrun (-363)


class ScpiError(Exception):
    """An SCPI error: goes to the error queue as `<code>,"<message>"`."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool


def _parse_spec(spec: str) -> tuple[tuple[_Node, ...], bool]:
    query = spec.endswith("?")
    body = spec[:-1] if query else spec
    nodes = []
    for match in _NODE.finditer(body):
        word = match.group(2)
        short = "".join(ch for ch in word if ch.isupper() or ch.isdigit() or ch == "*") or word.upper()
        nodes.append(_Node(short.upper(), word.upper(), match.group(1) == "["))
    return tuple(nodes), query


def _matches(nodes: tuple[_Node, ...], tokens: list[str]) -> bool:
    if not nodes:
        return not tokens
    head = nodes[0]
    if tokens and tokens[0] in (head.short, head.long) and _matches(nodes[1:], tokens[1:]):
        return True
    return head.optional and _matches(nodes[1:], tokens)


def split_arguments(text: str) -> list[str]:
    """Split SCPI parameters on commas outside parentheses and quotes."""
    args: list[str] = []
    depth = 0
    quoted = False
    current = []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    tail = "".join(current).strip()
    if tail or args:
        args.append(tail)
    return args


def channel_list(arg: str, highest: int) -> list[int]:
    """Parse an SCPI channel list `(@1)`, `(@1,2)` or `(@1:3)` of channels 1..`highest`.

    Every bound is checked before a range is expanded, so `(@1:100000000000)` is an error, not a list.
    """
    text = arg.strip()
    if not text.startswith("(@"):
        raise ScpiError(-104, "Data type error; expected a channel list like (@1)")
    match = _CHANNEL_LIST.fullmatch(text)
    if not match:
        raise ScpiError(-102, f"Syntax error; channel list {text[:40]!r}")
    channels: list[int] = []
    for part in match.group(1).split(","):
        first, _, last = part.partition(":")
        bounds = [text.strip() for text in (first, last or first)]
        for bound in bounds:
            if len(bound) > 9 or not 1 <= int(bound) <= highest:
                raise ScpiError(-222, f"Data out of range; channel {bound[:12]} (channels 1..{highest})")
        low, high = (int(bound) for bound in bounds)
        step = 1 if high >= low else -1
        channels.extend(range(low, high + step, step))
    return channels


def number(arg: str, name: str) -> float:
    """Parse an SCPI numeric parameter (MIN/MAX are handled by the caller)."""
    if not arg.strip():
        raise ScpiError(-109, f"Missing parameter; {name}")
    try:
        value = float(arg)
    except ValueError:
        raise ScpiError(-104, f"Data type error; {name} must be a number, got {arg[:40]!r}") from None
    if not math.isfinite(value):
        raise ScpiError(-222, f"Data out of range; {name} must be finite, got {arg[:40]!r}")
    return value


def boolean(arg: str) -> bool:
    """Parse an SCPI boolean (ON|OFF|1|0)."""
    value = arg.strip().upper()
    if value in ("ON", "1"):
        return True
    if value in ("OFF", "0"):
        return False
    raise ScpiError(-104, f"Data type error; expected ON|OFF|1|0, got {arg[:40]!r}")


class ScpiInstrument:
    """Base of a twin instrument: a command table, an error queue and `*IDN?`/`SYST:ERR?`/`*CLS`.

    The queue holds ERROR_QUEUE_DEPTH errors; when it is full the last one becomes -350 (queue
    overflow) and later errors are lost until the queue is read, as on the N6700.
    """

    idn = "Rig,Twin,0,0"
    ERROR_QUEUE_DEPTH = 20

    def __init__(self) -> None:
        self.errors: deque[tuple[int, str]] = deque()
        self._table: list[tuple[tuple[_Node, ...], bool, Handler]] = []
        self.command("*IDN?", lambda args: self.idn)
        self.command("*CLS", lambda args: self.errors.clear())
        self.command("SYSTem:ERRor[:NEXT]?", self._next_error)

    def command(self, spec: str, handler: Handler) -> None:
        nodes, query = _parse_spec(spec)
        self._table.append((nodes, query, handler))

    def push_error(self, code: int, message: str) -> None:
        """Queue an error; a full queue ends in -350 and drops the rest."""
        if len(self.errors) < self.ERROR_QUEUE_DEPTH - 1:
            self.errors.append((code, message))
        elif len(self.errors) == self.ERROR_QUEUE_DEPTH - 1:
            self.errors.append((-350, "Queue overflow"))

    def _next_error(self, args: list[str]) -> str:
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.popleft()
        return f'{code:+d},"{message}"'

    def execute(self, line: str) -> list[Reply]:
        """Run every `;`-separated command of a program message; return the replies."""
        replies: list[Reply] = []
        for unit in line.split(";"):
            unit = unit.strip()
            if unit:
                reply = self._guarded(unit)
                if reply is not None:
                    replies.append(reply)
        return replies

    def overrun(self) -> None:
        """A program message longer than the input buffer was discarded."""
        self.push_error(-363, f"Input buffer overrun; program message over {MAX_LINE_BYTES} bytes")

    def _guarded(self, unit: str) -> Reply:
        """Run one command; a bug in a handler becomes -300 in the queue, never a dead instrument."""
        try:
            return self._execute_one(unit)
        except Exception:  # noqa: BLE001 - last resort: the instrument keeps serving, the log keeps the trace
            log.exception("command %r raised", unit[:80])
            self.push_error(-300, f"Device-specific error; {unit[:40]!r} failed")
            return None

    def _execute_one(self, unit: str) -> Reply:
        header, _, rest = unit.partition(" ")
        query = header.endswith("?")
        tokens = [t for t in header.rstrip("?").upper().split(":") if t]
        for nodes, is_query, handler in self._table:
            if is_query == query and _matches(nodes, tokens):
                try:
                    return handler(split_arguments(rest))
                except ScpiError as error:
                    self.push_error(error.code, error.message)
                    return None
        self.push_error(-113, f"Undefined header; {header[:40]}")
        return None


class ScpiSession:
    """One connection to an `ScpiInstrument`: lines in, replies out (newline-terminated)."""

    def __init__(self, instrument: ScpiInstrument, connection: Connection):
        self.instrument = instrument
        self.connection = connection

    def on_line(self, line: str) -> None:
        for reply in self.instrument.execute(line):
            if isinstance(reply, bytes):
                self.connection.send(reply + b"\n")
            else:
                self.connection.send(reply)

    def on_overrun(self) -> None:
        self.instrument.overrun()

    def on_close(self) -> None:
        pass
