"""The bench clock: `now()`, `sleep(s)` and `wait_until(predicate, timeout_s, poll_s)`.

`WallClock` is real time for hardware. `VirtualClock` is the twin's time in lockstep: the world moves
only when this clock sends `RUN`, stops at every emission, and the clock reads everything emitted
(counted per channel) before it moves on, stamping it with the time of the answer that announced it.
No rig code calls `time.sleep` or `time.time`; it asks the bench clock.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol, TextIO

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

    def waiting_for(self, activity: str) -> contextlib.AbstractContextManager[None]: ...


def duration_text(seconds: float) -> str:
    """`2 h 05 min`, `4 min 10 s`, `12 s`."""
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class WallClock:
    """Real time, for benches of real instruments; `call_at` callbacks run on a timer thread.

    A wait longer than `progress_every_s` prints what it waits for and the time left, every
    `progress_every_s` (hours-long waits on hardware should not look like a hang). Checks name what they
    wait for with `with clock.waiting_for("the daily report"):`.
    """

    def __init__(self, progress_every_s: float = 60.0, progress_out: TextIO | None = None) -> None:
        self.progress_every_s = progress_every_s
        self.progress_out = progress_out
        self.activity = "the bench"
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

    @contextlib.contextmanager
    def waiting_for(self, activity: str) -> Iterator[None]:
        """Name what the waits inside the block are for (shown in the progress lines)."""
        previous, self.activity = self.activity, activity
        try:
            yield
        finally:
            self.activity = previous

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.wait_until(lambda: False, seconds, poll_s=seconds)

    def wait_until(self, predicate: Callable[[], object], timeout_s: float, poll_s: float = 0.5) -> bool:
        """Poll `predicate` every `poll_s` until it is true (True) or `timeout_s` passes (False)."""
        started = time.monotonic()
        deadline = started + timeout_s
        next_progress = started + self.progress_every_s
        while True:
            if predicate():
                return True
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return False
            if now >= next_progress:
                self._progress(now - started, remaining)
                next_progress = now + self.progress_every_s
            time.sleep(min(poll_s, remaining, max(next_progress - now, 0.0)))

    def _progress(self, elapsed_s: float, remaining_s: float) -> None:
        out = self.progress_out or sys.__stderr__
        if out is not None:
            out.write(f"[rig] waiting for {self.activity}: {duration_text(elapsed_s)} elapsed, "
                      f"at most {duration_text(remaining_s)} left\n")
            out.flush()


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

    @contextlib.contextmanager
    def waiting_for(self, activity: str) -> Iterator[None]:
        """As `WallClock.waiting_for`; virtual waits take seconds of wall time, so nothing is printed."""
        yield

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
