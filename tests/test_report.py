"""The certification report: matrix and battery projection from known measurements, the run directory's
files, `rig report` rebuilding them, and (end to end) the HTML a campaign renders, opened in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from rig.analysis.energy import battery_years
from rig.checklist import ITEMS
from rig.measurements import Measurement, MeasurementLog
from rig.profiles.plan import load_plan
from rig.report import allure_cli, certificate
from rig.report.battery import battery_chart_png, project
from rig.report.build import RunRecord, build_report, summary_text
from rig.report.certificate import OutcomeRecord, build_matrix

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"
PLAN_PATH = PROFILES / "plans" / "white-paper-2018.yaml"
PLAN = load_plan(PLAN_PATH)
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def outcome(check: str, level: str | None, result: str, test: str = "t") -> OutcomeRecord:
    return OutcomeRecord(check, level, result, f"suites/test_x.py::{test}[{level}]")


KNOWN_OUTCOMES = [
    outcome("C1", None, "passed"),
    outcome("C3", "CE0", "passed"), outcome("C3", "CE1", "failed"), outcome("C3", "CE2", "broken"),
    outcome("C2b", "CE1", "passed"),
    outcome("C7", "CE1", "passed"), outcome("C7", "CE2", "failed"),
    outcome("C5", "CE0", "passed", "meter"), outcome("C5", "CE0", "failed", "module"),
    outcome("C5", "CE1", "skipped"),
]
KNOWN_MEASUREMENTS = [
    Measurement("C3", "CE1", "serving_attenuation_db", 20.0, "dB"),
    Measurement("C3", "CE1", "report_1_tail_s", 21.5, "s", high=3),
    Measurement("C3", "CE1", "worst_tail_s", 21.5, "s", high=3),
    Measurement("C3", "CE0", "report_1_tail_s", 0.7, "s", high=3),
    Measurement("C3", "CE0", "worst_tail_s", 0.7, "s", high=3),
    Measurement("C3", "CE0", "charge_saved_vs_timer_uah", 270.0, "uAh"),
    Measurement("C3", "CE2", "worst_tail_s", 0.9, "s", high=3),
    Measurement("C1", "once", "module_firmware", "V150R100C10B200SP1"),
    Measurement("C2b", "CE1", "camped_earfcn", 2525.0, "", low=2525, high=2525),
    Measurement("C2b", "CE1", "serving_before_fade", "A"),
]


def test_matrix_cells_follow_the_rules_of_levels_and_combination() -> None:
    matrix = build_matrix(KNOWN_OUTCOMES, KNOWN_MEASUREMENTS, PLAN, "meter-x", "meter")
    rows = {row.check: row for row in matrix.rows}
    assert [row.check for row in matrix.rows][:3] == ["C1", "C2a", "C2b"]  # checklist order, every enabled check
    assert matrix.levels == ["CE0", "CE1", "CE2"]
    c3 = rows["C3"].cells
    assert (c3["CE0"].outcome, c3["CE1"].outcome, c3["CE2"].outcome) == ("passed", "failed", "broken")
    assert c3["CE0"].keys == ("worst_tail_s = 0.7 s [<= 3 s]", "charge_saved_vs_timer_uah = 270 uAh")  # the plan's
    assert c3["CE1"].keys == ("worst_tail_s = 21.5 s [<= 3 s]",)
    assert c3["CE2"].partial and not c3["CE0"].partial  # a broken check's measurements are partial
    assert rows["C5"].cells["CE0"].outcome == "failed"  # the worst of the meter and module variants
    assert rows["C5"].cells["CE1"].outcome == "skipped" and rows["C5"].cells["CE2"].outcome == "not run"
    assert matrix.verdict == "FAIL"


def test_a_check_run_at_one_level_shows_its_verdict_only_there() -> None:
    matrix = build_matrix(KNOWN_OUTCOMES, KNOWN_MEASUREMENTS, PLAN, "meter-x", "meter")
    rows = {row.check: row for row in matrix.rows}
    assert [rows["C2b"].cells[level].outcome for level in PLAN.levels] == [
        "not run at this level", "passed", "not run at this level"]
    assert rows["C2b"].cells["CE1"].key == "camped_earfcn = 2525 [2525 .. 2525]"
    c7 = rows["C7"].cells  # "one, and CE2"
    assert (c7["CE0"].outcome, c7["CE1"].outcome, c7["CE2"].outcome) == ("not run at this level", "passed", "failed")
    assert [rows["C4"].cells[level].outcome for level in PLAN.levels] == [
        "not run at this level", "not run", "not run at this level"]  # the gap is at the behaviour level only


def test_a_level_free_check_has_one_cell() -> None:
    matrix = build_matrix(KNOWN_OUTCOMES, KNOWN_MEASUREMENTS, PLAN, "meter-x", "meter")
    c1 = next(row for row in matrix.rows if row.check == "C1")
    assert c1.level_free and list(c1.cells) == ["once"]
    assert c1.cells["once"].outcome == "passed" and c1.cells["once"].key == "module_firmware = V150R100C10B200SP1"
    markdown = certificate.render_markdown(matrix)
    assert ("| C1 chip power-optimised release | pass (level-free): module_firmware = V150R100C10B200SP1 | "
            "not run at this level (level-free) | not run at this level (level-free) |") in markdown
    assert "(one verdict)" not in markdown
    html = certificate.render_table_html(matrix)
    assert '<td colspan="3" style="background:#d8f0d8"><b>pass</b> <i>(level-free)</i>' in html
    csv_rows = [line.split(",") for line in certificate.render_csv(matrix).splitlines()]
    c1_rows = [row[3:5] for row in csv_rows if row[0] == "C1"]
    assert c1_rows == [["once", "passed"]] + [[level, "not run at this level"] for level in PLAN.levels]


def test_not_run_at_this_level_is_no_gap_in_the_verdict() -> None:
    level_free = [check for check in ITEMS if getattr(PLAN.checks, check).levels == "once"]
    outcomes = [outcome(check, None, "passed") for check in level_free]
    outcomes += [outcome(check, level, "passed") for check in ITEMS if check not in level_free
                 for level in PLAN.run_levels(check)]
    matrix = build_matrix(outcomes, [], PLAN, "m", "meter")
    assert matrix.count("not run at this level") > 0
    assert matrix.verdict == "PASS", certificate.render_markdown(matrix)
    assert matrix.count("passed") == len(outcomes)  # a level-free check is one cell, counted once


def test_a_nan_key_measurement_is_inconclusive_judged_or_not() -> None:
    outcomes = [outcome("B1", level, "passed") for level in PLAN.levels]
    measurements = [Measurement("B1", "CE0", "projected_years", 18.0, "years", low=7),
                    Measurement("B1", "CE1", "projected_years", float("nan"), "years", low=7),
                    Measurement("B1", "CE2", "projected_years", float("nan"), "years")]
    cells = next(row for row in build_matrix(outcomes, measurements, PLAN, "m", "meter").rows
                 if row.check == "B1").cells
    assert cells["CE0"].outcome == "passed"
    for level in ("CE1", "CE2"):
        assert cells[level].outcome == "inconclusive" and "projected_years" in cells[level].reason
        assert cells[level].partial
    assert certificate.cell_text(cells["CE2"]).startswith("inconclusive: key measurement not measured (NaN)")


def test_unfinished_checks_measurements_stay_out_of_the_summary_figures() -> None:
    outcomes = [outcome("B1", "CE0", "passed"), outcome("B1", "CE1", "broken"), outcome("C1", None, "inconclusive")]
    measurements = [Measurement("B1", level, "charge_per_day_uah", 900.0, "uAh") for level in PLAN.levels]
    measurements.append(Measurement("C1", "once", "module_firmware", "X"))
    matrix = build_matrix(outcomes, measurements, PLAN, "m", "meter")
    assert [(m.check, m.level) for m in matrix.settled(measurements)] == [("B1", "CE0")]
    assert [life.level for life in project(matrix.settled(measurements), PLAN)] == ["CE0"]


def test_certificate_files_name_the_plan_the_seed_and_the_verdict(tmp_path: Path) -> None:
    matrix = build_matrix(KNOWN_OUTCOMES, KNOWN_MEASUREMENTS, PLAN, "meter-x", "meter", seed=7)
    paths = certificate.write_certificate(matrix, tmp_path)
    markdown, csv_text, html = (paths[suffix].read_text() for suffix in ("md", "csv", "html"))
    assert "white-paper-2018" in markdown and "2018.1" in markdown and "**FAIL" in markdown
    assert "twin seed 7" in markdown and "twin seed 7" in html and "twin seed 7" in csv_text
    assert ("| C3 release assistance | pass: worst_tail_s = 0.7 s [<= 3 s]; charge_saved_vs_timer_uah = 270 uAh | "
            "FAIL: worst_tail_s = 21.5 s [<= 3 s] | broken: partial: worst_tail_s = 0.9 s [<= 3 s] |") in markdown
    rows = [line.split(",") for line in csv_text.splitlines()]
    assert rows[0] == ["check", "title", "area", "level", "outcome", "key_measurement", "reason", "partial"]
    c3 = [row for row in rows if row[0] == "C3"]
    assert [row[3:5] for row in c3] == [["CE0", "passed"], ["CE1", "failed"], ["CE2", "broken"]]
    assert rows[-1][:5] == ["overall", "white-paper-2018", "2018.1", "", "FAIL"]
    assert "<table" in html and "Certification matrix: meter-x" in html and "<script" not in html


def test_outcomes_file_with_a_bad_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text(json.dumps({"check": "C3", "level": "CE0", "outcome": "passed"}) + "\nnot json\n")
    with pytest.raises(ValueError, match="outcomes.jsonl:2"):
        certificate.read_outcomes(path)


def test_battery_projection_from_known_charges() -> None:
    measurements = [
        Measurement("B1", "CE0", "charge_per_day_uah", 1000.0, "uAh"),
        Measurement("B1", "CE0", "monthly_events_uah", 300.0, "uAh"),
        Measurement("B1", "CE1", "charge_per_day_uah", 2500.0, "uAh"),
        Measurement("B1", "CE2", "charge_per_day_uah", 4000.0, "uAh"),
    ]
    lives = project(measurements, PLAN)
    assert [life.level for life in lives] == ["CE0", "CE1", "CE2"]
    # 4.0 Ah x 75 % = 3.0 Ah usable; a year drains 365.25 days of charge + 12 months of events + 1 % of 4.0 Ah
    ce0_years = 3.0 / ((1000.0 * 365.25 + 300.0 * 12) * 1e-6 + 0.04)
    assert lives[0].years == pytest.approx(ce0_years, rel=2e-3)
    assert lives[0].years == pytest.approx(battery_years(4.0, 0.75, 0.01, 1000.0, 300.0))
    assert lives[0].passed is True and lives[0].limit_years == 7
    assert lives[1].years == pytest.approx(3.0 / (2500.0 * 365.25e-6 + 0.04), rel=2e-3)
    assert lives[1].passed is False  # about 3.1 years, under the 6 + 1
    assert lives[2].passed is None and lives[2].limit_years is None  # CE2 recorded, not judged
    png = battery_chart_png(lives, PLAN)
    assert png.startswith(b"\x89PNG")


def make_run(tmp_path: Path, outcomes: list[OutcomeRecord], measurements: list[Measurement]) -> Path:
    run = tmp_path / "20260105-000000-reference-meter"
    (run / "allure-results").mkdir(parents=True)
    RunRecord(PROFILES / "benches" / "sim.yaml", PROFILES / "devices" / "reference-meter.yaml", PLAN_PATH, 3).write(run)
    with (run / "outcomes.jsonl").open("w") as handle:
        for record in outcomes:
            handle.write(json.dumps({"check": record.check, "level": record.level, "outcome": record.outcome,
                                     "test": record.test}) + "\n")
    log = MeasurementLog(run / "measurements.csv")
    for measurement in measurements:
        log.append(measurement)
    return run


def test_report_rebuild_writes_certificate_battery_and_allure_extras_once(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allure_cli, "ALLURE_BIN", tmp_path / "no-allure")  # the HTML step reports it cannot run
    run = make_run(tmp_path, KNOWN_OUTCOMES + [outcome("B1", level, "passed") for level in PLAN.levels],
                   KNOWN_MEASUREMENTS
                   + [Measurement("B1", level, "charge_per_day_uah", 900.0, "uAh") for level in PLAN.levels])
    for _ in range(2):
        outputs = build_report(run, tmp_path / "history.jsonl")
    results = run / "allure-results"
    report_results = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    assert sorted(r["name"] for r in report_results) == ["Battery-life projection", "Certification matrix: FAIL"]
    assert len(list(results.glob("*-attachment.*"))) == 5  # matrix html, md, csv; chart and table
    environment = (results / "environment.properties").read_text()
    assert "vendor=Rig reference" in environment and "twin.seed=3" in environment
    assert "password" not in environment.lower()
    assert json.loads((results / "categories.json").read_text())[0]["matchedStatuses"] == ["failed"]
    assert (run / "certificate.md").exists() and (run / "certificate.csv").exists() and (run / "battery.png").exists()
    assert outputs.html is not None and outputs.html.index is None
    assert "allure-results kept" in outputs.html.message and "make allure" in outputs.html.message
    text = summary_text(outputs, run)
    assert "verdict: FAIL" in text and "battery CE0" in text


def test_report_command_on_a_directory_that_is_not_a_run_says_so(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rig", "report", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "not a run directory" in done.stderr


def test_certify_list_names_each_check_and_what_it_needs() -> None:
    done = subprocess.run([sys.executable, "-m", "rig", "certify", "--list"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()}
    assert "power_analyser" in lines["C3 release assistance"] and "CE0, CE1, CE2" in lines["C3 release assistance"]
    assert "plan white-paper-2018 2018.1" in done.stdout
    bare = subprocess.run([sys.executable, "-m", "rig", "certify", "--list", "--device",
                           str(PROFILES / "devices" / "bare-module.yaml")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert "not applicable to a module" in bare.stdout


def chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", *args], capture_output=True,
                          timeout=120)


@pytest.fixture(scope="module")
def campaign_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short campaign (C1 and C3 at every level) through the main command, into a scratch results folder."""
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "rig", "certify", "--results", str(results), "--", "--checks",
                           "C1,C3"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "certification summary" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    return results / "latest"


