"""A host on the internet that is not the platform, sending the meter platform commands (S1, seed 3.1.4).

It speaks the platform's own downlink exactly (CoAP `PUT /19/1/0` with the codec's payload) from its own
UDP socket, so only its source address tells it from the platform. It sends non-confirmable requests: a
spoofer has no registration and no observe token to answer, and wants no reply. On the twin it is the
lockstep clock's `internet` channel: the twin's core network accepts it as another internet host and
delivers its datagrams to the UE with their real source (rig/sim/network.py). What the twin sends back to
it, if anything, is read and kept in `received`.
"""

from __future__ import annotations

import logging
import random
import socket
from dataclasses import dataclass

from aiocoap import NON, Message
from aiocoap.numbers.codes import Code

from rig.clock import VirtualClock
from rig.codec import Codec
from rig.errors import RigFault
from rig.platform.coap import Peer

log = logging.getLogger(__name__)

DOWNLINK_PATH = ("19", "1", "0")
OPAQUE = 42
READ_LIMIT_S = 10.0
DATAGRAM_LIMIT = 65536
FIRST_COMMAND_ID = 0xF000  # far from the platform's, which count up from 1
TOKEN_BYTES = 4


@dataclass(frozen=True)
class Spoofed:
    """One command the spoofer sent: bench time, the message and its command id."""

    time_s: float
    message: dict
    command_id: int


class Spoofer:
    """The rig's spoofing host: `send(message)` puts a platform command on the wire from another address."""

    name = "internet"

    def __init__(self, codec: Codec, clock: VirtualClock, target: Peer, host: str = "127.0.0.1", seed: int = 0):
        self.codec = codec
        self.clock = clock
        self.target = target
        self.sent: list[Spoofed] = []
        self.received: list[tuple[float, Peer, int]] = []
        self._random = random.Random(f"spoofer:{seed}")
        self._command_ids = iter(range(FIRST_COMMAND_ID, 0x10000))
        self._sent_total = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, 0))
        except OSError as error:
            self._sock.close()
            raise RigFault(f"spoofer cannot bind {host}: {error}") from None
        clock.attach(self)

    @property
    def address(self) -> Peer:
        return self._sock.getsockname()[:2]

    def send(self, message: dict) -> Spoofed:
        """Send one platform command (the codec's downlink `message`, given a command id of the spoofer's)."""
        command_id = next(self._command_ids, None)
        if command_id is None:
            raise RigFault("spoofer: out of command ids")
        message = {**message, "command_id": command_id}
        request = Message(code=Code.PUT, uri_path=DOWNLINK_PATH, content_format=OPAQUE,
                          payload=self.codec.encode_downlink(message))
        request.mtype = NON
        request.mid = self._random.randrange(0x10000)
        request.token = self._random.randbytes(TOKEN_BYTES)
        self._sock.sendto(request.encode(), self.target)
        self._sent_total += 1
        spoofed = Spoofed(self.clock.now(), message, command_id)
        self.sent.append(spoofed)
        log.debug("spoofer -> %s: %s", self.target, message)
        return spoofed

    # ---- CountedChannel (lockstep) -------------------------------------------------------------
    def sent_total(self) -> int:
        return self._sent_total

    def take(self, count: int, time_s: float) -> None:
        """Read the `count` datagrams the twin sent this host (a meter answering a spoofer), stamped `time_s`."""
        self._sock.settimeout(READ_LIMIT_S)
        for taken in range(count):
            try:
                data, peer = self._sock.recvfrom(DATAGRAM_LIMIT)
            except TimeoutError:
                raise RigFault(f"spoofer: the twin announced {count} datagrams, {taken} arrived") from None
            self.received.append((time_s, peer[:2], len(data)))

    def close(self) -> None:
        self.clock.detach(self)
        self._sock.close()

    def __enter__(self) -> Spoofer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
