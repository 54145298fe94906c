"""Edge cases a check must get right (issue 14, section 3), each run through the suites as a user runs them:
C13 at the retention limit (a meter keeping exactly 30 days passes, 29 fails) and C11 on a meter without a
module rail (a flow ending in a cut without AT+CFUN=0 fails or is inconclusive, never passes). C4 after a
power cut for some meter numbers is the defect matrix's `c4-no-stagger-after-power-cut-some-numbers`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rig.matrix import REFERENCE, Outcome, defect_path, run_checks

RUN_TIMEOUT_S = 300.0


def profile(tmp_path: Path, name: str, base: Path = REFERENCE, **settings: object) -> Path:
    """A device profile extending `base` with `settings` (top-level sections, merged)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"extends": str(base), "name": name, **settings}, sort_keys=False))
    return path


def outcome(device: Path, check: str, extra: tuple[str, ...] = ()) -> Outcome:
    """The one outcome of a level-free check."""
    row = run_checks(device, checks=[check], timeout_s=RUN_TIMEOUT_S, extra=extra)
    assert len(row.outcomes) == 1, row.outcomes
    return row.outcomes[0]


@pytest.mark.parametrize(("days", "verdict"), [(30, "passed"), (29, "failed")])
def test_c13_passes_a_meter_keeping_exactly_30_days_of_logs_and_fails_one_keeping_29(
        tmp_path: Path, days: int, verdict: str) -> None:
    device = profile(tmp_path, f"logs-{days}-days", sim={"meter": {"log_retention_days": days}})
    assert outcome(device, "C13").outcome == verdict


NO_RAIL = {"parts": {"module_rail": False}}
FLOW_ENDS_IN_A_BARE_CUT = {"meter": {"exception_flow": ["AT+NRB", "AT+NCSEARFCN", "POWER_CUT"]}}


def test_c11_without_a_rail_fails_a_flow_ending_in_a_cut_without_cfun0_at_the_modules_next_power_on(
        tmp_path: Path) -> None:
    device = profile(tmp_path, "flow-cut-no-rail", **NO_RAIL, sim=FLOW_ENDS_IN_A_BARE_CUT)
    assert outcome(device, "C11").outcome == "failed"


def test_c11_without_a_rail_fails_the_c11_defect(tmp_path: Path) -> None:
    device = profile(tmp_path, "c11-no-rail", defect_path("c11-no-cfun0-before-power-off"), **NO_RAIL)
    assert outcome(device, "C11").outcome == "failed"


def test_c11_without_a_rail_is_inconclusive_when_the_module_stays_silent_after_a_last_cut(tmp_path: Path) -> None:
    device = profile(tmp_path, "flow-cut-no-rail", **NO_RAIL, sim=FLOW_ENDS_IN_A_BARE_CUT)
    plan = tmp_path / "short-wait.yaml"
    plan.write_text("name: short-wait\nchecks:\n  C11: {module_heard_within_s: 3600}\n")
    result = outcome(device, "C11", ("--plan", str(plan)))
    assert result.outcome == "inconclusive" and "stayed silent" in result.reason, result


def test_c11_without_a_rail_passes_the_reference_meter(tmp_path: Path) -> None:
    assert outcome(profile(tmp_path, "reference-no-rail", **NO_RAIL), "C11").outcome == "passed"
