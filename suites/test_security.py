"""S1-S3: the seed's threat table (3.1.4) probed: a fake platform's commands and its flood, a replayed near-end
session, and personal data in the reports.

- S1: after the first report at the behaviour level, a host that is not the platform (the rig's spoofer,
  same protocol, another address) sends one of each of the plan's commands (valve, configuration write,
  point read). None may be obeyed: no answer with `ok` at the platform, no valve state or setting changed
  in a later report. Then two windows of the plan's flood length on the supply's data log, each opened by a
  report asked for: a quiet one, and one with a spoofed downlink at the report's RRC release (the module's
  `+CSCON:0` on the AT monitor, when it is reachable for paging) and then one every flood interval. The
  flood window may cost no more than the plan's charge over the quiet one: the meter does not stay awake
  for a spoofer (the reference takes one page before its PSM, and the network holds the rest).
  Where the device profile declares the platform's downlink authentication (`platform_auth`), the same
  commands then come from the platform itself, first unsigned, then with a wrong MAC, each batch delivered
  at a report asked for and looked for in the next: none may be obeyed either. Where it declares none, a
  note says the check judged the source only.
- S2: a good session on the near-end port (login, a read, a setting changed, logout) is captured byte for
  byte as the rig sent it; the setting is restored; then the capture is replayed line by line on the
  port. No replayed command may be answered `OK`, the setting must not change again, and the meter's log
  must hold the refused login. Judged where the plan says so, else recorded as a finding.
- S3: every report of the campaign decoded (it runs last: each check's meter session adds its reports to the
  session's census when it ends), its own (the first, then some asked for) included; no field beyond the
  device profile's `report_fields`. Run alone, it judges its own reports.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import allure
import pytest

from fixtures.checks import Recorder, report_field_census
from fixtures.levels import first_report_at_level, power_on_until_first_report
from fixtures.verdicts import inconclusive
from rig.analysis.energy import EnergyTally
from rig.analysis.meter_log import entry_line
from rig.analysis.report_fields import ReportFieldCensus
from rig.bench import Bench
from rig.codec.downlink_auth import Signing
from rig.coverage import CoverageSetting
from rig.maintenance import MaintenanceRefused, load_maintenance
from rig.meter_session import MeterSession, reports_of
from rig.monitor import MODULE
from rig.platform.coap import Peer
from rig.platform.spoofer import Spoofed, Spoofer
from rig.ports import SerialLinePort, StampedLine
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile

LOG_PERIOD_S = 1.0
RELEASE_WITHIN_S = 120.0  # the report's connection ends (release assistance, or the network's inactivity timer)
FLOOD_COMMAND = {"type": "point_read"}
SPOOFED_FREEZE_INTERVALS_S = (3600, 1800)  # one differs from what the meter reports
AFTER_REPORT_S = 600.0  # S2: the report's exchange is over, the MCU free
REPLAY_KEY = "pressure_high_kpa"  # a setting no schedule depends on (C15's probe key)
REPLAY_STEP = 70
UNSEALED: dict[Signing, str] = {"none": "unsigned", "wrong": "wrongly_signed"}  # S1, with platform_auth
HANDSHAKE_WORDS = ("CHALLENGE", "LOGIN")
REFUSALS = ("login_refused",)


def internet_endpoint(bench: Bench) -> Peer | None:
    """Where another internet host reaches the device: the twin's `internet` endpoint; None on hardware."""
    address = bench.endpoints.get("udp", {}).get("internet")
    if address is None:
        return None
    host, _, port = address.rpartition(":")
    return host, int(port)


# ---- S1 -------------------------------------------------------------------------------------------------


def spoofed_command(kind: str, report: dict) -> dict:
    """One platform command of `kind` that would change what `report` shows."""
    if kind == "valve":
        return {"type": "valve", "action": "open" if report.get("valve") == "closed" else "close"}
    if kind == "config_write":
        value = next(v for v in SPOOFED_FREEZE_INTERVALS_S if v != report.get("freeze_interval_s"))
        return {"type": "config_write", "key": "freeze_interval_s", "value": value}
    return {"type": "point_read"}


