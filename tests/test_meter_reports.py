"""The meter's reports through the bench's real ports: schedule (C4, C16), release (C3), PSM (C5), quality (C12).

Every observation comes from what a hardware bench also has: the AT monitor, the platform, the supply and
module-rail channels of the power analyser, and the network log a callbox offers. The reference meter
passes at several seeds; each matching defect profile changes exactly the behaviour its check judges.
Runs that only read are shared: one `Campaign` per (profile, seed) is recorded once and read by many tests.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from rig.bench import Bench
from rig.instruments.power import N6705CPowerAnalyser
from rig.meter_session import MeterSession
from rig.monitor import MODULE, MonitorLine
from rig.platform.server import Uplink
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
REFERENCE = ROOT / "profiles" / "devices" / "reference-meter.yaml"
DEFECTS = ROOT / "profiles" / "devices" / "defects"
SEEDS = (1, 2, 3)

ZONE = ZoneInfo("Asia/Shanghai")
T1_S = 3600.0  # 01:00
STAGGER_S = (12345 % 200) * 120.0 + 12345 % 60  # 145 x T3 + 45 s = 17445 s
REPORT_OF_DAY_S = T1_S + STAGGER_S  # 05:50:45 local
REPORT_TOLERANCE_S = 5.0  # wake, the 20 ppm crystal between time syncs (1.7 s a day), AT and radio delays
ATTACH_WINDOW_S = 60.0  # module boot, configuration, search and attach after the stagger wait

# coverage of the sim bench: RS power -60 dBm, 30 dB path loss on every channel, interferer -70 dBm
RS_POWER_DBM, PATH_LOSS_DB, INTERFERER_DBM = -60.0, 30.0, -70.0
NOISE_FLOOR_DBM = -132.2 + 7.0  # thermal noise per 15 kHz + the reference module's noise figure
FAR_DB = 95.0
CE0_DB, CE1_DB, CE2_DB, CE2_INTERFERER_DB = 5.0, 20.0, 30.0, 15.0

FLOW_L_PER_H = 60.0
WINDOW_BEFORE_S, WINDOW_S, WINDOW_PERIOD_S = 20.0, 100.0, 0.01  # data log around each report
FLOOR_AFTER_S, FLOOR_S = 300.0, 60.0  # sleep-floor data log: inside PSM, clear of the 30-min freezes
AVERAGE_S = 0.5  # C3: the current's 0.5 s average against the connected threshold
CONNECTED_A = 10e-3  # idle averages about 1 mA (paging spikes included), connected about 50 mA
RA_TAIL_MAX_S = 3.0
INACTIVITY_S = 20.0
C5_MODULE_MAX_A, C5_FLOOR_MAX_A = 5e-6, 20e-6
CSCON_TO_PSM_MAX_S = 60.0  # T3324 30 s requested


# ---- recording -------------------------------------------------------------------------------------
def local_midnight(time_s: float) -> datetime:
    return datetime.fromtimestamp(time_s, ZONE).replace(hour=0, minute=0, second=0, microsecond=0)


def rule_time(t0: float, day: int, offset_s: float = REPORT_OF_DAY_S) -> float:
    """Day `day`'s report time by the rule, in bench time (day 0 is the day of power-on)."""
    return (local_midnight(t0) + timedelta(days=day)).timestamp() + offset_s


def local(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, ZONE).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass
class PowerWindow:
    """A data-log record around one report: mean current per period."""

    start_s: float
    period_s: float
    mean_a: np.ndarray

    def index(self, time_s: float) -> int:
        return int(math.floor((time_s - self.start_s) / self.period_s))


