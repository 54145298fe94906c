"""C12: the device reports PCI, RSRP, SINR, ECL and EARFCN, and they are right where a device can get them wrong.

The level is set and confirmed (the coverage fixture's rule: a bench that is not where it says is broken,
never the device's failure), then RSRP is stepped around the level's target (plan
`checks.C12.tracking_rsrp_steps_db`, inside the level's window) while the device stays powered, with
`readings_per_step` reports (or `AT+NUESTATS` readings on a bare module) at each step. Judged
(PROCEDURES' C12 row): all five fields present in every reading; PCI and EARFCN exact; ECL consistent
with the device's own RSRP and the cell's thresholds; the reported RSRP follows each step within
`tracking_tolerance_db` (a frozen or stale value fails, a constant bench offset does not). Absolute RSRP
and SINR accuracy is judged only on a bench with a reference calibration, else recorded with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

import allure
import pytest

from fixtures.checks import Recorder, inconclusive, not_applicable
from fixtures.levels import confirm_coverage, module_at_level, power_on_until_first_report
from rig.bench import Bench
from rig.coverage import CoverageCalculator, CoverageSetting
from rig.level_confirmation import bench_is_trusted, ecl_for_rsrp, median
from rig.meter_session import MeterSession
from rig.module_session import ModuleSession
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile

FIELDS = ("pci", "rsrp_dbm", "sinr_db", "ecl", "earfcn")
REPORT_WITHIN_S = 2 * 86400.0  # "report now" over the near-end port; without one, the next daily report
SETTLE_S = 120.0  # after a report or a step: its release and the idle window
ATTACH_WITHIN_S = 600.0
READ_ATTEMPTS_PER_READING = 2  # a report that never arrives is read again, not counted as a reading

ReadNetwork = Callable[[], dict | None]


class FieldTally:
    """Per-reading judgements of presence, format and consistency, counted over every reading of the check."""

    def __init__(self, setting: CoverageSetting, plan: PlanProfile):
        self.cell = setting.serving
        self.plan = plan
        self.readings = self.incomplete = 0
        self.missing: dict[str, int] = dict.fromkeys(FIELDS, 0)
        self.wrong_pci = self.wrong_earfcn = self.inconsistent_ecl = 0

    def add(self, network: dict | None) -> None:
        network = network or {}
        self.readings += 1
        absent = [name for name in FIELDS
                  if not isinstance(network.get(name), int | float) or isinstance(network.get(name), bool)]
        for name in absent:
            self.missing[name] += 1
        self.incomplete += bool(absent)
        self.wrong_pci += network.get("pci") != self.cell.pci
        self.wrong_earfcn += network.get("earfcn") != self.cell.earfcn
        rsrp, ecl = network.get("rsrp_dbm"), network.get("ecl")
        if rsrp is not None and ecl is not None:
            self.inconsistent_ecl += ecl != ecl_for_rsrp(rsrp, self.plan)

    def record(self, measure: Recorder) -> None:
        missing = ", ".join(f"{name} x{count}" for name, count in self.missing.items() if count) or "none"
        measure("readings_missing_a_field", self.incomplete, "", high=0,
                note=f"of {self.readings} readings; missing: {missing}")
        measure("pci_wrong", self.wrong_pci, "", high=0, note=f"serving cell PCI {self.cell.pci}")
        measure("earfcn_wrong", self.wrong_earfcn, "", high=0, note=f"serving cell EARFCN {self.cell.earfcn}")
        coverage = self.plan.coverage
        measure("ecl_inconsistent_with_own_rsrp", self.inconsistent_ecl, "", high=0,
                note=f"thresholds {coverage.ecl1_rsrp_threshold_dbm:g}/{coverage.ecl2_rsrp_threshold_dbm:g} dBm")


def track(measure: Recorder, bench: Bench, plan: PlanProfile, confirmed: CoverageSetting, first: dict | None,
          read: ReadNetwork) -> None:
    """Step RSRP around the confirmed setting, read the device at each step, and judge every field."""
    c12 = plan.checks.C12
    calculator = CoverageCalculator(bench.profile, plan, confirmed.installation_loss_db)
    tally = FieldTally(confirmed, plan)
    steps = [0.0, *c12.tracking_rsrp_steps_db]
    medians: list[float] = []
    expected: list[float] = []
    evidence = []
    for number, step in enumerate(steps):
        setting = calculator.shifted(confirmed, step)
        if number:
            calculator.apply(bench.attenuator, setting)
        readings = [first] if number == 0 and first is not None else []
        for _ in range(READ_ATTEMPTS_PER_READING * c12.readings_per_step):
            if len(readings) >= c12.readings_per_step:
                break
            bench.clock.sleep(SETTLE_S)
            network = read()
            if network is not None:
                readings.append(network)
        if not readings:
            inconclusive(f"no reading of the device at step {number} ({setting.expected_rsrp_dbm:.1f} dBm expected) "
                         f"in {READ_ATTEMPTS_PER_READING * c12.readings_per_step} tries: its tracking cannot be "
                         "judged (C22 judges whether its reports arrive)")
        for network in readings:
            tally.add(network)
        if number == 0:
            step_0 = readings
        rsrp = median([(n or {}).get("rsrp_dbm") for n in readings])
        medians.append(rsrp)
        expected.append(setting.expected_rsrp_dbm)
        measure(f"step_{number}_rsrp_dbm", round(rsrp, 2), "dBm",
                note=f"median of {len(readings)}; bench {setting.expected_rsrp_dbm:.1f} dBm "
                     f"(serving {setting.serving_db:g} dB)")
        evidence.append(f"step {number} ({step:+g} dB): bench {setting.expected_rsrp_dbm:.1f} dBm, "
                        f"device {[None if n is None else n.get('rsrp_dbm') for n in readings]}")
        if number:
            error = (rsrp - medians[-2]) - (expected[-1] - expected[-2])
            measure(f"step_{number}_tracking_error_db", round(error, 2), "dB", low=-c12.tracking_tolerance_db,
                    high=c12.tracking_tolerance_db, note="reported change - set change")
    allure.attach("\n".join(evidence), "RSRP steps: bench vs device", allure.attachment_type.TEXT)
    tally.record(measure)
    judge_absolute(measure, bench, plan, confirmed, step_0)
    measure.judge()


def judge_absolute(measure: Recorder, bench: Bench, plan: PlanProfile, setting: CoverageSetting,
                   readings: list[dict]) -> None:
    """Absolute RSRP/SINR error of the confirmed step's median reading: judged on a reference-calibrated bench,
    else recorded with the reason (the bench's own loss is not known well enough to blame the device)."""
    c12 = plan.checks.C12
    rsrp = median([(n or {}).get("rsrp_dbm") for n in readings])
    sinr = median([(n or {}).get("sinr_db") for n in readings])
    rsrp_error = round(rsrp - setting.expected_rsrp_dbm, 1)
    sinr_error = round(sinr - setting.expected_sinr_db, 1)
    if not bench_is_trusted(bench.profile):
        reason = "recorded only: the bench has no reference calibration"
        measure("rsrp_error_db", rsrp_error, "dB", note=reason)
        measure("sinr_error_db", sinr_error, "dB", note=reason)
        return
    measure("rsrp_error_db", rsrp_error, "dB", low=-c12.rsrp_tolerance_db, high=c12.rsrp_tolerance_db,
            note="reported - bench, reference-calibrated bench")
    if bench.profile.rf.interferer is not None:
        measure("sinr_error_db", sinr_error, "dB", low=-c12.sinr_tolerance_db, high=c12.sinr_tolerance_db,
                note="reported - bench, reference-calibrated bench")
    else:
        measure("sinr_error_db", sinr_error, "dB",
                note="recorded only: the bench has no interferer, so SINR is far above the level's window")


@pytest.fixture
def reporting_meter(request: pytest.FixtureRequest, device_profile: DeviceProfile) -> MeterSession:
    """The `meter` fixture, skipped for a bare module before its bench is opened."""
    if device_profile.kind != "meter":
        not_applicable("the device is a bare module: C12 reads its AT+NUESTATS")
    return request.getfixturevalue("meter")


@pytest.mark.check("C12")
@pytest.mark.needs("attenuator")
def test_c12_meter_reports_network_quality_that_tracks_the_bench(reporting_meter: MeterSession, bench: Bench,
                                                                 coverage: CoverageSetting, plan: PlanProfile,
                                                                 measure: Recorder) -> None:
    """The first report confirms the level; then "report now" readings at each RSRP step while powered."""
    meter = reporting_meter
    first = power_on_until_first_report(meter, measure, "no network quality could be read", coverage, plan)
    network = (first.message.get("network") if first.message else None) or {}
    confirmed = confirm_coverage(meter, measure, coverage, plan, first)
    meter.release_level()  # the steps may cross an ECL threshold on a bench off its calibration: tracking still holds
    if confirmed != coverage:
        network = None  # read before a closed-loop correction: step 0 is read afresh

    def read() -> dict | None:
        """The next report's network block ({} for a report without one), None when no report came."""
        report = meter.report_now(REPORT_WITHIN_S)
        if report is None:
            return None
        return (report.message.get("network") if report.message else None) or {}

    track(measure, bench, plan, confirmed, network, read)


# ---- bare module ----------------------------------------------------------------------------------------
@pytest.mark.check("C12")
@pytest.mark.needs("attenuator")
def test_c12_bare_module_reports_network_quality_that_tracks_the_bench(module: ModuleSession, bench: Bench,
                                                                       coverage: CoverageSetting, plan: PlanProfile,
                                                                       measure: Recorder) -> None:
    """`AT+NUESTATS` once attached confirms the level; then readings at each RSRP step."""
    module.power_on()
    confirmed = module_at_level(module, measure, coverage, plan, ATTACH_WITHIN_S)
    track(measure, bench, plan, confirmed, None, module.network)
