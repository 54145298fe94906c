"""C6: the meter syncs its clock with the platform in every daily report.

The platform answers every report with a time sync (its own clock, the bench's). On each of the plan's
days the meter's clock is skewed by the plan's amount over the near-end port (`SET CLOCK`, bench time
plus the skew) an hour after a report, while the meter sleeps; after the next report, once the meter
has answered that report's time sync (or a while after the report when it does not answer it), its
clock is read over the near-end port and compared with the bench's time in the middle of that read.
The residual must stay within the plan's limit after every daily report. The report's own clock shows
that the skew was in force when the meter woke.
"""

from __future__ import annotations

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import first_report_at_level
from rig.analysis.downlinks import clock_residual_s, status_of
from rig.coverage import CoverageSetting
from rig.meter_session import MeterSession
from rig.platform.server import Ticket, Uplink
from rig.profiles.plan import PlanProfile

ASLEEP_AFTER_REPORT_S = 3600.0  # the report's exchange is long over: the meter sleeps
NEXT_REPORT_WITHIN_S = 2 * 86400.0  # a daily report, and a failed day
SYNC_ANSWER_WITHIN_S = 600.0  # the report's exchange, time sync answered included


def read_clock(meter: MeterSession) -> tuple[float, float]:
    """The meter's clock over the near-end port and the bench's time in the middle of the read."""
    asked_s = meter.bench.clock.now()
    meter_clock_s = meter.maintenance.clock()
    answered_s = meter.bench.clock.now()
    return clock_residual_s(meter_clock_s, asked_s, answered_s), answered_s - asked_s


def time_sync_after(meter: MeterSession, report: Uplink) -> Ticket | None:
    """The platform's time sync for `report`'s wake, waited for until answered (or the exchange is over)."""
    def syncs() -> list[Ticket]:
        return [t for t in meter.platform.tickets if t.message["type"] == "time_sync" and t.queued_at >= report.time_s]

    meter.bench.clock.wait_until(lambda: any(t.answered_at is not None for t in syncs()), SYNC_ANSWER_WITHIN_S)
    answered = [t for t in syncs() if t.answered_at is not None]
    return answered[0] if answered else next(iter(syncs()), None)


def describe_sync(sync: Ticket | None) -> str:
    if sync is None:
        return "no time sync queued"
    sent = f"{sync.sent_at:.3f}" if sync.sent_at is not None else "never"
    answered = f"{sync.answered_at:.3f}" if sync.answered_at is not None else "never"
    return (f"time sync {sync.message} ({len(sync.payload)} B): queued {sync.queued_at:.3f}, sent {sent}, "
            f"answered {answered} ({status_of(sync)})")


@pytest.mark.check("C6")
@pytest.mark.needs("attenuator", "power_analyser", "maintenance")
def test_c6_meter_clock_follows_the_platform_after_every_daily_report(
        meter: MeterSession, coverage: CoverageSetting, level: str, plan: PlanProfile, measure: Recorder) -> None:
    c6 = plan.checks.C6
    clock = meter.bench.clock
    report = first_report_at_level(meter, measure, coverage, plan, "its clock could not be skewed and synced")
    residuals, evidence = [], []
    for day in range(1, c6.days + 1):
        clock.sleep(max(report.time_s + ASLEEP_AFTER_REPORT_S - clock.now(), 0.0))
        meter.maintenance.set_clock(clock.now() + c6.skew_s)
        skew_s, _ = read_clock(meter)
        measure(f"day_{day}_skew_set_s", round(skew_s, 3), "s", note=f"SET CLOCK bench time + {c6.skew_s:g} s")
        mark = meter.monitor.mark() if meter.monitor is not None else None
        report = meter.wait_for_report(NEXT_REPORT_WITHIN_S)
        if report is None:
            measure(f"day_{day}_report", "none", note=f"no report within {NEXT_REPORT_WITHIN_S:.0f} s of the skew")
            pytest.fail(f"the meter sent no report after the skew of day {day}, so its sync could not be measured")
        measure(f"day_{day}_report_clock_s", round(report.message["time_s"] - report.time_s, 1), "s",
                note="the report's own clock - its reception: the skew in force at the wake")
        sync = time_sync_after(meter, report)
        residual_s, read_s = read_clock(meter)
        residuals.append(residual_s)
        measure(f"day_{day}_residual_s", round(residual_s, 3), "s", low=-c6.residual_max_s, high=c6.residual_max_s,
                note=f"meter clock (near-end port) - bench time, read {read_s * 1e3:.0f} ms round trip")
        evidence.append(f"day {day}: report received {report.time_s:.3f} with meter time {report.message['time_s']}; "
                        f"{describe_sync(sync)}; residual {residual_s:+.3f} s")
        if meter.monitor is not None:
            allure.attach(meter.monitor.excerpt(mark), f"AT monitor, day {day}: report and time sync",
                          allure.attachment_type.TEXT)
    measure("worst_residual_s", round(max(abs(r) for r in residuals), 3), "s", high=c6.residual_max_s,
            note=f"after each of {c6.days} daily reports")
    allure.attach("\n".join(evidence), "reports and time syncs (decoded)", allure.attachment_type.TEXT)
    allure.attach("\n".join(str(line) for line in meter.maintenance.transcript), "near-end port transcript",
                  allure.attachment_type.TEXT)
    measure.judge()
