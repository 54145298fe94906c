"""Bench and device profiles through `load_model`: good files load, bad ones name the file and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rig.profiles.bench import ATTENUATION_MAX_DB, BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import ProfileError, load_model

TWIN_BENCH = """
name: sim
clock: virtual
twin:
  seed: 7
instruments:
  attenuator:
    resource: twin:attenuator
  supply:
    resource: twin:supply
    module_rail_channel: 2
"""

HARDWARE_BENCH = """
name: lab-1
clock: wall
instruments:
  attenuator:
    resource: TCPIP0::192.168.1.20::23::SOCKET
    channels: {serving: 2, second_cell: 1, interferer: 3, spare: 4}
    path_loss_db: {1: 31.5, 2: 30.25}
  supply:
    resource: TCPIP0::192.168.1.21::5025::SOCKET
safe_state:
  attenuation_db: 80
  supply_output: "off"
"""

METER = """
name: reference-meter
kind: meter
identity:
  vendor: Rig
  model: RM-1
  module: BC28
parts:
  module_rail: true
  stimulus: true
failure_detection_max_s: 90
sim:
  module: {psm_current_ua: 12}
"""


def write(tmp_path: Path, text: str, name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def refusal(path: Path, model: type) -> str:
    with pytest.raises(ProfileError) as caught:
        load_model(path, model)
    message = str(caught.value)
    assert str(path) in message
    return message


# --- good files ----------------------------------------------------------------------------------------


def test_twin_bench_loads_with_defaults(tmp_path: Path) -> None:
    bench = load_model(write(tmp_path, TWIN_BENCH), BenchProfile)
    assert bench.clock == "virtual" and bench.twin is not None and bench.twin.seed == 7
    attenuator = bench.instruments.attenuator
    assert attenuator is not None
    assert attenuator.channels == {"serving": 1, "second_cell": 2, "interferer": 3, "spare": 4}
    assert bench.instruments.supply is not None and bench.instruments.supply.module_rail_channel == 2
    assert bench.safe_state.attenuation_db == ATTENUATION_MAX_DB
    assert bench.safe_state.supply_output == "off"


def test_hardware_bench_loads_its_calibration(tmp_path: Path) -> None:
    bench = load_model(write(tmp_path, HARDWARE_BENCH), BenchProfile)
    assert bench.twin is None
    attenuator = bench.instruments.attenuator
    assert attenuator is not None
    assert attenuator.channels["serving"] == 2
    assert attenuator.path_loss_db == {1: 31.5, 2: 30.25}
    assert bench.safe_state.attenuation_db == 80


def test_device_profile_loads_with_defaults(tmp_path: Path) -> None:
    device = load_model(write(tmp_path, METER), DeviceProfile)
    assert (device.kind, device.identity.vendor, device.identity.serial) == ("meter", "Rig", "")
    assert device.parts.monitor and device.parts.module_rail and not DeviceProfile.model_fields["parts"].is_required()
    assert device.failure_detection_max_s == 90
    assert device.sim.module.psm_current_ua == 12
    assert device.sim.meter.release_assistance is True


def test_device_failure_detection_defaults_to_120_s(tmp_path: Path) -> None:
    text = "name: m\nkind: module\nidentity: {vendor: Quectel, model: BC28}\n"
    assert load_model(write(tmp_path, text), DeviceProfile).failure_detection_max_s == 120


# --- bench refusals ------------------------------------------------------------------------------------

BENCH_REFUSALS = {
    "channel-wrong-type": (
        HARDWARE_BENCH.replace("serving: 2,", "serving: two,"),
        ["field 'instruments.attenuator.channels.serving'", "integer"],
    ),
    "channels-not-a-mapping": (
        HARDWARE_BENCH.replace("channels: {serving: 2, second_cell: 1, interferer: 3, spare: 4}", "channels: [1, 2]"),
        ["field 'instruments.attenuator.channels'", "dictionary"],
    ),
    "channel-role-misspelt": (
        HARDWARE_BENCH.replace("second_cell: 1", "second_call: 1"),
        ["instruments.attenuator.channels.second_call", "second_cell"],
    ),
    "channel-out-of-range": (
        HARDWARE_BENCH.replace("serving: 2,", "serving: 5,"),
        ["field 'instruments.attenuator.channels.serving'", "less than or equal to 4"],
    ),
    "two-paths-on-one-channel": (
        HARDWARE_BENCH.replace("serving: 2,", "serving: 1,"),
        ["field 'instruments.attenuator.channels'", "both use attenuator channel 1"],
    ),
    "path-loss-wrong-type": (
        HARDWARE_BENCH.replace("1: 31.5", "1: high"),
        ["field 'instruments.attenuator.path_loss_db[1]'", "number"],
    ),
    "instrument-misspelt": (
        TWIN_BENCH.replace("  attenuator:", "  attenuater:"),
        ["field 'instruments.attenuater'", "unknown key"],
    ),
    "top-level-key-misspelt": (TWIN_BENCH + "safe_sate: {}\n", ["field 'safe_sate'", "unknown key"]),
    "resource-missing": (
        HARDWARE_BENCH.replace("    resource: TCPIP0::192.168.1.21::5025::SOCKET\n", "    channel: 1\n"),
        ["field 'instruments.supply.resource'", "required field is missing"],
    ),
    "name-missing": (TWIN_BENCH.replace("name: sim\n", ""), ["field 'name'", "required field is missing"]),
    "clock-unknown": (TWIN_BENCH.replace("clock: virtual", "clock: fast"), ["field 'clock'", "'virtual'"]),
    "supply-channel-out-of-range": (
        TWIN_BENCH.replace("module_rail_channel: 2", "module_rail_channel: 9"),
        ["field 'instruments.supply.module_rail_channel'", "less than or equal to 4", "(got: 9)"],
    ),
    "safe-attenuation-above-max": (
        HARDWARE_BENCH.replace("attenuation_db: 80", "attenuation_db: 120"),
        ["field 'safe_state.attenuation_db'", "95"],
    ),
    "twin-port-wrong-type": (
        TWIN_BENCH.replace("  seed: 7", "  control_port: http"),
        ["field 'twin.control_port'", "integer"],
    ),
    "virtual-clock-without-twin": (
        TWIN_BENCH.replace("twin:\n  seed: 7\n", ""),
        ["clock 'virtual' needs a 'twin' section"],
    ),
    "twin-resource-on-a-wall-bench": (
        HARDWARE_BENCH.replace("TCPIP0::192.168.1.20::23::SOCKET", "twin:attenuator"),
        ["instruments.attenuator.resource 'twin:attenuator' needs a 'twin'"],
    ),
}


@pytest.mark.parametrize(("text", "expected"), BENCH_REFUSALS.values(), ids=BENCH_REFUSALS.keys())
def test_bad_bench_is_refused_naming_file_and_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = refusal(write(tmp_path, text, "bench.yaml"), BenchProfile)
    for part in expected:
        assert part in message


def test_bench_lists_every_bad_field_at_once(tmp_path: Path) -> None:
    text = HARDWARE_BENCH.replace("serving: 2,", "serving: two,").replace("attenuation_db: 80", "attenuation_db: -1")
    message = refusal(write(tmp_path, text), BenchProfile)
    assert "instruments.attenuator.channels.serving" in message
    assert "safe_state.attenuation_db" in message


def test_virtual_clock_with_twin_is_accepted(tmp_path: Path) -> None:
    bench = load_model(write(tmp_path, "name: sim\nclock: virtual\ntwin: {}\n"), BenchProfile)
    assert bench.twin is not None and bench.twin.launch is True


# --- device refusals -----------------------------------------------------------------------------------

DEVICE_REFUSALS = {
    "wrong-type": (
        METER.replace("failure_detection_max_s: 90", "failure_detection_max_s: slow"),
        ["field 'failure_detection_max_s'", "number"],
    ),
    "not-positive": (
        METER.replace("failure_detection_max_s: 90", "failure_detection_max_s: 0"),
        ["field 'failure_detection_max_s'", "greater than 0"],
    ),
    "nested-key-misspelt": (METER.replace("  vendor: Rig", "  vender: Rig"), ["field 'identity.vender'", "unknown"]),
    "nested-field-missing": (
        METER.replace("  vendor: Rig", "  serial: A1"),
        ["field 'identity.vendor'", "required field is missing"],
    ),
    "section-missing": (
        METER.replace("identity:\n  vendor: Rig\n  model: RM-1\n  module: BC28\n", ""),
        ["field 'identity'", "required field is missing"],
    ),
    "kind-unknown": (METER.replace("kind: meter", "kind: gateway"), ["field 'kind'", "'meter' or 'module'"]),
    "part-wrong-type": (METER.replace("stimulus: true", "stimulus: maybe"), ["field 'parts.stimulus'", "boolean"]),
    "part-misspelt": (METER.replace("stimulus: true", "stimulis: true"), ["field 'parts.stimulis'", "unknown"]),
    "sim-not-a-mapping": (
        METER.replace("sim:\n  module: {psm_current_ua: 12}\n", "sim: [psm]\n"),
        ["field 'sim'", "dictionary"],
    ),
}


@pytest.mark.parametrize(("text", "expected"), DEVICE_REFUSALS.values(), ids=DEVICE_REFUSALS.keys())
def test_bad_device_is_refused_naming_file_and_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = refusal(write(tmp_path, text, "device.yaml"), DeviceProfile)
    for part in expected:
        assert part in message


# --- files that are not profiles -----------------------------------------------------------------------


@pytest.mark.parametrize("model", [BenchProfile, DeviceProfile], ids=["bench", "device"])
def test_bad_yaml_is_refused_with_line_and_column(tmp_path: Path, model: type) -> None:
    message = refusal(write(tmp_path, "name: x\nidentity: {vendor: Rig\nkind: meter\n"), model)
    assert "is not valid YAML: line" in message and "column" in message


@pytest.mark.parametrize("model", [BenchProfile, DeviceProfile], ids=["bench", "device"])
def test_top_level_list_is_refused(tmp_path: Path, model: type) -> None:
    message = refusal(write(tmp_path, "- name: x\n"), model)
    assert "expected a mapping of keys at the top level, got list" in message


@pytest.mark.parametrize("model", [BenchProfile, DeviceProfile], ids=["bench", "device"])
def test_empty_file_is_refused(tmp_path: Path, model: type) -> None:
    assert "the file is empty" in refusal(write(tmp_path, ""), model)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert "file not found" in refusal(tmp_path / "absent.yaml", BenchProfile)
