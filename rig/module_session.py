"""A bare module on the bench, driven by the rig as its MCU would drive it (AT over its serial port).

Every line the module sends goes into `history`, a `Window` of the newest HISTORY_LINES lines: a command's
reply is read from the mark taken when it was sent, URCs stay readable by index from a check's mark.
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.bench import Bench
from rig.errors import RigFault
from rig.level_confirmation import network_from_nuestats
from rig.ports import SerialLinePort, StampedLine
from rig.profiles.device import DeviceProfile
from rig.window import Window

FINAL_LINES = ("OK", "ERROR")
HISTORY_LINES = 100_000


@dataclass(frozen=True)
class AtReply:
    lines: list[str]
    final: str
    time_s: float

    @property
    def ok(self) -> bool:
        return self.final == "OK"

    def value(self, prefix: str) -> str | None:
        return next((line[len(prefix):] for line in self.lines if line.startswith(prefix)), None)


def is_final(text: str) -> bool:
    """A line that ends an AT reply: `OK`, `ERROR` or a `+CME ERROR: <n>`."""
    return text in FINAL_LINES or text.startswith("+CME ERROR")


def reply_in(lines: list[StampedLine]) -> AtReply | None:
    """The reply that `lines` (everything the module sent since the command) holds, or None before its
    final line; the lines before the final one are its information lines, URCs among them included."""
    end = next((i for i, line in enumerate(lines) if is_final(line.text)), None)
    if end is None:
        return None
    return AtReply([line.text for line in lines[:end]], lines[end].text, lines[end].time_s)


class ModuleSession:
    """`command("AT+CGMR")` returns the reply lines; URCs stay readable in `history`."""

    def __init__(self, bench: Bench, device: DeviceProfile, keep: int = HISTORY_LINES):
        self.bench = bench
        self.clock = bench.clock
        self.history: Window[StampedLine] = Window("the module's AT history", keep)
        self.port = SerialLinePort("at", bench.resolve_port(device.ports.at), bench.clock, device.ports.baudrate,
                                   sink=self.history.append)

    def command(self, text: str, timeout_s: float = 10.0) -> AtReply:
        mark = len(self.history)
        self.port.write_line(text)
        reply: list[AtReply] = []

        def answered() -> bool:
            reply[:] = [found] if (found := reply_in(self.history[mark:])) else []
            return bool(reply)

        if not self.clock.wait_until(answered, timeout_s):
            raise RigFault(f"module did not answer {text!r} within {timeout_s} s")
        return reply[0]

    def power_on(self, boot_timeout_s: float = 30.0) -> None:
        if self.bench.supply is None:
            raise RigFault("the bench has no supply to power the module")
        start = len(self.history)
        self.bench.supply.set_output(True)
        if not self.clock.wait_until(lambda: any(line.text == "OK" for line in self.history[start:]), boot_timeout_s):
            raise RigFault("the module printed no boot banner after power-on")

    def attached(self, timeout_s: float, poll_s: float = 5.0) -> bool:
        """Poll `AT+CGATT?` until the module reports itself attached (False after `timeout_s` of bench time)."""
        deadline = self.clock.now() + timeout_s
        while (self.command("AT+CGATT?").value("+CGATT:") or "").strip() != "1":
            if self.clock.now() >= deadline:
                return False
            self.clock.sleep(poll_s)
        return True

    def network(self) -> dict | None:
        """`AT+NUESTATS` as a network block like a meter report's (None while out of service)."""
        return network_from_nuestats(self.command("AT+NUESTATS").lines)

    def close(self) -> None:
        self.port.close()
