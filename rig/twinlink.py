"""The rig's connection to the twin's control port: one line out, one line back, with a wall-clock limit."""

from __future__ import annotations

import socket

from rig.errors import TwinError


class TwinLink:
    """Line protocol over TCP; a hung or vanished twin raises TwinError instead of hanging the run."""

    def __init__(self, host: str, port: int, timeout_s: float = 30.0):
        self.address = f"{host}:{port}"
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise TwinError(f"cannot reach the twin's control port {self.address}: {error}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()

    def query(self, line: str) -> str:
        """Send a command and return its answer; `ERR ...` answers raise TwinError naming the command."""
        try:
            self._sock.sendall(line.encode() + b"\n")
            answer = self._read_line()
        except TimeoutError:
            raise TwinError(f"twin at {self.address} did not answer {line.split()[0]!r} in time") from None
        except OSError as error:
            raise TwinError(f"twin at {self.address} lost during {line.split()[0]!r}: {error}") from None
        if answer.startswith("ERR"):
            raise TwinError(f"twin refused {line.split()[0]!r}: {answer[3:].strip()}")
        return answer

    def _read_line(self) -> str:
        while (end := self._buffer.find(b"\n")) < 0:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self._buffer += chunk
        line = bytes(self._buffer[:end]).decode().strip()
        del self._buffer[: end + 1]
        return line

    def close(self) -> None:
        self._sock.close()
