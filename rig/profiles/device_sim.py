"""The device profile's `sim:` section: how the twin's module and meter behave, defect switches included.

Every field has a default that makes the reference meter; a defect profile changes one or two of them
(docs/device-profile.md lists which switch breaks which checklist item). Real devices ignore this section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from rig.profiles.loader import StrictModel
from rig.profiles.types import PositiveSeconds, Seconds, Secret, TimeZone

REFERENCE_EXCEPTION_FLOW = ["AT+NRB", "AT+CFUN=0", "AT+NCSEARFCN", "AT+NRB"]


def _clock_time(value: str) -> str:
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and 0 <= int(hours) < 24 and 0 <= int(minutes) < 60):
        raise ValueError(f"expected a time of day 'HH:MM', got {value!r}")
    return value


class ModuleSim(StrictModel):
    """The NB-IoT module (HiSilicon Boudica class, BC95/BC28 AT dialect)."""

    firmware_version: str = Field("V150R100C10B200SP1", description="SSB line of AT+CGMR (C1)")
    psm_current_ua: float = Field(3.0, gt=0, description="module current in PSM (C5; defect: 12)")
    idle_current_ma: float = Field(1.0, gt=0, description="average current in RRC idle, DRX included")
    paging_spike_ma: float = Field(30.0, ge=0, description="current of the short wake at each paging occasion")
    connected_current_ma: float = Field(50.0, gt=0, description="average current in RRC connected, not sending")
    tx_current_ma: float = Field(200.0, gt=0, description="current while transmitting at 23 dBm")
    search_current_ma: float = Field(45.0, gt=0, description="current while searching for a cell")
    tx_power_dbm: float = Field(23.0, le=23.0, description="maximum transmit power (C22 defect: 11, a PA fault)")
    noise_figure_db: float = Field(7.0, ge=0, description="receiver noise figure")
    measurement_sd_db: float = Field(
        0.5, ge=0, description="standard deviation of one filtered RSRP/SINR reading (ECL follows the reading)"
    )
    boot_time_s: PositiveSeconds = Field(1.5, description="power-on or AT+NRB until the boot banner")
    at_response_delay_s: Seconds = Field(0.02, description="processing delay of an ordinary AT command")
    search_backoff_first_s: PositiveSeconds = Field(600.0, description="first wait between searches in no coverage")
    search_backoff_cap_s: PositiveSeconds = Field(86400.0, description="the doubling search backoff stops here")
    search_fixed_interval_s: PositiveSeconds | None = Field(
        None, description="search at this fixed interval instead of the backoff (C21b defect: 60)"
    )
    downlinks_from_any_source: bool = Field(
        False, description="hand the host a downlink from any source, not only the LwM2M server's (S1 defect)"
    )


class MeterSim(StrictModel):
    """The meter's MCU firmware. Each switch below is one behaviour of the checklist."""

    meter_number: int = Field(12345, ge=0, description="the number the stagger is computed from (C4)")
    password_required: bool = Field(True, description="the near-end port asks for the password (C15 defect)")
    lockout_after_failures: int | None = Field(5, ge=1, description="wrong passwords before lock-out; null = never")
    lockout_s: PositiveSeconds = Field(600.0, description="lock-out duration")
    schedule: Literal["household", "leak", "large", "large_intensive"] = "household"
    timezone: TimeZone = Field("Asia/Shanghai", description="zone of the meter's local time (report times)")
    flow_l_per_h: float = Field(6.0, ge=0, description="steady forward flow until a stimulus changes it")
    report_t1: str = Field("01:00", description="T1 of the stagger rule, local time of day (C4)")
    report_t3_s: PositiveSeconds = Field(120.0, description="T3 of the stagger rule (C4)")
    stagger: bool = Field(True, description="spread reports by meter number (C4 defect: false)")
    obey_platform_t3: bool = Field(True, description="apply T3 changed by the platform (C4 defect: false)")
    stagger_after_power_cut: bool = Field(True, description="spread the first attach after power-on (C4 defect)")
    power_cut_stagger_skipped_for: list[int] = Field(
        [], description="meter numbers whose first attach after power-on is not spread (C4 defect: [1, 199])"
    )
    freeze_interval_s: PositiveSeconds | None = Field(
        None, description="override of the schedule's freeze interval (C16 defect: 3600)"
    )
    basic_report_bytes: int | None = Field(
        None, ge=1, le=512, description="pad the basic report to this size (C16 defect: 300)"
    )
    release_assistance: bool = Field(True, description="release the RRC connection after the last exchange (C3)")
    module_sleep: Literal["psm", "power_off"] = Field("psm", description="between reports (C5 defect: power_off)")
    mcu_sleep_current_ua: float = Field(9.0, gt=0, description="MCU, metering and display asleep (C5 defect: 300)")
    mcu_active_current_ma: float = Field(3.0, gt=0, description="MCU awake")
    requested_t3324_s: Seconds = Field(30.0, description="active time asked with AT+CPSMS")
    requested_t3412_s: PositiveSeconds = Field(86400.0, description="periodic TAU asked with AT+CPSMS")
    reselection_at_boot: bool = Field(True, description="AT+NCONFIG=CELL_RESELECTION,TRUE at init (C2)")
    earfcn_lock: bool = Field(False, description="lock the module to its first EARFCN (C2b defect)")
    obey_reselection_switch: bool = Field(True, description="apply the platform's reselection switch (C2c)")
    attach_guard_s: PositiveSeconds = Field(300.0, description="search time allowed after power-on (C8 defect: 180)")
    report_network_quality: bool = Field(True, description="PCI/RSRP/SINR/ECL/EARFCN in reports (C12)")
    rsrp_frozen_at_boot: bool = Field(False, description="report the boot RSRP forever (C12 defect)")
    reported_rsrp_offset_db: float = Field(
        0.0, description="added to the module's RSRP in reports (C12 defect on a reference-calibrated bench: -10)"
    )
    storage_mode: bool = Field(True, description="software shutdown for the stock period (C21a)")
    time_sync: bool = Field(True, description="set the clock from the platform's reply (C6)")
    clock_drift_ppm: float = Field(
        -20.0, ge=-100_000, le=100_000, description="the MCU's crystal error (slow: reports never before their slot)"
    )
    retry_waits_s: list[Seconds] = Field([300.0, 3600.0], description="waits after failed sends (C7)")
    reset_wait_s: PositiveSeconds = Field(28800.0, description="wait after the last failed retry, then reset (C7)")
    reset_after_failures: bool = Field(True, description="reset and re-attach after the long wait (C7 defect)")
    cme513_waits_s: list[Seconds] = Field([60.0, 180.0, 600.0], description="waits after +CME ERROR: 513 (C9)")
    exception_flow: list[str] = Field(
        REFERENCE_EXCEPTION_FLOW, description="commands after the last 513 (C10); POWER_OFF powers the module off "
        "as the MCU always does (see cfun0_before_power_off), POWER_CUT cuts it with no AT+CFUN=0 first (C11)"
    )
    cfun0_before_power_off: bool = Field(True, description="AT+CFUN=0 before cutting module power (C11)")
    log_retention_days: float = Field(35.0, gt=0, description="age of the oldest log entry kept (C13: 7)")
    log_upload: bool = Field(True, description="logs can be uploaded to the platform (C13 defect: false)")
    verify_platform_auth: bool = Field(
        True, description="ignore downlinks without the platform's valid MAC where the profile declares "
        "platform_auth (S1 defect: false)"
    )
    verify_image_signature: bool = Field(True, description="refuse unsigned or wrongly signed images (C14)")
    magnet_alarm_once_a_day: bool = Field(True, description="C17 defect: an alarm every time")
    low_battery_immediate: bool = Field(False, description="C17 defect: low battery sent at once")
    low_battery_threshold_v: float = Field(3.3, gt=0, description="supply below this sets the low-battery flag")
    answer_point_reads: bool = Field(True, description="C18 defect: false")
    apply_configuration: bool = Field(True, description="C19 defect: false (acknowledged, not applied)")
    obey_valve_policy: bool = Field(True, description="C20 defect: closes even when closing is forbidden")
    mcu_firmware_version: str = Field("RWM1-2.3.0", description="reported in every report and over maintenance")
    maintenance_login: Literal["challenge", "plaintext"] = Field(
        "challenge", description="near-end login: nonce + HMAC, or the password in clear (S2 defect: plaintext)"
    )
    awake_after_page_s: Seconds = Field(
        0.0, description="after a page, keep the module out of PSM this long for more commands, a page "
        "restarting it (S1 defect: 600)"
    )
    report_owner_name: str | None = Field(
        None, max_length=40, description="personal data added to every report (S3 defect: the owner's name)"
    )
    image_key: Secret | None = Field(
        None, description="HMAC key the meter checks images with, or {env: VARIABLE}; null: the profile's "
        "upgrade.signing_key"
    )

    @field_validator("report_t1")
    @classmethod
    def _t1_is_a_time_of_day(cls, value: str) -> str:
        return _clock_time(value)


class DeviceSim(StrictModel):
    """The whole `sim:` section."""

    module: ModuleSim = Field(default_factory=ModuleSim)
    meter: MeterSim | None = Field(default_factory=MeterSim, description="null for a bare module")
