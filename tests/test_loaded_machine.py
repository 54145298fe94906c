"""A verdict never depends on machine load or on other traffic on the host (issue 14, section 2).

A campaign on the twin is a pure function of (profiles, seed): a sample of defects and the reference meter,
run on an idle machine and again beside more busy processes than cores, give the same outcomes and the same
measurements.csv to the byte; a stray datagram from another process on either side of the platform link
changes nothing either.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from rig.bench import Bench
from rig.matrix import REFERENCE, MatrixRow, defect_path, run_checks
from rig.meter_session import MeterSession, twin_endpoint
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
# The reference, C7 at CE2 (which once moved under load for c4-ignores-t3: it must pass it) and a device that
# must fail it; `make matrix` run loaded covers the rest (CI time)
SAMPLE = {
    REFERENCE: ("C3",),
    defect_path("c4-ignores-t3"): ("C7",),
    defect_path("c7-retry-5-5-5"): ("C7",),
}
STRAY = b"\x40\x01\x12\x34"  # a CON GET, as another process's CoAP client would send
HOG = "import os, sys\nparent = int(sys.argv[1])\nwhile os.getppid() == parent:\n    pass"  # dies with the test


@contextmanager
def busy_machine() -> Iterator[None]:
    """More busy processes than cores for the duration of the block; every one is killed afterwards."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(os.getpid())]) for _ in range((os.cpu_count() or 1) + 1)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


def run_sample(results: Path) -> dict[str, tuple[list, bytes]]:
    """Each device of the sample through its checks at CE2, two at a time (as `make matrix` runs them)."""
    results.mkdir()

    def one(device: Path) -> tuple[MatrixRow, Path]:
        measurements = results / f"{device.stem}.csv"
        row = run_checks(device, SAMPLE[device], extra=["-k", "CE2", "--measurements", str(measurements)])
        return row, measurements

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(one, SAMPLE))
    return {row.device: (row.outcomes, measurements.read_bytes()) for row, measurements in runs}


def test_outcomes_and_measurements_are_the_same_on_a_loaded_machine(tmp_path: Path) -> None:
    idle = run_sample(tmp_path / "idle")
    assert all(outcomes for outcomes, _ in idle.values()), "a device of the sample ran no check"
    assert any(o.outcome == "failed" for o in idle["c7-retry-5-5-5"][0]), "the failing sample did not fail"
    with busy_machine():
        loaded = run_sample(tmp_path / "loaded")
    for device, (outcomes, measurements) in idle.items():
        assert loaded[device][0] == outcomes, f"{device}: outcomes differ under load"
        assert loaded[device][1] == measurements, f"{device}: measurements.csv differs under load"


def meter_run(stray_to: str | None) -> list[tuple[float, int]]:
    """A day of a reference meter's datagrams at the platform; optionally a stray lands on one side of the link
    (`twin`: the twin's core-network endpoint, `platform`: the platform's socket) right after its first report."""
    device = load_model(REFERENCE, DeviceProfile)
    with Bench(load_model(BENCH, BenchProfile), BENCH, device_path=REFERENCE) as bench, \
            MeterSession(bench, device) as meter:
        bench.attenuator.set_all(95)
        bench.attenuator.set_attenuation(1, 30)
        meter.power_on()
        assert meter.wait_for_report(2 * 86400) is not None
        if stray_to is not None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
                stranger.sendto(STRAY, twin_endpoint(bench) if stray_to == "twin" else meter.platform.address)
        bench.clock.sleep(86400)
        return [(datagram.time_s, datagram.size_bytes) for datagram in meter.platform.received]


def test_a_stray_datagram_on_the_platform_link_changes_nothing() -> None:
    undisturbed = meter_run(None)
    assert meter_run("twin") == undisturbed
    assert meter_run("platform") == undisturbed
