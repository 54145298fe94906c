"""The rig's LwM2M/CoAP server ("CDP-like platform"): registration, observe, uplinks and downlinks.

The exchange is docs/platform-exchange.md; the API and switches are docs/platform.md. On the twin the
platform is a counted channel of the lockstep clock: `take` reads exactly the datagrams a RUN answer
announced, handles them at that answer's time and sends its replies at once, so the twin reads them
before time moves. On hardware a reader thread handles datagrams stamped with the wall clock.

What it records (datagrams, uplinks, swallowed uplinks, tickets) are `Window`s: a month unattended keeps
the newest of each (the caps below, many times the busiest check's traffic) with absolute indices, and a
check that reads past what was dropped gets `RecordDropped` instead of a shortened record.
"""

from __future__ import annotations

import itertools
import logging
import random
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiocoap import CON, GET, POST, PUT
from aiocoap import Message as CoapMessage
from aiocoap.numbers.codes import Code

from rig.clock import Clock, VirtualClock
from rig.codec import Codec, Message
from rig.codec.downlink_auth import DownlinkSigner, Signing
from rig.errors import RigFault
from rig.platform.coap import MalformedDatagram, MessageLayer, Peer, decode, is_peer
from rig.window import Window

log = logging.getLogger(__name__)
NO_TIME_SYNC_AFTER = ("response", "log_chunk")  # answers and log uploads are not reports

READ_LIMIT_S = 10.0
DATAGRAM_LIMIT = 65536
OPAQUE = 42  # application/octet-stream, the payload format of object 19
UPLINK_PATH = ("19", "0", "0")
DOWNLINK_PATH = ("19", "1", "0")
COMMAND_ID_LIMIT = 0x10000  # command ids are 1 .. 65535 and wrap: codecs carry them as u16
DATAGRAMS_KEPT = 50_000  # many times the busiest check (C19: 1000 writes in 30 days, a few datagrams each)
UPLINKS_KEPT = 10_000
TICKETS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram the platform received, duplicates and garbage included (C16 sizes, C7 attempts)."""

    time_s: float
    peer: Peer
    size_bytes: int
    mid: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Uplink:
    """One distinct notification on a device's observe token: its payload and what the codec made of it."""

    time_s: float
    endpoint: str
    size_bytes: int
    payload: bytes
    message: Message | None
    error: str | None
    mtype: str
    mid: int
    handled_s: float


@dataclass
class Ticket:
    """A command queued for a device, from queueing to the device's `response` uplink."""

    endpoint: str
    message: Message
    payload: bytes
    queued_at: float
    sent_at: float | None = None
    acked_at: float | None = None
    answered_at: float | None = None
    answer: Message | None = None
    attempts: int = 0
    error: str | None = None
    signing: Signing = "valid"

    @property
    def command_id(self) -> int:
        return self.message["command_id"]


@dataclass
class Device:
    """The platform's view of one endpoint: where it is, its observation, its command queue."""

    endpoint: str
    peer: Peer | None = None
    registered_at: float | None = None
    registrations: int = 0
    observe_token: bytes | None = None
    observed_at: float | None = None
    queue: deque[Ticket] = field(default_factory=deque)
    in_flight: Ticket | None = None


