"""The fields a campaign's reports carried (S3 judges every report of the campaign, not only its own).

Each check's meter session adds its decoded reports when it ends; S3 runs last and compares what was seen
with the device profile's declared fields, naming the check where an undeclared field first appeared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class ReportFieldCensus:
    """Report fields seen across the checks of one session, each with the first check whose reports carried it."""

    reports: int = 0
    checks: set[str] = field(default_factory=set)
    first_seen: dict[str, str] = field(default_factory=dict)
    unread: list[str] = field(default_factory=list)

    def add(self, check: str, messages: Iterable[Mapping]) -> None:
        """Count the decoded reports of `check` and the fields they carry."""
        count = 0
        for message in messages:
            count += 1
            for name in message:
                self.first_seen.setdefault(name, check)
        if count:
            self.reports += count
            self.checks.add(check)

    def undeclared(self, declared: set[str]) -> dict[str, str]:
        """Each field outside `declared`, with the check that first carried it."""
        return {name: check for name, check in sorted(self.first_seen.items()) if name not in declared}
