"""The certification matrix: checklist item x coverage level, each cell a verdict and its key measurement.

Built only from what a run recorded (`outcomes.jsonl` and `measurements.csv`), never from logs. A check
that runs at one level (`one`) or level-free (`once`) fills every column with its verdict; a level it
also ran at on its own (C7 at CE2) keeps its own verdict. Several tests of one check at one level (a
meter and a bare-module variant) combine to the worst of them. A check that does not apply to the
device's kind (PROCEDURES' `applies`) is `n/a`, and so is one that skipped saying "not applicable: ..."
(the device is outside its scope: C21b on a meter that stops its module's search); one that applies but
did not run is `not run`.
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
from rig.measurements import ONCE, Measurement
from rig.profiles.plan import PlanProfile

PASSED, FAILED, BROKEN, SKIPPED, NOT_RUN, NOT_APPLICABLE = "passed", "failed", "broken", "skipped", "not run", "n/a"
WORST_FIRST = (FAILED, BROKEN, PASSED, NOT_APPLICABLE, SKIPPED)
NOT_APPLICABLE_REASON = "not applicable"
VERDICT_PASS, VERDICT_FAIL, VERDICT_INCOMPLETE = "PASS", "FAIL", "INCOMPLETE"


@dataclass(frozen=True)
class OutcomeRecord:
    """One line of outcomes.jsonl: a test of a check at a level and how it ended."""

    check: str
    level: str | None
    outcome: str
    test: str
    reason: str = ""

    @property
    def verdict(self) -> str:
        """The outcome, with a skip that declared the device out of the check's scope read as `n/a`."""
        if self.outcome == SKIPPED and self.reason.startswith(NOT_APPLICABLE_REASON):
            return NOT_APPLICABLE
        return self.outcome


def read_outcomes(path: Path) -> list[OutcomeRecord]:
    """The records of a run's outcomes.jsonl (lines that are not JSON objects are refused by line number)."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
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
    """One check at one level: its verdict, the key measurement, and whether it was borrowed from the
    check's one verdict (`one`/`once` checks fill every column)."""

    outcome: str
    key: str = ""
    shared: bool = False


@dataclass
class Row:
    check: str
    title: str
    area: str
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class CertificationMatrix:
    """Rows in checklist order, columns the plan's levels, and the overall verdict."""

    plan_name: str
    plan_version: str
    device: str
    levels: list[str]
    rows: list[Row]

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows for cell in row.cells.values() if cell.outcome == outcome)

    @property
    def verdict(self) -> str:
        """FAIL if any cell failed; INCOMPLETE if any broke, was skipped or did not run; else PASS."""
        outcomes = {cell.outcome for row in self.rows for cell in row.cells.values()}
        if FAILED in outcomes:
            return VERDICT_FAIL
        if outcomes & {BROKEN, SKIPPED, NOT_RUN} or PASSED not in outcomes:
            return VERDICT_INCOMPLETE
        return VERDICT_PASS


def combine(outcomes: list[str]) -> str:
    """The worst of several tests' outcomes (failed, broken, passed, n/a, skipped)."""
    return next((outcome for outcome in WORST_FIRST if outcome in outcomes), SKIPPED)


def format_value(value: float | str | None) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.6g}"
    return "" if value is None else str(value)


def key_measurement(measurements: list[Measurement]) -> str:
    """The first failing judged measurement, else the first judged one, else the last recorded one."""
    judged = [m for m in measurements if m.judged]
    chosen = next((m for m in judged if m.passed is False), judged[0] if judged else None)
    if chosen is None and measurements:
        chosen = measurements[-1]
    if chosen is None:
        return ""
    limit = f" [{chosen.limit_text}]" if chosen.judged else ""
    return f"{chosen.name} = {format_value(chosen.value)} {chosen.unit}".rstrip() + limit


def build_matrix(outcomes: list[OutcomeRecord], measurements: list[Measurement], plan: PlanProfile,
                 device: str, device_kind: str) -> CertificationMatrix:
    """The matrix of one run: every enabled check of the plan that applies, at every plan level."""
    levels = list(plan.levels)
    rows = []
    for check, item in ITEMS.items():
        entry = getattr(plan.checks, check, None)
        if entry is None or not entry.enabled:
            continue
        row = Row(check, item.title, item.area)
        mine = [o for o in outcomes if o.check == check]
        own: dict[str, str] = {}
        for level in {o.level or ONCE for o in mine}:
            own[level] = combine([o.verdict for o in mine if (o.level or ONCE) == level])
        # a check run at one level (or level-free) fills the columns it did not run at with that verdict
        fallback = None if entry.levels == "all" else own.get(ONCE) or own.get(plan.behaviour_level)
        for level in levels:
            if device_kind not in item.applies:
                row.cells[level] = Cell(NOT_APPLICABLE)
                continue
            outcome = own.get(level) or fallback or NOT_RUN
            # a level-free check run through the `level` fixture files its measurements as `once`
            filed = {level, ONCE} if level in own else {ONCE, plan.behaviour_level}
            taken = [m for m in measurements if m.check == check and m.level in filed]
            row.cells[level] = Cell(outcome, key_measurement(taken), shared=level not in own and outcome != NOT_RUN)
        rows.append(row)
    return CertificationMatrix(plan.name, plan.version, device, levels, rows)


