"""C2a, C2b, C2c: idle-mode reselection (same and other EARFCN), no frequency lock, and the platform's
reselection switch (default on).

A meter is watched through what any bench has: its reports at the platform, the AT monitor (release,
PSM, the MCU's `AT+NCONFIG=CELL_RESELECTION`), and, where the bench has one, the network log (a callbox's,
or the twin's). The log, when present, says which cell carried a report and when the module reselected;
without it the report's own `network` block says where the meter camps. A bare module is driven over its
AT port with PSM off and reselection set by the rig, and read with `AT+NUESTATS` and `+CEREG`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import allure
import pytest

from fixtures.checks import Recorder
from rig.bench import Bench
from rig.coverage import CoverageCalculator, CoverageSetting
from rig.errors import RigFault
from rig.instruments.attenuator import MAX_DB
from rig.meter_session import MeterSession
from rig.module_session import ModuleSession
from rig.monitor import MCU, MODULE, AtMonitor
from rig.platform.server import Uplink
from rig.profiles.bench import CellSettings
from rig.profiles.plan import PlanProfile

REPORT_WITHIN_S = 2 * 86400.0  # the first report (power-on stagger) or, without a near-end port, the next daily one
RELEASE_WITHIN_S = 120.0  # the report's exchange ends and the RRC connection is released (inactivity timer 20 s)
PSM_WAIT_MAX_S = 3 * 3600.0  # the longest idle window the rig waits out
AFTER_WINDOW_S = 5.0  # after the idle window closed, before asking for the report that shows the serving cell
SWITCH_WITHIN_S = 600.0  # the MCU applies the platform's switch after the exchange that carried it
RESTART_SETTLE_S = 300.0  # after AT+NRB: boot, search, attach and release again
ATTACH_WITHIN_S = 600.0  # a bare module: power-on (or AT+NRB) to registered
POLL_S = 5.0
T3324_UNITS_S = {0b000: 2.0, 0b001: 60.0, 0b010: 360.0}  # 3GPP TS 24.008 GPRS timer 3 units (AT+CPSMS)

SAME, OTHER = "second_cell", "spare"
B_CASES = [
    pytest.param(SAME, id="same-EARFCN", marks=pytest.mark.needs("two_cells")),
    pytest.param(OTHER, id="other-EARFCN", marks=pytest.mark.needs("other_earfcn", "neighbours")),
]


# ---- the bench's cells ------------------------------------------------------------------------------
class Cells:
    """The calibrated cells by attenuator role, each set to an RSRP at the device (open loop)."""

    def __init__(self, bench: Bench, plan: PlanProfile, installation_loss_db: float):
        if bench.attenuator is None:
            pytest.skip("the bench has no attenuator to set the cells")
        self.bench = bench
        self.attenuator = bench.attenuator
        self.calculator = CoverageCalculator(bench.profile, plan, installation_loss_db)

    def on(self, role: str) -> CellSettings:
        try:
            return self.calculator.cell_on(role)
        except RigFault as error:
            pytest.skip(f"the bench has no cell on the {role} path: {error}")

    def set_rsrp(self, cell: CellSettings, rsrp_dbm: float) -> None:
        self.attenuator.set_attenuation(cell.attenuator_channel, self.calculator.attenuation_for_rsrp(cell, rsrp_dbm))

    def fade(self, cell: CellSettings) -> None:
        self.attenuator.set_attenuation(cell.attenuator_channel, MAX_DB)

    def only(self, levels: dict[int, float]) -> None:
        """These cells at these RSRPs (keyed by attenuator channel), every other path (interferer too) closed."""
        self.attenuator.set_all(MAX_DB)
        for cell in self.bench.profile.rf.cells:
            if cell.attenuator_channel in levels:
                self.set_rsrp(cell, levels[cell.attenuator_channel])


def installation_loss_db(request: pytest.FixtureRequest, plan: PlanProfile) -> float:
    """The `--installation` preset's loss (as the coverage fixture applies it), 0 without one."""
    preset = request.config.getoption("--installation")
    return plan.installation_presets_db[preset].max_db if preset in plan.installation_presets_db else 0.0


