"""The plan's security checks S1-S3 (PROCEDURES.md "Security checks", seed 3.1.4's threat table).

Registered in `rig.profiles.plan.Checks` like every check; imported from there (it builds on plan.py's
check models), never on its own first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rig.profiles.plan import SEVERITY, BehaviourCheck, OnceCheck, Seconds, Severity, key_measurements


class S1SpoofedDownlinks(BehaviourCheck):
    """S1: downlinks from a source that is not the platform are ignored, and a flood of them does not keep
    the meter awake (seed 3.1.4: a fake platform sending frequent messages to drain the battery)."""

    title = "spoofed platform commands"
    area = "security"
    key_measurements: list[str] = key_measurements("spoofed_commands_obeyed", "flood_extra_charge_uah")

    severity: Severity = Field("critical", description=SEVERITY)
    commands: list[Literal["valve", "config_write", "point_read"]] = Field(
        ["valve", "config_write", "point_read"], min_length=1, description="spoofed commands sent, one of each"
    )
    flood_interval_s: Seconds = Field(60, description="one spoofed downlink this often during the flood")
    flood_s: Seconds = Field(3600, description="how long the flood lasts; the quiet hour it is compared with too")
    flood_extra_charge_uah_max: float = Field(
        2000, ge=0, description="the flood's charge over the quiet window's, at most (a page or two, not staying awake)"
    )
    report_within_s: Seconds = Field(600, description="a report asked for arrives within this")


class S2ReplayedSession(OnceCheck):
    """S2: a near-end session replayed byte for byte from a capture of a good one is refused and logged."""

    title = "replayed near-end session"
    area = "security"
    key_measurements: list[str] = key_measurements("replayed_commands_accepted")

    severity: Severity = Field("critical", description=SEVERITY)
    judged: bool = Field(
        True, description="judge replay protection; false records it as a finding (the seed asks only for a password)"
    )
    log_match_s: Seconds = Field(60, description="the replay's log entry within this of the replay (meter clock)")


class S3DeclaredFields(OnceCheck):
    """S3: reports carry no field beyond the device profile's declared ones (no personal data)."""

    title = "no undeclared report fields"
    area = "security"
    key_measurements: list[str] = key_measurements("undeclared_report_fields")

    reports: int = Field(2, ge=1, description="reports S3 provokes itself (the first after power-on, then ones "
                         "asked for); it also judges every report the campaign's other checks received")
    report_within_s: Seconds = Field(600, description="a report asked for arrives within this")
