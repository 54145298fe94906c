"""A programmed electronic load: draws a current timeline set through the control port while powered.

It stands in for a device under test on the supply (a bench's dummy load), so the analyser can be
checked against a known current without a meter.
"""

from __future__ import annotations

from rig.sim.power import DevicePower
from rig.sim.world import World


class ProgrammedLoad:
    """Draws `program` (absolute time, amps) steps from the supply output it is connected to."""

    def __init__(self, world: World, power: DevicePower):
        self.world = world
        self.power = power
        self.powered = False
        self._program: list[tuple[float, float]] = []
        self._generation = 0

    def on_supply(self, on: bool, voltage_v: float) -> None:
        """Supply listener: the load draws only while the output is on."""
        powered = on and voltage_v > 0
        if powered != self.powered:
            self.powered = powered
            self._apply_now()

    def program(self, steps: list[tuple[float, float]]) -> None:
        """Replace the program; steps at or before now apply at once, later ones at their time."""
        self._program = sorted(steps)
        self._generation += 1
        self._apply_now()
        env = self.world.env
        generation = self._generation
        future = [(t, a) for t, a in self._program if t > env.now]

        def follow():
            for at_s, _ in future:
                yield env.timeout(at_s - env.now)
                if generation != self._generation:
                    return
                self._apply_now()

        if future:
            env.process(follow())

    def programmed_amps(self, time_s: float) -> float:
        amps = 0.0
        for at_s, value in self._program:
            if at_s > time_s:
                break
            amps = value
        return amps

    def _apply_now(self) -> None:
        self.power.set("load", self.programmed_amps(self.world.now) if self.powered else 0.0)
