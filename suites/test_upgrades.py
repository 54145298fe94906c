"""C14: upgrades. A signed MCU image from the platform (SOTA) is applied and the new version reported; unsigned,
wrongly signed and truncated images are refused, the running version is kept and the meter goes on reporting
on time; a signed module image (FOTA) reboots the module with cause `FOTA_UPGRADE` and `AT+CGMR` gives the
new version; an MCU image over the near-end port (near-end upgrade) is applied and bad ones are refused.

Images are the rig's own test images, signed with the vendor's key from the device profile
(`upgrade.signing_key`, never shown); the bad ones are variants of a signed image (rig/platform/images.py).
The platform queues each image as `image_chunk` downlinks while the meter sleeps; they go down with its next
report (or the next few: a meter may take a few a day), and the last chunk's answer says applied (`ok`) or
`refused`. Versions are read from the next report and over maintenance. "On time" is the C4 window: a report
no later than the previous one plus the report period plus C4's n2 range and wake allowance (and no earlier
than the period minus that).
"""

from __future__ import annotations

from dataclasses import dataclass

import allure
import pytest

from fixtures.checks import Recorder
from fixtures.levels import power_on_until_first_report
from rig.analysis.meter_log import transcript
from rig.bench import Bench
from rig.maintenance import MaintenanceDriver, MaintenanceRefused
from rig.meter_session import MeterSession, reports_of
from rig.monitor import MCU, MODULE
from rig.platform.images import Image, bad_image, image_chunks, next_version, signed_image
from rig.platform.server import Ticket, Uplink
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile

AFTER_REPORT_S = 3600.0  # images are queued while the meter sleeps, after its report's exchange
NEXT_REPORT_WITHIN_S = 2 * 86400.0
DELIVERY_WITHIN_S = 10 * 86400.0  # queued images answered (a meter may take a few chunks a day)
FOTA_BOOT_WITHIN_S = 600.0  # the module reboots into its new image after the answer
CGMR_WITHIN_S = 600.0  # the MCU reads the module's version after the reboot, else the rig asks it to
MCU_IMAGE_BYTES = 1024
MODULE_IMAGE_BYTES = 768
BAD_VERSION_STEP = 10  # bad images carry versions from here on, so an accepted one is recognisable
FOTA_CAUSE = "REBOOT_CAUSE_SECURITY_FOTA_UPGRADE"


@dataclass
class Sent:
    """An image queued at the platform and the ticket of its last chunk (the one answered applied or refused)."""

    label: str
    image: Image
    last: Ticket


class Upgrader:
    """The meter's reports and versions around images sent from the platform."""

    def __init__(self, meter: MeterSession, device: DeviceProfile, plan: PlanProfile, measure: Recorder):
        self.meter = meter
        self.device = device
        self.measure = measure
        c4 = plan.checks.C4
        self.on_time_s = c4.n2_max_s + c4.wake_allowance_s

    def report(self) -> Uplink:
        report = self.meter.wait_for_report(NEXT_REPORT_WITHIN_S)
        if report is None:
            self.measure("next_report", "none", note=f"no report within {NEXT_REPORT_WITHIN_S:.0f} s")
            pytest.fail("the meter stopped reporting during its upgrades")
        return report

    def send(self, label: str, image: Image) -> Sent:
        endpoint = self.device.identity.imei
        tickets = [self.meter.platform.queue_downlink(endpoint, chunk) for chunk in image_chunks(image)]
        return Sent(label, image, tickets[-1])

    def deliver(self, sent: list[Sent]) -> Uplink:
        """Wait until the last chunk of each image is answered (a meter may take its queue over several
        exchanges); the report whose exchange brought the last answer."""
        since = len(self.meter.platform.uplinks)
        self.meter.bench.clock.wait_until(lambda: all(s.last.answered_at is not None for s in sent),
                                          DELIVERY_WITHIN_S)
        answered_s = max((s.last.answered_at for s in sent if s.last.answered_at is not None),
                         default=self.meter.bench.clock.now())
        carriers = [r for r in reports_of(self.meter, since) if r.time_s <= answered_s]
        return carriers[-1] if carriers else self.report()

    def judge_on_time(self, name: str, previous: Uplink, report: Uplink, period_s: float) -> None:
        self.measure(name, round(report.time_s - previous.time_s - period_s, 1) + 0.0, "s", low=-self.on_time_s,
                     high=self.on_time_s, note=f"interval to the previous report minus the period ({period_s:g} s)")