def label(cell: CellSettings | tuple[int, int] | None) -> str:
    if cell is None:
        return "none"
    pci, earfcn = (cell.pci, cell.earfcn) if isinstance(cell, CellSettings) else cell
    return f"PCI {pci} EARFCN {earfcn}"


def same_cell(cell: CellSettings, seen: tuple[int, int] | None) -> bool:
    return seen is not None and (cell.pci, cell.earfcn) == seen


# ---- the network log (optional evidence) ----------------------------------------------------------------
class NetworkLog:
    """The network's event log for one IMEI, where the bench has one (the twin's; a callbox's on hardware)."""

    def __init__(self, bench: Bench, imei: str):
        self.bench = bench
        self.imei = imei

    @classmethod
    def of(cls, bench: Bench, imei: str) -> NetworkLog | None:
        return cls(bench, imei) if bench.twin_link is not None else None

    def _all(self, since: int = 0) -> list[dict]:
        return json.loads(self.bench.twin_link.query(f"SIM:NET:LOG? {since}"))

    def mark(self) -> int:
        return len(self._all())

    def events(self, since: int = 0) -> list[dict]:
        return [event for event in self._all(since) if event["imei"] == self.imei]

    def cell_at(self, time_s: float, since: int = 0) -> tuple[int, int] | None:
        """The cell of the last network event for this UE at or before `time_s` (the one that carried it)."""
        cells = [(e["pci"], e["earfcn"]) for e in self.events(since) if e["pci"] is not None and e["time_s"] <= time_s]
        return cells[-1] if cells else None

    def reselection_to(self, cell: CellSettings, since: int) -> float | None:
        times = [e["time_s"] for e in self.events(since)
                 if e["event"] == "reselection" and (e["pci"], e["earfcn"]) == (cell.pci, cell.earfcn)]
        return times[0] if times else None


# ---- what the monitor shows -----------------------------------------------------------------------------
def mcu_enabled(monitor: AtMonitor, command: str) -> bool:
    """The MCU switched on a URC (`AT+CSCON=1`, `AT+NPSMR=1`, `AT+CEREG=2`) at some point."""
    return any(line.text.replace(" ", "").upper().startswith(command) for line in monitor.commands())


def requested_t3324_s(monitor: AtMonitor) -> float | None:
    """The active time the MCU last asked for with `AT+CPSMS` (the network may grant another)."""
    asked = [m for line in monitor.commands()
             if (m := re.match(r'AT\+CPSMS=1,[^,]*,[^,]*,"?[01]{8}"?,"?([01]{8})"?', line.text))]
    if not asked:
        return None
    bits = asked[-1].group(1)
    unit, multiplier = int(bits[:3], 2), int(bits[3:], 2)
    return T3324_UNITS_S[unit] * multiplier if unit in T3324_UNITS_S else None


def reselection_setting(monitor: AtMonitor, start: int = 0, end: int | None = None) -> bool | None:
    """The module's CELL_RESELECTION as the monitor shows it: the last value the module answered to
    `AT+NCONFIG?`, or the MCU set with `AT+NCONFIG=CELL_RESELECTION,...` and applied with `AT+NRB`."""
    state: bool | None = None
    pending: bool | None = None
    for line in monitor.lines[start:end]:
        text = line.text.replace(" ", "").upper()
        if line.sender == MODULE and text.startswith("+NCONFIG:CELL_RESELECTION,"):
            state = text.endswith("TRUE")
        elif line.sender == MCU and text.startswith("AT+NCONFIG=CELL_RESELECTION,"):
            pending = text.endswith("TRUE")
        elif line.sender == MCU and text == "AT+NRB" and pending is not None:
            state, pending = pending, None
    return state


def switch_commands(monitor: AtMonitor, start: int, enabled: bool) -> tuple[bool, bool]:
    """(`AT+NCONFIG=CELL_RESELECTION,<enabled>` sent, followed by `AT+NRB`) on the monitor from `start`."""
    flag = "TRUE" if enabled else "FALSE"
    commands = [line.text.replace(" ", "").upper() for line in monitor.commands(start)]
    sets = [i for i, text in enumerate(commands) if text == f"AT+NCONFIG=CELL_RESELECTION,{flag}"]
    return bool(sets), bool(sets) and "AT+NRB" in commands[sets[0] + 1:]


