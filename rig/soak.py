"""A month unattended, and a year: the reference meter on the simulated bench for `days` simulated days.

One bench, one meter session, the virtual clock moved day by day as the suites move it. Every day the
meter's scheduled report must reach the platform; every week brings an alarm (the magnet, on the
stimulus port), a downlink queued while the meter sleeps (a point read or a configuration query, answered
at its next wake) and a report the platform swallows, so the meter must retry it 5 min later. The rig's
memory (VmRSS and the bytes tracemalloc traces) and the twin's (VmRSS) are sampled every 30 days. The run
passes when every event happened, the last sample's RSS (rig and twin) and the heap the rig kept since day
30 are within `tolerance` of day 30's RSS (20 % for a year, pro rata for other lengths), and the bench ends
clean: the twin process gone, every file descriptor the run opened closed.

    .venv/bin/python -m rig.soak [--days 365]      (make soak)
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

from rig.analysis.at_transcript import attempts
from rig.analysis.retry_flow import retry_window_s
from rig.bench import Bench
from rig.meter_session import MeterSession
from rig.monitor import MonitorLine
from rig.platform.server import Ticket, Uplink
from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model
from rig.profiles.plan import C7Retry, load_plan

ROOT = Path(__file__).resolve().parents[1]
SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
REFERENCE_METER = ROOT / "profiles" / "devices" / "reference-meter.yaml"
WHITE_PAPER_PLAN = ROOT / "profiles" / "plans" / "white-paper-2018.yaml"

DAY_S = 86400.0
REPORT_WITHIN_S = DAY_S + 3600.0  # a daily report, with its retry after a swallowed attempt
ASLEEP_AFTER_REPORT_S = 3600.0  # the report's exchange is over, the meter sleeps
ALARM_WITHIN_S = 300.0  # the magnet's alarm is up within 5 min (C17)
ANSWER_WITHIN_S = 600.0  # a queued command is answered in the exchange of the wake that fetched it
SERVING_CHANNEL, SERVING_DB, NO_COVERAGE_DB = 1, 5.0, 95.0  # cell 1 at CE0 (-95 dBm), the others out of reach
SAMPLE_EVERY_DAYS = 30
BASELINE_DAY = 30
YEAR_DAYS = 365
TOLERANCE = 0.20
# the run's day (counted from 1) within each week when each weekly event happens
ALARM_DAY, DOWNLINK_DAY, SWALLOW_DAY = 2, 4, 6
DOWNLINKS = ({"type": "point_read"}, {"type": "config_query", "key": "freeze_interval_s"})


@dataclass(frozen=True)
class MemorySample:
    """The rig's and the twin's memory on one day of the run (KiB)."""

    day: int
    rig_rss_kib: int
    rig_traced_kib: int
    twin_rss_kib: int


@dataclass
class SoakResult:
    """What a soak did and measured; `problems()` says what keeps it from passing."""

    days: int
    tolerance: float
    wall_s: float = 0.0
    reports: int = 0
    alarms_raised: int = 0
    alarms_received: int = 0
    downlinks_queued: int = 0
    downlinks_answered: int = 0
    swallowed: int = 0
    retries_seen: int = 0
    missing: list[str] = field(default_factory=list)
    samples: list[MemorySample] = field(default_factory=list)
    growth: list[str] = field(default_factory=list)
    twin_pid: int | None = None
    twin_left: bool = True
    fds_left: list[str] = field(default_factory=list)

    def sample(self, day: int) -> MemorySample | None:
        return next((s for s in self.samples if s.day == day), None)

    def problems(self) -> list[str]:
        """Each way the run failed: a weekly event missing, memory over tolerance, something left open."""
        found = list(self.missing)
        weeks = self.days // 7
        for name, count in (("alarms received", self.alarms_received), ("downlinks answered", self.downlinks_answered),
                            ("retries seen", self.retries_seen)):
            if count < weeks:
                found.append(f"{name}: {count} in {weeks} weeks")
        if self.reports < self.days:
            found.append(f"reports: {self.reports} in {self.days} days")
        base, last = self.sample(BASELINE_DAY), self.samples[-1] if self.samples else None
        if base is None or last is None or last.day <= base.day:
            found.append(f"memory: no sample after day {BASELINE_DAY} to compare with it")
        else:
            allowed_kib = base.rig_rss_kib * self.tolerance
            if last.rig_rss_kib - base.rig_rss_kib > allowed_kib:
                found.append(f"rig RSS: {last.rig_rss_kib} KiB on day {last.day}, over {base.rig_rss_kib} KiB on day "
                             f"{base.day} + {self.tolerance:.1%}")
            if last.twin_rss_kib - base.twin_rss_kib > base.twin_rss_kib * self.tolerance:
                found.append(f"twin RSS: {last.twin_rss_kib} KiB on day {last.day}, over {base.twin_rss_kib} KiB on "
                             f"day {base.day} + {self.tolerance:.1%}")
            if last.rig_traced_kib - base.rig_traced_kib > allowed_kib:
                found.append(f"rig heap: {last.rig_traced_kib - base.rig_traced_kib} KiB kept from day {base.day} to "
                             f"day {last.day}, over {self.tolerance:.1%} of day {base.day}'s RSS")
        if self.twin_left:
            found.append(f"the twin (pid {self.twin_pid}) is still running")
        if self.fds_left:
            found.append(f"left open: {', '.join(self.fds_left)}")
        return found


# ---- the process table and memory ----------------------------------------------------------------
def status_kib(pid: int | str, key: str = "VmRSS") -> int:
    """A `kB` figure of /proc/<pid>/status (0 when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in text.splitlines() if line.startswith(f"{key}:")), f"{key}: 0 kB")
    return int(line.split()[1])


