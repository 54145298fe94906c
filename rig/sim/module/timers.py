"""3GPP TS 24.008 GPRS timer encodings used by AT+CPSMS and +CEREG: T3412 extended and T3324.

A timer is one octet as an 8-character bit string: bits 8-6 the unit, bits 5-1 the multiplier.
"""

from __future__ import annotations

T3412_UNITS_S = {0b000: 600, 0b001: 3600, 0b010: 36000, 0b011: 2, 0b100: 30, 0b101: 60, 0b110: 1152000}
T3324_UNITS_S = {0b000: 2, 0b001: 60, 0b010: 360}
DEACTIVATED = 0b111


def _decode(bits: str, units: dict[int, float], name: str) -> float:
    if len(bits) != 8 or set(bits) - {"0", "1"}:
        raise ValueError(f"{name} must be 8 bits such as \"00111000\", got {bits!r}")
    unit, multiplier = int(bits[:3], 2), int(bits[3:], 2)
    if unit == DEACTIVATED:
        return float("inf")
    if unit not in units:
        raise ValueError(f"{name} unit {bits[:3]} is not defined")
    return float(units[unit] * multiplier)


def _encode(seconds: float, units: dict[int, float]) -> str:
    """The exact encoding if one exists, else the smallest value not below `seconds`."""
    if seconds == float("inf"):
        return f"{DEACTIVATED:03b}00000"
    best: tuple[float, int, int] | None = None
    for unit, size in units.items():
        multiplier = min(31, max(0, -(-int(round(seconds)) // int(size))))
        value = size * multiplier
        if value >= seconds and (best is None or value < best[0]):
            best = (value, unit, multiplier)
    if best is None:
        raise ValueError(f"{seconds} s is beyond the timer's range")
    return f"{best[1]:03b}{best[2]:05b}"


def decode_t3412(bits: str) -> float:
    return _decode(bits, T3412_UNITS_S, "T3412")


def decode_t3324(bits: str) -> float:
    return _decode(bits, T3324_UNITS_S, "T3324")


def encode_t3412(seconds: float) -> str:
    return _encode(seconds, T3412_UNITS_S)


def encode_t3324(seconds: float) -> str:
    return _encode(seconds, T3324_UNITS_S)
