"""Building a run's report from what it recorded: certificate, battery projection, Allure HTML, summary.

`certify` calls `build_report` when its tests end; `python -m rig report [RUN]` calls it again on a run
directory (its `run.json` names the profiles used), so a report can be rebuilt without running anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rig.checklist import ITEMS
from rig.measurements import read_measurements
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model
from rig.profiles.plan import PlanProfile, load_plan
from rig.report import allure_cli, allure_files, battery, certificate
from rig.report.allure_files import Attachment

SHORT = {certificate.NOT_AT_LEVEL: "-", certificate.INCONCLUSIVE: "inconcl."}  # the summary's 8-wide columns
RUN_RECORD = "run.json"
IDENTITIES = "instruments.json"
REPORT_PREFIX = "rig.report."
STATUS_OF_VERDICT = {certificate.VERDICT_PASS: "passed", certificate.VERDICT_FAIL: "failed",
                     certificate.VERDICT_INCOMPLETE: "unknown"}


class RunError(ValueError):
    """A run directory that cannot be reported on, with what is missing."""


@dataclass(frozen=True)
class RunRecord:
    """What a run was made with: the profiles' paths, the seed it ran with (`--seed` or the bench's) and the
    extra pytest arguments (the selection: `--checks`, `-k`; a resumed run keeps it)."""

    bench: Path
    device: Path
    plan: Path
    seed: int | None
    pytest_args: tuple[str, ...] = ()

    def write(self, run: Path) -> None:
        data = {"bench": str(self.bench.resolve()), "device": str(self.device.resolve()),
                "plan": str(self.plan.resolve()), "seed": self.seed, "pytest_args": list(self.pytest_args)}
        (run / RUN_RECORD).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def read(cls, run: Path) -> RunRecord:
        path = run / RUN_RECORD
        if not path.exists():
            raise RunError(f"{run} is not a run directory of `rig certify` (no {RUN_RECORD})")
        try:
            data = json.loads(path.read_text())
            return cls(Path(data["bench"]), Path(data["device"]), Path(data["plan"]), data.get("seed"),
                       tuple(str(arg) for arg in data.get("pytest_args", [])))
        except (ValueError, KeyError, TypeError) as error:
            raise RunError(f"{path}: not a run record ({error})") from None


@dataclass
class ReportOutputs:
    matrix: certificate.CertificationMatrix
    files: dict[str, Path] = field(default_factory=dict)
    lives: list[battery.LevelLife] = field(default_factory=list)
    html: allure_cli.Rendered | None = None


def environment(device: DeviceProfile, bench: BenchProfile, plan: PlanProfile, instruments: dict[str, str],
                seed: int | None) -> dict[str, str]:
    """Device and bench identity, shown on the report's overview (never a secret: profiles hold them as such)."""
    identity = device.identity
    entries = {
        "device": device.name, "device.kind": device.kind, "vendor": identity.vendor, "model": identity.model,
        "serial": identity.serial, "imei": identity.imei, "mcu.firmware": identity.mcu_firmware,
        "module": identity.module, "bench": bench.name, "bench.clock": bench.clock,
        "plan": f"{plan.name} {plan.version}",
    }
    if seed is not None:
        entries["twin.seed"] = str(seed)
    entries |= {f"instrument.{role}": text for role, text in instruments.items()}
    attenuator = bench.instruments.attenuator
    if attenuator is not None and attenuator.path_loss_db:
        entries["calibration.path_loss_db"] = ", ".join(f"ch{ch} {loss:g}" for ch, loss in
                                                        sorted(attenuator.path_loss_db.items()))
    return entries


def clear_report_results(results: Path) -> None:
    """Drop the report-level results of an earlier build, so rebuilding does not duplicate them."""
    for path in results.glob("*-result.json"):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if str(data.get("fullName", "")).startswith(REPORT_PREFIX):
            for attachment in data.get("attachments", []):
                (results / attachment["source"]).unlink(missing_ok=True)
            path.unlink()


def effective_seed(record: RunRecord, bench: BenchProfile) -> int | None:
    """The seed the twin ran with: run.json's, else the bench profile's (None on a bench without a twin)."""
    if bench.twin is None:
        return None
    return record.seed if record.seed is not None else bench.twin.seed


def first_value(measurements: list, check: str, name: str) -> str:
    found = [m.value for m in measurements if m.check == check and m.name == name]
    return str(found[0]) if found else ""


