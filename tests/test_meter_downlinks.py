"""The meter's downlinks and alarms through the bench's real ports (C2, C6, C13, C14, C17, C18, C19, C20).

Each test runs the reference meter and the defects that break its check on the twin, using only what a
real bench has: the platform (tickets, uplinks), the AT monitor, the supply (voltage, data logger),
the attenuator, the stimulus port and the callbox's network log. The reference passes, and each defect
fails the observation it changes. Times are the platform's (bench) times. Local time is Asia/Shanghai
and the virtual start is 2026-01-05 00:00. The reference meter (number 12345) reports daily at
T1 01:00 + 145 x 120 s + 45 s = 05:50:45.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from rig.analysis.downlinks import (
    longest_pulse_s,
    point_read_judged,
    report_skews_s,
    required_valve_outcome,
    status_of,
    sync_residual_s,
)
from rig.bench import Bench
from rig.meter_session import MeterSession
from rig.monitor import AtMonitor
from rig.platform import Platform
from rig.platform.server import Ticket, Uplink
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
REFERENCE = ROOT / "profiles" / "devices" / "reference-meter.yaml"
DEFECTS = ROOT / "profiles" / "devices" / "defects"
LOCAL = ZoneInfo("Asia/Shanghai")
DAY = 86400.0
FLOW_L_PER_H = 6.0  # the reference meter's steady flow
ANSWER_WINDOW_S = 24 * 3600.0  # C18/C19 seed: answered within 24 h
MOTOR_ABOVE_A = 0.13  # C20: the valve motor's ~150 mA on top of the module (connected ~53 mA; TX bursts are short)
ALARM_LATENCY_S = 300.0  # C17: magnetic and separation alarms up within 5 min
SKEW_LIMIT_S = 5.0  # C6
WAKE_ALLOWANCE_S = 30.0  # C4: the report lands in [T, T + 60 s + wake allowance]
DRIFT_ALLOWANCE_S = 5.0  # a day of 20 ppm crystal error, ahead of the slot


def defect(name: str) -> Path:
    return DEFECTS / f"{name}.yaml"


def derived(tmp_path: Path, name: str, base: Path, body: str) -> Path:
    """A profile file that extends `base` (absolute path) with `body`, written in tmp_path."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"extends: {base}\nname: {name}\n{body}", encoding="utf-8")
    return path


def local(time_s: float) -> datetime:
    return datetime.fromtimestamp(time_s, LOCAL)


@dataclass
class Meter:
    """One meter on one bench: what the checks here touch and observe."""

    bench: Bench
    session: MeterSession
    profile: DeviceProfile
    start_s: float

    @property
    def platform(self) -> Platform:
        return self.session.platform

    @property
    def monitor(self) -> AtMonitor:
        assert self.session.monitor is not None
        return self.session.monitor

    @property
    def now(self) -> float:
        return self.bench.clock.now()

    def sleep_until(self, time_s: float) -> None:
        self.bench.clock.sleep(max(time_s - self.now, 0.0))

    def at_local(self, day: int, hour: int, minute: int = 0) -> float:
        """POSIX time of `hour:minute` local on day `day` of the run (day 1 is the start day)."""
        start = local(self.start_s).replace(hour=0, minute=0, second=0, microsecond=0)
        return (start + timedelta(days=day - 1, hours=hour, minutes=minute)).timestamp()

    def queue(self, message: dict) -> Ticket:
        return self.platform.queue_downlink(self.profile.identity.imei, message)

    def uplinks(self, kind: str, since_s: float = 0.0) -> list[Uplink]:
        return [u for u in self.platform.uplinks
                if u.message is not None and u.message["type"] == kind and u.time_s >= since_s]

    def reports(self, since_s: float = 0.0) -> list[Uplink]:
        return self.uplinks("basic_report", since_s)

    def next_report(self, timeout_s: float = 2 * DAY) -> Uplink:
        since = len(self.platform.uplinks)
        uplink = self.platform.wait_for_uplink(
            lambda u: u.message is not None and u.message["type"] == "basic_report", timeout_s, since=since)
        assert uplink is not None, f"no report within {timeout_s:.0f} s"
        return uplink

    def idle_after_next_report(self) -> Uplink:
        """The next report, then its RRC release: the module is in RRC idle for T3324 from now."""
        report = self.next_report()
        released = self.monitor.wait_for(r"^\+CSCON:0", 120.0, sender="module")
        assert released is not None, "the report's connection was never released"
        return report

    def wait_answered(self, ticket: Ticket, timeout_s: float = 2 * DAY) -> None:
        self.bench.clock.wait_until(lambda: ticket.answered_at is not None, timeout_s)

    def net_log(self, since: int = 0) -> list[dict]:
        assert self.bench.twin_link is not None
        return json.loads(self.bench.twin_link.query(f"SIM:NET:LOG? {since}"))

    def set_attenuation(self, **channels: float) -> None:
        for name, db in channels.items():
            self.bench.attenuator.set_attenuation(int(name.removeprefix("ch")), db)


