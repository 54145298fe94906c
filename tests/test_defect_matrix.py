"""The defect matrix, CI subset (PROCEDURES "Budget"): each defect through its own checks and collateral
fails exactly those; the reference meter and the bare module fail nothing, at two seeds; the reference
passes every CE2 check at ten seeds. `make matrix` runs the full product outside CI."""

from __future__ import annotations

import pytest

from rig.matrix import BARE_MODULE, EXPECTED, REFERENCE, absent_checks, defect_path, run_checks

SEEDS = (1, 2)
CE2_SEEDS = range(3, 13)


@pytest.mark.parametrize("defect", sorted(EXPECTED))
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


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_meter_passes_every_check(seed: int) -> None:
    row = run_checks(REFERENCE, seed=seed)
    assert row.outcomes, "the suites ran no check"
    assert not row.failing(), [o for o in row.outcomes if o.outcome in ("failed", "broken")]


def test_bare_module_passes_every_check_that_applies() -> None:
    row = run_checks(BARE_MODULE)
    assert not row.failing(), [o for o in row.outcomes if o.outcome in ("failed", "broken")]


@pytest.mark.parametrize("seed", CE2_SEEDS)
def test_reference_meter_passes_at_ce2_with_any_seed(seed: int) -> None:
    row = run_checks(REFERENCE, seed=seed, extra=["-k", "CE2"])
    assert not row.failing(), [o for o in row.outcomes if o.outcome in ("failed", "broken")]
