"""No suite reads the twin's device profile (`device.sim`): a check measures what a real meter on a real bench
shows, so the same figure comes out on hardware. The twin's control-port network log (`SIM:NET:LOG?`, the
callbox-like record of what the network did) is not the device profile and is allowed by name."""

from __future__ import annotations

import re
from pathlib import Path

SUITES = Path(__file__).resolve().parents[1] / "suites"
# `.sim` on a device or device profile object: `device.sim`, `device_profile.sim`, `meter.device.sim`, ...
READS_TWIN_PROFILE = re.compile(r"\b(?:device|device_profile|profile|dut)\s*\.\s*sim\b")
ALLOWED = re.compile(r"SIM:NET:LOG\?")  # the twin's network log, read like a callbox's: not the device profile


def twin_profile_reads(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every read of the twin's device profile in a source text."""
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            if READS_TWIN_PROFILE.search(line) and not ALLOWED.search(line)]


def test_the_scan_sees_a_read_and_allows_the_network_log() -> None:
    source = ("a = meter.device.sim.module.connected_current_ma\nb = device_profile.sim.mcu_active_current_ma\n"
              "c = getattr(device.sim, 'x')\nd = json.loads(bench.twin_link.query('SIM:NET:LOG?'))\n"
              "e = device.simple\nf = self.bench.twin_link.query(f'SIM:NET:LOG? {since}')\n")
    assert [number for number, _ in twin_profile_reads(source)] == [1, 2, 3]


def test_no_suite_reads_the_twins_device_profile() -> None:
    reads = [f"{path.relative_to(SUITES.parent)}:{number}: {line}"
             for path in sorted(SUITES.rglob("*.py")) for number, line in twin_profile_reads(path.read_text())]
    assert not reads, "suites read the twin's device profile (measure it on the trace instead):\n" + "\n".join(reads)
