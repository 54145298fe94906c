"""Ties a twin launched by a bench (`python -m rig.sim --tied PID`) to the process that launched it.

The twin stops when that process dies, however it dies (SIGKILL included): Linux delivers SIGTERM on the
parent's death (PR_SET_PDEATHSIG), and, on any system, a watcher sees its stdin (a pipe the bench holds)
reach end of file or its parent PID change. A twin started by hand is never tied.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_INTERVAL_S = 0.25
EXIT_GRACE_S = 2.0  # a twin that cannot stop itself cleanly in this time is ended hard
ORPHANED_EXIT_CODE = 3


def set_parent_death_signal(signum: int) -> bool:
    """Ask Linux to send `signum` to this process when the thread that started it ends; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0


def parent_gone(parent_pid: int) -> bool:
    """The process that launched us has ended (we were re-parented)."""
    return os.getppid() != parent_pid


def tie_to_parent(parent_pid: int, stop: Callable[[], None], death_signal: bool) -> None:
    """Call `stop` as soon as `parent_pid` is gone; end the process if it is still there `EXIT_GRACE_S` later."""
    if death_signal:
        set_parent_death_signal(signal.SIGTERM)
    watcher = threading.Thread(target=_watch, args=(parent_pid, stop), name="parent-watch", daemon=True)
    watcher.start()


def _watch(parent_pid: int, stop: Callable[[], None]) -> None:
    stdin = sys.stdin.fileno()
    while not parent_gone(parent_pid):
        ready, _, _ = select.select([stdin], [], [], WATCH_INTERVAL_S)
        if ready and not os.read(stdin, 4096):
            break  # end of file: the bench closed the pipe, or died
    log.info("the bench that launched this twin (pid %d) let go or died: stopping", parent_pid)
    stop()
    threading.Event().wait(EXIT_GRACE_S)
    os._exit(ORPHANED_EXIT_CODE)
