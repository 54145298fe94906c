"""The module rail: an analyser channel in series with the module's supply, read as power-on and cut edges."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rig.instruments.power import DataLogChunk

RAIL_OFF_A = 0.5e-6  # below any module's PSM current (a few uA), above the analyser's noise


@dataclass
class RailEdges:
    """Streams the rail's data log, keeping only the times its current comes on and goes off."""

    threshold_a: float = RAIL_OFF_A
    on: bool = False
    rises_s: list[float] = field(default_factory=list)
    falls_s: list[float] = field(default_factory=list)
    kept: list[DataLogChunk] = field(default_factory=list)

    def feed(self, chunk: DataLogChunk) -> None:
        high = chunk.max_a > self.threshold_a
        before = np.concatenate([[self.on], high[:-1]])
        self.rises_s += [float(chunk.start_s + i * chunk.period_s) for i in np.flatnonzero(high & ~before)]
        # a cut lies in the last period that still drew current: its start is the earliest it can have been
        self.falls_s += [float(chunk.start_s + (i - 1) * chunk.period_s) for i in np.flatnonzero(~high & before)]
        self.on = bool(high[-1])
        if self.rises_s:
            self.kept.append(chunk)
