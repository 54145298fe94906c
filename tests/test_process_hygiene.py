"""No process the rig started outlives it: a twin launched by a bench is tied to the rig; Ctrl-C ends a campaign
at a safe point with exit 3 and an INCOMPLETE certificate; a check the twin broke says how the twin ended.

The short CI versions of the random-kill sweep (`make kill-sweep` runs many): one Ctrl-C at a seeded random
moment, one SIGKILL. The process table and the sockets are read from /proc.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.kill_sweep import kill_once, listening_inodes, socket_inodes, twins_of

ROOT = Path(__file__).resolve().parents[1]
GONE_WITHIN_S = 2.0
SELECTION = "C1"  # two tests (the meter's, the bare module's n/a): a short campaign

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table from /proc")

HOLDER = """
import json
import sys
from pathlib import Path

from rig.bench import Bench
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model

path = Path(sys.argv[1])
with Bench(load_model(path, BenchProfile), path) as bench:
    print(json.dumps(bench.endpoints), flush=True)
    while True:  # a long check: time moves in lockstep until the process is killed
        bench.clock.sleep(60.0)
"""


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def wait_gone(pids: list[int], within_s: float) -> list[int]:
    """The pids still alive (not zombies) after `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if alive_not_zombie(pid)]
        if not alive:
            return []
        time.sleep(0.02)
    return [pid for pid in pids if alive_not_zombie(pid)]


def alive_not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_twin_whose_rig_is_killed_outright_stops_and_frees_its_ports(tmp_path: Path, sim_bench_path: Path) -> None:
    script = tmp_path / "hold_bench.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(sim_bench_path)], stdout=subprocess.PIPE, env=env(),
                              cwd=ROOT)
    try:
        endpoints = json.loads(holder.stdout.readline())
        twins = twins_of(holder.pid)
        assert len(twins) == 1, twins
        sockets = socket_inodes(twins[0])
        assert sockets & listening_inodes(), "the twin should be listening (control port, instruments)"
        assert endpoints["control"].startswith("127.0.0.1:")
        holder.kill()  # SIGKILL: no teardown of any kind in the rig
        holder.wait()
        assert wait_gone(twins, GONE_WITHIN_S) == [], "the twin outlived its rig"
        assert not sockets & listening_inodes(), "the twin's ports are still open"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_ctrl_c_at_a_random_moment_ends_the_campaign_safely_and_leaves_nothing(tmp_path: Path) -> None:
    delay_s = round(random.Random(15).uniform(0.0, 2.0), 2)  # seeded: the sweep tries many more moments
    result = kill_once(tmp_path / "results", SELECTION, "ctrl-c", delay_s, after_first_twin=True)
    assert result.twins_seen >= 1, "the run ended before a twin was seen: nothing was tested"
    assert result.orphans == 0
    assert result.sockets_left == 0
    assert result.lost == []
    assert result.exit_code == 3


def test_a_twin_that_dies_during_a_check_is_named_in_the_broken_reason(tmp_path: Path) -> None:
    """The check's reason says how the twin ended and what its stderr last said (a log line here)."""
    checks = tmp_path / "test_dying_twin.py"
    checks.write_text(textwrap.dedent("""\
        import socket

        import pytest


        @pytest.mark.check("C1")
        def test_twin_dies_mid_check(bench):
            host, port = bench.endpoints["udp"]["platform"].rsplit(":", 1)
            bench.twin_link.query("SIM:PLATFORM 127.0.0.1:9")
            stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stray.sendto(b"not from the platform", (host, int(port)))  # the twin logs it to stderr and drops it
            stray.close()
            bench.clock.sleep(1.0)
            bench.twin_link.query("SIM:QUIT")
            bench.clock.sleep(1.0)
        """))
    outcomes = tmp_path / "outcomes.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(checks), f"--rootdir={ROOT}", "-p", "fixtures.plugin", "-p",
         "no:cacheprovider", f"--outcomes={outcomes}", f"--alluredir={tmp_path / 'allure'}", "-q",
         f"--device={ROOT / 'profiles' / 'devices' / 'reference-meter.yaml'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env())
    records = [json.loads(line) for line in outcomes.read_text().splitlines()]
    assert [record["outcome"] for record in records] == ["broken"], done.stdout + done.stderr
    reason = records[0]["reason"]
    assert "TwinError" in reason
    assert "exited with code 0" in reason and "stray datagram" in reason, reason
    attachments = [path.read_text() for path in (tmp_path / "allure").glob("*-attachment.txt")]
    assert any("stray datagram" in text and "exited with code 0" in text for text in attachments)



def test_a_launched_twin_stops_when_the_bench_drops_its_control_connection(sim_bench_path: Path) -> None:
    """The bench's process lives on but its control connection drops while it holds the clock: the twin it
    launched is of no use to anyone any more, and stops (a twin started by hand goes back to free-running:
    tests/test_safe_state.py)."""
    from rig.bench import Bench
    from rig.profiles.bench import BenchProfile
    from rig.profiles.loader import load_model

    bench = Bench(load_model(sim_bench_path, BenchProfile), sim_bench_path).open()
    try:
        twin = bench.twin_diagnosis().pid
        assert twin in twins_of(os.getpid())
        bench.clock.sleep(1.0)  # the bench holds the clock
        bench.twin_link.close()  # as if the connection broke: no SIM:FREE
        assert wait_gone([twin], GONE_WITHIN_S) == []
        deadline = time.monotonic() + GONE_WITHIN_S  # its last threads may still be ending: wait for its exit code
        while bench.twin_diagnosis().exit_code is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bench.twin_diagnosis().exit_code == 0
    finally:
        bench.twin_link = None  # already closed
        bench.close()
