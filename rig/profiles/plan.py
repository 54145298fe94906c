"""The certification plan: every figure a check judges against, with its unit and source, and its validation.

Seed figures come from the NB-IoT smart water meter white paper (2018, CHECKLIST.md); the rest are the
defaults of PROCEDURES.md. The model's defaults equal profiles/plans/white-paper-2018.yaml, so a user
plan only writes what it changes. Nested sections merge field by field; lists, tables (dicts) and one
level's window or target are replaced whole.
"""

from __future__ import annotations

import re
import warnings
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from rig.profiles.loader import StrictModel, load_model
from rig.profiles.types import PositiveSeconds, TimeZone

Level = Literal["CE0", "CE1", "CE2"]
LEVELS: tuple[Level, ...] = ("CE0", "CE1", "CE2")
Severity = Literal["blocker", "critical", "normal", "minor", "trivial"]
DAY_S = 86400.0
SEVERITY = "Allure severity of the check's tests"
LEVELS_TEXT = "all = every plan level, one = the behaviour level"
KEYS_TEXT = ("measurement names (or fnmatch patterns) the certificate's cell shows; "
             "a NaN among them makes the cell inconclusive")
DeviceKind = Literal["meter", "module"]
BOTH: tuple[DeviceKind, ...] = ("meter", "module")

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


class PlanWarning(UserWarning):
    """A plan that loads but will likely fail or be inconclusive for a reason of its own making."""


def _clock_time(value: object) -> object:
    if isinstance(value, time):
        return value
    if not isinstance(value, str):
        raise ValueError("write a clock time quoted, 'HH:MM' (YAML reads unquoted 10:30 as the number 630)")
    match = _CLOCK.match(value.strip())
    if match is None:
        raise ValueError("expected a clock time 'HH:MM' or 'HH:MM:SS'")
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


def _text(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


ClockTime = Annotated[time, BeforeValidator(_clock_time)]
Text = Annotated[str, BeforeValidator(_text)]
Seconds = PositiveSeconds


def seconds_of_day(clock: time) -> float:
    """Seconds from midnight to `clock`."""
    return clock.hour * 3600.0 + clock.minute * 60.0 + clock.second


def _unique(values: list, what: str) -> list:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} lists an entry twice")
    return values


# --- time, coverage, installation ---------------------------------------------------------------------


class TimeSettings(StrictModel):
    """Where virtual time starts and which zone's calendar days the checks count."""

    start: datetime = Field(
        datetime(2026, 1, 5), description="campaign start, local time in `timezone` (an offset must match it)"
    )
    timezone: TimeZone = Field("Asia/Shanghai", description="IANA zone whose calendar days are 'a day'")

    @model_validator(mode="after")
    def _offset_matches_zone(self) -> TimeSettings:
        if self.start.tzinfo is not None:
            local = self.start.astimezone(ZoneInfo(self.timezone))
            if local.utcoffset() != self.start.utcoffset():
                raise ValueError(f"start's offset {self.start.utcoffset()} is not that of {self.timezone}")
        return self

    @property
    def start_at(self) -> datetime:
        """The start as an aware datetime in the plan's zone."""
        zone = ZoneInfo(self.timezone)
        return self.start.replace(tzinfo=zone) if self.start.tzinfo is None else self.start.astimezone(zone)


class Window(StrictModel):
    """One row of table 4-4: min inclusive, max exclusive, None = open."""

    rsrp_min_dbm: float = Field(description="lowest RSRP of the level (inclusive)")
    rsrp_max_dbm: float | None = Field(description="RSRP the level stays below; null = open")
    sinr_min_db: float = Field(description="lowest SINR of the level (inclusive)")
    sinr_max_db: float | None = Field(description="SINR the level stays below; null = open")

    @model_validator(mode="after")
    def _min_below_max(self) -> Window:
        for name in ("rsrp", "sinr"):
            unit = "dbm" if name == "rsrp" else "db"
            low, high = getattr(self, f"{name}_min_{unit}"), getattr(self, f"{name}_max_{unit}")
            if high is not None and low >= high:
                raise ValueError(f"{name}_min_{unit} {low} must be below {name}_max_{unit} {high}")
        return self


def _window(rsrp_min: float, rsrp_max: float | None, sinr_min: float, sinr_max: float | None) -> Window:
    return Window(rsrp_min_dbm=rsrp_min, rsrp_max_dbm=rsrp_max, sinr_min_db=sinr_min, sinr_max_db=sinr_max)


class LevelWindows(StrictModel):
    """Table 4-4 (base station at 20 W)."""

    CE0: Window = Field(_window(-105, None, 7, None), description="CE0 row")
    CE1: Window = Field(_window(-115, -105, -3, 7), description="CE1 row")
    CE2: Window = Field(_window(-125, -115, -8, -3), description="CE2 row")


class Target(StrictModel):
    """Where the `coverage` fixture puts the device at one level."""

    rsrp_dbm: float = Field(description="RSRP at the device's antenna port")
    sinr_db: float = Field(description="SINR at the device, set with the interferer channel")


class LevelTargets(StrictModel):
    """Window middles, at least `target_margin_db` from every edge (PROCEDURES.md)."""

    CE0: Target = Field(Target(rsrp_dbm=-95, sinr_db=10), description="CE0 target")
    CE1: Target = Field(Target(rsrp_dbm=-110, sinr_db=2), description="CE1 target")
    CE2: Target = Field(Target(rsrp_dbm=-120, sinr_db=-5), description="CE2 target")


class GoLive(StrictModel):
    """Installation rules of 4.1: where a meter may go live, and the pre-survey threshold."""

    rsrp_above_dbm: float = Field(-117.4, description="single-meter go-live and pre-survey: RSRP above this")
    sinr_above_db: float = Field(-3.0, description="single-meter go-live: SINR above this")
    install_levels: list[Level] = Field(["CE0", "CE1"], description="levels meters are installed in")