def first_after(monitor: AtMonitor, pattern: str, after_s: float, timeout_s: float, mark: int):
    """The first module line matching `pattern` stamped at or after `after_s` (waiting on the bench clock)."""
    found: list = []

    def seen() -> bool:
        found[:] = [line for line in monitor.matching(pattern, MODULE, mark) if line.time_s >= after_s][:1]
        return bool(found)

    monitor.clock.wait_until(seen, timeout_s)
    return found[0] if found else None


def cereg_to(monitor: AtMonitor, cell: CellSettings, after_s: float) -> float | None:
    """Time of a `+CEREG` URC naming `cell` (where the MCU enabled `AT+CEREG=2`), at or after `after_s`."""
    pattern = rf'^\+CEREG:(\d,)?1,"?{cell.tac:04X}"?,"?{cell.cell_id:08X}"?'
    times = [line.time_s for line in monitor.matching(pattern, MODULE) if line.time_s >= after_s]
    return times[0] if times else None


# ---- a meter around one swap ------------------------------------------------------------------------------
@dataclass
class Swap:
    """One swap of the two cells in the meter's idle window after a report, and what followed."""

    before: tuple[int, int] | None  # the cell that carried the report before the swap
    after: tuple[int, int] | None  # the cell that carried the report after the idle window
    reported_after: tuple[int, int] | None  # what that report itself says (its network block)
    swap_s: float | None
    window_s: float | None  # release to PSM (+NPSMR:1), else the requested T3324
    window_left_s: float | None  # swap to the end of the idle window
    reselected_s: float | None  # swap to the reselection (network log, else +CEREG on the monitor)
    timing_source: str
    excerpt: str


