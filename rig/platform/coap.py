"""The platform's CoAP message layer (RFC 7252 section 4), with every timer on the bench clock.

aiocoap only encodes and decodes messages here: its transport runs wall-clock retransmission and a
247 s deduplication window, which on the twin's virtual clock would span months or depend on machine
load. This layer owns message ids and tokens (seeded), CON retransmission through `clock.call_at`,
ACK/RST matching, duplicate detection per (peer, mid) for EXCHANGE_LIFETIME of bench time, and one
outstanding CON per peer (NSTART 1) with a queue behind it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from aiocoap import ACK, CON, NON, RST, Message
from aiocoap.numbers.codes import Code

from rig.clock import Clock

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 2.0
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4
EXCHANGE_LIFETIME_S = 247.0
NON_LIFETIME_S = 145.0
TOKEN_BYTES = 8

Peer = tuple[str, int]


def is_peer(address: Peer, peer: Peer) -> bool:
    """A datagram from `address` comes from `peer` (a peer bound to a wildcard host sends from any host)."""
    host, port = peer
    return address[1] == port and host in (address[0], "0.0.0.0", "")


class MalformedDatagram(ValueError):
    """A datagram that is not a CoAP message."""


def decode(data: bytes) -> Message:
    """The CoAP message in `data`, or MalformedDatagram saying why not."""
    try:
        return Message.decode(data)
    except Exception as error:  # noqa: BLE001 - aiocoap raises several kinds for bad input
        raise MalformedDatagram(f"{type(error).__name__}: {error}") from None


@dataclass
class Exchange:
    """One CON we sent and its retransmission state."""

    peer: Peer
    message: Message
    on_ack: Callable[[Message], None]
    on_fail: Callable[[str], None]
    timeout_s: float
    data: bytes = b""
    retransmits: int = 0
    done: bool = False


@dataclass
class Seen:
    """A CON or NON we received: when its id may be reused, and the reply to repeat for duplicates."""

    expires_s: float
    reply: bytes | None = None


class MessageLayer:
    """Message ids, tokens, reliability and deduplication for one UDP socket, on the bench clock.

    `send(data, peer)` puts a datagram on the wire. Timer callbacks take `lock`, which the owner also
    holds while it calls in, so a wall-clock timer thread and a reader thread never interleave.
    """

    def __init__(self, clock: Clock, send: Callable[[bytes, Peer], None], rng: random.Random,
                 lock: threading.RLock | None = None):
        self.clock = clock
        self.lock = lock or threading.RLock()
        self._send = send
        self._rng = rng
        self._next_mid = rng.randrange(0x10000)
        self._outstanding: dict[Peer, Exchange] = {}
        self._waiting: dict[Peer, deque[Exchange]] = {}
        self._seen: OrderedDict[tuple[Peer, int], Seen] = OrderedDict()

    # ---- ids -----------------------------------------------------------------------------------
    def new_mid(self) -> int:
        mid = self._next_mid
        self._next_mid = (mid + 1) & 0xFFFF
        return mid

    def new_token(self) -> bytes:
        return self._rng.randbytes(TOKEN_BYTES)

    # ---- sending -------------------------------------------------------------------------------
    def send_con(self, peer: Peer, message: Message, on_ack: Callable[[Message], None],
                 on_fail: Callable[[str], None]) -> None:
        """Send `message` as CON once `peer` has nothing outstanding; `on_ack` gets the ACK (maybe a
        piggybacked response), `on_fail` gets "timeout" after MAX_RETRANSMIT or "reset" on RST."""
        with self.lock:
            timeout_s = ACK_TIMEOUT_S * self._rng.uniform(1.0, ACK_RANDOM_FACTOR)
            exchange = Exchange(peer, message, on_ack, on_fail, timeout_s)
            if peer in self._outstanding:
                self._waiting.setdefault(peer, deque()).append(exchange)
            else:
                self._start(exchange)

    def reply(self, request: Message, peer: Peer, response: Message) -> None:
        """Answer `request`: piggybacked on the ACK of a CON, as NON to a NON; repeated for duplicates."""
        with self.lock:
            response.token = request.token
            if request.mtype == CON:
                response.mtype, response.mid = ACK, request.mid
            else:
                response.mtype, response.mid = NON, self.new_mid()
            self._answer(request, peer, response.encode())

    def acknowledge(self, request: Message, peer: Peer) -> None:
        """Send the empty ACK of a CON (repeated for its duplicates)."""
        self._answer(request, peer, _empty(ACK, request.mid).encode())

    def reset(self, request: Message, peer: Peer) -> None:
        """Reject `request` with RST (repeated for its duplicates)."""
        self._answer(request, peer, _empty(RST, request.mid).encode())

    # ---- receiving -----------------------------------------------------------------------------
    def receive(self, message: Message, peer: Peer, time_s: float) -> Message | None:
        """Take one decoded message; return it if the application must handle it, else None
        (an ACK or RST of ours, a duplicate, which gets the cached reply again, or a CoAP ping)."""
        with self.lock:
            if message.mtype in (ACK, RST):
                self._settle(message, peer)
                return None
            if message.code == Code.EMPTY:
                if message.mtype == CON:
                    self._send(_empty(RST, message.mid).encode(), peer)
                return None
            self._forget_expired(time_s)
            key = (peer, message.mid)
            seen = self._seen.get(key)
            if seen is not None and seen.expires_s > time_s:
                if seen.reply is not None and message.mtype == CON:
                    self._send(seen.reply, peer)
                log.debug("duplicate mid %d from %s", message.mid, peer)
                return None
            lifetime_s = EXCHANGE_LIFETIME_S if message.mtype == CON else NON_LIFETIME_S
            self._seen.pop(key, None)
            self._seen[key] = Seen(time_s + lifetime_s)
            return message

    # ---- internals -----------------------------------------------------------------------------
    def _answer(self, request: Message, peer: Peer, data: bytes) -> None:
        with self.lock:
            seen = self._seen.get((peer, request.mid))
            if seen is not None:
                seen.reply = data
            self._send(data, peer)

    def _start(self, exchange: Exchange) -> None:
        exchange.message.mtype, exchange.message.mid = CON, self.new_mid()
        exchange.data = exchange.message.encode()
        self._outstanding[exchange.peer] = exchange
        self._send(exchange.data, exchange.peer)
        self._arm(exchange)

    def _arm(self, exchange: Exchange) -> None:
        count = exchange.retransmits
        self.clock.call_at(self.clock.now() + exchange.timeout_s, lambda: self._expire(exchange, count))

    def _expire(self, exchange: Exchange, count: int) -> None:
        with self.lock:
            if exchange.done or exchange.retransmits != count:
                return
            if exchange.retransmits >= MAX_RETRANSMIT:
                log.info("CON mid %d to %s given up after %d retransmissions",
                         exchange.message.mid, exchange.peer, MAX_RETRANSMIT)
                self._finish(exchange)
                exchange.on_fail("timeout")
                return
            exchange.retransmits += 1
            exchange.timeout_s *= 2
            self._send(exchange.data, exchange.peer)
            self._arm(exchange)

    def _settle(self, message: Message, peer: Peer) -> None:
        exchange = self._outstanding.get(peer)
        if exchange is None or exchange.message.mid != message.mid:
            log.debug("%s mid %d from %s matches nothing outstanding", message.mtype, message.mid, peer)
            return
        self._finish(exchange)
        if message.mtype == ACK:
            exchange.on_ack(message)
        else:
            exchange.on_fail("reset")

    def _finish(self, exchange: Exchange) -> None:
        """Close `exchange` and start the peer's next waiting CON before anyone is told (FIFO)."""
        exchange.done = True
        self._outstanding.pop(exchange.peer, None)
        waiting = self._waiting.get(exchange.peer)
        if waiting:
            self._start(waiting.popleft())

    def _forget_expired(self, time_s: float) -> None:
        """Drop ids from the front while expired (NON ids may wait behind a CON; lookups check expiry)."""
        while self._seen:
            key, seen = next(iter(self._seen.items()))
            if seen.expires_s > time_s:
                return
            del self._seen[key]


def _empty(mtype, mid: int) -> Message:
    message = Message(code=Code.EMPTY)
    message.mtype, message.mid = mtype, mid
    return message
