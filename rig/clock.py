"""The bench clock: `now()`, `sleep(s)` and `wait_until(predicate, timeout_s, poll_s)`.

`WallClock` is real time for hardware. `VirtualClock` is the twin's time in lockstep: the world moves
only when this clock sends `RUN`, stops at every emission, and the clock reads everything emitted
(counted per channel) before it moves on, stamping it with the time of the answer that announced it.
No rig code calls `time.sleep` or `time.time`; it asks the bench clock.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from rig.twinlink import TwinLink

log = logging.getLogger(__name__)


class CountedChannel(Protocol):
    """A rig-side port whose traffic the lockstep clock counts (a serial port, the platform socket)."""

    name: str

    def sent_total(self) -> int:
        """Units (bytes or datagrams) the rig has sent to the twin since the channel opened."""
        ...

    def take(self, count: int, time_s: float) -> None:
        """Read exactly `count` units the twin emitted, stamping them with `time_s`."""
        ...


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wait_until(self, predicate: Callable[[], object], timeout_s: float, poll_s: float = 0.5) -> bool: ...

    def call_at(self, time_s: float, callback: Callable[[], None]) -> None: ...


class WallClock:
    """Real time, for benches of real instruments; `call_at` callbacks run on a timer thread."""

    def __init__(self) -> None:
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_at(self, time_s: float, callback: Callable[[], None]) -> None:
        """Run `callback` at wall time `time_s` (on the clock's timer thread)."""
        with self._changed:
            heapq.heappush(self._timers, (time_s, next(self._sequence), callback))
            self._changed.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run_timers, name="wall-clock-timers", daemon=True)
                self._thread.start()

    def _run_timers(self) -> None:
        while True:
            with self._changed:
                while not self._timers or self._timers[0][0] > time.time():
                    delay = self._timers[0][0] - time.time() if self._timers else None
                    self._changed.wait(delay)
                _, _, callback = heapq.heappop(self._timers)
            try:
                callback()
            except Exception:  # noqa: BLE001 - a failing callback must not stop the other timers
                log.exception("timer callback failed")

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait_until(self, predicate: Callable[[], object], timeout_s: float, poll_s: float = 0.5) -> bool:
        """Poll `predicate` every `poll_s` until it is true (True) or `timeout_s` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(poll_s, remaining))


class VirtualClock:
    """The twin's virtual time, moved in lockstep by this clock alone."""

    def __init__(self, link: TwinLink):
        self.link = link
        self.channels: dict[str, CountedChannel] = {}
        self.settlers: list[Callable[[], None]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self.link.query("SIM:LOCK")
        self._now = float(self.link.query("SIM:TIME?"))

    def now(self) -> float:
        return self._now

    def attach(self, channel: CountedChannel) -> None:
        """Count `channel` from now on: the rig has opened its port, the twin starts counting too."""
        self.link.query(f"SIM:OPEN {channel.name}")
        self.channels[channel.name] = channel

    def detach(self, channel: CountedChannel) -> None:
        """Stop counting `channel` (its port is closing)."""
        if self.channels.get(channel.name) is channel:
            del self.channels[channel.name]
            self.link.query(f"SIM:CLOSE {channel.name}")

    def on_settle(self, settle: Callable[[], None]) -> None:
        """`settle` runs before every RUN (the platform handles what it received before time moves)."""
        self.settlers.append(settle)

    def call_at(self, time_s: float, callback: Callable[[], None]) -> None:
        """Run `callback` when virtual time reaches `time_s` (a rig-side deadline is a RUN target too)."""
        heapq.heappush(self._timers, (time_s, next(self._sequence), callback))

    def sleep(self, seconds: float) -> None:
        target = self._now + seconds
        while self._now < target:
            self.advance(target)

    def wait_until(self, predicate: Callable[[], object], timeout_s: float, poll_s: float = 0.5) -> bool:
        """Run the world until `predicate` is true (True) or `timeout_s` of virtual time passes (False).

        The twin stops at every emission and instrument event, so `poll_s` is not needed here: what
        the predicate looks at can only change when something was emitted.
        """
        deadline = self._now + timeout_s
        while True:
            if predicate():
                return True
            if self._now >= deadline:
                return False
            self.advance(deadline)

    def advance(self, target_s: float) -> None:
        """One RUN: towards `target_s` (or an earlier rig deadline), stopping at the first emission."""
        for settle in self.settlers:
            settle()
        if self._timers:
            target_s = min(target_s, self._timers[0][0])
        counts = " ".join(f"{name}={channel.sent_total()}" for name, channel in self.channels.items())
        answer = self.link.query(f"RUN {target_s!r} {counts}".rstrip()).split()
        self._now = float(answer[0])
        for segment in answer[1:]:
            name, _, count = segment.partition("=")
            channel = self.channels.get(name)
            if channel is not None:
                channel.take(int(count), self._now)
        while self._timers and self._timers[0][0] <= self._now:
            _, _, callback = heapq.heappop(self._timers)
            callback()

    def release(self) -> None:
        """Give the clock back to the twin (it free-runs again)."""
        self.link.query("SIM:FREE")
