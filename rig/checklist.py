"""The checklist's items as the report shows them: id, title, area (Allure epic) and the device kinds they apply to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    area: str
    applies: tuple[str, ...] = ("meter",)  # device kinds the check applies to (PROCEDURES' `applies`)

    @property
    def feature(self) -> str:
        return f"{self.id} {self.title}"


BOTH = ("meter", "module")

ITEMS = {item.id: item for item in (
    Item("C1", "chip power-optimised release", "radio", BOTH),
    Item("C2a", "cell reselection", "radio", BOTH),
    Item("C2b", "no frequency lock", "radio", BOTH),
    Item("C2c", "reselection switch from the platform", "radio"),
    Item("C3", "release assistance", "power", BOTH),
    Item("C5", "PSM, not power-off", "power", BOTH),
    Item("C8", "attach guard", "radio"),
    Item("C12", "network quality", "radio", BOTH),
    Item("C21a", "storage mode", "power"),
    Item("C21b", "search backoff", "power", BOTH),
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
