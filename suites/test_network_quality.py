"""C12: the device reports PCI, RSRP, SINR, ECL and EARFCN, and they agree with the bench.

The coverage level is set, then changed at least once (plan.checks.C12.level_changes_min) while the
device stays powered, with a report at each level. Each report's network block is compared field by field
with what the bench set (open loop, from its calibration): all five present, PCI and EARFCN exact, RSRP
and SINR within the plan's tolerances (SINR only where the bench has an interferer to set it; otherwise
recorded), ECL consistent with the device's own RSRP and the cell's thresholds. A meter is read through
its reports at the platform; a bare module through `AT+NUESTATS`.
"""

from __future__ import annotations

import allure
import pytest

from fixtures.checks import Recorder
from rig.bench import Bench
from rig.coverage import CoverageCalculator, CoverageSetting
from rig.meter_session import MeterSession
from rig.module_session import ModuleSession
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import LEVELS, PlanProfile

FIELDS = ("pci", "rsrp_dbm", "sinr_db", "ecl", "earfcn")
FIRST_REPORT_WITHIN_S = 2 * 86400.0  # the power-on stagger and the first daily report
REPORT_WITHIN_S = 2 * 86400.0  # "report now" over the near-end port; without one, the next daily report
SETTLE_S = 120.0  # after a report: its release and the idle window, before the level changes
ATTACH_WITHIN_S = 600.0
POLL_S = 5.0


def level_sequence(level: str, plan: PlanProfile) -> list[str]:
    """`level`, then the next levels of the plan in turn (wrapping), one per change the plan asks for."""
    pool = list(plan.levels) if len(plan.levels) > 1 else list(LEVELS)
    if level not in pool:
        pool.insert(0, level)
    start = pool.index(level)
    return [pool[(start + step) % len(pool)] for step in range(plan.checks.C12.level_changes_min + 1)]


def expected_ecl(rsrp_dbm: float, plan: PlanProfile) -> int:
    """The ECL a device picks from its own RSRP with the cell's thresholds (table 4-4 edges by default)."""
    if rsrp_dbm >= plan.coverage.ecl1_rsrp_threshold_dbm:
        return 0
    return 1 if rsrp_dbm >= plan.coverage.ecl2_rsrp_threshold_dbm else 2


def judge_fields(measure: Recorder, name: str, network: dict | None, setting: CoverageSetting, plan: PlanProfile,
                 bench: Bench) -> None:
    """Per-field measurements of one network block against the bench's setting."""
    c12 = plan.checks.C12
    network = network or {}
    present = [f for f in FIELDS if network.get(f) is not None]
    measure(f"{name}_fields_present", len(present), "", low=len(FIELDS),
            note=f"missing: {', '.join(f for f in FIELDS if f not in present) or 'none'}")
    nan = float("nan")
    cell = setting.serving
    measure(f"{name}_pci", network.get("pci", nan), "", low=cell.pci, high=cell.pci, note="the serving cell's PCI")
    measure(f"{name}_earfcn", network.get("earfcn", nan), "", low=cell.earfcn, high=cell.earfcn,
            note="the serving cell's EARFCN")
    rsrp = network.get("rsrp_dbm")
    measure(f"{name}_rsrp_dbm", rsrp if rsrp is not None else nan, "dBm",
            note=f"bench {setting.expected_rsrp_dbm:.1f} dBm")
    measure(f"{name}_rsrp_error_db", round(rsrp - setting.expected_rsrp_dbm, 1) if rsrp is not None else nan, "dB",
            low=-c12.rsrp_tolerance_db, high=c12.rsrp_tolerance_db, note="reported - bench")
    sinr = network.get("sinr_db")
    measure(f"{name}_sinr_db", sinr if sinr is not None else nan, "dB",
            note=f"bench {setting.expected_sinr_db:.1f} dB")
    sinr_error = round(sinr - setting.expected_sinr_db, 1) if sinr is not None else nan
    if bench.profile.rf.interferer is not None:
        measure(f"{name}_sinr_error_db", sinr_error, "dB", low=-c12.sinr_tolerance_db, high=c12.sinr_tolerance_db,
                note="reported - bench")
    else:
        measure(f"{name}_sinr_error_db", sinr_error, "dB",
                note="recorded only: the bench has no interferer, so SINR is far above the level's window")
    ecl = network.get("ecl")
    if rsrp is None:
        measure(f"{name}_ecl", ecl if ecl is not None else nan, "", note="no RSRP to check the ECL against")
        return
    wanted = expected_ecl(rsrp, plan)
    measure(f"{name}_ecl", ecl if ecl is not None else nan, "", low=wanted, high=wanted,
            note=f"from the device's RSRP {rsrp:g} dBm and the thresholds {plan.coverage.ecl1_rsrp_threshold_dbm:g}/"
                 f"{plan.coverage.ecl2_rsrp_threshold_dbm:g} dBm")