@dataclass
class Campaign:
    """Everything the bench saw of one meter over a few days."""

    name: str
    seed: int
    t0: float
    days: int
    uplinks: list[Uplink]
    lines: list[MonitorLine]
    net_log: list[dict]
    windows: list[PowerWindow] = field(default_factory=list)
    floors_a: list[float] = field(default_factory=list)
    rails_a: list[float] = field(default_factory=list)

    @property
    def reports(self) -> list[Uplink]:
        return [u for u in self.uplinks if u.message is not None and u.message["type"] == "basic_report"]

    def module_lines(self, text: str) -> list[MonitorLine]:
        return [line for line in self.lines if line.sender == MODULE and line.text == text]

    def events(self, name: str) -> list[dict]:
        return [event for event in self.net_log if event["event"] == name]

    def transcript(self, start_s: float, end_s: float) -> str:
        return "\n".join(
            f"{local(line.time_s)} {'MCU>' if line.sender != MODULE else '   <'} {line.text[:80]}"
            for line in self.lines if start_s <= line.time_s <= end_s
        )


@contextmanager
def meter_bench(device_path: Path, seed: int) -> Iterator[tuple[Bench, MeterSession]]:
    """A bench on its own twin with the meter at CE0 on cell 1, not yet powered."""
    with Bench(load_model(BENCH, BenchProfile), BENCH, seed=seed, device_path=device_path) as bench, \
            MeterSession(bench, load_model(device_path, DeviceProfile)) as meter:
        bench.attenuator.set_all(FAR_DB)
        bench.attenuator.set_attenuation(1, CE0_DB)
        yield bench, meter


def mean_current_a(analyser: N6705CPowerAnalyser, period_s: float, duration_s: float) -> float:
    return float(np.mean(np.concatenate([chunk.mean_a for chunk in analyser.data_log(period_s, duration_s)])))


def sleep_until(bench: Bench, time_s: float) -> None:
    bench.clock.sleep(max(time_s - bench.clock.now(), 0.0))


def record_campaign(device_path: Path, seed: int, days: int, power: bool) -> Campaign:
    """Power on at 00:00 local, run `days` days; with `power`, data-log each report and the floors after it."""
    with meter_bench(device_path, seed) as (bench, meter):
        rail = N6705CPowerAnalyser(bench.supply.transport, bench.clock, channel=2)  # the module alone
        t0 = bench.clock.now()
        meter.power_on()
        meter.stimulate("flow", FLOW_L_PER_H)
        windows, floors, rails = [], [], []
        for day in range(days):
            if not power:
                break
            due = rule_time(t0, day)
            sleep_until(bench, due - WINDOW_BEFORE_S)
            chunks = list(bench.supply.data_log(WINDOW_PERIOD_S, WINDOW_S))
            windows.append(PowerWindow(chunks[0].start_s, WINDOW_PERIOD_S, np.concatenate([c.mean_a for c in chunks])))
            sleep_until(bench, due + FLOOR_AFTER_S)
            floors.append(mean_current_a(bench.supply, 1.0, FLOOR_S))
            rails.append(mean_current_a(rail, 1.0, FLOOR_S))
        sleep_until(bench, (local_midnight(t0) + timedelta(days=days)).timestamp())
        net_log = json.loads(bench.twin_link.query("SIM:NET:LOG?"))
        return Campaign(device_path.stem, seed, t0, days, list(meter.platform.uplinks), list(meter.monitor.lines),
                        net_log, windows, floors, rails)


CampaignOf = Callable[..., Campaign]


@pytest.fixture(scope="module")
def campaign() -> CampaignOf:
    """`campaign(profile_path, seed=1, days=6, power=True)`: recorded once per module, then only read."""
    recorded: dict[tuple, Campaign] = {}

    def get(device_path: Path, seed: int = 1, days: int = 6, power: bool = True) -> Campaign:
        key = (str(device_path), seed, days, power)
        if key not in recorded:
            recorded[key] = record_campaign(device_path, seed, days, power)
        return recorded[key]

    return get


def defect(name: str) -> Path:
    return DEFECTS / f"{name}.yaml"