class MeterRadio:
    """A meter on the bench with two cells: reports, their serving cell, and swaps in the idle window."""

    def __init__(self, meter: MeterSession, cells: Cells, fallback_window_s: float):
        if meter.monitor is None:
            pytest.skip("the meter has no AT monitor")
        self.meter = meter
        self.fallback_window_s = fallback_window_s
        self.monitor = meter.monitor
        self.cells = cells
        self.clock = meter.bench.clock
        self.log = NetworkLog.of(meter.bench, meter.device.identity.imei)

    def report(self, first: bool = False) -> Uplink | None:
        return self.meter.wait_for_report(REPORT_WITHIN_S) if first else self.meter.report_now(REPORT_WITHIN_S)

    @staticmethod
    def reported_cell(report: Uplink | None) -> tuple[int, int] | None:
        network = (report.message or {}).get("network") if report is not None else None
        return (network["pci"], network["earfcn"]) if network else None

    def carried_by(self, report: Uplink | None, log_mark: int) -> tuple[int, int] | None:
        """The cell that carried `report`: the network log's, else the report's own network block."""
        if report is None:
            return None
        if self.log is not None:
            cell = self.log.cell_at(report.time_s, log_mark)
            if cell is not None:
                return cell
        return self.reported_cell(report)

    def release_after(self, report: Uplink, mark: int):
        """The RRC release ending the report's exchange, where the MCU enabled `+CSCON`."""
        if not mcu_enabled(self.monitor, "AT+CSCON=1"):
            return None
        return first_after(self.monitor, r"^\+CSCON:0", report.time_s, RELEASE_WITHIN_S, mark)

    def window_after(self, release, opened_s: float) -> tuple[float | None, float | None, str]:
        """The idle window opened at `release` (at `opened_s` where the monitor shows none): its length and
        end, waited out. From `+CSCON:0` to `+NPSMR:1`, else the T3324 the MCU asked for, else the plan's
        minimum window (not observable)."""
        if release is not None and mcu_enabled(self.monitor, "AT+NPSMR=1"):
            psm = first_after(self.monitor, r"^\+NPSMR:1", release.time_s, PSM_WAIT_MAX_S, release.index)
            if psm is not None:
                return psm.time_s - release.time_s, psm.time_s, "+CSCON:0 to +NPSMR:1 on the monitor"
        start_s = release.time_s if release is not None else opened_s
        t3324 = requested_t3324_s(self.monitor)
        length_s, source = (t3324, "the T3324 the MCU asked for (AT+CPSMS)") if t3324 is not None else \
            (None, "not observable: no +CSCON/+NPSMR or AT+CPSMS on the monitor")
        self.clock.sleep(max(start_s + (length_s or self.fallback_window_s) - self.clock.now(), 0.0))
        end_s = start_s + (length_s or self.fallback_window_s)
        off = next((line for line in self.monitor.matching(r"^AT\+CFUN=0", MCU, release.index if release else 0)
                    if start_s <= line.time_s <= end_s), None)
        if off is not None:  # the MCU switched the module off instead of letting it idle
            return off.time_s - start_s, off.time_s, "release to the MCU's AT+CFUN=0 on the monitor"
        return length_s, start_s + length_s if length_s is not None else None, source

    def swap(self, strong_dbm: float, weak_dbm: float, a: CellSettings, b: CellSettings) -> Swap:
        """`a` strong and `b` weak for a report; at its release `b` strong and `a` weak; then a report
        after the idle window shows where the meter camps."""
        self.cells.set_rsrp(a, strong_dbm)
        self.cells.set_rsrp(b, weak_dbm)
        mark = self.monitor.mark()
        log_mark = self.log.mark() if self.log else 0
        report = self.report()
        before = self.carried_by(report, log_mark)
        if report is None:
            return Swap(None, None, None, None, None, None, None, "no report", self.monitor.excerpt(mark))
        release = self.release_after(report, mark)
        self.cells.set_rsrp(a, weak_dbm)
        self.cells.set_rsrp(b, strong_dbm)
        swap_s = self.clock.now()
        window_s, window_end_s, _ = self.window_after(release, swap_s)
        self.clock.sleep(AFTER_WINDOW_S)
        reselected_s, source = None, "no network log or +CEREG on this bench"
        if self.log is not None:
            found = self.log.reselection_to(b, log_mark)
            reselected_s, source = (found - swap_s if found is not None else None), "network log"
        if reselected_s is None and (found := cereg_to(self.monitor, b, swap_s)) is not None:
            reselected_s, source = found - swap_s, "+CEREG on the monitor"
        after_log_mark = self.log.mark() if self.log else 0
        after_report = self.report()
        after = self.carried_by(after_report, after_log_mark)
        return Swap(before, after, self.reported_cell(after_report), swap_s, window_s,
                    window_end_s - swap_s if window_end_s is not None else None, reselected_s, source,
                    self.monitor.excerpt(mark))

    def settle(self, report: Uplink, mark: int = 0) -> tuple[float | None, str]:
        """After `report`: wait out the idle window it opened; returns its length and how it was seen."""
        window_s, _, source = self.window_after(self.release_after(report, mark), report.time_s)
        self.clock.sleep(AFTER_WINDOW_S)
        return window_s, source


def record_swap(measure: Recorder, name: str, swap: Swap, a: CellSettings, b: CellSettings, expect: bool) -> None:
    """Measurements of one swap: serving cell before and after, reselected (judged), its time."""
    allure.attach(swap.excerpt, f"{name}: AT monitor", allure.attachment_type.TEXT)
    measure(f"{name}_serving_before", label(swap.before), note=f"A is {label(a)}")
    measure(f"{name}_on_a_before_swap", int(same_cell(a, swap.before)), "", low=1,
            note="the meter camps on the strong cell A before the swap")
    measure(f"{name}_serving_after", label(swap.after), note=f"B is {label(b)}; reported {label(swap.reported_after)}")
    reselected = int(same_cell(b, swap.after))
    if expect:
        measure(f"{name}_reselected", reselected, "", low=1, note="reselects to the stronger cell B")
    else:
        measure(f"{name}_reselected", reselected, "", high=0, note="reselection off: stays on A, still suitable")
    if swap.window_s is not None:
        measure(f"{name}_idle_window_s", round(swap.window_s, 2), "s")
    if expect and reselected:
        if swap.reselected_s is not None:
            limit = round(swap.window_left_s, 2) if swap.window_left_s is not None else None
            measure(f"{name}_reselection_time_s", round(swap.reselected_s, 2), "s", high=limit,
                    note=f"swap to reselection ({swap.timing_source}); limit: swap to the end of the idle window")
        else:
            measure(f"{name}_reselection_time_s", "not observable", "s",
                    note=f"{swap.timing_source}: the report after the idle window shows the reselection")


