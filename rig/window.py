"""A record that keeps only its newest items but keeps counting: what the rig receives over a month unattended.

The platform's datagrams and uplinks, the AT monitor's lines and a module's history grow with every
day a bench runs. A `Window` holds at most `cap` of them, and indices stay absolute: `len()` counts
every item ever appended, so a check's mark (`len(window)` at its start) and `window[mark:]` mean what
they meant with a plain list. A read that reaches an item already dropped raises `RecordDropped`,
a rig fault naming the record and its cap, so no verdict rests on a silently shortened record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

from rig.errors import RigFault

log = logging.getLogger(__name__)
T = TypeVar("T")


class RecordDropped(RigFault):
    """A check read items a bounded record had already dropped: the check outlived the record's cap."""


class Window(Sequence[T]):
    """The newest `cap` items of an append-only record, indexed as if none had been dropped.

    When full it drops its oldest tenth at once (so appends stay O(1) amortised); `dropped` says how
    many went. Iterating, `index` and `in` cover the whole record, so they raise once anything is gone;
    `since(mark)` and slices from a mark read only what a check needs.
    """

    def __init__(self, name: str, cap: int):
        if cap < 1:
            raise ValueError(f"{name}: a window needs a cap of at least 1, got {cap}")
        self.name = name
        self.cap = cap
        self.dropped = 0
        self._items: list[T] = []
        self._lock = threading.Lock()  # a hardware reader thread appends while a check reads

    def append(self, item: T) -> None:
        with self._lock:
            if len(self._items) >= self.cap:
                count = max(1, self.cap // 10)
                if not self.dropped:
                    log.warning("%s: over its cap of %d items, the oldest are dropped from now on", self.name, self.cap)
                del self._items[:count]
                self.dropped += count
            self._items.append(item)

    def __len__(self) -> int:
        with self._lock:
            return self.dropped + len(self._items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        with self._lock:
            total = self.dropped + len(self._items)
            if isinstance(index, slice):
                start, stop, step = index.indices(total)
                if step != 1:
                    raise ValueError(f"{self.name}: windows are read in order (step 1), not with step {step}")
                if start >= stop:
                    return []
                self._check_kept(start)
                return self._items[start - self.dropped : stop - self.dropped]
            absolute = index + total if index < 0 else index
            if not 0 <= absolute < total:
                raise IndexError(f"{self.name}: index {index} out of range (0..{total - 1})")
            self._check_kept(absolute)
            return self._items[absolute - self.dropped]

    def since(self, mark: int = 0) -> list[T]:
        """The items from absolute index `mark` on (`RecordDropped` if some of them are gone)."""
        return self[mark:]

    @property
    def first_kept(self) -> int:
        """The absolute index of the oldest item still held."""
        return self.dropped

    def kept(self) -> list[T]:
        """Every item still held, oldest first (the record's tail; never raises)."""
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self[0:])

    def __reversed__(self) -> Iterator[T]:
        return reversed(self[0:])

    def __contains__(self, item: object) -> bool:
        return item in self[0:]

    def __eq__(self, other: object) -> bool:
        """A window equals the list (or window) of the same items, like the list it stands for."""
        if isinstance(other, Window):
            return self[0:] == other[0:]
        if isinstance(other, list):
            return self[0:] == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def index(self, item: object, start: int = 0, stop: int | None = None) -> int:
        """The absolute index of `item`, searched from absolute `start` (which must still be held)."""
        first = slice(start, stop).indices(len(self))[0]
        return first + self[first:stop].index(item)

    def _check_kept(self, absolute: int) -> None:
        if absolute < self.dropped:
            raise RecordDropped(
                f"{self.name}: item {absolute} was dropped (the record keeps the newest {self.cap} items and has "
                f"dropped {self.dropped}); the check ran longer than this record holds"
            )

    def __repr__(self) -> str:
        return f"Window({self.name!r}, cap={self.cap}, len={len(self)}, dropped={self.dropped})"