def spoofed_obeyed(meter: MeterSession, spoofed: list[Spoofed], since: int) -> dict[str, str]:
    """Each spoofed command the meter obeyed, with the evidence: its answer at the platform, or its effect in
    a report after it was sent."""
    obeyed: dict[str, str] = {}
    for uplink in meter.platform.uplinks[since:]:
        message = uplink.message or {}
        for result in message.get("results", []) if message.get("type") == "response" else []:
            command = next((s for s in spoofed if s.command_id == result.get("command_id")), None)
            if command is not None and result.get("status") == "ok":
                obeyed[command.message["type"]] = f"answered ok at {uplink.time_s:.0f} s"
    for command in spoofed:
        kind, after = command.message["type"], [r for r in reports_of(meter, since) if r.time_s > command.time_s]
        if kind == "valve":
            wanted = "closed" if command.message["action"] == "close" else "open"
            seen = next((r for r in after if r.message.get("valve") == wanted), None)
        elif kind == "config_write":
            seen = next((r for r in after if r.message.get("freeze_interval_s") == command.message["value"]), None)
        else:
            seen = None
        if seen is not None:
            obeyed.setdefault(kind, f"report at {seen.time_s:.0f} s shows it")
    return obeyed


def unsealed_obeyed(meter: MeterSession, kinds: list[str], signing: Signing, within_s: float
                    ) -> tuple[list[Spoofed], dict[str, str]]:
    """The plan's commands queued at the platform unsigned or wrongly signed, delivered at a report asked for,
    looked for in the next one; the commands and those obeyed, with the evidence."""
    since = len(meter.platform.uplinks)
    latest = reports_of(meter)[-1].message
    tickets = [meter.platform.queue_downlink(meter.device.identity.imei, spoofed_command(kind, latest), signing)
               for kind in kinds]
    meter.report_now(within_s)
    meter.report_now(within_s)
    commands = [Spoofed(t.queued_at, t.message, t.command_id) for t in tickets]
    return commands, spoofed_obeyed(meter, commands, since)


@dataclass
class Window:
    """One data-log window opened by a report: its charge and the spoofed downlinks sent in it."""

    charge_uah: float = math.nan
    spoofed: int = 0
    notes: list[str] = field(default_factory=list)


def report_window(meter: MeterSession, plan: PlanProfile, spoofer: Spoofer | None) -> Window:
    """A report asked for, then the supply logged for the flood's length from its reception; with a spoofer,
    a downlink at the report's release and then one every flood interval."""
    s1, clock, supply, window = plan.checks.S1, meter.bench.clock, meter.bench.supply, Window()
    mark = meter.monitor.mark() if meter.monitor else 0
    report = meter.report_now(s1.report_within_s)
    if report is None:
        window.notes.append(f"no report within {s1.report_within_s:g} s")
        return window
    started_s = supply.start_data_log(LOG_PERIOD_S, s1.flood_s)
    if meter.monitor is not None:
        released = meter.monitor.wait_for(r"^\+CSCON:0", RELEASE_WITHIN_S, sender=MODULE, mark=mark)
        window.notes.append(f"released {released.time_s - started_s:.1f} s after the report" if released
                            else f"no release seen within {RELEASE_WITHIN_S:g} s")
    tally = EnergyTally()
    chunk_periods = max(int(round(s1.flood_interval_s / LOG_PERIOD_S)), 1)
    if spoofer is not None:
        spoofer.send(FLOOD_COMMAND)
        window.spoofed += 1
    for chunk in supply.read_data_log(started_s, LOG_PERIOD_S, s1.flood_s, chunk_periods):
        tally.add(chunk)
        if spoofer is not None and clock.now() < started_s + s1.flood_s:
            spoofer.send(FLOOD_COMMAND)
            window.spoofed += 1
    window.charge_uah = tally.charge_uah
    return window