@pytest.fixture
def meter_radio(meter: MeterSession, bench: Bench, plan: PlanProfile, request: pytest.FixtureRequest) -> MeterRadio:
    return MeterRadio(meter, Cells(bench, plan, installation_loss_db(request, plan)), plan.checks.C2a.idle_window_min_s)


# ---- C2a ---------------------------------------------------------------------------------------------
@pytest.mark.check("C2a")
@pytest.mark.needs("attenuator", "monitor")
@pytest.mark.parametrize("b_role", B_CASES)
def test_c2a_meter_reselects_to_the_stronger_cell_in_its_idle_window(meter_radio: MeterRadio, plan: PlanProfile,
                                                                    measure: Recorder, b_role: str) -> None:
    """A -95 dBm and B -105 dBm, swapped at the release after a report: the next report comes through B,
    and the network log (where there is one) shows the reselection inside the idle window."""
    c2a, radio = plan.checks.C2a, meter_radio
    a, b = radio.cells.on("serving"), radio.cells.on(b_role)
    if (b.earfcn == a.earfcn) != (b_role == SAME):
        pytest.skip(f"the bench's {b_role} cell ({label(b)}) is not on the EARFCN this case needs (A: {label(a)})")
    radio.cells.only({a.attenuator_channel: c2a.strong_rsrp_dbm, b.attenuator_channel: c2a.weak_rsrp_dbm})
    radio.meter.power_on()
    first = radio.report(first=True)
    if first is None:
        measure("first_report", "none", note=f"no report within {REPORT_WITHIN_S:.0f} s of power-on")
        pytest.fail("the meter sent no report, so reselection could not be observed")
    window_s, source = radio.settle(first)
    measure("idle_window_s", round(window_s, 2) if window_s is not None else "not observable", "s",
            note=f"{source}; C2a needs >= {c2a.idle_window_min_s:g} s to observe reselection")
    if window_s is not None and window_s < c2a.idle_window_min_s:
        enabled = reselection_setting(radio.monitor)
        measure("reselection_enabled", int(bool(enabled)), "", low=1,
                note=f"idle window {window_s:g} s < {c2a.idle_window_min_s:g} s: judged on C2c's configuration only")
        measure.judge()
        return
    swap = radio.swap(c2a.strong_rsrp_dbm, c2a.weak_rsrp_dbm, a, b)
    record_swap(measure, "swap", swap, a, b, expect=True)
    measure.judge()


