"""C3: after its last exchange the device releases the RRC connection at once instead of waiting for the
network's inactivity timer (20 s). Judged on the worst of several reports, from the supply current.

The charge saved is a measurement too, on hardware and twin alike: the connected-mode current of each report's
own connection (+CSCON:1 to +CSCON:0, or to the end of its last exchange) without its TX bursts, times what is
left of the network's inactivity timer (bench `network:`) after the worst tail. The seed's figure is recorded
beside it, not judged."""

from __future__ import annotations

import allure
import numpy as np
import pytest

from fixtures.checks import Recorder, not_applicable
from fixtures.levels import first_report_at_level, module_at_level
from fixtures.verdicts import inconclusive
from rig.analysis.energy import charge_saved_uah, connected_current_a
from rig.analysis.trace import Trace
from rig.measurements import Measurement
from rig.meter_session import MeterSession
from rig.module_session import ModuleSession
from rig.monitor import MODULE
from rig.profiles.plan import PlanProfile
from rig.report.plots import trace_png

ATTEMPTS_PER_REPORT = 3
MODULE_ATTACH_WITHIN_S = 600.0
SETTLE_S = 120.0
RECORD_S = 150.0
PERIOD_S = 0.01
REPORT_WITHIN_S = 100.0
EXCHANGE_END = r"^(\+QLWULDATASTATUS:4|\+NSMI:SENT|\+NNMI:)"


def one_report(meter: MeterSession, plan: PlanProfile, measure: Recorder,
               number: int) -> tuple[Measurement, float] | None:
    """Record one report on the data logger; measure its release tail, its connected current and its charge."""
    c3 = plan.checks.C3
    supply = meter.bench.supply
    mark = meter.monitor.mark()
    started_s = supply.start_data_log(PERIOD_S, RECORD_S)
    report = meter.report_now(REPORT_WITHIN_S)
    trace = Trace.from_chunks(list(supply.read_data_log(started_s, PERIOD_S, RECORD_S)))
    releases = list(meter.monitor.matching(r"^\+CSCON:0$", MODULE, mark))
    ends = [line for line in meter.monitor.matching(EXCHANGE_END, MODULE, mark)
            if not releases or line.time_s <= releases[0].time_s]
    if report is None or not ends:
        measure(f"report_{number}", "not delivered", note="no exchange to measure (delivery is C22's business)")
        return None
    exchange_end_s = ends[-1].time_s
    released_s = trace.first_below(c3.connected_threshold_ma * 1e-3, exchange_end_s, c3.average_window_s)
    tail = measure(f"report_{number}_tail_s", round(released_s - exchange_end_s, 3) if released_s else float("nan"),
                   "s", high=c3.tail_max_s, note="end of last exchange to current below the connected threshold")
    if releases:
        measure(f"report_{number}_tail_cscon_s", round(releases[0].time_s - exchange_end_s, 3), "s",
                note="end of last exchange to +CSCON:0 on the monitor")
    woke_s, slept_s = trace.first_above(c3.wake_above_ma * 1e-3), trace.last_above(c3.floor_above_ma * 1e-3)
    connects = [line for line in meter.monitor.matching(r"^\+CSCON:1$", MODULE, mark) if line.time_s <= exchange_end_s]
    connected_s = connects[0].time_s if connects else trace.first_above(
        c3.connected_threshold_ma * 1e-3, woke_s if woke_s is not None else -float("inf"))
    connected_a = float("nan") if connected_s is None else connected_current_a(
        trace, connected_s, releases[0].time_s if releases else exchange_end_s, c3.tx_above_ma * 1e-3)
    measure(f"report_{number}_connected_ma", round(connected_a * 1e3, 2), "mA",
            note="the connection's current without TX bursts (+CSCON:1 or first rise, to +CSCON:0 or exchange end)")
    if woke_s is not None and slept_s is not None:
        measure(f"report_{number}_charge_uah", round(trace.charge_uah(woke_s, slept_s), 1), "uAh",
                note="wake to floor")
    marks = {"end of last exchange": exchange_end_s}
    if released_s:
        marks["released (current)"] = released_s
    allure.attach(trace_png(trace, f"C3 report {number}: supply current", marks), f"report {number} current",
                  allure.attachment_type.PNG)
    allure.attach(meter.monitor.excerpt(mark), f"report {number} AT monitor", allure.attachment_type.TEXT)
    return tail, connected_a


