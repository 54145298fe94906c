"""docs/plan-profile.md's table of the checks, written from the plan's check models (the one place a check is
registered), so the page never drifts from them.

`python -m rig.profiles.plan_table` prints it; a test checks the page holds it.
"""

from __future__ import annotations

from rig.profiles.plan import Checks


def checks_table() -> str:
    """One row per check: title, area, the device kinds it applies to, default levels, severity and key
    measurements."""
    rows = ["| check | title | area | applies | levels | severity | key measurements |",
            "|---|---|---|---|---|---|---|"]
    for check, field in Checks.model_fields.items():
        model, entry = field.annotation, field.default_factory()
        keys = ", ".join(f"`{name}`" for name in entry.key_measurements)
        rows.append(f"| {check} | {model.title} | {model.area} | {', '.join(model.applies)} | {entry.levels} | "
                    f"{entry.severity} | {keys} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(checks_table(), end="")
