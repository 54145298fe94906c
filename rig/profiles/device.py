"""The device profile: who the device under test is, which bench parts it has, and the twin's behaviour."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from rig.profiles.device_sim import DeviceSim
from rig.profiles.loader import StrictModel
from rig.profiles.types import PositiveSeconds, Secret


class Identity(StrictModel):
    """What the certificate names: vendor, model, serial and firmware as declared by the vendor."""

    vendor: str
    model: str
    serial: str = ""
    imei: str = ""
    mcu_firmware: str = ""
    module: str = ""


class Parts(StrictModel):
    """Which bench parts this device offers; a check needing a missing part is skipped with the reason."""

    monitor: bool = Field(True, description="a UART sniffer on the MCU-module lines")
    maintenance: bool = Field(True, description="a near-end maintenance port")
    module_rail: bool = Field(False, description="a break in the module supply for the second channel")
    stimulus: bool = Field(False, description="magnet, separation and flow stimuli")


class Maintenance(StrictModel):
    """How the rig reaches the meter's near-end maintenance port."""

    protocol: str = Field("reference", description="maintenance protocol plugin (entry point rig.maintenance)")
    password: Secret = Field(
        SecretStr("rig-maint-2018"), description="login password, or {env: VARIABLE}; masked in every output"
    )
    port: str = Field("twin:maintenance", description="serial URL, or twin:maintenance on the simulated bench")
    baudrate: int = Field(9600, gt=0)


class Upgrade(StrictModel):
    """What the rig needs to send the meter images it accepts (C14): the vendor's signing key."""

    signing_key: Secret = Field(
        SecretStr("rig-reference-signing-key"),
        description="the vendor's image signing key (reference scheme: HMAC-SHA256 of the whole image), or "
                    "{env: VARIABLE}; masked in every output",
    )


class PlatformAuth(StrictModel):
    """How the platform authenticates its downlinks, and the meter checks them (S1; docs/codec-reference.md)."""

    scheme: Literal["hmac-sha256-64"] = Field(
        "hmac-sha256-64", description="a u48 counter and the first 8 bytes of HMAC-SHA256 after each downlink"
    )
    key: Secret = Field(description="the key platform and meter share, or {env: VARIABLE}; masked in every output")


class Logs(StrictModel):
    """How the meter's log names its internal modules (C13, C15)."""

    modules: list[str] = Field(
        ["comm", "meter", "module", "maintenance"], min_length=1,
        description="the internal modules the log names; C13 wants entries of each",
    )
    communication_module: str = Field("comm", description="the module that logs reports and failed sends")
    maintenance_module: str = Field("maintenance", description="the module that logs maintenance logins and refusals")


class Ports(StrictModel):
    """Serial ports of the device on a hardware bench (the twin's are found from its endpoints)."""

    at: str = Field("twin:at", description="AT port of a bare module")
    monitor_mcu: str = Field("twin:monitor_mcu", description="sniffer line MCU -> module")
    monitor_module: str = Field("twin:monitor_module", description="sniffer line module -> MCU")
    baudrate: int = Field(9600, gt=0)


class Valve(StrictModel):
    """The meter's valve and the water company's policy on remote closing (C20)."""

    present: bool = Field(True, description="the meter has a remotely controlled valve")
    close_allowed: bool = Field(True, description="the water company allows closing it remotely")


REFERENCE_REPORT_FIELDS = [
    "meter_number", "time_s", "battery_mv", "alarms", "daily_cumulative_l", "daily_reverse_l", "instantaneous_l_per_h",
    "freeze_interval_s", "report_period_s", "valve", "mcu_firmware", "module_firmware", "period_consumption_l",
    "period_temperature_c", "period_vibration", "network", "period_pressure_kpa", "padding",
]


class DeviceProfile(StrictModel):
    """A meter (MCU + module) or a bare module, as the rig sees it."""

    name: str = Field(description="short name, used in run directories and reports")
    kind: Literal["meter", "module"] = Field(description="a meter (MCU + module) or a bare module")
    identity: Identity = Field(description="what the certificate names")
    parts: Parts = Field(default_factory=Parts, description="which bench parts the device offers")
    failure_detection_max_s: PositiveSeconds = Field(120.0, description="how long the device takes to notice a failure")
    codec: str = Field("reference", description="payload codec plugin (entry point rig.codecs)")
    report_fields: list[str] = Field(
        REFERENCE_REPORT_FIELDS, min_length=1,
        description="the fields the device's reports may carry, as its codec decodes them (S3: nothing else)",
    )
    maintenance: Maintenance = Field(default_factory=Maintenance, description="the near-end maintenance port")
    valve: Valve = Field(default_factory=Valve, description="the valve and the remote-closing policy")
    upgrade: Upgrade = Field(default_factory=Upgrade, description="image signing for upgrades")
    platform_auth: PlatformAuth | None = Field(
        None, description="the platform's downlink authentication; null: the meter trusts its server's address only"
    )
    logs: Logs = Field(default_factory=Logs, description="the meter's log and its internal modules")
    ports: Ports = Field(default_factory=Ports, description="serial ports on a hardware bench")
    sim: DeviceSim = Field(default_factory=DeviceSim, description="the twin's behaviour (ignored on hardware)")

    def platform_key(self) -> bytes | None:
        """The key platform and meter seal and check downlinks with, where `platform_auth` declares one (S1)."""
        return self.platform_auth.key.get_secret_value().encode() if self.platform_auth else None

    @model_validator(mode="after")
    def _module_has_no_meter(self) -> DeviceProfile:
        if self.kind == "module" and self.sim.meter is not None:
            self.sim.meter = None
        if self.kind == "meter" and self.sim.meter is None:
            raise ValueError("sim.meter: a meter needs its firmware section (null is for kind: module)")
        if self.sim.meter is not None and self.sim.meter.image_key is None:
            self.sim.meter.image_key = self.upgrade.signing_key  # the twin's meter trusts the vendor's key
        return self
