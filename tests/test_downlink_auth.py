"""The platform's downlink authentication (docs/codec-reference.md "Downlink authentication"): what the platform
seals the meter opens once; unsigned, wrongly signed, foreign-keyed, truncated and replayed downlinks are refused."""

from __future__ import annotations

import pytest

from rig.codec.downlink_auth import TRAILER_BYTES, DownlinkRefused, DownlinkSigner, DownlinkVerifier
from rig.codec.reference import ReferenceCodec

KEY = b"test-platform-key"
VALVE = ReferenceCodec().encode_downlink({"type": "valve", "command_id": 7, "action": "close"})


def test_a_sealed_downlink_opens_to_its_payload_once() -> None:
    sealed = DownlinkSigner(KEY).seal(VALVE, 1_700_000_000.0)
    verifier = DownlinkVerifier(KEY)
    assert len(sealed) == len(VALVE) + TRAILER_BYTES
    assert verifier.open(sealed) == VALVE
    with pytest.raises(DownlinkRefused, match="replay"):
        verifier.open(sealed)


def test_the_counter_grows_when_time_does_not() -> None:
    signer, verifier = DownlinkSigner(KEY), DownlinkVerifier(KEY)
    for _ in range(3):
        assert verifier.open(signer.seal(VALVE, 1_700_000_000.0)) == VALVE


@pytest.mark.parametrize("sealed", [
    DownlinkSigner(KEY).seal(VALVE, 1.0, "none"),
    DownlinkSigner(KEY).seal(VALVE, 1.0, "wrong"),
    DownlinkSigner(b"another key").seal(VALVE, 1.0),
    DownlinkSigner(KEY).seal(VALVE, 1.0)[:-1],
    b"",
], ids=["unsigned", "wrong-mac", "other-key", "truncated", "empty"])
def test_a_downlink_not_sealed_with_the_key_is_refused(sealed: bytes) -> None:
    with pytest.raises(DownlinkRefused):
        DownlinkVerifier(KEY).open(sealed)


def test_an_older_counter_is_refused_after_a_newer_one() -> None:
    older, newer = DownlinkSigner(KEY).seal(VALVE, 10.0), DownlinkSigner(KEY).seal(VALVE, 20.0)
    verifier = DownlinkVerifier(KEY)
    verifier.open(newer)
    with pytest.raises(DownlinkRefused, match="replay"):
        verifier.open(older)
