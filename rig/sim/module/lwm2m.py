"""The module's LwM2M client (object 19) over CoAP, on the virtual clock.

Registers with `POST /rd`, answers the platform's observe of /19/0/0, sends uplinks as notifications
on that observation (NON or CON with retransmission) and hands `PUT /19/1/0` downlinks to the host.
Message ids start at a random value after every reset, as on a real module.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import aiocoap
import simpy
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

ACK_TIMEOUT_S = 2.0
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4
OBSERVE_WAIT_S = 4.0
REGISTRATION_GIVE_UP_S = 160.0
CONTENT_FORMAT_OCTETS = 42
CONTENT_FORMAT_LINK = 40
LINK_PAYLOAD = b'</>;rt="oma.lwm2m";ct=11543,</3/0>,</19/0>'


def build(code: Code, mtype: Type, mid: int, token: bytes, payload: bytes = b"", **options) -> bytes:
    message = aiocoap.Message(code=code, payload=payload, **options)
    message.mtype = mtype
    message.mid = mid
    message.token = token
    return message.encode()


@dataclass
class PendingConfirmable:
    done: simpy.Event
    acked: bool = False
    reply: aiocoap.Message | None = None
    attempts: int = 0


@dataclass
class Lwm2mState:
    registered: bool = False
    observe_token: bytes | None = None
    observe_sequence: int = 0
    registration_started_s: float | None = None
    pending: dict[int, PendingConfirmable] = field(default_factory=dict)
    seen: dict[int, bytes] = field(default_factory=dict)


class Lwm2mClient:
    """The module's side of docs/platform-exchange.md."""

    def __init__(self, env: simpy.Environment, rng, endpoint: str,
                 transmit: Callable[[bytes], Generator[simpy.Event, None, bool]],
                 on_downlink: Callable[[bytes], None]):
        self.env = env
        self.rng = rng
        self.endpoint = endpoint
        self._transmit = transmit
        self._on_downlink = on_downlink
        self.server: tuple[str, int] | None = None
        self.state = Lwm2mState()
        self.observed = env.event()
        self._mid = 0
        self.reset()

    # ---- lifecycle -----------------------------------------------------------------------------
    def reset(self) -> None:
        """After a reboot: registration gone, message ids from a new random start."""
        self.state = Lwm2mState()
        self.observed = self.env.event()
        self._mid = int(self.rng.integers(0, 65536))

    @property
    def ready(self) -> bool:
        return self.state.observe_token is not None

    @property
    def status(self) -> str:
        if self.server is None:
            return "MISSING_CONFIG"
        if self.ready:
            return "MO_DATA_ENABLED"
        if self.state.registered:
            return "REGISTERED"
        if self.state.registration_started_s is not None:
            return "REGISTERING"
        return "INIITIALISED"

    def _next_mid(self) -> int:
        self._mid = (self._mid + 1) & 0xFFFF
        return self._mid

    def _token(self) -> bytes:
        return bytes(int(b) for b in self.rng.integers(0, 256, 4))

    # ---- registration --------------------------------------------------------------------------
    def start_registration(self) -> None:
        if self.server is None or self.state.registration_started_s is not None:
            return
        self.state.registration_started_s = self.env.now
        self.env.process(self._register())

    def _register(self) -> Generator[simpy.Event, None, None]:
        started = self.env.now
        while not self.state.registered and self.env.now - started < REGISTRATION_GIVE_UP_S:
            query = [f"ep={self.endpoint}", "lt=86400", "lwm2m=1.0", "b=U"]
            request = aiocoap.Message(code=Code.POST, payload=LINK_PAYLOAD, uri_path=["rd"], uri_query=query,
                                      content_format=CONTENT_FORMAT_LINK)
            reply = yield from self.confirmable(request)
            if reply is not None and reply.code == Code.CREATED:
                self.state.registered = True
                return
        if not self.state.registered:
            self.state.registration_started_s = None

    # ---- confirmable exchange ------------------------------------------------------------------
    def confirmable(self, message: aiocoap.Message) -> Generator[simpy.Event, None, aiocoap.Message | None]:
        """Send CON with retransmission; the ACK (or None after MAX_RETRANSMIT) is the result."""
        mid, token = self._next_mid(), message.token or self._token()
        message.mtype, message.mid, message.token = Type.CON, mid, token
        datagram = message.encode()
        pending = PendingConfirmable(self.env.event())
        self.state.pending[mid] = pending
        timeout = ACK_TIMEOUT_S * (1.0 + (ACK_RANDOM_FACTOR - 1.0) * float(self.rng.random()))
        for attempt in range(MAX_RETRANSMIT + 1):
            pending.attempts = attempt + 1
            yield from self._transmit(datagram)
            result = yield pending.done | self.env.timeout(timeout)
            if pending.done in result:
                break
            timeout *= 2
        self.state.pending.pop(mid, None)
        return pending.reply if pending.acked else None

    def notify(self, payload: bytes, confirmable: bool) -> Generator[simpy.Event, None, bool]:
        """One uplink as a notification of /19/0/0; True when sent (NON) or acknowledged (CON)."""
        if not self.ready:
            return False
        self.state.observe_sequence += 1
        message = aiocoap.Message(code=Code.CONTENT, payload=payload, observe=self.state.observe_sequence,
                                  content_format=CONTENT_FORMAT_OCTETS)
        message.token = self.state.observe_token
        if confirmable:
            reply = yield from self.confirmable(message)
            return reply is not None
        message.mtype, message.mid = Type.NON, self._next_mid()
        return (yield from self._transmit(message.encode()))

    # ---- incoming ------------------------------------------------------------------------------
    def on_datagram(self, datagram: bytes) -> None:
        try:
            message = aiocoap.Message.decode(datagram)
        except Exception:  # noqa: BLE001 - a malformed datagram is dropped, as a module does
            return
        if message.mtype in (Type.ACK, Type.RST):
            pending = self.state.pending.get(message.mid)
            if pending is not None and not pending.done.triggered:
                pending.acked = message.mtype == Type.ACK
                pending.reply = message
                pending.done.succeed()
            return
        if message.mtype == Type.CON and message.mid in self.state.seen:
            self.env.process(self._transmit(self.state.seen[message.mid]))
            return
        reply = self._answer(message)
        if message.mtype == Type.CON:
            ack = build(reply[0], Type.ACK, message.mid, message.token, reply[1], **reply[2])
            self.state.seen[message.mid] = ack
            if len(self.state.seen) > 64:
                self.state.seen.pop(next(iter(self.state.seen)))
            self.env.process(self._transmit(ack))

    def _answer(self, message: aiocoap.Message) -> tuple[Code, bytes, dict]:
        path = list(message.opt.uri_path)
        if message.code == Code.GET and path == ["19", "0", "0"] and message.opt.observe == 0:
            self.state.observe_token = message.token
            if not self.observed.triggered:
                self.observed.succeed()
            return Code.CONTENT, b"", {"observe": self.state.observe_sequence,
                                       "content_format": CONTENT_FORMAT_OCTETS}
        if message.code == Code.PUT and path == ["19", "1", "0"]:
            self._on_downlink(message.payload)
            return Code.CHANGED, b"", {}
        return Code.NOT_FOUND, b"", {}
