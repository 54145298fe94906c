"""The near-end maintenance port (C15, with the C13 log download and the C14 near-end upgrade).

Through the real pty of the twin's reference meter, with the rig's `reference` maintenance plugin: the
login rules, reads and sets, module commands, logs and images of docs/maintenance-protocol.md, and the
two C15 defects. A platform is on the bench so the meter's daily report succeeds and never keeps the
MCU busy in its retry waits (module commands wait for the MCU between its jobs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.bench import Bench
from rig.clock import Clock
from rig.codec import load_codec
from rig.maintenance import MaintenanceRefused, MaintenanceTimeout, load_maintenance
from rig.maintenance.reference import ReferenceMaintenance
from rig.platform import Platform
from rig.ports import SerialLinePort
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
REFERENCE_METER = ROOT / "profiles" / "devices" / "reference-meter.yaml"
PROFILE = load_model(REFERENCE_METER, DeviceProfile)
PASSWORD = PROFILE.maintenance.password.get_secret_value()
IMAGE_KEY = PROFILE.sim.meter.image_key.get_secret_value().encode()
STARTUP_S = 5 * 3600.0  # meter 12345 staggers its first attach by 4 h 51 min after power-on
FLOW_L_PER_H = PROFILE.sim.meter.flow_l_per_h


@dataclass
class MeterOnBench:
    bench: Bench
    clock: Clock
    port: SerialLinePort
    platform: Platform | None
    powered_at_s: float

    def session(self) -> ReferenceMaintenance:
        return load_maintenance(PROFILE.maintenance.protocol)(self.port, self.clock)


@contextmanager
def meter_on_bench(device_path: Path, with_platform: bool = False, startup_s: float = 0.0) -> Iterator[MeterOnBench]:
    """A powered meter on its own twin, its maintenance port open (before the first RUN)."""
    with Bench(load_model(SIM_BENCH, BenchProfile), SIM_BENCH, device_path=device_path) as bench:
        platform = None
        if with_platform:
            platform = Platform(load_codec("reference"), bench.clock)
            bench.twin_link.query(f"SIM:PLATFORM {platform.address[0]}:{platform.address[1]}")
        port = SerialLinePort("maintenance", bench.endpoints["serial"]["maintenance"], bench.clock)
        try:
            bench.supply.set_output(True)
            powered_at = bench.clock.now()
            bench.clock.sleep(startup_s)
            yield MeterOnBench(bench, bench.clock, port, platform, powered_at)
        finally:
            port.close()
            if platform is not None:
                platform.close()


@pytest.fixture(scope="module")
def meter() -> Iterator[MeterOnBench]:
    """The reference meter, attached and idle (5 h after power-on), shared by the module's tests."""
    with meter_on_bench(REFERENCE_METER, with_platform=True, startup_s=STARTUP_S) as on_bench:
        yield on_bench


@pytest.fixture
def maint(meter: MeterOnBench) -> Iterator[ReferenceMaintenance]:
    """A fresh, logged-in session; logged out afterwards, and its transcript never shows the password."""
    session = meter.session()
    session.login(PASSWORD)
    yield session
    session.logout()
    assert PASSWORD not in session.transcript_text()


def sign(image: bytes, key: bytes = IMAGE_KEY) -> bytes:
    return hmac.new(key, image, hashlib.sha256).digest()


def defect_profile(tmp_path: Path, name: str, meter_switches: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"extends: {REFERENCE_METER}\nname: {name}\nsim:\n  meter: {meter_switches}\n", encoding="utf-8")
    return path


# ---- the session rules (C15) -------------------------------------------------------------------
def test_the_reference_plugin_is_found_by_its_entry_point() -> None:
    assert load_maintenance("reference") is ReferenceMaintenance


