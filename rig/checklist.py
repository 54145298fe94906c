"""The checklist's items as the report shows them: id, title and area (Allure epic)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    area: str

    @property
    def feature(self) -> str:
        return f"{self.id} {self.title}"


ITEMS = {item.id: item for item in (
    Item("C1", "chip power-optimised release", "radio"),
    Item("C2a", "cell reselection", "radio"),
    Item("C2b", "no frequency lock", "radio"),
    Item("C2c", "reselection switch from the platform", "radio"),
    Item("C3", "release assistance", "power"),
    Item("C5", "PSM, not power-off", "power"),
    Item("C8", "attach guard", "radio"),
    Item("C12", "network quality", "radio"),
    Item("C21a", "storage mode", "power"),
    Item("C21b", "search backoff", "power"),
    Item("C22", "report success", "radio"),
    Item("B1", "battery life", "power"),
    Item("C4", "access stagger", "meter behaviour"),
    Item("C4f", "fleet projection", "meter behaviour"),
    Item("C6", "time sync", "meter behaviour"),
    Item("C7", "retry", "meter behaviour"),
    Item("C9", "CME ERROR 513", "meter behaviour"),
    Item("C10", "exception flow", "meter behaviour"),
    Item("C11", "CFUN before power-off", "meter behaviour"),
    Item("C13", "30-day logs", "maintenance"),
    Item("C14", "upgrades", "security"),
    Item("C15", "near-end maintenance", "maintenance"),
    Item("C16", "periodic report", "meter behaviour"),
    Item("C17", "alarms", "meter behaviour"),
    Item("C18", "point read", "meter behaviour"),
    Item("C19", "configuration", "meter behaviour"),
    Item("C20", "valve control", "meter behaviour"),
)}
