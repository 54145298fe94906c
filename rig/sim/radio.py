"""The twin's radio: cells seen through attenuator paths, giving RSRP, SINR and the coverage level.

RSRP at the device = cell reference-signal power at the bench port - coupling loss of its attenuator
path (bench calibration) - attenuation - installation loss, plus seeded measurement noise. SINR is RSRP
against thermal noise plus the device's noise figure, power-summed with the interferer on its own path.
The attenuator changes all of it live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rig.sim.attenuator import AttenuatorModel

THERMAL_NOISE_DBM_PER_RE = -132.2
NO_SERVICE_RSRP_DBM = -130.0
NO_SERVICE_SINR_DB = -12.0


def power_sum_dbm(*levels_dbm: float) -> float:
    """Sum of powers given in dBm."""
    return 10.0 * math.log10(sum(10.0 ** (level / 10.0) for level in levels_dbm))


@dataclass
class Cell:
    """One NB-IoT cell of the simulated network, fed through one attenuator channel."""

    earfcn: int
    pci: int
    cell_id: int
    tac: int
    band: int
    rs_power_dbm: float
    attenuator_channel: int
    on: bool = True
    neighbours: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Interferer:
    """A noise source (AWGN per resource element) through its own attenuator channel."""

    power_dbm: float
    attenuator_channel: int


@dataclass(frozen=True)
class Measurement:
    """What the device measures of one cell at one moment."""

    cell: Cell
    rsrp_dbm: float
    sinr_db: float

    @property
    def suitable(self) -> bool:
        return self.rsrp_dbm >= NO_SERVICE_RSRP_DBM and self.sinr_db >= NO_SERVICE_SINR_DB


class RadioEnvironment:
    """The RF world at the device's antenna."""

    def __init__(
        self,
        attenuator: AttenuatorModel,
        cells: list[Cell],
        path_loss_db: dict[int, float],
        rng: np.random.Generator,
        interferer: Interferer | None = None,
        installation_loss_db: float = 0.0,
        noise_figure_db: float = 7.0,
        *,
        measurement_sd_db: float,
    ):
        self.attenuator = attenuator
        self.cells = cells
        self.path_loss_db = path_loss_db
        self.rng = rng
        self.interferer = interferer
        self.installation_loss_db = installation_loss_db
        self.noise_figure_db = noise_figure_db
        self.measurement_sd_db = measurement_sd_db

    def _path_db(self, channel: int) -> float:
        return self.path_loss_db.get(channel, 0.0) + self.attenuator.values_db[channel - 1] + self.installation_loss_db

    def expected_rsrp_dbm(self, cell: Cell) -> float:
        return cell.rs_power_dbm - self._path_db(cell.attenuator_channel)

    def noise_dbm(self) -> float:
        """Thermal noise plus noise figure, power-summed with the interferer where there is one."""
        floor = THERMAL_NOISE_DBM_PER_RE + self.noise_figure_db
        if self.interferer is None:
            return floor
        interference = self.interferer.power_dbm - self._path_db(self.interferer.attenuator_channel)
        return power_sum_dbm(floor, interference)

    def expected_sinr_db(self, cell: Cell) -> float:
        return self.expected_rsrp_dbm(cell) - self.noise_dbm()

    def measure(self, cell: Cell) -> Measurement:
        """One noisy measurement of `cell` (a switched-off cell is not there at all)."""
        if not cell.on:
            return Measurement(cell, -math.inf, -math.inf)
        noise = self.rng.normal(0.0, self.measurement_sd_db, 2)
        return Measurement(
            cell, self.expected_rsrp_dbm(cell) + float(noise[0]), self.expected_sinr_db(cell) + float(noise[1])
        )

    def cell(self, earfcn: int, pci: int) -> Cell | None:
        return next((c for c in self.cells if c.earfcn == earfcn and c.pci == pci), None)

    def best(self, earfcns: set[int] | None = None) -> Measurement | None:
        """The strongest suitable cell, optionally only on the given EARFCNs (a frequency lock)."""
        candidates = [self.measure(c) for c in self.cells if c.on and (earfcns is None or c.earfcn in earfcns)]
        suitable = [m for m in candidates if m.suitable]
        return max(suitable, key=lambda m: m.rsrp_dbm, default=None)


def coverage_level(rsrp_dbm: float, thresholds_dbm: tuple[float, float] = (-105.0, -115.0)) -> int:
    """The ECL the module picks from RSRP with the cell's thresholds (table 4-4 edges by default)."""
    ce1_below, ce2_below = thresholds_dbm
    if rsrp_dbm >= ce1_below:
        return 0
    if rsrp_dbm >= ce2_below:
        return 1
    return 2