def test_every_command_before_login_is_refused_and_changes_nothing(meter: MeterOnBench) -> None:
    session = meter.session()
    attempts = [
        session.meter_number, lambda: session.set_meter_number(1), session.reading, session.report_period_s,
        session.config, lambda: session.set_config("pressure_high_kpa", 700), session.clock,
        lambda: session.set_clock(0), session.report_now, session.logs, session.clear_logs,
        lambda: session.module("AT+CGMR"), session.storage_on, session.versions,
        lambda: session.upgrade("mcu", "EVIL-1.0", b"\x00" * 16, sign(b"\x00" * 16)),
    ]
    for attempt in attempts:
        with pytest.raises(MaintenanceRefused) as refused:
            attempt()
        assert refused.value.code == 401
    session.login(PASSWORD)
    assert session.meter_number() == PROFILE.sim.meter.meter_number
    assert session.config("pressure_high_kpa") == {"pressure_high_kpa": 600}
    assert session.versions().mcu != "EVIL-1.0"
    assert any(e.module == "maintenance" and e.event == "refused" for e in session.logs())
    session.logout()
    with pytest.raises(MaintenanceRefused, match="401"):
        session.meter_number()


def test_wrong_password_is_refused_and_logged_without_the_password(meter: MeterOnBench) -> None:
    session = meter.session()
    wrong = "guess-" + PASSWORD[::-1]
    with pytest.raises(MaintenanceRefused) as refused:
        session.login(wrong)
    assert refused.value.code == 403
    assert wrong not in str(refused.value)
    session.login(PASSWORD)
    entries = session.logs()
    assert [e.event for e in entries if e.module == "maintenance"][-3:] == ["login_refused", "login", "command"]
    assert "wrong password" in next(e.detail for e in reversed(entries) if e.event == "login_refused")
    for entry in entries:
        assert PASSWORD not in entry.detail and wrong not in entry.detail
    transcript = session.transcript_text()
    assert PASSWORD not in transcript and wrong not in transcript and "LOGIN ****" in transcript
    session.logout()


def test_five_wrong_passwords_lock_the_port_for_ten_minutes_of_virtual_time(meter: MeterOnBench) -> None:
    session = meter.session()
    for _ in range(5):
        with pytest.raises(MaintenanceRefused) as refused:
            session.login("not-" + PASSWORD)
        assert refused.value.code == 403
    locked_at = meter.clock.now()
    with pytest.raises(MaintenanceRefused) as refused:
        session.login(PASSWORD)  # the right password does not help while locked out
    assert refused.value.code == 423
    meter.clock.sleep(locked_at + 590 - meter.clock.now())
    with pytest.raises(MaintenanceRefused, match="423"):
        session.login(PASSWORD)
    meter.clock.sleep(15)
    session.login(PASSWORD)
    maintenance_events = [e.event for e in session.logs() if e.module == "maintenance"]
    assert "lockout" in maintenance_events
    assert maintenance_events.count("login_refused") >= 7
    session.logout()
    assert PASSWORD not in session.transcript_text()


# ---- reads and sets ----------------------------------------------------------------------------
def test_meter_number_base_reading_period_and_config_read_back(meter: MeterOnBench,
                                                               maint: ReferenceMaintenance) -> None:
    assert maint.meter_number() == 12345
    reading = maint.reading()
    expected_l = FLOW_L_PER_H * (meter.clock.now() - meter.powered_at_s) / 3600.0
    assert reading.cumulative_l == pytest.approx(expected_l, abs=0.01)
    assert reading.reverse_l == 0
    assert maint.report_period_s() == 86400
    config = maint.config()
    assert config["schedule"] == "household" and config["report_t1"] == "01:00"
    assert config["report_t3_s"] == 120 and config["freeze_interval_s"] == 1800
    assert config["report_period_s"] == 86400
    assert maint.config("low_battery_threshold_mv") == {"low_battery_threshold_mv": 3300}


def test_config_set_then_read_back_and_bad_writes_are_refused(maint: ReferenceMaintenance) -> None:
    maint.set_config("pressure_high_kpa", 700)
    assert maint.config("pressure_high_kpa") == {"pressure_high_kpa": 700}
    maint.set_config("pressure_high_kpa", 600)
    for key, value, code in [("no_such_key", 1, 404), ("schedule", "hourly", 409), ("report_t1", "25:00", 409),
                             ("pressure_high_kpa", "high", 409), ("report_period_s", 3600, 409)]:
        with pytest.raises(MaintenanceRefused) as refused:
            maint.set_config(key, value)
        assert refused.value.code == code, key
    with pytest.raises(MaintenanceRefused, match="404"):
        maint.config("no_such_key")
    assert maint.config("pressure_high_kpa") == {"pressure_high_kpa": 600}


