"""The certification plan: the shipped white-paper plan, user overrides, refusals and warnings."""

from __future__ import annotations

import re
import textwrap
import typing
import warnings
from datetime import time
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from pydantic import BaseModel

from rig.checklist import ITEMS
from rig.profiles.loader import ProfileError
from rig.profiles.plan import Check, Checks, PlanProfile, PlanWarning, load_plan
from rig.profiles.plan_table import checks_table

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "profiles" / "plans" / "white-paper-2018.yaml"
DOC = ROOT / "docs" / "plan-profile.md"

# PROCEDURES.md's table: check id -> default `levels`
TABLE_LEVELS = {
    "C1": "once", "C2a": "once", "C2b": "one", "C2c": "one", "C3": "all", "C5": "all", "C8": "once",
    "C12": "all", "C21a": "once", "C21b": "once", "C22": "all", "B1": "all", "C4": "one", "C4f": "once",
    "C6": "one", "C7": "one", "C9": "one", "C10": "one", "C11": "once", "C13": "once", "C14": "once",
    "C15": "once", "C16": "one", "C17": "one", "C18": "one", "C19": "one", "C20": "one",
    "S1": "one", "S2": "once", "S3": "once",
}  # fmt: skip
# PROCEDURES.md's table: the checks whose `applies` includes a bare module (C21b: "module, and meters that ...")
TABLE_FOR_MODULES = {"C1", "C2a", "C2b", "C3", "C5", "C12", "C21b"}


@pytest.fixture(scope="module")
def plan() -> PlanProfile:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlanWarning)
        return load_plan(SHIPPED)


