"""`Bench`: opens what a bench profile names, hands it out, and leaves it safe on every exit.

On a simulated bench it starts the twin (or connects to a running one) and takes its clock; on a
hardware bench the clock is the wall clock. Teardown, Ctrl-C and crashes all end in the profile's
safe state (attenuators at their safe value, supply output as configured).
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pyvisa

from rig.clock import Clock, VirtualClock, WallClock
from rig.errors import RigFault, TwinError
from rig.instruments.attenuator import Rc4datAttenuator
from rig.instruments.power import N6705CPowerAnalyser
from rig.instruments.visa import DEFAULT_TIMEOUT_MS, TWIN_REPLY_TIMEOUT_MS, VisaTransport
from rig.interrupts import signals_held
from rig.profiles.bench import BenchProfile, TwinSettings
from rig.twinlink import TwinLink

log = logging.getLogger(__name__)

TWIN_START_TIMEOUT_S = 30.0
TWIN_STOP_TIMEOUT_S = 5.0
TWIN_DIAGNOSIS_WAIT_S = 0.5
TWIN_STDERR_LINES = 200
TWIN_STDERR_LINE_CHARS = 2000


def run_seed(profile: BenchProfile, seed: int | None) -> int:
    """The seed a run uses: `--seed`, else the bench profile's twin seed (a hardware bench: the default).

    Every random choice of the run derives from it: the twin's, the platform's and the suites'.
    """
    if seed is not None:
        return seed
    return profile.twin.seed if profile.twin is not None else TwinSettings.model_fields["seed"].default


class StreamTail:
    """The last lines of a child's output stream, drained by a thread so the child never blocks on a full pipe;
    bounded in lines and in line length."""

    def __init__(self, stream: IO[bytes], lines: int = TWIN_STDERR_LINES):
        self._stream = stream
        self._lines: deque[str] = deque(maxlen=lines)
        self._thread = threading.Thread(target=self._drain, name="twin-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while line := self._stream.readline(TWIN_STDERR_LINE_CHARS):
                self._lines.append(line.decode(errors="replace").rstrip("\n"))
        except (OSError, ValueError):  # the stream was closed under us
            return

    def text(self, wait_s: float = 0.0) -> str:
        """The lines kept so far (after waiting up to `wait_s` for the stream's end, once the child has exited)."""
        self._thread.join(wait_s)
        return "\n".join(self._lines)


@dataclass(frozen=True)
class TwinDiagnosis:
    """A launched twin's state for a check it may have broken: its exit code (None: running) and stderr tail."""

    pid: int
    exit_code: int | None
    stderr_tail: str

    @property
    def telling(self) -> bool:
        """It exited or said something: worth naming in a broken check's reason."""
        return self.exit_code is not None or bool(self.stderr_tail)

    @property
    def summary(self) -> str:
        state = "still running" if self.exit_code is None else f"exited with code {self.exit_code}"
        last = self.stderr_tail.splitlines()[-1] if self.stderr_tail else "nothing on its stderr"
        return f"twin (pid {self.pid}) {state}: {last}"


class TwinProcess:
    """A `python -m rig.sim` child started for one bench session and tied to this process: it stops when this
    process dies (however it dies) or drops the twin's clock, and sits in its own session, so a terminal's
    Ctrl-C reaches the rig (which puts the bench in its safe state through the twin) and not the twin."""

    def __init__(self, bench_path: Path, seed: int, start: str | None, device_path: Path | None = None):
        command = [sys.executable, "-m", "rig.sim", "--bench", str(bench_path), "--json", "--locked",
                   "--seed", str(seed), "--tied", str(os.getpid())]
        if threading.current_thread() is threading.main_thread():
            command.append("--parent-death-signal")  # Linux ties it to the launching thread, so only the main one
        if device_path is not None:
            command += ["--device", str(device_path)]
        if start is not None:
            command += ["--start", start]
        root = Path(__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, start_new_session=True)
        self.stderr = StreamTail(self.process.stderr)
        self._endpoints: dict | None = None

    @property
    def endpoints(self) -> dict:
        """The twin's endpoints, waited for the first time they are asked for."""
        if self._endpoints is None:
            self._endpoints = self._wait_endpoints()
        return self._endpoints

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_endpoints(self) -> dict:
        """The endpoints the twin prints when it is up; TwinError (with its stderr) if it does not come up."""
        ready, _, _ = select.select([self.process.stdout], [], [], TWIN_START_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise TwinError(f"the twin did not start: {self.stderr.text().strip() or 'no endpoints printed in time'}")
        return json.loads(line)

    def diagnosis(self) -> TwinDiagnosis:
        """How the twin is and what its stderr last said (a twin that is ending gets a moment to give its code)."""
        try:
            code = self.process.wait(timeout=TWIN_DIAGNOSIS_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        return TwinDiagnosis(self.pid, code, self.stderr.text(wait_s=0.0 if code is None else 1.0).strip())

    def stop(self) -> None:
        """End the twin (it stops itself on SIGTERM; killed if it does not) and close its pipes."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=TWIN_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.text(wait_s=1.0)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class Bench:
    """The instruments of one bench profile, their shared clock, and their safe state."""

    def __init__(
        self,
        profile: BenchProfile,
        profile_path: Path | None = None,
        seed: int | None = None,
        start: str | None = None,
        device_path: Path | None = None,
    ):
        self.profile = profile
        self.profile_path = profile_path
        self.device_path = device_path
        self.asked_seed = seed
        self.seed = run_seed(profile, seed)
        self.start = start
        self.clock: Clock = WallClock()
        self.attenuator: Rc4datAttenuator | None = None
        self.supply: N6705CPowerAnalyser | None = None
        self.endpoints: dict = {}
        self.twin_link: TwinLink | None = None
        self._twin_process: TwinProcess | None = None
        self._resource_manager: pyvisa.ResourceManager | None = None

    # ---- opening -------------------------------------------------------------------------------
    def open(self) -> Bench:
        try:
            if self.profile.twin is not None:
                self._open_twin()
            self._resource_manager = pyvisa.ResourceManager(self.profile.visa_library)
            self._open_instruments()
        except BaseException:
            self.close()
            raise
        return self

    def _open_twin(self) -> None:
        twin = self.profile.twin
        if twin.launch:
            if self.profile_path is None:
                raise RigFault("launching the twin needs the bench profile's path")
            # recorded before the twin is up, so an interruption while it starts still stops it
            self._twin_process = TwinProcess(self.profile_path, self.seed, self.start, self.device_path)
            self.endpoints = self._twin_process.endpoints
            host, port = self.endpoints["control"].rsplit(":", 1)
        else:
            host, port = twin.host, str(twin.control_port)
        self.twin_link = TwinLink(host, int(port), twin.control_timeout_s)
        if not twin.launch:
            self.endpoints = json.loads(self.twin_link.query("SIM:ENDP?"))
            running = int(self.endpoints["seed"])
            if running != self.seed:
                asked = "--seed" if self.asked_seed is not None else "the bench profile's twin.seed"
                raise RigFault(f"the running twin at {host}:{port} has seed {running}, the run's seed is {self.seed} "
                               f"({asked}, as the certificate records it): restart the twin with --seed {self.seed} "
                               f"or run with --seed {running}")
        if self.profile.clock == "virtual":
            self.clock = VirtualClock(self.twin_link)

    def twin_diagnosis(self) -> TwinDiagnosis | None:
        """The launched twin's state and stderr tail (see TwinProcess.diagnosis); None without a launched twin."""
        return self._twin_process.diagnosis() if self._twin_process is not None else None

    def resolve(self, resource: str) -> str:
        """A profile's resource string, with `twin:<name>` replaced by the twin's VISA resource."""
        if not resource.startswith("twin:"):
            return resource
        name = resource.removeprefix("twin:")
        try:
            return self.endpoints["instruments"][name]
        except KeyError:
            raise RigFault(f"the twin serves no instrument named {name!r}") from None

    def resolve_port(self, url: str) -> str:
        """A device profile's serial URL, with `twin:<name>` replaced by the twin's pty path."""
        if not url.startswith("twin:"):
            return url
        name = url.removeprefix("twin:")
        try:
            return self.endpoints["serial"][name]
        except KeyError:
            raise RigFault(f"the twin serves no serial port named {name!r} (is --device set?)") from None

    def _visa_options(self, resource: str) -> dict:
        """How long one try waits for a reply, and what a silence means.

        The twin answers every query at once (measured: 0.1 s at load average 9), so a twin's instrument gets a
        short try; a timeout then probes the twin's control port (see rig.instruments.visa): a stalled port fails
        within seconds, while a stalled machine only extends the wait for the same reply up to the control port's
        budget, so a loaded machine never makes the rig re-send a query. A hardware instrument gets its own timeout.
        """
        if self.twin_link is None or not resource.startswith("twin:"):
            return {"timeout_ms": DEFAULT_TIMEOUT_MS}
        patience_ms = int(self.profile.twin.control_timeout_s * 1000)
        return {"timeout_ms": min(TWIN_REPLY_TIMEOUT_MS, patience_ms), "liveness": self.twin_link.probe,
                "patience_ms": patience_ms}

    def _open_instruments(self) -> None:
        settings = self.profile.instruments
        if settings.attenuator is not None:
            resource = settings.attenuator.resource
            transport = VisaTransport(self._resource_manager, self.resolve(resource), "attenuator", "\r\n",
                                      **self._visa_options(resource))
            self.attenuator = Rc4datAttenuator(transport)
        if settings.supply is not None:
            resource = settings.supply.resource
            transport = VisaTransport(self._resource_manager, self.resolve(resource), "supply",
                                      **self._visa_options(resource))
            self.supply = N6705CPowerAnalyser(transport, self.clock, settings.supply.channel)
            self.supply.set_voltage(settings.supply.voltage_v)
            self.supply.set_current_limit(settings.supply.current_limit_a)

    # ---- closing -------------------------------------------------------------------------------
    def safe_state(self) -> list[str]:
        """Put every instrument into the profile's safe state; returns what could not be done."""
        if self._twin_process is not None and self._twin_process.process.poll() is not None:
            gone = f"the twin exited (code {self._twin_process.process.returncode}): its instruments went with it"
            log.warning("safe state not needed: %s", gone)
            return [gone]
        problems = []
        safe = self.profile.safe_state
        if self.attenuator is not None:
            try:
                self.attenuator.set_all(safe.attenuation_db)
            except Exception as error:  # noqa: BLE001 - keep going: the other instruments must be made safe
                problems.append(f"attenuator: {error}")
        if self.supply is not None:
            try:
                self.supply.set_output(safe.supply_output == "on")
            except Exception as error:  # noqa: BLE001
                problems.append(f"supply: {error}")
        for problem in problems:
            log.error("safe state not reached: %s", problem)
        return problems

    def close(self) -> None:
        """Safe state, then close every session, give the clock back and stop a twin we started."""
        with signals_held():  # Ctrl-C or SIGTERM now would leave the bench unsafe: they wait until it is safe
            self._close()

    def _close(self) -> None:
        self.safe_state()
        for instrument in (self.attenuator, self.supply):
            if instrument is not None:
                try:
                    instrument.close()
                except Exception:  # noqa: BLE001
                    log.debug("closing an instrument failed", exc_info=True)
        self.attenuator = self.supply = None
        # the resource manager is shared by every bench of the process: closing the sessions is enough
        self._resource_manager = None
        if self.twin_link is not None:
            try:
                if isinstance(self.clock, VirtualClock):
                    self.clock.release()
            except RigFault:
                log.debug("the twin did not take its clock back", exc_info=True)
            self.twin_link.close()
            self.twin_link = None
        if self._twin_process is not None:
            self._twin_process.stop()
            self._twin_process = None

    def __enter__(self) -> Bench:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()
