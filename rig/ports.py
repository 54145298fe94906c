"""Serial ports of the bench (AT direct, AT monitor, maintenance) as stamped line streams.

On the twin the lockstep clock pumps the port: it reads exactly the bytes each RUN answer announced
and stamps them with that answer's time. On hardware a reader thread stamps with the wall clock.
Either way the rig sees `StampedLine`s in order, each with the bench time its last byte arrived.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import serial

from rig.clock import Clock, VirtualClock
from rig.errors import RigFault

log = logging.getLogger(__name__)
READ_LIMIT_S = 10.0
LINE_LIMIT_BYTES = 1 << 16  # far over any AT line (a 1358-byte datagram in hex) or maintenance answer
BACKLOG_LINES = 100_000  # lines a port holds for a reader that has not taken them yet (a whole log download)
_TERMINATORS = re.compile(rb"[\r\n]+")


@dataclass(frozen=True, slots=True)
class StampedLine:
    """One received line (without its terminator) and the bench time its last byte arrived.

    A line longer than LINE_LIMIT_BYTES keeps its first LINE_LIMIT_BYTES; `overflow_bytes` counts
    what was cut off, so a transcript shows the cut instead of hiding it.
    """

    time_s: float
    channel: str
    text: str
    overflow_bytes: int = 0


class LineAssembler:
    """Turns stamped byte chunks into lines; CR, LF and CRLF all end a line, empty lines are dropped.

    A line is held in memory up to `limit` bytes; the rest of it, to its terminator, is counted and
    dropped (logged once per line, counted in `overflows`), so a device that never ends a line costs
    at most `limit` bytes.
    """

    def __init__(self, channel: str, sink: Callable[[StampedLine], None], limit: int = LINE_LIMIT_BYTES):
        self.channel = channel
        self.sink = sink
        self.limit = limit
        self.overflows = 0
        self._partial = bytearray()
        self._overflow = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes held for the line not ended yet (never more than `limit`)."""
        return len(self._partial)

    def feed(self, data: bytes, time_s: float) -> None:
        start = 0
        for terminator in _TERMINATORS.finditer(data):
            self._add(data[start : terminator.start()], time_s)
            self._end_line(time_s)
            start = terminator.end()
        self._add(data[start:], time_s)

    def _add(self, chunk: bytes, time_s: float) -> None:
        room = self.limit - len(self._partial)
        self._partial += chunk[:room]
        if len(chunk) > room:
            if not self._overflow:
                self.overflows += 1
                log.warning("%s: a line over %d bytes at %.3f s; the rest of it is dropped up to its end",
                            self.channel, self.limit, time_s)
            self._overflow += len(chunk) - max(room, 0)

    def _end_line(self, time_s: float) -> None:
        if self._partial:
            self.sink(StampedLine(time_s, self.channel, self._partial.decode("latin-1"), self._overflow))
        self._partial.clear()
        self._overflow = 0


class SerialLinePort:
    """A serial port (a pty path, /dev/ttyUSB0, COM3, rfc2217://, socket://) read as stamped lines."""

    def __init__(
        self, name: str, url: str, clock: Clock, baudrate: int = 9600, sink: Callable[[StampedLine], None] | None = None
    ):
        self.name = name
        self.clock = clock
        self.lines: deque[StampedLine] = deque(maxlen=BACKLOG_LINES)
        self.lines_dropped = 0
        self._sink = sink or self._queue
        self.assembler = LineAssembler(name, self._sink)
        self._sent = 0
        self._closed = threading.Event()
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=READ_LIMIT_S)
        except serial.SerialException as error:
            raise RigFault(f"serial port {name} ({url}) cannot be opened: {error}") from None
        self.url = url
        if isinstance(clock, VirtualClock):
            clock.attach(self)
            self._reader = None
        else:
            self._reader = threading.Thread(target=self._read_forever, name=f"serial-{name}", daemon=True)
            self._reader.start()

    # ---- CountedChannel (lockstep) -------------------------------------------------------------
    def sent_total(self) -> int:
        return self._sent

    def take(self, count: int, time_s: float) -> None:
        data = self.port.read(count)
        if len(data) != count:
            raise RigFault(f"serial port {self.name}: the twin announced {count} bytes, {len(data)} arrived")
        self.assembler.feed(data, time_s)

    # ---- hardware ------------------------------------------------------------------------------
    def _read_forever(self) -> None:
        self.port.timeout = 0.1
        while not self._closed.is_set():
            try:
                data = self.port.read(4096)
            except (serial.SerialException, OSError, TypeError):
                if self._closed.is_set():
                    return
                raise
            if data:
                self.assembler.feed(data, self.clock.now())

    def _queue(self, line: StampedLine) -> None:
        """Hold `line` for a reader; past BACKLOG_LINES unread the oldest goes (counted, logged once)."""
        if len(self.lines) == self.lines.maxlen:
            if not self.lines_dropped:
                log.warning("serial port %s: %d lines unread, the oldest are dropped", self.name, self.lines.maxlen)
            self.lines_dropped += 1
        self.lines.append(line)

    # ---- use -----------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send bytes to the device; the count goes into the next RUN so the twin reads them first."""
        self.port.write(data)
        self.port.flush()
        self._sent += len(data)

    def write_line(self, text: str, terminator: str = "\r\n") -> None:
        self.write((text + terminator).encode("latin-1"))

    def close(self) -> None:
        self._closed.set()
        if isinstance(self.clock, VirtualClock):
            self.clock.detach(self)
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        self.port.close()
