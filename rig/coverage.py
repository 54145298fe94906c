"""Coverage levels on the bench: attenuator settings for a level's target RSRP and SINR (open loop).

Expected RSRP = cell RS power at the bench port - path loss (calibration) - installation loss -
attenuation. Expected SINR = RSRP - (thermal noise + noise figure, power-summed with the interferer).
Attenuation alone leaves SINR far above the CE1/CE2 windows, so the interferer's path sets SINR.
The device's own report then confirms the level; C12 judges how well it reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from rig.errors import RigFault
from rig.instruments.attenuator import MAX_DB, STEP_DB, Rc4datAttenuator
from rig.profiles.bench import BenchProfile, CellSettings
from rig.profiles.plan import PlanProfile


def _power_sum_dbm(*levels: float) -> float:
    return 10 * math.log10(sum(10 ** (level / 10) for level in levels))


def step_db(value_db: float) -> float:
    """`value_db` rounded to the attenuator's step."""
    return round(value_db / STEP_DB) * STEP_DB


@dataclass(frozen=True)
class CoverageSetting:
    """What the bench sets for one level, and what it expects the device to see."""

    level: str
    serving: CellSettings
    serving_db: float
    interferer_db: float
    expected_rsrp_dbm: float
    expected_sinr_db: float
    installation_loss_db: float


class CoverageCalculator:
    """Turns a level's target into attenuations, from the bench profile's calibration."""

    def __init__(self, bench: BenchProfile, plan: PlanProfile, installation_loss_db: float = 0.0):
        if bench.instruments.attenuator is None:
            raise RigFault("coverage needs an attenuator")
        self.bench = bench
        self.plan = plan
        self.attenuator = bench.instruments.attenuator
        self.installation_loss_db = installation_loss_db
        self.floor_dbm = plan.coverage.thermal_noise_dbm_per_15khz + plan.coverage.noise_figure_db

    def path_loss_db(self, channel: int) -> float:
        return self.attenuator.path_loss_db.get(channel, 0.0) + self.installation_loss_db

    def cell_on(self, role: str) -> CellSettings:
        channel = self.attenuator.channels[role]
        cell = next((c for c in self.bench.rf.cells if c.attenuator_channel == channel), None)
        if cell is None:
            raise RigFault(f"no cell is calibrated on the {role} attenuator channel {channel}")
        return cell

    def rsrp_dbm(self, cell: CellSettings, attenuation_db: float) -> float:
        return cell.rs_power_dbm - self.path_loss_db(cell.attenuator_channel) - attenuation_db

    def attenuation_for_rsrp(self, cell: CellSettings, rsrp_dbm: float) -> float:
        value = step_db(cell.rs_power_dbm - self.path_loss_db(cell.attenuator_channel) - rsrp_dbm)
        if not 0 <= value <= MAX_DB:
            raise RigFault(
                f"RSRP {rsrp_dbm} dBm on PCI {cell.pci} needs {value} dB of attenuation, outside 0..{MAX_DB} dB: "
                "the bench is too weak or too strong for this level"
            )
        return value

    def noise_dbm(self, interferer_db: float) -> float:
        interferer = self.bench.rf.interferer
        if interferer is None or interferer_db >= MAX_DB:
            return self.floor_dbm
        level = interferer.power_dbm - self.path_loss_db(interferer.attenuator_channel) - interferer_db
        return _power_sum_dbm(self.floor_dbm, level)

    def interferer_for_sinr(self, rsrp_dbm: float, sinr_db: float) -> float:
        """Interferer attenuation bringing SINR to `sinr_db` (MAX_DB when thermal noise alone is enough)."""
        wanted_dbm = rsrp_dbm - sinr_db
        if wanted_dbm <= self.floor_dbm + 0.01:
            return MAX_DB
        interferer = self.bench.rf.interferer
        if interferer is None:
            return MAX_DB
        needed_dbm = 10 * math.log10(10 ** (wanted_dbm / 10) - 10 ** (self.floor_dbm / 10))
        value = step_db(interferer.power_dbm - self.path_loss_db(interferer.attenuator_channel) - needed_dbm)
        if value < 0:
            raise RigFault(f"the interferer cannot bring SINR down to {sinr_db} dB (needs {value} dB)")
        return min(value, MAX_DB)

    def setting(self, level: str) -> CoverageSetting:
        target = getattr(self.plan.coverage.targets, level)
        serving = self.cell_on("serving")
        serving_db = self.attenuation_for_rsrp(serving, target.rsrp_dbm)
        rsrp = self.rsrp_dbm(serving, serving_db)
        interferer_db = self.interferer_for_sinr(rsrp, target.sinr_db)
        sinr = rsrp - self.noise_dbm(interferer_db)
        window = getattr(self.plan.coverage.windows, level)
        margin = self.plan.coverage.target_margin_db
        above_floor = rsrp >= window.rsrp_min_dbm + margin
        below_ceiling = window.rsrp_max_dbm is None or rsrp <= window.rsrp_max_dbm - margin
        if not (above_floor and below_ceiling):
            raise RigFault(f"{level}: the bench reaches RSRP {rsrp:.1f} dBm, not inside the window by {margin} dB")
        return CoverageSetting(level, serving, serving_db, interferer_db, rsrp, sinr, self.installation_loss_db)

    def shifted(self, setting: CoverageSetting, rsrp_step_db: float) -> CoverageSetting:
        """`setting` with serving cell and interferer moved together so the device should see `rsrp_step_db` more
        RSRP at the same SINR (where an interferer sets it); a closed-loop correction in `setting` is kept."""
        step = step_db(rsrp_step_db)
        serving = setting.serving_db - step
        interferer = setting.interferer_db if setting.interferer_db >= MAX_DB else setting.interferer_db - step
        for name, value in (("serving", serving), ("interferer", interferer)):
            if not 0 <= value <= MAX_DB:
                raise RigFault(f"{setting.level}: an RSRP step of {rsrp_step_db:+g} dB needs {value:g} dB on the "
                               f"{name} path, outside 0..{MAX_DB} dB")
        noise_change = self.noise_dbm(interferer) - self.noise_dbm(setting.interferer_db)
        return replace(setting, serving_db=serving, interferer_db=interferer,
                       expected_rsrp_dbm=setting.expected_rsrp_dbm + step,
                       expected_sinr_db=setting.expected_sinr_db + step - noise_change)

    def apply(self, attenuator: Rc4datAttenuator, setting: CoverageSetting) -> None:
        """Serving cell and interferer as computed; every other path closed."""
        channels = self.attenuator.channels
        for role, channel in channels.items():
            if role == "serving":
                attenuator.set_attenuation(channel, setting.serving_db)
            elif role == "interferer":
                attenuator.set_attenuation(channel, setting.interferer_db)
            else:
                attenuator.set_attenuation(channel, MAX_DB)
