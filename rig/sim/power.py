"""The device's supply current as the sum of its parts (module, MCU, a test load), on the analyser's
timelines: channel 1 sees the whole device, channel 2 the module rail alone."""

from __future__ import annotations

from rig.sim.timeline import CurrentTimeline
from rig.sim.world import World

SUPPLY_CHANNEL = 1
MODULE_RAIL_CHANNEL = 2


class DevicePower:
    """Each component reports its current; every change lands on the timelines at the current instant."""

    def __init__(self, world: World, timelines: dict[int, CurrentTimeline]):
        self.world = world
        self.timelines = timelines
        self.components: dict[str, float] = {}

    def set(self, component: str, amps: float) -> None:
        if self.components.get(component) == amps:
            return
        self.components[component] = amps
        now = self.world.now
        self.timelines[SUPPLY_CHANNEL].set(now, sum(self.components.values()))
        self.timelines[MODULE_RAIL_CHANNEL].set(now, self.components.get("module", 0.0))

    def amps(self, component: str) -> float:
        return self.components.get(component, 0.0)
