"""Conversions between the bench clock's POSIX seconds and calendar time in a plan's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def parse_instant(text: str, timezone: str = "Asia/Shanghai") -> float:
    """POSIX seconds of an ISO 8601 time; a time without offset is read in `timezone`."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.timestamp()


def format_instant(time_s: float, timezone: str = "Asia/Shanghai") -> str:
    """ISO 8601 with milliseconds in `timezone`."""
    return datetime.fromtimestamp(time_s, ZoneInfo(timezone)).isoformat(timespec="milliseconds")