def twin_children() -> set[int]:
    """This process's children that run the twin (`python -m rig.sim`)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("PPid:"))
            command = (entry / "cmdline").read_bytes()
        except (OSError, StopIteration):
            continue
        if int(parent.split()[1]) == os.getpid() and b"rig.sim" in command:
            children.add(int(entry.name))
    return children


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return state.split()[1] != "Z"


def open_fds() -> dict[str, str]:
    """This process's file descriptors and what each points to (sockets, ptys, files)."""
    fds = {}
    for entry in Path("/proc/self/fd").iterdir():
        try:
            fds[entry.name] = os.readlink(entry)
        except OSError:
            continue  # the descriptor listing the directory itself, closed meanwhile
    return fds


def memory_sample(day: int, twin_pid: int | None) -> MemorySample:
    """After a full collection: the rig's RSS less tracemalloc's own bookkeeping (which tracing adds, a
    block's traceback for every live block), the bytes tracemalloc traces, and the twin's RSS."""
    gc.collect()
    rig_rss_kib = status_kib("self") - tracemalloc.get_tracemalloc_memory() // 1024
    return MemorySample(day, rig_rss_kib, tracemalloc.get_traced_memory()[0] // 1024,
                        status_kib(twin_pid) if twin_pid is not None else 0)


def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, count: int = 6) -> list[str]:
    """The allocation sites that grew most between two snapshots, one line each."""
    rows = []
    for stat in after.compare_to(before, "lineno")[:count]:
        if stat.size_diff <= 0:
            break
        frame = stat.traceback[0]
        rows.append(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
                    f"{Path(frame.filename).name}:{frame.lineno}")
    return rows


def snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])


