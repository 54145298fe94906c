"""The rig's LwM2M platform, driven by a meter stand-in that speaks CoAP over a real UDP socket.

Most tests run on the wall clock (the platform replies at once, so waits stay short). Retransmission,
lifetime and delay timing run on a hand-moved test clock; one test plays the lockstep clock's part by
calling `take` itself with a fixed RUN time.
"""

from __future__ import annotations

import heapq
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from aiocoap import ACK, CHANGED, CON, CONTENT, CREATED, DELETE, DELETED, GET, NON, POST, PUT, RST
from aiocoap import Message as CoapMessage

from rig.clock import VirtualClock, WallClock
from rig.codec import CodecError, Message
from rig.errors import RigFault
from rig.platform import Platform
from rig.platform import server as platform_server

ENDPOINT = "861234567890123"
LINKS = b'</>;rt="oma.lwm2m";ct=11543,</3/0>,</19/0>'
START_S = 1_767_542_400.0
QUIET_S = 0.3


class JsonCodec:
    """A tiny codec for these tests: messages are JSON objects with a `type`."""

    name = "json-test"

    def encode_uplink(self, message: Message) -> bytes:
        return json.dumps(message).encode()

    def decode_uplink(self, payload: bytes) -> Message:
        try:
            message = json.loads(payload)
        except ValueError as error:
            raise CodecError(f"not JSON: {error}") from None
        if not isinstance(message, dict) or "type" not in message:
            raise CodecError("no type")
        return message

    encode_downlink = encode_uplink
    decode_downlink = decode_uplink


class HandClock:
    """A bench clock moved by the test: `advance` runs due `call_at` callbacks in the caller's thread."""

    def __init__(self, start_s: float = START_S):
        self._now = start_s
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def call_at(self, time_s: float, callback: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._timers, (time_s, next(self._sequence), callback))

    def advance(self, seconds: float) -> None:
        target = self._now + seconds
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > target:
                    break
                due, _, callback = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            callback()
        self._now = target

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait_until(self, predicate: Callable[[], object], timeout_s: float, poll_s: float = 0.5) -> bool:
        deadline = self._now + timeout_s
        while not predicate():
            if self._now >= deadline:
                return False
            self.advance(min(poll_s, deadline - self._now))
        return True


class LockstepStandIn(VirtualClock):
    """A VirtualClock without a twin: the test plays the RUN answers by calling `take` itself."""

    def __init__(self, now_s: float):
        self.channels = {}
        self.settlers = []
        self._timers = []
        self._sequence = itertools.count()
        self._now = now_s

    def attach(self, channel) -> None:
        self.channels[channel.name] = channel

    def detach(self, channel) -> None:
        self.channels.pop(channel.name, None)


class Meter:
    """The meter's module as the platform sees it: an LwM2M client on a UDP socket."""

    def __init__(self, platform_address: tuple[str, int], endpoint: str = ENDPOINT):
        self.endpoint = endpoint
        self.platform_address = platform_address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self._mids = itertools.count(100)
        self._observe_seq = itertools.count(1)
        self.observe_token = b""

    def send(self, message: CoapMessage, mtype=CON, mid: int | None = None) -> int:
        if message.mtype is None:
            message.mtype = mtype
        if message.mid is None:
            message.mid = next(self._mids) if mid is None else mid
        self.sock.sendto(message.encode(), self.platform_address)
        return message.mid

    def receive(self, timeout_s: float = 2.0) -> CoapMessage:
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"nothing from the platform within {timeout_s} s") from None
        return CoapMessage.decode(data)

    def receive_all(self, window_s: float = QUIET_S) -> list[CoapMessage]:
        received = []
        deadline = time.monotonic() + window_s
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                received.append(CoapMessage.decode(self.sock.recv(65536)))
            except TimeoutError:
                break
        return received

    def register(self) -> CoapMessage:
        request = CoapMessage(code=POST, payload=LINKS, uri_path=("rd",), content_format=40,
                              uri_query=(f"ep={self.endpoint}", "lt=86400", "lwm2m=1.0", "b=U"))
        request.token = b"\x52\x01"
        self.send(request)
        return self.receive()

    def accept_observe(self) -> CoapMessage:
        get = self.receive()
        assert (get.mtype, get.code, tuple(get.opt.uri_path)) == (CON, GET, ("19", "0", "0"))
        assert get.opt.observe == 0 and int(get.opt.accept) == 42
        self.observe_token = get.token
        self.answer(get, CONTENT, observe=0, content_format=42)
        return get

    def answer(self, request: CoapMessage, code, **options) -> None:
        reply = CoapMessage(code=code, **options)
        reply.mtype, reply.mid, reply.token = ACK, request.mid, request.token
        self.send(reply)

    def notify(self, body: Message | bytes, mtype=CON, mid: int | None = None) -> int:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        notification = CoapMessage(code=CONTENT, payload=payload, observe=next(self._observe_seq), content_format=42)
        notification.token = self.observe_token
        return self.send(notification, mtype, mid)

    def close(self) -> None:
        self.sock.close()