# ---- C2b ---------------------------------------------------------------------------------------------
@pytest.mark.check("C2b")
@pytest.mark.needs("attenuator", "monitor", "other_earfcn")
def test_c2b_meter_reports_through_another_earfcn_when_its_cell_fades(meter_radio: MeterRadio,
                                                                     coverage: CoverageSetting, plan: PlanProfile,
                                                                     measure: Recorder) -> None:
    """Serving cell A at the level; after a report A fades out (95 dB) and only C, on another EARFCN, is on
    air at the level's RSRP: the meter must report through C within the plan's time (not frequency-locked)."""
    radio = meter_radio
    a, c = coverage.serving, radio.cells.on("spare")
    if c.earfcn == a.earfcn:
        pytest.skip(f"the bench's spare cell ({label(c)}) shares the serving cell's EARFCN {a.earfcn}")
    radio.meter.power_on()
    first = radio.report(first=True)
    if first is None:
        measure("first_report", "none", note=f"no report within {REPORT_WITHIN_S:.0f} s of power-on")
        pytest.fail("the meter sent no report before the fade")
    measure("serving_before_fade", label(radio.carried_by(first, 0)), note=f"A is {label(a)}")
    radio.settle(first)
    mark = radio.monitor.mark()
    log_mark = radio.log.mark() if radio.log else 0
    radio.cells.set_rsrp(c, coverage.expected_rsrp_dbm)
    radio.cells.fade(a)
    faded_s = radio.clock.now()
    within_s = plan.checks.C2b.report_within_s
    report = radio.meter.report_now(within_s)
    allure.attach(radio.monitor.excerpt(mark), "after the fade: AT monitor", allure.attachment_type.TEXT)
    locks = sorted({line.text for line in radio.monitor.commands() if line.text.startswith("AT+NEARFCN")})
    measure("earfcn_lock_commands", ", ".join(locks) or "none", note="AT+NEARFCN seen on the monitor since boot")
    measure("report_after_fade_s", round(report.time_s - faded_s, 1) if report else "none", "s",
            high=within_s, note=f"only {label(c)} on air")
    if report is None:
        measure.judge()
        return
    carried = radio.carried_by(report, log_mark)
    measure("reported_network", label(radio.reported_cell(report)), note="the report's own network block")
    if carried is None:  # no network log, and the report measured before the module found C: ask once more
        again = radio.report()
        carried = radio.reported_cell(again)
        measure("next_reported_network", label(carried), note="the next report's network block")
    if carried is not None:
        measure("camped_earfcn", carried[1], "", low=c.earfcn, high=c.earfcn,
                note="network log" if radio.log else "the report's network block")
    measure.judge()


# ---- C2c ---------------------------------------------------------------------------------------------
def platform_switch(radio: MeterRadio, enabled: bool, measure: Recorder) -> None:
    """Queue `{"type": "reselection", "enabled": ...}`, carry it with a report, and see the MCU apply it."""
    name = "on" if enabled else "off"
    mark = radio.monitor.mark()
    ticket = radio.meter.platform.queue_downlink(radio.meter.device.identity.imei,
                                                 {"type": "reselection", "enabled": enabled})
    radio.report()
    radio.clock.wait_until(lambda: ticket.answered_at is not None, REPORT_WITHIN_S)
    measure(f"switch_{name}_answer", (ticket.answer or {}).get("status", "none"), note="the meter's answer")
    radio.clock.wait_until(lambda: all(switch_commands(radio.monitor, mark, enabled)), SWITCH_WITHIN_S)
    commanded, rebooted = switch_commands(radio.monitor, mark, enabled)
    flag = "TRUE" if enabled else "FALSE"
    measure(f"switch_{name}_applied", int(commanded and rebooted), "", low=1,
            note=f"AT+NCONFIG=CELL_RESELECTION,{flag} then AT+NRB on the monitor")
    allure.attach(radio.monitor.excerpt(mark), f"switch {name}: AT monitor", allure.attachment_type.TEXT)
    radio.clock.sleep(RESTART_SETTLE_S)


