"""The simulated device under test and its surroundings: radio, network, module and (for a meter) the MCU.

Built from the bench profile's `rf:` (cells, interferer) and `twin:` (network) sections and the device profile
(`sim:`); reached only through the twin's real ports.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rig.codec import load_codec
from rig.profiles.bench import TwinSettings
from rig.profiles.device import DeviceProfile
from rig.sim.meter.firmware import MeterFirmware
from rig.sim.meter.maintenance import MaintenancePort
from rig.sim.meter.uart import UartLink
from rig.sim.module.device import NbiotModule
from rig.sim.network import Network
from rig.sim.radio import Cell, Interferer, RadioEnvironment

if TYPE_CHECKING:
    from rig.sim.twin import Twin

MODULE_MIN_VOLTAGE_V = 3.1
METER_BROWN_OUT_V = 2.8
STIMULI = ("magnetic", "separation", "flow")


class DeviceTwin:
    """Everything behind the bench's RF port and supply output."""

    def __init__(self, twin: Twin, settings: TwinSettings, profile: DeviceProfile):
        self.twin = twin
        self.profile = profile
        world = twin.world
        path_loss = dict(twin.bench.instruments.attenuator.path_loss_db) if twin.bench.instruments.attenuator else {}
        self.cells = [
            Cell(c.earfcn, c.pci, c.cell_id, c.tac, c.band, c.rs_power_dbm, c.attenuator_channel, c.on)
            for c in twin.bench.rf.cells
        ]
        rf_interferer = twin.bench.rf.interferer
        interferer = Interferer(rf_interferer.power_dbm, rf_interferer.attenuator_channel) if rf_interferer else None
        self.radio = RadioEnvironment(
            twin.attenuator, self.cells, path_loss, world.rng, interferer, settings.installation_loss_db,
            profile.sim.module.noise_figure_db, measurement_sd_db=profile.sim.module.measurement_sd_db,
        )
        self.platform_link = twin.add_udp("platform")
        self.network = Network(world, self.radio, twin.bench.network, self.platform_link, lambda: twin.lockstep)
        self.internet_link = twin.add_udp("internet")  # other internet hosts: the rig's spoofer (S1)
        self.internet_link.consumer = self.network.from_internet
        imei = profile.identity.imei or "869405035846048"
        self.module = NbiotModule(world, self.network, twin.power, profile.sim.module, imei)
        self.platform_address: tuple[str, int] | None = None
        self.meter: MeterFirmware | None = None
        self.maintenance: MaintenancePort | None = None
        if profile.kind == "module":
            at_port = twin.add_pty("at")
            at_port.consumer = self.module.receive
            self.module.host_write = lambda data: at_port.write(data, twin.lockstep)
        else:
            uart = UartLink(
                self.module, twin.add_pty("monitor_mcu"), twin.add_pty("monitor_module"), lambda: twin.lockstep
            )
            self.meter = MeterFirmware(
                world, profile.sim.meter, self.module, uart, twin.power, load_codec(profile.codec),
                lambda: self.platform_address, lambda: twin.power_analyser.supplied_voltage(1), profile.valve,
                profile.platform_key(),
            )
            if profile.parts.maintenance:
                maintenance_pty = twin.add_pty("maintenance")
                self.maintenance = MaintenancePort(
                    self.meter, profile.maintenance.password.get_secret_value(),
                    lambda data: maintenance_pty.write(data, twin.lockstep),
                )
                maintenance_pty.consumer = self.maintenance.receive

    def on_supply(self, on: bool, voltage_v: float) -> None:
        """The supply output powers the device (a bare module directly)."""
        if self.meter is not None:
            self.meter.on_supply(on and voltage_v >= METER_BROWN_OUT_V)
            if self.maintenance is not None:
                self.maintenance.on_supply(self.meter.powered)
        elif on and voltage_v >= MODULE_MIN_VOLTAGE_V:
            self.module.power_on()
        else:
            self.module.power_off()

    # ---- control port --------------------------------------------------------------------------
    def network_log(self, since: int) -> str:
        return json.dumps(self.network.log_since(since))

    def switch_cell(self, text: str) -> str:
        index, _, state = text.replace(",", " ").partition(" ")
        cell = self.cells[int(index) - 1] if 1 <= int(index) <= len(self.cells) else None
        if cell is None or state.strip().upper() not in ("ON", "OFF"):
            raise ValueError(f"expected SIM:CELL <1..{len(self.cells)}>,ON|OFF")
        cell.on = state.strip().upper() == "ON"
        return "OK"

    def stimulate(self, text: str) -> str:
        """`SIM:STIM magnetic|separation|flow,<L/h>`: what a magnet coil, relay or flow rig does to a meter."""
        name, _, value = text.replace(" ", "").partition(",")
        if self.meter is None or name.lower() not in STIMULI:
            raise ValueError(f"expected SIM:STIM {'|'.join(STIMULI)}[,<L/h>] on a meter")
        self.meter.stimulus(name.lower(), float(value) if value else None)
        return "OK"

    def set_platform(self, address: str) -> str:
        host, _, port = address.rpartition(":")
        self.platform_address = (host, int(port))
        self.platform_link.peer = self.platform_address
        return "OK"