def build_report(run: Path, history: Path) -> ReportOutputs:
    """Certificate (md, csv, html), battery chart, Allure extras and the HTML report of one run."""
    record = RunRecord.read(run)
    bench = load_model(record.bench, BenchProfile)
    device = load_model(record.device, DeviceProfile, secrets_optional=True)  # a rebuild needs no secret
    plan = load_plan(record.plan)
    outcomes_path, measurements_path = run / "outcomes.jsonl", run / "measurements.csv"
    outcomes = certificate.read_outcomes(outcomes_path) if outcomes_path.exists() else []
    measurements = read_measurements(measurements_path) if measurements_path.exists() else []
    seed = effective_seed(record, bench)
    matrix = certificate.build_matrix(outcomes, measurements, plan, device.name, device.kind, seed)
    settled = matrix.settled(measurements)  # summary figures never use an unfinished check's measurements
    outputs = ReportOutputs(matrix, certificate.write_certificate(matrix, run))
    results = run / "allure-results"
    clear_report_results(results)
    labels = {"epic": "certificate", "severity": "critical"}  # no suite: shown at the top of the tree
    allure_files.add_result(
        results, f"Certification matrix: {matrix.verdict}", STATUS_OF_VERDICT[matrix.verdict],
        labels | {"feature": "certification matrix"},
        [Attachment("certification matrix", outputs.files["html"].read_bytes(), "text/html", "html"),
         Attachment("certificate.md", outputs.files["md"].read_bytes(), "text/markdown", "md"),
         Attachment("certificate.csv", outputs.files["csv"].read_bytes(), "text/csv", "csv")],
        description=certificate.summary_line(matrix), description_html=certificate.render_table_html(matrix),
        history_id="certification-matrix")
    outputs.lives = battery.project(settled, plan)
    if outputs.lives:
        chart = battery.battery_chart_png(outputs.lives, plan)
        outputs.files["battery"] = run / "battery.png"
        outputs.files["battery"].write_bytes(chart)
        judged = [life.passed for life in outputs.lives if life.passed is not None]
        status = "passed" if judged and all(judged) else ("failed" if judged else "unknown")
        allure_files.add_result(
            results, "Battery-life projection", status, labels | {"feature": f"B1 {ITEMS['B1'].title}"},
            [Attachment("battery life per level", chart, "image/png", "png"),
             Attachment("projection", battery.projection_markdown(outputs.lives, plan).encode(), "text/markdown",
                        "md")],
            description=battery.projection_markdown(outputs.lives, plan), history_id="battery-projection")
    identities_path = run / IDENTITIES
    instruments = json.loads(identities_path.read_text()) if identities_path.exists() else {}
    entries = environment(device, bench, plan, instruments, seed)
    measured_firmware = first_value(settled, "C1", "module_firmware")
    if measured_firmware:
        entries["module.firmware (measured, C1)"] = measured_firmware
    allure_files.write_environment(results, entries)
    allure_files.write_categories(results)
    allure_files.write_executor(results, "rig certify", run.name)
    outputs.html = allure_cli.render(results, run / "report", f"{device.name}: {plan.name} {plan.version}", history)
    return outputs


def summary_text(outputs: ReportOutputs, run: Path) -> str:
    """The end-of-run summary: the matrix compactly, the battery projection, the verdict and the files."""
    matrix = outputs.matrix
    width = max((len(f"{row.check} {row.title}") for row in matrix.rows), default=10)
    lines = ["", "=" * 20 + " certification summary " + "=" * 20,
             f"{'item':<{width}}  " + "  ".join(f"{level:<8}" for level in matrix.levels)]
    for row in matrix.rows:
        if row.level_free:
            cells = f"{certificate.SYMBOL[row.cells[certificate.ONCE].outcome]} ({certificate.LEVEL_FREE})"
        else:
            cells = "  ".join(f"{SHORT.get(row.cells[level].outcome, certificate.SYMBOL[row.cells[level].outcome]):<8}"
                              for level in matrix.levels)
        lines.append(f"{row.check + ' ' + row.title:<{width}}  {cells}".rstrip())
    for life in outputs.lives:
        limit = f" (limit {life.limit_years:g})" if life.limit_years is not None else " (recorded)"
        lines.append(f"battery {life.level}: {life.years:.1f} years{limit}")
    lines.append("-: not run at this level (the plan runs the check at another level)")
    lines.append(f"verdict: {certificate.summary_line(matrix)}  plan {matrix.plan_name} {matrix.plan_version}")
    lines.append(f"run: {run}")
    lines.append(f"certificate: {outputs.files['md']} (.csv, .html)")
    if outputs.html is not None:
        lines.append(outputs.html.message)
    return "\n".join(lines)
