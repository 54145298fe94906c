"""Judging what the platform received: report schedules and content (C16), message sizes (C16), alarms (C17).

Pure functions on decoded uplinks (`rig.platform.server.Uplink`) and the plan's business model, so the
suites stay readable and the project's tests can feed hand-made uplinks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from rig.platform.server import Uplink
from rig.profiles.plan import BusinessModel, UplinkSizes

DAY_S = 86400.0
REPORT_KINDS = ("basic_report", "enhanced_report")
UNDECODED = "undecoded"

# the plan's schedule names and the meter's `schedule` setting (docs/codec-reference.md, key 13)
SCHEDULE_SETTING = {"household": "household", "leak": "leak", "large_meter": "large",
                    "large_meter_intensive": "large_intensive"}


@dataclass(frozen=True)
class Schedule:
    """One schedule of the business model: how often the meter reports and freezes a reading."""

    name: str
    setting: str
    report_period_s: float
    freeze_interval_s: float

    @property
    def freezes_per_report(self) -> int:
        return round(self.report_period_s / self.freeze_interval_s)

    def reports_in(self, duration_s: float) -> int:
        return round(duration_s / self.report_period_s)


def schedule_of(name: str, business: BusinessModel) -> Schedule:
    """The plan's figures for schedule `name`; large meters freeze like households (4.1 gives them no period)."""
    household_freeze_s = business.household.freeze_period_s
    periods = {
        "household": (DAY_S / business.household.reports_per_day, household_freeze_s),
        "leak": (business.leak.report_period_s, business.leak.freeze_period_s),
        "large_meter": (DAY_S / business.large_meter.reports_per_day, household_freeze_s),
        "large_meter_intensive": (business.large_meter.intensive_report_period_s, household_freeze_s),
    }
    report_period_s, freeze_interval_s = periods[name]
    return Schedule(name, SCHEDULE_SETTING[name], float(report_period_s), float(freeze_interval_s))


def is_report(uplink: Uplink) -> bool:
    return uplink.message is not None and uplink.message["type"] in REPORT_KINDS


def reports_between(uplinks: Iterable[Uplink], after_s: float, until_s: float) -> list[Uplink]:
    """The periodic reports received in (after_s, until_s]."""
    return [u for u in uplinks if is_report(u) and after_s < u.time_s <= until_s]


def interval_errors_s(times_s: Sequence[float], period_s: float) -> list[float]:
    """Each gap between consecutive receptions minus the schedule's period (a missed report shows as +period)."""
    return [later - earlier - period_s for earlier, later in zip(times_s, times_s[1:], strict=False)]


@dataclass(frozen=True)
class ReportContent:
    """One report against the bench: what it says and how far it is from what the bench injected and set."""

    freeze_interval_s: float
    report_period_s: float
    freeze_count: int
    freeze_volume_error_l: float  # the worst freeze: reported minus flow x the reported freeze interval
    flow_error_l_per_h: float
    reverse_l: float
    battery_error_v: float
    alarms: tuple[str, ...]


def report_content(message: dict, flow_l_per_h: float, supply_v: float) -> ReportContent:
    """Reads a decoded report against a steady forward flow `flow_l_per_h` and the supply at `supply_v`."""
    interval_s = float(message["freeze_interval_s"])
    per_freeze_l = flow_l_per_h * interval_s / 3600.0
    volumes = message["period_consumption_l"]
    worst = max((v - per_freeze_l for v in volumes), key=abs, default=float("nan"))
    return ReportContent(
        freeze_interval_s=interval_s,
        report_period_s=float(message["report_period_s"]),
        freeze_count=len(volumes),
        freeze_volume_error_l=float(worst),
        flow_error_l_per_h=float(message["instantaneous_l_per_h"]) - flow_l_per_h,
        reverse_l=float(message["daily_reverse_l"]),
        battery_error_v=message["battery_mv"] / 1000.0 - supply_v,
        alarms=tuple(message.get("alarms", ())),
    )


def size_class(uplink: Uplink) -> str:
    """The kind an uplink's size is judged as: its message type, or `undecoded`."""
    return uplink.message["type"] if uplink.message is not None else UNDECODED


def largest_sizes(uplinks: Iterable[Uplink]) -> dict[str, tuple[int, int]]:
    """Per size class: (largest raw payload in bytes, how many received)."""
    largest: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for uplink in uplinks:
        kind = size_class(uplink)
        largest[kind] = max(largest.get(kind, 0), uplink.size_bytes)
        counts[kind] += 1
    return {kind: (largest[kind], counts[kind]) for kind in largest}


def size_limit_bytes(kind: str, sizes: UplinkSizes) -> int:
    """The largest size table 4-1 allows `kind` (its `_below_` figures are strict), else the message maximum."""
    below = {"basic_report": sizes.basic_report_below_bytes, "enhanced_report": sizes.enhanced_report_below_bytes,
             "alarm": sizes.alarm_below_bytes}
    return min(below[kind] - 1, sizes.message_max_bytes) if kind in below else sizes.message_max_bytes


def alarm_messages(uplinks: Iterable[Uplink], names: Iterable[str] | None = None) -> list[Uplink]:
    """The immediate alarm messages received (of `names` only, when given)."""
    wanted = None if names is None else set(names)
    return [u for u in uplinks if u.message is not None and u.message["type"] == "alarm"
            and (wanted is None or u.message["alarm"] in wanted)]


def alarms_per_day(uplinks: Iterable[Uplink], zone: ZoneInfo) -> Counter[tuple[str, date]]:
    """Immediate alarm messages counted per alarm and calendar day in `zone`."""
    return Counter((u.message["alarm"], datetime.fromtimestamp(u.time_s, zone).date()) for u in alarm_messages(uplinks))


def first_alarm_after(uplinks: Iterable[Uplink], name: str, after_s: float) -> Uplink | None:
    """The first immediate `name` alarm received at or after `after_s`."""
    return next((u for u in alarm_messages(uplinks, [name]) if u.time_s >= after_s), None)
