"""C21a storage mode on the twin's meter: set over the near-end port, the meter stays at its floor with
no search for a day, and a magnet wakes it into a report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rig.bench import Bench
from rig.maintenance import MaintenanceRefused
from rig.meter_session import MeterSession
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
REFERENCE = ROOT / "profiles" / "devices" / "reference-meter.yaml"
SEARCH_THRESHOLD_A = 5e-3


def stored_day(device: Path) -> tuple[float, float, int]:
    """Average and peak current over 24 h after STORAGE ON, then what a magnet does."""
    with Bench(load_model(BENCH, BenchProfile), BENCH, device_path=device) as bench, MeterSession(
        bench, load_model(device, DeviceProfile)
    ) as meter:
        bench.attenuator.set_all(95)
        bench.attenuator.set_attenuation(1, 5)
        meter.power_on()
        bench.clock.sleep(86400)
        meter.maintenance.storage_on()
        bench.clock.sleep(600)
        total, peak, periods = 0.0, 0.0, 0
        for chunk in bench.supply.data_log(1.0, 86400, chunk_periods=20_000):
            total += float(np.sum(chunk.mean_a))
            peak = max(peak, float(np.max(chunk.max_a)))
            periods += len(chunk.mean_a)
        reports_before = len(meter.platform.uplinks)
        meter.stimulate("magnetic")
        bench.clock.sleep(3600)
        woke = len(meter.platform.uplinks) - reports_before
        return total / periods, peak, woke


def test_storage_mode_holds_the_floor_without_searching_and_a_magnet_wakes_the_meter() -> None:
    average_a, peak_a, woke = stored_day(REFERENCE)
    assert average_a <= 20e-6
    assert peak_a < SEARCH_THRESHOLD_A
    assert woke >= 1


def test_defect_without_storage_mode_refuses_it() -> None:
    with pytest.raises(MaintenanceRefused):
        stored_day(ROOT / "profiles" / "devices" / "defects" / "c21-no-storage-mode.yaml")
