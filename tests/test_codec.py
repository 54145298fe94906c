"""The reference codec as a specification: round trips, table 4-1/4-2 sizes, and refusals that name the field."""

from __future__ import annotations

import copy
import hashlib
import hmac
import random
from typing import Any

import pytest

from rig.codec import CodecError, load_codec
from rig.codec.reference import ALARM_NAMES, CONFIG_KEYS, MESSAGE_MAX_BYTES, ReferenceCodec

Message = dict[str, Any]
DAY_START_S = 1767542400  # 2026-01-05 00:00 Asia/Shanghai, the plan's default start
NETWORK = {"pci": 301, "rsrp_dbm": -110.3, "sinr_db": 2.4, "ecl": 1, "earfcn": 2506}


@pytest.fixture(scope="module")
def codec() -> ReferenceCodec:
    return ReferenceCodec()


def household_report(**changes: Any) -> Message:
    """A full day of a household meter: 48 half-hour freezes, the network block, no pressure sensor."""
    report: Message = {
        "type": "basic_report",
        "meter_number": 12345678901234,
        "time_s": DAY_START_S + 3600 + 37,
        "battery_mv": 3582,
        "alarms": ["low_battery", "magnetic"],
        "daily_cumulative_l": 1234567,
        "daily_reverse_l": 12,
        "instantaneous_l_per_h": -40,
        "period_consumption_l": [0] * 12 + [35, 120, 2400, 65535] * 9,
        "freeze_interval_s": 1800,
        "report_period_s": 86400,
        "valve": "open",
        "mcu_firmware": "RWM1-2.3.0",
        "module_firmware": "V150R100C10B200SP1",
        "network": dict(NETWORK),
    }
    report.update(changes)
    return report


def leak_mode_report() -> Message:
    return household_report(period_consumption_l=[7] * 12, freeze_interval_s=300, report_period_s=3600)


def enhanced_report(**changes: Any) -> Message:
    extras = {"period_temperature_c": [12.5, -3.0, 63.5, -64.0] * 12, "period_vibration": [0, 17, 255, 3] * 12}
    return household_report(type="enhanced_report", **{**extras, **changes})


UPLINKS: dict[str, Message] = {
    "basic_report": household_report(),
    "basic_report_hourly_pressure": household_report(period_pressure_kpa=[0, 250, 320, 2550] * 6),
    "basic_report_leak_mode": leak_mode_report(),
    "basic_report_no_network": household_report(network=None),
    "basic_report_padded": household_report(padding=7),
    "enhanced_report": enhanced_report(),
    "alarm": {"type": "alarm", "meter_number": 1, "time_s": DAY_START_S, "alarm": "magnetic", "value": 1},
    "response": {
        "type": "response",
        "meter_number": 199,
        "time_s": DAY_START_S + 7200,
        "results": [
            {"command_id": 0, "status": "ok"},
            {"command_id": 7, "status": "ok", "value": {"cumulative_l": 1234567, "reverse_l": 12, "rate": 0.5}},
            {"command_id": 8, "status": "ok", "value": {"report_t1": "04:00"}},
            {"command_id": 9, "status": "refused", "value": "closing forbidden"},
            {"command_id": 10, "status": "unknown", "value": -(2**40)},
            {"command_id": 65535, "status": "ok", "value": {"flag": True, "none": None, "off": False}},
        ],
    },
    "log_chunk": {"type": "log_chunk", "meter_number": 200, "index": 2, "total": 3, "entries": b"0105 boot\n" * 40},
}

IMAGE_KEY = b"rig-reference-signing-key"
IMAGE_DATA = bytes(range(256)) * 2
DOWNLINKS: dict[str, Message] = {
    "time_sync": {"type": "time_sync", "command_id": 1, "time_s": DAY_START_S + 3637.123},
    **{
        f"config_write_{key}": {"type": "config_write", "command_id": 2, "key": key, "value": 300}
        for key in CONFIG_KEYS
        if key not in ("report_t1", "schedule")
    },
    "config_write_report_t1": {"type": "config_write", "command_id": 3, "key": "report_t1", "value": "23:59"},
    "config_write_schedule": {"type": "config_write", "command_id": 4, "key": "schedule", "value": "large_intensive"},
    "config_query": {"type": "config_query", "command_id": 5, "key": "report_t3_s"},
    "point_read": {"type": "point_read", "command_id": 6},
    "valve": {"type": "valve", "command_id": 7, "action": "close"},
    "reselection": {"type": "reselection", "command_id": 8, "enabled": False},
    "log_upload": {"type": "log_upload", "command_id": 9, "days": 31},
    "image_chunk": {
        "type": "image_chunk",
        "command_id": 10,
        "target": "mcu",
        "version": "RWM1-2.4.0",
        "offset": 0,
        "total": 1200,
        "data": IMAGE_DATA[:400],
    },
    "image_chunk_last": {
        "type": "image_chunk",
        "command_id": 65535,
        "target": "module",
        "version": "V150R100C10B300SP5",
        "offset": 800,
        "total": 1200,
        "data": IMAGE_DATA[:400],
        "signature": hmac.new(IMAGE_KEY, IMAGE_DATA, hashlib.sha256).digest(),
    },
}