@pytest.mark.check("S1")
@pytest.mark.needs("attenuator", "power_analyser")
def test_s1_spoofed_platform_commands_are_ignored_and_their_flood_does_not_keep_the_meter_awake(
        meter: MeterSession, bench: Bench, coverage: CoverageSetting, plan: PlanProfile, device_profile: DeviceProfile,
        measure: Recorder) -> None:
    s1 = plan.checks.S1
    target = internet_endpoint(bench)
    if target is None:
        inconclusive("this bench gives the rig no other internet host's route to the device (the twin's "
                     "`internet` endpoint): no spoofed downlink can be sent")
    first = first_report_at_level(meter, measure, coverage, plan, "no spoofed command could be judged")
    since = len(meter.platform.uplinks)
    with Spoofer(meter.codec, bench.clock, target, seed=bench.seed or 0) as spoofer:
        commands = [spoofer.send(spoofed_command(kind, first.message)) for kind in s1.commands]
        quiet = report_window(meter, plan, None)
        flood = report_window(meter, plan, spoofer)
        obeyed = spoofed_obeyed(meter, commands, since)
        allure.attach("\n".join(f"{s.time_s:.3f} {s.message}" for s in spoofer.sent), "spoofed downlinks",
                      allure.attachment_type.TEXT)
        measure("spoofer_receptions", len(spoofer.received), "", note="datagrams the device sent the spoofer")
    measure("spoofed_commands_obeyed", len(obeyed), "", high=0,
            note="; ".join(f"{kind}: {why}" for kind, why in obeyed.items())
            or f"none of {', '.join(s.message['type'] for s in commands)} obeyed")
    if device_profile.platform_auth is None:
        measure("platform_auth", "none declared",
                note="the device profile declares no downlink authentication: the source alone was judged")
    for signing, name in UNSEALED.items() if device_profile.platform_auth is not None else ():
        sent, obeyed = unsealed_obeyed(meter, list(s1.commands), signing, s1.report_within_s)
        measure(f"{name}_platform_commands_obeyed", len(obeyed), "", high=0,
                note="; ".join(f"{kind}: {why}" for kind, why in obeyed.items())
                or f"none of {', '.join(c.message['type'] for c in sent)} from the platform's address obeyed")
    measure("quiet_window_charge_uah", round(quiet.charge_uah, 1), "uAh",
            note=f"{s1.flood_s:g} s from a report, nothing spoofed; " + "; ".join(quiet.notes))
    measure("flood_window_charge_uah", round(flood.charge_uah, 1), "uAh",
            note=f"{flood.spoofed} spoofed downlinks, one every {s1.flood_interval_s:g} s; " + "; ".join(flood.notes))
    measure("flood_extra_charge_uah", round(flood.charge_uah - quiet.charge_uah, 1), "uAh",
            high=s1.flood_extra_charge_uah_max, note="the flood window's charge over the quiet window's")
    measure.judge()


# ---- S2 -------------------------------------------------------------------------------------------------


class RecordingPort:
    """A line port that keeps every line the rig writes, exactly as written: the capture S2 replays."""

    def __init__(self, port: SerialLinePort):
        self.port = port
        self.sent: list[tuple[str, str]] = []

    @property
    def lines(self) -> deque[StampedLine]:
        return self.port.lines

    def write_line(self, text: str, terminator: str = "\r\n") -> None:
        self.sent.append((text, terminator))
        self.port.write_line(text, terminator)


def replay(port: SerialLinePort, capture: list[tuple[str, str]], clock, timeout_s: float) -> list[str]:
    """Each captured line written again, in order, each after the answer to the one before; the answers'
    first lines ('' for none)."""
    answers = []
    for text, terminator in capture:
        port.lines.clear()
        port.write_line(text, terminator)
        clock.wait_until(lambda: bool(port.lines), timeout_s)
        answers.append(port.lines[0].text if port.lines else "")
    clock.sleep(1.0)  # the last answer's trailing lines
    port.lines.clear()
    return answers


def is_handshake(line: str) -> bool:
    return line.split(" ", 1)[0].upper() in HANDSHAKE_WORDS