def command(put: CoapMessage) -> Message:
    assert (put.mtype, put.code, tuple(put.opt.uri_path)) == (CON, PUT, ("19", "1", "0"))
    assert int(put.opt.content_format) == 42
    return json.loads(put.payload)


def settled(platform: Platform, datagrams: int) -> None:
    """Wait (wall time) until the platform's reader has taken `datagrams` datagrams."""
    assert WallClock().wait_until(lambda: len(platform.received) >= datagrams, 2.0, 0.005)


@pytest.fixture
def platform() -> Iterator[Platform]:
    with Platform(JsonCodec(), WallClock(), seed=3) as opened:
        yield opened


@pytest.fixture
def meter(platform: Platform) -> Iterator[Meter]:
    standing_in = Meter(platform.address)
    yield standing_in
    standing_in.close()


@pytest.fixture
def observed(platform: Platform, meter: Meter) -> Meter:
    meter.register()
    meter.accept_observe()
    assert WallClock().wait_until(lambda: platform.devices[ENDPOINT].observed_at is not None, 2.0, 0.005)
    return meter


@pytest.fixture
def hand_clock() -> HandClock:
    return HandClock()


@pytest.fixture
def hand_platform(hand_clock: HandClock) -> Iterator[Platform]:
    with Platform(JsonCodec(), hand_clock, seed=5) as opened:
        yield opened


@pytest.fixture
def hand_meter(hand_platform: Platform) -> Iterator[Meter]:
    standing_in = Meter(hand_platform.address)
    standing_in.register()
    standing_in.accept_observe()
    settled(hand_platform, 2)
    yield standing_in
    standing_in.close()


def test_binds_loopback_on_an_ephemeral_port_by_default(platform: Platform):
    host, port = platform.address
    assert host == "127.0.0.1" and port > 0


def test_registration_is_created_then_the_platform_observes_19_0_0(platform: Platform, meter: Meter):
    created = meter.register()
    assert (created.mtype, created.code) == (ACK, CREATED)
    assert tuple(created.opt.location_path) == ("rd", ENDPOINT) and created.token == b"\x52\x01"
    meter.accept_observe()
    assert WallClock().wait_until(lambda: platform.devices[ENDPOINT].observed_at is not None, 2.0, 0.005)
    assert platform.devices[ENDPOINT].registrations == 1


def test_withheld_observe_registers_without_observing(platform: Platform, meter: Meter):
    platform.withhold_observe = True
    assert meter.register().code == CREATED
    assert meter.receive_all() == []
    assert platform.devices[ENDPOINT].observe_token is None


def test_con_report_gets_ack_then_time_sync_then_queued_commands_one_at_a_time(platform: Platform, observed: Meter):
    first = platform.queue_downlink(ENDPOINT, {"type": "read", "what": "volume"})
    second = platform.queue_downlink(ENDPOINT, {"type": "config", "report_hour": 3})
    assert observed.receive_all() == [], "commands wait for the device's next uplink"
    mid = observed.notify({"type": "report", "volume_l": 1234})
    ack = observed.receive()
    assert (ack.mtype, ack.mid, ack.code.name) == (ACK, mid, "EMPTY")
    sent = []
    for _ in range(3):
        put = observed.receive()
        sent.append(command(put))
        assert observed.receive_all() == [], "one outstanding CON at a time"
        observed.answer(put, CHANGED)
    assert sent[0]["type"] == "time_sync" and abs(sent[0]["time_s"] - time.time()) < 5
    assert sent[1:] == [first.message, second.message]
    assert WallClock().wait_until(lambda: second.acked_at is not None, 2.0, 0.005)
    assert first.sent_at <= first.acked_at <= second.sent_at
    uplink = platform.uplinks[0]
    assert (uplink.endpoint, uplink.mtype, uplink.mid) == (ENDPOINT, "CON", mid)
    assert uplink.message == {"type": "report", "volume_l": 1234} and uplink.size_bytes == len(uplink.payload)