def test_test_meter_numbers_are_set_and_read_back(maint: ReferenceMaintenance) -> None:
    for number in (0, 1, 199, 200, 12345):
        maint.set_meter_number(number)
        assert maint.meter_number() == number


def test_clock_set_then_read_within_a_second(meter: MeterOnBench, maint: ReferenceMaintenance) -> None:
    skewed = meter.clock.now() + 300.0
    maint.set_clock(skewed)
    set_at = meter.clock.now()
    meter.clock.sleep(60)
    assert maint.clock() == pytest.approx(skewed + (meter.clock.now() - set_at), abs=1.0)
    maint.set_clock(meter.clock.now())
    assert maint.clock() == pytest.approx(meter.clock.now(), abs=1.0)


def test_report_now_is_accepted_at_once_and_the_report_reaches_the_platform(meter: MeterOnBench,
                                                                            maint: ReferenceMaintenance) -> None:
    since = len(meter.platform.uplinks)
    asked_at = meter.clock.now()
    maint.report_now()
    assert meter.clock.now() - asked_at < 1.0
    uplink = meter.platform.wait_for_uplink(
        lambda u: u.message is not None and u.message.get("type") == "basic_report", timeout_s=600, since=since
    )
    assert uplink is not None and uplink.message["meter_number"] == 12345


# ---- module commands ---------------------------------------------------------------------------
def test_module_firmware_is_read_through_the_mcu(maint: ReferenceMaintenance) -> None:
    lines = maint.module("AT+CGMR")
    assert f"SSB,{PROFILE.sim.module.firmware_version}" in lines
    assert lines[-1] == "OK"


def test_module_parameters_are_queried_and_set_through_the_mcu(maint: ReferenceMaintenance) -> None:
    lines = maint.module("AT+NCONFIG?")
    assert "+NCONFIG:CELL_RESELECTION,TRUE" in lines and lines[-1] == "OK"
    assert maint.module("AT+NCONFIG=CELL_RESELECTION,FALSE") == ["OK"]
    assert "+NCONFIG:CELL_RESELECTION,FALSE" in maint.module("AT+NCONFIG?")
    assert maint.module("AT+NCONFIG=CELL_RESELECTION,TRUE") == ["OK"]
    assert maint.module("AT+NCONFIG=NO_SUCH_KEY,TRUE")[-1].startswith("+CME ERROR")
    with pytest.raises(MaintenanceRefused, match="400"):
        maint.module("NOT-AN-AT-COMMAND")


# ---- logs (C13) --------------------------------------------------------------------------------
def test_log_download_returns_entries_per_module(meter: MeterOnBench, maint: ReferenceMaintenance) -> None:
    entries = maint.logs()
    modules = {entry.module for entry in entries}
    assert {"meter", "module", "maintenance"} <= modules
    assert ("meter", "power_on") in {(e.module, e.event) for e in entries}
    assert ("module", "attached") in {(e.module, e.event) for e in entries}
    recent = maint.logs(days=0.01)
    assert recent and len(recent) < len(entries)
    assert all(entry.time_s >= meter.clock.now() - 0.01 * 86400 - 2 for entry in recent)


def test_log_clear_leaves_a_trace(maint: ReferenceMaintenance) -> None:
    maint.clear_logs()
    entries = maint.logs()
    assert [(e.module, e.event) for e in entries][:2] == [("maintenance", "log_cleared"), ("maintenance", "command")]


