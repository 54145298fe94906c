"""The reference payload codec: a compact big-endian binary layout, one table of fields per message type.

Every message starts with a 1-byte type code and a 1-byte format version; uplinks then carry the meter
number, downlinks a command id. Optional blocks come last, announced by one presence byte. The tables
below are the layout; docs/codec-reference.md explains them with offsets and sizes for vendors.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NoReturn, Protocol

from rig.codec import CodecError, Message

FORMAT_VERSION = 1
MESSAGE_MAX_BYTES = 512
ALARM_NAMES = ("over_flow", "low_battery", "reverse_flow", "magnetic", "separation")
SCHEDULES = ("household", "leak", "large", "large_intensive")
_DECI, _HALF, _MILLI = Fraction(1, 10), Fraction(1, 2), Fraction(1, 1000)


def _fail(path: str, problem: str) -> NoReturn:
    raise CodecError(f"{path}: {problem}")


def _brief(value: Any) -> str:
    """`repr(value)` for an error message, cut to 40 characters (and named when too large to print at all)."""
    try:
        text = repr(value)
    except ValueError:  # an integer over Python's digit limit, maybe inside a list
        return f"<{type(value).__name__} too large to print>"
    return text if len(text) <= 40 else text[:37] + "..."


class _Reader:
    """A cursor over a payload that turns running off its end into a CodecError naming the field."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def take(self, count: int, path: str) -> bytes:
        if self.pos + count > len(self.data):
            _fail(path, f"truncated at byte {self.pos} (needs {count}, {len(self.data) - self.pos} left)")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def uint(self, width: int, path: str) -> int:
        return int.from_bytes(self.take(width, path), "big")


class _Kind(Protocol):
    """How one field is laid out: `pack` validates and returns its bytes, `read` returns its value."""

    def pack(self, value: Any, path: str, msg: Message) -> bytes: ...

    def read(self, r: _Reader, path: str, msg: Message) -> Any: ...


