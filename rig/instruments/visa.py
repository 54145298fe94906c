"""The transport every instrument driver shares: a pyvisa session with bounded reconnect-and-retry.

Transport faults (timeouts, dropped sockets, garbled replies) are retried with tenacity a few times,
reopening the session each time; after that the fault becomes InstrumentLost, a rig fault, so the check
is broken rather than failed. Every try is a whole exchange on a fresh session, so a late reply can
never answer the next command.

An instrument served by the twin also has a liveness probe (the twin's control port). A reply that does
not come within the short per-try timeout asks the probe: if the twin answers, it is alive and has
served this port too, so a reply still missing a moment later means the port is stalled: the try fails;
if the twin does not answer either, the machine (or the twin) is stalled: the same reply is awaited for
the long `patience_ms`, never re-sent, so a loaded machine never makes a query run twice; if the twin is
gone, nothing is retried.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pyvisa
from pyvisa import constants
from pyvisa.errors import InvalidSession, VisaIOError
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rig.errors import InstrumentLost
from rig.twinlink import Liveness

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_TIMEOUT_MS = 5000  # a real instrument's reply
TWIN_REPLY_TIMEOUT_MS = 2000  # a twin's instrument answers at once: a longer silence asks the liveness probe
LATE_REPLY_MS = 200  # after the twin answered a probe, what it owed this port arrives within this
# InvalidSession: the session was closed under us (a failed reopen, or the resource manager closed)
TRANSPORT_FAULTS = (VisaIOError, InvalidSession, ConnectionError, OSError, EOFError)


class GarbledReply(ConnectionError):
    """A reply that does not parse: the link corrupted it; retried on a fresh session like a drop."""


class GiveUp(Exception):
    """A fault no retry can mend (the twin is gone, or stalled past its patience)."""


def is_timeout(error: BaseException) -> bool:
    return isinstance(error, VisaIOError) and error.error_code == constants.StatusCode.error_timeout


class VisaTransport:
    """A pyvisa resource that reopens itself after a transport fault, within a retry budget.

    `timeout_ms` bounds one try; `liveness` (a twin's control-port probe) and `patience_ms` decide
    what a timeout means (see the module docstring). Without a probe every timeout is a failed try.
    """

    def __init__(
        self,
        resource_manager: pyvisa.ResourceManager,
        resource: str,
        name: str,
        termination: str = "\n",
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        attempts: int = 3,
        liveness: Callable[[], Liveness] | None = None,
        patience_ms: int | None = None,
    ):
        self.resource_manager = resource_manager
        self.resource = resource
        self.name = name
        self.termination = termination
        self.timeout_ms = timeout_ms
        self.attempts = attempts
        self.liveness = liveness
        self.patience_ms = patience_ms if patience_ms is not None else timeout_ms
        self._session = None
        self._interrupted = False
        self._session = self._retrying("open", self._open)

    def _open(self):
        try:
            session = self.resource_manager.open_resource(
                self.resource,
                read_termination=self.termination,
                write_termination=self.termination,
                timeout=self.timeout_ms,
            )
        except TRANSPORT_FAULTS:
            raise
        except Exception as error:  # pyvisa-py raises a bare Exception("could not connect: ...")
            raise ConnectionError(f"cannot open {self.resource}: {error}") from error
        session.chunk_size = 1 << 20
        if self.resource.upper().startswith("TCPIP"):
            # a write followed by a query may wait for a delayed ACK (Nagle); pyvisa-py 0.8 cannot set it
            with contextlib.suppress(Exception):
                session.set_visa_attribute(constants.VI_ATTR_TCPIP_NODELAY, constants.VI_TRUE)
        return session

    def _reopen(self) -> None:
        if self._session is not None:
            try:
                self._session.close()
            except Exception:  # noqa: BLE001 - the session is already broken; closing is best effort
                log.debug("closing broken session of %s failed", self.name, exc_info=True)
        self._session = self._open()

    def _retrying(self, command: str, action: Callable[[], T]) -> T:
        def attempt() -> T:
            if self._interrupted:
                # an exchange was cut off (Ctrl-C mid-query, a fault): its late reply must not answer this one
                self._reopen()
                self._interrupted = False
            self._interrupted = True
            try:
                result = action()
            except TRANSPORT_FAULTS:
                with contextlib.suppress(*TRANSPORT_FAULTS):
                    self._reopen()
                    self._interrupted = False
                raise
            self._interrupted = False
            return result

        try:
            for try_ in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.1, max=1.0),
                retry=retry_if_exception_type(TRANSPORT_FAULTS),
                before_sleep=lambda state: log.warning(
                    "%s: transport fault during %r (%s), reconnecting", self.name, command, state.outcome.exception()
                ),
            ):
                with try_:
                    return attempt()
        except RetryError as error:
            cause = error.last_attempt.exception()
            raise InstrumentLost(
                f"{self.name} ({self.resource}) lost during {command!r} after {self.attempts} tries: {cause}"
            ) from None
        except GiveUp as error:
            raise InstrumentLost(f"{self.name} ({self.resource}) lost during {command!r}: {error}") from None
        raise AssertionError("unreachable")

    def _receive(self, receive: Callable[[], T]) -> T:
        """Wait for a reply; on a timeout the probe decides between a stalled port, a slow twin and no twin."""
        try:
            return receive()
        except VisaIOError as error:
            if not is_timeout(error) or self.liveness is None:
                raise
        seconds = self.timeout_ms / 1000
        probe = self.liveness()
        if probe.answered:
            # the twin serves its ports in turn: a reply it owed this port is on the wire by now
            try:
                return self._receive_within(LATE_REPLY_MS, receive)
            except VisaIOError as error:
                if not is_timeout(error):
                    raise
            raise TimeoutError(f"no reply in {seconds:g} s while the twin answers on its control port: "
                               f"the {self.name} port is stalled") from None
        if not probe.reachable:
            raise GiveUp(f"no reply in {seconds:g} s and the twin is gone ({probe.detail})")
        log.warning("%s: the twin is slow (%s); waiting up to %g s for the same reply",
                    self.name, probe.detail, self.patience_ms / 1000)
        try:
            return self._receive_within(self.patience_ms, receive)
        except VisaIOError as error:
            if not is_timeout(error):
                raise
            raise GiveUp(f"neither the {self.name} port nor the twin's control port answered "
                         f"in {seconds + self.patience_ms / 1000:g} s: the twin is stalled") from None

    def _receive_within(self, timeout_ms: int, receive: Callable[[], T]) -> T:
        self._session.timeout = timeout_ms
        try:
            return receive()
        finally:
            self._session.timeout = self.timeout_ms

    def _parsed(self, reply: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(reply)
        except (ValueError, IndexError) as error:
            raise GarbledReply(f"garbled reply {reply[:60]!r} ({error})") from None

    def write(self, command: str) -> None:
        self._retrying(command, lambda: self._session.write(command))

    def query(self, command: str, parse: Callable[[str], T] = str) -> T:
        """Send a query and return its reply parsed by `parse`; a reply that does not parse is retried."""

        def exchange() -> T:
            self._session.write(command)
            return self._parsed(self._receive(lambda: self._session.read().strip()), parse)

        return self._retrying(command, exchange)

    def write_and_drain(self, command: str, query: str, done: Callable[[str], bool], limit: int = 20) -> list[str]:
        """Send `command`, then `query` until `done(reply)` (at most `limit` times) as one retried exchange.

        A try that fails re-sends `command` too, so a setting lost with a dropped link is never
        confirmed by the error queue of the new connection. Returns the replies before `done`.
        """

        def exchange() -> list[str]:
            self._session.write(command)
            replies = []
            for _ in range(limit):
                self._session.write(query)
                reply = self._receive(lambda: self._session.read().strip())
                if self._parsed(reply, done):
                    break
                replies.append(reply)
            return replies

        return self._retrying(command, exchange)

    def query_float32_block(self, command: str, big_endian: bool = True) -> np.ndarray:
        """A definite-length binary block of float32 (IEEE 488.2)."""

        def exchange() -> np.ndarray:
            self._session.write(command)
            try:
                return self._receive(lambda: self._session.read_binary_values(
                    datatype="f", is_big_endian=big_endian, container=np.array))
            except (ValueError, IndexError, struct.error) as error:
                raise GarbledReply(f"garbled block ({error})") from None

        values = self._retrying(command, exchange)
        return values.astype(np.float32)  # native byte order, whatever the wire's

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
