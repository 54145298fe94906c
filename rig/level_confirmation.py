"""Whether the device is at the level the bench set, from its own reading (ECL, RSRP, SINR).

A bench that is not where it says is the rig's fault, never the device's (PROCEDURES "Coverage levels"):
the level is confirmed when the device's ECL is the level's and, on a bench without a reference
calibration, its RSRP and SINR agree with the bench's expectation within the plan's tolerances. When
they do not, a closed-loop bench corrects the attenuation by the measured offset in bounded steps; an
open-loop bench (the twin's default), or a correction out of range, makes the level `broken` with a
calibration reason naming both figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from rig.coverage import CoverageCalculator, CoverageSetting, step_db
from rig.errors import CalibrationFault
from rig.instruments.attenuator import MAX_DB, Rc4datAttenuator
from rig.profiles.bench import BenchProfile
from rig.profiles.plan import PlanProfile


def level_ecl(level: str) -> int:
    """The ECL a coverage level stands for (CE1 -> 1)."""
    return int(level.removeprefix("CE"))


@dataclass(frozen=True)
class DeviceReading:
    """The device's own view of its radio: from a report's network block, or `AT+NUESTATS` on a module."""

    ecl: int | None
    rsrp_dbm: float | None
    sinr_db: float | None
    source: str

    @classmethod
    def from_network(cls, network: dict | None, source: str) -> DeviceReading | None:
        """From a decoded report's `network` block (None when the report carries none)."""
        if not network or network.get("ecl") is None:
            return None
        return cls(int(network["ecl"]), network.get("rsrp_dbm"), network.get("sinr_db"), source)

    def describe(self) -> str:
        rsrp = "no RSRP" if self.rsrp_dbm is None else f"{self.rsrp_dbm:.1f} dBm"
        return f"{rsrp} at ECL {self.ecl}"


@dataclass(frozen=True)
class Agreement:
    """How one reading compares with the setting: confirmed, or why not and by how much."""

    confirmed: bool
    ecl_matches: bool
    rsrp_offset_db: float | None
    sinr_offset_db: float | None
    problems: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)

    @property
    def only_sinr_off(self) -> bool:
        """ECL and RSRP agree, SINR alone does not: the interferer's path is the one to re-measure."""
        return self.ecl_matches and len(self.problems) == 1 and self.problems[0].startswith("SINR")


def bench_is_trusted(bench: BenchProfile) -> bool:
    """A bench whose path losses were measured with a reference instrument is not corrected toward the device."""
    attenuator = bench.instruments.attenuator
    return attenuator is not None and attenuator.reference_calibration is not None


def closed_loop(bench: BenchProfile, plan: PlanProfile) -> bool:
    """The plan's `coverage.closed_loop`, by default on for wall-clock benches and off for the twin; never on a
    bench with a reference calibration."""
    if bench_is_trusted(bench):
        return False
    return plan.coverage.closed_loop if plan.coverage.closed_loop is not None else bench.clock == "wall"


def ecl_for_rsrp(rsrp_dbm: float, plan: PlanProfile) -> int:
    """The ECL a device picks from its own RSRP with the cell's thresholds (table 4-4 edges by default)."""
    if rsrp_dbm >= plan.coverage.ecl1_rsrp_threshold_dbm:
        return 0
    return 1 if rsrp_dbm >= plan.coverage.ecl2_rsrp_threshold_dbm else 2


def assess(setting: CoverageSetting, reading: DeviceReading, plan: PlanProfile, trusted: bool,
           judge_sinr: bool) -> Agreement:
    """Confirmed when the device is at the level (its ECL, or its own RSRP by the cell's thresholds: an ECL that
    contradicts the device's own RSRP is C12's finding, not the bench's) and, on an untrusted bench, RSRP (and
    SINR where the bench sets it) agree within the plan's tolerances."""
    tolerance = plan.coverage
    rsrp_offset = None if reading.rsrp_dbm is None else reading.rsrp_dbm - setting.expected_rsrp_dbm
    sinr_offset = None if reading.sinr_db is None else reading.sinr_db - setting.expected_sinr_db
    wanted = level_ecl(setting.level)
    ecl_matches = reading.ecl == wanted or (reading.rsrp_dbm is not None
                                            and ecl_for_rsrp(reading.rsrp_dbm, plan) == wanted)
    problems = []
    if not ecl_matches:
        problems.append(f"ECL {reading.ecl}, not {wanted}")
    if not trusted:
        if rsrp_offset is not None and abs(rsrp_offset) > tolerance.agreement_rsrp_tolerance_db:
            problems.append(f"RSRP off by {rsrp_offset:+.1f} dB (tolerance {tolerance.agreement_rsrp_tolerance_db:g})")
        if judge_sinr and sinr_offset is not None and abs(sinr_offset) > tolerance.agreement_sinr_tolerance_db:
            problems.append(f"SINR off by {sinr_offset:+.1f} dB (tolerance {tolerance.agreement_sinr_tolerance_db:g})")
    return Agreement(not problems, ecl_matches, rsrp_offset, sinr_offset, tuple(problems))