@dataclass(frozen=True)
class Int:
    """An integer of `width` bytes counting `step` units; whole-unit fields refuse fractions, finer ones round."""

    width: int
    signed: bool = False
    step: Fraction = Fraction(1)
    lo: int | None = None  # raw limits; default: what the width holds
    hi: int | None = None

    def _limits(self) -> tuple[int, int]:
        bits = 8 * self.width - (1 if self.signed else 0)
        lo = self.lo if self.lo is not None else (-(1 << bits) if self.signed else 0)
        return lo, self.hi if self.hi is not None else (1 << bits) - 1

    def _show(self, raw: int) -> int | float:
        value = raw * self.step
        return int(value) if self.step.denominator == 1 else float(value)

    def _check(self, raw: int, shown: object, path: str) -> int:
        lo, hi = self._limits()
        if not lo <= raw <= hi:
            _fail(path, f"{_brief(shown)} out of range {self._show(lo)}..{self._show(hi)}")
        return raw

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(path, f"expects a number, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            _fail(path, f"{_brief(value)} is not a finite number")
        exact = Fraction(value) / self.step
        if self.step == 1 and exact.denominator != 1:
            _fail(path, f"{_brief(value)} is not a whole number")
        raw = self._check(round(exact), value, path)
        return raw.to_bytes(self.width, "big", signed=self.signed)

    def read(self, r: _Reader, path: str, msg: Message) -> int | float:
        raw = int.from_bytes(r.take(self.width, path), "big", signed=self.signed)
        return self._show(self._check(raw, self._show(raw), path))


@dataclass(frozen=True)
class Enum:
    """One byte: the index of the name in `names`."""

    names: tuple[str, ...]

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        if not isinstance(value, str) or value not in self.names:
            _fail(path, f"{_brief(value)} is not one of {', '.join(self.names)}")
        return bytes([self.names.index(value)])

    def read(self, r: _Reader, path: str, msg: Message) -> str:
        code = r.take(1, path)[0]
        if code >= len(self.names):
            _fail(path, f"unknown code {code}")
        return self.names[code]


@dataclass(frozen=True)
class Flags:
    """One byte: bit i set when `names[i]` is in the list; decodes in table order."""

    names: tuple[str, ...]

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        if not isinstance(value, list | tuple | set | frozenset):
            _fail(path, f"expects a list of names, got {type(value).__name__}")
        mask = 0
        for name in value:
            if name not in self.names:
                _fail(path, f"{_brief(name)} is not one of {', '.join(self.names)}")
            mask |= 1 << self.names.index(name)
        return bytes([mask])

    def read(self, r: _Reader, path: str, msg: Message) -> list[str]:
        mask = r.take(1, path)[0]
        if mask >> len(self.names):
            _fail(path, f"unknown bits in 0x{mask:02x}")
        return [name for bit, name in enumerate(self.names) if mask >> bit & 1]


class Bool:
    """One byte, 0 or 1."""

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        if not isinstance(value, bool):
            _fail(path, f"expects true or false, got {_brief(value)}")
        return bytes([value])

    def read(self, r: _Reader, path: str, msg: Message) -> bool:
        byte = r.take(1, path)[0]
        if byte > 1:
            _fail(path, f"{byte} is neither 0 nor 1")
        return bool(byte)


@dataclass(frozen=True)
class Text:
    """A 1-byte length, then at most `max_bytes` bytes of UTF-8."""

    max_bytes: int = 255

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        if not isinstance(value, str):
            _fail(path, f"expects a string, got {type(value).__name__}")
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError as error:
            _fail(path, f"not encodable as UTF-8 ({error.reason} at character {error.start})")
        if len(data) > self.max_bytes:
            _fail(path, f"{len(data)} bytes, at most {self.max_bytes}")
        return bytes([len(data)]) + data

    def read(self, r: _Reader, path: str, msg: Message) -> str:
        count = r.take(1, path)[0]
        if count > self.max_bytes:
            _fail(path, f"{count} bytes, at most {self.max_bytes}")
        try:
            return r.take(count, path).decode("utf-8")
        except UnicodeDecodeError:
            _fail(path, "not UTF-8")


class Blob:
    """A 2-byte length, then the bytes."""

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            _fail(path, f"expects bytes, got {type(value).__name__}")
        data = bytes(value)
        if len(data) > MESSAGE_MAX_BYTES:
            _fail(path, f"{len(data)} bytes cannot fit a {MESSAGE_MAX_BYTES}-byte message")
        return len(data).to_bytes(2, "big") + data

    def read(self, r: _Reader, path: str, msg: Message) -> bytes:
        return r.take(r.uint(2, path), path)


@dataclass(frozen=True)
class Fixed:
    """Exactly `size` bytes, no length."""

    size: int

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        if not isinstance(value, bytes | bytearray | memoryview) or len(value) != self.size:
            _fail(path, f"expects exactly {self.size} bytes")
        return bytes(value)

    def read(self, r: _Reader, path: str, msg: Message) -> bytes:
        return r.take(self.size, path)


class Padding:
    """A 2-byte count n, then n zero bytes: lets a meter reach an exact size (costs n + 2 bytes)."""

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        count = Int(2, hi=MESSAGE_MAX_BYTES).pack(value, path, msg)
        return count + bytes(int.from_bytes(count, "big"))

    def read(self, r: _Reader, path: str, msg: Message) -> int:
        count = r.uint(2, path)
        if any(r.take(count, path)):
            _fail(path, "padding bytes must be zero")
        return count


class ClockTime:
    """A local time of day "HH:MM" as two bytes, hour and minute."""

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        found = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value) if isinstance(value, str) else None
        if found is None:
            _fail(path, f"{_brief(value)} is not a time of day HH:MM")
        return bytes([int(found[1]), int(found[2])])

    def read(self, r: _Reader, path: str, msg: Message) -> str:
        hour, minute = r.take(2, path)
        if hour > 23 or minute > 59:
            _fail(path, f"{hour}:{minute} is not a time of day")
        return f"{hour:02d}:{minute:02d}"


@dataclass(frozen=True)
class Array:
    """A 1-byte count, then that many items."""

    item: _Kind

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        if not isinstance(value, list | tuple):
            _fail(path, f"expects a list, got {type(value).__name__}")
        if len(value) > 255:
            _fail(path, f"{len(value)} items, at most 255")
        return bytes([len(value)]) + b"".join(self.item.pack(v, f"{path}[{i}]", msg) for i, v in enumerate(value))

    def read(self, r: _Reader, path: str, msg: Message) -> list[Any]:
        return [self.item.read(r, f"{path}[{i}]", msg) for i in range(r.take(1, path)[0])]


