"""What `write` does when it is asked to stop: SIGTERM, from the platform cancelling the sync, or
from Kubernetes draining the node or evicting the pod.

Progress that is already safe must not be lost, and stopping must not take long: SIGKILL follows
after the pod's grace period (30 s unless configured otherwise). The handler only sets a flag (a
watchdog thread then wakes the main thread): the main thread may be in the middle of filling a
batch, where an exception could lose track of rows. The writer checks the flag between messages
and while it waits; it then stops reading, gives the requests already in flight
STOP_WAIT_SECONDS to finish (echoing the states each one frees, without waiting out long
retries), and raises `StopRequested`.

The process then exits with 143 (128 + SIGTERM) after a `transient_error` trace. A stopped sync
must never look successful: only a zero exit makes the platform count a destination as done, and
143 is the code it expects from a container it terminated itself (airbyte-platform
`LocalContainerConstants.IGNORED_EXIT_CODES = {0, 143}`), so a cancel is not reported as an extra
failure. The next attempt resumes from the last state echoed. A watchdog exits the same way
STOP_DEADLINE_SECONDS after the signal if the main thread is stuck in a call it cannot leave (a
list lookup or a mirror's removals retrying against Klaviyo); it runs from `install` on, because a
signal handler must not start threads or take locks.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Optional

from airbyte_cdk.logger import PRINT_BUFFER

from destination_klaviyo.errors import StopRequested, as_traced

logger = logging.getLogger("airbyte")

STOP_WAIT_SECONDS = 5.0  # for requests already in flight, after SIGTERM
STOP_DEADLINE_SECONDS = 15.0  # after SIGTERM the process is gone by then, whatever it was doing
EXIT_CODE = 128 + signal.SIGTERM
WATCH_SECONDS = 0.2  # how often the watchdog looks at the flag


class StopSignal:
    """SIGTERM as a flag the message loop checks, with a deadline after which the process exits anyway."""

    def __init__(self, wakeup: threading.Event) -> None:
        self.wakeup = wakeup
        self.requested = False
        self.requested_at = 0.0  # time.monotonic() of the signal
        self._previous: Any = None
        self._installed = False

    def install(self) -> None:
        """Handle SIGTERM from now on (only the main thread can; elsewhere this does nothing)."""
        if threading.current_thread() is threading.main_thread() and not self._installed:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
            threading.Thread(target=self._watch, name="sigterm-watchdog", daemon=True).start()

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: Optional[Any]) -> None:
        # Only plain assignments: the handler runs on the main thread between two bytecodes, maybe
        # while it holds a lock (an Event's, the log buffer's) that taking again would deadlock on.
        if not self.requested:
            self.requested_at = time.monotonic()
            self.requested = True

    def _watch(self) -> None:
        """Wake the main thread once SIGTERM arrived, and end the process at the deadline."""
        while not self.requested:
            if not self._installed:
                return
            time.sleep(WATCH_SECONDS)
        self.wakeup.set()
        time.sleep(max(0.0, self.requested_at + STOP_DEADLINE_SECONDS - time.monotonic()))
        logger.error(f"Still running {STOP_DEADLINE_SECONDS:.0f} s after SIGTERM; exiting now.")
        exit_stopped(StopRequested())

    def check(self) -> None:
        """Raise StopRequested once SIGTERM arrived."""
        if self.requested:
            raise StopRequested()


def exit_stopped(stop: StopRequested) -> None:
    """Emit the stop's trace and end the process with EXIT_CODE, without waiting for worker
    threads that may still be retrying a request (a normal exit would join them)."""
    try:
        as_traced(stop).emit_message()
        for stream in (sys.stdout, sys.__stdout__, sys.stderr):
            if stream is not None:
                stream.flush()
        PRINT_BUFFER.flush()  # the CDK's log handler writes there, even after `with PRINT_BUFFER` ended
    finally:
        os._exit(EXIT_CODE)
