"""C13: the meter keeps at least 30 days of communication and operation logs, per internal module; they
can be uploaded to the platform and downloaded over the near-end port, and the two agree.

The meter runs for the plan's days with known events, each inside the judged window with the plan's margin
(at most `log_days_min` less `event_margin_days` old when the log is read): its daily reports, a retry (the
platform swallows a report, so the meter's send fails and it retries) and a maintenance login; and a marker, a
maintenance login placed `log_days_min` less `marker_before_limit_s` before the download. At the end of the
plan's days the log is downloaded over the near-end port, then the platform asks for a log upload
(`log_upload`, answered at the meter's next uplink; the log comes as `log_chunk` uplinks). Judged: the age of
the oldest entry of each against `log_days_min` less the largest gap between consecutive entries (a meter
keeping exactly that many days drops an entry once it is that old, so its oldest may be younger by a gap),
that every internal module the device profile declares has entries, that every known event and the marker
have their entries (the meter's clock, read over maintenance, maps bench times to log times), and that the
upload is a contiguous run of the download.
"""

from __future__ import annotations

from dataclasses import dataclass

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import power_on_until_first_report
from rig.analysis.meter_log import (
    DAY_S,
    ClockMap,
    compare_upload,
    entries_between,
    entry_line,
    largest_gap_days,
    masked,
    module_counts,
    oldest_age_days,
    oldest_age_min_days,
    parse_log_text,
    reassemble,
    transcript,
)
from rig.bench import Bench
from rig.maintenance import LogEntry, MaintenanceDriver
from rig.meter_session import MeterSession, reports_of
from rig.platform.server import Uplink
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile

AFTER_REPORT_S = 600.0  # the report's exchange (time sync answered, link released) is over
NEXT_REPORT_WITHIN_S = 2 * DAY_S
RETRY_WITHIN_S = 2 * 3600.0  # the retry after a failed send (C7: 300 s, then 3600 s)
UPLOAD_ANSWER_WITHIN_S = 2 * DAY_S  # the request waits for the meter's next uplink (a daily report)
UPLOAD_CHUNKS_WITHIN_S = 3600.0  # from the answer to the last chunk
UPLOAD_DAYS_MAX = 255  # the log_upload downlink's range


@dataclass(frozen=True)
class KnownEvent:
    """Something the bench saw (bench time) that the meter's log must hold, in `module`, within a window."""

    name: str
    bench_s: float
    module: str
    before_s: float  # the meter's entry may be stamped this long before the bench saw it (its clock's error)
    after_s: float  # ... or this long after


def find(entries: list[LogEntry], event: KnownEvent, clock_map: ClockMap) -> list[LogEntry]:
    meter_s = clock_map.meter_time(event.bench_s)
    return entries_between(entries, meter_s - event.before_s, meter_s + event.after_s, event.module)


def provoke_a_retry(meter: MeterSession, measure: Recorder) -> tuple[Uplink, Uplink]:
    """The platform swallows the next report; the meter's retry must get through."""
    meter.platform.swallow_next_uplinks(1)
    swallowed_from = len(meter.platform.swallowed)
    retry = meter.wait_for_report(NEXT_REPORT_WITHIN_S + RETRY_WITHIN_S)
    failed = next((u for u in meter.platform.swallowed[swallowed_from:]
                   if u.message is not None and u.message["type"].endswith("report")), None)
    if failed is None or retry is None:
        measure("retry", "none", note="no swallowed report followed by a retry at the platform")
        pytest.fail("the meter's failed report was not retried, so its log has no retry to find")
    measure("retry_after_failed_send_s", round(retry.time_s - failed.time_s, 1), "s",
            note="swallowed report to the retry at the platform")
    return failed, retry


def login_once(meter: MeterSession) -> tuple[float, tuple[float, float]]:
    """A maintenance login (bench time), with a read of the meter's clock, then logged out."""
    login_s = meter.bench.clock.now()
    driver = meter.log_in()
    clock_read = (meter.bench.clock.now(), driver.clock())
    driver.logout()
    return login_s, clock_read


def sleep_until(meter: MeterSession, time_s: float) -> None:
    clock = meter.bench.clock
    clock.sleep(max(time_s - clock.now(), 0.0))


