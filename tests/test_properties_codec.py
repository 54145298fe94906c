"""Property tests of the reference payload codec: whatever bytes arrive, decoding gives a message or a
CodecError naming the field, never another exception; whatever a caller hands to encode, the same; and
every valid report, alarm and downlink survives encode then decode unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rig.codec import CodecError, Message
from rig.codec.reference import ALARM_NAMES, CONFIG_KEYS, MESSAGE_MAX_BYTES, SCHEDULES, ReferenceCodec
from tests.property_settings import property_settings

CODEC = ReferenceCodec()


def ints(bits: int, signed: bool = False, lo: int | None = None) -> st.SearchStrategy[int]:
    low = -(1 << (bits - 1)) if signed else 0
    high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    return st.integers(low if lo is None else lo, high)


def tenths(lo: int, hi: int) -> st.SearchStrategy[float]:
    """A value the codec carries in tenths, as it decodes it."""
    return st.integers(lo, hi).map(lambda raw: raw / 10)


firmware = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=5)
networks = st.fixed_dictionaries({
    "pci": st.integers(0, 503), "rsrp_dbm": tenths(-1800, 0), "sinr_db": tenths(-500, 500),
    "ecl": st.integers(0, 2), "earfcn": st.integers(0, 262143),
})
report_head = {
    "meter_number": ints(48), "time_s": ints(32), "battery_mv": ints(16),
    "alarms": st.lists(st.sampled_from(ALARM_NAMES), unique=True).map(lambda some: sorted(some, key=ALARM_NAMES.index)),
    "daily_cumulative_l": ints(32), "daily_reverse_l": ints(32), "instantaneous_l_per_h": ints(32, signed=True),
    "freeze_interval_s": ints(16, lo=1), "report_period_s": ints(32, lo=1),
    "valve": st.sampled_from(("none", "open", "closed")), "mcu_firmware": firmware, "module_firmware": firmware,
    "period_consumption_l": st.lists(ints(16), max_size=96),
}
report_tail = {
    "network": networks,
    "period_pressure_kpa": st.lists(st.integers(0, 255).map(lambda raw: raw * 10), max_size=24),
    "padding": st.integers(0, 40),
}
basic_reports = st.fixed_dictionaries({"type": st.just("basic_report"), **report_head}, optional=report_tail)
enhanced_reports = st.fixed_dictionaries(
    {"type": st.just("enhanced_report"), **report_head,
     "period_temperature_c": st.lists(st.integers(-128, 127).map(lambda raw: raw / 2), max_size=48),
     "period_vibration": st.lists(ints(8), max_size=48)},
    optional=report_tail,
)
alarms = st.fixed_dictionaries({"type": st.just("alarm"), "meter_number": ints(48), "time_s": ints(32),
                                "alarm": st.sampled_from(ALARM_NAMES), "value": ints(32, signed=True)})
scalars = st.one_of(st.none(), st.booleans(), ints(64, signed=True), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20))
results = st.fixed_dictionaries(
    {"command_id": ints(16), "status": st.sampled_from(("ok", "refused", "unknown"))},
    optional={"value": st.one_of(scalars.filter(lambda v: v is not None),
                                 st.dictionaries(st.text(max_size=8), scalars, max_size=4))},
)
responses = st.fixed_dictionaries({"type": st.just("response"), "meter_number": ints(48), "time_s": ints(32),
                                   "results": st.lists(results, max_size=4)})
uplinks = st.one_of(basic_reports, enhanced_reports, alarms, responses)

config_values = {key: st.integers(1, 86400) for key in CONFIG_KEYS} | {
    "report_t1": st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59)),
    "schedule": st.sampled_from(SCHEDULES),
}
downlinks = st.one_of(
    st.fixed_dictionaries({"type": st.just("time_sync"), "command_id": ints(16),
                           "time_s": ints(48).map(lambda raw: raw / 1000)}),
    st.sampled_from(list(CONFIG_KEYS)).flatmap(lambda key: st.fixed_dictionaries(
        {"type": st.just("config_write"), "command_id": ints(16), "key": st.just(key), "value": config_values[key]})),
    st.fixed_dictionaries({"type": st.just("valve"), "command_id": ints(16),
                           "action": st.sampled_from(("open", "close"))}),
    st.fixed_dictionaries({"type": st.just("point_read"), "command_id": ints(16)}),
    st.fixed_dictionaries({"type": st.just("log_upload"), "command_id": ints(16), "days": st.integers(1, 255)}),
)


def encoded(message: Message, uplink: bool) -> bytes:
    try:
        return CODEC.encode_uplink(message) if uplink else CODEC.encode_downlink(message)
    except CodecError as error:  # a generated message may still exceed the 512-byte limit; nothing else
        assume("-byte limit" not in str(error))
        raise


def decoded(payload: bytes, uplink: bool) -> Message:
    return CODEC.decode_uplink(payload) if uplink else CODEC.decode_downlink(payload)


def without_empty(message: Message) -> Message:
    """A decode leaves absent optional fields out (a result without a value decodes it as absent too)."""
    return {key: value for key, value in message.items() if value is not None}


@property_settings(max_examples=60)
@given(message=uplinks)
def test_every_valid_uplink_survives_encode_then_decode(message: Message) -> None:
    payload = encoded(message, uplink=True)
    assert len(payload) <= MESSAGE_MAX_BYTES
    assert decoded(payload, uplink=True) == without_empty(message)


@property_settings()
@given(message=downlinks)
def test_every_valid_downlink_survives_encode_then_decode(message: Message) -> None:
    assert decoded(encoded(message, uplink=False), uplink=False) == message


@property_settings(max_examples=400)
@given(payload=st.binary(max_size=MESSAGE_MAX_BYTES + 8), uplink=st.booleans())
def test_any_bytes_decode_to_a_message_or_a_codec_error(payload: bytes, uplink: bool) -> None:
    try:
        message = decoded(payload, uplink)
    except CodecError as error:
        assert str(error)
        return
    assert decoded(encoded(message, uplink), uplink) == message


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A valid payload with a few bytes changed, cut short or grown (after its type code and version)."""
    uplink = draw(st.booleans())
    data = bytearray(encoded(draw(uplinks if uplink else downlinks), uplink))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(2, max(len(data) - 1, 2)))
        action = draw(st.sampled_from(("set", "cut", "insert")))
        if action == "set" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[where:]
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data), uplink


