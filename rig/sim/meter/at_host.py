"""The MCU's side of the AT dialect: send a command, wait for its final result, hear URCs."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import simpy

FINAL = ("OK", "ERROR")
DEFAULT_TIMEOUT_S = 10.0


@dataclass
class Reply:
    """The lines a command produced, and how it ended (`OK`, `ERROR`, `+CME ERROR: n` or `timeout`)."""

    lines: list[str] = field(default_factory=list)
    final: str = "timeout"

    @property
    def ok(self) -> bool:
        return self.final == "OK"

    @property
    def cme(self) -> int | None:
        if self.final.startswith("+CME ERROR:"):
            return int(self.final.split(":", 1)[1])
        return None

    def value(self, prefix: str) -> str | None:
        """The text after `prefix` on the first line that starts with it."""
        for line in self.lines:
            if line.startswith(prefix):
                return line[len(prefix):]
        return None


class AtHost:
    """One command at a time; lines that arrive outside a command are URCs, queued for the firmware."""

    def __init__(self, env: simpy.Environment, send: Callable[[bytes], None]):
        self.env = env
        self._send = send
        self._partial = bytearray()
        self._reply: Reply | None = None
        self._done: simpy.Event | None = None
        self.urcs = simpy.Store(env)
        self.urc_listeners: list[Callable[[str], None]] = []

    def receive(self, data: bytes) -> None:
        for byte in data:
            if byte in (10, 13):
                if self._partial:
                    self._line(self._partial.decode("latin-1"))
                    self._partial.clear()
            else:
                self._partial.append(byte)

    def _line(self, line: str) -> None:
        if self._reply is not None and self._done is not None and not self._done.triggered:
            if line in FINAL or line.startswith("+CME ERROR:"):
                self._reply.final = line
                self._done.succeed()
                return
            if not self._is_urc(line):
                self._reply.lines.append(line)
                return
        for listener in self.urc_listeners:
            listener(line)
        self.urcs.put(line)

    @staticmethod
    def _is_urc(line: str) -> bool:
        return line.startswith(("+CSCON:", "+NPSMR:", "+NNMI", "+QLWULDATASTATUS:", "+NSMI:", "+NSONMI:",
                                "+CEREG:", "REBOOT_CAUSE", "Neul"))

    def command(self, text: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Generator[simpy.Event, None, Reply]:
        """Send `text` and wait for its final result code (or `timeout_s`)."""
        self._reply, self._done = Reply(), self.env.event()
        self._send((text + "\r\n").encode("latin-1"))
        yield self._done | self.env.timeout(timeout_s)
        reply, self._reply, self._done = self._reply, None, None
        return reply

    def clear_urcs(self) -> None:
        self.urcs.items.clear()

    def wait_urc(self, accept: Callable[[str], bool], timeout_s: float) -> Generator[simpy.Event, None, str | None]:
        """The next URC `accept` likes (earlier ones it does not like are dropped), or None at timeout."""
        deadline = self.env.now + timeout_s
        while self.env.now < deadline:
            get = self.urcs.get()
            result = yield get | self.env.timeout(deadline - self.env.now)
            if get not in result:
                get.cancel()
                return None
            if accept(result[get]):
                return result[get]
        return None
