"""The reference meter passes everything (PROCEDURES "Budget"): every check at every level at two seeds,
every CE2 check and every meter-behaviour, maintenance and security check at ten more; the bare module
passes every check that applies."""

from __future__ import annotations

import pytest

from rig.checklist import ITEMS
from rig.matrix import BARE_MODULE, REFERENCE, run_checks

SEEDS = (1, 2)
MORE_SEEDS = range(3, 13)
BEHAVIOUR_CHECKS = [check for check, item in ITEMS.items() if item.area in ("meter behaviour", "maintenance",
                                                                             "security")]


def failures(row) -> list:
    """What the reference must never get: a failure, a rig fault, or an inconclusive cell."""
    return [o for o in row.outcomes if o.outcome in ("failed", "broken", "inconclusive")]


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_meter_passes_every_check(seed: int) -> None:
    row = run_checks(REFERENCE, seed=seed)
    assert row.outcomes, "the suites ran no check"
    assert not failures(row), failures(row)


def test_bare_module_passes_every_check_that_applies() -> None:
    row = run_checks(BARE_MODULE)
    assert not failures(row), failures(row)


@pytest.mark.parametrize("seed", MORE_SEEDS)
def test_reference_meter_passes_at_ce2_with_any_seed(seed: int) -> None:
    row = run_checks(REFERENCE, seed=seed, extra=["-k", "CE2"])
    assert not failures(row), failures(row)


@pytest.mark.parametrize("seed", MORE_SEEDS)
def test_reference_meter_passes_the_behaviour_checks_with_any_seed(seed: int) -> None:
    row = run_checks(REFERENCE, checks=BEHAVIOUR_CHECKS, seed=seed)
    assert {o.check for o in row.outcomes} >= set(BEHAVIOUR_CHECKS), "a behaviour check did not run"
    assert not failures(row), failures(row)