def test_non_report_gets_no_ack_but_its_time_sync(platform: Platform, observed: Meter):
    observed.notify({"type": "report", "n": 1}, mtype=NON)
    assert command(observed.receive())["type"] == "time_sync"
    uplink = platform.wait_for_uplink(lambda candidate: candidate.message["n"] == 1, 2.0)
    assert uplink is not None and uplink.mtype == "NON"
    assert platform.wait_for_uplink(lambda candidate: True, 0.1, since=1) is None


def test_registration_update_and_deregistration(platform: Platform, observed: Meter):
    update = CoapMessage(code=POST, uri_path=("rd", ENDPOINT))
    observed.send(update)
    assert observed.receive().code == CHANGED
    deregister = CoapMessage(code=DELETE, uri_path=("rd", ENDPOINT))
    observed.send(deregister)
    assert observed.receive().code == DELETED
    mid = observed.notify({"type": "report"})
    reset = observed.receive()
    assert (reset.mtype, reset.mid) == (RST, mid), "a notification on a forgotten observation is reset"
    assert platform.uplinks == []


def test_response_uplink_answers_its_ticket_without_another_time_sync(platform: Platform, observed: Meter):
    ticket = platform.queue_downlink(ENDPOINT, {"type": "read", "what": "valve"})
    observed.notify({"type": "report"})
    observed.receive()
    observed.answer(observed.receive(), CHANGED)
    observed.answer(observed.receive(), CHANGED)
    observed.notify({"type": "response", "command_id": ticket.command_id, "valve": "open"})
    assert observed.receive().mtype == ACK
    assert observed.receive_all() == [], "a response does not start another time sync"
    assert ticket.answer == {"type": "response", "command_id": ticket.command_id, "valve": "open"}
    assert ticket.queued_at <= ticket.sent_at <= ticket.acked_at <= ticket.answered_at


def test_swallowed_uplink_and_its_retransmission_get_nothing_and_the_next_is_handled(
    platform: Platform, observed: Meter
):
    platform.swallow_next_uplinks(1)
    mid = observed.notify({"type": "report", "n": 1})
    observed.notify({"type": "report", "n": 1}, mid=mid)
    assert observed.receive_all() == []
    following = observed.notify({"type": "report", "n": 2})
    assert observed.receive().mid == following
    assert command(observed.receive())["type"] == "time_sync"
    assert [uplink.message["n"] for uplink in platform.swallowed] == [1]
    assert [uplink.message["n"] for uplink in platform.uplinks] == [2]
    assert [datagram.mid for datagram in platform.received[-3:]] == [mid, mid, following]


def test_duplicate_con_is_acked_again_but_recorded_once(platform: Platform, observed: Meter):
    mid = observed.notify({"type": "report"})
    observed.notify({"type": "report"}, mid=mid)
    replies = observed.receive_all()
    assert sorted((reply.mtype, reply.mid) for reply in replies if reply.mtype == ACK) == [(ACK, mid), (ACK, mid)]
    assert [command(reply)["type"] for reply in replies if reply.mtype == CON] == ["time_sync"]
    assert len(platform.uplinks) == 1


def test_malformed_datagram_is_recorded_and_the_platform_keeps_working(platform: Platform, meter: Meter):
    meter.sock.sendto(b"\x01", platform.address)
    assert meter.register().code == CREATED
    garbage = platform.received[0]
    assert garbage.size_bytes == 1 and garbage.error and garbage.mid is None


def test_undecodable_payload_is_recorded_with_the_codec_error(platform: Platform, observed: Meter):
    observed.notify(b"\xff\x00 not json")
    assert observed.receive().mtype == ACK
    uplink = platform.uplinks[0]
    assert uplink.message is None and "CodecError" in uplink.error and uplink.payload == b"\xff\x00 not json"
    assert command(observed.receive())["type"] == "time_sync", "an unreadable report still gets its time sync"


