"""The certification matrix: checklist item x coverage level, each cell a verdict and its key measurements.

Built only from what a run recorded (`outcomes.jsonl` and `measurements.csv`), never from logs. A check
shows its verdict only where it ran: a level check (`all`, `one`) in the columns of its levels, the other
columns saying "not run at this level"; a level-free check (`once`) in one cell. Several tests of one check
at one level (a meter and a bare-module variant) combine to the worst of them. A check that does not apply
to the device's kind (PROCEDURES' `applies`) or that declared the device outside its scope is `n/a`; one that
ran but could not judge (or whose key measurement is NaN) is `inconclusive`; one that applies but did not
run is `not run`. The measurements of a check that did not finish (not passed or failed) are partial: the
cell marks them so and no summary figure uses them.
"""

from __future__ import annotations

import csv
import html
import io
import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path

from rig.checklist import ITEMS
from rig.judging import INCONCLUSIVE, judge, key_measurements
from rig.measurements import ONCE, Measurement
from rig.profiles.plan import PlanProfile

PASSED, FAILED, BROKEN, SKIPPED, NOT_RUN, NOT_APPLICABLE = "passed", "failed", "broken", "skipped", "not run", "n/a"
NOT_AT_LEVEL = "not run at this level"
WORST_FIRST = (FAILED, BROKEN, INCONCLUSIVE, SKIPPED, PASSED, NOT_APPLICABLE)  # a skipped case is no pass
FINISHED = (PASSED, FAILED)
GAPS = (BROKEN, SKIPPED, NOT_RUN, INCONCLUSIVE)
VERDICT_PASS, VERDICT_FAIL, VERDICT_INCOMPLETE = "PASS", "FAIL", "INCOMPLETE"


@dataclass(frozen=True)
class OutcomeRecord:
    """One line of outcomes.jsonl: a test of a check at a level, how it ended and why (skips, n/a,
    inconclusive)."""

    check: str
    level: str | None
    outcome: str
    test: str
    reason: str = ""


def read_outcomes(path: Path) -> list[OutcomeRecord]:
    """The records of a run's outcomes.jsonl (lines that are not JSON objects are refused by line number; a last
    line without its line end, cut by a kill while it was written, is left out)."""
    records = []
    text = path.read_text()
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            records.append(OutcomeRecord(data["check"], data.get("level"), data["outcome"], data.get("test", ""),
                                         data.get("reason", "")))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not an outcome record ({error})") from None
    return records


@dataclass(frozen=True)
class Cell:
    """One check at one level (or level-free): its outcome, why, and its key measurements (partial when the
    check did not finish)."""

    outcome: str
    keys: tuple[str, ...] = ()
    reason: str = ""
    partial: bool = False

    @property
    def key(self) -> str:
        return "; ".join(self.keys)


@dataclass
class Row:
    """A check's cells: one per plan level, or the one level-free cell (under `once`)."""

    check: str
    title: str
    area: str
    level_free: bool
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class CertificationMatrix:
    """Rows in checklist order, columns the plan's levels, the seed the twin ran with, and the verdict."""

    plan_name: str
    plan_version: str
    device: str
    levels: list[str]
    rows: list[Row]
    seed: int | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows for cell in row.cells.values() if cell.outcome == outcome)

    @property
    def verdict(self) -> str:
        """FAIL if any cell failed; INCOMPLETE if any broke, was skipped or inconclusive, or did not run
        where its plan entry runs it; else PASS ("not run at this level" is no gap)."""
        outcomes = {cell.outcome for row in self.rows for cell in row.cells.values()}
        if FAILED in outcomes:
            return VERDICT_FAIL
        if outcomes & set(GAPS) or PASSED not in outcomes:
            return VERDICT_INCOMPLETE
        return VERDICT_PASS

    def settled(self, measurements: list[Measurement]) -> list[Measurement]:
        """The measurements of cells that finished (passed or failed): the only ones summary figures use."""
        rows = {row.check: row for row in self.rows}

        def cell_of(measurement: Measurement) -> Cell | None:
            row = rows.get(measurement.check)
            if row is None:
                return None
            return row.cells.get(ONCE if row.level_free else measurement.level)

        return [m for m in measurements if (cell := cell_of(m)) is not None and cell.outcome in FINISHED]


def combine(records: list[OutcomeRecord]) -> tuple[str, str]:
    """The worst of several tests' outcomes (failed, broken, inconclusive, passed, n/a, skipped) and the
    reason of the first test that ended so."""
    for outcome in WORST_FIRST:
        reasons = [record.reason for record in records if record.outcome == outcome]
        if reasons:
            return outcome, next((reason for reason in reasons if reason), "")
    return SKIPPED, ""


def format_value(value: float | str | None) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.6g}"
    return "" if value is None else str(value)