def variant(tmp_path: Path, name: str, **meter_settings: object) -> Path:
    """A profile extending the reference meter with `sim.meter` settings changed."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(
        {"extends": str(REFERENCE), "name": name, "sim": {"meter": meter_settings}}, sort_keys=False))
    return path


# ---- C4: when the meter reports and first attaches -------------------------------------------------
def first_attempts(c: Campaign) -> list[MonitorLine]:
    """The first uplink attempt (`AT+QLWULDATAEX` of a basic report) of each local day, on the monitor."""
    by_day: dict[str, MonitorLine] = {}
    for line in c.lines:
        command = line.sender != MODULE and line.text.startswith("AT+QLWULDATAEX=")
        if command and bytes.fromhex(line.text.split(",")[1])[:1] == b"\x01":  # type code 1: basic report
            by_day.setdefault(local_midnight(line.time_s).date().isoformat(), line)
    return list(by_day.values())


def assert_reports_on_rule(c: Campaign, offset_s: float) -> None:
    attempts, reports = first_attempts(c), c.reports
    assert len(attempts) == len(reports) == c.days, c.transcript(c.t0, c.t0 + c.days * 86400)
    for day, (attempt, report) in enumerate(zip(attempts, reports, strict=True)):
        expected = rule_time(c.t0, day, offset_s)
        for what, seen in (("first attempt", attempt.time_s), ("platform reception", report.time_s)):
            assert abs(seen - expected) <= REPORT_TOLERANCE_S, (
                f"{c.name} seed {c.seed} day {day}: {what} at {local(seen)}, rule {local(expected)}")


def first_attach_delay_s(c: Campaign) -> tuple[float, float]:
    """From supply on to the module's power-on banner on the monitor, and to the network's attach."""
    banner = c.module_lines("REBOOT_CAUSE_SECURITY_PMU_POWER_ON_RESET")[0]
    return banner.time_s - c.t0, c.events("attach")[0]["time_s"] - c.t0


@pytest.mark.parametrize("seed", SEEDS)
def test_c4_reference_reports_daily_at_the_staggered_time(campaign: CampaignOf, seed: int) -> None:
    c = campaign(REFERENCE, seed)
    assert_reports_on_rule(c, REPORT_OF_DAY_S)
    days = [local_midnight(report.time_s).date() for report in c.reports]
    assert days == [days[0] + timedelta(days=n) for n in range(c.days)], "one report on each consecutive day"
    banner_s, attach_s = first_attach_delay_s(c)
    assert STAGGER_S <= banner_s <= attach_s <= STAGGER_S + ATTACH_WINDOW_S, (banner_s, attach_s)


def test_c4_no_stagger_reports_at_t1(campaign: CampaignOf) -> None:
    c = campaign(defect("c4-no-stagger"), days=2, power=False)
    assert_reports_on_rule(c, T1_S)
    banner_s, attach_s = first_attach_delay_s(c)
    assert attach_s <= ATTACH_WINDOW_S, "no stagger at all: the first attach is not spread either"


def test_c4_no_stagger_after_power_cut_attaches_at_once(campaign: CampaignOf) -> None:
    c = campaign(defect("c4-no-stagger-after-power-cut"), days=2, power=False)
    banner_s, attach_s = first_attach_delay_s(c)
    assert banner_s <= 5.0 and attach_s <= ATTACH_WINDOW_S, (banner_s, attach_s)
    assert_reports_on_rule(c, REPORT_OF_DAY_S)  # the daily reports keep their stagger


# ---- C3: release assistance --------------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    """One report's release: tails from the last exchange's ACK, and the report's charge (wake to floor)."""

    cscon_tail_s: float
    current_tail_s: float
    charge_uah: float


