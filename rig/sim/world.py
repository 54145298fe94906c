"""The twin's discrete-event world: a SimPy environment on virtual POSIX time and its emission log.

The world moves only inside `run()`. It stops at the first instant at which something was emitted
(pty bytes, a datagram, an instrument event), after finishing every event of that instant, so the
rig can consume what was emitted before time moves on (drain before advance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

MAX_STEPS_PER_INSTANT = 200_000


class WorldStall(RuntimeError):
    """A simulated process kept scheduling events at one instant without ever advancing time."""


@dataclass(frozen=True)
class Emission:
    """`count` units (bytes or datagrams) emitted on `channel`, in emission order."""

    channel: str
    count: int


class World:
    """Virtual time, seeded randomness and the record of what was emitted since the last stop."""

    def __init__(self, start_s: float, seed: int):
        self.start_s = start_s
        self.seed = seed
        self.env = simpy.Environment(initial_time=start_s)
        self.rng = np.random.default_rng(seed)
        self._emitted: list[Emission] = []

    @property
    def now(self) -> float:
        return float(self.env.now)

    def emit(self, channel: str, count: int = 1) -> None:
        """Record that `count` units went out on `channel` at the current instant."""
        if count <= 0:
            return
        if self._emitted and self._emitted[-1].channel == channel:
            last = self._emitted.pop()
            count += last.count
        self._emitted.append(Emission(channel, count))

    def run(self, target_s: float) -> list[Emission]:
        """Advance to `target_s`, or to the first instant that emits; return the emissions in order."""
        env = self.env
        while not self._emitted and env.peek() <= target_s:
            self._step_instant()
        if not self._emitted and target_s > env.now:
            env.run(until=target_s)
        emitted, self._emitted = self._emitted, []
        return emitted

    def _step_instant(self) -> None:
        """Process every event scheduled at the next instant."""
        env = self.env
        instant = env.peek()
        steps = 0
        while env.peek() == instant:
            env.step()
            steps += 1
            if steps > MAX_STEPS_PER_INSTANT:
                raise WorldStall(f"more than {MAX_STEPS_PER_INSTANT} events at t={instant}: a zero-delay loop")
