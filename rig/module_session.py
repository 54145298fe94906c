"""A bare module on the bench, driven by the rig as its MCU would drive it (AT over its serial port)."""

from __future__ import annotations

from dataclasses import dataclass

from rig.bench import Bench
from rig.errors import RigFault
from rig.level_confirmation import network_from_nuestats
from rig.ports import SerialLinePort
from rig.profiles.device import DeviceProfile

FINAL_LINES = ("OK", "ERROR")


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


class ModuleSession:
    """`command("AT+CGMR")` returns the reply lines; URCs stay readable in `port.lines` history."""

    def __init__(self, bench: Bench, device: DeviceProfile):
        self.bench = bench
        self.clock = bench.clock
        self.port = SerialLinePort("at", bench.resolve_port(device.ports.at), bench.clock, device.ports.baudrate,
                                   sink=self._keep)
        self.history: list = []
        self._pending: list = []

    def _keep(self, line) -> None:
        self.history.append(line)
        self._pending.append(line)

    def command(self, text: str, timeout_s: float = 10.0) -> AtReply:
        self._pending.clear()
        self.port.write_line(text)
        final: list = []

        def answered() -> bool:
            final[:] = [line for line in self._pending if line.text in FINAL_LINES or line.text.startswith("+CME")]
            return bool(final)

        if not self.clock.wait_until(answered, timeout_s):
            raise RigFault(f"module did not answer {text!r} within {timeout_s} s")
        end = self._pending.index(final[0])
        return AtReply([line.text for line in self._pending[:end]], final[0].text, final[0].time_s)

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
