"""The reference meter's MCU firmware, every checklist behaviour a profile switch (MeterSim).

It freezes readings, reports on its staggered schedule with release assistance on its last exchange,
keeps the module in PSM, retries at 5 min and 1 h then resets after 8 h, handles `+CME ERROR: 513` with
the 1/3/10 min retries and the exception flow, sends `AT+CFUN=0` before cutting module power, reports
network quality, syncs its clock from the platform, obeys downlinks, raises alarms, keeps 30+ days of
logs and verifies signed images. Jobs (reports, alarms, requests from the near-end port) run one at a
time, because they share one module.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import simpy

from rig.codec import Codec, CodecError
from rig.codec.downlink_auth import TRAILER_BYTES, DownlinkRefused, DownlinkVerifier
from rig.profiles.device import Valve
from rig.profiles.device_sim import MeterSim
from rig.sim.meter import schedule
from rig.sim.meter.at_host import AtHost
from rig.sim.meter.state import Alarms, MeterClock, MeterConfig, MeterLog, Readings
from rig.sim.meter.uart import UartLink
from rig.sim.module.device import NbiotModule
from rig.sim.module.timers import encode_t3324, encode_t3412
from rig.sim.power import DevicePower
from rig.sim.world import World

BANNER_WAIT_S = 10.0
ATTACH_POLL_S = 10.0
GIVE_UP_RETRY_S = 3600.0
ACK_WAIT_S = 120.0
DOWNLINK_FIRST_WAIT_S = 10.0
DOWNLINK_QUIET_S = 2.0
FREEZE_WAKE_S = 0.005
VALVE_MOTOR_A = 0.15
VALVE_MOTOR_S = 3.0
LOG_CHUNK_BYTES = 400
CON, CON_RELEASE = 0x0100, 0x0101
IMMEDIATE_ALARMS = ("magnetic", "separation")
HIGH_FLOW_L_PER_H = 2500.0


@dataclass
class Job:
    kind: str
    detail: str = ""
    done: Callable[[list[str]], None] | None = None


@dataclass
class ExchangeOutcome:
    result: str  # ok | fail | 513
    follow_ups: list[Callable[[], Generator[simpy.Event, None, None]]] = field(default_factory=list)


class MeterFirmware:
    """The MCU: its state, its schedule and its conversation with the module."""

    def __init__(self, world: World, sim: MeterSim, module: NbiotModule, uart: UartLink, power: DevicePower,
                 codec: Codec, platform_address: Callable[[], tuple[str, int] | None],
                 supply_voltage: Callable[[], float], valve: Valve, downlink_key: bytes | None = None):
        self.world = world
        self.env = world.env
        self.sim = sim
        self.module = module
        self.uart = uart
        self.power = power
        self.codec = codec
        self.downlinks_signed = downlink_key is not None  # the profile declares platform_auth
        self.downlink_verifier = DownlinkVerifier(downlink_key) if downlink_key and sim.verify_platform_auth else None
        self.platform_address = platform_address
        self.supply_voltage = supply_voltage
        self.valve = valve
        self.meter_number = sim.meter_number
        self.mcu_firmware = sim.mcu_firmware_version
        self.module_firmware = ""
        self.clock = MeterClock(world.now, sim.clock_drift_ppm)
        self.readings = Readings(rate_l_per_h=sim.flow_l_per_h, updated_s=world.now)
        self.config = MeterConfig(sim)
        self.log = MeterLog(sim.log_retention_days)
        self.alarms = Alarms()
        self.reselection_enabled = sim.reselection_at_boot
        self.valve_state = "open" if valve.present else "none"
        self.powered = False
        self.storage = False
        self.module_up = False
        self.boot_measurement: dict | None = None
        self._images: dict[tuple[str, str], bytearray] = {}
        self.pending_from_s = 0.0  # meter time from which the pending T1/T3 hold (the next local midnight)
        self.replan = self.env.event()
        self.clock.listeners.append(self._on_clock_set)
        self._attach_retry_pending = False
        self.at = AtHost(self.env, uart.send_to_module)
        uart.to_mcu = self.at.receive
        self._late_downlinks: list[str] = []  # +NNMI lines no exchange has taken (yet)
        self.at.urc_listeners.append(self._on_urc)
        self.jobs = simpy.Store(self.env)
        self._processes: list[simpy.Process] = []
        self._awake_until_s: float | None = None  # S1 defect: PSM off until then, for more commands after a page

    # ---- time and logs -------------------------------------------------------------------------
    def _on_clock_set(self) -> None:
        """The RTC was set: the report alarm armed on the old time is re-armed."""
        if not self.replan.triggered:
            self.replan.succeed()

    def meter_now(self) -> float:
        return self.clock.now(self.world.now)

    def record(self, module: str, event: str, detail: str = "") -> None:
        self.log.add(self.meter_now(), module, event, detail)

    def _local_day(self) -> int:
        return datetime.fromtimestamp(self.meter_now(), ZoneInfo(self.sim.timezone)).toordinal()

    def _mcu(self, active: bool) -> None:
        amps = self.sim.mcu_active_current_ma * 1e-3 if active else self.sim.mcu_sleep_current_ua * 1e-6
        self.power.set("mcu", amps if self.powered else 0.0)

    # ---- power ---------------------------------------------------------------------------------
    def on_supply(self, powered: bool) -> None:
        if powered and not self.powered:
            self.powered = True
            self._mcu(True)
            self.record("meter", "power_on")
            self._start(self._main())
        elif not powered and self.powered:
            self.powered = False
            for process in self._processes:
                if process.is_alive and process is not self.env.active_process:
                    process.interrupt()
            self._processes.clear()
            self.jobs.items.clear()
            self._late_downlinks.clear()
            self._awake_until_s = None
            self._cut_module_power("supply lost")
            self.power.set("mcu", 0.0)
            self.power.set("valve", 0.0)

    def _start(self, generator: Generator) -> simpy.Process:
        process = self.env.process(self._guarded(generator))
        self._processes.append(process)
        return process

    def _guarded(self, generator: Generator) -> Generator[simpy.Event, None, None]:
        try:
            yield from generator
        except simpy.Interrupt:
            return

    # ---- main loop -----------------------------------------------------------------------------
    def _main(self) -> Generator[simpy.Event, None, None]:
        self._start(self._freezer())
        if self.sim.stagger_after_power_cut and self.meter_number not in self.sim.power_cut_stagger_skipped_for:
            yield self.env.timeout(self._stagger_offset())
        self._start(self._scheduler())
        yield from self._bring_up_module()
        while True:
            self._mcu(False)
            job = yield self.jobs.get()
            self._mcu(True)
            yield from self._run(job)

    def _stagger_offset(self) -> float:
        if not self.sim.stagger:
            return 0.0
        return schedule.stagger_offset_s(self.meter_number, float(self.config.get("report_t3_s")))

    def _scheduler(self) -> Generator[simpy.Event, None, None]:
        """Queues a report at every scheduled time of the meter's own clock.

        T1/T3 written by the platform hold from the next local midnight on: the first slot of the next day
        already follows them (C4). A write of the schedule, T1 or T3 wakes the scheduler to plan again.
        """
        last_due = 0.0
        while True:
            # a time sync may set the clock back over a slot already served: never serve a slot twice
            after = max(self.meter_now(), last_due)
            due = self._next_report_s(after)
            if self.config.pending_next_day and due >= self.pending_from_s:
                self.config.apply_pending()
                due = self._next_report_s(max(after, self.pending_from_s - 1e-3))
            self.replan = self.env.event()
            yield self.env.timeout(max(self.clock.world_time_of(due) - self.world.now, 0.0)) | self.replan
            if self.replan.triggered:
                continue
            last_due = due
            if self.storage:
                continue
            self.jobs.put(Job("report"))

    def _next_report_s(self, after_s: float) -> float:
        return schedule.next_report_s(
            after_s, str(self.config.get("schedule")), str(self.config.get("report_t1")), self._stagger_offset(),
            self.sim.timezone,
        )

    def _next_local_midnight_s(self) -> float:
        local = datetime.fromtimestamp(self.meter_now(), ZoneInfo(self.sim.timezone))
        return (local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp()

    def _freezer(self) -> Generator[simpy.Event, None, None]:
        while True:
            interval = float(self.config.get("freeze_interval_s"))
            due = schedule.next_freeze_s(self.meter_now(), interval)
            yield self.env.timeout(max(self.clock.world_time_of(due) - self.world.now, 1e-3))
            while self.meter_now() < due:  # a time sync set the clock back: the RTC alarm has not rung yet
                yield self.env.timeout(max(self.clock.world_time_of(due) - self.world.now, 1e-3))
            if self.storage:
                continue
            self.readings.advance(self.world.now)
            keep = max(1, round(float(self.config.get("report_period_s")) / interval))
            self.readings.freeze(keep)
            self._check_conditions()
            if self.jobs.items or self.module_busy:
                continue
            self._mcu(True)
            yield self.env.timeout(FREEZE_WAKE_S)
            if not self.module_busy:
                self._mcu(False)

    module_busy = False

    def _run(self, job: Job) -> Generator[simpy.Event, None, None]:
        self.module_busy = True
        try:
            if job.kind == "report":
                yield from self._report()
            elif job.kind == "alarm":
                yield from self._send_alarm(job.detail)
            elif job.kind == "downlink":
                yield from self._late_downlink(job.detail)
            elif job.kind == "attach":
                if not self.module_up:
                    yield from self._bring_up_module()
            elif job.kind == "storage":
                yield from self._enter_storage()
            elif job.kind == "psm":
                yield from self._request_psm(job.detail == "on")
            elif job.kind == "module_command":
                reply = yield from self._module_command(job.detail)
                if job.done is not None:
                    job.done(reply)
        finally:
            self.module_busy = False

    # ---- module bring-up -----------------------------------------------------------------------
    def _power_module(self) -> Generator[simpy.Event, None, bool]:
        self.at.clear_urcs()
        self.module.power_on()
        self.record("module", "power_on")
        banner = yield from self.at.wait_urc(lambda line: line == "Neul", BANNER_WAIT_S)
        return banner is not None

    def _bring_up_module(self) -> Generator[simpy.Event, None, bool]:
        """Power the module, configure it, and let it search for at least the attach guard.

        On giving up the module is switched off cleanly and an attach job is queued an hour later, so
        other jobs (alarms, the near-end port) are served meanwhile.
        """
        if not self.module.modem.powered:
            yield from self._power_module()
        yield from self._configure_module()
        powered_at = self.world.now  # after configuring: its AT+NRB (NCONFIG) restarts the module's search
        while self.world.now - powered_at < self.sim.attach_guard_s:
            reply = yield from self.at.command("AT+CGATT?")
            if reply.value("+CGATT:") == "1":
                yield from self._after_attach()
                return True
            yield self.env.timeout(min(ATTACH_POLL_S, self.sim.attach_guard_s - (self.world.now - powered_at)))
        self.record("module", "attach_give_up", f"after {self.world.now - powered_at:.0f} s")
        yield from self._cut_module_power_cleanly()
        if not self._attach_retry_pending:
            self._attach_retry_pending = True
            self._start(self._attach_later())
        return False

    def _network_for(self, purpose: str) -> Generator[simpy.Event, None, bool]:
        """The module attached for `purpose`; no new search while a give-up is less than an hour old."""
        if self.module_up:
            return True
        if self._attach_retry_pending:
            self.record("comm", "no_network", purpose)
            return False
        return (yield from self._bring_up_module())

    def _attach_later(self) -> Generator[simpy.Event, None, None]:
        yield self.env.timeout(GIVE_UP_RETRY_S)
        self._attach_retry_pending = False
        if not self.module_up and not self.storage:
            self.jobs.put(Job("attach"))

    def _configure_module(self) -> Generator[simpy.Event, None, None]:
        yield from self.at.command("AT")
        reply = yield from self.at.command("AT+CGMR")
        self.module_firmware = (reply.value("SSB,") or "")[:20]
        reply = yield from self.at.command("AT+NCONFIG?")
        current = reply.value("+NCONFIG:CELL_RESELECTION,") == "TRUE"
        if self.reselection_enabled and not current:
            yield from self._set_reselection(True)
        elif not self.reselection_enabled and current and self.sim.obey_reselection_switch:
            yield from self._set_reselection(False)
        for command in ("AT+CSCON=1", "AT+NPSMR=1", "AT+NNMI=1", "AT+NSMI=1", self._psm_command(True)):
            yield from self.at.command(command)
        address = self.platform_address()
        if address is not None:
            yield from self.at.command(f"AT+NCDP={address[0]},{address[1]}")

    def _psm_command(self, enabled: bool) -> str:
        if not enabled:
            return "AT+CPSMS=0"
        return f'AT+CPSMS=1,,,"{encode_t3412(self.sim.requested_t3412_s)}","{encode_t3324(self.sim.requested_t3324_s)}"'

    def _request_psm(self, enabled: bool) -> Generator[simpy.Event, None, None]:
        yield from self.at.command(self._psm_command(enabled))
        self.record("module", "psm_requested" if enabled else "psm_off", "" if enabled else "paged: awake for more")

    def _on_page(self) -> None:
        """S1 defect: a connection the MCU did not ask for (a page) keeps the module out of PSM for a while,
        each page restarting the wait; PSM is asked for again when it ends without one."""
        awake = self._awake_until_s is not None
        self._awake_until_s = self.world.now + self.sim.awake_after_page_s
        if not awake:
            self.jobs.put(Job("psm", "off"))
            self._start(self._awake_until_quiet())

    def _awake_until_quiet(self) -> Generator[simpy.Event, None, None]:
        while self._awake_until_s is not None and self.world.now < self._awake_until_s:
            yield self.env.timeout(self._awake_until_s - self.world.now)
        self._awake_until_s = None
        self.jobs.put(Job("psm", "on"))

    def _set_reselection(self, enabled: bool) -> Generator[simpy.Event, None, None]:
        yield from self.at.command(f"AT+NCONFIG=CELL_RESELECTION,{'TRUE' if enabled else 'FALSE'}")
        yield from self.at.command("AT+NRB", timeout_s=BANNER_WAIT_S)

    def _after_attach(self) -> Generator[simpy.Event, None, None]:
        self.module_up = True
        self.record("module", "attached")
        quality = yield from self._network_quality()
        if self.boot_measurement is None:
            self.boot_measurement = quality
        if self.sim.earfcn_lock and quality is not None:
            yield from self.at.command(f"AT+NEARFCN=0,{quality['earfcn']}")

    def _network_quality(self) -> Generator[simpy.Event, None, dict | None]:
        reply = yield from self.at.command("AT+NUESTATS")
        try:
            values = {line.split(":", 1)[0]: int(line.split(":", 1)[1]) for line in reply.lines if ":" in line}
            if values["PCI"] == 65535:
                return None
            return {"pci": values["PCI"], "rsrp_dbm": values["Signal power"] / 10, "sinr_db": values["SNR"] / 10,
                    "ecl": values["ECL"], "earfcn": values["EARFCN"]}
        except (KeyError, ValueError):
            return None

    def _cut_module_power_cleanly(self) -> Generator[simpy.Event, None, None]:
        if self.sim.cfun0_before_power_off:
            yield from self.at.command("AT+CFUN=0")
        self._cut_module_power("clean")

    def _cut_module_power(self, how: str) -> None:
        """The MCU's switch on the module's supply: logged with `how` (clean, supply lost, a bare cut)."""
        if self.module.modem.powered:
            self.module.power_off()
            if self.powered:
                self.record("module", "power_off", how)
        self.module_up = False

    def _reset_module(self) -> Generator[simpy.Event, None, bool]:
        yield from self.at.command("AT+NRB", timeout_s=BANNER_WAIT_S)
        self.record("module", "reset")
        self.module_up = False
        return (yield from self._bring_up_module())

    # ---- reports -------------------------------------------------------------------------------
    def _report(self) -> Generator[simpy.Event, None, None]:
        attached = yield from self._network_for("report")
        if not attached:
            return
        waits = list(self.sim.retry_waits_s)
        failures = 0
        while True:
            message = yield from self._build_report()
            outcome = yield from self._exchange(message)
            if outcome.result == "513":
                outcome = yield from self._cme513_recovery(message)
            if outcome.result == "ok":
                # every internal module logs each day (C13: >= 30 days of logs per module)
                network = message.get("network")
                self.record("module", "network",
                            " ".join(f"{k}={v}" for k, v in network.items()) if network else "not measured")
                self.record("meter", "reading", f"forward={int(self.readings.forward_l)} L "
                                                f"reverse={int(self.readings.reverse_l)} L")
                self.record("comm", "report_sent", f"attempt {failures + 1}")
                yield from self._finish(outcome)
                return
            failures += 1
            self.record("comm", "report_failed", f"attempt {failures}")
            if outcome.result == "abandoned":
                return
            if failures <= len(waits):
                yield from self._sleep(waits[failures - 1])
            elif failures == len(waits) + 1:
                yield from self._sleep(self.sim.reset_wait_s)
                if self.sim.reset_after_failures:
                    attached = yield from self._reset_module()
                    if not attached:
                        return
            else:
                self.record("comm", "report_abandoned")
                return

    def _sleep(self, seconds: float) -> Generator[simpy.Event, None, None]:
        self._mcu(False)
        yield self.env.timeout(seconds)
        self._mcu(True)

    def _build_report(self) -> Generator[simpy.Event, None, dict]:
        quality = None
        if self.sim.report_network_quality:
            quality = self.boot_measurement if self.sim.rsrp_frozen_at_boot else (yield from self._network_quality())
            if quality is not None and self.sim.reported_rsrp_offset_db:
                quality = quality | {"rsrp_dbm": round(quality["rsrp_dbm"] + self.sim.reported_rsrp_offset_db, 1)}
        self.readings.advance(self.world.now)
        voltage = self.supply_voltage()
        if voltage * 1000 < float(self.config.get("low_battery_threshold_mv")):
            self.alarms.pending_flags.add("low_battery")
        readings = self.readings
        message = {
            "type": "basic_report",
            "meter_number": self.meter_number,
            "time_s": int(self.meter_now()),
            "battery_mv": int(round(voltage * 1000)),
            "alarms": sorted(self.alarms.pending_flags),
            "daily_cumulative_l": int(readings.forward_l - readings.daily_start_forward_l),
            "daily_reverse_l": int(readings.reverse_l - readings.daily_start_reverse_l),
            "instantaneous_l_per_h": int(round(readings.rate_l_per_h)),
            "freeze_interval_s": int(self.config.get("freeze_interval_s")),
            "report_period_s": int(self.config.get("report_period_s")),
            "valve": self.valve_state,
            "mcu_firmware": self.mcu_firmware,
            "module_firmware": self.module_firmware,
            "period_consumption_l": [min(int(round(v)), 65535) for v in readings.freezes_l],
        }
        if quality is not None:
            message["network"] = quality
        if self.sim.report_owner_name is not None:
            message["owner_name"] = self.sim.report_owner_name
        if self.sim.basic_report_bytes:
            size = len(self.codec.encode_uplink(message))
            if size < self.sim.basic_report_bytes:
                message["padding"] = max(self.sim.basic_report_bytes - size - 2, 0)
        return message

    def _finish(self, outcome: ExchangeOutcome) -> Generator[simpy.Event, None, None]:
        self.alarms.pending_flags.clear()
        self.readings.daily_start_forward_l = self.readings.forward_l
        self.readings.daily_start_reverse_l = self.readings.reverse_l
        self.readings.freezes_l.clear()
        for follow_up in outcome.follow_ups:
            yield from follow_up()
        if self.sim.module_sleep == "power_off" and self.module.modem.powered:
            yield from self.at.wait_urc(lambda line: line == "+CSCON:0", 30.0)
            yield from self._answer_stragglers()
            yield from self._cut_module_power_cleanly()

    def _answer_stragglers(self) -> Generator[simpy.Event, None, None]:
        """Before the module goes off: downlinks that come late (a retransmission) are answered, as long as
        one more arrives within the wait for a first downlink (no longer: the meter is not meant to idle)."""
        while True:
            if self._late_downlinks:
                yield from self._late_downlink(self._late_downlinks[0])
                continue
            line = yield from self.at.wait_urc(lambda text: text.startswith("+NNMI:"), DOWNLINK_FIRST_WAIT_S)
            if line is None:
                return

    # ---- one exchange with the platform --------------------------------------------------------
    def _send(self, message: dict, mode: int) -> Generator[simpy.Event, None, str]:
        payload = self.codec.encode_uplink(message)
        self.at.clear_urcs()
        reply = yield from self.at.command(f"AT+QLWULDATAEX={len(payload)},{payload.hex().upper()},0x{mode:04X}")
        if reply.cme == 513:
            self.record("comm", "cme_error", "513")
            return "513"
        if not reply.ok:
            return "fail"
        status = yield from self.at.wait_urc(lambda line: line.startswith("+QLWULDATASTATUS:"), ACK_WAIT_S)
        return "ok" if status == "+QLWULDATASTATUS:4" else "fail"

    def _exchange(self, message: dict) -> Generator[simpy.Event, None, ExchangeOutcome]:
        """Uplink, then the platform's downlinks, then one response with release assistance."""
        result = yield from self._send(message, CON)
        if result != "ok":
            return ExchangeOutcome(result)
        downlinks = yield from self._collect_downlinks()
        return (yield from self._answer(downlinks))

    def _answer(self, downlinks: list[dict]) -> Generator[simpy.Event, None, ExchangeOutcome]:
        """Obey the downlinks and answer them, in as many responses as the 512-byte limit needs (release
        assistance on the last one unless follow-ups need the link)."""
        outcome = ExchangeOutcome("ok")
        results = [self._obey(downlink, outcome) for downlink in downlinks]
        responses = self._responses(results)
        for index, response in enumerate(responses):
            last = index == len(responses) - 1
            mode = CON_RELEASE if last and self.sim.release_assistance and not outcome.follow_ups else CON
            yield from self._send(response, mode)
        return outcome

    def _responses(self, results: list[dict]) -> list[dict]:
        """`results` in order, split over responses that each encode within the message limit."""
        responses: list[dict] = []
        for result in results:
            if responses:
                grown = {**responses[-1], "results": [*responses[-1]["results"], result]}
                try:
                    self.codec.encode_uplink(grown)
                except CodecError:
                    pass
                else:
                    responses[-1] = grown
                    continue
            responses.append({"type": "response", "meter_number": self.meter_number,
                              "time_s": int(self.meter_now()), "results": [result]})
        return responses

    def _on_urc(self, line: str) -> None:
        """Every downlink is answered: one no exchange collects (a retransmission after the release) is a job."""
        if line.startswith("+NNMI:") and self.powered:
            self._late_downlinks.append(line)
            self.jobs.put(Job("downlink", line))
        elif line == "+CSCON:1" and self.powered and not self.module_busy and self.sim.awake_after_page_s > 0:
            self._on_page()

    def _late_downlink(self, line: str) -> Generator[simpy.Event, None, None]:
        if line not in self._late_downlinks:
            return  # an exchange collected it meanwhile
        self._late_downlinks.remove(line)
        downlink = self._decode_downlink(line)
        if downlink is None:
            return
        outcome = yield from self._answer([downlink])
        for follow_up in outcome.follow_ups:
            yield from follow_up()

    def _collect_downlinks(self) -> Generator[simpy.Event, None, list[dict]]:
        """This exchange's downlinks in the order they came: first those still unanswered (some come before
        the uplink's status, when its ACK is retransmitted), then those that follow within the wait."""
        lines = list(self._late_downlinks)
        self._late_downlinks.clear()
        deadline = self.env.now + DOWNLINK_FIRST_WAIT_S
        while self.env.now < deadline:
            wait = DOWNLINK_QUIET_S if lines else deadline - self.env.now
            wait = min(wait, deadline - self.env.now)
            line = yield from self.at.wait_urc(lambda text: text.startswith("+NNMI:"), wait)
            if line is None:
                break
            if line in self._late_downlinks:
                self._late_downlinks.remove(line)
            lines.append(line)
        return [downlink for downlink in map(self._decode_downlink, lines) if downlink is not None]

    def _decode_downlink(self, line: str) -> dict | None:
        """One +NNMI line's command, or None (logged) for one that does not decode or is not the platform's."""
        try:
            data = bytes.fromhex(line.split(",", 1)[1])
        except (ValueError, IndexError):
            self.record("comm", "bad_downlink", line[:40])
            return None
        if self.downlink_verifier is not None:
            try:
                data = self.downlink_verifier.open(data)
            except DownlinkRefused as refusal:
                self.record("comm", "unauthenticated_downlink", str(refusal))
                return None
        candidates = [data, data[:-TRAILER_BYTES]] if self.downlinks_signed and not self.downlink_verifier else [data]
        for candidate in candidates:  # S1 defect: the trailer is skipped unchecked, or the payload taken bare
            try:
                return self.codec.decode_downlink(candidate)
            except CodecError:
                continue
        self.record("comm", "bad_downlink", line[:40])
        return None

    def _obey(self, downlink: dict, outcome: ExchangeOutcome) -> dict:
        """Apply one platform command and say how it went."""
        kind, command_id = downlink["type"], downlink["command_id"]
        status, value = "ok", None
        self.record("comm", "downlink", kind)
        if kind == "time_sync":
            if self.sim.time_sync:
                self.clock.set(float(downlink["time_s"]), self.world.now)
        elif kind == "config_write":
            status = self._write_config(downlink["key"], downlink["value"])
        elif kind == "config_query":
            value = {downlink["key"]: self.config.get(downlink["key"])}
        elif kind == "point_read":
            if not self.sim.answer_point_reads:
                return {"command_id": command_id, "status": "unknown", "value": None}
            self.readings.advance(self.world.now)
            value = {"cumulative_l": int(self.readings.forward_l), "reverse_l": int(self.readings.reverse_l),
                     "instantaneous_l_per_h": int(round(self.readings.rate_l_per_h))}
        elif kind == "valve":
            status = self._valve(downlink["action"])
        elif kind == "reselection":
            if self.sim.apply_configuration:  # the switch is platform configuration too (C19 defect: not applied)
                self.reselection_enabled = bool(downlink["enabled"])
                if self.sim.obey_reselection_switch:
                    outcome.follow_ups.append(lambda: self._set_reselection(self.reselection_enabled))
        elif kind == "log_upload":
            if not self.sim.log_upload:
                status = "refused"
            else:
                days = float(downlink["days"])
                outcome.follow_ups.append(lambda: self._upload_logs(days))
        elif kind == "image_chunk":
            status = self._image_chunk(downlink, outcome)
        else:
            status = "unknown"
        return {"command_id": command_id, "status": status, "value": value}

    def _write_config(self, key: str, value: object) -> str:
        if not self.sim.apply_configuration:
            return "ok"
        if key == "report_t3_s" and not self.sim.obey_platform_t3:
            return "ok"
        next_day = key in ("report_t1", "report_t3_s")
        try:
            self.config.set(key, value, next_day=next_day)
        except KeyError:
            return "refused"
        if next_day:
            self.pending_from_s = self._next_local_midnight_s()
        if key in ("schedule", "report_t1", "report_t3_s") and not self.replan.triggered:
            self.replan.succeed()
        self.record("meter", "config", f"{key}={value}")
        return "ok"

    def _valve(self, action: str) -> str:
        if not self.valve.present:
            return "refused"
        if action == "close" and not self.valve.close_allowed and self.sim.obey_valve_policy:
            self.record("meter", "valve_refused", "closing is forbidden")
            return "refused"
        self.valve_state = "closed" if action == "close" else "open"
        self.record("meter", "valve", self.valve_state)
        self._start(self._run_valve_motor())
        return "ok"

    def _run_valve_motor(self) -> Generator[simpy.Event, None, None]:
        self.power.set("valve", VALVE_MOTOR_A)
        yield self.env.timeout(VALVE_MOTOR_S)
        self.power.set("valve", 0.0)

    # ---- images (SOTA, FOTA, near-end) ---------------------------------------------------------
    def verify_image(self, image: bytes, signature: bytes | None) -> bool:
        if not self.sim.verify_image_signature:
            return True
        expected = hmac.new(self.sim.image_key.get_secret_value().encode(), image, hashlib.sha256).digest()
        return signature is not None and hmac.compare_digest(expected, signature)

    def apply_image(self, target: str, version: str, image: bytes, signature: bytes | None) -> bool:
        if not self.verify_image(image, signature):
            self.record("meter", "image_refused", f"{target} {version}")
            return False
        self.record("meter", "image_applied", f"{target} {version}")
        if target == "mcu":
            self.mcu_firmware = version
        else:
            self.module.settings.firmware_version = version
            self.module.modem.reboot("REBOOT_CAUSE_SECURITY_FOTA_UPGRADE")
            self.module_up = False
        return True

    def _image_chunk(self, downlink: dict, outcome: ExchangeOutcome) -> str:
        key = (downlink["target"], downlink["version"])
        buffer = self._images.setdefault(key, bytearray())
        if downlink["offset"] != len(buffer):
            self._images.pop(key, None)
            return "refused"
        buffer += downlink["data"]
        if len(buffer) < downlink["total"]:
            return "ok"
        image = bytes(self._images.pop(key))
        signature = downlink.get("signature")
        if key[0] == "module":
            # verified now and answered through the module; it reboots into the new image afterwards
            if not self.verify_image(image, signature):
                self.record("meter", "image_refused", f"module {key[1]}")
                return "refused"
            outcome.follow_ups.append(lambda: self._upgrade_module(key[1], image, signature))
            return "ok"
        if not self.apply_image(key[0], key[1], image, signature):
            return "refused"
        return "ok"

    def _upgrade_module(self, version: str, image: bytes, signature: bytes | None
                        ) -> Generator[simpy.Event, None, None]:
        if self.apply_image("module", version, image, signature):
            yield from self._bring_up_module()

    # ---- 513 and the exception flow ------------------------------------------------------------
    def _cme513_recovery(self, message: dict) -> Generator[simpy.Event, None, ExchangeOutcome]:
        for wait in self.sim.cme513_waits_s:
            yield from self._sleep(wait)
            outcome = yield from self._exchange(message)
            if outcome.result != "513":
                return outcome
        self.record("module", "exception_flow")
        for command in self.sim.exception_flow:
            if command == "POWER_OFF":
                yield from self._cut_module_power_cleanly()
            elif command == "POWER_CUT":
                self._cut_module_power("cut without AT+CFUN=0")
            else:
                yield from self.at.command(command, timeout_s=BANNER_WAIT_S)
        self.module_up = False
        return ExchangeOutcome("abandoned")

    # ---- alarms, logs, storage -----------------------------------------------------------------
    def stimulus(self, name: str, value: float | None = None) -> None:
        """A bench stimulus: magnet, separation, or a flow rate in L/h (negative = reverse)."""
        if not self.powered:
            return
        if name == "flow":
            self.readings.advance(self.world.now)
            self.readings.rate_l_per_h = float(value or 0.0)
            self._check_conditions()
            return
        if self.storage and name == "magnetic":
            self.storage = False
            self.record("meter", "storage_off", "magnet")
            self.jobs.put(Job("report"))
            return
        if name in IMMEDIATE_ALARMS:
            today = self._local_day()
            if self.sim.magnet_alarm_once_a_day and self.alarms.last_sent_day.get(name) == today:
                self.record("meter", "alarm_suppressed", name)
                return
            self.alarms.last_sent_day[name] = today
            self.jobs.put(Job("alarm", name))

    def _check_conditions(self) -> None:
        rate = self.readings.rate_l_per_h
        if rate > HIGH_FLOW_L_PER_H:
            self.alarms.pending_flags.add("over_flow")
        if rate < 0:
            self.alarms.pending_flags.add("reverse_flow")
        if self.supply_voltage() * 1000 < float(self.config.get("low_battery_threshold_mv")):
            if "low_battery" not in self.alarms.pending_flags and self.sim.low_battery_immediate:
                self.jobs.put(Job("alarm", "low_battery"))
            self.alarms.pending_flags.add("low_battery")

    def _send_alarm(self, name: str) -> Generator[simpy.Event, None, None]:
        attached = yield from self._network_for(f"alarm {name}")
        if not attached:
            return
        message = {"type": "alarm", "meter_number": self.meter_number, "time_s": int(self.meter_now()),
                   "alarm": name, "value": 1}
        outcome = yield from self._exchange(message)
        self.record("comm", "alarm_sent" if outcome.result == "ok" else "alarm_failed", name)
        for follow_up in outcome.follow_ups:  # downlinks that followed the alarm (log upload, FOTA, switch)
            yield from follow_up()

    def _upload_logs(self, days: float) -> Generator[simpy.Event, None, None]:
        entries = self.log.since(self.meter_now() - days * 86400)
        text = "".join(f"{e.time_s:.0f}|{e.module}|{e.event}|{e.detail}\n" for e in entries).encode()
        chunks = [text[i:i + LOG_CHUNK_BYTES] for i in range(0, len(text), LOG_CHUNK_BYTES)] or [b""]
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            message = {"type": "log_chunk", "meter_number": self.meter_number, "index": index,
                       "total": len(chunks), "entries": chunk}
            mode = CON_RELEASE if last and self.sim.release_assistance else CON
            result = yield from self._send(message, mode)
            if result != "ok":
                self.record("comm", "log_upload_failed", f"chunk {index}")
                return
        self.record("comm", "log_uploaded", f"{len(chunks)} chunks")

    def request(self, kind: str, detail: str = "", done: Callable[[list[str]], None] | None = None) -> None:
        """A job from the near-end port (report now, storage, a module command)."""
        self.jobs.put(Job(kind, detail, done))

    def _enter_storage(self) -> Generator[simpy.Event, None, None]:
        if not self.sim.storage_mode:
            return
        self.storage = True
        self.record("meter", "storage_on")
        yield from self._cut_module_power_cleanly()

    def _module_command(self, command: str) -> Generator[simpy.Event, None, list[str]]:
        if not self.module.modem.powered:
            yield from self._power_module()
        reply = yield from self.at.command(command)
        return [*reply.lines, reply.final]
