"""A meter on the bench: the platform it reports to, the AT monitor on its UART, and its power.

A strategy in labgrid's sense: it composes what the bench and device profiles name, so checks say
what they do to the meter instead of how to wire it.
"""

from __future__ import annotations

from rig.bench import Bench
from rig.codec import load_codec
from rig.errors import RigFault
from rig.maintenance import MaintenanceDriver, load_maintenance
from rig.monitor import AtMonitor
from rig.platform import Platform
from rig.ports import SerialLinePort
from rig.profiles.device import DeviceProfile


class MeterSession:
    """Open with `with MeterSession(bench, device) as meter:`; everything closes, the bench stays safe."""

    def __init__(self, bench: Bench, device: DeviceProfile, platform_host: str = "127.0.0.1",
                 platform_port: int = 0):
        self.bench = bench
        self.device = device
        self.codec = load_codec(device.codec)
        self.platform = Platform(self.codec, bench.clock, platform_host, platform_port, seed=bench.seed,
                                 twin=twin_endpoint(bench), downlink_key=device.platform_key())
        self.monitor: AtMonitor | None = None
        self.correction_uplinks: list = []  # reports asked for to confirm or correct the level (C16/C22 skip them)
        self.level_ecl: int | None = None  # the ECL confirmed for the check's level
        self.level_since = 0  # uplink index from which reports are expected at `level_ecl`
        self._maintenance: MaintenanceDriver | None = None
        self._maintenance_port: SerialLinePort | None = None
        try:
            if bench.twin_link is not None:
                host, port = self.platform.address
                bench.twin_link.query(f"SIM:PLATFORM {host}:{port}")
            if device.parts.monitor:
                self.monitor = AtMonitor(
                    bench.clock, bench.resolve_port(device.ports.monitor_mcu),
                    bench.resolve_port(device.ports.monitor_module), device.ports.baudrate,
                )
        except BaseException:
            self.close()
            raise

    @property
    def maintenance(self) -> MaintenanceDriver:
        """The near-end port's driver (the device profile's protocol plugin), logged in on first use."""
        if self._maintenance is None:
            if not self.device.parts.maintenance:
                raise RigFault(f"{self.device.name} has no maintenance port")
            settings = self.device.maintenance
            self._maintenance_port = SerialLinePort(
                "maintenance", self.bench.resolve_port(settings.port), self.bench.clock, settings.baudrate
            )
            driver = load_maintenance(settings.protocol)
            self._maintenance = driver(self._maintenance_port, self.bench.clock, secrets=[settings.password])
            self._maintenance.login(settings.password.get_secret_value())
        return self._maintenance

    def log_in(self) -> MaintenanceDriver:
        """The near-end port's driver, logged in now (a logout or a power cut ends a session)."""
        if self._maintenance is None:
            return self.maintenance
        self._maintenance.login(self.device.maintenance.password.get_secret_value())
        return self._maintenance

    def power_on(self) -> None:
        if self.bench.supply is None:
            raise RigFault("the bench has no supply to power the meter")
        self.bench.supply.set_output(True)

    def power_off(self) -> None:
        if self.bench.supply is not None:
            self.bench.supply.set_output(False)

    def stimulate(self, name: str, value: float | None = None) -> None:
        """Magnet, separation or a flow rate (L/h) applied to the meter (the twin's stimulus port)."""
        if self.bench.twin_link is None:
            raise RigFault("this bench has no stimulus driver for real meters yet")
        suffix = f",{value}" if value is not None else ""
        self.bench.twin_link.query(f"SIM:STIM {name}{suffix}")

    def wait_for_report(self, timeout_s: float, since: int | None = None):
        """The next periodic report the platform receives (None after `timeout_s` of bench time)."""
        start = len(self.platform.uplinks) if since is None else since
        with self.bench.clock.waiting_for("the meter's next periodic report at the platform"):
            return self.platform.wait_for_uplink(
                lambda u: u.message is not None and u.message["type"].endswith("report"), timeout_s, since=start
            )

    def report_now(self, timeout_s: float) -> object | None:
        """Ask for a report over the near-end port when the meter has one, else wait for the scheduled one."""
        start = len(self.platform.uplinks)
        if self.device.parts.maintenance:
            self.maintenance.report_now()
        return self.wait_for_report(timeout_s, since=start)

    def correction_report(self, timeout_s: float) -> object | None:
        """A report asked for only to read the device's radio (level confirmation); not counted as a report."""
        report = self.report_now(timeout_s)
        if report is not None:
            self.correction_uplinks.append(report)
        return report

    def hold_level(self, ecl: int) -> None:
        """From now on the check expects every report at `ecl` (its confirmed level)."""
        self.level_ecl = ecl
        self.level_since = len(self.platform.uplinks)

    def release_level(self) -> None:
        """The check moves the device on purpose from now on (C12's RSRP steps): no ECL is expected."""
        self.level_ecl = None

    def off_level_reports(self) -> tuple[int, int]:
        """(reports at another ECL than the held level, reports carrying an ECL) since `hold_level`."""
        if self.level_ecl is None:
            return 0, 0
        ecls = [u.message["network"]["ecl"] for u in reports_of(self, self.level_since)
                if (u.message.get("network") or {}).get("ecl") is not None]
        return sum(1 for ecl in ecls if ecl != self.level_ecl), len(ecls)

    def close(self) -> None:
        if self._maintenance_port is not None:
            self._maintenance_port.close()
            self._maintenance_port = self._maintenance = None
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        self.platform.close()

    def __enter__(self) -> MeterSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def twin_endpoint(bench: Bench) -> tuple[str, int] | None:
    """Where the twin's meter sends from (its core network's UDP endpoint); None on hardware."""
    address = bench.endpoints.get("udp", {}).get("platform")
    if address is None:
        return None
    host, _, port = address.rpartition(":")
    return host, int(port)


def reports_of(session: MeterSession, since: int = 0) -> list:
    """The periodic reports the platform received (decoded), from uplink index `since`; reports asked for only to
    confirm the coverage level are left out."""
    corrections = {id(u) for u in session.correction_uplinks}
    return [u for u in session.platform.uplinks[since:]
            if u.message and u.message["type"].endswith("report") and id(u) not in corrections]