# Tagged values in responses: a scalar, or a flat mapping of text keys to scalars.
_NONE, _FALSE, _TRUE, _I32, _I64, _F64, _STR, _MAP = range(8)


class Value:
    """A tagged value: none, bool, int (i32 or i64), float (f64), string, or a mapping of those (<= 32 keys)."""

    def pack(self, value: Any, path: str, msg: Message, nested: bool = False) -> bytes:
        if value is None or isinstance(value, bool):
            return bytes([{None: _NONE, False: _FALSE, True: _TRUE}[value]])
        if isinstance(value, int):
            for tag, width in ((_I32, 4), (_I64, 8)):
                if -(1 << (8 * width - 1)) <= value < 1 << (8 * width - 1):
                    return bytes([tag]) + value.to_bytes(width, "big", signed=True)
            _fail(path, f"{value} does not fit 64 bits")
        if isinstance(value, float):
            if not math.isfinite(value):
                _fail(path, f"{_brief(value)} is not a finite number")
            return bytes([_F64]) + struct.pack(">d", value)
        if isinstance(value, str):
            return bytes([_STR]) + Text().pack(value, path, msg)
        if isinstance(value, dict) and not nested:
            if len(value) > 32:
                _fail(path, f"{len(value)} keys, at most 32")
            parts = [
                Text(32).pack(k, f"{path} key", msg) + self.pack(v, f"{path}.{k}", msg, True) for k, v in value.items()
            ]
            return bytes([_MAP, len(value)]) + b"".join(parts)
        _fail(path, f"cannot carry a {type(value).__name__}" + (" inside a mapping" if nested else ""))

    def read(self, r: _Reader, path: str, msg: Message, nested: bool = False) -> Any:
        tag = r.take(1, path)[0]
        if tag in (_NONE, _FALSE, _TRUE):
            return (None, False, True)[tag]
        if tag in (_I32, _I64):
            return int.from_bytes(r.take(4 if tag == _I32 else 8, path), "big", signed=True)
        if tag == _F64:
            number = struct.unpack(">d", r.take(8, path))[0]
            if not math.isfinite(number):
                _fail(path, "not a finite number")
            return number
        if tag == _STR:
            return Text().read(r, path, msg)
        if tag != _MAP or nested:
            _fail(path, f"unknown value tag {tag}" + (" inside a mapping" if tag == _MAP else ""))
        count, mapping = r.take(1, path)[0], {}
        if count > 32:
            _fail(path, f"{count} keys, at most 32")
        for _ in range(count):
            key = Text(32).read(r, f"{path} key", msg)
            if key in mapping:
                _fail(path, f"duplicate key {_brief(key)}")
            mapping[key] = self.read(r, f"{path}.{key}", msg, True)
        return mapping


# Configuration keys (table 4-2); a key's id on the wire is its position here. Flow thresholds in L/h.
CONFIG_KEYS: dict[str, _Kind] = {
    "report_period_s": Int(4, lo=1),
    "report_t1": ClockTime(),
    "report_t3_s": Int(4),
    "freeze_interval_s": Int(4, lo=1),
    "low_flow_duration_s": Int(4),
    "low_flow_threshold": Int(4),
    "high_flow_duration_s": Int(4),
    "high_flow_threshold": Int(4),
    "low_battery_threshold_mv": Int(4),
    "reverse_flow_duration_s": Int(4),
    "reverse_flow_threshold": Int(4),
    "pressure_high_kpa": Int(4),
    "pressure_low_kpa": Int(4),
    "schedule": Enum(SCHEDULES),
}


class Setting:
    """A configuration value, laid out as its key (decoded just before it) says."""

    def pack(self, value: Any, path: str, msg: Message) -> bytes:
        return CONFIG_KEYS[msg["key"]].pack(value, f"{path} ({msg['key']})", msg)

    def read(self, r: _Reader, path: str, msg: Message) -> Any:
        return CONFIG_KEYS[msg["key"]].read(r, f"{path} ({msg['key']})", msg)


@dataclass(frozen=True)
class Field:
    name: str
    kind: _Kind
    optional: bool = False  # optional fields come last, after one presence byte (bit i = i-th optional)