@contextmanager
def powered_meter(device: Path, ch1: float = 5.0, ch2: float = 95.0, ch4: float = 95.0) -> Iterator[Meter]:
    """The meter on the sim bench, CE0 on cell 1 (-95 dBm), powered on at the virtual start."""
    profile = load_model(device, DeviceProfile)
    with Bench(load_model(BENCH, BenchProfile), BENCH, device_path=device) as bench, \
            MeterSession(bench, profile) as session:
        bench.attenuator.set_all(95)
        meter = Meter(bench, session, profile, bench.clock.now())
        meter.set_attenuation(ch1=ch1, ch2=ch2, ch4=ch4)
        session.power_on()
        yield meter


# ---- C18 point read ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device, passes", [(REFERENCE, True), (defect("c18-ignores-point-reads"), False)],
                         ids=["reference", "c18-ignores-point-reads"])
def test_c18_point_read_queued_while_asleep_is_answered_at_the_next_wake(device: Path, passes: bool) -> None:
    with powered_meter(device) as meter:
        meter.sleep_until(meter.at_local(2, 0))  # asleep: the day's report is at 05:50:45
        ticket = meter.queue({"type": "point_read"})
        assert ticket.sent_at is None
        report = meter.next_report()
        meter.wait_answered(ticket, DAY)
        assert point_read_judged(ticket, ANSWER_WINDOW_S) is passes, ticket.answer
        if not passes:
            return
        assert ticket.sent_at is not None and ticket.sent_at >= report.time_s  # went out after the wake's uplink
        assert ticket.answered_at - report.time_s < 60.0
        value = ticket.answer["value"]
        expected_l = FLOW_L_PER_H * (ticket.answered_at - meter.start_s) / 3600.0
        assert abs(value["cumulative_l"] - expected_l) <= 2.0, (value, expected_l)
        assert value["reverse_l"] == 0 and value["instantaneous_l_per_h"] == FLOW_L_PER_H


# ---- C19 configuration (and C4's T1/T3 from the platform) --------------------------------------------


def report_slot(meter: Meter, day: int, t1: str, t3_s: float) -> float:
    """C4: T = T1 + (n mod 200) T3 + n mod 60, local time on `day`."""
    number = meter.profile.sim.meter.meter_number
    hour, minute = (int(part) for part in t1.split(":"))
    return meter.at_local(day, hour, minute) + (number % 200) * t3_s + number % 60


def on_slot(report: Uplink, slot_s: float) -> bool:
    return slot_s - DRIFT_ALLOWANCE_S <= report.time_s <= slot_s + 60.0 + WAKE_ALLOWANCE_S