def releases(c: Campaign) -> list[Release]:
    found = []
    for day, window in enumerate(c.windows):
        end_s = window.start_s + len(window.mean_a) * window.period_s
        statuses = [line for line in c.module_lines("+QLWULDATASTATUS:4") if window.start_s <= line.time_s < end_s]
        assert statuses, f"{c.name} day {day}: no acknowledged uplink in the window"
        last = statuses[-1]
        cscon = next((line for line in c.module_lines("+CSCON:0") if line.index > last.index), None)
        assert cscon is not None, c.transcript(window.start_s, end_s)
        average = np.convolve(window.mean_a, np.ones(round(AVERAGE_S / window.period_s)) / round(
            AVERAGE_S / window.period_s), mode="valid")  # average[i]: the 0.5 s from period i
        first = max(window.index(last.time_s), 0)
        below = np.flatnonzero(average[first:] < CONNECTED_A)
        assert below.size, f"{c.name} day {day}: the current never fell below the connected threshold"
        fell_s = window.start_s + (first + below[0]) * window.period_s
        awake = np.flatnonzero(window.mean_a > c.floors_a[day] + 0.5e-3)
        charge_c = float(np.sum(window.mean_a[awake[0]:awake[-1] + 1]) * window.period_s)
        found.append(Release(cscon.time_s - last.time_s, max(fell_s - last.time_s, 0.0), charge_c / 3.6e-3))
    return found


@pytest.mark.parametrize("seed", SEEDS)
def test_c3_reference_releases_at_once_after_its_last_exchange(
        campaign: CampaignOf, seed: int, record_property) -> None:
    c = campaign(REFERENCE, seed)
    found = releases(c)
    assert len(found) >= 3
    worst = max(max(r.cscon_tail_s, r.current_tail_s) for r in found)
    assert worst <= RA_TAIL_MAX_S, found
    causes = [e["detail"] for e in c.events("rrc_release")][1:]  # the first is the attach's
    assert causes == ["release-assistance"] * c.days, causes
    record_property("charge_per_report_uah", [round(r.charge_uah, 1) for r in found])


def test_c3_no_release_assistance_waits_for_the_inactivity_timer(campaign: CampaignOf, record_property) -> None:
    reference, faulty = campaign(REFERENCE), campaign(defect("c3-no-release-assistance"))
    found = releases(faulty)
    for r in found:
        assert INACTIVITY_S - 1.0 <= r.cscon_tail_s <= INACTIVITY_S + 2.0, found
        assert INACTIVITY_S - 1.0 <= r.current_tail_s <= INACTIVITY_S + 2.0, found
    causes = [e["detail"] for e in faulty.events("rrc_release")][1:]
    assert causes == ["inactivity"] * faulty.days, causes
    with_ra = float(np.mean([r.charge_uah for r in releases(reference)]))
    without = float(np.mean([r.charge_uah for r in found]))
    record_property("charge_per_report_uah", {"reference": round(with_ra, 1), "c3-defect": round(without, 1),
                                              "saving": round(without - with_ra, 1)})
    assert with_ra < without
    # everything else is the reference's: same schedule, same PSM
    assert_reports_on_rule(faulty, REPORT_OF_DAY_S)
    assert len(faulty.events("attach")) == 1


# ---- C5: PSM, not power-off --------------------------------------------------------------------------
def psm_after_each_report(c: Campaign) -> list[bool]:
    """For each report: `+NPSMR:1` follows the report's release within T3324 and a margin."""
    entered = []
    for report in c.reports:
        release = next(line for line in c.module_lines("+CSCON:0") if line.time_s >= report.time_s)
        entered.append(any(
            release.time_s <= line.time_s <= release.time_s + CSCON_TO_PSM_MAX_S for line in c.module_lines("+NPSMR:1")
        ))
    return entered


def power_on_banners(c: Campaign) -> list[MonitorLine]:
    return c.module_lines("REBOOT_CAUSE_SECURITY_PMU_POWER_ON_RESET")


@pytest.mark.parametrize("seed", SEEDS)
def test_c5_reference_sleeps_in_psm_between_reports(campaign: CampaignOf, seed: int, record_property) -> None:
    c = campaign(REFERENCE, seed)
    assert len(c.reports) >= 6  # the day-0 report and five more daily wakes
    attaches = c.events("attach")
    assert len(attaches) == 1 and attaches[0]["time_s"] < c.reports[0].time_s, attaches
    assert all(psm_after_each_report(c))
    assert len(power_on_banners(c)) == 1, "the module is never power cycled"
    record_property("floor_ua", [round(a * 1e6, 2) for a in c.floors_a])
    record_property("module_psm_ua", [round(a * 1e6, 2) for a in c.rails_a])
    assert all(8e-6 <= a <= 16e-6 for a in c.floors_a), c.floors_a  # 9 uA MCU + 3 uA module
    assert max(c.floors_a) <= C5_FLOOR_MAX_A
    assert all(2e-6 <= a <= 4e-6 for a in c.rails_a), c.rails_a
    assert max(c.rails_a) <= C5_MODULE_MAX_A


