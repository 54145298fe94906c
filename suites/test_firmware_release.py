"""C1: the module runs a 3GPP uplink-power-optimised firmware release on the operator's allow-list."""

from __future__ import annotations

import allure
import pytest

from fixtures.checks import Recorder, not_applicable
from rig.bench import Bench
from rig.module_session import ModuleSession
from rig.profiles.device import DeviceProfile
from rig.profiles.plan import PlanProfile

BOOT_WITHIN_S = 8 * 3600.0  # the longest power-on stagger (199 x 120 s + 59 s) and a guard


def allowed(version: str | None, plan: PlanProfile) -> int:
    return int(version in plan.checks.C1.firmware_allow_list)


@pytest.mark.check("C1")
@pytest.mark.needs("monitor")
def test_c1_meter_module_firmware_is_on_the_allow_list(meter, plan: PlanProfile, measure: Recorder) -> None:
    """Seen on the AT monitor: the module's answer to the MCU's AT+CGMR when it brings the module up."""
    meter.power_on()
    line = meter.monitor.wait_for(r"^SSB,", BOOT_WITHIN_S, sender="module", mark=0)
    version = line.text.removeprefix("SSB,") if line else None
    excerpt = meter.monitor.excerpt(max(line.index - 3, 0), line.index + 7) if line else "no AT+CGMR answer"
    allure.attach(excerpt, "AT monitor", allure.attachment_type.TEXT)
    measure("module_firmware", version, "")
    measure("on_allow_list", allowed(version, plan), "", low=1, note=", ".join(plan.checks.C1.firmware_allow_list))
    measure.judge()


@pytest.mark.check("C1")
def test_c1_bare_module_firmware_is_on_the_allow_list(bench: Bench, device_profile: DeviceProfile,
                                                      plan: PlanProfile, measure: Recorder) -> None:
    if device_profile.kind != "module":
        not_applicable("the device is a meter: its module is checked through the AT monitor")
    module = ModuleSession(bench, device_profile)
    try:
        module.power_on()
        version = module.command("AT+CGMR").value("SSB,")
    finally:
        module.close()
    measure("module_firmware", version, "")
    measure("on_allow_list", allowed(version, plan), "", low=1, note=", ".join(plan.checks.C1.firmware_allow_list))
    measure.judge()