@pytest.mark.parametrize(
    "device, applied, t1, t3_s",
    [(REFERENCE, True, "02:00", 60.0), (defect("c19-config-not-applied"), False, "01:00", 120.0),
     (defect("c4-ignores-t3"), True, "02:00", 120.0)],
    ids=["reference", "c19-config-not-applied", "c4-ignores-t3"],
)
def test_c19_configuration_written_is_applied_and_queried(device: Path, applied: bool, t1: str, t3_s: float) -> None:
    """Writes on day 2 before the wake: freeze interval at once, T1/T3 from day 3; then leak mode."""
    with powered_meter(device) as meter:
        meter.sleep_until(meter.at_local(2, 0))
        writes = [meter.queue({"type": "config_write", "key": key, "value": value})
                  for key, value in (("freeze_interval_s", 900), ("report_t1", "02:00"), ("report_t3_s", 60))]
        query = meter.queue({"type": "config_query", "key": "freeze_interval_s"})
        day2 = meter.next_report()
        meter.wait_answered(query, DAY)
        for ticket in [*writes, query]:
            assert ticket.answered_at is not None and ticket.answered_at - ticket.queued_at <= ANSWER_WINDOW_S
            assert ticket.answer["status"] == "ok"
        assert on_slot(day2, report_slot(meter, 2, "01:00", 120.0))  # T1/T3 wait for the next day
        assert day2.message["freeze_interval_s"] == 1800  # built before the write arrived
        assert query.answer["value"] == {"freeze_interval_s": 900 if applied else 1800}

        day3 = meter.next_report()
        assert day3.message["freeze_interval_s"] == (900 if applied else 1800)
        assert on_slot(day3, report_slot(meter, 3, t1, t3_s)), local(day3.time_s)
        day4 = meter.next_report()
        assert on_slot(day4, report_slot(meter, 4, t1, t3_s)), local(day4.time_s)
        assert [local(r.time_s).date() for r in meter.reports()] == [
            local(meter.at_local(day, 12)).date() for day in (1, 2, 3, 4)]  # one report a day, none doubled

        # the schedule from the platform: leak mode reports hourly with 5-minute freezes
        meter.bench.clock.sleep(3600.0)  # asleep again
        leak = meter.queue({"type": "config_write", "key": "schedule", "value": "leak"})
        meter.wait_answered(leak, 2 * DAY)
        assert leak.answer["status"] == "ok"
        meter.sleep_until(meter.now + 3.5 * 3600.0)
        later = meter.reports(since_s=leak.answered_at)
        if applied:
            assert len(later) >= 3
            assert all(r.message["report_period_s"] == 3600 and r.message["freeze_interval_s"] == 300
                       for r in later)
            gaps = np.diff([r.time_s for r in later])
            assert np.all(np.abs(gaps - 3600.0) < 60.0), gaps
        else:
            assert later == []  # still daily


# ---- C20 valve ----------------------------------------------------------------------------------------


def valve_action(meter: Meter, action: str) -> tuple[Ticket, float, Uplink]:
    """Queue the action while asleep, log the supply around the next wake; the ticket, motor pulse, next report."""
    last = meter.reports()[-1]
    meter.sleep_until(last.time_s + DAY - 3 * 3600.0)
    ticket = meter.queue({"type": "valve", "action": action})
    meter.sleep_until(last.time_s + DAY - 60.0)
    period_s = 0.1
    mean = np.concatenate([chunk.mean_a for chunk in meter.bench.supply.data_log(period_s, 150.0)])
    meter.wait_answered(ticket, DAY)
    return ticket, longest_pulse_s(mean, period_s, MOTOR_ABOVE_A), meter.next_report()


@pytest.mark.parametrize(
    "variant, closes",
    [("reference", True), ("close-forbidden", False), ("c20-closes-when-forbidden", True)],
)
def test_c20_valve_open_close_where_allowed(tmp_path: Path, variant: str, closes: bool) -> None:
    device = {
        "reference": REFERENCE,
        "close-forbidden": derived(tmp_path, "close-forbidden", REFERENCE, "valve: {close_allowed: false}\n"),
        "c20-closes-when-forbidden": defect("c20-closes-when-forbidden"),
    }[variant]
    with powered_meter(device) as meter:
        first = meter.next_report()
        assert first.message["valve"] == "open"
        close, pulse_s, after_close = valve_action(meter, "close")
        assert close.answer is not None and close.answer["status"] == ("ok" if closes else "refused")
        assert after_close.message["valve"] == ("closed" if closes else "open")
        if closes:
            assert 2.5 <= pulse_s <= 3.6, pulse_s  # ~150 mA motor for ~3 s on top of the module
        else:
            assert pulse_s < 1.0, pulse_s
        opened, pulse_s, after_open = valve_action(meter, "open")
        assert opened.answer["status"] == "ok"
        assert after_open.message["valve"] == "open"
        assert 2.5 <= pulse_s <= 3.6, pulse_s
    # C20's judgement: executed where the profile allows closing, refused where it does not
    judged = status_of(close) == required_valve_outcome("close", meter.profile.valve.close_allowed)[0]
    assert judged is (variant != "c20-closes-when-forbidden")