class Platform:
    """The meters' LwM2M server, on the bench clock; also the lockstep clock's `platform` channel."""

    name = "platform"

    def __init__(self, codec: Codec, clock: Clock, host: str = "127.0.0.1", port: int = 0, seed: int = 0,
                 twin: Peer | None = None, downlink_key: bytes | None = None):
        self.codec = codec
        self.signer = DownlinkSigner(downlink_key) if downlink_key else None
        self.twin = twin
        self.clock = clock
        self.withhold_observe = False
        self.devices: dict[str, Device] = {}
        self.uplinks: Window[Uplink] = Window("the platform's uplinks", UPLINKS_KEPT)
        self.swallowed: Window[Uplink] = Window("the platform's swallowed uplinks", UPLINKS_KEPT)
        self.received: Window[Datagram] = Window("the platform's received datagrams", DATAGRAMS_KEPT)
        self.tickets: Window[Ticket] = Window("the platform's command tickets", TICKETS_KEPT)
        self._lock = threading.RLock()
        self._layer = MessageLayer(clock, self._send, random.Random(seed), self._lock)
        self._observers: dict[bytes, str] = {}
        self._by_command: dict[int, Ticket] = {}
        self._command_ids = itertools.cycle(range(1, COMMAND_ID_LIMIT))
        self._swallow = 0
        self._delay_count, self._delay_s = 0, 0.0
        self._sent = 0
        self._closed = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as error:
            self._sock.close()
            raise RigFault(f"platform cannot bind {host}:{port}: {error}") from None
        self._reader: threading.Thread | None = None
        log.info("platform listening on %s:%d", *self.address)
        if isinstance(clock, VirtualClock):
            clock.attach(self)
        else:
            self._reader = threading.Thread(target=self._read_forever, name="platform", daemon=True)
            self._reader.start()

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()[:2]

    # ---- switches ------------------------------------------------------------------------------
    def swallow_next_uplinks(self, n: int) -> None:
        """The next `n` distinct uplinks (and their retransmissions) get no ACK and no downlink."""
        with self._lock:
            self._swallow = n

    def delay_next_uplinks(self, n: int, seconds: float) -> None:
        """Handle the next `n` uplinks (ACK, record, downlinks) `seconds` of bench time late."""
        with self._lock:
            self._delay_count, self._delay_s = n, seconds

    # ---- commands ------------------------------------------------------------------------------
    def queue_downlink(self, endpoint: str, message: Message, signing: Signing = "valid") -> Ticket:
        """Hold `message` for `endpoint` until it next sends an uplink; the ticket follows it to the answer.

        The platform gives it a `command_id` unless it has one; the codec encodes it now, so a message
        the codec refuses raises CodecError here. With a downlink key each attempt is sealed as it is sent:
        `signing` "none" or "wrong" sends it unsealed or with a wrong MAC on purpose (S1).
        """
        with self._lock:
            ticket = self._enqueue(self._device(endpoint), message, front=False)
            ticket.signing = signing
            return ticket

    def wait_for_uplink(self, predicate: Callable[[Uplink], object], timeout_s: float, since: int = 0,
                        poll_s: float = 0.05) -> Uplink | None:
        """The first uplink from index `since` on that satisfies `predicate`, waiting on the bench clock."""
        found: list[Uplink] = []

        def check() -> bool:
            with self._lock:
                candidates = self.uplinks[since:]
            found.extend(uplink for uplink in candidates if predicate(uplink))
            return bool(found)

        self.clock.wait_until(check, timeout_s, poll_s)
        return found[0] if found else None

    # ---- CountedChannel (lockstep) -------------------------------------------------------------
    def sent_total(self) -> int:
        return self._sent

    def take(self, count: int, time_s: float) -> None:
        """Receive exactly `count` datagrams from the twin and handle each at `time_s`, replying at once.

        A datagram from another address than `twin` is a stray of another process on the host: dropped, so
        it neither stands in for one of the twin's nor draws a reply the twin would wait for.
        """
        self._sock.settimeout(READ_LIMIT_S)
        taken = 0
        while taken < count:
            try:
                data, peer = self._sock.recvfrom(DATAGRAM_LIMIT)
            except TimeoutError:
                raise RigFault(f"platform: the twin announced {count} datagrams, {taken} arrived") from None
            if self.twin is not None and not is_peer(peer[:2], self.twin):
                log.warning("platform: stray datagram from %s dropped (the twin is %s)", peer, self.twin)
                continue
            self._handle(data, peer[:2], time_s)
            taken += 1

    # ---- hardware ------------------------------------------------------------------------------
    def _read_forever(self) -> None:
        self._sock.settimeout(0.1)
        while not self._closed.is_set():
            try:
                data, peer = self._sock.recvfrom(DATAGRAM_LIMIT)
            except TimeoutError:
                continue
            except OSError as error:
                if self._closed.is_set():
                    return
                log.warning("platform socket: %s", error)
                continue
            try:
                self._handle(data, peer[:2], self.clock.now())
            except Exception:  # noqa: BLE001 - the reader must outlive a bug in one datagram's handling
                log.exception("platform failed to handle a datagram from %s", peer)

    def close(self) -> None:
        self._closed.set()
        if isinstance(self.clock, VirtualClock):
            self.clock.detach(self)
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        self._sock.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- datagrams -----------------------------------------------------------------------------
    def _send(self, data: bytes, peer: Peer) -> None:
        if self._closed.is_set():
            return
        try:
            self._sock.sendto(data, peer)
        except OSError as error:
            log.warning("platform: datagram to %s lost: %s", peer, error)
            return
        self._sent += 1
        log.debug("platform -> %s: %d B at %r", peer, len(data), self.clock.now())

    def _handle(self, data: bytes, peer: Peer, time_s: float) -> None:
        with self._lock:
            try:
                message = decode(data)
            except MalformedDatagram as error:
                self.received.append(Datagram(time_s, peer, len(data), None, str(error)))
                log.warning("platform: %d-byte datagram from %s is not CoAP (%s)", len(data), peer, error)
                return
            self.received.append(Datagram(time_s, peer, len(data), message.mid))
            log.debug("platform <- %s: %s at %r", peer, message, time_s)
            message = self._layer.receive(message, peer, time_s)
            if message is None:
                return
            if message.code.is_request():
                self._on_request(message, peer, time_s)
            elif message.code.is_response():
                self._on_response(message, peer, time_s)
            elif message.mtype == CON:
                self._layer.reset(message, peer)

    # ---- registration and observe --------------------------------------------------------------
    def _on_request(self, request: CoapMessage, peer: Peer, time_s: float) -> None:
        path = tuple(request.opt.uri_path)
        device = self.devices.get(path[1]) if len(path) == 2 and path[0] == "rd" else None
        if request.code == POST and path == ("rd",):
            self._register(request, peer, time_s)
        elif device is not None and request.code == POST:
            device.peer = peer
            self._layer.reply(request, peer, CoapMessage(code=Code.CHANGED))
        elif device is not None and request.code == Code.DELETE:
            self._forget_observation(device)
            device.registered_at = None
            self._layer.reply(request, peer, CoapMessage(code=Code.DELETED))
            log.info("platform: %s deregistered", device.endpoint)
        else:
            self._layer.reply(request, peer, CoapMessage(code=Code.NOT_FOUND))

    def _register(self, request: CoapMessage, peer: Peer, time_s: float) -> None:
        query = dict(item.partition("=")[::2] for item in request.opt.uri_query)
        endpoint = query.get("ep")
        if not endpoint:
            self._layer.reply(request, peer, CoapMessage(code=Code.BAD_REQUEST))
            return
        device = self._device(endpoint)
        self._forget_observation(device)
        device.peer, device.registered_at = peer, time_s
        device.registrations += 1
        self._layer.reply(request, peer, CoapMessage(code=Code.CREATED, location_path=("rd", endpoint)))
        log.info("platform: %s registered from %s", endpoint, peer)
        if not self.withhold_observe:
            self._observe(device)

    def _observe(self, device: Device) -> None:
        token = self._layer.new_token()
        device.observe_token = token
        self._observers[token] = device.endpoint
        get = CoapMessage(code=GET, uri_path=UPLINK_PATH, observe=0, accept=OPAQUE)
        get.token = token
        self._layer.send_con(
            device.peer, get,
            on_ack=lambda ack: self._on_observe_ack(device, token, ack),
            on_fail=lambda reason: log.warning("platform: observe of %s failed (%s)", device.endpoint, reason),
        )

    def _on_observe_ack(self, device: Device, token: bytes, ack: CoapMessage) -> None:
        if device.observe_token != token or ack.code == Code.EMPTY:
            return  # a stale observation, or the 2.05 follows as a separate response
        if ack.code == Code.CONTENT:
            device.observed_at = self.clock.now()
            log.info("platform: observing %s", device.endpoint)
        else:
            log.warning("platform: %s refused the observe with %s", device.endpoint, ack.code)
            self._forget_observation(device)

    def _forget_observation(self, device: Device) -> None:
        if device.observe_token is not None:
            self._observers.pop(device.observe_token, None)
        device.observe_token, device.observed_at = None, None

    # ---- uplinks -------------------------------------------------------------------------------
    def _on_response(self, message: CoapMessage, peer: Peer, time_s: float) -> None:
        endpoint = self._observers.get(message.token)
        if endpoint is None:
            log.info("platform: %s on unknown token %s from %s, reset", message.code, message.token.hex(), peer)
            self._layer.reset(message, peer)
            return
        device = self.devices[endpoint]
        if device.observed_at is None:  # the observe's 2.05 as a separate response
            device.observed_at = time_s
            if message.mtype == CON:
                self._layer.acknowledge(message, peer)
            return
        if self._swallow > 0:
            self._swallow -= 1
            self.swallowed.append(self._uplink(device, message, time_s, time_s))
            log.info("platform: swallowed uplink mid %d from %s", message.mid, endpoint)
        elif self._delay_count > 0:
            self._delay_count -= 1
            self.clock.call_at(time_s + self._delay_s, lambda: self._accept_later(device, message, peer, time_s))
        else:
            self._accept(device, message, peer, time_s, time_s)

    def _accept_later(self, device: Device, message: CoapMessage, peer: Peer, time_s: float) -> None:
        with self._lock:
            if not self._closed.is_set():
                self._accept(device, message, peer, time_s, self.clock.now())

    def _accept(self, device: Device, message: CoapMessage, peer: Peer, time_s: float, handled_s: float) -> None:
        """Record, ACK and answer one uplink; reports and alarms get a time sync first (C6)."""
        device.peer = peer
        uplink = self._uplink(device, message, time_s, handled_s)
        self.uplinks.append(uplink)
        log.info("platform: uplink from %s, %d B, %s", device.endpoint, uplink.size_bytes,
                 uplink.message.get("type") if uplink.message else uplink.error)
        kind = uplink.message.get("type") if uplink.message is not None else None
        if kind == "response":
            self._on_answer(device, uplink.message, handled_s)
        if message.mtype == CON:
            self._layer.acknowledge(message, peer)
        if kind not in NO_TIME_SYNC_AFTER:
            self._queue_time_sync(device)
        self._send_next(device)

    def _uplink(self, device: Device, message: CoapMessage, time_s: float, handled_s: float) -> Uplink:
        payload = bytes(message.payload)
        try:
            decoded, error = self.codec.decode_uplink(payload), None
        except Exception as problem:  # noqa: BLE001 - a codec failure is a finding, never a crash
            decoded, error = None, f"{type(problem).__name__}: {problem}"
        return Uplink(time_s, device.endpoint, len(payload), payload, decoded, error, message.mtype.name,
                      message.mid, handled_s)

    def _on_answer(self, device: Device, answer: Message, time_s: float) -> None:
        """A `response` answers one or more commands: each entry of `results` names its command_id."""
        for result in answer.get("results", [answer]):
            ticket = self._by_command.get(result.get("command_id"))
            if ticket is None or ticket.endpoint != device.endpoint:
                log.warning("platform: %s answered unknown command %r", device.endpoint, result.get("command_id"))
            elif ticket.answered_at is None:
                ticket.answered_at, ticket.answer = time_s, result

    # ---- downlinks -----------------------------------------------------------------------------
    def _device(self, endpoint: str) -> Device:
        return self.devices.setdefault(endpoint, Device(endpoint))

    def _enqueue(self, device: Device, message: Message, front: bool) -> Ticket:
        message = dict(message)
        message.setdefault("command_id", next(self._command_ids))
        ticket = Ticket(device.endpoint, message, self.codec.encode_downlink(message), self.clock.now())
        if front:
            device.queue.appendleft(ticket)
        else:
            device.queue.append(ticket)
        self.tickets.append(ticket)
        self._by_command[ticket.command_id] = ticket
        return ticket

    def _queue_time_sync(self, device: Device) -> None:
        """Put a fresh time sync in front of the queue (an unsent older one is stale: dropped)."""
        for stale in [ticket for ticket in device.queue if ticket.message.get("type") == "time_sync"]:
            device.queue.remove(stale)
        try:
            self._enqueue(device, {"type": "time_sync", "time_s": self.clock.now()}, front=True)
        except Exception:  # noqa: BLE001 - a codec without time sync must not stop the other downlinks
            log.exception("platform: the codec cannot encode a time sync")

    def _send_next(self, device: Device) -> None:
        """Send the head of the queue as CON PUT /19/1/0 unless one is outstanding (one at a time)."""
        if device.in_flight is not None or not device.queue or device.peer is None:
            return
        ticket = device.queue.popleft()
        device.in_flight = ticket
        ticket.attempts += 1
        if ticket.sent_at is None:
            ticket.sent_at = self.clock.now()
        payload = ticket.payload if self.signer is None else self.signer.seal(
            ticket.payload, self.clock.now(), ticket.signing)
        put = CoapMessage(code=PUT, payload=payload, uri_path=DOWNLINK_PATH, content_format=OPAQUE)
        put.token = self._layer.new_token()
        self._layer.send_con(
            device.peer, put,
            on_ack=lambda ack: self._on_downlink_ack(device, ticket, ack),
            on_fail=lambda reason: self._on_downlink_failed(device, ticket, reason),
        )

    def _on_downlink_ack(self, device: Device, ticket: Ticket, ack: CoapMessage) -> None:
        device.in_flight = None
        if ack.code == Code.EMPTY or ack.code.is_successful():
            ticket.acked_at = self.clock.now()
        else:
            ticket.error = str(ack.code)
            log.warning("platform: %s answered command %d with %s", device.endpoint, ticket.command_id, ack.code)
        self._send_next(device)

    def _on_downlink_failed(self, device: Device, ticket: Ticket, reason: str) -> None:
        """The device did not take the command: keep it (not a stale time sync) for its next uplink."""
        device.in_flight = None
        log.info("platform: command %d to %s not delivered (%s)", ticket.command_id, device.endpoint, reason)
        if ticket.message.get("type") != "time_sync":
            device.queue.appendleft(ticket)
