"""The platform's downlink authentication (S1): a trailer after the codec's payload that a meter checks.

Declared in the device profile (`platform_auth`), whatever the codec: the platform seals each downlink it
sends, the meter opens it and ignores one whose trailer is missing, wrong or not fresher than the last one it
accepted. The layout is docs/codec-reference.md's "Downlink authentication": payload, a `u48` counter, and the
first 8 bytes of HMAC-SHA256(key, payload + counter).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

SCHEME = "hmac-sha256-64"
COUNTER_BYTES = 6
MAC_BYTES = 8
TRAILER_BYTES = COUNTER_BYTES + MAC_BYTES

Signing = Literal["valid", "none", "wrong"]
"""How the platform seals one downlink: properly, not at all, or with a wrong MAC (the last two for S1)."""


class DownlinkRefused(ValueError):
    """A downlink the meter must ignore: no trailer, a wrong MAC, or a counter it has seen."""


def mac(key: bytes, signed: bytes) -> bytes:
    """The truncated HMAC-SHA256 of `signed` (payload + counter)."""
    return hmac.new(key, signed, hashlib.sha256).digest()[:MAC_BYTES]


class DownlinkSigner:
    """The platform's end: `seal(payload, now_s)` appends a fresh counter and its MAC.

    The counter is the bench time in milliseconds, and always one more than the last if time has not moved,
    so it keeps growing across the platforms a campaign opens against the same meter.
    """

    def __init__(self, key: bytes):
        self._key = key
        self._last = 0

    def seal(self, payload: bytes, now_s: float, signing: Signing = "valid") -> bytes:
        if signing == "none":
            return payload
        counter = max(self._last + 1, int(now_s * 1000))
        self._last = counter
        signed = payload + counter.to_bytes(COUNTER_BYTES, "big")
        tag = mac(self._key, signed)
        if signing == "wrong":
            tag = bytes(byte ^ 0xFF for byte in tag)
        return signed + tag


class DownlinkVerifier:
    """The meter's end: `open(data)` gives the payload of a downlink sealed with its key and fresher than the
    last it accepted, else raises DownlinkRefused. The highest counter is kept across power cuts (flash)."""

    def __init__(self, key: bytes):
        self._key = key
        self.highest = -1

    def open(self, data: bytes) -> bytes:
        if len(data) <= TRAILER_BYTES:
            raise DownlinkRefused(f"{len(data)} bytes: no room for the {TRAILER_BYTES}-byte trailer")
        signed, tag = data[:-MAC_BYTES], data[-MAC_BYTES:]
        if not hmac.compare_digest(mac(self._key, signed), tag):
            raise DownlinkRefused("wrong MAC")
        counter = int.from_bytes(signed[-COUNTER_BYTES:], "big")
        if counter <= self.highest:
            raise DownlinkRefused(f"counter {counter} not above {self.highest} (a replay)")
        self.highest = counter
        return signed[:-COUNTER_BYTES]