@property_settings(max_examples=150)
@given(case=mutated())
def test_a_mutated_valid_payload_decodes_or_raises_codec_error(case: tuple[bytes, bool]) -> None:
    payload, uplink = case
    try:
        message = decoded(payload, uplink)
    except CodecError:
        return
    assert decoded(encoded(message, uplink), uplink) == message


anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.binary(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
FIELDS = sorted({*report_head, *report_tail, "type", "command_id", "key", "value", "action", "results", "alarm",
                 "time_s", "days", "entries", "index", "total", "data", "offset", "target", "version", "signature"})
hostile_messages = st.one_of(
    anything,
    st.dictionaries(st.sampled_from(FIELDS), anything, max_size=8).flatmap(
        lambda body: st.sampled_from(["basic_report", "enhanced_report", "alarm", "response", "log_chunk",
                                      "time_sync", "config_write", "config_query", "point_read", "valve",
                                      "reselection", "log_upload", "image_chunk", "nonsense"]).map(
            lambda kind: {**body, "type": kind})),
)


@property_settings(max_examples=60)
@given(message=hostile_messages, uplink=st.booleans())
def test_anything_handed_to_encode_gives_bytes_or_a_codec_error(message: Any, uplink: bool) -> None:
    try:
        payload = CODEC.encode_uplink(message) if uplink else CODEC.encode_downlink(message)
    except CodecError:
        return
    assert decoded(payload, uplink)["type"] == message["type"]


def test_a_payload_over_the_message_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(CodecError, match=r"over the 512-byte message limit"):
        CODEC.decode_uplink(b"\x01\x01" + bytes(10 * MESSAGE_MAX_BYTES))


@pytest.mark.parametrize(
    ("field", "value"),
    [("version", "v\ud800"), ("offset", 10**5000), ("total", 10**5000)],  # a lone surrogate; past int's digit limit
    ids=["lone-surrogate", "huge-offset", "huge-total"],
)
def test_a_value_python_cannot_encode_or_print_is_a_codec_error_naming_the_field(field: str, value: Any) -> None:
    chunk = {"type": "image_chunk", "command_id": 1, "target": "mcu", "version": "v1", "offset": 0, "total": 1,
             "data": b"x"}
    with pytest.raises(CodecError, match=field) as refused:
        ReferenceCodec().encode_downlink({**chunk, field: value})
    assert len(str(refused.value)) < 200