def test_c5_module_psm_12ua(campaign: CampaignOf) -> None:
    c = campaign(defect("c5-module-psm-12ua"))
    assert all(10e-6 <= a <= 14e-6 for a in c.rails_a), c.rails_a
    assert min(c.rails_a) > C5_MODULE_MAX_A
    # still PSM: attached once, PSM after every report, never power cycled
    assert len(c.events("attach")) == 1 and all(psm_after_each_report(c)) and len(power_on_banners(c)) == 1


def test_c5_power_off_instead_of_psm(campaign: CampaignOf) -> None:
    c = campaign(defect("c5-power-off-instead-of-psm"))
    reports = c.reports
    assert len(reports) == c.days
    attaches = c.events("attach")
    for report in reports[1:]:  # every wake after the first report re-attaches
        assert any(report.time_s - ATTACH_WINDOW_S <= a["time_s"] <= report.time_s for a in attaches), local(
            report.time_s)
    assert len(attaches) == c.days
    banners = power_on_banners(c)
    assert len(banners) == c.days, "a power-on boot banner at each wake"
    for before, after in zip(banners, banners[1:], strict=False):
        between = [line for line in c.lines if before.index < line.index < after.index]
        cfun0 = [i for i, line in enumerate(between) if line.sender != MODULE and line.text == "AT+CFUN=0"]
        assert cfun0 and between[cfun0[-1] + 1].text == "OK", "AT+CFUN=0 answered OK before the power cut"
    assert not any(psm_after_each_report(c)), "no PSM after a report: the module is off"
    assert all(a < 1e-6 for a in c.rails_a)


def test_c5_mcu_never_sleeps(campaign: CampaignOf) -> None:
    c = campaign(defect("c5-mcu-never-sleeps"))
    assert all(280e-6 <= a <= 320e-6 for a in c.floors_a), c.floors_a
    assert min(c.floors_a) > C5_FLOOR_MAX_A
    assert all(a <= C5_MODULE_MAX_A for a in c.rails_a), "the module's PSM is fine"
    assert len(c.events("attach")) == 1 and all(psm_after_each_report(c))


# ---- C12: network quality ----------------------------------------------------------------------------
def expected_quality(serving_db: float, interferer_db: float) -> tuple[float, float]:
    rsrp = RS_POWER_DBM - PATH_LOSS_DB - serving_db
    interference = INTERFERER_DBM - PATH_LOSS_DB - interferer_db
    noise = 10 * math.log10(10 ** (NOISE_FLOOR_DBM / 10) + 10 ** (interference / 10))
    return rsrp, rsrp - noise


def coverage_level(rsrp_dbm: float) -> int:
    return 0 if rsrp_dbm >= -105 else 1 if rsrp_dbm >= -115 else 2


C12_STEPS = ((CE0_DB, FAR_DB), (CE1_DB, FAR_DB), (CE2_DB, CE2_INTERFERER_DB))  # serving, interferer


def record_c12(device_path: Path, seed: int) -> list[tuple[Uplink, float, float]]:
    """A report at CE0, CE1 and CE2, the attenuation changed between them while the meter stays powered."""
    seen = []
    with meter_bench(device_path, seed) as (bench, meter):
        t0 = bench.clock.now()
        meter.power_on()
        for day, (serving_db, interferer_db) in enumerate(C12_STEPS):
            bench.attenuator.set_attenuation(1, serving_db)
            bench.attenuator.set_attenuation(3, interferer_db)
            since = len(meter.platform.uplinks)
            sleep_until(bench, rule_time(t0, day) - 60)
            report = meter.platform.wait_for_uplink(
                lambda u: u.message is not None and u.message["type"] == "basic_report", 7200.0, since)
            assert report is not None, f"no report on day {day}"
            seen.append((report, *expected_quality(serving_db, interferer_db)))
    return seen