# ---- C6 time sync -------------------------------------------------------------------------------------


def report_skews(meter: Meter) -> list[float]:
    """Each report's own clock (time_s) minus the platform's reception time."""
    return report_skews_s(meter.reports())


def sync_residuals(meter: Meter) -> list[float]:
    """After each report's time sync: the meter's clock in its response, outside [sync sent, response received]."""
    syncs = [t for t in meter.platform.tickets if t.message["type"] == "time_sync" and t.answered_at is not None]
    residuals = []
    for sync in syncs:
        response = next(u for u in meter.uplinks("response") if u.time_s == sync.answered_at)
        residuals.append(sync_residual_s(sync.sent_at, response.time_s, response.message["time_s"]))
    return residuals


def test_c6_clock_follows_the_platform_after_every_report() -> None:
    with powered_meter(REFERENCE) as meter:
        meter.sleep_until(meter.at_local(4, 12))
    skews = report_skews(meter)
    assert len(skews) == 4
    assert all(abs(skew) <= SKEW_LIMIT_S for skew in skews[1:]), skews
    assert max(sync_residuals(meter)) == 0.0


@pytest.mark.parametrize("base, syncs", [(REFERENCE, True), (defect("c6-no-time-sync"), False)],
                         ids=["reference-2000ppm", "c6-no-time-sync-2000ppm"])
def test_c6_fast_crystal_makes_a_missing_sync_visible(tmp_path: Path, base: Path, syncs: bool) -> None:
    """Copies with a 2000 ppm crystal (173 s a day): synced daily the error never accumulates."""
    device = derived(tmp_path, f"{base.stem}-2000ppm", base, "sim:\n  meter:\n    clock_drift_ppm: 2000\n")
    with powered_meter(device) as meter:
        meter.sleep_until(meter.at_local(4, 12))
    skews = report_skews(meter)
    residuals = sync_residuals(meter)
    assert len(skews) == 4 and len(residuals) == 4
    day_drift_s = DAY * 2000e-6
    if syncs:
        assert max(residuals) == 0.0, residuals
        assert all(0.0 < skew <= day_drift_s + SKEW_LIMIT_S for skew in skews), skews  # one day's drift at most
    else:
        assert min(residuals[1:]) > SKEW_LIMIT_S, residuals
        assert np.all(np.diff(skews) > day_drift_s - SKEW_LIMIT_S), skews  # the error piles up day after day