def calibration_reason(setting: CoverageSetting, reading: DeviceReading | None, channel: int, why: str) -> str:
    """What a lab reads on a broken level: both figures and what to re-measure."""
    seen = "the device gave no reading" if reading is None else f"device reports {reading.describe()}"
    return (f"{setting.level} not confirmed ({why}): bench expects {setting.expected_rsrp_dbm:.1f} dBm, {seen}: "
            f"re-measure the path loss of attenuator channel {channel}")


def corrected(setting: CoverageSetting, agreement: Agreement, step_max_db: float,
              tolerance_db: float) -> CoverageSetting:
    """The next closed-loop try: serving attenuation moved by the RSRP offset (bounded), or, once RSRP agrees,
    the interferer moved by the SINR offset. CalibrationFault when the correction leaves the attenuator's
    range or there is nothing to correct with (no RSRP reported, or SINR set by thermal noise alone)."""
    rsrp_offset = agreement.rsrp_offset_db
    if not agreement.only_sinr_off:
        change = step_db(max(-step_max_db, min(step_max_db, rsrp_offset or 0.0)))
        if change == 0:
            raise CalibrationFault("the device's RSRP gives nothing to correct by")
        value = setting.serving_db + change
        if not 0.0 <= value <= MAX_DB:
            raise CalibrationFault(f"correcting the serving path by {change:+.2f} dB needs {value:.2f} dB of "
                                   f"attenuation, outside 0..{MAX_DB:g} dB")
        return replace(setting, serving_db=value)
    change = step_db(max(-step_max_db, min(step_max_db, agreement.sinr_offset_db or 0.0)))
    value = setting.interferer_db - change
    if change == 0 or setting.interferer_db >= MAX_DB and change < 0:
        raise CalibrationFault("thermal noise alone sets SINR here: the interferer cannot correct it")
    if not 0.0 <= value <= MAX_DB:
        raise CalibrationFault(f"correcting the interferer by {-change:+.2f} dB needs {value:.2f} dB of "
                               f"attenuation, outside 0..{MAX_DB:g} dB")
    return replace(setting, interferer_db=value)


def majority_ecl(readings: list[DeviceReading], preferred: int) -> int | None:
    """The ECL most readings show, a tie going to `preferred` (the level's), None without readings."""
    ecls = [r.ecl for r in readings if r.ecl is not None]
    if not ecls:
        return None
    most = max(ecls.count(ecl) for ecl in ecls)
    return preferred if ecls.count(preferred) == most else max(ecls, key=ecls.count)


def combined(readings: list[DeviceReading], preferred: int) -> DeviceReading:
    """Several readings as one: the majority ECL (ties to the level's), the median RSRP and SINR."""
    rsrp = median([r.rsrp_dbm for r in readings])
    sinr = median([r.sinr_db for r in readings])
    return DeviceReading(majority_ecl(readings, preferred), None if math.isnan(rsrp) else rsrp,
                         None if math.isnan(sinr) else sinr, f"majority and median of {len(readings)} readings")


def median(values: list[float]) -> float:
    """The median of finite values (NaN when there are none)."""
    finite = sorted(v for v in values if v is not None and math.isfinite(v))
    if not finite:
        return math.nan
    middle = len(finite) // 2
    return finite[middle] if len(finite) % 2 else (finite[middle - 1] + finite[middle]) / 2


Record = Callable[..., object]
Read = Callable[[], "DeviceReading | None"]


