"""The network side of the twin: attach, RRC connections and their release, paging, PSM grants,
reselection, and the path to and from the internet over real UDP: the platform, and any other host (a
spoofer of the rig, on its own counted channel), whose datagrams reach the UE with their real source.
It keeps an event log with virtual timestamps, readable through the control port as a lab callbox would.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import Protocol

import simpy

from rig.profiles.bench import NetworkSettings
from rig.sim import link
from rig.sim.radio import Cell, Measurement, RadioEnvironment, coverage_level
from rig.sim.transport import UdpChannel
from rig.sim.world import World

PAGING_CYCLE_S = 2.56
DOWNLINK_BUFFER = 16


@dataclass(frozen=True)
class NetworkEvent:
    """One line of the network log."""

    time_s: float
    event: str
    imei: str
    pci: int | None = None
    earfcn: int | None = None
    cell_id: int | None = None
    detail: str = ""


class UserEquipment(Protocol):
    """What the network needs of a module."""

    imei: str
    tx_power_dbm: float

    def on_rrc_release(self, cause: str) -> None: ...

    def on_downlink(self, datagram: bytes, source: tuple[str, int]) -> None: ...

    def on_paged(self) -> None: ...


@dataclass
class Context:
    """The network's view of one UE."""

    ue: UserEquipment
    cell: Cell
    attached: bool = False
    connected: bool = False
    in_psm: bool = False
    reachable_for_paging: bool = True
    inactivity: simpy.Process | None = None
    pending_downlink: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    ip: str = "10.0.0.2"