# ---- C17 alarms -------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, once_a_day, low_battery_at_once", [
    (REFERENCE, True, False),
    (defect("c17-magnet-alarm-every-time"), False, False),
    (defect("c17-low-battery-at-once"), True, True),
], ids=["reference", "c17-magnet-alarm-every-time", "c17-low-battery-at-once"])
def test_c17_alarms_immediate_once_a_day_others_in_the_next_report(
        device: Path, once_a_day: bool, low_battery_at_once: bool) -> None:
    with powered_meter(device) as meter:
        meter.next_report()  # day 1
        day2_report = meter.next_report()
        first: dict[str, float] = {}
        for index, name in enumerate(["magnetic"] * 3 + ["separation"] * 3):
            meter.sleep_until(meter.at_local(2, 8, 30 * index))  # 08:00 .. 10:30
            first.setdefault(name, meter.now)
            meter.session.stimulate(name)
        for hour, rate in ((11, 3000.0), (12, -10.0), (13, FLOW_L_PER_H)):  # over-flow, reverse flow, back
            meter.sleep_until(meter.at_local(2, hour))
            meter.session.stimulate("flow", rate)
        meter.sleep_until(meter.at_local(2, 14))
        meter.bench.supply.set_voltage(3.2)  # below the 3.3 V low-battery threshold
        day3_report = meter.next_report()
        meter.bench.supply.set_voltage(3.6)
        for index, name in enumerate(("magnetic", "separation")):
            meter.sleep_until(meter.at_local(3, 8, 30 * index))
            first.setdefault(f"{name} day 3", meter.now)
            meter.session.stimulate(name)
        day4_report = meter.next_report()

    alarms = meter.uplinks("alarm")
    per_day = Counter((a.message["alarm"], local(a.time_s).day) for a in alarms)
    day2, day3 = local(meter.at_local(2, 0)).day, local(meter.at_local(3, 0)).day
    expected_per_day = 1 if once_a_day else 3
    assert per_day[("magnetic", day2)] == expected_per_day and per_day[("separation", day2)] == expected_per_day
    assert per_day[("magnetic", day3)] == 1 and per_day[("separation", day3)] == 1  # again the next day
    for name in ("magnetic", "separation"):
        raised = min(a.time_s for a in alarms if a.message["alarm"] == name)
        assert raised - first[name] <= ALARM_LATENCY_S
    immediate_others = [a for a in alarms if a.message["alarm"] not in ("magnetic", "separation")]
    if low_battery_at_once:
        assert {a.message["alarm"] for a in immediate_others} == {"low_battery"}  # C17 fails
    else:
        assert immediate_others == []
    assert day2_report.message["alarms"] == []
    assert {"over_flow", "reverse_flow", "low_battery"} <= set(day3_report.message["alarms"])
    assert abs(day3_report.message["battery_mv"] - 3200) <= 50
    assert not {"over_flow", "reverse_flow", "low_battery"} & set(day4_report.message["alarms"])


# ---- C13 logs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("device, oldest_days, uploads", [
    (REFERENCE, 30.0, True), (defect("c13-logs-7-days"), 7.0, True), (defect("c13-no-upload"), None, False),
], ids=["reference", "c13-logs-7-days", "c13-no-upload"])
def test_c13_logs_of_31_days_uploaded_to_the_platform(device: Path, oldest_days: float | None,
                                                       uploads: bool) -> None:
    with powered_meter(device) as meter:
        meter.sleep_until(meter.at_local(31, 12))
        ticket = meter.queue({"type": "log_upload", "days": 31})
        meter.wait_answered(ticket, DAY)
        assert ticket.answer is not None
        meter.bench.clock.sleep(600.0)
        chunks = meter.uplinks("log_chunk", since_s=ticket.queued_at)
    if not uploads:
        assert ticket.answer["status"] == "refused" and chunks == []
        return
    assert ticket.answer["status"] == "ok"
    total = chunks[0].message["total"]
    assert sorted(c.message["index"] for c in chunks) == list(range(total))
    assert all(c.size_bytes <= 512 for c in chunks)
    text = b"".join(c.message["entries"] for c in sorted(chunks, key=lambda c: c.message["index"])).decode()
    entries = [line.split("|", 3) for line in text.splitlines()]
    oldest = min(float(entry[0]) for entry in entries)
    age_days = (ticket.answered_at - oldest) / DAY
    modules = {entry[1] for entry in entries}
    assert {"comm", "meter", "module"} <= modules, modules
    if oldest_days >= 30.0:
        assert age_days >= 30.0, age_days
    else:
        assert oldest_days - 1.5 <= age_days <= oldest_days + 0.1, age_days  # C13 fails: about a week


# ---- C14 SOTA and FOTA --------------------------------------------------------------------------------


def image_chunks(target: str, version: str, image: bytes, signature: bytes | None) -> list[dict]:
    """The image as `image_chunk` downlinks of at most 200 data bytes, the last one signed."""
    chunks = []
    for offset in range(0, len(image), 200):
        chunk = {"type": "image_chunk", "target": target, "version": version, "offset": offset,
                 "total": len(image), "data": image[offset:offset + 200]}
        if offset + 200 >= len(image) and signature is not None:
            chunk["signature"] = signature
        chunks.append(chunk)
    return chunks


def sign(meter: Meter, image: bytes) -> bytes:
    key = meter.profile.sim.meter.image_key.get_secret_value().encode()
    return hmac.new(key, image, hashlib.sha256).digest()


