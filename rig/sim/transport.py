"""The twin's real transports: TCP line servers and pseudo-terminals, served by one selector loop.

Every input is read into a buffer as soon as it arrives, so a large write from the rig never blocks;
every output is queued and written when the peer can take it (a pty holds only a few KB). A line longer
than its server's limit is discarded and reported to the session (an instrument's input buffer overrun).

Every port can be given a fault (`SIM:FAULT` on the control port): DROP resets its open connections
once, DOWN resets every connection until cleared, FREEZE reads and never answers, GARBLE corrupts what
it sends; ptys and UDP channels take FREEZE and GARBLE.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import struct
import tty
from collections.abc import Callable
from typing import Protocol

from rig.platform.coap import is_peer

log = logging.getLogger(__name__)

READ_CHUNK = 65536
FREE_RUNNING_OUTBOX_LIMIT = 1 << 20
QUICKACK = getattr(socket, "TCP_QUICKACK", None)
DEFAULT_MAX_LINE_BYTES = 1 << 20

NONE, DROP, DOWN, FREEZE, GARBLE = "NONE", "DROP", "DOWN", "FREEZE", "GARBLE"
CONNECTION_FAULTS = (NONE, DROP, DOWN, FREEZE, GARBLE)
STREAM_FAULTS = (NONE, FREEZE, GARBLE)


def garble(data: bytes) -> bytes:
    """What a corrupting link delivers: every byte but the line ends becomes `?` (same length)."""
    return bytes(b if b in (10, 13) else 63 for b in data)


def check_fault(kind: str, allowed: tuple[str, ...], port: str) -> str:
    """The fault name in upper case, or ValueError naming the port and what it takes."""
    kind = kind.strip().upper()
    if kind not in allowed:
        raise ValueError(f"port {port!r} takes {'|'.join(allowed)}, not {kind!r}")
    return kind


class LineSession(Protocol):
    """The protocol spoken on one connection: gets each received line, may reply through the connection."""

    def on_line(self, line: str) -> None: ...

    def on_overrun(self) -> None: ...

    def on_close(self) -> None: ...


class Connection:
    """One accepted TCP connection: splits input into lines (at most `max_line` bytes), queues output."""

    def __init__(self, sock: socket.socket, loop: IoLoop, terminator: bytes, max_line: int = DEFAULT_MAX_LINE_BYTES,
                 server: LineServer | None = None):
        self.sock = sock
        self.loop = loop
        self.terminator = terminator
        self.max_line = max_line
        self.server = server
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.session: LineSession | None = None
        self.closed = False
        self._discarding = False

    @property
    def fault(self) -> str:
        return self.server.fault if self.server is not None else NONE

    def send(self, data: bytes | str) -> None:
        """Queue a reply; strings get the connection's line terminator."""
        if isinstance(data, str):
            data = data.encode() + self.terminator
        if self.fault == FREEZE:
            return
        if self.fault == GARBLE:
            data = garble(data)
        self.outbox += data
        self.loop.want_write(self)

    def fileno(self) -> int:
        return self.sock.fileno()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(READ_CHUNK)
        except (ConnectionResetError, OSError):
            data = b""
        if not data:
            self.close()
            return
        if QUICKACK is not None:
            # ACK at once: a client's next small write (Nagle) must not wait for our delayed ACK
            self.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        if self.fault == FREEZE:
            return
        self.inbox += data
        while not self.closed and (end := self.inbox.find(b"\n")) >= 0:
            raw = bytes(self.inbox[:end])
            del self.inbox[: end + 1]
            if self._discarding:
                self._discarding = False
            elif len(raw) > self.max_line:
                self._dispatch(None)
            else:
                self._dispatch(raw.decode("latin-1").strip("\r\x00 \t"))
        if len(self.inbox) > self.max_line:
            self.inbox.clear()
            if not self._discarding:
                self._discarding = True
                self._dispatch(None)

    def _dispatch(self, line: str | None) -> None:
        """Hand a line (None: an over-long one) to the session; whatever it raises ends this connection only."""
        if self.session is None or line == "":
            return
        try:
            if line is None:
                self.session.on_overrun()
            else:
                self.session.on_line(line)
        except Exception:  # noqa: BLE001 - last resort: the twin keeps serving every other connection
            log.exception("session %s raised on %r; connection reset", type(self.session).__name__,
                          (line or "")[:80])
            self.reset()

    def reset(self) -> None:
        """Close with a TCP reset, as an instrument that drops the link: the peer sees it at once."""
        if not self.closed:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close()

    def on_writable(self) -> None:
        try:
            sent = self.sock.send(self.outbox)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        del self.outbox[:sent]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.forget(self)
        self.sock.close()
        if self.server is not None:
            self.server.connections.discard(self)
        if self.session is not None:
            self.session.on_close()