class Network:
    """Cells, core and the route to the platform."""

    def __init__(self, world: World, radio: RadioEnvironment, settings: NetworkSettings, uplink: UdpChannel,
                 lockstep: callable):
        self.world = world
        self.radio = radio
        self.settings = settings
        self.uplink = uplink
        self._lockstep = lockstep
        self.log: list[NetworkEvent] = []
        self.contexts: dict[str, Context] = {}
        uplink.consumer = self.from_internet

    # ---- log -----------------------------------------------------------------------------------
    def record(self, event: str, context: Context | None, imei: str = "", detail: str = "") -> None:
        cell = context.cell if context else None
        self.log.append(
            NetworkEvent(
                self.world.now, event, context.ue.imei if context else imei,
                cell.pci if cell else None, cell.earfcn if cell else None, cell.cell_id if cell else None, detail,
            )
        )

    def log_since(self, index: int) -> list[dict]:
        return [asdict(event) for event in self.log[index:]]

    # ---- radio helpers -------------------------------------------------------------------------
    def measure(self, context: Context) -> Measurement:
        return self.radio.measure(context.cell)

    def ecl(self, measurement: Measurement) -> int:
        return coverage_level(measurement.rsrp_dbm)

    def _attempt(self, probability: float) -> bool:
        return bool(self.world.rng.random() < probability)

    def _signalling(self, context: Context) -> Generator[simpy.Event, None, bool]:
        """Random access and RRC setup: takes longer and fails more often in worse coverage."""
        measurement = self.measure(context)
        if not measurement.suitable:
            return False
        ecl = self.ecl(measurement)
        # the uplink budget is the true path loss, not the UE's noisy measurement of it
        snr = link.uplink_snr_db(self.radio.expected_rsrp_dbm(context.cell), context.ue.tx_power_dbm)
        _, deficit = link.repetitions(snr, link.UL_REQUIRED_SNR_DB)
        yield self.world.env.timeout(link.SIGNALLING_S[ecl] * (1.0 + 0.2 * self.world.rng.random()))
        return self._attempt(link.success_probability(deficit, ecl))

    # ---- procedures ----------------------------------------------------------------------------
    def attach(self, ue: UserEquipment, cell: Cell) -> Generator[simpy.Event, None, bool]:
        """Attach through `cell`; on success the UE is registered and RRC connected."""
        context = Context(ue, cell)
        ok = yield from self._signalling(context)
        if ok:
            yield self.world.env.timeout(1.0 + self.world.rng.random())  # NAS attach, authentication, PDN
            ok = self.radio.measure(cell).suitable
        if not ok:
            self.record("attach_failed", context)
            return False
        context.attached = context.connected = True
        self.contexts[ue.imei] = context
        self.record("attach", context)
        self.record("rrc_setup", context, detail="attach")
        self._restart_inactivity(context)
        return True

    def connect(self, ue: UserEquipment, reason: str) -> Generator[simpy.Event, None, bool]:
        """RRC setup from idle or PSM (mobile originated, or answering a page)."""
        context = self.contexts.get(ue.imei)
        if context is None or not context.attached:
            return False
        ok = yield from self._signalling(context)
        if not ok:
            self.record("rrc_setup_failed", context, detail=reason)
            return False
        context.connected, context.in_psm = True, False
        self.record("rrc_setup", context, detail=reason)
        self._restart_inactivity(context)
        self._flush_downlink(context)
        return True

    def release(self, ue: UserEquipment, cause: str) -> None:
        """Release the RRC connection (release assistance, inactivity, or the network's choice)."""
        context = self.contexts.get(ue.imei)
        if context is None or not context.connected:
            return
        context.connected = False
        if context.inactivity is not None and context.inactivity.is_alive:
            context.inactivity.interrupt()
        context.inactivity = None
        self.record("rrc_release", context, detail=cause)
        ue.on_rrc_release(cause)

    def detach(self, ue: UserEquipment, cause: str) -> None:
        context = self.contexts.pop(ue.imei, None)
        if context is not None:
            if context.inactivity is not None and context.inactivity.is_alive:
                context.inactivity.interrupt()
            self.record("detach", context, detail=cause)

    def lost(self, ue: UserEquipment, cause: str) -> None:
        """The UE vanished without a word (power cut): the network only notices its silence."""
        context = self.contexts.get(ue.imei)
        if context is not None:
            context.connected = False
            if context.inactivity is not None and context.inactivity.is_alive:
                context.inactivity.interrupt()
            self.record("radio_link_lost", context, detail=cause)

    def enter_psm(self, ue: UserEquipment) -> None:
        context = self.contexts.get(ue.imei)
        if context is not None:
            context.in_psm = True

    def tracking_area_update(self, ue: UserEquipment) -> None:
        context = self.contexts.get(ue.imei)
        if context is not None:
            self.record("tau", context)

    def grant_psm(self, t3412_s: float, t3324_s: float) -> tuple[float, float] | None:
        return (t3412_s, t3324_s) if self.settings.grants_psm else None

    def reselect(self, ue: UserEquipment, cell: Cell) -> None:
        context = self.contexts.get(ue.imei)
        if context is not None and context.cell is not cell:
            old = context.cell
            context.cell = cell
            self.record("reselection", context, detail=f"from PCI {old.pci} EARFCN {old.earfcn}")

    def serving_cell(self, ue: UserEquipment) -> Cell | None:
        context = self.contexts.get(ue.imei)
        return context.cell if context else None

    def neighbours(self, cell: Cell) -> list[Cell]:
        """Cells a UE camped on `cell` may reselect to: same EARFCN always, others if broadcast."""
        return [
            other for other in self.radio.cells
            if other is not cell and (other.earfcn == cell.earfcn or self.settings.broadcasts_neighbours)
        ]

    # ---- user plane ----------------------------------------------------------------------------
    def send_uplink(self, ue: UserEquipment, datagram: bytes, destination: tuple[str, int]
                    ) -> Generator[simpy.Event, None, bool]:
        """Transmit one datagram over the air (repetitions by coverage) and route it to the platform."""
        context = self.contexts.get(ue.imei)
        if context is None or not context.connected:
            return False
        measurement = self.measure(context)
        ecl = self.ecl(measurement)
        snr = link.uplink_snr_db(self.radio.expected_rsrp_dbm(context.cell), ue.tx_power_dbm)
        reps, deficit = link.repetitions(snr, link.UL_REQUIRED_SNR_DB)
        yield self.world.env.timeout(link.uplink_air_time_s(len(datagram), reps))
        self._restart_inactivity(context)
        if not (measurement.suitable and self._attempt(link.success_probability(deficit, ecl))):
            self.record("uplink_lost", context, detail=f"{len(datagram)} B, {reps} repetitions")
            return False
        self.record("uplink", context, detail=f"{len(datagram)} B, {reps} repetitions")
        self.uplink.send(datagram, destination, self._lockstep())
        return True

    def uplink_air_time_s(self, ue: UserEquipment, size_bytes: int) -> float:
        context = self.contexts.get(ue.imei)
        if context is None:
            return 0.0
        snr = link.uplink_snr_db(self.radio.expected_rsrp_dbm(context.cell), ue.tx_power_dbm)
        return link.uplink_air_time_s(size_bytes, link.repetitions(snr, link.UL_REQUIRED_SNR_DB)[0])

    def from_internet(self, datagram: bytes, source: tuple[str, int]) -> None:
        """A datagram for the UE (from the platform or any other host): delivered now if connected, after
        paging if idle, held in PSM. The core network routes by destination; the UE sees the source."""
        for context in self.contexts.values():
            if len(context.pending_downlink) < DOWNLINK_BUFFER:
                context.pending_downlink.append((datagram, source))
            if context.connected:
                self._flush_downlink(context)
            elif not context.in_psm:
                self.world.env.process(self._page(context))
            break

    def _page(self, context: Context) -> Generator[simpy.Event, None, None]:
        wait = PAGING_CYCLE_S - (self.world.now % PAGING_CYCLE_S)
        yield self.world.env.timeout(wait)
        if context.pending_downlink and not context.connected and not context.in_psm:
            self.record("paging", context)
            context.ue.on_paged()

    def _flush_downlink(self, context: Context) -> None:
        pending, context.pending_downlink = context.pending_downlink, []
        for datagram, source in pending:
            self.world.env.process(self._deliver(context, datagram, source))

    def _deliver(self, context: Context, datagram: bytes, source: tuple[str, int]
                 ) -> Generator[simpy.Event, None, None]:
        measurement = self.measure(context)
        ecl = self.ecl(measurement)
        reps, deficit = link.repetitions(measurement.sinr_db, link.DL_REQUIRED_SINR_DB)
        yield self.world.env.timeout(link.downlink_air_time_s(len(datagram), reps))
        if not context.connected:
            context.pending_downlink.append((datagram, source))
            return
        self._restart_inactivity(context)
        if measurement.suitable and self._attempt(link.success_probability(deficit, ecl)):
            self.record("downlink", context, detail=f"{len(datagram)} B, {reps} repetitions")
            context.ue.on_downlink(datagram, source)
        else:
            self.record("downlink_lost", context, detail=f"{len(datagram)} B")

    def _restart_inactivity(self, context: Context) -> None:
        if context.inactivity is not None and context.inactivity.is_alive:
            context.inactivity.interrupt()
        context.inactivity = self.world.env.process(self._inactivity(context))

    def _inactivity(self, context: Context) -> Generator[simpy.Event, None, None]:
        try:
            yield self.world.env.timeout(self.settings.inactivity_timer_s)
        except simpy.Interrupt:
            return
        context.inactivity = None
        self.release(context.ue, "inactivity")
