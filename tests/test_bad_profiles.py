"""Malformed profiles, made from the shipped ones, are refused with the file, the field and the reason.

Each case is a file a hostile or unlucky user could hand the rig: broken bytes, YAML bombs, a 50 MB plan, a
time zone on Mars, negative waits, infinite timeouts, a secret from a missing environment variable. Every
one must raise `ProfileError` (nothing else escapes) naming the file and, where there is one, the field. A
sample goes through the command line (`certify`, `certify --list`, `sim`, the pytest plugin) in subprocesses:
exit 2 (pytest's own usage error for the plugin), the same message, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from rig.profiles.bench import BenchProfile, exposure_warning
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import MAX_EXTENDS, MAX_PROFILE_BYTES, ProfileError, load_model
from rig.profiles.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {
    "bench": ROOT / "profiles" / "benches" / "sim.yaml",
    "device": ROOT / "profiles" / "devices" / "reference-meter.yaml",
    "plan": ROOT / "profiles" / "plans" / "white-paper-2018.yaml",
}
LOADERS: dict[str, Callable[[Path], object]] = {
    "bench": lambda path: load_model(path, BenchProfile),
    "device": lambda path: load_model(path, DeviceProfile),
    "plan": load_plan,
}
UNSET_VARIABLE = "RIG_TEST_SECRET_NEVER_SET"

Writer = Callable[[Path], Path]


@dataclass(frozen=True)
class Case:
    """One malformed profile: which kind it poses as, how to write it, what the refusal must say."""

    name: str
    kind: str
    write: Writer
    expected: tuple[str, ...]
    hidden: tuple[str, ...] = ()


def raw(content: bytes) -> Writer:
    def write(folder: Path) -> Path:
        path = folder / "profile.yaml"
        path.write_bytes(content)
        return path

    return write


def text(content: str) -> Writer:
    return raw(content.encode())


def override(kind: str, changes: str) -> Writer:
    """The shipped profile of `kind` with `changes` (YAML) merged on top, the way a user derives one."""
    return text(f"extends: {SHIPPED[kind]}\n{changes}")


def without(kind: str, key: str) -> Writer:
    """The shipped profile of `kind`, written out whole, less its top-level `key`."""
    data = yaml.safe_load(SHIPPED[kind].read_text())
    del data[key]
    return text(yaml.safe_dump(data))


def nested(depth: int) -> Writer:
    return text("name: " + "[" * depth + "]" * depth + "\n")


def billion_laughs() -> Writer:
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        aliases = ", ".join([f"*lol{level - 1}"] * 9)
        lines.append(f"lol{level}: &lol{level} [{aliases}]")
    return text("\n".join(lines) + "\n")


def sparse(size: int) -> Writer:
    """A file of `size` bytes that takes no disk: refused by its size, before a byte is read."""

    def write(folder: Path) -> Path:
        path = folder / "plan.yaml"
        with path.open("wb") as file:
            file.truncate(size)
        return path

    return write


def directory(folder: Path) -> Path:
    (folder / "profile.yaml").mkdir()
    return folder / "profile.yaml"


def missing(folder: Path) -> Path:
    return folder / "no-such-profile.yaml"


def fifo(folder: Path) -> Path:
    os.mkfifo(folder / "profile.yaml")
    return folder / "profile.yaml"


def extends_chain(folder: Path) -> Path:
    (folder / "p0.yaml").write_text(f"extends: {SHIPPED['bench']}\n")
    for index in range(1, MAX_EXTENDS + 3):
        (folder / f"p{index}.yaml").write_text(f"extends: p{index - 1}.yaml\n")
    return folder / f"p{MAX_EXTENDS + 2}.yaml"


def extends_loop(folder: Path) -> Path:
    (folder / "a.yaml").write_text("extends: b.yaml\n")
    (folder / "b.yaml").write_text("extends: a.yaml\n")
    return folder / "a.yaml"


FILE_CASES = [
    Case("missing file", "bench", missing, ("file not found",)),
    Case("directory", "bench", directory, ("is a directory",)),
    Case("fifo", "bench", fifo, ("not a regular file",)),
    Case("empty file", "device", text(""), ("empty",)),
    Case("only comments", "plan", text("# nothing here\n"), ("empty",)),
    Case("latin-1 text", "bench", raw("name: café\n".encode("latin-1")), ("not UTF-8", "line 1")),
    Case("utf-16 text", "device", raw("name: x\n".encode("utf-16")), ("not UTF-8",)),
    Case("binary garbage", "plan", raw(bytes(range(256)) * 8), ("not UTF-8",)),
    Case("NUL in text", "bench", text("name: a\x00b\n"), ("control character", "line 1")),
    Case("top-level list", "device", text("- name: x\n"), ("expected a mapping",)),
    Case("top-level scalar", "plan", text("just words\n"), ("expected a mapping",)),
    Case("syntax error", "bench", text("name: [unclosed\n"), ("not valid YAML", "line 2")),
    Case("tab indentation", "device", text("identity:\n\tvendor: x\n"), ("not valid YAML", "line 2")),
    Case("nested 5000 lists", "plan", nested(5000), ("nested deeper than 64",)),
    Case("nested 5000 mappings", "bench", text("a: " + "{b: " * 5000 + "1" + "}" * 5000), ("nested deeper",)),
    Case("billion laughs", "plan", billion_laughs(), ("more than", "values (aliases expanded)")),
    Case("recursive alias", "device", text("name: &x [*x]\n"), ("alias refers to",)),
    Case("50 MB plan", "plan", sparse(50 * 1024 * 1024), (f"over the {MAX_PROFILE_BYTES} bytes limit",)),
    Case("just over the limit", "bench", sparse(MAX_PROFILE_BYTES + 1), ("limit",)),
    Case("duplicate key", "bench", override("bench", "name: a\nname: b\n"), ("'name' appears twice", "line 3")),
    Case("list as key", "device", text("? [1, 2]\n: 3\n"), ("a key must be a plain value",)),
    Case("5000-digit number", "bench", override("bench", f"twin: {{seed: {'9' * 5000}}}\n"), ("line 2", "digits")),
    Case("impossible date", "bench",
         override("bench", "instruments:\n  attenuator:\n    reference_calibration: {date: 2026-13-45}\n"),
         ("line 4", "month must be in 1..12")),
    Case("python tag", "plan", text("name: !!python/object/apply:os.system [echo hi]\n"), ("constructor",)),
    Case("extends missing", "device", text("extends: nowhere.yaml\n"), ("field 'extends'", "does not exist")),
    Case("extends not a name", "device", text("extends: [a, b]\n"), ("field 'extends'", "expected a file name")),
    Case("extends loop", "bench", extends_loop, ("field 'extends'", "loop")),
    Case("extends chain", "bench", extends_chain, ("field 'extends'", f"more than {MAX_EXTENDS}")),
]

DEVICE_CASES = [
    Case("timezone on Mars", "device", override("device", "sim: {meter: {timezone: Mars/Olympus}}\n"),
         ("sim.meter.timezone", "unknown time zone 'Mars/Olympus'")),
    Case("timezone empty", "device", override("device", "sim: {meter: {timezone: ''}}\n"),
         ("sim.meter.timezone", "unknown time zone")),
    Case("timezone path", "device", override("device", "sim: {meter: {timezone: ../../etc/passwd}}\n"),
         ("sim.meter.timezone", "unknown time zone")),
    Case("negative retry wait", "device", override("device", "sim: {meter: {retry_waits_s: [300, -5]}}\n"),
         ("sim.meter.retry_waits_s[1]", "greater than or equal to 0")),
    Case("NaN 513 wait", "device", override("device", "sim: {meter: {cme513_waits_s: [.nan]}}\n"),
         ("sim.meter.cme513_waits_s[0]", "finite")),
    Case("infinite failure detection", "device", override("device", "failure_detection_max_s: .inf\n"),
         ("failure_detection_max_s", "finite")),
    Case("negative failure detection", "device", override("device", "failure_detection_max_s: -1\n"),
         ("failure_detection_max_s", "greater than 0")),
    Case("duration as words", "device", override("device", "failure_detection_max_s: soon\n"),
         ("failure_detection_max_s", "valid number")),
    Case("overflowing float", "device", override("device", "sim: {module: {boot_time_s: 1.0e+400}}\n"),
         ("sim.module.boot_time_s", "finite")),
    Case("a wait of 1e300 s", "device", override("device", "sim: {meter: {reset_wait_s: 1.0e+300}}\n"),
         ("sim.meter.reset_wait_s", "less than or equal to 315360000")),
    Case("NaN lock-out", "device", override("device", "sim: {meter: {lockout_s: .nan}}\n"),
         ("sim.meter.lockout_s", "finite")),
    Case("clock running backwards", "device", override("device", "sim: {meter: {clock_drift_ppm: -2000000}}\n"),
         ("sim.meter.clock_drift_ppm", "greater than or equal to")),
    Case("hour 25", "device", override("device", "sim: {meter: {report_t1: '25:00'}}\n"),
         ("sim.meter.report_t1", "HH:MM")),
    Case("unknown kind", "device", override("device", "kind: toaster\n"), ("field 'kind'", "'meter' or 'module'")),
    Case("no name", "device", without("device", "name"), ("field 'name'", "missing")),
    Case("identity as text", "device", override("device", "identity: acme\n"), ("field 'identity'",)),
    Case("misspelt key", "device", override("device", "sim: {meter: {pasword_required: false}}\n"),
         ("sim.meter.pasword_required", "unknown key")),
    Case("no log modules", "device", override("device", "logs: {modules: []}\n"),
         ("logs.modules", "at least 1 item")),
    Case("meter without firmware", "device", override("device", "sim: {meter: null}\n"),
         ("a meter needs its firmware section",)),
    Case("unquoted numeric password", "device", override("device", "maintenance: {password: 271828}\n"),
         ("maintenance.password", "quoted text"), hidden=("271828",)),
    Case("empty signing key", "device", override("device", "upgrade: {signing_key: ''}\n"),
         ("upgrade.signing_key", "cannot be empty")),
    Case("password from unset variable", "device",
         override("device", f"maintenance: {{password: {{env: {UNSET_VARIABLE}}}}}\n"),
         ("maintenance.password", f"environment variable {UNSET_VARIABLE} is not set")),
    Case("image key from a bad name", "device", override("device", "sim: {meter: {image_key: {env: 'A B'}}}\n"),
         ("sim.meter.image_key", "{env: VARIABLE_NAME}")),
    Case("secret from a file", "device", override("device", "upgrade: {signing_key: {file: key.pem}}\n"),
         ("upgrade.signing_key", "{env: VARIABLE_NAME}")),
]

BENCH_CASES = [
    Case("wildcard host", "bench", override("bench", "twin: {host: 0.0.0.0}\n"),
         ("twin.host", "not a loopback address", "allow_remote")),
    Case("lan host", "bench", override("bench", "twin: {host: 192.168.1.20}\n"), ("twin.host", "allow_remote")),
    Case("infinite control timeout", "bench", override("bench", "twin: {control_timeout_s: .inf}\n"),
         ("twin.control_timeout_s", "finite")),
    Case("huge control timeout", "bench", override("bench", "twin: {control_timeout_s: 1.0e+12}\n"),
         ("twin.control_timeout_s", "less than or equal to 3600")),
    Case("zero control timeout", "bench", override("bench", "twin: {control_timeout_s: 0}\n"),
         ("twin.control_timeout_s", "greater than 0")),
    Case("start not a time", "bench", override("bench", "twin: {start: yesterday}\n"), ("twin.start", "ISO 8601")),
    Case("no cells", "bench", override("bench", "rf: {cells: []}\n"), ("rf.cells", "at least 1 item")),
    Case("negative inactivity timer", "bench", override("bench", "network: {inactivity_timer_s: -20}\n"),
         ("network.inactivity_timer_s", "greater than 0")),
    Case("virtual clock without twin", "bench", override("bench", "twin: null\n"), ("needs a 'twin' section",)),
    Case("two paths on one channel", "bench",
         override("bench", "instruments: {attenuator: {channels: {serving: 1, second_cell: 1}}}\n"),
         ("instruments.attenuator.channels", "both use attenuator channel 1")),
    Case("port out of range", "bench", override("bench", "twin: {control_port: 70000}\n"), ("twin.control_port",)),
    Case("NaN safe attenuation", "bench", override("bench", "safe_state: {attenuation_db: .nan}\n"),
         ("safe_state.attenuation_db", "finite")),
]

PLAN_CASES = [
    Case("plan timezone on Mars", "plan", override("plan", "time: {timezone: Mars/Olympus}\n"),
         ("time.timezone", "unknown time zone")),
    Case("no levels", "plan", override("plan", "levels: []\n"), ("field 'levels'", "at least 1 item")),
    Case("negative retry wait", "plan", override("plan", "checks: {C7: {retry_waits_s: [-300]}}\n"),
         ("checks.C7.retry_waits_s[0]", "greater than 0")),
    Case("no retry waits", "plan", override("plan", "checks: {C7: {retry_waits_s: []}}\n"),
         ("checks.C7.retry_waits_s", "at least 1 item")),
    Case("infinite lock-out", "plan", override("plan", "checks: {C15: {lockout_s: .inf}}\n"),
         ("checks.C15.lockout_s", "finite")),
    Case("clock time 25:61", "plan", override("plan", "checks: {C4: {t1: '25:61'}}\n"), ("checks.C4.t1", "HH:MM")),
    Case("unknown level", "plan", override("plan", "behaviour_level: CE7\n"), ("behaviour_level",)),
    Case("unknown check", "plan", override("plan", "checks: {C99: {}}\n"), ("checks.C99", "unknown key")),
    Case("negative fraction", "plan", override("plan", "checks: {C7: {tolerance_fraction: -0.5}}\n"),
         ("checks.C7.tolerance_fraction", "greater than or equal to 0")),
]

CASES = FILE_CASES + DEVICE_CASES + BENCH_CASES + PLAN_CASES


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.kind}: {case.name}")
def test_a_bad_profile_is_refused_naming_file_field_and_reason(case: Case, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    with pytest.raises(ProfileError) as refused:
        LOADERS[case.kind](path)
    message = str(refused.value)
    assert str(tmp_path) in message  # the case's file (or the one of its `extends` chain at fault)
    for part in case.expected:
        assert part in message, f"{part!r} not in: {message}"
    for secret in case.hidden:
        assert secret not in message


@pytest.mark.parametrize("kind", sorted(SHIPPED))
def test_the_variants_start_from_profiles_that_load(kind: str, tmp_path: Path) -> None:
    """The cases above are refused for their change alone: the unchanged derivation loads."""
    LOADERS[kind](override(kind, "")(tmp_path))


def test_a_remote_bind_asked_for_loads_and_is_announced(tmp_path: Path) -> None:
    bench = LOADERS["bench"](override("bench", "twin: {host: 0.0.0.0, allow_remote: true}\n")(tmp_path))
    assert bench.twin.host == "0.0.0.0"
    assert "0.0.0.0" in exposure_warning(bench.twin.host)
    assert exposure_warning("127.0.0.1") is None and exposure_warning("::1") is None


def test_a_secret_from_the_environment_is_loaded_and_masked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RIG_TEST_PASSWORD", "s3cret-from-env")
    device = LOADERS["device"](override("device", "maintenance: {password: {env: RIG_TEST_PASSWORD}}\n")(tmp_path))
    assert device.maintenance.password.get_secret_value() == "s3cret-from-env"
    assert "s3cret-from-env" not in repr(device) + device.model_dump_json()


def test_a_report_rebuild_loads_a_profile_whose_secret_variable_is_unset(tmp_path: Path) -> None:
    path = override("device", f"maintenance: {{password: {{env: {UNSET_VARIABLE}}}}}\n")(tmp_path)
    device = load_model(path, DeviceProfile, secrets_optional=True)
    assert UNSET_VARIABLE in device.maintenance.password.get_secret_value()


# ---- the command line: a sample, each command once, run side by side -----------------------------------------

PLUGIN = ["-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", "--collect-only", "-q"]
CLI_CASES = {  # label: (arguments before the file, case name, exit code, what stderr says)
    "certify, bench not UTF-8": (["-m", "rig", "certify", "--bench"], "latin-1 text", 2, ("not UTF-8",)),
    "certify, device on Mars": (["-m", "rig", "certify", "--device"], "timezone on Mars", 2, ("sim.meter.timezone",)),
    "certify, 50 MB plan": (["-m", "rig", "certify", "--plan"], "50 MB plan", 2, ("limit",)),
    "certify --list, nested plan": (["-m", "rig", "certify", "--list", "--plan"], "nested 5000 lists", 2,
                                    ("nested",)),
    "sim, billion laughs": (["-m", "rig", "sim", "--bench"], "billion laughs", 2, ("aliases expanded",)),
    "sim, wildcard host": (["-m", "rig", "sim", "--bench"], "wildcard host", 2, ("twin.host", "allow_remote")),
    "pytest plugin, negative wait": ([*PLUGIN, "--device"], "negative retry wait", pytest.ExitCode.USAGE_ERROR,
                                     ("sim.meter.retry_waits_s[1]",)),
    "certify --list, remote bind asked for": (["-m", "rig", "certify", "--list", "--bench"], "remote bind asked for",
                                              0, ("warning: the twin's servers listen on 0.0.0.0",)),
}
COMMAND_CASES = [*CASES, Case("remote bind asked for", "bench",
                              override("bench", "twin: {host: 0.0.0.0, allow_remote: true}\n"), ())]


def test_the_commands_refuse_bad_profiles_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    running = {}
    for label, (arguments, case_name, _, _) in CLI_CASES.items():
        folder = tmp_path / label.replace(" ", "-").replace(",", "")
        folder.mkdir()
        path = next(case for case in COMMAND_CASES if case.name == case_name).write(folder)
        running[label] = (folder, subprocess.Popen(
            [sys.executable, *arguments, str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        ))
    for label, (folder, process) in running.items():
        out, err = process.communicate(timeout=60)
        _, _, code, said = CLI_CASES[label]
        assert process.returncode == code, f"{label}: {out}{err}"
        assert "Traceback" not in out + err, f"{label}: {err}"
        assert code == 0 or str(folder) in err, f"{label}: {err}"
        for part in said:
            assert part in err, f"{label}: {part!r} not in {err}"