def without_none(message: Message) -> Message:
    """What a decode gives back: absent optional fields are left out, not None."""
    return {k: v for k, v in message.items() if v is not None}


@pytest.mark.parametrize("name", UPLINKS)
def test_every_uplink_type_round_trips(codec: ReferenceCodec, name: str) -> None:
    message = UPLINKS[name]
    assert codec.decode_uplink(codec.encode_uplink(message)) == without_none(message)


@pytest.mark.parametrize("name", DOWNLINKS)
def test_every_downlink_type_round_trips(codec: ReferenceCodec, name: str) -> None:
    message = DOWNLINKS[name]
    assert codec.decode_downlink(codec.encode_downlink(message)) == message


def test_uplinks_carry_the_meter_number_and_downlinks_the_command_id_at_byte_2(codec: ReferenceCodec) -> None:
    for message in UPLINKS.values():
        assert int.from_bytes(codec.encode_uplink(message)[2:8], "big") == message["meter_number"]
    for message in DOWNLINKS.values():
        assert int.from_bytes(codec.encode_downlink(message)[2:4], "big") == message["command_id"]


def test_full_day_household_report_is_under_200_bytes(codec: ReferenceCodec) -> None:
    assert len(codec.encode_uplink(household_report())) == 172
    assert len(codec.encode_uplink(household_report(period_pressure_kpa=[300] * 24))) < 200


def test_leak_mode_hourly_report_is_under_200_bytes(codec: ReferenceCodec) -> None:
    assert len(codec.encode_uplink(leak_mode_report())) == 100


def test_full_day_enhanced_report_is_under_300_bytes(codec: ReferenceCodec) -> None:
    assert len(codec.encode_uplink(enhanced_report())) == 270
    assert len(codec.encode_uplink(enhanced_report(period_pressure_kpa=[300] * 24))) < 300


def test_alarm_is_under_50_bytes(codec: ReferenceCodec) -> None:
    for name in ALARM_NAMES:
        alarm = {"type": "alarm", "meter_number": 2**48 - 1, "time_s": 2**32 - 1, "alarm": name, "value": -(2**31)}
        assert len(codec.encode_uplink(alarm)) == 17


@pytest.mark.parametrize(
    ("prefix", "below"), [("config_write", 50), ("config_query", 50), ("point_read", 40), ("valve", 40)]
)
def test_downlinks_fit_table_4_2(codec: ReferenceCodec, prefix: str, below: int) -> None:
    sizes = [len(codec.encode_downlink(m)) for name, m in DOWNLINKS.items() if name.startswith(prefix)]
    assert sizes
    assert max(sizes) < below


def test_basic_report_pads_to_exactly_300_bytes_and_still_decodes(codec: ReferenceCodec) -> None:
    unpadded = len(codec.encode_uplink(household_report()))
    padded = household_report(padding=300 - unpadded - 2)  # the padding block costs its count + 2
    payload = codec.encode_uplink(padded)
    assert len(payload) == 300
    assert codec.decode_uplink(payload) == padded


def test_padding_bytes_must_be_zero(codec: ReferenceCodec) -> None:
    payload = bytearray(codec.encode_uplink(household_report(padding=4)))
    payload[-1] = 0xFF
    with pytest.raises(CodecError, match=r"basic_report\.padding"):
        codec.decode_uplink(bytes(payload))


def test_network_block_absent_decodes_absent_not_zeros(codec: ReferenceCodec) -> None:
    with_block = codec.decode_uplink(codec.encode_uplink(household_report()))
    report = household_report()
    del report["network"]
    without_block = codec.decode_uplink(codec.encode_uplink(report))
    assert with_block["network"] == NETWORK
    assert "network" not in without_block
    assert not {"pci", "rsrp_dbm", "sinr_db", "ecl", "earfcn"} & set(without_block)
    assert len(codec.encode_uplink(household_report())) - len(codec.encode_uplink(report)) == 10


