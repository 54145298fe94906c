"""Images for C14: the reference signature, the bad variants, the platform's chunks and version bumps."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from rig.codec import load_codec
from rig.platform.images import (
    TRUNCATED_BYTES,
    Image,
    bad_image,
    chunk_bytes_max,
    image_bytes,
    image_chunks,
    next_version,
    sign,
    signed_image,
)

KEY = SecretStr("a-vendor-key")


def test_the_signature_is_hmac_sha256_of_the_whole_image_under_the_key() -> None:
    assert sign(b"image", KEY) == hmac.new(b"a-vendor-key", b"image", hashlib.sha256).digest()


def test_image_bytes_are_deterministic_sized_and_differ_by_version() -> None:
    first = image_bytes("mcu", "RWM1-2.3.1", 1000)
    assert len(first) == 1000 and first == image_bytes("mcu", "RWM1-2.3.1", 1000)
    assert first != image_bytes("mcu", "RWM1-2.3.2", 1000)
    assert first.startswith(b"RIG TEST IMAGE mcu RWM1-2.3.1")


def test_bad_variants_of_a_signed_image_never_verify() -> None:
    good = signed_image("mcu", "RWM1-2.3.1", 1000, KEY)
    assert good.signature == sign(good.data, KEY)
    unsigned = bad_image("unsigned", good)
    assert unsigned.signature is None and unsigned.data == good.data
    wrong = bad_image("wrong_signature", good)
    assert wrong.data == good.data and wrong.signature != sign(wrong.data, KEY) and len(wrong.signature) == 32
    truncated = bad_image("truncated", good)
    assert len(truncated.data) == len(good.data) - TRUNCATED_BYTES
    assert truncated.signature == good.signature != sign(truncated.data, KEY)
    with pytest.raises(ValueError, match="signed image"):
        bad_image("unsigned", unsigned)


def test_chunks_cover_the_image_in_order_with_the_signature_in_the_last_one() -> None:
    image = signed_image("module", "V150R100C10B200SP2", 2 * 200 + 17, KEY)
    chunks = image_chunks(image, chunk_bytes=200)
    assert [c["offset"] for c in chunks] == [0, 200, 400]
    assert b"".join(c["data"] for c in chunks) == image.data
    assert all(c["total"] == len(image.data) and c["target"] == "module" for c in chunks)
    assert [("signature" in c) for c in chunks] == [False, False, True]
    assert chunks[-1]["signature"] == image.signature
    assert all("signature" not in c for c in image_chunks(bad_image("unsigned", image)))


@pytest.mark.parametrize("version", ["1", "RWM1-2.3.1", "V150R100C10B200SP999"])
def test_full_chunks_signed_or_not_encode_as_reference_downlinks_within_512_bytes(version: str) -> None:
    codec = load_codec("reference")
    image = signed_image("mcu", version, 3 * chunk_bytes_max(version), KEY)
    chunks = image_chunks(image) + image_chunks(bad_image("unsigned", image))
    assert len(chunks) == 6 and all(len(c["data"]) == chunk_bytes_max(version) for c in chunks)
    for chunk in chunks:
        encoded = codec.encode_downlink({**chunk, "command_id": 1})
        assert len(encoded) <= 512
        assert codec.decode_downlink(encoded)["data"] == chunk["data"]


def test_describe_never_shows_the_signature_bytes() -> None:
    image = Image("mcu", "RWM1-2.3.1", b"\x00" * 10, b"\xab" * 32)
    assert image.describe() == "mcu RWM1-2.3.1: 10 bytes, signature 32 bytes"


@pytest.mark.parametrize("version, step, bumped", [
    ("RWM1-2.3.0", 1, "RWM1-2.3.1"), ("V150R100C10B200SP1", 2, "V150R100C10B200SP3"), ("1.09", 1, "1.10"),
    ("2.3.9-rc", 1, "2.3.10-rc"), ("beta", 1, "beta.1"),
])
def test_next_version_raises_the_last_number(version: str, step: int, bumped: str) -> None:
    assert next_version(version, step) == bumped


def test_next_version_refuses_a_version_longer_than_the_protocol_allows() -> None:
    with pytest.raises(ValueError, match="20 characters"):
        next_version("V150R100C10B200SP999", 1)