@pytest.mark.check("C3")
@pytest.mark.needs("power_analyser", "monitor")
def test_c3_meter_releases_at_once_after_its_last_exchange(meter: MeterSession, coverage, plan: PlanProfile,
                                                          measure: Recorder) -> None:
    c3 = plan.checks.C3
    first_report_at_level(meter, measure, coverage, plan, "release assistance could not be measured")
    meter.bench.clock.sleep(SETTLE_S)
    tails: list[Measurement] = []
    connected: list[float] = []
    for number in range(1, ATTEMPTS_PER_REPORT * c3.reports + 1):
        observed = one_report(meter, plan, measure, number)
        if observed is not None:
            tails.append(observed[0])
            connected.append(observed[1])
        if len(tails) == c3.reports:
            break
        meter.bench.clock.sleep(SETTLE_S)
    if len(tails) < c3.reports:
        measure("exchanges_observed", len(tails), "", note=f"{c3.reports} needed")
        inconclusive(f"only {len(tails)} of {c3.reports} reports got through at {coverage.level}")
    values = [float(t.value) for t in tails]
    worst = max(values) if all(v == v for v in values) else float("nan")
    measure("worst_tail_s", worst, "s", high=c3.tail_max_s)
    measured = [a for a in connected if a == a]
    connected_a = float(np.median(measured)) if measured else float("nan")
    timer_s = meter.bench.profile.network.inactivity_timer_s
    measure("connected_current_ma", round(connected_a * 1e3, 2), "mA",
            note="median over the reports of the connection's current without TX bursts")
    measure("inactivity_timer_s", timer_s, "s", note="the network's (bench profile network:)")
    if worst == worst and connected_a == connected_a:
        measure("charge_saved_vs_timer_uah", round(charge_saved_uah(timer_s, worst, connected_a), 1), "uAh",
                note="(network inactivity timer - worst tail) x measured connected current")
    measure("reference_saving_uah", c3.reference_saving_uah, "uAh", note="seed 4.2.2: recorded beside, not judged")
    measure.judge()


@pytest.mark.check("C3")
@pytest.mark.needs("power_analyser")
def test_c3_bare_module_releases_after_a_send_flagged_for_release(bench, device_profile, coverage,
                                                                  plan: PlanProfile, measure: Recorder) -> None:
    """The rig as the MCU: a UDP send with the release flag (0x200); the exchange ends at the send's OK."""
    if device_profile.kind != "module":
        not_applicable("the device is a meter: its variant of this check runs through the meter")
    c3 = plan.checks.C3
    module = ModuleSession(bench, device_profile)
    try:
        module.power_on()
        module.command("AT+CSCON=1")
        module_at_level(module, measure, coverage, plan, MODULE_ATTACH_WITHIN_S)
        socket = module.command("AT+NSOCR=DGRAM,17,5683,1").lines[0]
        tails = []
        for number in range(1, c3.reports + 1):
            bench.clock.sleep(SETTLE_S)
            started_s = bench.supply.start_data_log(PERIOD_S, RECORD_S)
            sent = module.command(f"AT+NSOSTF={socket},127.0.0.1,9,0x200,4,DEADBEEF")
            trace = Trace.from_chunks(list(bench.supply.read_data_log(started_s, PERIOD_S, RECORD_S)))
            released_s = trace.first_below(c3.connected_threshold_ma * 1e-3, sent.time_s, c3.average_window_s)
            tail = round(released_s - sent.time_s, 3) if sent.ok and released_s else float("nan")
            tails.append(measure(f"send_{number}_tail_s", tail, "s", high=c3.tail_max_s,
                                 note="send's OK to current below the connected threshold"))
            marks = {"send OK": sent.time_s} | ({"released (current)": released_s} if released_s else {})
            allure.attach(trace_png(trace, f"C3 send {number}: module current", marks), f"send {number} current",
                          allure.attachment_type.PNG)
    finally:
        module.close()
    measure("worst_tail_s", max(t.value for t in tails), "s", high=c3.tail_max_s)
    measure.judge()