@pytest.fixture(scope="module")
def c12_run() -> Callable[..., list[tuple[Uplink, float, float]]]:
    recorded: dict[tuple, list] = {}

    def get(device_path: Path, seed: int = 1) -> list[tuple[Uplink, float, float]]:
        if (device_path, seed) not in recorded:
            recorded[device_path, seed] = record_c12(device_path, seed)
        return recorded[device_path, seed]

    return get


def quality_errors(report: Uplink, rsrp: float, sinr: float) -> list[str]:
    network = report.message.get("network")
    if network is None:
        return ["no network block"]
    errors = []
    if network["pci"] != 226 or network["earfcn"] != 2509:
        errors.append(f"cell PCI {network['pci']} EARFCN {network['earfcn']}")
    if abs(network["rsrp_dbm"] - rsrp) > 6.0:
        errors.append(f"RSRP {network['rsrp_dbm']} vs {rsrp:.1f}")
    if abs(network["sinr_db"] - sinr) > 5.0:
        errors.append(f"SINR {network['sinr_db']} vs {sinr:.1f}")
    if network["ecl"] != coverage_level(network["rsrp_dbm"]):
        errors.append(f"ECL {network['ecl']} with RSRP {network['rsrp_dbm']}")
    return errors


@pytest.mark.parametrize("seed", SEEDS)
def test_c12_reference_reports_quality_that_follows_the_attenuation(c12_run, campaign: CampaignOf,
                                                                    seed: int) -> None:
    steps = c12_run(REFERENCE, seed)
    for report, rsrp, sinr in steps:
        assert not quality_errors(report, rsrp, sinr), (local(report.time_s), report.message.get("network"))
    assert [report.message["network"]["ecl"] for report, _, _ in steps] == [0, 1, 2]
    for report in campaign(REFERENCE, seed).reports:  # every daily report of the campaign, at CE0
        assert not quality_errors(report, *expected_quality(CE0_DB, FAR_DB)), report.message.get("network")


def test_c12_no_network_quality(c12_run) -> None:
    steps = c12_run(defect("c12-no-network-quality"))
    assert all("network" not in report.message for report, _, _ in steps)
    assert all(report.message["type"] == "basic_report" for report, _, _ in steps)


def test_c12_rsrp_frozen_at_boot(c12_run) -> None:
    steps = c12_run(defect("c12-rsrp-frozen"))
    (boot, rsrp, sinr), *later = steps
    assert not quality_errors(boot, rsrp, sinr), "right at boot"
    for report, rsrp, sinr in later:
        assert report.message["network"] == boot.message["network"], "the boot values, repeated"
        assert any(error.startswith("RSRP") for error in quality_errors(report, rsrp, sinr))


# ---- C16: schedules, content and sizes ---------------------------------------------------------------
def assert_freezes(report: Uplink, count: int, interval_s: float, period_s: float) -> None:
    message = report.message
    assert (message["freeze_interval_s"], message["report_period_s"]) == (interval_s, period_s), local(report.time_s)
    volumes = message["period_consumption_l"]
    assert len(volumes) == count, (local(report.time_s), volumes)
    per_freeze = FLOW_L_PER_H * interval_s / 3600
    assert all(abs(v - per_freeze) <= 1 for v in volumes), (per_freeze, volumes)


def assert_sizes(uplinks: list[Uplink], basic_limit: int = 200) -> None:
    for uplink in uplinks:
        assert uplink.message is not None, uplink.error
        assert uplink.size_bytes <= 512
        if uplink.message["type"] == "basic_report":
            assert uplink.size_bytes < basic_limit, uplink.size_bytes


