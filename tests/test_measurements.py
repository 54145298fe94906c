"""Measurements judge against their limits, whatever number type a check hands them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rig.measurements import Measurement, MeasurementLog, read_measurements


def test_limits_judge_plain_and_numpy_numbers_alike() -> None:
    for value in (181.7, np.float64(181.7), np.float32(181.7), 181):
        failed = Measurement("C8", "once", "guard_s", value, "s", low=300.0)
        assert failed.passed is False
        passed = Measurement("C8", "once", "guard_s", value, "s", high=300.0)
        assert passed.passed is True
    assert Measurement("C1", "once", "firmware", "V150", "").passed is None
    assert Measurement("C3", "CE0", "tail_s", float("nan"), "s", high=3.0).passed is False


def test_log_appends_each_measurement_at_once_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "run" / "measurements.csv"
    log = MeasurementLog(path)
    log.append(Measurement("C3", "CE1", "tail_s", 0.47, "s", high=3.0, note="worst"))
    assert path.read_text().count("\n") == 2  # header and the record, before anything else happens
    log.append(Measurement("C1", "once", "module_firmware", "V150R100C10B200SP1"))
    records = read_measurements(path)
    assert records[0].value == 0.47 and records[0].passed is True
    assert records[1].value == "V150R100C10B200SP1" and records[1].passed is None
