"""Judging cannot be forgotten: the call phase judges what a check measured, and n/a and inconclusive are
outcomes recorded with their reason (fixtures/checks.py, fixtures/verdicts.py, rig/judging.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rig.judging import judge
from rig.measurements import Measurement

ROOT = Path(__file__).resolve().parents[1]

CHECKS = '''
import pytest

from fixtures.checks import inconclusive, not_applicable


@pytest.mark.check("C6")
def test_forgets_to_judge(measure):
    measure("worst_residual_s", 9.0, "s", high=5)


@pytest.mark.check("C1")
def test_passes(measure):
    measure("module_firmware", "V1")
    measure("on_allow_list", 1, "", low=1)


@pytest.mark.check("C9")
def test_judges_early(measure):
    measure("wait_after_513_1_s", 300.0, "s", low=49, high=71)
    measure.judge()
    raise RuntimeError("never reached")


@pytest.mark.check("C21b")
def test_is_out_of_scope(measure):
    not_applicable("the MCU stops its search")


@pytest.mark.check("C22")
def test_counts_too_few(measure):
    inconclusive("250 reports counted, the plan needs 300")


@pytest.mark.check("C13")
def test_skips_with_a_message_that_looks_inconclusive(measure):
    pytest.skip("inconclusive: no marker event")


@pytest.mark.check("B1")
def test_measures_a_nan_key(measure):
    measure("projected_years", float("nan"), "years")


@pytest.mark.check("C3")
def test_measures_a_nan_key_and_a_real_failure(measure):
    measure("worst_tail_s", float("nan"), "s", high=3)
    measure("report_1_tail_s", 21.0, "s", high=3)


@pytest.mark.check("C3")
def test_gives_up_after_measuring_a_failure(measure):
    measure("report_1_tail_s", 21.0, "s", high=3)
    inconclusive("only 1 of 3 reports got through")


@pytest.fixture
def breaks_on_teardown():
    yield
    raise RuntimeError("the supply did not reach its safe state")


@pytest.mark.check("C5")
def test_passes_then_the_bench_is_not_left_safe(measure, breaks_on_teardown):
    measure("module_psm_ua", 3.0, "uA", high=5)
'''


@pytest.fixture(scope="module")
def outcomes_lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The outcomes.jsonl of a session of small checks that use only `measure`."""
    folder = tmp_path_factory.mktemp("judging")
    (folder / "test_checks.py").write_text(textwrap.dedent(CHECKS))
    command = [sys.executable, "-m", "pytest", str(folder), "-p", "fixtures.plugin", "-p", "no:cacheprovider", "-c",
               str(ROOT / "pytest.ini"), f"--rootdir={folder}", f"--outcomes={folder / 'o.jsonl'}", "-q"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (folder / "o.jsonl").exists(), done.stdout + done.stderr
    return [json.loads(line) for line in (folder / "o.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def outcomes(outcomes_lines: list[dict]) -> dict[str, dict]:
    """The first outcome of each test, by test name."""
    first: dict[str, dict] = {}
    for record in outcomes_lines:
        first.setdefault(record["test"].split("::")[-1], record)
    return first


def test_a_check_that_forgets_to_judge_fails_in_its_call_phase(outcomes: dict[str, dict]) -> None:
    assert outcomes["test_forgets_to_judge"]["outcome"] == "failed"
    assert outcomes["test_passes"]["outcome"] == "passed"
    assert outcomes["test_judges_early"]["outcome"] == "failed"  # judge() still ends the check at once


def test_n_a_and_inconclusive_are_recorded_with_their_reason(outcomes: dict[str, dict]) -> None:
    assert outcomes["test_is_out_of_scope"] | {"test": ""} == {
        "check": "C21b", "level": None, "test": "", "outcome": "n/a", "reason": "the MCU stops its search"}
    assert outcomes["test_counts_too_few"]["outcome"] == "inconclusive"
    assert outcomes["test_counts_too_few"]["reason"] == "250 reports counted, the plan needs 300"
    # no magic prefix: only inconclusive() declares the outcome; a plain skip stays a skip
    assert outcomes["test_skips_with_a_message_that_looks_inconclusive"]["outcome"] == "skipped"


def test_a_nan_key_measurement_is_inconclusive_unless_something_measured_failed(outcomes: dict[str, dict]) -> None:
    assert outcomes["test_measures_a_nan_key"]["outcome"] == "inconclusive"
    assert "projected_years" in outcomes["test_measures_a_nan_key"]["reason"]
    assert outcomes["test_measures_a_nan_key_and_a_real_failure"]["outcome"] == "failed"


def test_a_judged_nan_that_is_not_a_key_never_passes() -> None:
    nan = Measurement("C21a", "once", "wake_report_s", float("nan"), "s", high=3600)
    assert judge([nan], ["average_ua"]).outcome == "failed"
    assert judge([nan], ["wake_report_s"]).outcome == "inconclusive"
    assert judge([Measurement("C21a", "once", "average_ua", 9.0, "uA", high=20)], ["average_ua"]).outcome == "passed"


def test_a_failure_measured_before_giving_up_is_a_failure_not_inconclusive(outcomes: dict[str, dict]) -> None:
    assert outcomes["test_gives_up_after_measuring_a_failure"]["outcome"] == "failed"


def test_a_teardown_error_adds_a_broken_outcome(outcomes_lines: list[dict]) -> None:
    mine = [r for r in outcomes_lines if r["test"].endswith("test_passes_then_the_bench_is_not_left_safe")]
    assert [r["outcome"] for r in mine] == ["passed", "broken"]
    assert "teardown" in mine[1]["reason"] and "safe state" in mine[1]["reason"]