def versions_table(meter: MeterSession) -> str:
    rows = [f"{r.time_s:.1f} | {r.message['mcu_firmware']} | {r.message['module_firmware']}" for r in reports_of(meter)]
    return "\n".join(["report at (bench s) | mcu_firmware | module_firmware", *rows])


def status(sent: Sent) -> str:
    return sent.last.answer["status"] if sent.last.answer is not None else "no answer"


def bad_images_from_the_platform(up: Upgrader, targets: dict[str, str], kinds: list[str], period_s: float,
                                 measure: Recorder) -> None:
    key = up.device.upgrade.signing_key
    sent = []
    for target, running in targets.items():
        for step, kind in enumerate(kinds):
            version = next_version(running, BAD_VERSION_STEP + step)
            image = bad_image(kind, signed_image(target, version, image_size(target), key))
            sent.append(up.send(f"{'sota' if target == 'mcu' else 'fota'}_{kind}", image))
    carrier = up.deliver(sent)
    for item in sent:
        measure(f"{item.label}_refused", int(status(item) == "refused"), "", low=1,
                note=f"{item.image.describe()}: {status(item)}")
    after = up.report()
    for target, field in (("mcu", "mcu_firmware"), ("module", "module_firmware")):
        if target in targets:
            measure(f"{target}_version_kept", int(after.message[field] == targets[target]), "", low=1,
                    note=f"next report: {after.message[field]}, before: {targets[target]}")
    up.judge_on_time("report_after_bad_images_late_s", carrier, after, period_s)


def image_size(target: str) -> int:
    return MCU_IMAGE_BYTES if target == "mcu" else MODULE_IMAGE_BYTES


def sota(up: Upgrader, driver: MaintenanceDriver, old_mcu: str, measure: Recorder) -> str:
    image = signed_image("mcu", next_version(old_mcu), MCU_IMAGE_BYTES, up.device.upgrade.signing_key)
    sent = up.send("sota", image)
    up.deliver([sent])
    measure("sota_applied", int(status(sent) == "ok"), "", low=1, note=f"{image.describe()}: {status(sent)}")
    after = up.report()
    measure("sota_version_reported", int(after.message["mcu_firmware"] == image.version), "", low=1,
            note=f"next report: {after.message['mcu_firmware']}")
    over_maintenance = driver.versions().mcu
    measure("sota_version_over_maintenance", int(over_maintenance == image.version), "", low=1,
            note=f"VERSION: mcu={over_maintenance}")
    return image.version


def fota(up: Upgrader, driver: MaintenanceDriver, old_module: str, measure: Recorder) -> None:
    monitor = up.meter.monitor
    image = signed_image("module", next_version(old_module), MODULE_IMAGE_BYTES, up.device.upgrade.signing_key)
    mark = monitor.mark()
    sent = up.send("fota", image)
    up.deliver([sent])
    measure("fota_accepted", int(status(sent) == "ok"), "", low=1, note=f"{image.describe()}: {status(sent)}")
    banner = monitor.wait_for(f"^{FOTA_CAUSE}$", FOTA_BOOT_WITHIN_S, sender=MODULE, mark=mark)
    measure("fota_boot_cause", int(banner is not None), "", low=1,
            note=f"{FOTA_CAUSE} {banner.time_s - sent.last.answered_at:.1f} s after the image's answer"
            if banner and sent.last.answered_at is not None else f"no {FOTA_CAUSE} on the monitor")
    start = banner.index if banner is not None else mark
    cgmr = monitor.wait_for(r"^AT\+CGMR$", CGMR_WITHIN_S, sender=MCU, mark=start)
    asked_by = "the MCU"
    if cgmr is None:  # the MCU did not look: ask through it, the monitor sees the exchange all the same
        asked_by = "the rig over maintenance"
        try:
            driver.module("AT+CGMR")
        except MaintenanceRefused as refusal:
            asked_by += f" (refused: ERR {refusal.code} {refusal.text})"
        cgmr = monitor.wait_for(r"^AT\+CGMR$", CGMR_WITHIN_S, sender=MCU, mark=start)
    version = monitor.wait_for(r"^SSB,", CGMR_WITHIN_S, sender=MODULE, mark=cgmr.index) if cgmr else None
    measure("fota_cgmr_version", int(version is not None and version.text == f"SSB,{image.version}"), "", low=1,
            note=f"AT+CGMR asked by {asked_by}: {version.text if version else 'no SSB line'}")
    allure.attach(monitor.excerpt(max(start - 2, mark), (version.index + 8) if version else None),
                  "AT monitor: FOTA reboot and AT+CGMR", allure.attachment_type.TEXT)
    after = up.report()
    measure("fota_version_reported", int(after.message["module_firmware"] == image.version), "", low=1,
            note=f"next report: {after.message['module_firmware']}")


