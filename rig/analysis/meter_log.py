"""The meter's log as the rig reads it (C13, C15): uploads reassembled, entries found near bench events,
and an upload compared with a download.

Log times are the meter's clock; bench events (a report at the platform, a login) are the bench's. A
`ClockMap` built from maintenance clock reads turns one into the other, so a meter whose clock wanders
(C6's business) still has its entries found.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rig.maintenance import MASK, LogEntry, MaintenanceDriver

DAY_S = 86400.0


def entry_line(entry: LogEntry) -> str:
    """The entry in the meter's own line format, `<time>|<module>|<event>|<detail>`."""
    return f"{entry.time_s:.0f}|{entry.module}|{entry.event}|{entry.detail}"


def parse_log_text(text: str) -> list[LogEntry]:
    """Lines `<time>|<module>|<event>|<detail>` (the detail may contain `|`); ValueError names a bad line."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        fields = line.split("|", 3)
        try:
            if len(fields) != 4:
                raise ValueError
            entries.append(LogEntry(float(fields[0]), fields[1], fields[2], fields[3]))
        except ValueError:
            raise ValueError(f"log line {number} is not <time>|<module>|<event>|<detail>: {line[:80]!r}") from None
    return entries


@dataclass(frozen=True)
class Upload:
    """A log upload reassembled from its `log_chunk` messages."""

    total: int
    missing: list[int]
    text: str

    @property
    def complete(self) -> bool:
        return self.total > 0 and not self.missing


def reassemble(chunks: Iterable[dict]) -> Upload:
    """The chunks' entries joined in index order; `missing` lists the indices that never arrived."""
    by_index: dict[int, bytes] = {}
    total = 0
    for chunk in chunks:
        total = max(total, int(chunk["total"]))
        by_index.setdefault(int(chunk["index"]), bytes(chunk["entries"]))
    missing = [index for index in range(total) if index not in by_index]
    text = b"".join(by_index[index] for index in sorted(by_index)).decode("utf-8", errors="replace")
    return Upload(total, missing, text)


def oldest_age_days(entries: list[LogEntry], now_s: float) -> float:
    """Age of the oldest entry at `now_s` (meter clock), days; NaN for an empty log."""
    return (now_s - min(entry.time_s for entry in entries)) / DAY_S if entries else float("nan")


def largest_gap_days(entries: Iterable[LogEntry]) -> float:
    """The longest time between consecutive entries (in time order), days; NaN with fewer than two.

    A meter keeping exactly N days drops an entry once it is N days old, so its oldest kept entry may be
    as young as N days minus the gap that followed the dropped one: the largest gap bounds that gap."""
    times = sorted(entry.time_s for entry in entries)
    return max((later - earlier for earlier, later in zip(times, times[1:], strict=False)), default=math.nan) / DAY_S


def oldest_age_min_days(log_days_min: float, gap_days: float) -> float:
    """What the oldest entry's age must reach: `log_days_min` minus the largest gap (all of it without one)."""
    return log_days_min if math.isnan(gap_days) else log_days_min - gap_days


def module_counts(entries: Iterable[LogEntry]) -> Counter[str]:
    return Counter(entry.module for entry in entries)


def entries_between(entries: Iterable[LogEntry], start_s: float, end_s: float, module: str | None = None
                    ) -> list[LogEntry]:
    """Entries with `start_s <= time <= end_s` (meter clock), of `module` if given."""
    return [e for e in entries if start_s <= e.time_s <= end_s and (module is None or e.module == module)]


@dataclass(frozen=True)
class ClockMap:
    """Bench time to meter time, from (bench s, meter s) pairs read over maintenance: the offset is
    interpolated between reads and held beyond them."""

    reads: tuple[tuple[float, float], ...]

    def meter_time(self, bench_s: float) -> float:
        if not self.reads:
            return bench_s
        reads = sorted(self.reads)
        offsets = [meter - bench for bench, meter in reads]
        if bench_s <= reads[0][0]:
            return bench_s + offsets[0]
        for (b0, _), (b1, _), o0, o1 in zip(reads, reads[1:], offsets, offsets[1:], strict=False):
            if bench_s <= b1:
                return bench_s + o0 + (o1 - o0) * (bench_s - b0) / (b1 - b0 if b1 > b0 else 1.0)
        return bench_s + offsets[-1]


@dataclass(frozen=True)
class LogComparison:
    """An upload against a download: lines compared, and lines each has that the other lacks in the span
    where they overlap (the download goes on after the upload, and may reach further back)."""

    compared: int
    only_in_upload: int
    only_in_download: int
    diff: str

    @property
    def identical(self) -> bool:
        return self.compared > 0 and self.only_in_upload == 0 and self.only_in_download == 0


def compare_upload(upload: list[LogEntry], download: list[LogEntry], diff_lines: int = 60) -> LogComparison:
    """Is the upload a contiguous run of the download? Upload entries older than the download's oldest
    (dropped by retention before the download) are left out of the comparison, and so are those after
    the upload's copy of the download's last entry (logged after the download, where the upload came later)."""
    if download:
        upload = [entry for entry in upload if entry.time_s >= download[0].time_s]
    up = [entry_line(entry) for entry in upload]
    down = [entry_line(entry) for entry in download]
    if down and down[-1] in up:
        up = up[:len(up) - up[::-1].index(down[-1])]
    matcher = difflib.SequenceMatcher(None, up, down, autojunk=False)
    blocks = [block for block in matcher.get_matching_blocks() if block.size]
    matched = sum(block.size for block in blocks)
    if not blocks:
        return LogComparison(len(up), len(up), 0, "\n".join(f"-{line}" for line in up[:diff_lines]))
    start, end = blocks[0].b, blocks[-1].b + blocks[-1].size
    window = down[start:end]
    diff = list(difflib.unified_diff(up, window, "upload", "download", lineterm="", n=1))[:diff_lines]
    return LogComparison(len(up), len(up) - matched, len(window) - matched, "\n".join(diff))


def masked(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by `****` (for evidence taken from the meter)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def transcript(driver: MaintenanceDriver) -> str:
    """A maintenance session's transcript (secrets already masked by the driver), one line each."""
    return "\n".join(str(line) for line in driver.transcript)
