"""C15: the near-end maintenance tool reads the meter number, base reading, report period and configuration,
sets and queries module parameters, and all of it is behind a password with a lock-out.

Through a session of the rig's own on the near-end port (never the meter fixture's, which logs in on
first use), after the meter's first report: every command sent before a login must be refused and
change nothing; a wrong password is refused; the right one opens the session, in which the reads agree
with the meter's report, a setting and a module parameter are set, read back and restored, and the
meter's log holds the refusal of the wrong password (and no password at all). Then the plan's number
of wrong passwords must lock the port: the right password is refused at once and still just before the
plan's lock-out time, and accepted just after it. Passwords are masked in every attachment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import power_on_until_first_report
from rig.analysis.meter_log import ClockMap, entries_between, entry_line, masked, transcript
from rig.bench import Bench
from rig.clock import Clock
from rig.maintenance import MaintenanceDriver, MaintenanceRefused, load_maintenance
from rig.meter_session import MeterSession
from rig.ports import SerialLinePort
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile

AFTER_REPORT_S = 600.0  # the report's exchange is over: the MCU is free for module commands
SEPARATION_S = 180.0  # between the steps whose log entries are told apart by their time
CONFIG_PROBE_KEY = "pressure_high_kpa"  # a setting of table 4-2 no report schedule depends on
CONFIG_BEFORE_LOGIN = 987  # written before the login: must not be there afterwards
CONFIG_STEP = 50
RESELECTION_QUERY = "AT+NCONFIG?"
RESELECTION_KEY = "CELL_RESELECTION"


def wrong_password(right: str, number: int) -> str:
    candidate = f"rig-wrong-{number}"
    return candidate if candidate != right else candidate + "x"


@contextmanager
def own_session(bench: Bench, device: DeviceProfile) -> Iterator[MaintenanceDriver]:
    """A session of the rig's own on the near-end port, not logged in."""
    settings = device.maintenance
    port = SerialLinePort("maintenance", bench.resolve_port(settings.port), bench.clock, settings.baudrate)
    try:
        yield load_maintenance(settings.protocol)(port, bench.clock, secrets=[settings.password])
    finally:
        port.close()


def refused(attempt: Callable[[], object]) -> str | None:
    """The refusal's text (code and reason) when the meter refuses, else None (it answered)."""
    try:
        attempt()
    except MaintenanceRefused as refusal:
        return f"ERR {refusal.code} {refusal.text}"
    return None


def probe_before_login(driver: MaintenanceDriver, measure: Recorder) -> None:
    """Every kind of command, reads and sets, on a session that never logged in."""
    probes: dict[str, Callable[[], object]] = {
        "GET NUMBER": driver.meter_number, "GET READING": driver.reading, "GET PERIOD": driver.report_period_s,
        "GET CONFIG": driver.config, "SET CONFIG": lambda: driver.set_config(CONFIG_PROBE_KEY, CONFIG_BEFORE_LOGIN),
        "GET CLOCK": driver.clock, "VERSION": driver.versions, "LOG GET": driver.logs,
        "MODULE AT+CGMR": lambda: driver.module("AT+CGMR"),
    }
    answers = {name: refused(attempt) for name, attempt in probes.items()}
    answered = [name for name, refusal in answers.items() if refusal is None]
    measure("commands_answered_before_login", len(answered), "", high=0,
            note=f"of {len(probes)}: " + (", ".join(answered) if answered else "every one refused"))


def judge_reads(driver: MaintenanceDriver, report: dict, measure: Recorder) -> None:
    """Number, base reading, period and configuration read back, checked against the meter's own report."""
    number = driver.meter_number()
    measure("meter_number_as_reported", int(number == report["meter_number"]), "", low=1,
            note=f"maintenance {number}, report {report['meter_number']}")
    reading = driver.reading()
    measure("base_reading_l", reading.cumulative_l, "L", low=float(report["daily_cumulative_l"]),
            note=f"reverse {reading.reverse_l} L; the report's day freeze {report['daily_cumulative_l']} L")
    period = driver.report_period_s()
    measure("report_period_as_reported", int(period == report["report_period_s"]), "", low=1,
            note=f"maintenance {period:g} s, report {report['report_period_s']} s")
    config = driver.config()
    measure("config_settings_read", len(config), "", low=1, note=" ".join(f"{k}={v}" for k, v in config.items()))
    allure.attach("\n".join(f"{key} = {value}" for key, value in config.items()), "configuration read back",
                  allure.attachment_type.TEXT)
    original = config.get(CONFIG_PROBE_KEY)
    measure("set_before_login_applied", int(original == CONFIG_BEFORE_LOGIN), "", high=0,
            note=f"{CONFIG_PROBE_KEY} = {original} after the login")
    if not isinstance(original, int | float):
        measure("config_set_read_back", "not tested", low=1, note=f"no numeric {CONFIG_PROBE_KEY} to set")
        return
    changed = original + CONFIG_STEP
    driver.set_config(CONFIG_PROBE_KEY, changed)
    read_back = driver.config(CONFIG_PROBE_KEY).get(CONFIG_PROBE_KEY)
    driver.set_config(CONFIG_PROBE_KEY, original)
    restored = driver.config(CONFIG_PROBE_KEY).get(CONFIG_PROBE_KEY)
    measure("config_set_read_back", int(read_back == changed and restored == original), "", low=1,
            note=f"{CONFIG_PROBE_KEY}: set {changed}, read {read_back}; restored {original}, read {restored}")


def reselection_setting(lines: list[str]) -> str | None:
    prefix = f"+NCONFIG:{RESELECTION_KEY},"
    return next((line.removeprefix(prefix) for line in lines if line.startswith(prefix)), None)