# ---- the year ------------------------------------------------------------------------------------
class SoakDriver:
    """Moves one meter session through the days and records each weekly event."""

    def __init__(self, meter: MeterSession, retry: C7Retry, result: SoakResult):
        self.meter = meter
        self.retry = retry
        self.clock = meter.bench.clock
        self.result = result
        self.pending: Ticket | None = None
        self.swallowed_from: int | None = None  # the monitor's mark when the platform began to swallow
        self.downlinks = itertools.cycle(DOWNLINKS)

    def day(self, number: int) -> None:
        """Day `number` of the run (from 1): its report, then the week's event of that day."""
        report = self.meter.wait_for_report(REPORT_WITHIN_S)
        if report is None:
            self.result.missing.append(f"day {number}: no report within {REPORT_WITHIN_S:.0f} s")
            return
        self.result.reports += 1
        if self.swallowed_from is not None:
            self._check_retry(number, report, self.swallowed_from)
        if self.pending is not None:
            self._check_answer(number, self.pending)
        weekday = number % 7
        if weekday in (ALARM_DAY, DOWNLINK_DAY, SWALLOW_DAY):
            self.clock.sleep(max(report.time_s + ASLEEP_AFTER_REPORT_S - self.clock.now(), 0.0))
        if weekday == ALARM_DAY:
            self._alarm(number)
        elif weekday == DOWNLINK_DAY:
            self.pending = self.meter.platform.queue_downlink(self.meter.device.identity.imei, next(self.downlinks))
            self.result.downlinks_queued += 1
        elif weekday == SWALLOW_DAY:
            self.meter.platform.swallow_next_uplinks(1)  # the next report's first attempt: the meter must retry
            self.swallowed_from = self.meter.monitor.mark()

    def _alarm(self, number: int) -> None:
        since = len(self.meter.platform.uplinks)
        raised_s = self.clock.now()
        self.meter.stimulate("magnetic")
        self.result.alarms_raised += 1
        alarm = self.meter.platform.wait_for_uplink(
            lambda u: u.message is not None and u.message["type"] == "alarm", ALARM_WITHIN_S, since=since)
        if alarm is None:
            self.result.missing.append(f"day {number}: no alarm within {ALARM_WITHIN_S:.0f} s of the magnet")
        else:
            self.result.alarms_received += 1
            self.clock.sleep(max(raised_s + ALARM_WITHIN_S - self.clock.now(), 0.0))  # its exchange is over

    def _check_answer(self, number: int, ticket: Ticket) -> None:
        self.clock.wait_until(lambda: ticket.answered_at is not None, ANSWER_WITHIN_S)
        if ticket.answered_at is not None and (ticket.answer or {}).get("status") == "ok":
            self.result.downlinks_answered += 1
        else:
            self.result.missing.append(f"day {number}: {ticket.message['type']} not answered ok: {ticket.answer}")
        self.pending = None

    def _check_retry(self, number: int, report: Uplink, mark: int) -> None:
        """The swallowed report's first retry, start to start on the AT monitor, in the plan's C7 window; the
        platform swallowed the first attempt and received the retry."""
        self.swallowed_from = None
        kind = report.message["type"]
        swallowed = [u for u in self.meter.platform.swallowed if u.message is not None
                     and u.message["type"] == kind and u.time_s <= report.time_s]
        since = [MonitorLine(i, line.time_s, line.sender, line.text)  # renumbered: only these are scanned
                 for i, line in enumerate(self.meter.monitor.since(mark))]
        sent = attempts(since, self.meter.codec, (kind,))
        if not swallowed or len(sent) < 2:
            self.result.missing.append(f"day {number}: {len(swallowed)} report(s) swallowed, {len(sent)} sent")
            return
        self.result.swallowed += 1
        detection_s = self.meter.device.failure_detection_max_s
        low_s, high_s = retry_window_s(self.retry.retry_waits_s[0], self.retry, detection_s)
        gap_s = sent[1].time_s - sent[0].time_s
        if low_s <= gap_s <= high_s and report.time_s >= sent[1].time_s:
            self.result.retries_seen += 1
        else:
            self.result.missing.append(f"day {number}: the retry of the swallowed report started {gap_s:.0f} s "
                                       f"after it, not {low_s:.0f} .. {high_s:.0f} s")