class LevelConfirmer:
    """Confirms a level from the device's readings, correcting a closed-loop bench, recording every step.

    `read()` gives the device's next reading (a "report now" over the near-end port, the next report, or
    `AT+NUESTATS` on a module); `record(name, value, unit, note=...)` files a measurement. A reading that
    disagrees is read again (`coverage.confirm_readings` in all, majority ECL and median RSRP/SINR) before
    the bench is corrected or called broken, so one noisy reading near a threshold decides nothing.
    """

    def __init__(self, calculator: CoverageCalculator, attenuator: Rc4datAttenuator, bench: BenchProfile,
                 plan: PlanProfile, read: Read, record: Record):
        self.calculator = calculator
        self.attenuator = attenuator
        self.plan = plan
        self.read = read
        self.record = record
        self.trusted = bench_is_trusted(bench)
        self.closed_loop = closed_loop(bench, plan)
        self.judge_sinr = bench.rf.interferer is not None
        self.channels = calculator.attenuator.channels

    def confirm(self, setting: CoverageSetting, reading: DeviceReading | None) -> CoverageSetting:
        """The setting the device is confirmed at (perhaps corrected); CalibrationFault when it cannot be."""
        coverage = self.plan.coverage
        attempt = 0
        while True:
            if reading is None:
                why = "no reading" + (f" after correction {attempt}" if attempt else "")
                raise CalibrationFault(calibration_reason(setting, None, self.channels["serving"], why))
            agreement, reading = self._agreement(setting, reading, attempt)
            if agreement.confirmed:
                self.record("coverage_confirmed", "yes", note=self._how(attempt))
                return setting
            channel = self.channels["interferer" if agreement.only_sinr_off else "serving"]
            if not self.closed_loop or attempt == coverage.closed_loop_tries:
                what = "closed loop ran out of tries" if self.closed_loop else self._open_loop_text()
                raise CalibrationFault(calibration_reason(setting, reading, channel, f"{agreement.reason}; {what}"))
            try:
                setting = corrected(setting, agreement, coverage.closed_loop_step_max_db,
                                    coverage.agreement_rsrp_tolerance_db)
            except CalibrationFault as fault:
                raise CalibrationFault(calibration_reason(setting, reading, channel,
                                                          f"{agreement.reason}; {fault}")) from None
            attempt += 1
            self.calculator.apply(self.attenuator, setting)
            self.record(f"correction_{attempt}_serving_attenuation_db", setting.serving_db, "dB",
                        note=agreement.reason)
            self.record(f"correction_{attempt}_interferer_attenuation_db", setting.interferer_db, "dB")
            reading = self.read()

    def _agreement(self, setting: CoverageSetting, reading: DeviceReading,
                   attempt: int) -> tuple[Agreement, DeviceReading]:
        """A reading judged; one that disagrees is judged again with more readings (majority and median)."""
        suffix = "" if attempt == 0 else f"_after_correction_{attempt}"
        self._record(setting, reading, suffix)
        agreement = assess(setting, reading, self.plan, self.trusted, self.judge_sinr)
        if agreement.confirmed or self.plan.coverage.confirm_readings < 2:
            return agreement, reading
        readings = [reading]
        for number in range(2, self.plan.coverage.confirm_readings + 1):
            more = self.read()
            if more is not None:
                self._record(setting, more, f"{suffix}_reading_{number}")
                readings.append(more)
        reading = combined(readings, level_ecl(setting.level))
        self._record(setting, reading, f"{suffix}_combined")
        return assess(setting, reading, self.plan, self.trusted, self.judge_sinr), reading

    def _record(self, setting: CoverageSetting, reading: DeviceReading, suffix: str) -> None:
        note = f"bench expects {setting.expected_rsrp_dbm:.1f} dBm, {setting.expected_sinr_db:.1f} dB; {reading.source}"
        self.record(f"device_rsrp_dbm{suffix}", reading.rsrp_dbm if reading.rsrp_dbm is not None else "not reported",
                    "dBm", note=note)
        self.record(f"device_sinr_db{suffix}", reading.sinr_db if reading.sinr_db is not None else "not reported",
                    "dB")
        self.record(f"device_ecl{suffix}", reading.ecl, "", note=f"level {setting.level}")

    def _how(self, attempt: int) -> str:
        basis = "ECL" if self.trusted else "ECL, RSRP" + (" and SINR" if self.judge_sinr else "")
        trust = "reference-calibrated bench" if self.trusted else "bench without reference calibration"
        corrections = f", after {attempt} closed-loop correction(s)" if attempt else ""
        return f"{basis} agree ({trust}){corrections}"

    def _open_loop_text(self) -> str:
        if self.trusted:
            return "a reference-calibrated bench is not corrected toward the device"
        return "open loop (plan coverage.closed_loop off for this bench)"


def network_from_nuestats(lines: list[str]) -> dict | None:
    """`AT+NUESTATS` lines (`Signal power:-1054`, `ECL:2`, `SNR:-58`, tenths of dB; with or without a space
    after the colon) as a network block like a report's; None while the module is out of service (PCI 65535,
    ECL 255) or the answer is not NUESTATS."""
    values = {}
    for line in lines:
        key, _, value = line.strip().partition(":")
        try:
            number = int(value)
        except ValueError:
            continue
        if -(1 << 31) <= number < 1 << 31:  # the module prints 32-bit values; a longer number is garbled
            values[key.strip()] = number
    if values.get("PCI", 65535) == 65535 or values.get("ECL", 255) == 255 or "Signal power" not in values:
        return None
    snr = values.get("SNR", -32768)
    return {"pci": values["PCI"], "rsrp_dbm": values["Signal power"] / 10,
            "sinr_db": None if snr == -32768 else snr / 10, "ecl": values["ECL"], "earfcn": values.get("EARFCN")}
