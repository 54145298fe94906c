"""The AT monitor: the bench's UART sniffer on the MCU-module lines, read as one ordered transcript.

Two receive lines (MCU to module, module to MCU), each a serial port. Every line carries the bench
time of its last byte; lines of one instant keep the order they were emitted in. The transcript keeps
the newest LINES_KEPT lines (a `Window`: indices stay absolute, reading a dropped line raises).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from rig.clock import Clock
from rig.ports import SerialLinePort, StampedLine
from rig.window import Window

MCU, MODULE = "mcu", "module"
LINES_KEPT = 100_000  # many times the busiest check (C19: 1000 writes in 30 days); a year of daily reports: ~10,000


@dataclass(frozen=True, slots=True)  # a month's transcript holds tens of thousands
class MonitorLine:
    """One line on the sniffer: who sent it, when, and what (`overflow_bytes` cut off a line over the limit)."""

    index: int
    time_s: float
    sender: str
    text: str
    overflow_bytes: int = 0

    @property
    def is_command(self) -> bool:
        return self.sender == MCU and self.text.upper().startswith("AT")


class AtMonitor:
    """Both sniffer lines merged into `lines`, in emission order."""

    def __init__(self, clock: Clock, mcu_port: str, module_port: str, baudrate: int = 9600,
                 keep: int = LINES_KEPT):
        self.clock = clock
        self.lines: Window[MonitorLine] = Window("the AT monitor's transcript", keep)
        self._ports = [
            SerialLinePort("monitor_mcu", mcu_port, clock, baudrate, sink=self._sink(MCU)),
            SerialLinePort("monitor_module", module_port, clock, baudrate, sink=self._sink(MODULE)),
        ]

    def _sink(self, sender: str):
        def append(line: StampedLine) -> None:
            self.lines.append(MonitorLine(len(self.lines), line.time_s, sender, line.text, line.overflow_bytes))

        return append

    def mark(self) -> int:
        """An index to read from later (`since`)."""
        return len(self.lines)

    def since(self, mark: int = 0) -> list[MonitorLine]:
        return self.lines[mark:]

    def commands(self, mark: int = 0) -> list[MonitorLine]:
        return [line for line in self.lines[mark:] if line.is_command]

    def matching(self, pattern: str, sender: str | None = None, mark: int = 0) -> Iterator[MonitorLine]:
        regex = re.compile(pattern)
        for line in self.lines[mark:]:
            if (sender is None or line.sender == sender) and regex.search(line.text):
                yield line

    def wait_for(self, pattern: str, timeout_s: float, sender: str | None = None, mark: int | None = None
                 ) -> MonitorLine | None:
        """The first line from `mark` (default: now) matching `pattern`, waiting on the bench clock."""
        start = self.mark() if mark is None else mark
        found: list[MonitorLine] = []

        def seen() -> bool:
            found[:] = list(self.matching(pattern, sender, start))[:1]
            return bool(found)

        with self.clock.waiting_for(f"{pattern!r} on the AT monitor"):
            self.clock.wait_until(seen, timeout_s)
        return found[0] if found else None

    def excerpt(self, start: int = 0, end: int | None = None) -> str:
        """A readable transcript: time, direction and text per line (for reports); lines already dropped
        are left out and the first row says how many."""
        kept_from = max(start, self.lines.first_kept)
        rows = [f"[{kept_from - start} earlier lines dropped: over the transcript's cap]"] if kept_from > start else []
        for line in self.lines[kept_from:end]:
            arrow = "MCU>" if line.sender == MCU else "   <"
            cut = f" [{line.overflow_bytes} more bytes over the line limit dropped]" if line.overflow_bytes else ""
            rows.append(f"{line.time_s:.3f} {arrow} {line.text}{cut}")
        return "\n".join(rows)

    def close(self) -> None:
        for port in self._ports:
            port.close()