SYMBOL = {PASSED: "pass", FAILED: "FAIL", BROKEN: "broken", SKIPPED: "skipped", NOT_RUN: "not run",
          NOT_APPLICABLE: "n/a"}


def cell_text(cell: Cell) -> str:
    text = SYMBOL[cell.outcome]
    if cell.shared:
        text += " (one verdict)"
    return f"{text}: {cell.key}" if cell.key else text


def summary_line(matrix: CertificationMatrix) -> str:
    counts = ", ".join(f"{matrix.count(outcome)} {SYMBOL[outcome]}" for outcome in
                       (PASSED, FAILED, BROKEN, SKIPPED, NOT_RUN, NOT_APPLICABLE) if matrix.count(outcome))
    return f"{matrix.verdict} ({counts} cells)"


def render_markdown(matrix: CertificationMatrix) -> str:
    lines = [
        f"# Certification matrix: {matrix.device}",
        "",
        f"Plan **{matrix.plan_name}** version {matrix.plan_version}. Overall verdict: **{summary_line(matrix)}**.",
        "",
        "| item | " + " | ".join(matrix.levels) + " |",
        "|---|" + "---|" * len(matrix.levels),
    ]
    for row in matrix.rows:
        cells = [cell_text(row.cells[level]).replace("|", "\\|") for level in matrix.levels]
        lines.append(f"| {row.check} {row.title} | " + " | ".join(cells) + " |")
    lines += ["", "A `one`/`once` check's verdict fills every column: (one verdict)."]
    return "\n".join(lines) + "\n"


def render_csv(matrix: CertificationMatrix) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["check", "title", "area", "level", "outcome", "key_measurement", "shared_verdict"])
    for row in matrix.rows:
        for level in matrix.levels:
            cell = row.cells[level]
            writer.writerow([row.check, row.title, row.area, level, cell.outcome, cell.key, cell.shared])
    writer.writerow(["overall", matrix.plan_name, matrix.plan_version, "", matrix.verdict, summary_line(matrix), ""])
    return buffer.getvalue()


COLOURS = {PASSED: "#d8f0d8", FAILED: "#f6c9c9", BROKEN: "#f9e0b0", SKIPPED: "#e8e8e8", NOT_RUN: "#e8e8e8",
           NOT_APPLICABLE: "#f7f7f7"}


def render_table_html(matrix: CertificationMatrix) -> str:
    """The verdict line and the matrix as an HTML fragment (inline colours, no scripts)."""
    head = "".join(f"<th>{html.escape(level)}</th>" for level in matrix.levels)
    body = []
    for row in matrix.rows:
        cells = "".join(
            f'<td style="background:{COLOURS[row.cells[level].outcome]}">'
            f"<b>{html.escape(SYMBOL[row.cells[level].outcome])}</b>"
            f"{' <i>(one verdict)</i>' if row.cells[level].shared else ''}"
            f"<br><small>{html.escape(row.cells[level].key)}</small></td>"
            for level in matrix.levels
        )
        body.append(f"<tr><th>{html.escape(row.check)} {html.escape(row.title)}"
                    f"<br><small>{html.escape(row.area)}</small></th>{cells}</tr>")
    verdict_colour = {VERDICT_PASS: "#2e7d32", VERDICT_FAIL: "#c62828", VERDICT_INCOMPLETE: "#ef6c00"}[matrix.verdict]
    return (
        f"<p>Plan <b>{html.escape(matrix.plan_name)}</b> version {html.escape(matrix.plan_version)}. "
        f"Overall verdict: <b style='color:{verdict_colour}'>{html.escape(summary_line(matrix))}</b></p>"
        f"<table style='border-collapse:collapse'><tr><th>item</th>{head}</tr>{''.join(body)}</table>"
        "<p><small>A check judged at one level (or level-free) fills every column with its one verdict.</small></p>"
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