class LineServer:
    """A listening TCP socket whose connections speak a line protocol made by `session_factory`."""

    def __init__(
        self,
        name: str,
        loop: IoLoop,
        session_factory: Callable[[Connection], LineSession],
        host: str = "127.0.0.1",
        port: int = 0,
        terminator: bytes = b"\n",
        max_line: int = DEFAULT_MAX_LINE_BYTES,
    ):
        self.name = name
        self.loop = loop
        self.session_factory = session_factory
        self.terminator = terminator
        self.max_line = max_line
        self.fault = NONE
        self.connections: set[Connection] = set()
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()[:2]
        loop.add_reader(self.sock, self._accept)

    def visa_resource(self) -> str:
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def _accept(self) -> None:
        try:
            sock, _ = self.sock.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(sock, self.loop, self.terminator, self.max_line, self)
        if self.fault == DOWN:
            connection.reset()
            return
        connection.session = self.session_factory(connection)
        self.connections.add(connection)
        self.loop.add_connection(connection)

    def set_fault(self, kind: str) -> None:
        """Inject a fault (see the module docstring); DROP resets the open connections once."""
        kind = check_fault(kind, CONNECTION_FAULTS, self.name)
        if kind in (DROP, DOWN):
            for connection in list(self.connections):
                connection.reset()
            self.connections.clear()
        self.fault = NONE if kind == DROP else kind

    def close(self) -> None:
        self.loop.forget_reader(self.sock)
        self.sock.close()


class PtyChannel:
    """A pseudo-terminal the rig opens with pyserial; counts what crosses it for the lockstep clock.

    The twin holds the slave side open itself, so the master never sees EIO while the rig's port is
    closed; output to a channel the rig has not declared open is dropped in lockstep (nobody counts it).
    """

    def __init__(self, name: str, loop: IoLoop, on_output: Callable[[str, int], None]):
        self.name = name
        self.loop = loop
        self._on_output = on_output
        self.master, self._held_slave = os.openpty()
        tty.setraw(self._held_slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._held_slave)
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.received_total = 0
        self.counted = False
        self.fault = NONE
        self.consumer: Callable[[bytes], None] | None = None
        loop.add_reader(self.master, self._on_readable)

    def set_fault(self, kind: str) -> None:
        """FREEZE: bytes either way are lost (and not counted); GARBLE: bytes to the rig arrive as `?`."""
        self.fault = check_fault(kind, STREAM_FAULTS, self.name)

    def fileno(self) -> int:
        return self.master

    def open_for_counting(self) -> None:
        """The rig has opened its port: counters restart at zero and stale buffers go."""
        self.counted = True
        self.received_total = 0
        self.inbox.clear()
        self.outbox.clear()

    def close_for_counting(self) -> None:
        self.counted = False

    def write(self, data: bytes, lockstep: bool) -> None:
        """Send bytes towards the rig, recording the emission when the rig counts this channel."""
        if not data:
            return
        if (lockstep and not self.counted) or self.fault == FREEZE:
            return
        if self.fault == GARBLE:
            data = garble(data)
        if not lockstep and len(self.outbox) + len(data) > FREE_RUNNING_OUTBOX_LIMIT:
            del self.outbox[: len(data)]
        self.outbox += data
        if self.counted:
            self._on_output(self.name, len(data))
        self.loop.want_write(self)

    def deliver(self) -> None:
        """Hand everything received so far to the simulated device."""
        if self.inbox and self.consumer is not None:
            data = bytes(self.inbox)
            self.inbox.clear()
            self.consumer(data)
        else:
            self.inbox.clear()

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno == errno.EIO:
                return
            raise
        if self.fault == FREEZE:
            return
        self.inbox += data
        self.received_total += len(data)

    def on_writable(self) -> None:
        try:
            written = os.write(self.master, self.outbox)
        except BlockingIOError:
            return
        del self.outbox[:written]

    def close(self) -> None:
        self.loop.forget(self)
        self.loop.forget_reader(self.master)
        os.close(self.master)
        os.close(self._held_slave)


class Writable(Protocol):
    outbox: bytearray

    def fileno(self) -> int: ...

    def on_writable(self) -> None: ...


