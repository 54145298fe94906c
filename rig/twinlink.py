"""The rig's connection to the twin's control port: one line out, one line back, with a wall-clock limit."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from rig.errors import TwinError

PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Liveness:
    """What a probe of the twin's control port found: it answered, it is there but silent, or it is gone."""

    answered: bool
    reachable: bool
    detail: str


def probe_twin(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> Liveness:
    """Ask `*IDN?` on a connection of its own (the link's stream is never left waiting for a late answer)."""
    began = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*IDN?\n")
            received = b""
            while b"\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    return Liveness(False, False, "its control port closed the connection")
                received += chunk
    except TimeoutError:
        return Liveness(False, True, f"its control port was silent for {timeout_s:g} s")
    except OSError as error:
        return Liveness(False, False, f"its control port {host}:{port}: {error}")
    return Liveness(True, True, f"its control port answered in {time.monotonic() - began:.2f} s")


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
        self._host, self._port = host, port

    def probe(self, timeout_s: float = PROBE_TIMEOUT_S) -> Liveness:
        """Is the twin serving? Asked on a connection of its own, within `timeout_s`."""
        return probe_twin(self._host, self._port, timeout_s)

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
