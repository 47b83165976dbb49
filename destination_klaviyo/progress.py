"""The progress line: every 5 s by the clock, from a thread of its own, whatever the sync waits for.

A check in the message loop (every N rows) says nothing while the loop waits: on a slow source
between rows, or on Klaviyo when every request slot is taken and its rate limits set the pace. A
thread that wakes every EVERY_SECONDS keeps the line coming, and says what the sync waits for.

Thread safety: the line goes out through the `airbyte` logger, whose handler writes a record in one
call, under its own lock and the CDK PrintBuffer's; destination.py writes each message line in one
call too, so stdout lines never interleave. The counts are plain attributes and snapshots read
without the writer's locks: a count one row behind is good enough for a progress line, and no lock
is taken on the per-row path for it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, NamedTuple, Optional

from destination_klaviyo.report import SyncReport, backlog_text, plural

logger = logging.getLogger("airbyte")


class ProgressSample(NamedTuple):
    """What the writer knows at one instant, for a progress line."""

    rows_read: int
    in_flight: int  # requests Klaviyo has not answered yet
    max_in_flight: int
    states_echoed: int
    input_finished: bool


class Progress:
    """Logs a progress line every EVERY_SECONDS from a daemon thread, between `start` and `stop`."""

    EVERY_SECONDS = 5.0

    def __init__(self, report: SyncReport, sample: Callable[[], ProgressSample]) -> None:
        self.report = report
        self.sample = sample
        self.started = self.last = time.monotonic()
        self.rows_at_last = 0
        self.input_finished = False  # set by the writer: the sync now waits on Klaviyo, not the source
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> None:
        self.started = self.last = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="klaviyo-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stopped.wait(self.EVERY_SECONDS):
            try:
                self.log()
            except Exception as exc:  # a traceback on stderr would be a non-message line on stdout
                logger.warning(f"Progress line failed ({type(exc).__name__}); the sync goes on without it.")
                return

    def log(self) -> None:
        now = time.monotonic()
        sample = self.sample()
        read = sample.rows_read
        rate = (read - self.rows_at_last) / max(now - self.last, 1e-9)
        average = read / max(now - self.started, 1e-9)
        delivered = "would deliver" if self.report.dry_run else "delivered"
        line = (
            f"Progress: read {plural(read, 'row')} ({rate:,.0f} rows/s now, {average:,.0f} on average), "
            f"{delivered} {self.report.total_delivered():,}, rejected {self.report.total_rejected():,}, "
            f"{sample.in_flight} request(s) in flight, {sample.states_echoed:,} state(s) echoed"
            # list(): a copy in one C call, while the writer's threads may add a backlog.
            + "".join(backlog_text(name, *queued) for name, queued in sorted(list(self.report.backlogs.items())))
        )
        waiting = _waiting_for(sample, read == self.rows_at_last)
        logger.info(f"{line}; {waiting}" if waiting else line)
        self.last, self.rows_at_last = now, read


def _waiting_for(sample: ProgressSample, no_new_rows: bool) -> Optional[str]:
    if sample.input_finished:
        if sample.in_flight:
            return "all rows read, waiting for Klaviyo to accept the last requests"
        return "all rows read, finishing (mirror, import checks)"
    if not no_new_rows:
        return None
    if sample.in_flight >= sample.max_in_flight:
        return "waiting on Klaviyo (its rate limits set the pace)"
    return "no new rows: waiting for the source"
