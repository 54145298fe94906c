"""The checklist's items as the report shows them: id, title, area (Allure epic) and the device kinds they
apply to, all read from the plan's check models (rig/profiles/plan.py), the one place a check is registered."""

from __future__ import annotations

from dataclasses import dataclass

from rig.profiles.plan import Check, Checks


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    area: str
    applies: tuple[str, ...]  # device kinds the check applies to (PROCEDURES' `applies`)

    @property
    def feature(self) -> str:
        return f"{self.id} {self.title}"


def item_of(check: str, model: type[Check]) -> Item:
    """The checklist item a plan check model registers."""
    return Item(check, model.title, model.area, model.applies)


ITEMS: dict[str, Item] = {check: item_of(check, field.annotation) for check, field in Checks.model_fields.items()}