# ---- near-end upgrade (C14) --------------------------------------------------------------------
def test_near_end_mcu_image_signed_is_applied_and_bad_ones_are_refused(maint: ReferenceMaintenance) -> None:
    image = bytes(range(256)) * 8
    maint.upgrade("mcu", "RWM1-2.4.0", image, sign(image))
    assert maint.versions().mcu == "RWM1-2.4.0"
    bad = [
        ("unsigned", image, None),
        ("wrong key", image, sign(image, b"not-the-key")),
        ("truncated", image[:-16], sign(image)),
    ]
    for label, body, signature in bad:
        with pytest.raises(MaintenanceRefused) as refused:
            maint.upgrade("mcu", "RWM1-6.6.6", body, signature)
        assert refused.value.code == 409, label
        assert maint.versions().mcu == "RWM1-2.4.0", label
    events = [(e.event, e.detail) for e in maint.logs() if e.module == "meter"]
    assert ("image_applied", "mcu RWM1-2.4.0") in events
    assert events.count(("image_refused", "mcu RWM1-6.6.6")) == 3
    assert all(len(line.text) < 1200 for line in maint.transcript)  # the image is not copied into the transcript


def test_near_end_module_image_is_applied_and_the_module_reports_it(meter: MeterOnBench,
                                                                   maint: ReferenceMaintenance) -> None:
    image = b"\x5a" * 512
    maint.upgrade("module", "V150R100C10B300SP1", image, sign(image))
    assert maint.versions().module == "V150R100C10B300SP1"
    meter.clock.sleep(5)  # the module reboots after its image
    assert "SSB,V150R100C10B300SP1" in maint.module("AT+CGMR")


# ---- power and defects -------------------------------------------------------------------------
def test_an_unpowered_meter_answers_nothing_and_a_power_cut_ends_the_session() -> None:
    with meter_on_bench(REFERENCE_METER) as on_bench:
        session = ReferenceMaintenance(on_bench.port, on_bench.clock, timeout_s=5)
        session.login(PASSWORD)
        assert session.meter_number() == 12345
        on_bench.bench.supply.set_output(False)
        with pytest.raises(MaintenanceTimeout, match="GET NUMBER"):
            session.meter_number()
        on_bench.bench.supply.set_output(True)
        with pytest.raises(MaintenanceRefused, match="401"):
            session.meter_number()


def test_storage_mode_goes_on_over_maintenance_and_is_logged() -> None:
    with meter_on_bench(REFERENCE_METER, with_platform=True, startup_s=STARTUP_S) as on_bench:
        session = on_bench.session()
        session.login(PASSWORD)
        session.storage_on()
        on_bench.clock.sleep(10)
        events = [(e.module, e.event) for e in session.logs()]
        assert ("meter", "storage_on") in events
        assert ("module", "power_off") in events[events.index(("meter", "storage_on")):]


def test_a_module_command_the_mcu_cannot_start_within_a_minute_is_dropped_as_busy() -> None:
    with meter_on_bench(REFERENCE_METER) as on_bench:  # just powered: staggering its first attach for hours
        session = on_bench.session()
        session.login(PASSWORD)
        asked_at = on_bench.clock.now()
        with pytest.raises(MaintenanceRefused, match="503"):
            session.module("AT+CGMR")
        assert on_bench.clock.now() - asked_at == pytest.approx(60, abs=1)
        assert session.meter_number() == 12345  # the port goes on answering


def test_defect_no_storage_mode_refuses_storage_on(tmp_path: Path) -> None:
    with meter_on_bench(defect_profile(tmp_path, "c21-no-storage", "{storage_mode: false}")) as on_bench:
        session = on_bench.session()
        session.login(PASSWORD)
        with pytest.raises(MaintenanceRefused, match="409"):
            session.storage_on()


def test_defect_no_password_lets_every_command_through(tmp_path: Path) -> None:
    with meter_on_bench(defect_profile(tmp_path, "c15-no-password", "{password_required: false}")) as on_bench:
        session = on_bench.session()
        assert session.meter_number() == 12345
        session.set_config("pressure_high_kpa", 650)
        assert session.config("pressure_high_kpa") == {"pressure_high_kpa": 650}
        session.login("anything at all")  # accepted: the meter checks nothing


def test_defect_no_lockout_never_locks_the_port(tmp_path: Path) -> None:
    with meter_on_bench(defect_profile(tmp_path, "c15-no-lockout", "{lockout_after_failures: null}")) as on_bench:
        session = on_bench.session()
        for _ in range(12):
            with pytest.raises(MaintenanceRefused) as refused:
                session.login("wrong")
            assert refused.value.code == 403
        session.login(PASSWORD)
        assert "lockout" not in {e.event for e in session.logs()}