@pytest.mark.check("S2")
@pytest.mark.needs("maintenance")
def test_s2_a_near_end_session_replayed_from_a_capture_is_refused_and_logged(
        meter: MeterSession, bench: Bench, device_profile: DeviceProfile, plan: PlanProfile, measure: Recorder) -> None:
    s2, clock, settings = plan.checks.S2, bench.clock, device_profile.maintenance
    password = settings.password.get_secret_value()
    power_on_until_first_report(meter, measure, "the near-end port could not be probed")
    clock.sleep(AFTER_REPORT_S)
    port = SerialLinePort("maintenance", bench.resolve_port(settings.port), clock, settings.baudrate)
    protocol = load_maintenance(settings.protocol)
    try:
        recording = RecordingPort(port)
        captured = protocol(recording, clock, secrets=[settings.password])
        captured.login(password)
        captured.meter_number()
        original = captured.config(REPLAY_KEY).get(REPLAY_KEY)
        if not isinstance(original, int | float):
            inconclusive(f"no numeric {REPLAY_KEY} to change in the captured session")
        changed = original + REPLAY_STEP
        captured.set_config(REPLAY_KEY, changed)
        captured.logout()
        capture = list(recording.sent)
        session = protocol(port, clock, secrets=[settings.password])
        session.login(password)
        session.set_config(REPLAY_KEY, original)
        replay_meter_s = session.clock()
        session.logout()
        answers = replay(port, capture, clock, getattr(session, "timeout_s", 10.0))
        session.login(password)
        after = session.config(REPLAY_KEY).get(REPLAY_KEY)
        entries = [e for e in session.logs(days=1.0) if e.module == device_profile.logs.maintenance_module
                   and e.event in REFUSALS and e.time_s >= replay_meter_s - s2.log_match_s]
        session.set_config(REPLAY_KEY, original)
        session.logout()
    except MaintenanceRefused as refusal:
        inconclusive(f"a good session on the near-end port was refused ({refusal}): nothing to capture")
    finally:
        port.close()
    shown = [f"> {'LOGIN ****' if text.upper().startswith('LOGIN') else text}  < {answer}"
             for (text, _), answer in zip(capture, answers, strict=True)]
    allure.attach("\n".join(shown), "replayed session (capture, meter's answers)", allure.attachment_type.TEXT)
    login_accepted = any(is_handshake(text) and text.upper().startswith("LOGIN") and answer.startswith("OK")
                         for (text, _), answer in zip(capture, answers, strict=True))
    accepted = [text for (text, _), answer in zip(capture, answers, strict=True)
                if not is_handshake(text) and answer.startswith("OK")]
    judged = s2.judged
    finding = "" if judged else "finding (the plan does not judge replay protection): "
    measure("replayed_login_accepted", int(login_accepted), "", high=0 if judged else None,
            note=finding + ("the captured login opened a session" if login_accepted else "refused"))
    measure("replayed_commands_accepted", len(accepted), "", high=0 if judged else None,
            note=finding + ("; ".join(accepted) or f"none of {len(capture)} lines"))
    measure("replayed_setting_applied", int(after == changed), "", high=0 if judged else None,
            note=f"{REPLAY_KEY}: {original} restored before the replay, {after} after it")
    measure("replay_refusal_logged", len(entries), "", low=1 if judged else None,
            note="; ".join(entry_line(e) for e in entries) or "no refusal in the meter's log")
    measure.judge()


# ---- S3 -------------------------------------------------------------------------------------------------


@pytest.mark.check("S3")
def test_s3_reports_carry_only_the_fields_the_device_profile_declares(
        request: pytest.FixtureRequest, meter: MeterSession, device_profile: DeviceProfile, plan: PlanProfile,
        measure: Recorder) -> None:
    s3 = plan.checks.S3
    power_on_until_first_report(meter, measure, "no report could be read")
    for _ in range(s3.reports - 1):
        meter.report_now(s3.report_within_s)
    census = ReportFieldCensus()
    census.add("S3", (report.message for report in reports_of(meter)))
    campaign = report_field_census(request.config)
    declared = set(device_profile.report_fields) | {"type"}
    undeclared = {**census.undeclared(declared), **campaign.undeclared(declared)}
    unread = f"; reports of {', '.join(campaign.unread)} were past what the platform keeps" if campaign.unread else ""
    measure("reports_decoded", census.reports + campaign.reports, "", low=1,
            note=f"{census.reports} of {s3.reports} asked for here, {campaign.reports} from "
                 f"{len(campaign.checks)} other checks of this session{unread}")
    measure("undeclared_report_fields", len(undeclared), "", high=0,
            note=", ".join(f"{name} (first in {check})" for name, check in undeclared.items())
            or f"every field declared ({len(declared) - 1} in the device profile)")
    measure.judge()