def test_campaign_writes_every_output_and_a_summary(campaign_run: Path) -> None:
    for name in ("junit.xml", "measurements.csv", "outcomes.jsonl", "certificate.md", "certificate.csv",
                 "certificate.html", "run.json", "instruments.json"):
        assert (campaign_run / name).exists(), name
    assert "N6705C" in (campaign_run / "instruments.json").read_text()
    rows = {line.split(",")[0] + line.split(",")[3]: line for line in (campaign_run / "certificate.csv").read_text()
            .splitlines()}
    assert ",passed," in rows["C3CE2"] and ",not run," in rows["C8once"]  # C8 is level-free: one cell


def test_rendered_report_shows_the_suites_and_the_certification_matrix(campaign_run: Path, tmp_path: Path) -> None:
    if not allure_cli.allure_available():
        pytest.fail(f"the Allure command line is not installed: {allure_cli.INSTALL_HINT}")
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (make chromium)")
        pytest.skip("Debian's chromium is not installed (make chromium installs it)")
    index = campaign_run / "report" / "index.html"
    assert index.exists()
    url = index.resolve().as_uri()
    dom = chromium("--virtual-time-budget=15000", "--dump-dom", url, user_data=tmp_path / "dom").stdout.decode()
    assert "suites" in dom and "Certification matrix: INCOMPLETE" in dom
    shot = tmp_path / "report.png"
    chromium("--window-size=1400,1000", "--virtual-time-budget=15000", f"--screenshot={shot}", url,
             user_data=tmp_path / "shot")
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 900 and pixels.shape[1] >= 1300
    assert pixels[..., :3].std() > 0.05  # a rendered page, not an empty shell