def write_plan(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def unset_fields(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of every field the YAML left to its default."""
    missing = []
    for name in type(model).model_fields:
        if name not in model.model_fields_set:
            missing.append(prefix + name)
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            missing += unset_fields(value, f"{prefix}{name}.")
        elif isinstance(value, dict | list):
            keyed = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in keyed:
                if isinstance(child, BaseModel):
                    missing += unset_fields(child, f"{prefix}{name}.{key}.")
    return missing


def undescribed_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every plan field, at any depth, that has no description."""
    missing = []
    for name, field in model.model_fields.items():
        if not field.description:
            missing.append(prefix + name)
        pending = [field.annotation]
        while pending:
            kind = pending.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                missing += undescribed_fields(kind, f"{prefix}{name}.")
            pending += typing.get_args(kind)
    return missing


# --- the shipped plan --------------------------------------------------------------------------------


def test_shipped_plan_loads_without_warnings(plan: PlanProfile) -> None:
    assert plan.name == "white-paper-2018"
    assert plan.levels == ["CE0", "CE1", "CE2"]
    assert plan.behaviour_level == "CE1"


def test_shipped_plan_writes_every_figure_out(plan: PlanProfile) -> None:
    assert unset_fields(plan) == []


def test_shipped_plan_equals_the_model_defaults(plan: PlanProfile) -> None:
    header = plan.model_dump(include={"name", "version", "description", "operator"})
    defaults = PlanProfile(**header)
    assert plan.model_dump() == defaults.model_dump()


def test_shipped_plan_carries_the_coverage_figures_of_table_4_4(plan: PlanProfile) -> None:
    windows, targets = plan.coverage.windows, plan.coverage.targets
    assert [getattr(windows, level).rsrp_min_dbm for level in plan.levels] == [-105, -115, -125]
    assert [getattr(windows, level).sinr_min_db for level in plan.levels] == [7, -3, -8]
    assert windows.CE0.rsrp_max_dbm is None and windows.CE1.rsrp_max_dbm == -105
    assert [(getattr(targets, level).rsrp_dbm, getattr(targets, level).sinr_db) for level in plan.levels] == [
        (-95, 10),
        (-110, 2),
        (-120, -5),
    ]
    assert plan.coverage.target_margin_db == 2
    assert (plan.coverage.no_service_rsrp_dbm, plan.coverage.no_service_sinr_db) == (-130, -12)
    assert plan.coverage.thermal_noise_dbm_per_15khz == -132.2
    assert plan.coverage.noise_figure_db == 7
    assert (plan.coverage.ecl1_rsrp_threshold_dbm, plan.coverage.ecl2_rsrp_threshold_dbm) == (-105, -115)
    assert (plan.coverage.go_live.rsrp_above_dbm, plan.coverage.go_live.sinr_above_db) == (-117.4, -3)


def test_shipped_plan_carries_the_installation_losses_of_table_4_5(plan: PlanProfile) -> None:
    presets = plan.installation_presets_db
    assert presets["basement"].loss_db == 32
    slab = presets["stone_slab_deep_submerged"]
    assert (slab.min_db, slab.max_db, slab.loss_db) == (16, 20, 20)
    assert presets["car_parked_over"].loss_db == 17.5
    assert presets["outer_wall"].loss_db == 0
    assert len(presets) == 9


def test_shipped_plan_carries_the_business_model(plan: PlanProfile) -> None:
    business = plan.business_model
    household = business.household
    assert household.freeze_period_s == 1800
    assert (household.report_window_start, household.report_window_end) == (time(0), time(5))
    assert (business.leak.freeze_period_s, business.leak.report_period_s) == (300, 3600)
    assert (business.large_meter.reports_per_day, business.large_meter.intensive_report_period_s) == (2, 7200)
    uplink, downlink = business.uplink, business.downlink
    assert (uplink.basic_report_below_bytes, uplink.enhanced_report_below_bytes) == (200, 300)
    assert (uplink.alarm_below_bytes, uplink.message_max_bytes) == (50, 512)
    assert (downlink.config_below_bytes, downlink.point_read_below_bytes) == (50, 40)
    assert downlink.valve_below_bytes == 40


def test_shipped_plan_carries_the_power_and_battery_figures(plan: PlanProfile) -> None:
    assert plan.checks.C3.reference_saving_uah == 270
    assert plan.checks.C3.inactivity_timer_s == 20
    assert plan.checks.C3.tail_max_s == 3
    assert plan.checks.C5.module_psm_max_ua == 5
    assert plan.checks.C5.meter_floor_max_ua == 20
    assert (plan.power_references.connected_avg_ma, plan.power_references.idle_avg_ma) == (50, 1)
    battery = plan.battery
    assert (battery.chemistry, battery.nominal_voltage_v, battery.capacity_ah) == ("Li-SOCl2", 3.6, 4.0)
    assert battery.usable_ah == pytest.approx(3.0)
    assert battery.self_discharge_fraction_per_year == 0.01
    assert battery.target_years == 7
    assert battery.judged_levels == ["CE0", "CE1"] and battery.ce2_min_years is None


def test_shipped_plan_carries_the_timing_figures(plan: PlanProfile) -> None:
    checks = plan.checks
    assert checks.C8.guard_min_s == 300
    assert checks.C7.retry_waits_s == [300, 3600] and checks.C7.reset_wait_s == 28800
    assert checks.C7.tolerance_fraction == 0.02 and checks.C7.extra_levels == ["CE2"]
    assert checks.C9.waits_s == [60, 180, 600]
    assert (checks.C9.tolerance_fraction, checks.C9.tolerance_s) == (0.10, 5)
    assert (checks.C21b.first_interval_s, checks.C21b.factor, checks.C21b.cap_s) == (600, 2, 86400)
    assert (checks.C6.skew_s, checks.C6.residual_max_s, checks.C6.days) == (300, 5, 3)
    assert (checks.C15.lockout_tries, checks.C15.lockout_s) == (5, 600)
    assert (checks.C13.operation_days, checks.C13.log_days_min) == (31, 30)
    assert checks.C18.response_max_s == 86400
    assert checks.C10.expected_order == ["AT+NRB", "AT+CFUN=0", "AT+NCSEARFCN"]


def test_shipped_plan_carries_the_stagger_and_success_figures(plan: PlanProfile) -> None:
    stagger = plan.checks.C4
    assert (stagger.t1, stagger.t3_s, stagger.modulus, stagger.n2_max_s) == (time(1), 120, 200, 60)
    assert (stagger.deadline, stagger.wake_allowance_s) == (time(8), 30)
    assert stagger.meter_numbers == [0, 1, 199, 200, 12345]
    assert stagger.deadline_margin_s(stagger.t1, stagger.t3_s) == 1260  # last attempt 07:39:00
    assert (plan.checks.C4f.fleet_size, plan.checks.C4f.peak_per_minute_per_cell_max) == (1_000_000, 30)
    assert (plan.checks.C22.success_min, plan.checks.C22.reports_per_level) == (0.99, 300)
    limits = [(limit.within_s, limit.fraction_min) for limit in plan.checks.C19.answer_limits]
    assert limits == [(86400, 0.999), (172800, 1.0)]
    assert (plan.checks.C19.writes, plan.checks.C19.daily_terminal_fraction_max) == (1000, 0.02)
    assert "V150R100C10B200SP1" in plan.checks.C1.firmware_allow_list


def test_every_plan_field_says_what_it_is() -> None:
    assert undescribed_fields(PlanProfile) == []


def test_every_check_of_the_procedures_table_has_its_default_levels(plan: PlanProfile) -> None:
    assert set(Checks.model_fields) == set(TABLE_LEVELS)
    assert {check_id: getattr(plan.checks, check_id).levels for check_id in TABLE_LEVELS} == TABLE_LEVELS
    assert all(getattr(plan.checks, check_id).enabled for check_id in TABLE_LEVELS)


def test_the_checklist_is_read_from_the_plans_check_models() -> None:
    assert list(ITEMS) == list(Checks.model_fields)
    for check, field in Checks.model_fields.items():
        item = ITEMS[check]
        assert (item.title, item.area, item.applies) == (field.annotation.title, field.annotation.area,
                                                         field.annotation.applies)
    assert {check for check, item in ITEMS.items() if "module" in item.applies} == TABLE_FOR_MODULES


def test_the_plan_page_holds_the_generated_checks_table() -> None:
    assert checks_table() in DOC.read_text(), "regenerate it: python -m rig.profiles.plan_table"


def test_the_plan_page_describes_every_key_of_every_check() -> None:
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in DOC.read_text().split("Each check's own keys")[1]
            .splitlines() if line.startswith("| ")}
    for check, field in Checks.model_fields.items():
        own = set(field.annotation.model_fields) - set(Check.model_fields) - {"levels"}
        assert {name for name in own if f"`{name}`" not in rows[check]} == set(), check


def test_every_key_measurement_is_one_a_suite_measures(plan: PlanProfile) -> None:
    """Against the names the suites and their analyses write (string literals, an f-string's fields read
    as `*`): a renamed measurement is caught here, not in a certificate's empty cell."""
    paths = [*(ROOT / "suites").glob("test_*.py"), *(ROOT / "rig" / "analysis").glob("*.py")]
    source = "\n".join(path.read_text() for path in paths)
    literals = {re.sub(r"\{[^}]*\}", "*", text) for text in re.findall(r'"([^"\s]+)"', source)}
    measured = {name for name in literals if re.fullmatch(r"[\w*]+", name) and re.search(r"[a-z]{3}", name)}
    for check in Checks.model_fields:
        for key in getattr(plan.checks, check).key_measurements:
            assert any(fnmatchcase(name, key) or fnmatchcase(key, name) for name in measured), f"{check}: {key}"


def test_shipped_plan_starts_at_midnight_in_shanghai(plan: PlanProfile) -> None:
    assert plan.time.start_at.isoformat() == "2026-01-05T00:00:00+08:00"


# --- user plans ----------------------------------------------------------------------------------------


def test_user_plan_overrides_only_what_it_writes(tmp_path: Path) -> None:
    path = write_plan(
        tmp_path,
        """
        name: hardware-lab
        levels: [CE1]
        checks:
          C22: {reports_per_level: 30, reports_min: 30}
          C3: {tail_max_s: 2.5, severity: blocker}
          C12: {levels: one}
          C19: {enabled: false}
        coverage:
          targets:
            CE1: {rsrp_dbm: -111, sinr_db: 0}
        installation_presets_db:
          my_vault: {min_db: 25, max_db: 27}
        """,
    )
    plan = load_plan(path)
    assert plan.levels == ["CE1"] and plan.behaviour_level == "CE1"
    assert plan.checks.C22.reports_per_level == 30
    assert plan.checks.C22.success_min == 0.99
    assert (plan.checks.C3.tail_max_s, plan.checks.C3.severity) == (2.5, "blocker")
    assert plan.checks.C3.inactivity_timer_s == 20
    assert plan.checks.C12.levels == "one"
    assert plan.checks.C19.enabled is False
    assert plan.coverage.targets.CE1.rsrp_dbm == -111
    assert plan.coverage.targets.CE0.rsrp_dbm == -95
    assert list(plan.installation_presets_db) == ["my_vault"]  # a table is replaced whole
    assert plan.installation_presets_db["my_vault"].loss_db == 27


def test_user_plan_may_give_the_start_with_the_zones_offset(tmp_path: Path) -> None:
    path = write_plan(tmp_path, "name: p\ntime: {start: 2026-03-01T06:00:00+08:00}\n")
    assert load_plan(path).time.start_at.isoformat() == "2026-03-01T06:00:00+08:00"


def test_defaults_are_not_shared_between_plans() -> None:
    first, second = PlanProfile(name="a"), PlanProfile(name="b")
    first.installation_presets_db["basement"].max_db = 40
    first.checks.C9.waits_s.append(1200)
    assert second.installation_presets_db["basement"].max_db == 32
    assert second.checks.C9.waits_s == [60, 180, 600]


# --- refusals ------------------------------------------------------------------------------------------

REFUSALS = {
    "wrong-type": ("checks:\n  C5: {module_psm_max_ua: lots}\n", ["checks.C5.module_psm_max_ua", "number"]),
    "misspelt-key": ("checks:\n  C3:\n    tail_max_sec: 3\n", ["checks.C3.tail_max_sec", "unknown key"]),
    "misspelt-check": ("checks:\n  C3a: {}\n", ["checks.C3a", "unknown key"]),
    "missing-nested": (
        "installation_presets_db:\n  vault: {max_db: 3}\n",
        ["installation_presets_db.vault.min_db", "required"],
    ),
    "negative-wait": ("checks:\n  C9: {waits_s: [60, -180]}\n", ["checks.C9.waits_s[1]", "greater than 0"]),
    "fraction-above-one": ("checks:\n  C22:\n    success_min: 99\n", ["checks.C22.success_min", "1"]),
    "window-min-above-max": (
        "coverage:\n  windows:\n    CE1: {rsrp_min_dbm: -100, rsrp_max_dbm: -105, sinr_min_db: -3, sinr_max_db: 7}\n",
        ["coverage.windows.CE1", "rsrp_min_dbm -100.0 must be below rsrp_max_dbm -105.0"],
    ),
    "target-at-window-edge": (
        "coverage:\n  targets:\n    CE1: {rsrp_dbm: -106, sinr_db: 2}\n",
        ["coverage", "targets.CE1.rsrp_dbm -106.0", "target_margin_db"],
    ),
    "behaviour-level-not-run": (
        "levels: [CE0, CE2]\n",
        ["behaviour_level", "CE1 is not one of the plan's levels"],
    ),
    "unknown-level": ("levels: [CE0, CE3]\n", ["levels[1]", "CE0"]),
    "level-free-check-at-all-levels": ("checks:\n  C1:\n    levels: all\n", ["checks.C1.levels", "'once'"]),
    "bad-severity": ("checks:\n  C3:\n    severity: urgent\n", ["checks.C3.severity", "blocker"]),
    "unquoted-clock-time": ("checks:\n  C4:\n    t1: 10:30\n", ["checks.C4.t1", "quoted", "630"]),
    "bad-clock-time": ("checks:\n  C4:\n    deadline: '25:00'\n", ["checks.C4.deadline", "HH:MM"]),
    "unknown-zone": ("time:\n  timezone: Mars/Olympus\n", ["time.timezone", "unknown time zone"]),
    "offset-not-the-zones": ("time:\n  start: 2026-01-05T00:00:00+00:00\n", ["time", "Asia/Shanghai"]),
    "tail-not-below-timer": ("checks:\n  C3:\n    tail_max_s: 20\n", ["checks.C3", "inactivity_timer_s"]),
    "alarm-both-ways": (
        "checks:\n  C17:\n    deferred_alarms: [magnetic]\n",
        ["checks.C17", "both immediate and deferred"],
    ),
}


@pytest.mark.parametrize(("body", "expected"), REFUSALS.values(), ids=REFUSALS.keys())
def test_malformed_plan_is_refused_naming_file_and_field(tmp_path: Path, body: str, expected: list) -> None:
    path = write_plan(tmp_path, "name: broken\n" + body)
    with pytest.raises(ProfileError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_plan_without_a_name_is_refused(tmp_path: Path) -> None:
    path = write_plan(tmp_path, "version: '2'\n")
    with pytest.raises(ProfileError, match=r"field 'name': required field is missing") as caught:
        load_plan(path)
    assert str(path) in str(caught.value)


def test_plan_with_bad_yaml_is_refused_with_the_line(tmp_path: Path) -> None:
    path = write_plan(tmp_path, "name: broken\nchecks:\n  C3: {tail_max_s: 3\n")
    with pytest.raises(ProfileError, match="is not valid YAML: line") as caught:
        load_plan(path)
    assert str(path) in str(caught.value)


def test_missing_plan_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="file not found"):
        load_plan(tmp_path / "nowhere.yaml")


# --- warnings ------------------------------------------------------------------------------------------


def test_stagger_that_misses_the_0800_deadline_warns(tmp_path: Path) -> None:
    path = write_plan(tmp_path, "name: late\nchecks:\n  C4: {t1: '04:00', t3_s: 120}\n")
    # 04:00 + 199 x 120 s + 60 s = 10:39:00
    late = r"checks\.C4\.t1 04:00 .* = 10:39:00, 9540 s after the 08:00"
    with pytest.warns(PlanWarning, match=late) as warned:
        plan = load_plan(path)
    assert plan.checks.C4.t1 == time(4)
    assert str(path) in str(warned[0].message)


def test_changed_stagger_that_misses_the_deadline_warns_too(tmp_path: Path) -> None:
    path = write_plan(tmp_path, "name: late\nchecks:\n  C4: {changed_t1: '03:00', changed_t3_s: 150}\n")
    with pytest.warns(PlanWarning, match=r"checks\.C4\.changed_t1 03:00"):
        load_plan(path)


def test_stagger_after_midnight_is_judged_against_the_next_deadline(tmp_path: Path) -> None:
    path = write_plan(tmp_path, "name: evening\nchecks:\n  C4: {t1: '22:00'}\n")  # ends 04:39:00 next day
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlanWarning)
        assert load_plan(path).checks.C4.t1 == time(22)


def test_success_minimum_above_the_reports_run_warns(tmp_path: Path) -> None:
    path = write_plan(tmp_path, "name: short\nchecks:\n  C22: {reports_per_level: 30}\n")
    with pytest.warns(PlanWarning, match="every C22 cell will be inconclusive"):
        load_plan(path)
