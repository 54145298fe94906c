"""What the meter knows: its clock, its readings, its configuration, its alarms and its logs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rig.profiles.device_sim import MeterSim
from rig.sim.meter.schedule import FREEZE_INTERVAL_S, REPORT_PERIOD_S

DAY_S = 86400.0
LOG_MODULES = ("comm", "meter", "module", "maintenance")


class MeterClock:
    """The MCU's real-time clock: set once, then drifting by its crystal's error."""

    def __init__(self, world_now_s: float, drift_ppm: float):
        self.drift = drift_ppm * 1e-6
        self._set_at_world_s = world_now_s
        self._set_to_s = world_now_s
        self.listeners: list[Callable[[], None]] = []

    def now(self, world_now_s: float) -> float:
        return self._set_to_s + (world_now_s - self._set_at_world_s) * (1.0 + self.drift)

    def set(self, meter_time_s: float, world_now_s: float) -> None:
        self._set_at_world_s, self._set_to_s = world_now_s, meter_time_s
        for listener in self.listeners:
            listener()

    def world_time_of(self, meter_time_s: float) -> float:
        """When (in world time) the clock will show `meter_time_s`."""
        return self._set_at_world_s + (meter_time_s - self._set_to_s) / (1.0 + self.drift)


@dataclass(frozen=True)
class LogEntry:
    """One line of the meter's log: meter-clock time, internal module, event, detail."""

    time_s: float
    module: str
    event: str
    detail: str = ""


class MeterLog:
    """Communication and operation logs per internal module, kept for `retention_days`."""

    def __init__(self, retention_days: float):
        self.retention_s = retention_days * DAY_S
        self.entries: deque[LogEntry] = deque()

    def add(self, time_s: float, module: str, event: str, detail: str = "") -> None:
        self.entries.append(LogEntry(time_s, module, event, detail))
        while self.entries and self.entries[0].time_s < time_s - self.retention_s:
            self.entries.popleft()

    def since(self, time_s: float) -> list[LogEntry]:
        return [entry for entry in self.entries if entry.time_s >= time_s]

    def clear(self) -> None:
        self.entries.clear()


@dataclass
class Alarms:
    """Alarm conditions: the immediate ones remember the day they were last sent."""

    pending_flags: set[str] = field(default_factory=set)
    last_sent_day: dict[str, int] = field(default_factory=dict)


@dataclass
class Readings:
    """The water that went through: totals and the volume of each freeze period since the last report."""

    forward_l: float = 0.0
    reverse_l: float = 0.0
    rate_l_per_h: float = 0.0
    updated_s: float = 0.0
    frozen_forward_l: float = 0.0
    freezes_l: list[float] = field(default_factory=list)
    daily_start_forward_l: float = 0.0
    daily_start_reverse_l: float = 0.0

    def advance(self, world_now_s: float) -> None:
        volume = self.rate_l_per_h * (world_now_s - self.updated_s) / 3600.0
        if volume >= 0:
            self.forward_l += volume
        else:
            self.reverse_l -= volume
        self.updated_s = world_now_s

    def freeze(self, keep: int) -> None:
        self.freezes_l.append(self.forward_l - self.frozen_forward_l)
        self.frozen_forward_l = self.forward_l
        del self.freezes_l[:-keep]


class MeterConfig:
    """The settings the platform and the maintenance port can read and write."""

    def __init__(self, sim: MeterSim):
        self.values: dict[str, object] = {
            "schedule": sim.schedule,
            "report_t1": sim.report_t1,
            "report_t3_s": sim.report_t3_s,
            "report_period_s": REPORT_PERIOD_S[sim.schedule],
            "freeze_interval_s": sim.freeze_interval_s or FREEZE_INTERVAL_S[sim.schedule],
            "low_battery_threshold_mv": round(sim.low_battery_threshold_v * 1000),
            "low_flow_duration_s": 3600, "low_flow_threshold": 1, "high_flow_duration_s": 600,
            "high_flow_threshold": 2500, "reverse_flow_duration_s": 600, "reverse_flow_threshold": 1,
            "pressure_high_kpa": 600, "pressure_low_kpa": 100,
        }
        self.pending_next_day: dict[str, object] = {}
        self.freeze_override = sim.freeze_interval_s

    def get(self, key: str) -> object:
        return self.values[key]

    def set(self, key: str, value: object, next_day: bool = False) -> None:
        if key not in self.values:
            raise KeyError(key)
        if key == "schedule" and value not in REPORT_PERIOD_S:
            raise KeyError(f"schedule {value!r}")
        if next_day:
            self.pending_next_day[key] = value
            return
        self.values[key] = value
        if key == "schedule":
            self.values["report_period_s"] = REPORT_PERIOD_S[str(value)]
            self.values["freeze_interval_s"] = self.freeze_override or FREEZE_INTERVAL_S[str(value)]

    def apply_pending(self) -> None:
        for key, value in self.pending_next_day.items():
            self.set(key, value)
        self.pending_next_day.clear()
