"""Property tests of the platform's CoAP handling, over a real UDP socket: any datagram, and any valid
registration, notification, ACK or reset with a few bytes changed, is decoded or refused with
MalformedDatagram, recorded, and leaves the platform answering; no exception reaches its reader.
"""

from __future__ import annotations

import itertools
import logging
import socket
import time
from collections.abc import Iterator

import pytest
from aiocoap import ACK, CHANGED, CON, CONTENT, DELETE, EMPTY, GET, NON, POST, RST
from aiocoap import Message as CoapMessage
from hypothesis import given
from hypothesis import strategies as st

from rig.clock import WallClock
from rig.codec.reference import ReferenceCodec
from rig.platform import Platform
from rig.platform.coap import MalformedDatagram, decode
from tests.property_settings import property_settings

ENDPOINT = "861234567890123"
REPORT = ReferenceCodec().encode_uplink({
    "type": "alarm", "meter_number": 7, "time_s": 1_767_542_400, "alarm": "magnetic", "value": 1,
})
ANSWER_S = 2.0


class Witness(logging.Handler):
    """Collects what the platform logs at ERROR: a datagram whose handling raised."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Meter:
    """The meter's module as the platform sees it: a UDP socket that registers and then sends anything."""

    def __init__(self, platform: Platform):
        self.platform = platform
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.pings = itertools.count(1)
        self.token = b""

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.platform.address)

    def receive(self) -> CoapMessage:
        self.sock.settimeout(ANSWER_S)
        return CoapMessage.decode(self.sock.recv(65536))

    def register(self) -> None:
        """Register and answer the platform's observe, so notifications reach the codec."""
        self.send(message(POST, CON, 1, uri_path=("rd",), uri_query=(f"ep={ENDPOINT}", "lt=86400"), token=b"R1"))
        assert self.handled()

    def handled(self) -> bool:
        """Send a CoAP ping and wait for its reset: the platform took everything sent before it. On the way,
        answer what the platform asks as a meter would: an observe (its token is the new one), a command."""
        mid = next(self.pings) % 0x10000
        self.send(message(EMPTY, CON, mid))
        deadline = time.monotonic() + ANSWER_S
        while time.monotonic() < deadline:
            try:
                answer = self.receive()
            except (TimeoutError, ValueError):
                continue
            if (answer.mtype, answer.mid) == (RST, mid):
                return True
            if answer.mtype == CON:
                self.answer(answer)
        return False

    def answer(self, request: CoapMessage) -> None:
        observe = request.code == GET
        reply = CoapMessage(code=CONTENT if observe else CHANGED, **({"observe": 0} if observe else {}))
        reply.mtype, reply.mid, reply.token = ACK, request.mid, request.token
        if observe:
            self.token = request.token
        self.send(reply.encode())


def message(code, mtype, mid: int, token: bytes = b"", **options) -> bytes:
    built = CoapMessage(code=code, **options)
    built.mtype, built.mid, built.token = mtype, mid, token
    return built.encode()


@pytest.fixture(scope="module")
def witness() -> Iterator[Witness]:
    handler = Witness()
    logger = logging.getLogger("rig.platform")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def bench(witness: Witness) -> Iterator[tuple[Platform, Meter]]:
    with Platform(ReferenceCodec(), WallClock(), seed=15) as platform:
        meter = Meter(platform)
        meter.register()
        yield platform, meter
        meter.sock.close()


def valid_messages(token: bytes) -> st.SearchStrategy[bytes]:
    """What a meter sends: registrations, updates, notifications (CON and NON), ACKs, resets, a deregistration."""
    mids = st.integers(0, 0xFFFF)
    return st.one_of(
        mids.map(lambda mid: message(POST, CON, mid, token=b"R2", uri_path=("rd",), payload=b"</19/0>",
                                     uri_query=(f"ep={ENDPOINT}", "lt=86400", "b=U"))),
        mids.map(lambda mid: message(POST, CON, mid, token=b"U1", uri_path=("rd", ENDPOINT))),
        st.tuples(mids, st.sampled_from([CON, NON]), st.integers(0, 0xFFFFFF), st.sampled_from([REPORT, b""])).map(
            lambda case: message(CONTENT, case[1], case[0], token=token, observe=case[2], content_format=42,
                                 payload=case[3])),
        st.tuples(mids, st.sampled_from([ACK, RST])).map(lambda case: message(EMPTY, case[1], case[0])),
        mids.map(lambda mid: message(DELETE, CON, mid, token=b"D1", uri_path=("rd", ENDPOINT))),
    )


@st.composite
def meter_datagrams(draw: st.DrawFn, token: bytes) -> bytes:
    """Noise, or a valid message with bytes changed, cut or inserted anywhere (header included)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(valid_messages(token)))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(("set", "cut", "insert")))
        if action == "set" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[where:]
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=6))
    return bytes(data)


@property_settings(max_examples=400)
@given(data=st.binary(max_size=300))
def test_any_bytes_decode_to_a_coap_message_or_malformed_datagram(data: bytes) -> None:
    try:
        decoded = decode(data)
    except MalformedDatagram as error:
        assert str(error)
        return
    assert decoded.mid is not None


@property_settings(max_examples=100)
@given(case=st.data())
def test_the_platform_takes_any_datagram_from_a_meter_and_keeps_answering(
    bench: tuple[Platform, Meter], witness: Witness, case: st.DataObject
) -> None:
    platform, meter = bench
    datagrams = case.draw(st.lists(meter_datagrams(meter.token), min_size=1, max_size=4))
    before = len(platform.received)
    for data in datagrams:
        meter.send(data)
    assert meter.handled(), "the platform stopped answering a CoAP ping"
    assert witness.records == [], witness.records[0].getMessage()
    recorded = platform.received[before:]
    assert len(recorded) >= len(datagrams) + 1  # the ping too, and the answers to what the platform asked
    for datagram in recorded:
        assert (datagram.mid is None) == (datagram.error is not None)


def test_after_the_noise_a_registered_meter_is_still_heard(bench: tuple[Platform, Meter]) -> None:
    """The path the properties fuzz ends at the codec: a notification decodes, a garbled payload is recorded
    with the codec's refusal, both on the observe token the platform holds."""
    platform, _ = bench
    meter = Meter(platform)  # a fresh port: no message id of the noise is within its deduplication window
    meter.register()
    before = len(platform.uplinks)
    meter.send(message(CONTENT, CON, 40001, token=meter.token, observe=90, content_format=42, payload=REPORT))
    meter.send(message(CONTENT, CON, 40002, token=meter.token, observe=91, content_format=42, payload=REPORT[:-1]))
    assert meter.handled()
    heard = platform.uplinks[before:]
    assert [uplink.mid for uplink in heard] == [40001, 40002]
    assert heard[0].message is not None and heard[0].message["type"] == "alarm"
    assert heard[1].message is None and "CodecError" in heard[1].error
    meter.sock.close()
