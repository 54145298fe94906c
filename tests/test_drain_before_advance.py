"""Drain before advance: what the rig receives carries exactly the virtual time the twin emitted it at.

The twin's network log (a callbox's view) is the independent witness: its uplink times must equal the
platform's reception stamps, and its RRC setups and releases the monitor's +CSCON lines, to the bit.
"""

from __future__ import annotations

import json
from pathlib import Path

from rig.bench import Bench
from rig.meter_session import MeterSession
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
DEVICE = ROOT / "profiles" / "devices" / "reference-meter.yaml"


def test_platform_and_monitor_stamps_equal_the_twins_event_times() -> None:
    with Bench(load_model(BENCH, BenchProfile), BENCH, device_path=DEVICE) as bench, MeterSession(
        bench, load_model(DEVICE, DeviceProfile)
    ) as meter:
        bench.attenuator.set_all(95)
        bench.attenuator.set_attenuation(1, 20)
        meter.power_on()
        bench.clock.sleep(3 * 86400)
        network = json.loads(bench.twin_link.query("SIM:NET:LOG?"))

        uplink_times = [event["time_s"] for event in network if event["event"] == "uplink"]
        received_times = [datagram.time_s for datagram in meter.platform.received]
        assert len(uplink_times) >= 10
        assert received_times == uplink_times

        setups = [e["time_s"] for e in network if e["event"] == "rrc_setup"]
        releases = [e["time_s"] for e in network if e["event"] == "rrc_release"]
        cscon = meter.monitor.matching(r"^\+CSCON:[01]$", sender="module")
        connected = [line.time_s for line in cscon if line.text.endswith("1")]
        released = [line.time_s for line in meter.monitor.matching(r"^\+CSCON:0$", sender="module")]
        assert connected == setups
        assert released == releases


def test_the_same_seed_replays_the_same_run() -> None:
    def run() -> list[tuple[float, str, str]]:
        with Bench(load_model(BENCH, BenchProfile), BENCH, device_path=DEVICE, seed=11) as bench, MeterSession(
            bench, load_model(DEVICE, DeviceProfile)
        ) as meter:
            bench.attenuator.set_all(95)
            bench.attenuator.set_attenuation(1, 30)
            meter.power_on()
            bench.clock.sleep(2 * 86400)
            port = str(meter.platform.address[1])
            lines = meter.monitor.lines
            return [(line.time_s, line.sender, line.text.replace(port, "<platform port>")) for line in lines]

    first, second = run(), run()
    assert len(first) > 100
    assert first == second
