"""The defect matrix, CI subset (PROCEDURES "Budget"): each defect through its own checks and collateral
fails exactly those. The reference meter's runs are in test_reference_seeds.py; `make matrix` runs the
full product outside CI. The security defects run through S1-S3 and C15 together in test_security_checks.py."""

from __future__ import annotations

import pytest

from rig.matrix import EXPECTED, absent_checks, defect_path, run_checks

SECURITY_DEFECTS = ("s1-", "s2-", "s3-")


@pytest.mark.parametrize("defect", sorted(name for name in EXPECTED if not name.startswith(SECURITY_DEFECTS)))
def test_defect_fails_its_own_check_and_only_its_collateral(defect: str) -> None:
    expectation = EXPECTED[defect]
    row = run_checks(defect_path(defect), checks=expectation.fails)
    if not row.outcomes:
        pytest.skip(f"no check of {', '.join(expectation.fails)} is in the suites yet")
    unexpected, missing = row.unexpected(expectation)
    assert not unexpected, f"{defect} also fails {sorted(unexpected)}"
    assert not missing, f"{defect} does not fail {sorted(missing)}"
    absent = absent_checks(row, expectation)
    if absent:
        pytest.skip(f"judged on {', '.join(sorted(set(expectation.fails) - absent))}; "
                    f"{', '.join(sorted(absent))} not in the suites yet")