class CoverageSettings(StrictModel):
    """How the rig sets coverage levels and how it reads them back."""

    windows: LevelWindows = Field(default_factory=LevelWindows, description="table 4-4, per level")
    targets: LevelTargets = Field(default_factory=LevelTargets, description="where the rig sets each level")
    target_margin_db: float = Field(2.0, ge=0, description="least distance of a target from a window edge")
    no_service_rsrp_dbm: float = Field(-130.0, description="no service below this RSRP")
    no_service_sinr_db: float = Field(-12.0, description="no service below this SINR")
    thermal_noise_dbm_per_15khz: float = Field(-132.2, description="thermal noise in one 15 kHz subcarrier")
    noise_figure_db: float = Field(7.0, ge=0, description="device noise figure when its profile gives none")
    ecl1_rsrp_threshold_dbm: float = Field(-105.0, description="cell threshold: ECL1 below this RSRP")
    ecl2_rsrp_threshold_dbm: float = Field(-115.0, description="cell threshold: ECL2 below this RSRP")
    agreement_rsrp_tolerance_db: float = Field(6.0, ge=0, description="device vs bench RSRP to confirm a level")
    agreement_sinr_tolerance_db: float = Field(5.0, ge=0, description="device vs bench SINR to confirm a level")
    closed_loop: bool | None = Field(
        None, description="correct the attenuation toward the device's reading; null: on for wall-clock benches"
    )
    closed_loop_step_max_db: float = Field(10.0, gt=0, description="largest correction of one closed-loop try")
    closed_loop_tries: int = Field(4, ge=1, description="closed-loop corrections before the level is broken")
    confirm_readings: int = Field(
        3, ge=1, description="readings (majority ECL, median RSRP/SINR) when the first disagrees with the bench"
    )
    off_level_reports_max_fraction: float = Field(
        0.1, ge=0, le=1, description="share of a check's reports at another ECL (more than one) before its cell "
        "is broken"
    )
    go_live: GoLive = Field(default_factory=GoLive, description="installation and go-live rules")

    @model_validator(mode="after")
    def _consistent(self) -> CoverageSettings:
        if self.ecl1_rsrp_threshold_dbm <= self.ecl2_rsrp_threshold_dbm:
            raise ValueError("ecl1_rsrp_threshold_dbm must be above ecl2_rsrp_threshold_dbm")
        margin = self.target_margin_db
        for level in LEVELS:
            window, target = getattr(self.windows, level), getattr(self.targets, level)
            for name, value, low, high in (
                ("rsrp_dbm", target.rsrp_dbm, window.rsrp_min_dbm, window.rsrp_max_dbm),
                ("sinr_db", target.sinr_db, window.sinr_min_db, window.sinr_max_db),
            ):
                if value < low + margin or (high is not None and value > high - margin):
                    raise ValueError(
                        f"targets.{level}.{name} {value} is not inside windows.{level} "
                        f"[{low}, {high}) by at least target_margin_db {margin}"
                    )
            if target.rsrp_dbm <= self.no_service_rsrp_dbm or target.sinr_db <= self.no_service_sinr_db:
                raise ValueError(f"targets.{level} is at or below the no-service thresholds")
        return self


class InstallationPreset(StrictModel):
    """A penetration loss of table 4-5; a single figure has min_db == max_db."""

    min_db: float = Field(ge=0, description="lowest loss of the range")
    max_db: float = Field(ge=0, description="highest loss of the range, applied as attenuation")
    description: str = Field("", description="where the meter sits")

    @model_validator(mode="after")
    def _min_below_max(self) -> InstallationPreset:
        if self.min_db > self.max_db:
            raise ValueError(f"min_db {self.min_db} is above max_db {self.max_db}")
        return self

    @property
    def loss_db(self) -> float:
        """The figure applied as attenuation: the range's worst case."""
        return self.max_db


def _preset(low: float, high: float, text: str) -> InstallationPreset:
    return InstallationPreset(min_db=low, max_db=high, description=text)


def default_installation_presets() -> dict[str, InstallationPreset]:
    """Table 4-5, fresh instances every call."""
    return {
        "stone_slab_deep_submerged": _preset(16, 20, "two-layer stone slab, deep and submerged"),
        "cast_iron_meter_box": _preset(5, 8, "cast-iron big-meter box"),
        "submerged_30cm": _preset(3, 4, "submerged 30 cm"),
        "car_parked_over": _preset(17.5, 17.5, "car parked over (small car, front)"),
        "pipe_shaft": _preset(15, 15, "residential pipe shaft"),
        "outer_wall": _preset(0, 0, "outer wall"),
        "indoor_meter_well": _preset(15, 15, "indoor meter well (northern high-rise)"),
        "basement": _preset(32, 32, "basement"),
        "ground_pit": _preset(5, 8, "ground pit"),
    }


# --- business model, power references, battery -----------------------------------------------------


class HouseholdSchedule(StrictModel):
    """The household meter's daily routine."""

    freeze_period_s: Seconds = Field(1800, description="a reading frozen every 30 min")
    reports_per_day: int = Field(1, ge=1, description="daily report")
    report_window_start: ClockTime = Field(time(0, 0), description="daily report window opens")
    report_window_end: ClockTime = Field(time(5, 0), description="daily report window closes")


class LeakSchedule(StrictModel):
    """Leak investigation mode."""

    freeze_period_s: Seconds = Field(300, description="leak investigation: freeze every 5 min")
    report_period_s: Seconds = Field(3600, description="leak investigation: report every hour")


class LargeMeterSchedule(StrictModel):
    """Large (commercial) meters."""

    reports_per_day: int = Field(2, ge=1, description="large meter: twice a day")
    intensive_report_period_s: Seconds = Field(7200, description="intensive mode: every 2 h")


class UplinkSizes(StrictModel):
    """Table 4-1: `_below_` limits are strict (< figure); the message maximum is inclusive."""

    basic_report_below_bytes: int = Field(200, gt=0, description="daily report with the basic fields")
    enhanced_report_below_bytes: int = Field(300, gt=0, description="plus temperature and vibration")
    alarm_below_bytes: int = Field(50, gt=0, description="an immediate alarm message")
    message_max_bytes: int = Field(512, gt=0, description="no single uplink over this")

    @model_validator(mode="after")
    def _within_message_max(self) -> UplinkSizes:
        for name in ("basic_report_below_bytes", "enhanced_report_below_bytes", "alarm_below_bytes"):
            if getattr(self, name) > self.message_max_bytes + 1:
                raise ValueError(f"{name} exceeds message_max_bytes {self.message_max_bytes}")
        return self


class DownlinkSizes(StrictModel):
    """Table 4-2: strict limits, and the response window."""

    config_below_bytes: int = Field(50, gt=0, description="configuration command")
    point_read_below_bytes: int = Field(40, gt=0, description="platform point-read")
    valve_below_bytes: int = Field(40, gt=0, description="remote valve command")
    response_max_s: Seconds = Field(DAY_S, description="downlinks answered within 24 h, low power first")