def test_scaled_fields_round_to_their_resolution(codec: ReferenceCodec) -> None:
    report = household_report(
        network={**NETWORK, "rsrp_dbm": -110.34, "sinr_db": -2.96}, period_pressure_kpa=[314, 256, 0]
    )
    decoded = codec.decode_uplink(codec.encode_uplink(report))
    assert (decoded["network"]["rsrp_dbm"], decoded["network"]["sinr_db"]) == (-110.3, -3.0)
    assert decoded["period_pressure_kpa"] == [310, 260, 0]
    sync = codec.decode_downlink(codec.encode_downlink({"type": "time_sync", "command_id": 0, "time_s": 1.0004}))
    assert sync["time_s"] == 1.0


def test_load_codec_finds_the_reference_codec_through_its_entry_point() -> None:
    codec = load_codec("reference")
    assert isinstance(codec, ReferenceCodec)
    assert codec.name == "reference"


def test_load_codec_names_the_installed_codecs_when_asked_for_an_unknown_one() -> None:
    with pytest.raises(CodecError, match=r"'nope'.*reference"):
        load_codec("nope")


def every_valid_payload(codec: ReferenceCodec) -> list[tuple[str, bytes, bool]]:
    """(name, payload, is_uplink) for every example message."""
    return [(n, codec.encode_uplink(m), True) for n, m in UPLINKS.items()] + [
        (n, codec.encode_downlink(m), False) for n, m in DOWNLINKS.items()
    ]


def decode(codec: ReferenceCodec, payload: bytes, uplink: bool) -> Message:
    return codec.decode_uplink(payload) if uplink else codec.decode_downlink(payload)


def test_every_truncation_of_every_valid_message_raises_codec_error(codec: ReferenceCodec) -> None:
    for name, payload, uplink in every_valid_payload(codec):
        for cut in range(len(payload)):
            with pytest.raises(CodecError):
                decode(codec, payload[:cut], uplink)
                pytest.fail(f"{name} cut to {cut} of {len(payload)} bytes decoded")


def test_truncated_report_names_the_field_it_stopped_in(codec: ReferenceCodec) -> None:
    payload = codec.encode_uplink(household_report())
    with pytest.raises(CodecError, match=r"^basic_report\.period_consumption_l\[3\]: truncated"):
        codec.decode_uplink(payload[:72])
    with pytest.raises(CodecError, match=r"^basic_report\.version: truncated"):
        codec.decode_uplink(payload[:1])


def at(offset: int, data: bytes) -> Any:
    """A mangler that overwrites the payload's bytes from `offset` on (offsets: docs/codec-reference.md)."""
    return lambda payload: payload[:offset] + data + payload[offset + len(data) :]


MALFORMED_REPORTS: dict[str, tuple[Any, str]] = {
    "trailing-garbage": (lambda p: p + b"\x00", r"^basic_report: 1 trailing bytes"),
    "bad-version": (at(1, b"\x02"), r"^basic_report\.version: format version 2"),
    "unknown-type": (at(0, b"\x7f"), r"^uplink\.type: unknown type code 0x7f"),
    "downlink-type": (at(0, b"\x81"), r"^uplink\.type: unknown type code 0x81 \(the code of time_sync\)"),
    "empty": (lambda p: b"", r"^uplink\.type: empty payload"),
    "alarm-bits": (at(14, b"\xff"), r"^basic_report\.alarms: unknown bits"),
    "valve-code": (at(33, b"\x09"), r"^basic_report\.valve: unknown code 9"),
    "presence-bits": (at(161, b"\x10"), r"^basic_report\.present: unknown block bits"),
    "pci": (at(162, b"\x02\x00"), r"^basic_report\.network\.pci: 512 out of range 0\.\.503"),
    "firmware-length": (at(34, b"\x15"), r"^basic_report\.mcu_firmware: 21 bytes, at most 20"),
    "firmware-utf8": (at(35, b"\xff"), r"^basic_report\.mcu_firmware: not UTF-8"),
    "over-512": (lambda p: p + bytes(MESSAGE_MAX_BYTES), r"^uplink: 684 bytes, over the 512-byte message limit"),
}


@pytest.mark.parametrize("case", MALFORMED_REPORTS)
def test_malformed_report_raises_codec_error_naming_the_field(codec: ReferenceCodec, case: str) -> None:
    mangle, match = MALFORMED_REPORTS[case]
    with pytest.raises(CodecError, match=match):
        codec.decode_uplink(mangle(codec.encode_uplink(household_report())))