def upgrade_near_end(driver: MaintenanceDriver, image: Image) -> str:
    """`applied`, or the meter's refusal."""
    try:
        driver.upgrade(image.target, image.version, image.data, image.signature)
    except MaintenanceRefused as refusal:
        return f"ERR {refusal.code} {refusal.text}"
    return "applied"


def near_end(up: Upgrader, driver: MaintenanceDriver, running_mcu: str, kinds: list[str], period_s: float,
             measure: Recorder) -> None:
    key = up.device.upgrade.signing_key
    previous = up.report()
    up.meter.bench.clock.sleep(AFTER_REPORT_S)
    for step, kind in enumerate(kinds):
        image = bad_image(kind, signed_image("mcu", next_version(running_mcu, BAD_VERSION_STEP + step),
                                             MCU_IMAGE_BYTES, key))
        answer = upgrade_near_end(driver, image)
        measure(f"near_end_{kind}_refused", int(answer != "applied"), "", low=1, note=f"{image.describe()}: {answer}")
    kept = driver.versions().mcu
    measure("near_end_version_kept", int(kept == running_mcu), "", low=1, note=f"VERSION: mcu={kept}")
    image = signed_image("mcu", next_version(running_mcu), MCU_IMAGE_BYTES, key)
    answer = upgrade_near_end(driver, image)
    measure("near_end_applied", int(answer == "applied"), "", low=1, note=f"{image.describe()}: {answer}")
    over_maintenance = driver.versions().mcu
    measure("near_end_version_over_maintenance", int(over_maintenance == image.version), "", low=1,
            note=f"VERSION: mcu={over_maintenance}")
    after = up.report()
    measure("near_end_version_reported", int(after.message["mcu_firmware"] == image.version), "", low=1,
            note=f"next report: {after.message['mcu_firmware']}")
    up.judge_on_time("report_after_near_end_late_s", previous, after, period_s)


@pytest.mark.check("C14")
@pytest.mark.needs("monitor", "maintenance")
def test_c14_signed_images_are_applied_over_the_air_and_near_end_and_bad_ones_refused(
        meter: MeterSession, bench: Bench, device_profile: DeviceProfile, plan: PlanProfile,
        measure: Recorder) -> None:
    c14 = plan.checks.C14
    up = Upgrader(meter, device_profile, plan, measure)
    first = power_on_until_first_report(meter, measure, "its versions could not be read from a report")
    old_mcu, old_module = first.message["mcu_firmware"], first.message["module_firmware"]
    measure("mcu_version_before", old_mcu, note="first report")
    measure("module_version_before", old_module, note="first report")
    driver = meter.maintenance
    period_s = driver.report_period_s()
    bench.clock.sleep(AFTER_REPORT_S)
    try:
        targets = {"mcu": old_mcu, **({"module": old_module} if c14.fota else {})}
        if c14.bad_images:
            bad_images_from_the_platform(up, targets, list(c14.bad_images), period_s, measure)
        running_mcu = old_mcu
        if c14.sota:
            bench.clock.sleep(AFTER_REPORT_S)
            running_mcu = sota(up, driver, old_mcu, measure)
        if c14.fota:
            bench.clock.sleep(AFTER_REPORT_S)
            fota(up, driver, old_module, measure)
        if c14.near_end:
            near_end(up, driver, running_mcu, list(c14.bad_images), period_s, measure)
    finally:
        allure.attach(versions_table(meter), "versions in the reports", allure.attachment_type.TEXT)
        allure.attach(transcript(driver), "maintenance transcript", allure.attachment_type.TEXT)
    measure.judge()