def judge_module_parameters(driver: MaintenanceDriver, measure: Recorder) -> None:
    """The module's firmware queried, and its reselection switch set, queried and restored, through the MCU."""
    cgmr = driver.module("AT+CGMR")
    measure("module_query_answered", int(bool(cgmr) and cgmr[-1] == "OK"), "", low=1,
            note="AT+CGMR: " + " / ".join(cgmr[:2]))
    original = reselection_setting(driver.module(RESELECTION_QUERY))
    if original not in ("TRUE", "FALSE"):
        measure("module_parameter_set_read_back", "not tested", low=1,
                note=f"{RESELECTION_QUERY} gave no {RESELECTION_KEY} setting")
        return
    flipped = "FALSE" if original == "TRUE" else "TRUE"
    set_reply = driver.module(f"AT+NCONFIG={RESELECTION_KEY},{flipped}")
    read_back = reselection_setting(driver.module(RESELECTION_QUERY))
    driver.module(f"AT+NCONFIG={RESELECTION_KEY},{original}")
    restored = reselection_setting(driver.module(RESELECTION_QUERY))
    measure("module_parameter_set_read_back", int(set_reply[-1:] == ["OK"] and read_back == flipped
                                                  and restored == original), "", low=1,
            note=f"{RESELECTION_KEY}: set {flipped}, read {read_back}; restored {original}, read {restored}")


def judge_lockout(driver: MaintenanceDriver, clock: Clock, device: DeviceProfile, plan: PlanProfile,
                  measure: Recorder) -> None:
    """The plan's number of wrong passwords, then the right one at once, just before and just after the lock-out."""
    c15 = plan.checks.C15
    right = device.maintenance.password.get_secret_value()
    tries = [refused(lambda n=n: driver.login(wrong_password(right, 100 + n))) for n in range(c15.lockout_tries)]
    measure("wrong_tries_refused", sum(t is not None for t in tries), "", low=c15.lockout_tries,
            note="; ".join(t or "accepted" for t in tries))
    locked_s = clock.now()
    probes: list[tuple[float, str | None]] = []  # (s after the last wrong try, refusal or None: accepted)
    for offset_s in (0.0, c15.lockout_s - c15.lockout_tolerance_s, c15.lockout_s + c15.lockout_tolerance_s):
        clock.sleep(max(locked_s + offset_s - clock.now(), 0.0))
        probes.append((clock.now() - locked_s, refused(lambda: driver.login(right))))
        if probes[-1][1] is None:
            break
    held = [at_s for at_s, refusal in probes if refusal is not None]
    released = [at_s for at_s, refusal in probes if refusal is None]
    summary = "; ".join(f"{at_s:.0f} s: {refusal or 'accepted'}" for at_s, refusal in probes)
    measure("locked_out_after_tries", int(bool(held) and held[0] == probes[0][0]), "", low=1,
            note="the right password refused right after the last wrong one")
    measure("lockout_held_s", round(max(held, default=0.0), 1), "s", low=c15.lockout_s - c15.lockout_tolerance_s,
            note=f"the last probe with the right password still refused ({summary})")
    measure("lockout_released_by_s", round(released[0], 1) if released else "never", "s",
            high=c15.lockout_s + c15.lockout_tolerance_s, note="the first probe with the right password accepted")


@pytest.mark.check("C15")
@pytest.mark.needs("maintenance")
def test_c15_maintenance_reads_and_sets_behind_a_password_with_a_lockout(
        meter: MeterSession, bench: Bench, device_profile: DeviceProfile, plan: PlanProfile,
        measure: Recorder) -> None:
    clock = bench.clock
    right = device_profile.maintenance.password
    report = power_on_until_first_report(meter, measure, "it never ran normally before maintenance")
    clock.sleep(AFTER_REPORT_S)
    with own_session(bench, device_profile) as driver:
        try:
            probe_before_login(driver, measure)
            clock.sleep(SEPARATION_S)
            wrong_s = clock.now()
            wrong = wrong_password(right.get_secret_value(), 1)
            wrong_refusal = refused(lambda: driver.login(wrong))
            measure("wrong_password_refused", int(wrong_refusal is not None), "", low=1,
                    note=wrong_refusal or "the wrong password opened the session")
            clock.sleep(SEPARATION_S)
            driver.login(right)
            clock_map = ClockMap(((clock.now(), driver.clock()),))
            judge_reads(driver, report.message, measure)
            judge_module_parameters(driver, measure)
            log = driver.logs()
            wrong_meter_s = clock_map.meter_time(wrong_s)
            match_s = plan.checks.C15.log_match_s
            logged = entries_between(log, wrong_meter_s - match_s, wrong_meter_s + match_s,
                                     device_profile.logs.maintenance_module)
            if wrong_refusal is None:
                measure("wrong_password_logged", "no refusal to log", low=1, note="the wrong password was accepted")
            else:
                measure("wrong_password_logged", len(logged), "", low=1,
                        note="; ".join(entry_line(e) for e in logged) or "no maintenance entry at the wrong password")
            passwords = [right.get_secret_value(), wrong]
            leaked = [e for e in log if any(p in entry_line(e) for p in passwords)]
            measure("passwords_in_log", len(leaked), "", high=0, note=f"of {len(log)} entries")
            allure.attach(masked("\n".join(entry_line(e) for e in log), passwords), "meter log (maintenance)",
                          allure.attachment_type.TEXT)
            driver.logout()
            measure("answered_after_logout", int(refused(driver.meter_number) is None), "", high=0)
            judge_lockout(driver, clock, device_profile, plan, measure)
        finally:
            allure.attach(masked(transcript(driver), [right.get_secret_value()]), "maintenance transcript",
                          allure.attachment_type.TEXT)
    measure.judge()