@dataclass(frozen=True)
class Record:
    """Fields in order; absent optional fields are left out of the bytes and of the decoded dict."""

    fields: tuple[Field, ...]

    def pack(self, value: Any, path: str, msg: Message | None = None, start: int | None = None) -> bytes:
        if not isinstance(value, dict):
            _fail(path, f"expects a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - {f.name for f in self.fields}, key=_brief)
        if unknown:
            _fail(path, f"unknown field {_brief(unknown[0])}")
        optional = [f for f in self.fields if f.optional]
        out = bytearray()
        for f in self.fields:
            where, item = f"{path}.{f.name}", value.get(f.name)
            if optional and f is optional[0]:
                out.append(sum(1 << i for i, o in enumerate(optional) if value.get(o.name) is not None))
            if item is None and f.optional:
                continue
            if item is None and not isinstance(f.kind, Value):
                _fail(where, "missing")
            out += f.kind.pack(item, where, value)
            if start is not None and start + len(out) > MESSAGE_MAX_BYTES:
                _fail(where, f"the message would be {start + len(out)} bytes, over the {MESSAGE_MAX_BYTES}-byte limit")
        return bytes(out)

    def read(self, r: _Reader, path: str, msg: Message | None = None) -> Message:
        optional = [f for f in self.fields if f.optional]
        out: Message = {}
        mask = 0
        for f in self.fields:
            if optional and f is optional[0]:
                mask = r.take(1, f"{path}.present")[0]
                if mask >> len(optional):
                    _fail(f"{path}.present", f"unknown block bits in 0x{mask:02x}")
            if f.optional and not mask >> optional.index(f) & 1:
                continue
            item = f.kind.read(r, f"{path}.{f.name}", out)
            if item is not None:
                out[f.name] = item
        return out


def _log_chunk_check(msg: Message, path: str) -> None:
    if msg["index"] >= msg["total"]:
        _fail(f"{path}.index", f"{msg['index']} is not below total {msg['total']}")


def _image_chunk_check(msg: Message, path: str) -> None:
    if msg["offset"] + len(msg["data"]) > msg["total"]:
        _fail(f"{path}.data", f"offset {msg['offset']} + {len(msg['data'])} bytes runs past total {msg['total']}")


@dataclass(frozen=True)
class Spec:
    """One message type: its name, type code and body (after type and version)."""

    name: str
    code: int
    body: Record
    check: Callable[[Message, str], None] | None = None


def _spec(name: str, code: int, *fields: Field, check: Callable[[Message, str], None] | None = None) -> Spec:
    return Spec(name, code, Record(fields), check)


NETWORK = Record(
    (
        Field("pci", Int(2, hi=503)),
        Field("rsrp_dbm", Int(2, signed=True, step=_DECI, lo=-1800, hi=0)),
        Field("sinr_db", Int(2, signed=True, step=_DECI, lo=-500, hi=500)),
        Field("ecl", Int(1, hi=2)),
        Field("earfcn", Int(3, hi=262143)),
    )
)
METER = Field("meter_number", Int(6))
COMMAND = Field("command_id", Int(2))
_REPORT_HEAD = (
    METER,
    Field("time_s", Int(4)),
    Field("battery_mv", Int(2)),
    Field("alarms", Flags(ALARM_NAMES)),
    Field("daily_cumulative_l", Int(4)),
    Field("daily_reverse_l", Int(4)),
    Field("instantaneous_l_per_h", Int(4, signed=True)),
    Field("freeze_interval_s", Int(2, lo=1)),
    Field("report_period_s", Int(4, lo=1)),
    Field("valve", Enum(("none", "open", "closed"))),
    Field("mcu_firmware", Text(20)),
    Field("module_firmware", Text(20)),
    Field("period_consumption_l", Array(Int(2))),
)
_REPORT_TAIL = (
    Field("network", NETWORK, optional=True),
    Field("period_pressure_kpa", Array(Int(1, step=Fraction(10))), optional=True),
    Field("padding", Padding(), optional=True),
    Field("owner_name", Text(40), optional=True),
)
RESULT = Record(
    (COMMAND, Field("status", Enum(("ok", "refused", "unknown"))), Field("value", Value())),
)

UPLINKS = (
    _spec("basic_report", 0x01, *_REPORT_HEAD, *_REPORT_TAIL),
    _spec(
        "enhanced_report",
        0x02,
        *_REPORT_HEAD,
        Field("period_temperature_c", Array(Int(1, signed=True, step=_HALF))),
        Field("period_vibration", Array(Int(1))),
        *_REPORT_TAIL,
    ),
    _spec(
        "alarm",
        0x03,
        METER,
        Field("time_s", Int(4)),
        Field("alarm", Enum(ALARM_NAMES)),
        Field("value", Int(4, signed=True)),
    ),
    _spec("response", 0x04, METER, Field("time_s", Int(4)), Field("results", Array(RESULT))),
    _spec(
        "log_chunk",
        0x05,
        METER,
        Field("index", Int(2)),
        Field("total", Int(2, lo=1)),
        Field("entries", Blob()),
        check=_log_chunk_check,
    ),
)
DOWNLINKS = (
    _spec("time_sync", 0x81, COMMAND, Field("time_s", Int(6, step=_MILLI))),
    _spec("config_write", 0x82, COMMAND, Field("key", Enum(tuple(CONFIG_KEYS))), Field("value", Setting())),
    _spec("config_query", 0x83, COMMAND, Field("key", Enum(tuple(CONFIG_KEYS)))),
    _spec("point_read", 0x84, COMMAND),
    _spec("valve", 0x85, COMMAND, Field("action", Enum(("open", "close")))),
    _spec("reselection", 0x86, COMMAND, Field("enabled", Bool())),
    _spec("log_upload", 0x87, COMMAND, Field("days", Int(1, lo=1))),
    _spec(
        "image_chunk",
        0x88,
        COMMAND,
        Field("target", Enum(("mcu", "module"))),
        Field("version", Text(20)),
        Field("offset", Int(4)),
        Field("total", Int(4, lo=1)),
        Field("data", Blob()),
        Field("signature", Fixed(32), optional=True),
        check=_image_chunk_check,
    ),
)


def _encode(message: Any, specs: tuple[Spec, ...], direction: str) -> bytes:
    if not isinstance(message, dict):
        _fail(direction, f"expects a dict with a 'type', got {type(message).__name__}")
    spec = next((s for s in specs if s.name == message.get("type")), None)
    if spec is None:
        known = ", ".join(s.name for s in specs)
        _fail(f"{direction}.type", f"unknown type {_brief(message.get('type'))} (known: {known})")
    body = {k: v for k, v in message.items() if k != "type"}
    head = struct.pack(">BB", spec.code, FORMAT_VERSION)
    payload = head + spec.body.pack(body, spec.name, start=len(head))
    if spec.check:
        spec.check(body, spec.name)
    return payload


def _decode(payload: Any, specs: tuple[Spec, ...], others: tuple[Spec, ...], direction: str) -> Message:
    if not isinstance(payload, bytes | bytearray | memoryview):
        _fail(direction, f"expects bytes, got {type(payload).__name__}")
    data = bytes(payload)
    if not data:
        _fail(f"{direction}.type", "empty payload")
    if len(data) > MESSAGE_MAX_BYTES:
        _fail(direction, f"{len(data)} bytes, over the {MESSAGE_MAX_BYTES}-byte message limit")
    spec = next((s for s in specs if s.code == data[0]), None)
    if spec is None:
        other = next((s.name for s in others if s.code == data[0]), None)
        _fail(f"{direction}.type", f"unknown type code 0x{data[0]:02x}" + (f" (the code of {other})" if other else ""))
    version = _Reader(data, 1).take(1, f"{spec.name}.version")[0]
    if version != FORMAT_VERSION:
        _fail(f"{spec.name}.version", f"format version {version}, this codec reads {FORMAT_VERSION}")
    reader = _Reader(data, 2)
    body = spec.body.read(reader, spec.name)
    if reader.pos != len(data):
        _fail(spec.name, f"{len(data) - reader.pos} trailing bytes after the last field")
    if spec.check:
        spec.check(body, spec.name)
    return {"type": spec.name, **body}


class ReferenceCodec:
    """The rig's reference meter codec (docs/codec-reference.md); registered as `reference` in `rig.codecs`."""

    name = "reference"

    def encode_uplink(self, message: Message) -> bytes:
        return _encode(message, UPLINKS, "uplink")

    def decode_uplink(self, payload: bytes) -> Message:
        return _decode(payload, UPLINKS, DOWNLINKS, "uplink")

    def encode_downlink(self, message: Message) -> bytes:
        return _encode(message, DOWNLINKS, "downlink")

    def decode_downlink(self, payload: bytes) -> Message:
        return _decode(payload, DOWNLINKS, UPLINKS, "downlink")
