"""The device profile: who the device under test is, which bench parts it has, and the twin's behaviour."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rig.profiles.loader import StrictModel


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


class DeviceProfile(StrictModel):
    """A meter (MCU + module) or a bare module, as the rig sees it."""

    name: str
    kind: Literal["meter", "module"]
    identity: Identity
    parts: Parts = Field(default_factory=Parts)
    failure_detection_max_s: float = Field(120.0, gt=0, description="how long the device takes to notice a failure")
    sim: dict[str, Any] = Field(default_factory=dict, description="the twin's behaviour (ignored on hardware)")