@pytest.mark.check("C2c")
@pytest.mark.needs("attenuator", "monitor", "two_cells")
def test_c2c_meter_obeys_the_platforms_reselection_switch_default_on(meter_radio: MeterRadio, plan: PlanProfile,
                                                                    measure: Recorder, level: str) -> None:
    """On at boot; the platform's "off" is applied (NCONFIG FALSE + NRB) and stops reselection on a swap;
    its "on" restores it. The swap is C2a's (strong/weak RSRPs from plan.checks.C2a, same EARFCN); `level`
    only files the verdict under the plan's behaviour level."""
    c2a, radio = plan.checks.C2a, meter_radio
    a, b = radio.cells.on("serving"), radio.cells.on(SAME)
    radio.cells.only({a.attenuator_channel: c2a.strong_rsrp_dbm, b.attenuator_channel: c2a.weak_rsrp_dbm})
    radio.meter.power_on()
    first = radio.report(first=True)
    if first is None:
        measure("first_report", "none", note=f"no report within {REPORT_WITHIN_S:.0f} s of power-on")
        pytest.fail("the meter sent no report, so the switch could not be sent")
    boot = reselection_setting(radio.monitor)
    measure("reselection_at_boot", int(bool(boot)), "", low=1,
            note="default on: the module's CELL_RESELECTION after the MCU's boot configuration (monitor)")
    radio.settle(first)
    serving, other = a, b
    for enabled in (False, True):
        # the switch's AT+NRB makes the module select a cell afresh: A must be the strong one by then
        radio.cells.set_rsrp(serving, c2a.strong_rsrp_dbm)
        radio.cells.set_rsrp(other, c2a.weak_rsrp_dbm)
        platform_switch(radio, enabled, measure)
        swap = radio.swap(c2a.strong_rsrp_dbm, c2a.weak_rsrp_dbm, serving, other)
        name = f"swap_{'on' if enabled else 'off'}"
        if swap.window_s is not None and swap.window_s < c2a.idle_window_min_s:
            measure(f"{name}_behaviour", "not observable", note=f"idle window {swap.window_s:.1f} s < "
                    f"{c2a.idle_window_min_s:g} s: judged on the switch commands only")
            continue
        record_swap(measure, name, swap, serving, other, expect=enabled)
        if same_cell(other, swap.after):
            serving, other = other, serving
    measure.judge()


# ---- bare module variants (C2a, C2b) ----------------------------------------------------------------------
@dataclass
class Camped:
    pci: int | None
    earfcn: int | None
    registered: bool

    @property
    def cell(self) -> tuple[int, int] | None:
        return (self.pci, self.earfcn) if self.pci is not None else None