def soak(days: int, tolerance: float | None = None, bench_path: Path = SIM_BENCH,
         device_path: Path = REFERENCE_METER, plan_path: Path = WHITE_PAPER_PLAN) -> SoakResult:
    """Run the reference meter for `days` simulated days (more than 30: day 30 is the memory baseline).

    tracemalloc traces from day 30 on (unless the process already traces), so what it counts is what the
    rig kept since the baseline, and its bookkeeping does not weigh on the baseline's RSS.
    """
    if days <= BASELINE_DAY:
        raise ValueError(f"a soak needs more than {BASELINE_DAY} days (day {BASELINE_DAY} is its baseline)")
    result = SoakResult(days, pro_rata_tolerance(days) if tolerance is None else tolerance)
    started = time.perf_counter()
    traced_before = tracemalloc.is_tracing()
    fds_before = open_fds()
    twins_before = twin_children()
    try:
        device = load_model(device_path, DeviceProfile)
        with Bench(load_model(bench_path, BenchProfile), bench_path, device_path=device_path) as bench, \
                MeterSession(bench, device) as meter:
            result.twin_pid = next(iter(twin_children() - twins_before), None)
            bench.attenuator.set_all(NO_COVERAGE_DB)
            bench.attenuator.set_attenuation(SERVING_CHANNEL, SERVING_DB)
            meter.power_on()
            driver = SoakDriver(meter, load_plan(plan_path).checks.C7, result)
            for number in range(1, days + 1):
                driver.day(number)
                if number % SAMPLE_EVERY_DAYS == 0 or number == days:
                    result.samples.append(memory_sample(number, result.twin_pid))
                if number == BASELINE_DAY:
                    tracemalloc.start()
                    baseline = snapshot()
            result.growth = top_growth(baseline, snapshot())
        result.twin_left = result.twin_pid is None or running(result.twin_pid)
        result.fds_left = sorted(f"fd {fd} -> {target}" for fd, target in open_fds().items()
                                 if fds_before.get(fd) != target)
    finally:
        if not traced_before:
            tracemalloc.stop()
        result.wall_s = time.perf_counter() - started
    return result


def pro_rata_tolerance(days: int) -> float:
    """The year's allowance (20 % from day 30 to day 365) for the days a shorter or longer run has after day 30:
    the same growth per day is allowed whatever the run's length."""
    return TOLERANCE * (days - BASELINE_DAY) / (YEAR_DAYS - BASELINE_DAY)


# ---- the command line ----------------------------------------------------------------------------
def describe(result: SoakResult) -> str:
    """The run's figures: events, memory by month, the sites that grew, what was left, wall time."""
    weeks = result.days // 7
    lines = [f"soak: reference meter, {result.days} simulated days ({weeks} weeks), wall time {result.wall_s:.1f} s",
             f"reports received     {result.reports:5d} of {result.days}",
             f"alarms received      {result.alarms_received:5d} of {result.alarms_raised} raised",
             f"downlinks answered   {result.downlinks_answered:5d} of {result.downlinks_queued} queued",
             f"retries seen         {result.retries_seen:5d} of {result.swallowed} swallowed reports",
             "", f"{'day':>5} {'rig RSS KiB':>12} {'rig traced KiB':>15} {'twin RSS KiB':>13}"]
    lines += [f"{s.day:5d} {s.rig_rss_kib:12d} {s.rig_traced_kib:15d} {s.twin_rss_kib:13d}" for s in result.samples]
    base, last = result.sample(BASELINE_DAY), result.samples[-1] if result.samples else None
    if base is not None and last is not None and last.day > base.day:
        def share(kib: int) -> str:
            return f"{kib:+d} KiB ({kib / base.rig_rss_kib:+.1%})"

        lines.append(f"day {base.day} to day {last.day}: rig RSS {share(last.rig_rss_kib - base.rig_rss_kib)}, "
                     f"rig heap kept {share(last.rig_traced_kib - base.rig_traced_kib)} of day {base.day}'s RSS "
                     f"(allowed {result.tolerance:.1%}); twin RSS {share(last.twin_rss_kib - base.twin_rss_kib)}")
    lines += ["", f"grew most from day {BASELINE_DAY} to day {result.days} (tracemalloc):", *result.growth]
    lines.append(f"twin pid {result.twin_pid}: {'STILL RUNNING' if result.twin_left else 'gone'}; "
                 f"descriptors left open: {len(result.fds_left)}")
    problems = result.problems()
    lines.append("PASS" if not problems else "FAIL\n  " + "\n  ".join(problems))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365, help="simulated days (more than 30; default 365)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="allowed memory growth of the last sample over day 30's "
                             "(default: 0.20 for 365 days, pro rata for other lengths)")
    args = parser.parse_args(argv)
    if args.days <= BASELINE_DAY:
        parser.error(f"--days must be more than {BASELINE_DAY}")
    result = soak(args.days, args.tolerance)
    print(describe(result))
    return 1 if result.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
