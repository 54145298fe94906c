"""Payload codecs: how a meter's uplinks and the platform's downlinks are laid out in bytes.

What differs between meters is a plugin named by the device profile (`codec: <name>`), found through
the `rig.codecs` entry-point group, so a vendor adds theirs without forking. Messages are plain dicts
with a `type` key; the reference codec's types and fields are documented in docs/codec-reference.md.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

Message = dict[str, Any]


class CodecError(ValueError):
    """Bytes that do not decode, or a message that cannot be encoded; the message says which field."""


class Codec(Protocol):
    """Encodes and decodes both directions of one meter family's application protocol."""

    name: str

    def encode_uplink(self, message: Message) -> bytes: ...

    def decode_uplink(self, payload: bytes) -> Message: ...

    def encode_downlink(self, message: Message) -> bytes: ...

    def decode_downlink(self, payload: bytes) -> Message: ...


def load_codec(name: str) -> Codec:
    """The codec registered under `name` in the `rig.codecs` entry-point group."""
    found = {ep.name: ep for ep in entry_points(group="rig.codecs")}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise CodecError(f"no codec named {name!r} is installed (rig.codecs entry points: {known})")
    return found[name].load()()
