"""C22: at least 99 % of the scheduled reports arrive (the white paper's field result after optimisation:
99.2 %), at every coverage level.

The level is held for the plan's number of daily reports; a report counts for its day when the platform
received it on that calendar day (the plan's time zone), retries included. The success rate, the number
counted and its Wilson interval are recorded; fewer reports counted than the plan's minimum make the
cell inconclusive (skipped with the reason), never a pass.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from datetime import date, datetime, time, timedelta
from statistics import NormalDist
from zoneinfo import ZoneInfo

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import confirm_coverage, no_report_at_level
from fixtures.verdicts import inconclusive
from rig.coverage import CoverageSetting
from rig.meter_session import MeterSession, reports_of
from rig.profiles.plan import PlanProfile

log = logging.getLogger(__name__)

DAY_S = 86400.0
FIRST_REPORT_WITHIN_S = 2 * DAY_S
SLEEP_CHUNK_S = 30 * DAY_S  # the twin fast-forwards: sleep in big steps, count from the platform afterwards


def wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(centre - half, 0.0), min(centre + half, 1.0)


def reports_per_day(meter: MeterSession, plan: PlanProfile) -> int:
    """The meter's own report period where its near-end port tells it, else the plan's household schedule."""
    if meter.device.parts.maintenance:
        return max(1, round(DAY_S / meter.maintenance.report_period_s()))
    return plan.business_model.household.reports_per_day


def midnight_s(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(0), zone).timestamp()


@pytest.mark.check("C22")
@pytest.mark.needs("attenuator", "power_analyser")
def test_c22_meter_reports_arrive_on_their_day_at_least_99_percent(meter: MeterSession, coverage: CoverageSetting,
                                                                   level: str, plan: PlanProfile,
                                                                   measure: Recorder) -> None:
    c22 = plan.checks.C22
    zone = ZoneInfo(plan.time.timezone)
    clock = meter.bench.clock
    mark = meter.monitor.mark() if meter.monitor else 0
    meter.power_on()
    first = meter.wait_for_report(FIRST_REPORT_WITHIN_S)
    if first is None:
        no_report_at_level(meter, coverage, plan, mark)
        measure("first_report", "none", note=f"no report within {FIRST_REPORT_WITHIN_S:.0f} s of power-on")
        measure("success_rate", 0.0, "", low=c22.success_min, note="the meter never reported")
        measure.judge()
    confirm_coverage(meter, measure, coverage, plan, first)
    per_day = reports_per_day(meter, plan)
    days = math.ceil(c22.reports_per_level / per_day)
    first_day = datetime.fromtimestamp(first.time_s, zone).date() + timedelta(days=1)  # the first full day
    counted = [first_day + timedelta(days=k) for k in range(days)]
    end_s = midnight_s(counted[-1] + timedelta(days=1), zone)
    while clock.now() < end_s:
        clock.sleep(min(SLEEP_CHUNK_S, end_s - clock.now()))
        log.info("C22 %s: %d reports so far", level, len(reports_of(meter)))

    received = Counter(datetime.fromtimestamp(u.time_s, zone).date() for u in reports_of(meter))
    arrived = sum(min(received[day], per_day) for day in counted)
    n = days * per_day
    rate = arrived / n
    low, high = wilson_interval(arrived, n, c22.confidence)
    measure("reports_per_day", per_day, "", note="the meter's report period")
    measure("reports_scheduled", n, "", note=f"{days} days from {counted[0]} ({plan.time.timezone}); "
                                             f"fewer than {c22.reports_min} is inconclusive")
    measure("reports_arrived", arrived, "", note="received on their day, retries included")
    interval = f"{c22.confidence:.0%} Wilson interval"
    measure("success_rate_ci_low", round(low, 4), "", note=interval)
    measure("success_rate_ci_high", round(high, 4), "", note=interval)
    measure("field_reference", c22.field_reference, "", note="the white paper's field result, recorded")
    missed = [f"{day} {received[day]}/{per_day}" for day in counted if received[day] < per_day]
    allure.attach("\n".join(missed) or "none", "days short of their reports", allure.attachment_type.TEXT)
    if n < c22.reports_min:
        measure("success_rate", round(rate, 4), "", note=f"n = {n}")
        measure("verdict", "inconclusive", note=f"{n} reports counted, fewer than the plan's {c22.reports_min}")
        inconclusive(f"{n} reports counted at {level}, the plan needs {c22.reports_min} "
                    f"(success rate {rate:.2%})")
    measure("success_rate", round(rate, 4), "", low=c22.success_min, note=f"n = {n}, {interval} "
                                                                            f"[{low:.4f}, {high:.4f}]")
    measure.judge()
