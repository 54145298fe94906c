"""S1-S3 (PROCEDURES "Security checks"): each security defect fails its own S check and nothing else among the
checks it could touch (the other S checks and C15, the near-end port). The reference meter passing S1-S3 at
twelve seeds is tests/test_reference_seeds.py's (the security area is among its behaviour checks); the reference
meter with the platform's downlink authentication declared passes S1 and still obeys the signed downlinks of C18-C20.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.matrix import EXPECTED, REFERENCE, defect_path, run_checks

SECURITY_CHECKS = ("S1", "S2", "S3", "C15")
SIGNED_DOWNLINK_CHECKS = ("S1", "C18", "C19", "C20")
SECURITY_DEFECTS = sorted(name for name in EXPECTED if name.startswith(("s1-", "s2-", "s3-")))


@pytest.mark.parametrize("defect", SECURITY_DEFECTS)
def test_a_security_defect_fails_its_own_check_and_not_c15_or_the_other_s_checks(defect: str) -> None:
    row = run_checks(defect_path(defect), checks=SECURITY_CHECKS)
    assert {o.check for o in row.outcomes} == set(SECURITY_CHECKS), row.outcomes
    unexpected, missing = row.unexpected(EXPECTED[defect])
    assert not unexpected, f"{defect} also fails {sorted(unexpected)}"
    assert not missing, f"{defect} does not fail {sorted(missing)}"


def test_a_meter_that_checks_the_platforms_signature_passes_s1_and_obeys_signed_downlinks(tmp_path: Path) -> None:
    device = tmp_path / "reference-meter-signed-downlinks.yaml"
    device.write_text(f"extends: {REFERENCE}\nname: reference-meter-signed-downlinks\n"
                      "platform_auth: {key: test-platform-key}\n")
    row = run_checks(device, checks=SIGNED_DOWNLINK_CHECKS)
    assert {o.check for o in row.outcomes} == set(SIGNED_DOWNLINK_CHECKS), row.outcomes
    assert {o.outcome for o in row.outcomes} == {"passed"}, row.outcomes