class BusinessModel(StrictModel):
    """Section 4.1: schedules and message sizes."""

    household: HouseholdSchedule = Field(default_factory=HouseholdSchedule, description="household meter")
    leak: LeakSchedule = Field(default_factory=LeakSchedule, description="leak investigation mode")
    large_meter: LargeMeterSchedule = Field(default_factory=LargeMeterSchedule, description="large meters")
    uplink: UplinkSizes = Field(default_factory=UplinkSizes, description="table 4-1 size limits")
    downlink: DownlinkSizes = Field(default_factory=DownlinkSizes, description="table 4-2 size limits")


class PowerReferences(StrictModel):
    """Lab references of 4.2.2, recorded beside measurements; the judged limits live in the checks."""

    connected_avg_ma: float = Field(50.0, gt=0, description="RRC connected, average")
    idle_avg_ma: float = Field(1.0, gt=0, description="RRC idle, average")


class BatteryCell(StrictModel):
    """A cell preset (FIELD.md, Li-SOCl2 bobbin cells): its capacity, design life and pulse capability."""

    capacity_ah: float = Field(gt=0, description="nominal capacity")
    design_life_years: float = Field(gt=0, description="the vendor's shelf/design life: a ceiling on the projection")
    hlc: bool = Field(description="a hybrid layer capacitor beside the bobbin cell carries the transmit pulses")
    pulse_ma: float = Field(gt=0, description="highest pulse current the cell (with its HLC) delivers")
    pulse_s: float = Field(gt=0, description="longest pulse it delivers at that current")
    description: str = Field("", description="the cell, recorded")


class TemperatureClass(StrictModel):
    """Where the meter lives: the usable share of the nominal capacity and the self-discharge there."""

    usable_fraction: float = Field(gt=0, le=1, description="share of the nominal capacity usable at meter currents")
    self_discharge_fraction_per_year: float = Field(ge=0, lt=1, description="of nominal capacity, a year")
    description: str = Field("", description="the class, recorded")


# FIELD.md: ER18505 (A) about 4 Ah, ER26500 (C) 8.5 Ah, ER34615 (D) about 19 Ah; design life 10-15 years (some
# 20); bobbin cells cannot deliver NB-IoT transmit pulses (up to 200-300 mA) without an HLC. Pulse figures are
# ours, typical of bobbin datasheets (100-250 mA for 0.1 s) and of an HLC (1 A for 1 s): check the vendor's.
_CELLS = {
    "ER18505": (4.0, 100.0, "A-size bobbin cell"),
    "ER26500": (8.5, 200.0, "C-size bobbin cell"),
    "ER34615": (19.0, 250.0, "D-size bobbin cell"),
}
DESIGN_LIFE_YEARS = 15.0
BOBBIN_PULSE_S = 0.1
HLC_PULSE_MA, HLC_PULSE_S = 1000.0, 1.0


def default_battery_cells() -> dict[str, BatteryCell]:
    """Each cell with and without a hybrid layer capacitor, fresh instances every call."""
    cells = {}
    for name, (capacity, pulse_ma, text) in _CELLS.items():
        cells[name] = BatteryCell(capacity_ah=capacity, design_life_years=DESIGN_LIFE_YEARS, hlc=False,
                                  pulse_ma=pulse_ma, pulse_s=BOBBIN_PULSE_S, description=text)
        cells[f"{name}-HLC"] = BatteryCell(capacity_ah=capacity, design_life_years=DESIGN_LIFE_YEARS, hlc=True,
                                           pulse_ma=HLC_PULSE_MA, pulse_s=HLC_PULSE_S,
                                           description=f"{text} with a hybrid layer capacitor")
    return cells


def default_temperature_classes() -> dict[str, TemperatureClass]:
    """FIELD.md: 1 % a year at 20 C, 2-3 % in a hot meter box; usable 60-80 % of nominal."""
    return {
        "20C": TemperatureClass(usable_fraction=0.75, self_discharge_fraction_per_year=0.01,
                                description="20 C (indoor, pipe shaft)"),
        "hot_box": TemperatureClass(usable_fraction=0.65, self_discharge_fraction_per_year=0.025,
                                    description="hot meter box (sun-exposed, 40-60 C in summer)"),
    }


FROM_PRESETS = {"capacity_ah": ("cell", "capacity_ah"), "usable_fraction": ("temperature_class", "usable_fraction"),
                "self_discharge_fraction_per_year": ("temperature_class", "self_discharge_fraction_per_year")}
Bound = Literal["charge", "design life"]


