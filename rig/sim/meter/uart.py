"""The UART between the meter's MCU and its module, mirrored byte for byte to the AT monitor.

The monitor is the bench's UART sniffer: two receive lines, MCU-to-module and module-to-MCU, each its
own pseudo-terminal. A vendor's MCU is not asked to report on itself: the monitor is the witness.
"""

from __future__ import annotations

from collections.abc import Callable

from rig.sim.module.device import NbiotModule
from rig.sim.transport import PtyChannel


class UartLink:
    """Wires MCU and module together; every byte crossing is also written to its monitor line."""

    def __init__(self, module: NbiotModule, monitor_mcu: PtyChannel, monitor_module: PtyChannel,
                 lockstep: Callable[[], bool]):
        self.module = module
        self.monitor_mcu = monitor_mcu
        self.monitor_module = monitor_module
        self._lockstep = lockstep
        self.to_mcu: Callable[[bytes], None] = lambda data: None
        module.host_write = self._from_module

    def send_to_module(self, data: bytes) -> None:
        """The MCU transmits: the sniffer sees it, the module hears it (if powered)."""
        self.monitor_mcu.write(data, self._lockstep())
        self.module.receive(data)

    def _from_module(self, data: bytes) -> None:
        self.monitor_module.write(data, self._lockstep())
        self.to_mcu(data)
