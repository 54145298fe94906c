"""A bench that is not where its calibration says is the rig's fault, never the device's (issue 14, section 1).

Campaign runs on the twin with loss its calibration does not declare (`twin.installation_loss_db`, not
passed as `--installation`): 4 dB passes; 10 dB is `broken` with the calibration reason on the twin's
open loop, or corrected by the closed loop; on a bench with a reference calibration a device whose
reported RSRP is 10 dB off fails C12 and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.matrix import REFERENCE, MatrixRow, run_checks

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "profiles" / "benches" / "sim.yaml"
PLAN = ROOT / "profiles" / "plans" / "white-paper-2018.yaml"
LEVELS = {"CE0", "CE1", "CE2"}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def bench(tmp_path: Path, name: str, body: str) -> Path:
    return write(tmp_path / f"{name}.yaml", f"extends: {SIM}\nname: {name}\n{body}")


def outcomes_of(row: MatrixRow, *checks: str) -> dict[tuple[str, str], str]:
    """(check, level) -> outcome of the meter variants (the bare-module variants skip on a meter)."""
    return {(o.check, o.level): o.outcome for o in row.outcomes
            if o.check in checks and "bare_module" not in o.test}


def run(tmp_path: Path, checks: str, bench_path: Path, plan: Path = PLAN, device: Path = REFERENCE,
        select: tuple[str, ...] = ()) -> MatrixRow:
    row = run_checks(device, checks=checks.split(","),
                     extra=["--bench", str(bench_path), "--plan", str(plan), *select])
    assert row.outcomes, "the campaign ran no check"
    return row


def test_4_db_of_undeclared_loss_still_passes(tmp_path: Path) -> None:
    """CE1 then sits 1 dB above the ECL 2 threshold: C22's 300 reports there see the odd ECL 2 and still pass."""
    row = run(tmp_path, "C12,C5,C22", bench(tmp_path, "sim-4db", "twin: {installation_loss_db: 4}"),
              select=("-k", "not c22 or CE1"))
    outcomes = outcomes_of(row, "C12", "C5", "C22")
    assert {level for _, level in outcomes} == LEVELS and ("C22", "CE1") in outcomes
    assert set(outcomes.values()) == {"passed"}, outcomes


def test_10_db_of_undeclared_loss_is_broken_with_the_calibration_reason_on_the_open_loop_twin(tmp_path: Path) -> None:
    row = run(tmp_path, "C12,C5", bench(tmp_path, "sim-10db", "twin: {installation_loss_db: 10}"))
    meter = [o for o in row.outcomes if "bare_module" not in o.test]
    assert {(o.check, o.level) for o in meter} == {(c, level) for c in ("C12", "C5") for level in LEVELS}
    for outcome in meter:
        assert outcome.outcome == "broken", outcome
        assert "CalibrationFault" in outcome.reason and "bench expects" in outcome.reason
        assert "re-measure the path loss of attenuator channel 1" in outcome.reason


def test_10_db_of_undeclared_loss_is_corrected_by_the_closed_loop(tmp_path: Path) -> None:
    # the calibration declares 20 dB where 30 dB are: enough attenuation left to correct CE0 too
    declared = bench(tmp_path, "sim-declares-20db", "twin: {installation_loss_db: 10}\n"
                     "instruments:\n  attenuator:\n    path_loss_db: {1: 20.0, 2: 20.0, 3: 20.0, 4: 20.0}\n")
    plan = write(tmp_path / "closed.yaml", f"extends: {PLAN}\nname: closed-loop\ncoverage: {{closed_loop: true}}\n")
    row = run(tmp_path, "C12,C5", declared, plan)
    outcomes = outcomes_of(row, "C12", "C5")
    assert {level for _, level in outcomes} == LEVELS
    assert set(outcomes.values()) == {"passed"}, outcomes


def test_a_reference_calibrated_bench_fails_c12_only_for_a_device_reporting_rsrp_10_db_off(tmp_path: Path) -> None:
    trusted = bench(tmp_path, "sim-reference", "instruments:\n  attenuator:\n    reference_calibration: "
                    "{date: 2026-11-30, method: spectrum_analyser, instrument: FSV3004}\n")
    device = write(tmp_path / "rsrp-10db-low.yaml", f"extends: {REFERENCE}\nname: rsrp-10db-low\n"
                   "sim: {meter: {reported_rsrp_offset_db: -10}}\n")
    row = run(tmp_path, "C12,C5", trusted, device=device)
    outcomes = outcomes_of(row, "C12", "C5")
    assert {level for check, level in outcomes if check == "C12"} == LEVELS
    failing = {key for key, outcome in outcomes.items() if outcome != "passed"}
    assert failing == {("C12", level) for level in LEVELS}, outcomes
    assert all(outcomes[key] == "failed" for key in failing)


@pytest.mark.parametrize("loss_db", [12])
def test_a_level_beyond_the_service_edge_is_broken_not_failed(tmp_path: Path, loss_db: int) -> None:
    """CE2 with 12 dB more loss is below the no-service edge: no report comes, the module finds no cell."""
    row = run(tmp_path, "C5", bench(tmp_path, "sim-12db", f"twin: {{installation_loss_db: {loss_db}}}"))
    ce2 = [o for o in row.outcomes if o.level == "CE2" and "bare_module" not in o.test]
    assert [o.outcome for o in ce2] == ["broken"]
    assert "no report came at the level, but the meter reports at" in ce2[0].reason


def test_reports_at_another_ecl_than_the_level_break_the_cell(tmp_path: Path) -> None:
    """4 dB off, CE1 sits 1 dB above the ECL 2 threshold: a plan that tolerates no off-level report breaks C22."""
    strict = write(tmp_path / "strict.yaml", f"extends: {PLAN}\nname: strict\n"
                   "coverage: {off_level_reports_max_fraction: 0}\n")
    row = run(tmp_path, "C22", bench(tmp_path, "sim-4db", "twin: {installation_loss_db: 4}"), strict,
              select=("-k", "CE1"))
    [c22] = [o for o in row.outcomes if o.level == "CE1"]
    assert c22.outcome == "broken" and "OffLevelFault" in c22.reason and "at another ECL than 1" in c22.reason


def test_a_meter_that_cannot_transmit_fails_on_a_good_bench_and_is_not_blamed_on_it(tmp_path: Path) -> None:
    """No report at the level, but the module's own reading on the monitor agrees with the bench: failed."""
    dead = write(tmp_path / "dead-tx.yaml", f"extends: {REFERENCE}\nname: dead-tx\n"
                 "sim: {module: {tx_power_dbm: -40}}\n")
    row = run(tmp_path, "C3", SIM, device=dead, select=("-k", "CE1"))
    assert [o.outcome for o in row.outcomes if o.level == "CE1" and "bare_module" not in o.test] == ["failed"]