class Battery(StrictModel):
    """The battery B1 projects life for, and the life it must reach.

    `cell` and `temperature_class` pick presets; `capacity_ah`, `usable_fraction` and
    `self_discharge_fraction_per_year` left null (or unwritten) come from them, a figure written overrides its
    preset. The projection is the smaller of the charge-based life and the cell's design life.
    """

    chemistry: str = Field("Li-SOCl2", description="cell chemistry, recorded")
    nominal_voltage_v: float = Field(3.6, gt=0, description="nominal cell voltage")
    cell: str = Field("ER18505-HLC", description="the cell preset (a key of `cells`)")
    temperature_class: str = Field("20C", description="the temperature class (a key of `temperature_classes`)")
    cells: dict[str, BatteryCell] = Field(default_factory=default_battery_cells,
                                          description="cell presets: FIELD.md sizes, with and without an HLC")
    temperature_classes: dict[str, TemperatureClass] = Field(
        default_factory=default_temperature_classes, description="usable share and self-discharge per class")
    capacity_ah: float = Field(4.0, gt=0, description="nominal capacity; null: the cell preset's")
    usable_fraction: float = Field(0.75, gt=0, le=1, description="share usable at the meter's load; null: the "
                                                                 "temperature class's")
    self_discharge_fraction_per_year: float = Field(0.01, ge=0, lt=1, description="of nominal capacity; null: the "
                                                                                 "temperature class's")
    target_years: float = Field(7.0, gt=0, description="6 + 1 years (the Shenzhen trial)")
    judged_levels: list[Level] = Field(["CE0", "CE1"], description="levels B1 judges; others recorded")
    ce2_min_years: float | None = Field(None, gt=0, description="if set, CE2 is judged against it")
    pulse_judged_levels: list[Level] = Field([], description="levels where the measured peak current and its "
                                                             "duration are judged against the cell's pulse capability")

    @model_validator(mode="before")
    @classmethod
    def _figures_from_presets(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        presets = {"cell": (data.get("cells") or default_battery_cells(), data.get("cell") or "ER18505-HLC"),
                   "temperature_class": (data.get("temperature_classes") or default_temperature_classes(),
                                         data.get("temperature_class") or "20C")}
        for figure, (kind, attribute) in FROM_PRESETS.items():
            if data.get(figure) is not None:
                continue
            table, key = presets[kind]
            if key not in table:
                raise ValueError(f"{kind} {key!r} is not one of {sorted(table)}")
            preset = table[key]
            data[figure] = preset.get(attribute) if isinstance(preset, dict) else getattr(preset, attribute)
        return data

    @model_validator(mode="after")
    def _presets_exist(self) -> Battery:
        if self.cell not in self.cells:
            raise ValueError(f"cell {self.cell!r} is not one of {sorted(self.cells)}")
        if self.temperature_class not in self.temperature_classes:
            raise ValueError(f"temperature_class {self.temperature_class!r} is not one of "
                             f"{sorted(self.temperature_classes)}")
        return self

    @property
    def usable_ah(self) -> float:
        """Capacity the meter can draw before self-discharge."""
        return self.capacity_ah * self.usable_fraction

    @property
    def preset(self) -> BatteryCell:
        return self.cells[self.cell]

    @property
    def design_life_years(self) -> float:
        return self.preset.design_life_years

    @property
    def self_discharge_ah_per_year(self) -> float:
        return self.self_discharge_fraction_per_year * self.capacity_ah

    @property
    def label(self) -> str:
        """`ER18505-HLC 4 Ah, 20C: 75 % usable, 1 %/year, design life 15 years`."""
        return (f"{self.cell} {self.capacity_ah:g} Ah, {self.temperature_class}: {self.usable_fraction:.0%} usable, "
                f"{self.self_discharge_fraction_per_year:.1%}/year self-discharge, design life "
                f"{self.design_life_years:g} years")

    def life(self, charge_per_year_ah: float) -> tuple[float, float, Bound]:
        """(years, charge-based years, bound): years = min(usable / (charge a year + self-discharge), design
        life); the bound says which one it was."""
        drain = charge_per_year_ah + self.self_discharge_ah_per_year
        if drain != drain:  # NaN: no charge measured, nothing bound it
            return drain, drain, "charge"
        charge_years = self.usable_ah / drain if drain > 0 else float("inf")
        if charge_years <= self.design_life_years:
            return charge_years, charge_years, "charge"
        return self.design_life_years, charge_years, "design life"


# --- the checks -----------------------------------------------------------------------------------------


def key_measurements(*names: str) -> Any:
    """A check's `key_measurements` field: the figures of its checklist line, shown in the certificate."""
    return Field(list(names), min_length=1, description=KEYS_TEXT)


class Check(StrictModel):
    """What every check shares: its registration (title, area, the device kinds it applies to: fixed by
    the checklist), on/off, Allure severity, at which levels it runs, and its key measurements."""

    title: ClassVar[str]
    area: ClassVar[str]
    applies: ClassVar[tuple[DeviceKind, ...]] = ("meter",)

    key_measurements: list[str] = Field(min_length=1, description=KEYS_TEXT)
    enabled: bool = Field(True, description="false skips the check with the reason 'disabled by the plan'")
    severity: Severity = Field("normal", description=SEVERITY)


class OnceCheck(Check):
    """A level-free check: one verdict, shown once in the certificate (one merged cell)."""

    levels: Literal["once"] = Field("once", description="level-free: runs once")


class LevelCheck(Check):
    """A check at every plan level (`all`) or at the behaviour level only (`one`)."""

    levels: Literal["all", "one"] = Field("all", description=LEVELS_TEXT)


class BehaviourCheck(LevelCheck):
    """A check of behaviour, by default at the behaviour level only."""

    levels: Literal["all", "one"] = Field("one", description=LEVELS_TEXT)


class C1Firmware(OnceCheck):
    """C1: the module runs a 3GPP uplink-power-optimised release."""

    title = "chip power-optimised release"
    area = "radio"
    applies = BOTH
    key_measurements: list[str] = key_measurements("module_firmware")

    severity: Severity = Field("critical", description=SEVERITY)
    firmware_allow_list: list[str] = Field(
        ["V150R100C10B200SP1", "V150R100C10B300SP5"],
        min_length=1,
        description="accepted versions as AT+CGMR prints them: the operator's list, not the vendor's",
    )


class C2aReselection(OnceCheck):
    """C2a: idle-mode reselection to the stronger cell, same and different EARFCN."""

    title = "cell reselection"
    area = "radio"
    applies = BOTH
    key_measurements: list[str] = key_measurements("swap_reselected", "swap_reselection_time_s")

    strong_rsrp_dbm: float = Field(-95.0, description="the cell the module should move to")
    weak_rsrp_dbm: float = Field(-105.0, description="the cell it starts on (still suitable)")
    idle_window_min_s: Seconds = Field(20, description="shortest idle time after a report to observe it")

    @model_validator(mode="after")
    def _strong_above_weak(self) -> C2aReselection:
        if self.strong_rsrp_dbm <= self.weak_rsrp_dbm:
            raise ValueError("strong_rsrp_dbm must be above weak_rsrp_dbm")
        return self


class C2bNotLocked(BehaviourCheck):
    """C2b: with only another EARFCN left, the meter camps and reports there."""

    title = "no frequency lock"
    area = "radio"
    applies = BOTH
    key_measurements: list[str] = key_measurements("camped_earfcn", "report_after_fade_s")

    report_within_s: Seconds = Field(DAY_S, description="reports through the other EARFCN within this")


class C2cSwitch(BehaviourCheck):
    """C2c: reselection on at boot; the platform's off/on switches obeyed."""

    title = "reselection switch from the platform"
    area = "radio"
    key_measurements: list[str] = key_measurements("reselection_at_boot", "swap_off_reselected", "swap_on_reselected")


class C3ReleaseAssist(LevelCheck):
    """C3: release assistance ends the connection at once after the last exchange."""

    title = "release assistance"
    area = "power"
    applies = BOTH
    key_measurements: list[str] = key_measurements("worst_tail_s", "charge_saved_vs_timer_uah")

    severity: Severity = Field("critical", description=SEVERITY)
    tail_max_s: Seconds = Field(3, description="last exchange to RRC release, worst report")
    inactivity_timer_s: Seconds = Field(20, description="the network's timer that RA must beat")
    reference_saving_uah: float = Field(270, ge=0, description="charge saved per report, recorded beside")
    reports: int = Field(3, ge=1, description="reports observed, judged on the worst")
    connected_threshold_ma: float = Field(10, gt=0, description="windowed average below this = released")
    average_window_s: Seconds = Field(0.5, description="averaging window of the release detector")
    wake_above_ma: float = Field(0.5, gt=0, description="a report's charge runs from the current's first rise above")
    floor_above_ma: float = Field(0.1, gt=0, description="to its last time above this (then back at the floor)")
    tx_above_ma: float = Field(75, gt=0, description="a period above this is a TX burst, left out of the measured "
                               "connected-mode current (above a module's DRX on-current, 60-68 mA)")

    @model_validator(mode="after")
    def _tail_below_timer(self) -> C3ReleaseAssist:
        if self.tail_max_s >= self.inactivity_timer_s:
            raise ValueError("tail_max_s must be below inactivity_timer_s, else no release assistance passes")
        return self


class C5Psm(LevelCheck):
    """C5: the module sleeps in PSM (stays attached) rather than being powered off."""

    title = "PSM, not power-off"
    area = "power"
    applies = BOTH
    key_measurements: list[str] = key_measurements("module_psm_ua", "meter_floor_ua")

    severity: Severity = Field("critical", description=SEVERITY)
    module_psm_max_ua: float = Field(5, gt=0, description="module current in PSM")
    meter_floor_max_ua: float = Field(20, gt=0, description="whole meter's sleep floor")
    wakes: int = Field(5, ge=1, description="wakes observed for re-attaches")
    log_window_s: Seconds = Field(60, description="data-logger time inside PSM")
    reattaches_max: int = Field(0, ge=0, description="attaches allowed on wake")
    psm_entry_within_s: Seconds = Field(600, description="report to +NPSMR:1 counted as a PSM entry (T3324 and more)")
    wake_quiet_s: Seconds = Field(300, description="a pause this long ends a report's exchange: the next uplink wakes")
    module_off_below_ua: float = Field(0.5, gt=0, description="module rail below this: the module is unpowered")


class C8AttachGuard(OnceCheck):
    """C8: after power-on the MCU lets the module search at least 5 min."""

    title = "attach guard"
    area = "radio"
    key_measurements: list[str] = key_measurements("attach_guard_s")

    severity: Severity = Field("critical", description=SEVERITY)
    guard_min_s: Seconds = Field(300, description="module power-on to the MCU's first give-up")
    attach_within_s: Seconds = Field(DAY_S, description="after cells return: attached and reported")


class C12NetworkQuality(LevelCheck):
    """C12: reports carry PCI, RSRP, SINR, ECL and EARFCN, and they are right."""

    title = "network quality"
    area = "radio"
    applies = BOTH
    key_measurements: list[str] = key_measurements("step_*_tracking_error_db", "readings_missing_a_field",
                                                   "rsrp_error_db")

    rsrp_tolerance_db: float = Field(6, ge=0, description="absolute RSRP error, judged on a reference-calibrated bench")
    sinr_tolerance_db: float = Field(5, ge=0, description="absolute SINR error, judged on a reference-calibrated bench")
    tracking_rsrp_steps_db: list[float] = Field(
        [-3.0, 3.0, 0.0], min_length=3, description="RSRP set relative to the level's target, one step after another"
    )
    tracking_tolerance_db: float = Field(2, ge=0, description="reported RSRP change vs set change, per step")
    readings_per_step: int = Field(3, ge=1, description="reports per step; the median is judged")


class C21aStorage(OnceCheck):
    """C21a: storage mode keeps the meter quiet and searching nothing."""

    title = "storage mode"
    area = "power"
    key_measurements: list[str] = key_measurements("average_ua", "search_bursts")

    duration_s: Seconds = Field(DAY_S, description="time in storage mode")
    average_max_ua: float = Field(20, gt=0, description="average current, the meter floor limit")
    searches_max: int = Field(0, ge=0, description="search bursts allowed")
    search_burst_above_ma: float = Field(5, gt=0, description="period means above this are a search burst")
    wake_report_max_s: Seconds = Field(3600, description="wake trigger to the first report at the platform")


class C21bSearchBackoff(OnceCheck):
    """C21b: without coverage the module's searches back off 10, 20, 40 min ... up to 24 h."""

    title = "search backoff"
    area = "power"
    applies = BOTH
    key_measurements: list[str] = key_measurements("intervals_seen")

    first_interval_s: Seconds = Field(600, description="first interval between searches")
    factor: float = Field(2.0, gt=1, description="growth of each interval")
    cap_s: Seconds = Field(DAY_S, description="longest interval")
    tolerance_fraction: float = Field(0.10, ge=0, lt=1, description="per interval")
    intervals: int = Field(10, ge=2, description="intervals judged (8 doublings then 2 at the cap)")
    search_burst_above_ma: float = Field(5, gt=0, description="period means above this are a search burst")

    @model_validator(mode="after")
    def _cap_above_first(self) -> C21bSearchBackoff:
        if self.cap_s < self.first_interval_s:
            raise ValueError("cap_s is below first_interval_s")
        return self


class C22ReportSuccess(LevelCheck):
    """C22: the share of scheduled reports that arrive."""

    title = "report success"
    area = "radio"
    key_measurements: list[str] = key_measurements("success_rate", "reports_arrived")

    severity: Severity = Field("critical", description=SEVERITY)
    success_min: float = Field(0.99, ge=0, le=1, description="reports arrived / scheduled")
    reports_per_level: int = Field(300, ge=1, description="reports scheduled at each level")
    reports_min: int = Field(300, ge=1, description="fewer counted: the cell is inconclusive")
    confidence: float = Field(0.95, gt=0, lt=1, description="of the printed interval")
    field_reference: float = Field(0.992, ge=0, le=1, description="the white paper's field result, recorded")


class B1BatteryLife(LevelCheck):
    """B1: projected battery life from a day's charge; limits in `battery`."""

    title = "battery life"
    area = "power"
    key_measurements: list[str] = key_measurements("projected_years", "projection_bound", "shares",
                                                     "charge_per_day_uah")

    severity: Severity = Field("critical", description=SEVERITY)
    record_s: Seconds = Field(DAY_S, description="data-logger record at each level")
    point_reads_per_month: float = Field(1, ge=0, description="added at their measured charge")
    valve_operations_per_month: float = Field(1, ge=0, description="added at their measured charge")
    event_window_s: Seconds = Field(180, description="data-log window of one report (its events are differences)")


class C4Stagger(BehaviourCheck):
    """C4: report time T = T1 + (n mod 200) x T3 + n2, also after a power cut."""

    title = "access stagger"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("own_offset_s", "*_reattach_offset_s")

    severity: Severity = Field("critical", description=SEVERITY)
    t1: ClockTime = Field(time(1, 0), description="base report time T1")
    t3_s: Seconds = Field(120, description="slot length T3")
    modulus: int = Field(200, ge=1, description="n1 = meter number mod this")
    n2_max_s: float = Field(60, ge=0, description="n2 = meter number mod 60, in s")
    wake_allowance_s: float = Field(30, ge=0, description="added to the upper edge of the expected window")
    deadline: ClockTime = Field(time(8, 0), description="previous day's reports complete before this")
    meter_numbers: list[Annotated[int, Field(ge=0)]] = Field(
        [0, 1, 199, 200, 12345], min_length=1, description="test numbers, where the meter lets the rig set one"
    )
    changed_t1: ClockTime = Field(time(0, 30), description="T1 the platform sets mid-check")
    changed_t3_s: Seconds = Field(60, description="T3 the platform sets mid-check")
    power_cut_s: Seconds = Field(60, description="supply cut before the mass re-attach")

    def last_attempt_s(self, t1: time, t3_s: float) -> float:
        """Seconds from T1's midnight to the latest first attempt: T1 + (modulus - 1) T3 + n2 max."""
        return seconds_of_day(t1) + (self.modulus - 1) * t3_s + self.n2_max_s

    def deadline_margin_s(self, t1: time, t3_s: float) -> float:
        """Deadline minus the latest first attempt; the deadline is the next one after T1."""
        deadline = seconds_of_day(self.deadline)
        if deadline <= seconds_of_day(t1):
            deadline += DAY_S
        return deadline - self.last_attempt_s(t1, t3_s)


class C4fFleet(OnceCheck):
    """C4f: C4's measured rule projected over a fleet; uses C4's deadline."""

    title = "fleet projection"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("last_first_attempt_after_t1_s", "peak_per_minute_per_cell")

    fleet_size: int = Field(1_000_000, ge=1, description="meters, numbered consecutively")
    cells: int = Field(1000, ge=1, description="cells the fleet spreads over evenly")
    peak_per_minute_per_cell_max: float = Field(30, gt=0, description="first attempts per minute per cell")


class C6TimeSync(BehaviourCheck):
    """C6: the meter syncs its clock in every daily report."""

    title = "time sync"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("worst_residual_s")

    skew_s: float = Field(300, description="clock skew set over maintenance")
    residual_max_s: float = Field(5, ge=0, description="skew left after each daily report")
    days: int = Field(3, ge=1, description="days skewed and checked")


class C7Retry(BehaviourCheck):
    """C7: retry after 5 min, then 1 h; after the third failure wait 8 h, reset and re-attach."""

    title = "retry"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("retry_*_gap_s", "wait_after_last_failure_s")

    severity: Severity = Field("critical", description=SEVERITY)
    retry_waits_s: list[Seconds] = Field([300, 3600], min_length=1, description="waits before each retry")
    reset_wait_s: Seconds = Field(28800, description="after the last failure: wait, reset, re-attach")
    tolerance_fraction: float = Field(0.02, ge=0, lt=1, description="plus the device's failure detection")
    extra_levels: list[Level] = Field(["CE2"], description="run there too, when the plan lists them")


class C9CmeError513(BehaviourCheck):
    """C9: on +CME ERROR: 513 retry after 1, 3 and 10 min, then the exception flow."""

    title = "CME ERROR 513"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("wait_after_513_*_s")

    waits_s: list[Seconds] = Field([60, 180, 600], min_length=1, description="wait after each 513")
    tolerance_fraction: float = Field(0.10, ge=0, lt=1, description="relative part of the tolerance")
    tolerance_s: float = Field(5, ge=0, description="absolute part of the tolerance")


class C10ExceptionFlow(BehaviourCheck):
    """C10: the exception flow's command order."""

    title = "exception flow"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("exception_flow_steps_in_order")

    expected_order: list[str] = Field(
        ["AT+NRB", "AT+CFUN=0", "AT+NCSEARFCN"], min_length=1, description="commands in this order"
    )
    final_steps: list[str] = Field(["power_off", "AT+NRB"], min_length=1, description="any one ends the flow")
    queries_allowed: bool = Field(True, description="read-only commands between steps are fine")


class C11CfunBeforePowerOff(OnceCheck):
    """C11: every module power cut the MCU makes comes after AT+CFUN=0."""

    title = "CFUN before power-off"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("cuts_without_cfun0_*")

    module_heard_within_s: Seconds = Field(
        2 * DAY_S, description="without a module rail, the wait after the last phase for the module's next word "
        "(a cut shows at its next power-on: the next scheduled report); silent that long is inconclusive"
    )


class C13Logs(OnceCheck):
    """C13: at least 30 days of logs per internal module, uploadable and downloadable."""

    title = "30-day logs"
    area = "maintenance"
    key_measurements: list[str] = key_measurements("download_oldest_entry_age_days")

    severity: Severity = Field("minor", description=SEVERITY)
    operation_days: int = Field(31, ge=1, description="days from power-on to the log download")
    log_days_min: float = Field(
        30, gt=0, description="log history required: the oldest entry is at least this old, less the largest gap "
        "between consecutive entries"
    )
    marker_before_limit_s: Seconds = Field(
        3600, description="a maintenance login placed log_days_min less this before the download must be logged"
    )
    event_margin_days: float = Field(
        1, gt=0, description="the known events (a retry, a login, reports) are at most log_days_min less this old"
    )
    log_match_s: float = Field(60, gt=0, description="a known event's entry within this of the event (meter clock)")

    @model_validator(mode="after")
    def _long_enough(self) -> C13Logs:
        if self.operation_days < self.log_days_min:
            raise ValueError("operation_days is shorter than log_days_min: the check could never pass")
        if self.marker_before_limit_s >= self.log_days_min * DAY_S or self.event_margin_days >= self.log_days_min:
            raise ValueError("marker_before_limit_s and event_margin_days must be shorter than log_days_min")
        return self


class C14Upgrades(OnceCheck):
    """C14: signed SOTA applied, bad images refused; FOTA and near-end upgrades work."""

    title = "upgrades"
    area = "security"
    key_measurements: list[str] = key_measurements("sota_applied", "mcu_version_kept", "module_version_kept")

    severity: Severity = Field("critical", description=SEVERITY)
    bad_images: list[Literal["unsigned", "wrong_signature", "truncated"]] = Field(
        ["unsigned", "wrong_signature", "truncated"], description="images that must be refused"
    )
    sota: bool = Field(True, description="MCU image from the platform")
    fota: bool = Field(True, description="module image")
    near_end: bool = Field(True, description="image over the maintenance port")


class C15Maintenance(OnceCheck):
    """C15: near-end tool behind a password, with a lock-out."""

    title = "near-end maintenance"
    area = "maintenance"
    key_measurements: list[str] = key_measurements(
        "commands_answered_before_login", "wrong_password_refused", "locked_out_after_tries"
    )

    severity: Severity = Field("critical", description=SEVERITY)
    lockout_tries: int = Field(5, ge=1, description="wrong passwords before the lock-out")
    lockout_s: Seconds = Field(600, description="lock-out length")
    lockout_tolerance_s: float = Field(10, ge=0, description="the lock-out ends within lockout_s +- this")
    log_match_s: Seconds = Field(60, description="a step's log entry within this of the step (meter clock)")


class C16PeriodicReport(BehaviourCheck):
    """C16: reports on schedule, with the right content and sizes (see business_model)."""

    title = "periodic report"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements(
        "household_interval_error_max_s", "basic_report_size_max_bytes", "uplink_size_max_bytes"
    )

    schedules: list[Literal["household", "leak", "large_meter", "large_meter_intensive"]] = Field(
        ["household", "leak", "large_meter", "large_meter_intensive"], min_length=1, description="run these"
    )
    days_per_schedule: int = Field(2, ge=1, description="days observed per schedule")
    supply_voltage_v: float = Field(3.5, gt=0, description="set on the supply, read back in the report")
    voltage_tolerance_v: float = Field(0.05, ge=0, description="reported vs set voltage")
    flow_l_per_h: float = Field(60, gt=0, description="forward flow injected: whole litres in any whole-minute freeze")
    volume_tolerance_l: float = Field(1, ge=0, description="reported vs injected volume of each freeze")
    report_time_tolerance_s: float = Field(60, ge=0, description="each report interval vs the schedule's period")


Alarm = Literal["over_flow", "low_battery", "reverse_flow", "magnetic", "separation"]


class C17Alarms(BehaviourCheck):
    """C17: magnetic and separation alarms at once (once a day); the others in the next report."""

    title = "alarms"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("magnetic_latency_s", "separation_latency_s")

    immediate_alarms: list[Alarm] = Field(["magnetic", "separation"], description="sent at once")
    deferred_alarms: list[Alarm] = Field(
        ["over_flow", "low_battery", "reverse_flow"], description="only in the next periodic report"
    )
    triggers_per_day: int = Field(3, ge=1, description="stimuli per alarm per day")
    immediate_within_s: Seconds = Field(300, description="stimulus to alarm at the platform")
    immediate_per_day_max: int = Field(1, ge=1, description="immediate messages per alarm per day")

    @model_validator(mode="after")
    def _disjoint(self) -> C17Alarms:
        if set(self.immediate_alarms) & set(self.deferred_alarms):
            raise ValueError("an alarm cannot be both immediate and deferred")
        return self


class C18PointRead(BehaviourCheck):
    """C18: a point read queued while the meter sleeps is answered."""

    title = "point read"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("queue_to_answer_s")

    response_max_s: Seconds = Field(DAY_S, description="queue to answer")


class AnswerLimit(StrictModel):
    """At least `fraction_min` of the writes answered within `within_s`."""

    within_s: Seconds = Field(description="queue to answer")
    fraction_min: float = Field(ge=0, le=1, description="share answered in time")


class C19Configuration(BehaviourCheck):
    """C19: configuration writes and queries answered and applied."""

    title = "configuration"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("answered_within_*")

    writes: int = Field(1000, ge=1, description="writes and queries queued")
    days: int = Field(30, ge=1, description="writes spread at random over these days")
    answer_limits: list[AnswerLimit] = Field(
        [AnswerLimit(within_s=DAY_S, fraction_min=0.999), AnswerLimit(within_s=2 * DAY_S, fraction_min=1.0)],
        min_length=1,
        description="rising in both within_s and fraction_min",
    )
    daily_terminal_fraction_max: float = Field(0.02, gt=0, le=1, description="fleet share configured a day")

    @model_validator(mode="after")
    def _ascending(self) -> C19Configuration:
        pairs = [(limit.within_s, limit.fraction_min) for limit in self.answer_limits]
        if pairs != sorted(pairs) or len({within for within, _ in pairs}) != len(pairs):
            raise ValueError("answer_limits must rise in within_s and fraction_min")
        return self


class C20Valve(BehaviourCheck):
    """C20: remote open/close, executed where the device profile allows it, refused elsewhere."""

    title = "valve control"
    area = "meter behaviour"
    key_measurements: list[str] = key_measurements("*_state_as_required")

    operations: list[Literal["open", "close"]] = Field(["open", "close"], min_length=1, description="sent")
    response_max_s: Seconds = Field(DAY_S, description="queue to answer")
    motor_above_ma: float = Field(130, gt=0, description="supply means above this at the wake are the valve motor")


def _check(model: type[Check]) -> Any:
    """A `checks` entry: defaults from the model, its docstring as the description."""
    return Field(default_factory=model, description=model.__doc__)


from rig.profiles.plan_security import S1SpoofedDownlinks, S2ReplayedSession, S3DeclaredFields  # noqa: E402


class Checks(StrictModel):
    """One entry per check id of PROCEDURES.md's table."""

    C1: C1Firmware = _check(C1Firmware)
    C2a: C2aReselection = _check(C2aReselection)
    C2b: C2bNotLocked = _check(C2bNotLocked)
    C2c: C2cSwitch = _check(C2cSwitch)
    C3: C3ReleaseAssist = _check(C3ReleaseAssist)
    C5: C5Psm = _check(C5Psm)
    C8: C8AttachGuard = _check(C8AttachGuard)
    C12: C12NetworkQuality = _check(C12NetworkQuality)
    C21a: C21aStorage = _check(C21aStorage)
    C21b: C21bSearchBackoff = _check(C21bSearchBackoff)
    C22: C22ReportSuccess = _check(C22ReportSuccess)
    B1: B1BatteryLife = _check(B1BatteryLife)
    C4: C4Stagger = _check(C4Stagger)
    C4f: C4fFleet = _check(C4fFleet)
    C6: C6TimeSync = _check(C6TimeSync)
    C7: C7Retry = _check(C7Retry)
    C9: C9CmeError513 = _check(C9CmeError513)
    C10: C10ExceptionFlow = _check(C10ExceptionFlow)
    C11: C11CfunBeforePowerOff = _check(C11CfunBeforePowerOff)
    C13: C13Logs = _check(C13Logs)
    C14: C14Upgrades = _check(C14Upgrades)
    C15: C15Maintenance = _check(C15Maintenance)
    C16: C16PeriodicReport = _check(C16PeriodicReport)
    C17: C17Alarms = _check(C17Alarms)
    C18: C18PointRead = _check(C18PointRead)
    C19: C19Configuration = _check(C19Configuration)
    C20: C20Valve = _check(C20Valve)
    S1: S1SpoofedDownlinks = _check(S1SpoofedDownlinks)
    S2: S2ReplayedSession = _check(S2ReplayedSession)
    S3: S3DeclaredFields = _check(S3DeclaredFields)


# --- the plan -------------------------------------------------------------------------------------------


class PlanProfile(StrictModel):
    """A certification plan: which levels, which checks, and every limit they judge against."""

    name: str = Field(description="the plan's name, printed in every report")
    version: Text = Field("1", description="the plan's own version")
    description: str = Field("", description="what the plan is for")
    operator: str = Field("", description="whose allow-lists and limits these are")
    time: TimeSettings = Field(default_factory=TimeSettings, description="start and calendar of virtual time")
    levels: list[Level] = Field(list(LEVELS), min_length=1, description="levels `all` checks run at")
    behaviour_level: Level = Field("CE1", validate_default=True, description="the level `one` checks run at")
    coverage: CoverageSettings = Field(default_factory=CoverageSettings, description="setting coverage levels")
    installation_presets_db: dict[str, InstallationPreset] = Field(
        default_factory=default_installation_presets, description="table 4-5, worst case applied"
    )
    business_model: BusinessModel = Field(default_factory=BusinessModel, description="4.1 schedules, sizes")
    power_references: PowerReferences = Field(default_factory=PowerReferences, description="4.2.2 lab figures")
    battery: Battery = Field(default_factory=Battery, description="B1's battery and life target")
    checks: Checks = Field(default_factory=Checks, description="one entry per check id")

    @field_validator("levels")
    @classmethod
    def _levels_unique(cls, value: list[Level]) -> list[Level]:
        return _unique(value, "levels")

    @field_validator("behaviour_level")
    @classmethod
    def _behaviour_level_listed(cls, value: Level, info: ValidationInfo) -> Level:
        levels = info.data.get("levels")
        if levels is not None and value not in levels:
            raise ValueError(f"behaviour_level {value} is not one of the plan's levels {levels}")
        return value

    @model_validator(mode="after")
    def _tracking_steps_inside_windows(self) -> PlanProfile:
        """C12's tracking steps keep each level's RSRP inside its window (the device stays at the level; the
        interferer moves with the serving cell, so SINR stays where the level put it)."""
        coverage = self.coverage
        for level in self.levels:
            window, target = getattr(coverage.windows, level), getattr(coverage.targets, level)
            for step in self.checks.C12.tracking_rsrp_steps_db:
                rsrp = target.rsrp_dbm + step
                high = window.rsrp_max_dbm
                if rsrp < window.rsrp_min_dbm or (high is not None and rsrp >= high):
                    raise ValueError(f"checks.C12.tracking_rsrp_steps_db {step:g} puts {level} at {rsrp:g} dBm, "
                                     f"outside its window [{window.rsrp_min_dbm:g}, {high}) dBm")
        return self

    def run_levels(self, check: str) -> list[Level]:
        """The levels `check` runs at: every plan level (`all`), else the behaviour level (`one`; a level-free
        check that asks for a level gets it too), plus the `extra_levels` the plan lists ("one, and CE2")."""
        entry = getattr(self.checks, check)
        levels = list(self.levels) if entry.levels == "all" else [self.behaviour_level]
        extra = getattr(entry, "extra_levels", [])
        return levels + [level for level in extra if level in self.levels and level not in levels]

    @model_validator(mode="after")
    def _warn_on_doubtful_figures(self) -> PlanProfile:
        stagger = self.checks.C4
        for t1_key, t3_key in (("t1", "t3_s"), ("changed_t1", "changed_t3_s")):
            t1, t3_s = getattr(stagger, t1_key), getattr(stagger, t3_key)
            margin = stagger.deadline_margin_s(t1, t3_s)
            if margin < 0:
                days, rest = divmod(int(stagger.last_attempt_s(t1, t3_s)), int(DAY_S))
                clock = f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
                clock += f" (+{days} day)" if days else ""
                warnings.warn(
                    f"checks.C4.{t1_key} {t1:%H:%M} + {stagger.modulus - 1} x {t3_key} {t3_s:g} s + "
                    f"{stagger.n2_max_s:g} s = {clock}, {-margin:.0f} s after the {stagger.deadline:%H:%M} "
                    "deadline: the last meters cannot report in time (C4 and C4f will fail)",
                    PlanWarning,
                    stacklevel=2,
                )
        success = self.checks.C22
        if success.reports_min > success.reports_per_level:
            warnings.warn(
                f"checks.C22.reports_min {success.reports_min} exceeds reports_per_level "
                f"{success.reports_per_level}: every C22 cell will be inconclusive",
                PlanWarning,
                stacklevel=2,
            )
        return self


def load_plan(path: Path | str) -> PlanProfile:
    """Load and validate a plan; plan warnings are re-issued naming the file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PlanWarning)
        plan = load_model(path, PlanProfile)
    for item in caught:
        if issubclass(item.category, PlanWarning):
            warnings.warn(f"plan {path}: {item.message}", PlanWarning, stacklevel=2)
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return plan
