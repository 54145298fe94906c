"""The transport every instrument driver shares: a pyvisa session with bounded reconnect-and-retry.

Transport faults (timeouts, dropped sockets) are retried with tenacity a few times, reopening the
session each time; after that the fault becomes InstrumentLost, a rig fault, so the check is broken
rather than failed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pyvisa
from pyvisa import constants
from pyvisa.errors import InvalidSession, VisaIOError
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rig.errors import InstrumentLost

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_TIMEOUT_MS = 5000  # a real instrument's reply
# InvalidSession: the session was closed under us (a failed reopen, or the resource manager closed)
TRANSPORT_FAULTS = (VisaIOError, InvalidSession, ConnectionError, OSError, EOFError)


class VisaTransport:
    """A pyvisa resource that reopens itself after a transport fault, within a retry budget."""

    def __init__(
        self,
        resource_manager: pyvisa.ResourceManager,
        resource: str,
        name: str,
        termination: str = "\n",
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        attempts: int = 3,
    ):
        self.resource_manager = resource_manager
        self.resource = resource
        self.name = name
        self.termination = termination
        self.timeout_ms = timeout_ms
        self.attempts = attempts
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
                # an exchange was cut off (Ctrl-C mid-query): its late reply must not answer this command
                self._reopen()
                self._interrupted = False
            try:
                self._interrupted = True
                result = action()
                self._interrupted = False
                return result
            except TRANSPORT_FAULTS:
                log.warning("%s: transport fault during %r, reconnecting", self.name, command)
                with contextlib.suppress(*TRANSPORT_FAULTS):
                    self._reopen()
                raise

        try:
            for try_ in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.1, max=1.0),
                retry=retry_if_exception_type(TRANSPORT_FAULTS),
            ):
                with try_:
                    return attempt()
        except RetryError as error:
            cause = error.last_attempt.exception()
            raise InstrumentLost(
                f"{self.name} ({self.resource}) lost during {command!r} after {self.attempts} tries: {cause}"
            ) from None
        raise AssertionError("unreachable")

    def write(self, command: str) -> None:
        self._retrying(command, lambda: self._session.write(command))

    def query(self, command: str) -> str:
        return self._retrying(command, lambda: self._session.query(command).strip())

    def query_float32_block(self, command: str, big_endian: bool = True) -> np.ndarray:
        """A definite-length binary block of float32 (IEEE 488.2)."""
        values = self._retrying(
            command,
            lambda: self._session.query_binary_values(
                command, datatype="f", is_big_endian=big_endian, container=np.array
            ),
        )
        return values.astype(np.float32)  # native byte order, whatever the wire's

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