def test_n_a_and_inconclusive_are_outcomes_with_their_reason() -> None:
    outcomes = [outcome(check, None, "passed") for check in
                ("C1", "C2a", "C8", "C11", "C13", "C14", "C15", "C21a", "S2", "S3")]
    outcomes += [outcome(check, level, "passed") for check in ("C3", "C5", "C12", "C22", "B1") for level in PLAN.levels]
    outcomes += [outcome(check, PLAN.behaviour_level, "passed") for check in
                 ("C2b", "C2c", "C4", "C4f", "C6", "C9", "C10", "C16", "C17", "C18", "C19", "C20", "S1")]
    outcomes += [outcome("C7", level, "passed") for level in PLAN.run_levels("C7")]
    out_of_scope = OutcomeRecord("C21b", None, "n/a", "meter", "the MCU stops its search")
    other_variant = OutcomeRecord("C21b", None, "n/a", "module", "the device is a meter: see the meter's C21b check")
    matrix = build_matrix(outcomes + [out_of_scope, other_variant], [], PLAN, "m", "meter")
    c21b = next(row for row in matrix.rows if row.check == "C21b").cells["once"]
    assert (c21b.outcome, c21b.reason) == ("n/a", "the MCU stops its search")
    assert matrix.verdict == "PASS", certificate.render_markdown(matrix)
    lacking = OutcomeRecord("C21b", None, "skipped", "meter", "the bench or device lacks 'attenuator'")
    assert build_matrix(outcomes + [lacking], [], PLAN, "m", "meter").verdict == "INCOMPLETE"
    # a case skipped for a missing part beside a passed one is no pass (C2a's two EARFCN cases)
    case_skipped = OutcomeRecord("C2a", None, "skipped", "meter-inter", "the bench's spare cell shares the EARFCN")
    assert build_matrix(outcomes + [out_of_scope, case_skipped], [], PLAN, "m", "meter").verdict == "INCOMPLETE"
    few = OutcomeRecord("C22", "CE2", "inconclusive", "meter", "250 reports counted at CE2, the plan needs 300")
    matrix = build_matrix([o for o in outcomes if (o.check, o.level) != ("C22", "CE2")] + [few, out_of_scope], [],
                          PLAN, "m", "meter")
    cell = next(row for row in matrix.rows if row.check == "C22").cells["CE2"]
    assert certificate.cell_text(cell) == "inconclusive: 250 reports counted at CE2, the plan needs 300"
    assert matrix.verdict == "INCOMPLETE"