class BareModule:
    """A bare module driven by the rig as its MCU would: reselection set, PSM off, URCs on."""

    def __init__(self, session: ModuleSession):
        self.bench = session.bench
        self.clock = session.clock
        self.session = session

    def start(self, reselection: bool) -> None:
        self.session.power_on()
        flag = "TRUE" if reselection else "FALSE"
        self.session.command(f"AT+NCONFIG=CELL_RESELECTION,{flag}")
        self.session.command("AT+NRB")
        for command in ("AT+CPSMS=0", "AT+CSCON=1", "AT+CEREG=2"):
            self.session.command(command)
        if not self.poll(lambda: self.session.command("AT+CGATT?").value("+CGATT:") == "1", ATTACH_WITHIN_S):
            raise RigFault(f"the module did not register within {ATTACH_WITHIN_S:.0f} s")

    def poll(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Ask `condition` (which may send AT commands) every POLL_S of bench time until true or `timeout_s`."""
        deadline = self.clock.now() + timeout_s
        while True:
            if condition():
                return True
            left = deadline - self.clock.now()
            if left <= 0:
                return False
            self.clock.sleep(min(POLL_S, left))

    def wait_idle(self, timeout_s: float = RELEASE_WITHIN_S) -> bool:
        """RRC idle (the network's inactivity timer released the attach's connection)."""
        return self.poll(lambda: self.session.command("AT+CSCON?").value("+CSCON:") in ("1,0", "0,0"), timeout_s)

    def camped(self) -> Camped:
        reply = self.session.command("AT+NUESTATS")
        values = dict(line.split(":", 1) for line in reply.lines if ":" in line)
        pci = int(values.get("PCI", "65535"))
        registered = self.session.command("AT+CGATT?").value("+CGATT:") == "1"
        if pci == 65535:
            return Camped(None, None, registered)
        return Camped(pci, int(values["EARFCN"]), registered)

    def wait_camped_on(self, cell: CellSettings, timeout_s: float) -> float | None:
        """Time of the first `+CEREG` URC naming `cell`, else of the `AT+NUESTATS` poll that shows it."""
        start = len(self.session.history)
        pattern = re.compile(rf'^\+CEREG:(\d,)?1,"?{cell.tac:04X}"?,"?{cell.cell_id:08X}"?')
        seen: list[float] = []

        def there() -> bool:
            urcs = [line.time_s for line in self.session.history[start:] if pattern.match(line.text)]
            if not urcs and same_cell(cell, self.camped().cell):
                urcs = [self.clock.now()]
            seen[:] = urcs[:1]
            return bool(seen)

        return seen[0] if self.poll(there, timeout_s) else None



@pytest.fixture
def bare_module(module: ModuleSession) -> BareModule:
    return BareModule(module)


@pytest.mark.check("C2a")
@pytest.mark.needs("attenuator")
@pytest.mark.parametrize("b_role", B_CASES)
def test_c2a_bare_module_reselects_to_the_stronger_cell_in_idle(bare_module: BareModule, bench: Bench,
                                                               plan: PlanProfile, measure: Recorder,
                                                               request: pytest.FixtureRequest, b_role: str) -> None:
    """PSM off, CELL_RESELECTION on (set by the rig): in RRC idle on A (-95) with B at -105, swapped: the
    module camps on B within the plan's minimum idle window."""
    c2a = plan.checks.C2a
    cells = Cells(bench, plan, installation_loss_db(request, plan))
    a, b = cells.on("serving"), cells.on(b_role)
    if (b.earfcn == a.earfcn) != (b_role == SAME):
        pytest.skip(f"the bench's {b_role} cell ({label(b)}) is not on the EARFCN this case needs (A: {label(a)})")
    cells.only({a.attenuator_channel: c2a.strong_rsrp_dbm, b.attenuator_channel: c2a.weak_rsrp_dbm})
    bare_module.start(reselection=True)
    idle = bare_module.wait_idle()
    before = bare_module.camped()
    measure("serving_before", label(before.cell), note=f"A is {label(a)}")
    measure("on_a_before_swap", int(idle and same_cell(a, before.cell)), "", low=1,
            note="registered and in RRC idle on the strong cell A")
    cells.set_rsrp(a, c2a.weak_rsrp_dbm)
    cells.set_rsrp(b, c2a.strong_rsrp_dbm)
    swap_s = bare_module.clock.now()
    found_s = bare_module.wait_camped_on(b, c2a.idle_window_min_s)
    after = bare_module.camped()
    measure("serving_after", label(after.cell), note=f"B is {label(b)}")
    measure("reselected", int(same_cell(b, after.cell)), "", low=1, note="reselects to the stronger cell B")
    measure("reselection_time_s", round(found_s - swap_s, 2) if found_s is not None else float("nan"), "s",
            high=c2a.idle_window_min_s, note="swap to +CEREG naming B (or AT+NUESTATS showing it)")
    measure.judge()


@pytest.mark.check("C2b")
@pytest.mark.needs("attenuator", "other_earfcn")
def test_c2b_bare_module_camps_on_another_earfcn_when_its_cell_fades(bare_module: BareModule, bench: Bench,
                                                                     coverage: CoverageSetting, plan: PlanProfile,
                                                                     measure: Recorder,
                                                                     request: pytest.FixtureRequest) -> None:
    """Registered on A at the level (PSM off); A fades out and only C, on another EARFCN, is on air: the
    module camps on C and stays registered (not frequency-locked)."""
    cells = Cells(bench, plan, installation_loss_db(request, plan))
    a, c = coverage.serving, cells.on("spare")
    if c.earfcn == a.earfcn:
        pytest.skip(f"the bench's spare cell ({label(c)}) shares the serving cell's EARFCN {a.earfcn}")
    bare_module.start(reselection=True)
    bare_module.wait_idle()
    measure("serving_before_fade", label(bare_module.camped().cell), note=f"A is {label(a)}")
    cells.set_rsrp(c, coverage.expected_rsrp_dbm)
    cells.fade(a)
    faded_s = bare_module.clock.now()
    within_s = plan.checks.C2b.report_within_s
    found_s = bare_module.wait_camped_on(c, within_s)
    after = bare_module.camped()
    measure("camped_after_fade", label(after.cell), note=f"C is {label(c)}")
    measure("camped_earfcn", after.earfcn if after.earfcn is not None else "none", "", low=c.earfcn,
            high=c.earfcn)
    measure("registered", int(after.registered), "", low=1)
    measure("camped_after_fade_s", round(found_s - faded_s, 2) if found_s is not None else float("nan"), "s",
            high=within_s)
    measure.judge()
