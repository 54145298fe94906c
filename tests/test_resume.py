"""`rig certify --resume RUN`: a run stopped part-way is finished, not restarted; a kill loses at most the check
in progress, and a line it cut short breaks neither the report nor the resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.kill_sweep import complete_lines, run_dir, twins_of
from rig import exit_codes
from rig.cli import main
from rig.measurements import read_measurements
from rig.report.certificate import read_outcomes
from rig.resume import prepare

ROOT = Path(__file__).resolve().parents[1]
SELECTION = ["--checks", "C1,C16"]  # three tests: C1 (meter, bare module n/a), C16 at its behaviour level
HEADER = "check,level,name,value,unit,low,high,note,passed\r\n"


def rig(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rig", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_a_run_stopped_by_sigterm_is_finished_by_resume_with_one_certificate(tmp_path: Path) -> None:
    results = tmp_path / "results"
    first = rig("certify", "--results", str(results), "--", *SELECTION)
    deadline = time.monotonic() + 120
    while not ((run := run_dir(results)) and complete_lines(run / "outcomes.jsonl")):  # the first check is done
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0]
        time.sleep(0.02)
    written = complete_lines(run / "outcomes.jsonl")
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == exit_codes.INCOMPLETE, output
    assert f"--resume {run}" in output
    assert "INCOMPLETE" in (run / "certificate.md").read_text()
    assert complete_lines(run / "outcomes.jsonl")[: len(written)] == written  # nothing recorded was lost
    assert twins_of(first.pid) == []

    second = rig("certify", "--resume", str(run))
    output, _ = second.communicate(timeout=120)
    assert second.returncode == exit_codes.INCOMPLETE, output  # only C1 and C16 of the plan ran
    tests = [json.loads(line)["test"] for line in complete_lines(run / "outcomes.jsonl")]
    assert len(tests) == len(set(tests)) == 3, tests  # each test once: the done ones were not run again
    assert (run / "junit-resumed-1.xml").exists()
    assert "verdict: INCOMPLETE (2 pass," in output  # one certificate for the whole run: C1 and C16 both pass
    outcomes = {record.check: record.outcome for record in read_outcomes(run / "outcomes.jsonl")
                if record.outcome != "n/a"}
    assert outcomes == {"C1": "passed", "C16": "passed"}, output


def test_resume_refuses_what_is_not_a_run_with_exit_2(tmp_path: Path, capsys) -> None:
    previous = signal.getsignal(signal.SIGTERM)  # the command line makes SIGTERM stop a run as Ctrl-C does
    try:
        assert main(["certify", "--resume", str(tmp_path / "nowhere")]) == exit_codes.USAGE
        assert "no run directory" in capsys.readouterr().err
        (tmp_path / "run.json").write_text('{"bench": ')  # cut short
        assert main(["certify", "--resume", str(tmp_path)]) == exit_codes.USAGE
        assert "run.json: not a run record" in capsys.readouterr().err
        assert main(["certify", "--resume", str(tmp_path), "--seed", "2"]) == exit_codes.USAGE
        assert "drop --seed" in capsys.readouterr().err
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_torn_last_line_is_dropped_and_the_check_in_progress_set_aside(tmp_path: Path) -> None:
    done = {"check": "C1", "level": None, "test": "t.py::test_c1", "outcome": "passed"}
    (tmp_path / "outcomes.jsonl").write_text(json.dumps(done) + "\n" + '{"check": "C16", "lev')
    (tmp_path / "measurements.csv").write_text(
        HEADER + "C1,once,module_firmware,V150,,,,,\r\n" + "C16,CE1,reports,3,,1,,,True\r\n" + "C16,CE1,gap_s,8")
    assert [record.test for record in read_outcomes(tmp_path / "outcomes.jsonl")] == ["t.py::test_c1"]
    assert [m.name for m in read_measurements(tmp_path / "measurements.csv")] == ["module_firmware", "reports"]
    finished, notes = prepare(tmp_path)
    assert finished == {"t.py::test_c1"}
    assert len(notes) == 3, notes  # two torn lines, one set-aside
    assert (tmp_path / "outcomes.jsonl").read_text() == json.dumps(done) + "\n"
    assert [m.name for m in read_measurements(tmp_path / "measurements.csv")] == ["module_firmware"]
    assert [m.name for m in read_measurements(tmp_path / "measurements-interrupted.csv")] == ["reports"]
    assert os.path.getsize(tmp_path / "measurements.csv") > len(HEADER)