def test_decode_refuses_what_encode_would_refuse(codec: ReferenceCodec) -> None:
    chunk = codec.encode_uplink(UPLINKS["log_chunk"])
    with pytest.raises(CodecError, match=r"^log_chunk\.index: 3 is not below total 3"):
        codec.decode_uplink(chunk[:8] + b"\x00\x03" + chunk[10:])
    time_sync = codec.encode_downlink(DOWNLINKS["time_sync"])
    with pytest.raises(CodecError, match=r"^downlink: expects bytes"):
        codec.decode_downlink(time_sync.hex())  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=r"^downlink\.type: unknown type code 0x01 \(the code of basic_report\)"):
        codec.decode_downlink(codec.encode_uplink(household_report()))


def test_random_bytes_decode_or_raise_codec_error_and_nothing_else(codec: ReferenceCodec) -> None:
    rng = random.Random(20260105)
    valid = [(payload, uplink) for _, payload, uplink in every_valid_payload(codec)]
    decoded = 0
    for _ in range(10000):
        payload, uplink = rng.choice(valid)
        if rng.random() < 0.3:  # pure noise behind a real type code and version
            payload = payload[:2] + rng.randbytes(rng.randrange(0, 60))
        else:  # a valid message with a few bytes changed
            mutated = bytearray(payload)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(2, len(mutated))] = rng.randrange(256)
            payload = bytes(mutated)
        try:
            message = decode(codec, payload, uplink)
        except CodecError:
            continue
        decoded += 1
        again = codec.encode_uplink(message) if uplink else codec.encode_downlink(message)
        assert decode(codec, again, uplink) == message
    assert decoded > 500


def drop(message: Message, key: str) -> Message:
    changed = copy.deepcopy(message)
    del changed[key]
    return changed


def response(value: Any) -> Message:
    return {**UPLINKS["response"], "results": [{"command_id": 1, "status": "ok", "value": value}]}


def config(key: str, value: Any = None) -> Message:
    return without_none({"type": "config_write", "command_id": 1, "key": key, "value": value})


UPLINK_REFUSALS: dict[str, tuple[Message, str]] = {
    "missing": (drop(household_report(), "battery_mv"), r"^basic_report\.battery_mv: missing"),
    "unknown-field": (household_report(colour="blue"), r"^basic_report: unknown field 'colour'"),
    "downlink-as-uplink": ({"type": "valve"}, r"^uplink\.type: unknown type 'valve'"),
    "no-type": ({"meter_number": 1}, r"^uplink\.type: unknown type None"),
    "meter-number": (household_report(meter_number=2**48), r"^basic_report\.meter_number: 281474976710656 out of"),
    "fraction": (household_report(time_s=1.5), r"^basic_report\.time_s: 1\.5 is not a whole number"),
    "text": (household_report(battery_mv="3.6V"), r"^basic_report\.battery_mv: expects a number"),
    "bool": (household_report(battery_mv=True), r"^basic_report\.battery_mv: expects a number"),
    "alarm-flag": (household_report(alarms=["fire"]), r"^basic_report\.alarms: 'fire' is not one of"),
    "valve": (household_report(valve="ajar"), r"^basic_report\.valve: 'ajar' is not one of none"),
    "list-item": (
        household_report(period_consumption_l=[1, -1]),
        r"^basic_report\.period_consumption_l\[1\]: -1 out of range 0\.\.65535",
    ),
    "ecl": (household_report(network={**NETWORK, "ecl": 3}), r"^basic_report\.network\.ecl: 3 out of range 0\.\.2"),
    "nan": (
        household_report(network={**NETWORK, "rsrp_dbm": float("nan")}),
        r"^basic_report\.network\.rsrp_dbm: nan is not a finite",
    ),
    "network-part": (household_report(network={"pci": 1}), r"^basic_report\.network\.rsrp_dbm: missing"),
    "pressure": (
        household_report(period_pressure_kpa=[2560]),
        r"^basic_report\.period_pressure_kpa\[0\]: 2560 out of range 0\.\.2550",
    ),
    "firmware": (household_report(module_firmware="x" * 21), r"^basic_report\.module_firmware: 21 bytes, at most 20"),
    "over-512": (
        household_report(padding=400),
        r"^basic_report\.padding: the message would be 574 bytes, over the 512-byte limit",
    ),
    "list-over-512": (
        household_report(period_consumption_l=[1] * 240),
        r"^basic_report\.period_consumption_l: the message would be",
    ),
    "temperature": (
        enhanced_report(period_temperature_c=[64.0]),
        r"^enhanced_report\.period_temperature_c\[0\]: 64\.0 out of range -64\.0\.\.63\.5",
    ),
    "alarm-name": ({**UPLINKS["alarm"], "alarm": "leak"}, r"^alarm\.alarm: 'leak' is not one of over_flow"),
    "log-index": ({**UPLINKS["log_chunk"], "index": 3}, r"^log_chunk\.index: 3 is not below total 3"),
    "log-bytes": ({**UPLINKS["log_chunk"], "entries": "text"}, r"^log_chunk\.entries: expects bytes"),
    "status": (
        {**UPLINKS["response"], "results": [{"command_id": 1, "status": "maybe"}]},
        r"^response\.results\[0\]\.status: 'maybe' is not one of ok",
    ),
    "value-list": (response([1]), r"^response\.results\[0\]\.value: cannot carry a list"),
    "value-nested": (
        response({"a": {"b": 1}}),
        r"^response\.results\[0\]\.value\.a: cannot carry a dict inside a mapping",
    ),
}