def upload_logs(meter: MeterSession, device: DeviceProfile, days: int, measure: Recorder
                ) -> tuple[list[LogEntry] | None, float | None]:
    """The platform's log-upload request and the reassembled upload (None where it failed), with the time its
    last chunk arrived (the meter cannot have dropped an entry from it after that)."""
    ticket = meter.platform.queue_downlink(device.identity.imei, {"type": "log_upload", "days": days})
    clock = meter.bench.clock
    clock.wait_until(lambda: ticket.answered_at is not None, UPLOAD_ANSWER_WITHIN_S)
    status = ticket.answer["status"] if ticket.answer is not None else "no answer"
    measure("upload_accepted", int(status == "ok"), "", low=1,
            note=f"log_upload of {days} days: {status} (queued at bench {ticket.queued_at:.0f} s)")
    if status != "ok":
        return None, None
    since = next((i for i, u in enumerate(meter.platform.uplinks) if u.time_s >= ticket.answered_at),
                 len(meter.platform.uplinks))

    def chunks() -> list[Uplink]:
        return [u for u in meter.platform.uplinks[since:] if u.message is not None and u.message["type"] == "log_chunk"]

    clock.wait_until(lambda: reassemble(u.message for u in chunks()).complete, UPLOAD_CHUNKS_WITHIN_S)
    upload = reassemble(u.message for u in chunks())
    measure("upload_chunks_missing", len(upload.missing) if upload.total else 1, "", high=0,
            note=f"{upload.total} chunks announced" if upload.total else "no log_chunk arrived")
    if not upload.complete:
        return None, None
    secrets = [device.maintenance.password.get_secret_value()]
    allure.attach(masked(upload.text, secrets), "log upload (platform)", allure.attachment_type.TEXT)
    try:
        entries = parse_log_text(upload.text)
    except ValueError as error:
        measure("upload_malformed_lines", 1, "", high=0, note=masked(str(error), secrets))
        return None, None
    return entries, chunks()[-1].time_s


def judge_events(entries: list[LogEntry], reports: list[KnownEvent], events: list[KnownEvent], clock_map: ClockMap,
                 measure: Recorder) -> None:
    """Every report the platform received, and each other known event, has its entry in the log."""
    rows = ["event | bench s | meter s | entries found"]
    found = {event: find(entries, event, clock_map) for event in [*reports, *events]}
    for event, matched in found.items():
        rows.append(f"{event.name} | {event.bench_s:.0f} | {clock_map.meter_time(event.bench_s):.0f} | "
                    + ("; ".join(entry_line(e) for e in matched) or "NONE"))
    measure("reports_logged", sum(bool(found[report]) for report in reports), "", low=len(reports),
            note=f"of {len(reports)} reports at the platform, each with an entry within "
                 f"{reports[0].after_s if reports else 0:g} s")
    for event in events:
        measure(f"{event.name}_logged", int(bool(found[event])), "", low=1,
                note=f"{event.module} entry within {event.before_s:g} s before to {event.after_s:g} s after")
    allure.attach("\n".join(rows), "known events in the downloaded log", allure.attachment_type.TEXT)


def judge_age(entries: list[LogEntry], now_s: float, log_days_min: float, which: str, note: str,
              measure: Recorder, read: list[LogEntry] | None = None) -> None:
    """The oldest entry's age against log_days_min less the largest gap between consecutive entries of
    `read` (all the log the rig has read, default `entries`: an entry dropped by retention, and so the gap
    after it, may show in another read)."""
    gap_days = largest_gap_days(entries if read is None else read)
    measure(f"{which}_largest_gap_days", round(gap_days, 4), "d", note="between consecutive entries"
            + ("" if read is None else " of the download and the upload together"))
    measure(f"{which}_oldest_entry_age_days", round(oldest_age_days(entries, now_s), 4), "d",
            low=round(oldest_age_min_days(log_days_min, gap_days), 4),
            note=f"{note}; limit {log_days_min:g} d less the largest gap" if entries else "the log is empty")