def change_level(bench: Bench, plan: PlanProfile, first: CoverageSetting, level: str,
                 measure: Recorder, name: str) -> CoverageSetting:
    """Set the bench to `level` (as the coverage fixture does) and record the setting."""
    calculator = CoverageCalculator(bench.profile, plan, first.installation_loss_db)
    setting = calculator.setting(level)
    calculator.apply(bench.attenuator, setting)
    measure(f"{name}_serving_attenuation_db", setting.serving_db, "dB")
    measure(f"{name}_interferer_attenuation_db", setting.interferer_db, "dB")
    return setting


@pytest.fixture
def reporting_meter(request: pytest.FixtureRequest, device_profile: DeviceProfile) -> MeterSession:
    """The `meter` fixture, skipped for a bare module before its bench is opened."""
    if device_profile.kind != "meter":
        pytest.skip("the device is a bare module: C12 reads its AT+NUESTATS")
    return request.getfixturevalue("meter")


@pytest.mark.check("C12")
@pytest.mark.needs("attenuator")
def test_c12_meter_reports_network_quality_that_follows_the_level(reporting_meter: MeterSession, bench: Bench,
                                                                 coverage: CoverageSetting, plan: PlanProfile,
                                                                 measure: Recorder, level: str) -> None:
    """A report at `level` (the first after power-on), then at each next level set while the meter stays
    powered ("report now" over the near-end port): every network block agrees with the bench."""
    meter = reporting_meter
    meter.power_on()
    setting = coverage
    for number, step_level in enumerate(level_sequence(level, plan), start=1):
        name = f"report_{number}_{step_level}"
        if number == 1:
            report = meter.wait_for_report(FIRST_REPORT_WITHIN_S)
        else:
            bench.clock.sleep(SETTLE_S)
            setting = change_level(bench, plan, coverage, step_level, measure, name)
            report = meter.report_now(REPORT_WITHIN_S)
        if report is None:
            measure(f"{name}_fields_present", float("nan"), "", low=len(FIELDS), note="no report at this level")
            break
        network = report.message.get("network") if report.message else None
        allure.attach(repr(network), f"{name}: network block", allure.attachment_type.TEXT)
        judge_fields(measure, name, network, setting, plan, bench)
    measure.judge()


# ---- bare module ----------------------------------------------------------------------------------------
def nuestats(module: ModuleSession) -> dict | None:
    """`AT+NUESTATS` as a network block (None while the module is out of service)."""
    reply = module.command("AT+NUESTATS")
    values = dict(line.split(":", 1) for line in reply.lines if ":" in line)
    try:
        if int(values["PCI"]) == 65535:
            return None
        return {"pci": int(values["PCI"]), "rsrp_dbm": int(values["Signal power"]) / 10,
                "sinr_db": int(values["SNR"]) / 10, "ecl": int(values["ECL"]), "earfcn": int(values["EARFCN"])}
    except (KeyError, ValueError):
        return None


def registered(module: ModuleSession, timeout_s: float) -> bool:
    deadline = module.clock.now() + timeout_s
    while module.command("AT+CGATT?").value("+CGATT:") != "1":
        if module.clock.now() >= deadline:
            return False
        module.clock.sleep(POLL_S)
    return True


@pytest.mark.check("C12")
@pytest.mark.needs("attenuator")
def test_c12_bare_module_reports_network_quality_that_follows_the_level(module: ModuleSession, bench: Bench,
                                                                       coverage: CoverageSetting, plan: PlanProfile,
                                                                       measure: Recorder, level: str) -> None:
    """`AT+NUESTATS` once registered at `level`, then after each level change: it agrees with the bench."""
    module.power_on()
    if not registered(module, ATTACH_WITHIN_S):
        measure("registered", 0, "", low=1, note=f"not attached within {ATTACH_WITHIN_S:.0f} s at {level}")
        measure.judge()
    setting = coverage
    for number, step_level in enumerate(level_sequence(level, plan), start=1):
        name = f"reading_{number}_{step_level}"
        if number > 1:
            setting = change_level(bench, plan, coverage, step_level, measure, name)
            bench.clock.sleep(SETTLE_S)
        judge_fields(measure, name, nuestats(module), setting, plan, bench)
    measure.judge()