def test_unacked_downlink_is_retransmitted_at_2_to_3_s_doubling_then_given_up(
    hand_platform: Platform, hand_clock: HandClock, hand_meter: Meter
):
    held = hand_platform.queue_downlink(ENDPOINT, {"type": "read"})
    hand_meter.notify({"type": "report"})
    hand_meter.receive()
    put = hand_meter.receive()
    sends = 4  # 2.01, observe GET, ACK, PUT: the reader thread counts a datagram just after sending it
    assert WallClock().wait_until(lambda: hand_platform.sent_total() == sends, 2.0, 0.005)
    start_s, sent_times = hand_clock.now(), []
    while hand_clock.now() < start_s + 200:
        hand_clock.advance(0.01)
        if hand_platform.sent_total() != sends:
            sends = hand_platform.sent_total()
            sent_times.append(hand_clock.now() - start_s)
    assert len(sent_times) == 4
    first = sent_times[0]
    assert 2.0 <= first <= 3.0 + 0.01
    gaps = [later - earlier for earlier, later in zip([0.0, *sent_times], sent_times, strict=False)]
    assert gaps == pytest.approx([first, 2 * first, 4 * first, 8 * first], abs=0.03)
    for _ in sent_times:
        again = hand_meter.receive()
        assert (again.mid, again.token, again.payload) == (put.mid, put.token, put.payload)
    time_sync = hand_platform.tickets[-1]
    assert time_sync.message["type"] == "time_sync" and time_sync.acked_at is None
    assert list(hand_platform.devices[ENDPOINT].queue) == [held] and held.sent_at is None
    hand_meter.notify({"type": "report"})
    hand_meter.receive()
    assert command(hand_meter.receive())["type"] == "time_sync", "the held command waits behind a new time sync"


def test_message_id_counts_as_new_after_the_exchange_lifetime_on_the_bench_clock(
    hand_platform: Platform, hand_clock: HandClock, hand_meter: Meter
):
    hand_meter.notify({"type": "report"}, mid=7)
    assert hand_meter.receive().mid == 7
    hand_meter.answer(hand_meter.receive(), CHANGED)
    settled(hand_platform, 4)
    hand_clock.advance(100)
    hand_meter.notify({"type": "report"}, mid=7)
    assert hand_meter.receive().mid == 7
    assert len(hand_platform.uplinks) == 1
    hand_clock.advance(150)
    hand_meter.notify({"type": "report"}, mid=7)
    assert hand_meter.receive().mid == 7
    assert command(hand_meter.receive())["type"] == "time_sync"
    assert len(hand_platform.uplinks) == 2


def test_delayed_uplink_is_handled_late_on_the_bench_clock(
    hand_platform: Platform, hand_clock: HandClock, hand_meter: Meter
):
    hand_platform.delay_next_uplinks(1, 5.0)
    sent_s = hand_clock.now()
    mid = hand_meter.notify({"type": "report"})
    settled(hand_platform, 3)
    hand_clock.advance(4.9)
    assert hand_meter.receive_all(0.1) == [] and hand_platform.uplinks == []
    hand_clock.advance(0.1)
    assert hand_meter.receive().mid == mid
    assert command(hand_meter.receive())["type"] == "time_sync"
    uplink = hand_platform.uplinks[0]
    assert (uplink.time_s, uplink.handled_s) == (sent_s, pytest.approx(sent_s + 5.0))


def test_lockstep_take_stamps_with_the_run_time_and_replies_before_returning():
    clock = LockstepStandIn(START_S)
    with Platform(JsonCodec(), clock) as platform:
        assert clock.channels["platform"] is platform
        meter = Meter(platform.address)
        request = CoapMessage(code=POST, payload=LINKS, uri_path=("rd",), uri_query=(f"ep={ENDPOINT}",))
        meter.send(request)
        platform.take(1, START_S + 10.0)
        assert meter.receive(0.5).code == CREATED
        meter.accept_observe()
        assert platform.sent_total() == 2
        platform.take(1, START_S + 11.0)
        meter.notify({"type": "report"})
        platform.take(1, START_S + 12.5)
        assert meter.receive(0.5).mtype == ACK and command(meter.receive(0.5))["type"] == "time_sync"
        assert platform.sent_total() == 4
        assert [datagram.time_s for datagram in platform.received] == [START_S + 10.0, START_S + 11.0, START_S + 12.5]
        assert platform.uplinks[0].time_s == START_S + 12.5
        meter.close()


def test_lockstep_take_of_a_datagram_that_never_comes_is_a_rig_fault(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(platform_server, "READ_LIMIT_S", 0.2)
    with Platform(JsonCodec(), LockstepStandIn(START_S)) as platform, pytest.raises(RigFault, match="announced 1"):
        platform.take(1, START_S)
