"""The bench profile: what instruments exist, how to reach them, their safe state and calibration."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from rig.profiles.loader import StrictModel
from rig.profiles.types import PositiveSeconds, is_loopback

ATTENUATION_MAX_DB = 95.0
ATTENUATION_STEP_DB = 0.25
CONTROL_TIMEOUT_MAX_S = 3600.0

AttenuatorChannel = Annotated[int, Field(ge=1, le=4)]


class CellSettings(StrictModel):
    """One cell of the simulated network (a callbox cell on hardware)."""

    earfcn: int = Field(ge=0, le=262143)
    pci: int = Field(ge=0, le=503)
    cell_id: int = Field(ge=0, le=268435455)
    tac: int = Field(1, ge=0, le=65535)
    band: int = Field(8, ge=1)
    rs_power_dbm: float = Field(-60.0, ge=-140, le=0, description="reference-signal power per RE at the bench port")
    attenuator_channel: AttenuatorChannel
    on: bool = True


class InterfererSettings(StrictModel):
    """An AWGN source on its own attenuator path: what brings SINR into the CE1/CE2 windows."""

    power_dbm: float = Field(-70.0, description="noise power per 15 kHz RE at the bench port")
    attenuator_channel: AttenuatorChannel = 3


class NetworkSettings(StrictModel):
    """What the simulated network grants (a check whose precondition is not granted is skipped)."""

    inactivity_timer_s: PositiveSeconds = Field(20.0, description="RRC release after this much silence (seed 20 s)")
    grants_psm: bool = True
    honours_release_assistance: bool = True
    broadcasts_neighbours: bool = True
    reselection_threshold_db: float = Field(4.0, ge=0, description="a neighbour must be this much stronger")


def _default_cells() -> list[CellSettings]:
    return [
        CellSettings(earfcn=2509, pci=226, cell_id=125414482, attenuator_channel=1),
        CellSettings(earfcn=2509, pci=227, cell_id=125414483, attenuator_channel=2),
        CellSettings(earfcn=2525, pci=301, cell_id=125414601, attenuator_channel=4),
    ]


class RfSettings(StrictModel):
    """The bench's RF side as calibrated: the cells (a callbox's or the twin's) and the interferer.

    The rig sets coverage from it (open loop); the twin simulates exactly this.
    """

    cells: list[CellSettings] = Field(
        default_factory=_default_cells, min_length=1, description="cells, serving cell first"
    )
    interferer: InterfererSettings | None = Field(default_factory=InterfererSettings)


class TwinSettings(StrictModel):
    """How the bench reaches the simulated bench (the twin process), and the simulated RF world."""

    launch: bool = Field(True, description="start `python -m rig.sim` for the run and stop it afterwards")
    allow_remote: bool = Field(
        False, description="true: host may be an address other machines reach (the twin's ports are unauthenticated)"
    )
    host: str = Field(
        "127.0.0.1", min_length=1, description="address the twin's servers bind and the rig connects to; another "
        "than 127.0.0.1 (loopback) needs allow_remote"
    )
    control_port: int = Field(0, ge=0, le=65535, description="0 = ephemeral (launch) ; fixed to connect")
    seed: int = Field(1, ge=0, description="seed of every random draw in the twin")
    start: str = Field("2026-01-05T00:00:00+08:00", description="virtual time at which the twin starts")
    control_timeout_s: float = Field(
        30.0, gt=0, le=CONTROL_TIMEOUT_MAX_S, description="wall-clock limit of one control call"
    )
    installation_loss_db: float = Field(0.0, ge=0, le=60, description="table 4-5 preset of the simulated site")

    @field_validator("start")
    @classmethod
    def _start_is_iso_8601(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 time such as 2026-01-05T00:00:00+08:00, got {value!r}") from None
        return value

    @field_validator("host")
    @classmethod
    def _remote_host_asked_for(cls, value: str, info: ValidationInfo) -> str:
        if not info.data.get("allow_remote") and not is_loopback(value):
            raise ValueError("not a loopback address: the twin's servers would be reachable from other machines; "
                             "set twin.allow_remote: true to ask for it")
        return value


def exposure_warning(host: str) -> str | None:
    """The line printed at start when the twin binds `host` and other machines can reach it; None on loopback."""
    if is_loopback(host):
        return None
    return f"warning: the twin's servers listen on {host}, reachable from other machines (unauthenticated ports)"


class ReferenceCalibration(StrictModel):
    """A path-loss calibration made against a reference instrument: the bench is then trusted over the device."""

    date: dt.date = Field(description="when the path losses were measured (YYYY-MM-DD)")
    method: Literal["power_meter", "spectrum_analyser"] = Field(description="the reference instrument's kind")
    instrument: str = Field("", description="model and serial of the reference instrument, recorded")
    by: str = Field("", description="who measured, recorded")


class AttenuatorSettings(StrictModel):
    """A programmable RF attenuator (Mini-Circuits RCDAT/RC4DAT command set)."""

    driver: Literal["rc4dat"] = "rc4dat"
    resource: str = Field(description="VISA resource, or `twin:attenuator` on the simulated bench")
    channels: dict[Literal["serving", "second_cell", "interferer", "spare"], AttenuatorChannel] = Field(
        default_factory=lambda: {"serving": 1, "second_cell": 2, "interferer": 3, "spare": 4},
        description="which attenuator channel feeds which RF path",
    )
    path_loss_db: dict[AttenuatorChannel, float] = Field(
        default_factory=dict,
        description="calibration: loss from the cell's port to the device antenna per channel, dB",
    )
    reference_calibration: ReferenceCalibration | None = Field(
        None, description="path losses measured with a reference instrument: trusted, never corrected toward the device"
    )

    @field_validator("channels")
    @classmethod
    def _one_path_per_channel(cls, channels: dict[str, int]) -> dict[str, int]:
        seen: dict[int, str] = {}
        for role, channel in channels.items():
            if channel in seen:
                raise ValueError(f"'{seen[channel]}' and '{role}' both use attenuator channel {channel}")
            seen[channel] = role
        return channels


class SupplySettings(StrictModel):
    """A bench power analyser channel that powers the device and measures its current."""

    driver: Literal["n6705c"] = "n6705c"
    resource: str = Field(description="VISA resource, or `twin:supply` on the simulated bench")
    channel: int = Field(1, ge=1, le=4, description="output powering the meter's battery input")
    module_rail_channel: int | None = Field(None, ge=1, le=4, description="output in series with the module")
    voltage_v: float = Field(3.6, gt=0, le=20, description="nominal battery voltage")
    current_limit_a: float = Field(0.5, gt=0, le=3, description="current limit of the supply output")

    @model_validator(mode="after")
    def _module_rail_is_another_output(self) -> SupplySettings:
        if self.module_rail_channel == self.channel:
            raise ValueError(f"module_rail_channel must differ from channel ({self.channel})")
        return self


class SafeState(StrictModel):
    """What the bench leaves the instruments in on teardown, Ctrl-C and crash."""

    attenuation_db: float = Field(ATTENUATION_MAX_DB, ge=0, le=ATTENUATION_MAX_DB)
    supply_output: Literal["on", "off"] = "off"


class Instruments(StrictModel):
    attenuator: AttenuatorSettings | None = None
    supply: SupplySettings | None = None


class BenchProfile(StrictModel):
    """A whole bench: the instruments, the clock they share, and how to leave them safe."""

    name: str
    description: str = ""
    clock: Literal["virtual", "wall"] = Field(description="virtual needs `twin`; wall is for hardware")
    twin: TwinSettings | None = None
    instruments: Instruments = Field(default_factory=Instruments)
    rf: RfSettings = Field(default_factory=RfSettings, description="cells and interferer, as calibrated")
    network: NetworkSettings = Field(default_factory=NetworkSettings, description="what the network grants")
    safe_state: SafeState = Field(default_factory=SafeState)
    visa_library: str = Field("@py", description="pyvisa backend; `@py` is pyvisa-py")

    @model_validator(mode="after")
    def _virtual_clock_needs_twin(self) -> BenchProfile:
        if self.clock == "virtual" and self.twin is None:
            raise ValueError("clock 'virtual' needs a 'twin' section (the virtual clock is the twin's)")
        if self.twin is None:
            for role in ("attenuator", "supply"):
                settings = getattr(self.instruments, role)
                if settings is not None and settings.resource.startswith("twin:"):
                    raise ValueError(f"instruments.{role}.resource '{settings.resource}' needs a 'twin'")
        return self
