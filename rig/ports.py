"""Serial ports of the bench (AT direct, AT monitor, maintenance) as stamped line streams.

On the twin the lockstep clock pumps the port: it reads exactly the bytes each RUN answer announced
and stamps them with that answer's time. On hardware a reader thread stamps with the wall clock.
Either way the rig sees `StampedLine`s in order, each with the bench time its last byte arrived.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import serial

from rig.clock import Clock, VirtualClock
from rig.errors import RigFault

READ_LIMIT_S = 10.0


@dataclass(frozen=True)
class StampedLine:
    """One received line (without its terminator) and the bench time its last byte arrived."""

    time_s: float
    channel: str
    text: str


class LineAssembler:
    """Turns stamped byte chunks into lines; CR, LF and CRLF all end a line, empty lines are dropped."""

    def __init__(self, channel: str, sink: Callable[[StampedLine], None]):
        self.channel = channel
        self.sink = sink
        self._partial = bytearray()

    def feed(self, data: bytes, time_s: float) -> None:
        for byte in data:
            if byte in (10, 13):
                if self._partial:
                    text = self._partial.decode("latin-1")
                    self._partial.clear()
                    self.sink(StampedLine(time_s, self.channel, text))
            else:
                self._partial.append(byte)


class SerialLinePort:
    """A serial port (a pty path, /dev/ttyUSB0, COM3, rfc2217://, socket://) read as stamped lines."""

    def __init__(
        self, name: str, url: str, clock: Clock, baudrate: int = 9600, sink: Callable[[StampedLine], None] | None = None
    ):
        self.name = name
        self.clock = clock
        self.lines: deque[StampedLine] = deque()
        self._sink = sink or self.lines.append
        self._assembler = LineAssembler(name, self._sink)
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
        self._assembler.feed(data, time_s)

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
                self._assembler.feed(data, self.clock.now())

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
