"""Firmware images for upgrades (C14): test images, their signature, the bad variants a meter must refuse,
and the `image_chunk` downlinks that carry an image from the platform.

The reference scheme (docs/codec-reference.md, docs/maintenance-protocol.md) signs an image with
HMAC-SHA256 of the whole image under the vendor's key (the device profile's `upgrade.signing_key`). The
key is only ever used here, never returned, logged or put into a message other than as the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

BadImage = Literal["unsigned", "wrong_signature", "truncated"]
SIGNED_CHUNK_LIMIT = 463  # image bytes in a signed chunk, less the version's length (the 512-byte message limit)
TRUNCATED_BYTES = 16  # cut from the end of a truncated image
VERSION_MAX_CHARS = 20  # the codec's and the maintenance protocol's limit
_LAST_NUMBER = re.compile(r"(\d+)(\D*)$")


@dataclass(frozen=True)
class Image:
    """An image for `target` (`mcu` for SOTA, `module` for FOTA) and the signature sent with it."""

    target: Literal["mcu", "module"]
    version: str
    data: bytes
    signature: bytes | None

    def describe(self) -> str:
        signed = f"signature {len(self.signature)} bytes" if self.signature is not None else "unsigned"
        return f"{self.target} {self.version}: {len(self.data)} bytes, {signed}"


def sign(data: bytes, key: SecretStr) -> bytes:
    """The reference signature: HMAC-SHA256 of the whole image under the vendor's key."""
    return hmac.new(key.get_secret_value().encode(), data, hashlib.sha256).digest()


def image_bytes(target: str, version: str, size: int) -> bytes:
    """Deterministic image content of `size` bytes that names its target and version."""
    header = f"RIG TEST IMAGE {target} {version}\n".encode()
    body = bytearray()
    block = 0
    while len(header) + len(body) < size:
        body += hashlib.sha256(header + block.to_bytes(4, "big")).digest()
        block += 1
    return (header + bytes(body))[:size]


def signed_image(target: Literal["mcu", "module"], version: str, size: int, key: SecretStr) -> Image:
    data = image_bytes(target, version, size)
    return Image(target, version, data, sign(data, key))


def bad_image(kind: BadImage, image: Image) -> Image:
    """A variant of a signed image that a conforming meter refuses: no signature, a signature that does not
    verify (every bit flipped), or the image cut short and sent with the whole image's signature."""
    if image.signature is None:
        raise ValueError(f"{image.describe()}: a bad variant is made from a signed image")
    if kind == "unsigned":
        return Image(image.target, image.version, image.data, None)
    if kind == "wrong_signature":
        return Image(image.target, image.version, image.data, bytes(b ^ 0xFF for b in image.signature))
    if kind == "truncated":
        return Image(image.target, image.version, image.data[:-TRUNCATED_BYTES], image.signature)
    raise ValueError(f"unknown bad image {kind!r}")


def chunk_bytes_max(version: str) -> int:
    """Image bytes per `image_chunk` that fit any chunk of this version, signed or not."""
    return SIGNED_CHUNK_LIMIT - len(version.encode())


def image_chunks(image: Image, chunk_bytes: int | None = None) -> list[dict]:
    """The image as `image_chunk` downlinks in order (as few as fit), the signature (if any) in the last one."""
    chunk_bytes = chunk_bytes or chunk_bytes_max(image.version)
    total = len(image.data)
    chunks = []
    for offset in range(0, total, chunk_bytes):
        chunk = {"type": "image_chunk", "target": image.target, "version": image.version, "offset": offset,
                 "total": total, "data": image.data[offset:offset + chunk_bytes]}
        if offset + chunk_bytes >= total and image.signature is not None:
            chunk["signature"] = image.signature
        chunks.append(chunk)
    return chunks


def next_version(version: str, step: int = 1) -> str:
    """`version` with its last number raised by `step` (`RWM1-2.3.0` -> `RWM1-2.3.1`); a version without a
    number gets `.<step>` appended. Raises ValueError if the result is longer than the protocol allows."""
    match = _LAST_NUMBER.search(version)
    if match is None:
        bumped = f"{version}.{step}"
    else:
        digits = match.group(1)
        number = str(int(digits) + step).zfill(len(digits))
        bumped = version[:match.start(1)] + number + match.group(2)
    if len(bumped) > VERSION_MAX_CHARS:
        raise ValueError(f"version {bumped!r} is longer than {VERSION_MAX_CHARS} characters")
    return bumped
