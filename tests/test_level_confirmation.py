"""Level confirmation on hand-made readings: agreement, trust, closed-loop corrections, NUESTATS parsing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rig.coverage import CoverageCalculator
from rig.errors import CalibrationFault
from rig.level_confirmation import (
    DeviceReading,
    assess,
    bench_is_trusted,
    calibration_reason,
    closed_loop,
    combined,
    corrected,
    level_ecl,
    majority_ecl,
    median,
    network_from_nuestats,
)
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model
from rig.profiles.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "profiles" / "benches" / "sim.yaml"
PLAN = ROOT / "profiles" / "plans" / "white-paper-2018.yaml"


@pytest.fixture(scope="module")
def plan():
    return load_plan(PLAN)


@pytest.fixture(scope="module")
def sim() -> BenchProfile:
    return load_model(SIM, BenchProfile)


def trusted_bench(sim: BenchProfile) -> BenchProfile:
    data = sim.model_dump()
    data["instruments"]["attenuator"]["reference_calibration"] = {"date": "2026-11-30", "method": "power_meter"}
    return BenchProfile.model_validate(data)


def test_level_ecl_reads_the_level_name() -> None:
    assert [level_ecl(level) for level in ("CE0", "CE1", "CE2")] == [0, 1, 2]


def test_a_reading_within_tolerance_at_the_levels_ecl_confirms(sim, plan) -> None:
    setting = CoverageCalculator(sim, plan).setting("CE1")
    agreement = assess(setting, DeviceReading(1, -113.9, 1.0, "report"), plan, trusted=False, judge_sinr=True)
    assert agreement.confirmed and agreement.rsrp_offset_db == pytest.approx(-3.9)


def test_an_offset_beyond_the_tolerance_is_not_confirmed_on_an_untrusted_bench(sim, plan) -> None:
    setting = CoverageCalculator(sim, plan).setting("CE1")
    agreement = assess(setting, DeviceReading(1, -117.0, 2.0, "report"), plan, trusted=False, judge_sinr=True)
    assert not agreement.confirmed and "RSRP off by -7.0 dB" in agreement.reason and agreement.ecl_matches


def test_a_trusted_bench_confirms_on_the_ecl_alone_so_c12_can_judge_accuracy(sim, plan) -> None:
    setting = CoverageCalculator(sim, plan).setting("CE1")
    far_off = DeviceReading(1, -100.0, 12.0, "report")
    assert assess(setting, far_off, plan, trusted=True, judge_sinr=True).confirmed
    assert not assess(setting, DeviceReading(2, -120.0, 2.0, "report"), plan, trusted=True, judge_sinr=True).confirmed


def test_an_ecl_that_contradicts_the_devices_own_rsrp_is_the_devices_finding_not_the_benchs(sim, plan) -> None:
    setting = CoverageCalculator(sim, plan).setting("CE1")
    assert assess(setting, DeviceReading(0, -110.2, 2.0, "report"), plan, trusted=False, judge_sinr=True).confirmed


def test_only_sinr_off_names_the_interferer_path(sim, plan) -> None:
    setting = CoverageCalculator(sim, plan).setting("CE1")
    assert assess(setting, DeviceReading(1, -110.3, 10.4, "report"), plan, trusted=False, judge_sinr=True).only_sinr_off
    assert not assess(setting, DeviceReading(2, -120.0, 9.0, "report"), plan, trusted=False,
                      judge_sinr=True).only_sinr_off


def test_a_reference_calibration_makes_the_bench_trusted_and_never_closed_loop(sim, plan) -> None:
    trusted = trusted_bench(sim)
    assert bench_is_trusted(trusted) and not bench_is_trusted(sim)
    closed = plan.model_copy(update={"coverage": plan.coverage.model_copy(update={"closed_loop": True})})
    assert closed_loop(sim, closed) and not closed_loop(trusted, closed)
    assert not closed_loop(sim, plan)  # default: off for the twin's virtual clock
    wall = BenchProfile.model_validate(sim.model_dump() | {"clock": "wall", "twin": None,
                                                           "instruments": {"attenuator": None, "supply": None}})
    assert closed_loop(wall, plan)  # default: on for wall-clock benches


def test_a_correction_moves_the_serving_path_by_the_offset_bounded_by_the_step(sim, plan) -> None:
    calculator = CoverageCalculator(sim, plan)
    setting = calculator.setting("CE1")  # 20 dB of attenuation
    weak = assess(setting, DeviceReading(2, -119.7, -7.7, "report"), plan, trusted=False, judge_sinr=True)
    assert corrected(setting, weak, 10.0, 6.0).serving_db == 10.25
    much_weaker = assess(setting, DeviceReading(2, -128.0, -16.0, "report"), plan, trusted=False, judge_sinr=True)
    assert corrected(setting, much_weaker, 10.0, 6.0).serving_db == 10.0  # bounded step


def test_once_rsrp_agrees_the_interferer_is_corrected_by_the_sinr_offset(sim, plan) -> None:
    calculator = CoverageCalculator(sim, plan)
    setting = calculator.setting("CE1")
    clean = assess(setting, DeviceReading(1, -110.3, 10.4, "report"), plan, trusted=False, judge_sinr=True)
    fixed = corrected(setting, clean, 10.0, 6.0)
    # 12.25 dB of interferer attenuation less the 8.37 dB offset, on the 0.25 dB step
    assert fixed.serving_db == setting.serving_db and fixed.interferer_db == 4.0


def test_a_correction_out_of_the_attenuators_range_is_a_calibration_fault(sim, plan) -> None:
    calculator = CoverageCalculator(sim, plan)
    setting = calculator.setting("CE0")  # 5 dB of attenuation
    weak = assess(setting, DeviceReading(0, -105.0, 0.0, "report"), plan, trusted=False, judge_sinr=True)
    with pytest.raises(CalibrationFault, match="outside 0..95"):
        corrected(setting, weak, 10.0, 6.0)


def test_the_calibration_reason_names_both_figures_and_what_to_measure(sim, plan) -> None:
    setting = CoverageCalculator(sim, plan).setting("CE1")
    text = calibration_reason(setting, DeviceReading(2, -119.7, -7.0, "report"), 1, "ECL 2, not 1")
    assert "bench expects -110.0 dBm" in text and "device reports -119.7 dBm at ECL 2" in text
    assert "re-measure the path loss of attenuator channel 1" in text
    assert "the device gave no reading" in calibration_reason(setting, None, 1, "no reading")


@pytest.mark.parametrize("lines, expected", [
    (["Signal power:-1054", "Total power:-870", "ECL:2", "SNR:-58", "EARFCN:2506", "PCI:255"], (2, -105.4, -5.8)),
    (["NUESTATS garbage", "Signal power: -819", "ECL: 0", "SNR: 234", "PCI: 226"], (0, -81.9, 23.4)),
    (["Signal power:-32768", "ECL:255", "SNR:-32768", "PCI:65535"], None),
    (["OK"], None),
    (["Signal power:" + "9" * 400, "ECL:0", "SNR:10", "PCI:226"], None),  # garbled: no float holds it
])
def test_nuestats_lines_become_a_reading_and_sentinels_mean_no_service(lines, expected) -> None:
    reading = DeviceReading.from_network(network_from_nuestats(lines), "AT+NUESTATS")
    assert (reading if reading is None else (reading.ecl, reading.rsrp_dbm, reading.sinr_db)) == expected


def test_majority_and_median_of_readings_a_tie_going_to_the_levels_ecl() -> None:
    readings = [DeviceReading(ecl, -114.0, 0.0, "r") for ecl in (2, 1, 1)]
    assert majority_ecl(readings, 2) == 1 and majority_ecl([], 1) is None
    assert majority_ecl(readings[:2], 1) == 1 and majority_ecl(readings[:2], 2) == 2
    assert median([3.0, None, 1.0, 2.0]) == 2.0 and math.isnan(median([None]))
    joined = combined([DeviceReading(2, -115.4, 0.1, "r"), DeviceReading(1, -114.6, 0.3, "r"),
                       DeviceReading(1, -114.9, None, "r")], 1)
    assert (joined.ecl, joined.rsrp_dbm, joined.sinr_db) == (1, -114.9, 0.2)


def test_a_correction_with_nothing_to_correct_by_is_a_calibration_fault(sim, plan) -> None:
    setting = CoverageCalculator(sim, plan).setting("CE1")
    no_rsrp = assess(setting, DeviceReading(2, None, None, "report"), plan, trusted=False, judge_sinr=True)
    with pytest.raises(CalibrationFault, match="nothing to correct by"):
        corrected(setting, no_rsrp, 10.0, 6.0)
