"""The module's radio state machine and its current: off, booting, searching, connected, idle, PSM.

Connected draws about 50 mA with TX bursts, idle about 1 mA with paging spikes, PSM a few uA. The
network's inactivity timer releases the connection unless release assistance asks first. PSM keeps
the attach. Idle-mode reselection when enabled; a frequency lock when the host asks for one. With no
coverage the search backs off 10, 20, 40 min ... up to 24 h.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import simpy

from rig.profiles.device_sim import ModuleSim
from rig.sim.network import Network
from rig.sim.power import DevicePower
from rig.sim.radio import Cell, Measurement
from rig.sim.world import World

IDLE_EVALUATION_S = 10.24
PAGING_CYCLE_S = 2.56
PAGING_SPIKE_S = 0.02
BOOT_CURRENT_A = 0.02
MINIMUM_FUNCTION_CURRENT_A = 0.0005
FIRST_SEARCH_S = 120.0
LATER_SEARCH_S = 30.0  # shorter than the 60 s of the C21b defect, so its searches stay separate bursts
STORED_EARFCN_SEARCH_S = 4.0
FULL_SEARCH_S = 12.0
TAU_CONNECTED_S = 1.0
ATTACH_ATTEMPTS = 5
SETUP_ATTEMPTS = 3
SETUP_RETRY_S = 1.0
ATTACH_RETRY_S = 10.0


@dataclass
class ModemConfig:
    """Settings that survive a reboot (NCONFIG, NCDP, PSM request, stored frequencies)."""

    autoconnect: bool = True
    cell_reselection: bool = False
    pending_reselection: bool | None = None
    psm_requested: bool = False
    t3412_s: float = 86400.0
    t3324_s: float = 30.0
    stored_earfcns: list[int] = field(default_factory=list)
    earfcn_lock: int | None = None
    server: tuple[str, int] | None = None


class Modem:
    """Radio procedures of one module; the AT layer drives it and hears its URCs through callbacks."""

    def __init__(self, world: World, network: Network, power: DevicePower, settings: ModuleSim, imei: str,
                 urc: Callable[[str], None]):
        self.world = world
        self.env = world.env
        self.network = network
        self.power = power
        self.settings = settings
        self.imei = imei
        self.urc = urc
        self.config = ModemConfig()
        self.powered = False
        self.booted = False
        self.cfun = 0
        self.registration = 0  # +CEREG stat: 0 not searching, 1 registered, 2 searching
        self.connected = False
        self.in_psm = False
        self.serving: Cell | None = None
        self.last_measurement: Measurement | None = None
        self.tx_power_dbm = settings.tx_power_dbm
        self.cereg_mode = 0
        self.cscon_mode = 0
        self.npsmr_mode = 0
        self._generation = 0
        self._service_lost = False
        self._cycle: simpy.Process | None = None
        self._wake = self.env.event()
        self.on_registered: list[Callable[[], None]] = []
        self.on_downlink_datagram: Callable[[bytes, tuple[str, int]], None] | None = None
        self.on_boot: Callable[[str], None] | None = None

    # ---- current -------------------------------------------------------------------------------
    def _draw(self, amps: float) -> None:
        self.power.set("module", amps if self.powered else 0.0)

    def _tx_amps(self) -> float:
        scale = 0.4 + 0.6 * 10 ** ((self.tx_power_dbm - 23.0) / 10.0)
        return self.settings.tx_current_ma * 1e-3 * scale

    # ---- power and boot ------------------------------------------------------------------------
    def power_on(self, cause: str = "REBOOT_CAUSE_SECURITY_PMU_POWER_ON_RESET") -> None:
        if self.powered:
            return
        self.powered = True
        self._restart(cause)

    def power_off(self) -> None:
        """Power cut: everything stops at once; the network hears nothing (no detach)."""
        if not self.powered:
            return
        if self.cfun != 0:
            self.config.stored_earfcns = []  # frequency information is only saved by AT+CFUN=0
        self.powered = False
        self._stop_activity()
        if self.registration == 1:
            self.network.lost(self, "power cut")
        self.registration = 0
        self._draw(0.0)

    def reboot(self, cause: str = "REBOOT_CAUSE_APPLICATION_AT") -> None:
        """AT+NRB: the module restarts (the network sees a detach)."""
        if self.registration == 1:
            self.network.detach(self, "reboot")
        self._restart(cause)

    def _restart(self, cause: str) -> None:
        self._stop_activity()
        self.registration = 0
        self.cfun = 0
        self.booted = False
        if self.config.pending_reselection is not None:
            self.config.cell_reselection = self.config.pending_reselection
            self.config.pending_reselection = None
        self._cycle = self.env.process(self._boot(cause, self._generation))

    def _stop_activity(self) -> None:
        self._generation += 1
        self.connected = self.in_psm = False
        self.serving = None
        if self._cycle is not None and self._cycle.is_alive and self._cycle is not self.env.active_process:
            self._cycle.interrupt()
        self._cycle = None

    def _boot(self, cause: str, generation: int) -> Generator[simpy.Event, None, None]:
        self._draw(BOOT_CURRENT_A)
        try:
            yield self.env.timeout(self.settings.boot_time_s)
        except simpy.Interrupt:
            return
        self.booted = True
        self._draw(MINIMUM_FUNCTION_CURRENT_A)
        if self.on_boot is not None:
            self.on_boot(cause)
        if self.config.autoconnect and generation == self._generation:
            self.set_function(1)

    # ---- function level and search -------------------------------------------------------------
    def set_function(self, level: int) -> None:
        if level == self.cfun:
            return
        if level == 0:
            if self.registration == 1:
                self.network.detach(self, "CFUN=0")
            if self.serving is not None:
                self._remember(self.serving.earfcn)
            self._stop_activity()
            self.cfun = 0
            self._set_registration(0)
            self._draw(MINIMUM_FUNCTION_CURRENT_A)
            return
        self.cfun = 1
        self._stop_activity()
        self._cycle = self.env.process(self._life(self._generation))

    def _remember(self, earfcn: int) -> None:
        if earfcn not in self.config.stored_earfcns:
            self.config.stored_earfcns.append(earfcn)

    def clear_stored_earfcns(self) -> None:
        self.config.stored_earfcns = []

    def _set_registration(self, stat: int) -> None:
        if stat == self.registration:
            return
        self.registration = stat
        if self.cereg_mode >= 2 and self.serving is not None and stat == 1:
            self.urc(f"+CEREG:{stat},{self.serving.tac:04X},{self.serving.cell_id:08X},9")
        elif self.cereg_mode >= 1:
            self.urc(f"+CEREG:{stat}")

    def _allowed_earfcns(self) -> set[int] | None:
        return {self.config.earfcn_lock} if self.config.earfcn_lock is not None else None

    def _search(self, duration_s: float) -> Generator[simpy.Event, None, Measurement | None]:
        self._draw(self.settings.search_current_ma * 1e-3)
        yield self.env.timeout(duration_s)
        return self.network.radio.best(self._allowed_earfcns())

    def _life(self, generation: int) -> Generator[simpy.Event, None, None]:
        """Search (with backoff), attach, then the connected / idle / PSM cycle, for as long as CFUN=1."""
        try:
            first = True
            while True:
                yield from self._search_and_attach(first)
                first = False
                yield from self._cycle_forever()
                # out of service: the serving cell is gone and no other suitable cell could be selected
                self.network.lost(self, "out of coverage")
                self.connected = self.in_psm = False
                self._service_lost = False
        except simpy.Interrupt:
            return

    def _search_and_attach(self, first: bool) -> Generator[simpy.Event, None, None]:
        """Search (with the backoff) until attached; then registered and connected."""
        self._set_registration(2)
        backoff = self.settings.search_backoff_first_s
        failed_attaches = 0
        while True:
            search_started = self.env.now
            found = yield from self._find_cell(first)
            first = False
            if found is not None:
                attached = yield from self.network.attach(self, found.cell)
                if attached:
                    break
                failed_attaches += 1
                if failed_attaches < ATTACH_ATTEMPTS:
                    yield self.env.timeout(ATTACH_RETRY_S)  # T3411
                    continue
            failed_attaches = 0
            self._draw(self.settings.psm_current_ua * 1e-6)
            wait = self.settings.search_fixed_interval_s or backoff
            # the interval runs from the start of one search to the start of the next (C21b measures
            # burst start to burst start); a search longer than the interval is followed at once
            yield self.env.timeout(max(search_started + wait - self.env.now, 0.0))
            backoff = min(backoff * 2, self.settings.search_backoff_cap_s)
        self.serving = self.network.serving_cell(self)
        self._remember(self.serving.earfcn)
        self.last_measurement = self.network.radio.measure(self.serving)
        self._set_registration(1)
        self._enter_connected()
        for callback in list(self.on_registered):
            callback()

    def _find_cell(self, first: bool) -> Generator[simpy.Event, None, Measurement | None]:
        allowed = self._allowed_earfcns()
        if self.config.stored_earfcns:
            candidates = set(self.config.stored_earfcns)
            stored = self.network.radio.best(candidates & allowed if allowed is not None else candidates)
            if stored is not None:
                yield self.env.timeout(STORED_EARFCN_SEARCH_S)
                return stored
        if self.network.radio.best(allowed) is not None:
            return (yield from self._search(FULL_SEARCH_S))
        yield from self._search(FIRST_SEARCH_S if first else LATER_SEARCH_S)
        return None

    # ---- connected / idle / PSM ----------------------------------------------------------------
    def _enter_connected(self) -> None:
        self.connected = True
        self.in_psm = False
        self._draw(self.settings.connected_current_ma * 1e-3)
        if self.cscon_mode:
            self.urc("+CSCON:1")

    def on_rrc_release(self, cause: str) -> None:
        """The network released us: idle for T3324 (paging, reselection), then PSM."""
        if not self.connected:
            return
        self.connected = False
        if self.cscon_mode:
            self.urc("+CSCON:0")
        self._poke()

    def _poke(self) -> None:
        if not self._wake.triggered:
            self._wake.succeed()

    def _cycle_forever(self) -> Generator[simpy.Event, None, None]:
        """Connected, idle and PSM in turn, until the service is lost."""
        while not self._service_lost:
            if self.connected:
                self._wake = self.env.event()
                yield self._wake
                continue
            yield from self._idle()
            if self.connected or self._service_lost:
                continue
            yield from self._psm()

    def _idle(self) -> Generator[simpy.Event, None, None]:
        """RRC idle for T3324 (or until connected again), with paging spikes and reselection."""
        grant = self.network.grant_psm(self.config.t3412_s, self.config.t3324_s) if self.config.psm_requested \
            else None
        active_until = self.env.now + (grant[1] if grant else float("inf"))
        idle_floor = max(self.settings.idle_current_ma * 1e-3
                         - self.settings.paging_spike_ma * 1e-3 * PAGING_SPIKE_S / PAGING_CYCLE_S, 0.0)
        next_evaluation = self.env.now + IDLE_EVALUATION_S
        requested_on_entry = self.config.psm_requested

        def psm_asked_again() -> bool:
            return (not requested_on_entry and self.config.psm_requested
                    and self.network.grant_psm(self.config.t3412_s, self.config.t3324_s) is not None)

        while not self.connected and not self._service_lost and self.env.now < active_until:
            if psm_asked_again():  # an MCU that had switched PSM off asks for it again: PSM now
                break
            self._draw(idle_floor)
            self._wake = self.env.event()
            step = min(PAGING_CYCLE_S, active_until - self.env.now)
            result = yield self._wake | self.env.timeout(step)
            if self._wake in result or self.connected:
                return
            if step >= PAGING_CYCLE_S:
                self._draw(self.settings.paging_spike_ma * 1e-3)
                yield self.env.timeout(PAGING_SPIKE_S)
            if self.env.now >= next_evaluation:
                next_evaluation += IDLE_EVALUATION_S
                self._evaluate_cells()

    def _psm(self) -> Generator[simpy.Event, None, None]:
        """PSM until data to send or the periodic TAU; the attach is kept."""
        self.in_psm = True
        self.network.enter_psm(self)
        self._draw(self.settings.psm_current_ua * 1e-6)
        if self.npsmr_mode:
            self.urc("+NPSMR:1")
        self._wake = self.env.event()
        result = yield self._wake | self.env.timeout(self.config.t3412_s)
        self._leave_psm()
        if self._wake not in result and not self.connected:
            self._draw(self.settings.connected_current_ma * 1e-3)  # random access and RRC setup: radio on
            ok = yield from self.network.connect(self, "tau")
            if ok:
                self._enter_connected()
                self.network.tracking_area_update(self)
                yield self.env.timeout(TAU_CONNECTED_S)
                self.network.release(self, "tau-complete")

    def _leave_psm(self) -> None:
        if self.in_psm:
            self.in_psm = False
            if self.npsmr_mode:
                self.urc("+NPSMR:0")

    def _select_cell(self) -> bool:
        """The serving cell is lost: camp on any suitable allowed cell (selection needs no reselection
        setting), or go out of service."""
        found = self.network.radio.best(self._allowed_earfcns())
        if found is None:
            self._service_lost = True
            self._set_registration(2)
            self._poke()
            return False
        self._camp_on(found)
        return True

    def _camp_on(self, measurement: Measurement) -> None:
        """Move to another cell while registered (reselection or selection after losing the serving one)."""
        cell = measurement.cell
        self.network.reselect(self, cell)
        self.serving = cell
        self.last_measurement = measurement
        self._remember(cell.earfcn)
        if self.cereg_mode >= 2:
            self.urc(f"+CEREG:1,{cell.tac:04X},{cell.cell_id:08X},9")

    def _evaluate_cells(self) -> None:
        """Idle-mode measurement: reselect to a clearly better neighbour when reselection is enabled."""
        if self.serving is None:
            return
        serving = self.network.radio.measure(self.serving)
        self.last_measurement = serving
        if not serving.suitable:
            self._select_cell()
            return
        if not self.config.cell_reselection:
            return
        allowed = self._allowed_earfcns()
        best: Measurement | None = None
        for cell in self.network.neighbours(self.serving):
            if allowed is not None and cell.earfcn not in allowed:
                continue
            candidate = self.network.radio.measure(cell)
            if candidate.suitable and (best is None or candidate.rsrp_dbm > best.rsrp_dbm):
                best = candidate
        threshold = self.network.settings.reselection_threshold_db
        if best is not None and best.rsrp_dbm > serving.rsrp_dbm + threshold:
            self._camp_on(best)

    # ---- data ----------------------------------------------------------------------------------
    def ensure_connected(self) -> Generator[simpy.Event, None, bool]:
        """Mobile-originated data: leave idle or PSM (service request) if needed."""
        if self.registration != 1 or not self.powered:
            return False
        if self.connected:
            return True
        serving = self.network.radio.measure(self.serving) if self.serving else None
        if (serving is None or not serving.suitable) and not self._select_cell():
            return False
        was_in_psm, before_a = self.in_psm, self.power.amps("module")
        self._leave_psm()
        self._draw(self.settings.connected_current_ma * 1e-3)  # random access and RRC setup: radio on
        ok = False
        generation = self._generation
        for attempt in range(SETUP_ATTEMPTS):
            if attempt:
                yield self.env.timeout(SETUP_RETRY_S)
            ok = yield from self.network.connect(self, "mo-data")
            if ok or self.connected:
                ok = True
                break
        if generation != self._generation:  # restarted, cut or switched off meanwhile: this setup is void
            return False
        if ok:
            self._enter_connected()
            self._poke()
        else:  # refused: back to where it was (PSM again, as it says)
            self._draw(before_a)
            if was_in_psm:
                self.in_psm = True
                if self.npsmr_mode:
                    self.urc("+NPSMR:1")
        return ok

    def transmit(self, datagram: bytes, destination: tuple[str, int]) -> Generator[simpy.Event, None, bool]:
        """Send one datagram: connect if needed, TX burst for the air time, back to connected current."""
        ok = yield from self.ensure_connected()
        if not ok or self.serving is None:
            return False
        self.last_measurement = self.network.radio.measure(self.serving)
        self._draw(self._tx_amps())
        sent = yield from self.network.send_uplink(self, datagram, destination)
        if self.connected:
            self._draw(self.settings.connected_current_ma * 1e-3)
        return sent

    def release_assistance(self) -> None:
        """The host says this was the last exchange: ask the network to release at once."""
        if self.connected and self.network.settings.honours_release_assistance:
            self.network.release(self, "release-assistance")

    def on_downlink(self, datagram: bytes, source: tuple[str, int]) -> None:
        if self.on_downlink_datagram is not None:
            self.on_downlink_datagram(datagram, source)

    def on_paged(self) -> None:
        self.env.process(self.ensure_connected())

    def measurement(self) -> Measurement | None:
        """What AT+NUESTATS reports: a fresh measurement of the serving cell."""
        if self.serving is None or not self.powered:
            return None
        self.last_measurement = self.network.radio.measure(self.serving)
        return self.last_measurement
