"""Interruptions (Ctrl-C, SIGTERM) that wait for a safe point: the bench's safe state and the run's certificate
are not cut short by a signal that arrives while they are being made.

A signal that arrives inside `signals_held()` is delivered again when the block ends (so Ctrl-C still ends
the run); a second one inside the block gives up waiting (an operator insisting on a hung safe state).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

HELD = (signal.SIGINT, signal.SIGTERM)


def interrupt(signum: int, frame: object) -> None:
    """A handler that unwinds like Ctrl-C (used for SIGTERM: a CI runner or `kill` stopping the run)."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block; deliver the first one held when it ends. A no-op outside the main
    thread (only it receives signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in HELD}
    previous = {signum: handler for signum, handler in previous.items() if handler is not None}
    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        held.append(signum)
        if len(held) > 1:
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name} again: not waiting for the safe point")
        log.warning("%s: stopping at the next safe point (send it again to stop at once)", signal.Signals(signum).name)

    for signum in previous:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held:
        signal.raise_signal(held[0])


def block_until_exit() -> None:
    """Block SIGINT and SIGTERM for the rest of the process (its result is decided; only exiting is left)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
