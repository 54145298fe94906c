"""When the meter freezes readings and reports: the schedules of the business model and the stagger rule.

Report time T = T1 + T2, T2 = (n mod 200) x T3 + (n mod 60) s (white paper 4.2.2, C4). Periods shorter
than a day are staggered by the same offset within the period.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

DAY_S = 86400.0
REPORT_PERIOD_S = {"household": DAY_S, "leak": 3600.0, "large": DAY_S / 2, "large_intensive": 7200.0}
FREEZE_INTERVAL_S = {"household": 1800.0, "leak": 300.0, "large": 1800.0, "large_intensive": 1800.0}


def stagger_offset_s(meter_number: int, t3_s: float) -> float:
    """T2 = (n mod 200) x T3 + (n mod 60) seconds."""
    return (meter_number % 200) * t3_s + (meter_number % 60)


def seconds_of_day(text: str) -> float:
    hours, minutes = (int(part) for part in text.split(":"))
    return hours * 3600.0 + minutes * 60.0


def next_report_s(after_s: float, schedule: str, t1: str, offset_s: float, timezone: str) -> float:
    """The first report time strictly after `after_s` (POSIX seconds of the meter's clock)."""
    zone = ZoneInfo(timezone)
    period = REPORT_PERIOD_S[schedule]
    local = datetime.fromtimestamp(after_s, zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    first = seconds_of_day(t1) + offset_s if period >= DAY_S / 2 else offset_s % period
    candidates = [
        (midnight + timedelta(days=day)).timestamp() + first + k * period
        for day in (-1, 0, 1)
        for k in range(round(DAY_S / period))
    ]
    return min(c for c in candidates if c > after_s)


def next_freeze_s(after_s: float, interval_s: float) -> float:
    """Freezes fall on multiples of the interval (local clock alignment is the same for whole hours)."""
    return (after_s // interval_s + 1) * interval_s