@pytest.mark.check("C13")
@pytest.mark.needs("maintenance")
def test_c13_the_meter_keeps_30_days_of_logs_per_module_and_upload_and_download_agree(
        meter: MeterSession, bench: Bench, device_profile: DeviceProfile, plan: PlanProfile,
        measure: Recorder) -> None:
    c13 = plan.checks.C13
    logs = device_profile.logs
    clock = bench.clock
    powered_s = clock.now()
    download_s = powered_s + c13.operation_days * DAY_S
    marker_s = download_s - c13.log_days_min * DAY_S + c13.marker_before_limit_s
    events_from_s = download_s - (c13.log_days_min - c13.event_margin_days) * DAY_S
    power_on_until_first_report(meter, measure, "it has no communication to log")
    sleep_until(meter, marker_s)
    marker_login_s, marker_clock = login_once(meter)
    sleep_until(meter, events_from_s)
    failed, retry = provoke_a_retry(meter, measure)
    clock.sleep(AFTER_REPORT_S)
    login_s, login_clock = login_once(meter)
    match_s = c13.log_match_s
    events = [KnownEvent("marker_login", marker_login_s, logs.maintenance_module, match_s, match_s),
              KnownEvent("failed_send", failed.time_s, logs.communication_module, match_s,
                         device_profile.failure_detection_max_s + match_s),
              KnownEvent("retry", retry.time_s, logs.communication_module, match_s, match_s),
              KnownEvent("maintenance_login", login_s, logs.maintenance_module, match_s, match_s)]

    sleep_until(meter, download_s)
    measure("operation_days", round((clock.now() - powered_s) / DAY_S, 2), "d", note="power-on to the download")
    driver: MaintenanceDriver = meter.log_in()
    download_clock = (clock.now(), driver.clock())
    download = driver.logs()
    secrets = [device_profile.maintenance.password.get_secret_value()]
    allure.attach(masked("\n".join(entry_line(e) for e in download), secrets), "log download (maintenance)",
                  allure.attachment_type.TEXT)
    measure("marker_age_days", round((download_clock[0] - marker_login_s) / DAY_S, 3), "d",
            low=round(c13.log_days_min - c13.marker_before_limit_s / DAY_S, 3),
            note=f"the marker login's age at the download (placed {c13.marker_before_limit_s:g} s inside "
                 f"{c13.log_days_min:g} d; a later one proves nothing)")
    judge_age(download, download_clock[1], c13.log_days_min, "download",
              f"{len(download)} entries, oldest {download[0].time_s:.0f} (meter clock)" if download else "", measure)
    counts = module_counts(download)
    for module in logs.modules:
        measure(f"entries_{module}", counts.get(module, 0), "", low=1, note="in the download")
    clock_map = ClockMap((marker_clock, login_clock, download_clock))
    reports = [KnownEvent(f"report_{index}", uplink.time_s, logs.communication_module, match_s, match_s)
               for index, uplink in enumerate(reports_of(meter))
               if events_from_s <= uplink.time_s < download_s and uplink is not retry]
    judge_events(download, reports, events, clock_map, measure)

    upload_days = min(c13.operation_days + 1, UPLOAD_DAYS_MAX)
    upload, uploaded_s = upload_logs(meter, device_profile, upload_days, measure)
    if upload is not None:
        after_upload = (clock.now(), meter.log_in().clock())  # the meter's clock at the upload, interpolated
        judge_age(upload, ClockMap((download_clock, after_upload)).meter_time(uploaded_s), c13.log_days_min, "upload",
                  f"{len(upload)} entries in a {upload_days}-day upload, aged at its last chunk", measure,
                  read=[*download, *upload])
        comparison = compare_upload(upload, download)
        measure("upload_entries_compared", comparison.compared, "", low=1)
        measure("upload_entries_not_in_download", comparison.only_in_upload, "", high=0)
        measure("download_entries_not_in_upload", comparison.only_in_download, "", high=0,
                note="within the span the upload covers")
        if not comparison.identical:
            allure.attach(masked(comparison.diff, secrets), "upload vs. download (diff)", allure.attachment_type.TEXT)
    else:
        measure("upload_vs_download", "not compared", note="no complete upload")
    allure.attach(masked(transcript(driver), secrets), "maintenance transcript", allure.attachment_type.TEXT)
    measure.judge()