@pytest.mark.parametrize("device, verifies", [(REFERENCE, True), (defect("c14-accepts-unsigned"), False)],
                         ids=["reference", "c14-accepts-unsigned"])
def test_c14_signed_images_applied_bad_ones_refused(device: Path, verifies: bool) -> None:
    mcu_image = bytes(range(256)) * 4 + b"RWM1 application"
    module_image = bytes(reversed(range(256))) * 3
    with powered_meter(device) as meter:
        day1 = meter.next_report()
        old_mcu, old_module = day1.message["mcu_firmware"], day1.message["module_firmware"]
        bad = {
            "unsigned": image_chunks("mcu", "RWM1-2.4.0", mcu_image, None),
            "wrongly signed": image_chunks("mcu", "RWM1-2.4.1", mcu_image, b"\x5a" * 32),
        }
        if verifies:
            bad["unsigned module"] = image_chunks("module", "V150R100C10B300SP9", module_image, None)
        meter.bench.clock.sleep(3600.0)  # queued while the meter sleeps
        tickets = {label: [meter.queue(chunk) for chunk in chunks] for label, chunks in bad.items()}
        day2 = meter.next_report()
        meter.wait_answered(tickets["wrongly signed"][-1], DAY)
        day3 = meter.next_report()
        answers = {label: ts[-1].answer["status"] for label, ts in tickets.items()}
        if not verifies:  # C14 fails: the unsigned (and the wrongly signed) image went in
            assert answers == {"unsigned": "ok", "wrongly signed": "ok"}
            assert day3.message["mcu_firmware"] == "RWM1-2.4.1"
            return
        assert answers == {label: "refused" for label in bad}
        assert all(t.answer["status"] == "ok" for ts in tickets.values() for t in ts[:-1])  # chunks taken
        assert (day3.message["mcu_firmware"], day3.message["module_firmware"]) == (old_mcu, old_module)
        assert abs(day3.time_s - day2.time_s - DAY) <= DRIFT_ALLOWANCE_S + WAKE_ALLOWANCE_S  # still on time

        meter.bench.clock.sleep(3600.0)
        signed = [meter.queue(chunk) for chunk in image_chunks("mcu", "RWM1-2.5.0", mcu_image, sign(meter, mcu_image))]
        mark = meter.monitor.mark()
        fota = [meter.queue(chunk) for chunk in
                image_chunks("module", "V150R100C10B300SP2", module_image, sign(meter, module_image))]
        meter.next_report()
        meter.wait_answered(fota[-1], DAY)
        assert signed[-1].answer["status"] == "ok" and fota[-1].answer["status"] == "ok"
        banner = meter.monitor.wait_for("REBOOT_CAUSE_SECURITY_FOTA_UPGRADE", 600.0, sender="module", mark=mark)
        assert banner is not None
        cgmr = meter.monitor.wait_for(r"^AT\+CGMR$", 600.0, sender="mcu", mark=banner.index)
        assert cgmr is not None
        version = meter.monitor.wait_for(r"^SSB,", 60.0, sender="module", mark=cgmr.index)
        assert version is not None and version.text == "SSB,V150R100C10B300SP2"
        day5 = meter.next_report()
        assert day5.message["mcu_firmware"] == "RWM1-2.5.0"
        assert day5.message["module_firmware"] == "V150R100C10B300SP2"


# ---- C2 reselection -----------------------------------------------------------------------------------


def reselections(meter: Meter, since: int) -> list[dict]:
    return [event for event in meter.net_log(since) if event["event"] == "reselection"]


def reselection_commands(meter: Meter, mark: int = 0) -> list[str]:
    return [line.text for line in meter.monitor.commands(mark)
            if line.text.startswith("AT+NCONFIG=CELL_RESELECTION") or line.text == "AT+NRB"]


@pytest.mark.parametrize("device, enabled", [(REFERENCE, True), (defect("c2-reselection-off-at-boot"), False)],
                         ids=["reference", "c2-reselection-off-at-boot"])