class IoLoop:
    """One selector over every socket and pty of the twin."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._readers: dict[int, Callable[[], None]] = {}
        self._writers: dict[int, Writable] = {}

    def add_reader(self, fileobj: socket.socket | int, callback: Callable[[], None]) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        self._readers[fd] = callback
        self._update(fd)

    def forget_reader(self, fileobj: socket.socket | int) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if fd < 0:
            return
        self._readers.pop(fd, None)
        self._update(fd)

    def add_connection(self, connection: Connection) -> None:
        self.add_reader(connection.sock, connection.on_readable)

    def forget(self, item: Connection | PtyChannel) -> None:
        fd = item.fileno()
        if fd < 0:
            return
        self._writers.pop(fd, None)
        if isinstance(item, Connection):
            self._readers.pop(fd, None)
        self._update(fd)

    def want_write(self, item: Writable) -> None:
        fd = item.fileno()
        if fd >= 0 and item.outbox:
            item.on_writable()
        if fd >= 0 and item.outbox:
            self._writers[fd] = item
            self._update(fd)

    def _update(self, fd: int) -> None:
        events = (selectors.EVENT_READ if fd in self._readers else 0) | (
            selectors.EVENT_WRITE if fd in self._writers else 0
        )
        try:
            key = self.selector.get_key(fd)
        except KeyError:
            key = None
        if key is None and events:
            self.selector.register(fd, events)
        elif key is not None and not events:
            self.selector.unregister(fd)
        elif key is not None and key.events != events:
            self.selector.modify(fd, events)

    def poll(self, timeout_s: float | None) -> None:
        """Wait up to `timeout_s` for I/O and serve whatever is ready."""
        for key, events in self.selector.select(timeout_s):
            fd = key.fd
            if events & selectors.EVENT_WRITE and fd in self._writers:
                writer = self._writers[fd]
                writer.on_writable()
                if not writer.outbox:
                    self._writers.pop(fd, None)
                    self._update(fd)
            if events & selectors.EVENT_READ and fd in self._readers:
                self._readers[fd]()


class UdpChannel:
    """The twin's UDP endpoint towards the platform (the core network's side), counted in datagrams.

    Once `peer` (the platform's address) is known, a datagram from anyone else is a stray from another
    process on the host: dropped, never counted, so it cannot stand in for the platform's in a RUN.
    """

    def __init__(self, name: str, loop: IoLoop, on_output: Callable[[str, int], None], host: str = "127.0.0.1"):
        self.name = name
        self.loop = loop
        self._on_output = on_output
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        self.inbox: list[tuple[bytes, tuple[str, int]]] = []
        self.received_total = 0
        self.counted = False
        self.peer: tuple[str, int] | None = None
        self.fault = NONE
        self.consumer: Callable[[bytes, tuple[str, int]], None] | None = None
        loop.add_reader(self.sock, self._on_readable)

    def set_fault(self, kind: str) -> None:
        """FREEZE: datagrams either way are lost (and not counted); GARBLE: datagrams out arrive as `?`s."""
        self.fault = check_fault(kind, STREAM_FAULTS, self.name)

    def open_for_counting(self) -> None:
        self.counted = True
        self.received_total = 0
        self.inbox.clear()

    def close_for_counting(self) -> None:
        self.counted = False

    def send(self, datagram: bytes, address: tuple[str, int], lockstep: bool) -> None:
        """Send one datagram; in lockstep it is an emission the rig must handle before time moves."""
        if (lockstep and not self.counted) or self.fault == FREEZE:
            return
        if self.fault == GARBLE:
            datagram = bytes(63 for _ in datagram)
        try:
            self.sock.sendto(datagram, address)
        except OSError as error:
            log.warning("%s: datagram to %s lost: %s", self.name, address, error)
            return
        if self.counted:
            self._on_output(self.name, 1)

    def deliver(self) -> None:
        if self.consumer is not None:
            for datagram, address in self.inbox:
                self.consumer(datagram, address)
        self.inbox.clear()

    def _on_readable(self) -> None:
        while True:
            try:
                datagram, address = self.sock.recvfrom(65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if self.fault == FREEZE:
                continue
            if self.peer is not None and not is_peer(address[:2], self.peer):
                log.warning("%s: stray datagram from %s dropped (the platform is %s)", self.name, address, self.peer)
                continue
            self.inbox.append((datagram, address[:2]))
            self.received_total += 1

    def close(self) -> None:
        self.loop.forget_reader(self.sock)
        self.sock.close()