DOWNLINK_REFUSALS: dict[str, tuple[Message, str]] = {
    "no-command-id": ({"type": "point_read"}, r"^point_read\.command_id: missing"),
    "command-id": ({"type": "point_read", "command_id": 65536}, r"^point_read\.command_id: 65536 out of range"),
    "huge-int": ({"type": "point_read", "command_id": 10**400}, r"^point_read\.command_id: 1000.* out of range"),
    "infinity": ({"type": "point_read", "command_id": float("inf")}, r"^point_read\.command_id: inf is not a finite"),
    "valve": ({"type": "valve", "command_id": 1, "action": "closed"}, r"^valve\.action: 'closed' is not one of open"),
    "config-key": (config("colour", 1), r"^config_write\.key: 'colour' is not one of report_period_s"),
    "t1": (config("report_t1", "24:00"), r"^config_write\.value \(report_t1\): '24:00' is not a time of day"),
    "schedule": (config("schedule", "nightly"), r"^config_write\.value \(schedule\): 'nightly' is not one of"),
    "period": (config("report_period_s", 0), r"^config_write\.value \(report_period_s\): 0 out of range 1\.\."),
    "no-value": (config("report_t3_s"), r"^config_write\.value: missing"),
    "reselection": ({"type": "reselection", "command_id": 1, "enabled": 1}, r"^reselection\.enabled: expects true"),
    "days": ({"type": "log_upload", "command_id": 1, "days": 0}, r"^log_upload\.days: 0 out of range 1\.\.255"),
    "time": ({"type": "time_sync", "command_id": 1, "time_s": -1}, r"^time_sync\.time_s: -1 out of range 0\.0\.\."),
    "signature": (
        {**DOWNLINKS["image_chunk_last"], "signature": b"short"},
        r"^image_chunk\.signature: expects exactly 32 bytes",
    ),
    "past-total": (
        {**DOWNLINKS["image_chunk"], "offset": 1000},
        r"^image_chunk\.data: offset 1000 \+ 400 bytes runs past total 1200",
    ),
    "chunk-too-big": (
        {**DOWNLINKS["image_chunk"], "data": bytes(500)},
        r"^image_chunk\.data: the message would be 526 bytes",
    ),
    "uplink-as-downlink": ({"type": "basic_report"}, r"^downlink\.type: unknown type 'basic_report'"),
}


@pytest.mark.parametrize("case", UPLINK_REFUSALS)
def test_encode_uplink_refuses_naming_the_field(codec: ReferenceCodec, case: str) -> None:
    message, match = UPLINK_REFUSALS[case]
    with pytest.raises(CodecError, match=match):
        codec.encode_uplink(message)


@pytest.mark.parametrize("case", DOWNLINK_REFUSALS)
def test_encode_downlink_refuses_naming_the_field(codec: ReferenceCodec, case: str) -> None:
    message, match = DOWNLINK_REFUSALS[case]
    with pytest.raises(CodecError, match=match):
        codec.encode_downlink(message)


def test_decoded_whole_unit_fields_are_ints_and_finer_ones_floats(codec: ReferenceCodec) -> None:
    decoded = codec.decode_uplink(codec.encode_uplink(household_report()))
    assert type(decoded["time_s"]) is int
    assert type(decoded["network"]["rsrp_dbm"]) is float
    assert type(decoded["period_consumption_l"][0]) is int
    sync = codec.decode_downlink(codec.encode_downlink(DOWNLINKS["time_sync"]))
    assert type(sync["time_s"]) is float