def test_c2a_intra_frequency_reselection_in_the_idle_window(device: Path, enabled: bool) -> None:
    """Cell 1 (PCI 226) at -95 dBm, cell 2 (PCI 227) at -105; swapped while the meter idles after a report."""
    with powered_meter(device, ch1=5.0, ch2=15.0) as meter:
        first = meter.idle_after_next_report()
        assert first.message["network"]["pci"] == 226
        boot = reselection_commands(meter)
        assert boot[:2] == (["AT+NCONFIG=CELL_RESELECTION,TRUE", "AT+NRB"] if enabled else [])
        since, swapped_at = len(meter.net_log()), meter.now
        meter.set_attenuation(ch1=15.0, ch2=5.0)
        meter.bench.clock.sleep(60.0)
        events = reselections(meter, since)
        after = meter.next_report()
    if enabled:
        assert [(e["pci"], e["earfcn"]) for e in events] == [(227, 2509)]
        assert events[0]["time_s"] - swapped_at <= meter.profile.sim.meter.requested_t3324_s
        assert after.message["network"]["pci"] == 227
    else:
        assert events == [] and after.message["network"]["pci"] == 226


@pytest.mark.parametrize("device, follows", [(REFERENCE, True), (defect("c2-earfcn-locked"), False)],
                         ids=["reference", "c2-earfcn-locked"])
def test_c2b_inter_frequency_when_the_serving_cell_fades(device: Path, follows: bool) -> None:
    """Cell 1 (EARFCN 2509) serves; cell 3 (EARFCN 2525) is weaker; then cell 1 fades out."""
    with powered_meter(device, ch1=5.0, ch4=15.0) as meter:
        first = meter.idle_after_next_report()
        assert first.message["network"]["earfcn"] == 2509
        meter.set_attenuation(ch1=95.0, ch4=5.0)
        meter.sleep_until(meter.at_local(3, 12))  # the reports of days 2 and 3
        later = meter.reports(since_s=first.time_s + 1.0)
        locks = [line.text for line in meter.monitor.commands() if line.text.startswith("AT+NEARFCN")]
    through_2525 = [r for r in later if r.message.get("network", {}).get("earfcn") == 2525]
    if follows:
        assert len(through_2525) >= 2 and through_2525 == later
        assert locks == []
    else:
        assert through_2525 == []
        assert locks and set(locks) == {"AT+NEARFCN=0,2509"}


@pytest.mark.parametrize("device, obeys", [(REFERENCE, True), (defect("c2-ignores-platform-switch"), False)],
                         ids=["reference", "c2-ignores-platform-switch"])
def test_c2c_platform_switches_reselection_off_and_on(device: Path, obeys: bool) -> None:
    with powered_meter(device, ch1=5.0, ch2=15.0) as meter:
        meter.next_report()
        assert reselection_commands(meter) == ["AT+NCONFIG=CELL_RESELECTION,TRUE", "AT+NRB"]  # default on
        outcomes = []
        for enabled in (False, True):
            meter.bench.clock.sleep(3600.0)  # queued while the meter sleeps
            mark = meter.monitor.mark()
            ticket = meter.queue({"type": "reselection", "enabled": enabled})
            meter.next_report()
            meter.wait_answered(ticket, DAY)
            meter.bench.clock.sleep(120.0)
            assert ticket.answer["status"] == "ok"
            switched = reselection_commands(meter, mark)
            # the switch's behaviour: swap the cells while the meter idles after its next report
            meter.idle_after_next_report()
            since = len(meter.net_log())
            meter.set_attenuation(ch1=15.0, ch2=5.0)
            meter.bench.clock.sleep(60.0)
            outcomes.append((switched, [e["pci"] for e in reselections(meter, since)]))
            meter.set_attenuation(ch1=5.0, ch2=15.0)
    flag = {False: "FALSE", True: "TRUE"}
    if obeys:
        assert outcomes == [([f"AT+NCONFIG=CELL_RESELECTION,{flag[e]}", "AT+NRB"], pcis)
                            for e, pcis in ((False, []), (True, [227]))]
    else:
        assert [switched for switched, _ in outcomes] == [[], []]
        assert outcomes[0][1] == [227]  # C2c fails: still reselects after "off"