@pytest.mark.parametrize("seed", SEEDS)
def test_c16_household_day_report(campaign: CampaignOf, seed: int) -> None:
    c = campaign(REFERENCE, seed)
    first, *full_days = c.reports
    assert_freezes(first, 11, 1800, 86400)  # 00:30 ... 05:30 on the day of power-on
    for report in full_days:
        assert_freezes(report, 48, 1800, 86400)
        assert abs(report.message["daily_cumulative_l"] - 24 * FLOW_L_PER_H) <= 2
        assert abs(sum(report.message["period_consumption_l"]) - report.message["daily_cumulative_l"]) <= 2
        assert report.message["instantaneous_l_per_h"] == FLOW_L_PER_H
        assert abs(report.message["battery_mv"] - 3600) <= 50
    assert_sizes(c.uplinks)


def assert_periodic(reports: list[Uplink], t0: float, first_s: float, period_s: float) -> None:
    for n, report in enumerate(reports):
        expected = local_midnight(t0).timestamp() + first_s + n * period_s
        assert abs(report.time_s - expected) <= REPORT_TOLERANCE_S, (n, local(report.time_s), local(expected))


def test_c16_leak_mode_reports_hourly_with_five_minute_freezes(campaign: CampaignOf, tmp_path: Path) -> None:
    c = campaign(variant(tmp_path, "leak-mode", schedule="leak"), days=1, power=False)
    # the 04:50:45 slot coincides with the power-on stagger: it is served right after the first attach
    reports = [r for r in c.reports if r.time_s >= c.t0 + REPORT_OF_DAY_S - 5]
    assert len(c.reports) - len(reports) <= 1
    assert len(reports) == 19, [local(r.time_s) for r in reports]  # 05:50:45 ... 23:50:45
    assert_periodic(reports, c.t0, REPORT_OF_DAY_S, 3600)
    for report in reports:
        assert_freezes(report, 12, 300, 3600)
    assert_sizes(c.uplinks)


def test_c16_large_meter_reports_twice_a_day(campaign: CampaignOf, tmp_path: Path) -> None:
    c = campaign(variant(tmp_path, "large-meter", schedule="large"), days=3, power=False)
    reports = c.reports
    assert len(reports) == 6, [local(r.time_s) for r in reports]
    assert_periodic(reports, c.t0, REPORT_OF_DAY_S, 43200)
    for report in reports[1:]:
        assert_freezes(report, 24, 1800, 43200)
    assert_sizes(c.uplinks)


def test_c16_basic_report_300_bytes(campaign: CampaignOf) -> None:
    c = campaign(defect("c16-basic-report-300-bytes"), days=3, power=False)
    assert len(c.reports) == 3
    assert all(report.size_bytes == 300 and report.error is None for report in c.reports)
    for report in c.reports[1:]:
        assert_freezes(report, 48, 1800, 86400)  # the content still decodes in full
    with pytest.raises(AssertionError):
        assert_sizes(c.uplinks)
    assert_sizes(c.uplinks, basic_limit=301)


def test_c16_freezes_every_60_min(campaign: CampaignOf) -> None:
    c = campaign(defect("c16-freezes-every-60min"), days=3, power=False)
    assert len(c.reports) == 3
    for report in c.reports[1:]:
        assert_freezes(report, 24, 3600, 86400)
    assert_sizes(c.uplinks)
    assert_reports_on_rule(c, REPORT_OF_DAY_S)


# ---- a month of the reference meter ------------------------------------------------------------------
def test_thirty_days_take_seconds_and_deliver_thirty_reports() -> None:
    started = time.perf_counter()
    with meter_bench(REFERENCE, 1) as (bench, meter):
        t0 = bench.clock.now()
        meter.power_on()
        bench.clock.sleep(30 * 86400)
        reports = [u for u in meter.platform.uplinks if u.message and u.message["type"] == "basic_report"]
    wall_s = time.perf_counter() - started
    assert len(reports) == 30
    assert_periodic(reports, t0, REPORT_OF_DAY_S, 86400)
    assert wall_s < 10.0, f"30 days took {wall_s:.1f} s of wall time"