def measurement_text(measurement: Measurement) -> str:
    """`name = value unit [limit]` (the limit only for a judged measurement)."""
    limit = f" [{measurement.limit_text}]" if measurement.judged else ""
    return f"{measurement.name} = {format_value(measurement.value)} {measurement.unit}".rstrip() + limit


def cell_of(records: list[OutcomeRecord], taken: list[Measurement], keys: list[str]) -> Cell:
    """A cell from its tests' records and its measurements: the key measurements (and, for a failure none of
    them shows, the first failing measurement); a pass with a NaN key measurement is inconclusive."""
    outcome, reason = combine(records)
    shown = key_measurements(taken, keys)
    if outcome == PASSED:
        judgement = judge(taken, keys)
        if judgement.outcome == INCONCLUSIVE:
            outcome, reason = INCONCLUSIVE, judgement.reason
    if outcome == FAILED and not any(m.passed is False for m in shown):
        shown += [m for m in taken if m.passed is False][:1]
    return Cell(outcome, tuple(measurement_text(m) for m in shown), reason,
                partial=outcome not in FINISHED and bool(shown))


def build_matrix(outcomes: list[OutcomeRecord], measurements: list[Measurement], plan: PlanProfile,
                 device: str, device_kind: str, seed: int | None = None) -> CertificationMatrix:
    """The matrix of one run: every enabled check of the plan, at the levels its plan entry runs it."""
    rows = []
    for check, item in ITEMS.items():
        entry = getattr(plan.checks, check)
        if not entry.enabled:
            continue
        row = Row(check, item.title, item.area, level_free=entry.levels == ONCE)
        mine = [o for o in outcomes if o.check == check]
        taken = [m for m in measurements if m.check == check]
        applies = device_kind in item.applies
        if row.level_free:
            # a level-free check run through the `level` fixture still has one verdict and files as `once`
            row.cells[ONCE] = (cell_of(mine, taken, entry.key_measurements) if mine and applies
                               else Cell(NOT_RUN if applies else NOT_APPLICABLE))
        else:
            runs_at = plan.run_levels(check)
            for level in plan.levels:
                here = [o for o in mine if o.level == level]
                if here and applies:
                    row.cells[level] = cell_of(here, [m for m in taken if m.level == level], entry.key_measurements)
                elif level in runs_at:
                    row.cells[level] = Cell(NOT_RUN if applies else NOT_APPLICABLE)
                else:
                    row.cells[level] = Cell(NOT_AT_LEVEL)
        rows.append(row)
    return CertificationMatrix(plan.name, plan.version, device, list(plan.levels), rows, seed)


SYMBOL = {PASSED: "pass", FAILED: "FAIL", BROKEN: "broken", SKIPPED: "skipped", NOT_RUN: "not run",
          NOT_APPLICABLE: "n/a", INCONCLUSIVE: "inconclusive", NOT_AT_LEVEL: NOT_AT_LEVEL}
LEVEL_FREE = "level-free"
LEGEND = (
    "A level check shows its verdict in the columns of the levels its plan entry runs it at; the others say "
    f"\"{NOT_AT_LEVEL}\". A level-free check has one cell ({LEVEL_FREE}). The key measurements are the figures "
    "the plan names for the check; *partial* marks those of a check that did not finish (no summary figure uses "
    "them). *inconclusive*: the check ran but could not judge (the reason follows); *n/a*: the device is outside "
    "the check's scope."
)


def cell_text(cell: Cell, label: str = "") -> str:
    """`verdict[ label]: reason -- [partial: ]key measurements`."""
    details = [cell.reason] if cell.reason else []
    if cell.keys:
        details.append(("partial: " if cell.partial else "") + cell.key)
    return SYMBOL[cell.outcome] + label + (": " + " -- ".join(details) if details else "")


def summary_line(matrix: CertificationMatrix) -> str:
    counts = ", ".join(f"{matrix.count(outcome)} {SYMBOL[outcome]}" for outcome in
                       (PASSED, FAILED, BROKEN, INCONCLUSIVE, SKIPPED, NOT_RUN, NOT_APPLICABLE)
                       if matrix.count(outcome))
    return f"{matrix.verdict} ({counts} cells)"


def seed_text(matrix: CertificationMatrix) -> str:
    return f"twin seed {matrix.seed}" if matrix.seed is not None else "no twin seed (a wall-clock bench)"


def row_texts(row: Row, levels: list[str]) -> list[str]:
    """One text per level column; a level-free check's one cell sits in the first, the others say so."""
    if row.level_free:
        return [cell_text(row.cells[ONCE], f" ({LEVEL_FREE})")] + [f"{NOT_AT_LEVEL} ({LEVEL_FREE})"] * (len(levels) - 1)
    return [cell_text(row.cells[level]) for level in levels]


