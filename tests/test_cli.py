"""The command line: `rig sim` stands alone and is reachable by what it prints; `rig certify` runs and records."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
import pyvisa

from rig import exit_codes

ROOT = Path(__file__).resolve().parents[1]


def run_rig(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rig", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
    )


def read_banner(process: subprocess.Popen, lines: int) -> list[str]:
    banner = []
    while len(banner) < lines:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, f"rig sim printed only {banner}"
        banner.append(process.stdout.readline().decode().rstrip())
    return banner


def test_rig_sim_prints_endpoints_that_pyvisa_can_talk_to() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "rig", "sim", "--speed", "100"], cwd=ROOT, stdout=subprocess.PIPE, bufsize=0
    )
    try:
        banner = "\n".join(read_banner(process, 4))
        resources = dict(re.findall(r"^\s+(attenuator|supply)\s+(TCPIP0::\S+::SOCKET)$", banner, re.M))
        assert set(resources) == {"attenuator", "supply"}
        assert "127.0.0.1" in resources["supply"]
        manager = pyvisa.ResourceManager("@py")
        supply = manager.open_resource(resources["supply"], read_termination="\n", write_termination="\n")
        attenuator = manager.open_resource(resources["attenuator"], read_termination="\r\n", write_termination="\r\n")
        assert supply.query("*IDN?").startswith("Keysight Technologies,N6705C,")
        assert attenuator.query(":MN?") == "MN=RC4DAT-6G-95"
        assert attenuator.query(":CHAN:3:SETATT=12.5") == "1"
        assert attenuator.query(":CHAN:3:ATT?") == "12.5"
        manager.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_certify_writes_a_run_and_points_latest_at_it(tmp_path: Path) -> None:
    result = run_rig("certify", "--results", str(tmp_path), "--", "--checks", "C1")
    assert result.returncode == exit_codes.INCOMPLETE, result.stdout + result.stderr  # only C1 of the plan ran
    assert "verdict: INCOMPLETE" in result.stdout
    latest = tmp_path / "latest"
    assert latest.is_symlink()
    run = latest.resolve()
    assert (run / "junit.xml").is_file()
    assert any((run / "allure-results").glob("*-result.json"))
    # run without --seed: the record and the report show the seed the twin ran with, the bench profile's
    assert json.loads((run / "run.json").read_text())["seed"] == 1
    assert "twin.seed=1" in (run / "allure-results" / "environment.properties").read_text().splitlines()


def test_certify_refuses_a_bad_profile_before_touching_anything(tmp_path: Path) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text((ROOT / "profiles" / "benches" / "sim.yaml").read_text().replace("seed: 1", "seed: many"))
    result = run_rig("certify", "--bench", str(bench), "--results", str(tmp_path / "results"))
    assert result.returncode == 2
    assert str(bench) in result.stderr
    assert "twin.seed" in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM semantics")
def test_rig_sim_refuses_a_bench_without_a_twin(tmp_path: Path) -> None:
    bench = tmp_path / "hardware.yaml"
    bench.write_text("name: lab\nclock: wall\n")
    result = run_rig("sim", "--bench", str(bench), timeout_s=30)
    assert result.returncode == 2
    assert "no 'twin' section" in result.stderr


@pytest.mark.parametrize(("pytest_code", "verdict", "expected"), [
    (pytest.ExitCode.OK, "PASS", 0),
    (pytest.ExitCode.TESTS_FAILED, "FAIL", 1),
    (pytest.ExitCode.TESTS_FAILED, "INCOMPLETE", 3),  # a broken check is a failed test to pytest
    (pytest.ExitCode.OK, "INCOMPLETE", 3),
    (pytest.ExitCode.INTERRUPTED, "FAIL", 3),
    (pytest.ExitCode.INTERNAL_ERROR, "PASS", 4),
    (pytest.ExitCode.USAGE_ERROR, None, 2),
    (pytest.ExitCode.NO_TESTS_COLLECTED, "INCOMPLETE", 2),
    (pytest.ExitCode.OK, None, 4),  # the run's certificate could not be built
    (pytest.ExitCode.TESTS_FAILED, "PASS", 3),  # an error no cell recorded
])
def test_certify_maps_pytests_codes_onto_its_own(pytest_code: int, verdict: str | None, expected: int) -> None:
    assert exit_codes.certify_code(pytest_code, verdict) == expected


def test_certify_never_passes_a_pytest_usage_error_through(tmp_path: Path) -> None:
    result = run_rig("certify", "--results", str(tmp_path), "--", "--no-such-option")
    assert result.returncode == exit_codes.USAGE, result.stdout + result.stderr


def test_a_suite_that_cannot_be_collected_is_a_rig_crash_not_an_interruption() -> None:
    assert exit_codes.certify_code(pytest.ExitCode.INTERRUPTED, "INCOMPLETE", collection_failed=True) == 4


def test_an_installation_preset_the_plan_lacks_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    result = run_rig("certify", "--results", str(tmp_path), "--", "--installation", "lunar_crater")
    assert result.returncode == exit_codes.USAGE, result.stdout + result.stderr
    assert "lunar_crater" in result.stdout + result.stderr