def render_markdown(matrix: CertificationMatrix) -> str:
    lines = [
        f"# Certification matrix: {matrix.device}",
        "",
        f"Plan **{matrix.plan_name}** version {matrix.plan_version}, {seed_text(matrix)}. "
        f"Overall verdict: **{summary_line(matrix)}**.",
        "",
        "| item | " + " | ".join(matrix.levels) + " |",
        "|---|" + "---|" * len(matrix.levels),
    ]
    for row in matrix.rows:
        cells = [text.replace("|", "\\|") for text in row_texts(row, matrix.levels)]
        lines.append(f"| {row.check} {row.title} | " + " | ".join(cells) + " |")
    lines += ["", LEGEND]
    return "\n".join(lines) + "\n"


def render_csv(matrix: CertificationMatrix) -> str:
    """One line per check and plan level, plus a `once` line for a level-free check's one cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["check", "title", "area", "level", "outcome", "key_measurement", "reason", "partial"])
    for row in matrix.rows:
        cells = [(ONCE, row.cells[ONCE])] if row.level_free else []
        cells += [(level, Cell(NOT_AT_LEVEL) if row.level_free else row.cells[level]) for level in matrix.levels]
        for level, cell in cells:
            writer.writerow([row.check, row.title, row.area, level, cell.outcome, cell.key, cell.reason, cell.partial])
    writer.writerow(["overall", matrix.plan_name, matrix.plan_version, "", matrix.verdict, summary_line(matrix),
                     seed_text(matrix), ""])
    return buffer.getvalue()


COLOURS = {PASSED: "#d8f0d8", FAILED: "#f6c9c9", BROKEN: "#f9e0b0", SKIPPED: "#e8e8e8", NOT_RUN: "#e8e8e8",
           NOT_APPLICABLE: "#f7f7f7", INCONCLUSIVE: "#fff3c4", NOT_AT_LEVEL: "#ffffff"}


def html_cell(cell: Cell, span: int = 1, label: str = "") -> str:
    reason = f"<br><small>{html.escape(cell.reason)}</small>" if cell.reason else ""
    partial = "<i>partial:</i> " if cell.partial else ""
    keys = f"<br><small>{partial}{html.escape(cell.key)}</small>" if cell.keys else ""
    colspan = f' colspan="{span}"' if span > 1 else ""
    text = html.escape(SYMBOL[cell.outcome])
    text = f"<b>{text}</b>" if cell.outcome != NOT_AT_LEVEL else f"<small>{text}</small>"
    return f'<td{colspan} style="background:{COLOURS[cell.outcome]}">{text}{label}{reason}{keys}</td>'


def render_table_html(matrix: CertificationMatrix) -> str:
    """The verdict line and the matrix as an HTML fragment (inline colours, no scripts)."""
    head = "".join(f"<th>{html.escape(level)}</th>" for level in matrix.levels)
    body = []
    for row in matrix.rows:
        if row.level_free:
            cells = html_cell(row.cells[ONCE], len(matrix.levels), f" <i>({LEVEL_FREE})</i>")
        else:
            cells = "".join(html_cell(row.cells[level]) for level in matrix.levels)
        body.append(f"<tr><th>{html.escape(row.check)} {html.escape(row.title)}"
                    f"<br><small>{html.escape(row.area)}</small></th>{cells}</tr>")
    verdict_colour = {VERDICT_PASS: "#2e7d32", VERDICT_FAIL: "#c62828", VERDICT_INCOMPLETE: "#ef6c00"}[matrix.verdict]
    return (
        f"<p>Plan <b>{html.escape(matrix.plan_name)}</b> version {html.escape(matrix.plan_version)}, "
        f"{html.escape(seed_text(matrix))}. "
        f"Overall verdict: <b style='color:{verdict_colour}'>{html.escape(summary_line(matrix))}</b></p>"
        f"<table style='border-collapse:collapse'><tr><th>item</th>{head}</tr>{''.join(body)}</table>"
        f"<p><small>{html.escape(LEGEND).replace('*', '')}</small></p>"
    )


def render_html(matrix: CertificationMatrix) -> str:
    """A self-contained page (no scripts, inline style) for the report and for mailing."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Certification matrix: {html.escape(matrix.device)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}"
        "td,th{border:1px solid #999;padding:4px 8px;vertical-align:top;text-align:left}"
        "small{color:#333}</style></head><body>"
        f"<h1>Certification matrix: {html.escape(matrix.device)}</h1>{render_table_html(matrix)}</body></html>"
    )


def write_certificate(matrix: CertificationMatrix, run: Path) -> dict[str, Path]:
    """certificate.md, certificate.csv and certificate.html in the run's directory."""
    paths = {suffix: run / f"certificate.{suffix}" for suffix in ("md", "csv", "html")}
    paths["md"].write_text(render_markdown(matrix))
    paths["csv"].write_text(render_csv(matrix))
    paths["html"].write_text(render_html(matrix))
    return paths
