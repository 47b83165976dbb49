"""Requests in flight: up to N deliveries run on worker threads while the main thread keeps reading.

Klaviyo's rate limits, not our loop, should set the pace: a 5 MB bulk job takes a second or more
to upload and be accepted, and one-at-a-time submission would reach a fraction of the 150 jobs a
minute Klaviyo allows. The client-side limiter (client.py) keeps the concurrent workers within the
published rates. A failure on a worker is raised on the main thread at the next check.

Handing over a batch never blocks: the pool queues it until a worker is free. The writer keeps
that queue short (`backlogged`) by waiting in its own loop, one completion at a time (`wait`),
so that it can echo the states each completion frees instead of sitting inside a sink until
every request in flight is done. Every completion sets `wakeup`, the one event the main thread
sleeps on (input arriving and SIGTERM set it too).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, Optional

from destination_klaviyo.errors import StopRequested
from destination_klaviyo.stopping import STOP_WAIT_SECONDS, StopSignal

# Waits wake up on a completion; this only bounds how late a lost wake-up is noticed.
WAIT_SLICE_SECONDS = 0.5
# Request bodies in flight, at most (bytes): a body is held two or three times over while it is
# sent (the batch, the joined body, the socket's copy), so memory follows bytes in flight, not
# requests. 20 MB lets 8 small requests (consent: about 150 KB each) run at once, but only 4 to 5
# of the 5 MB profile jobs, whose 150-a-minute ceiling 4 already hold.
MAX_BODY_BYTES_IN_FLIGHT = 20_000_000


class Dispatcher:
    """Runs deliveries on up to `max_in_flight` worker threads, wakes the main thread as each one
    finishes, and hands their failures back."""

    def __init__(
        self,
        max_in_flight: int,
        wakeup: Optional[threading.Event] = None,
        max_bytes_in_flight: int = MAX_BODY_BYTES_IN_FLIGHT,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_bytes_in_flight = max_bytes_in_flight
        self.bytes_in_flight = 0  # bodies of jobs not finished (what submit was told)
        self.pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="klaviyo-request")
        self.futures: deque[Future[None]] = deque()
        self.wakeup = wakeup if wakeup is not None else threading.Event()
        self.stop = StopSignal(self.wakeup)  # SIGTERM ends every wait (stopping.py)
        # Bumped by worker threads as jobs finish: lets the main thread skip re-checking states
        # and errors while nothing has changed (reading it needs no lock; a lost increment would
        # hold states back, so bumping it takes one).
        self.finished_count = 0
        # Set (never cleared) once a job failed: long-running jobs look at it to stop early, since the
        # sync will end failed anyway (the failure itself is raised on the main thread).
        self.failure_seen = False
        self.submitted_count = 0
        self._count_lock = threading.Lock()

    def submit(self, job: Callable[[], None], body_bytes: int = 0) -> Future[None]:
        """Queue `job` for a worker and return at once; `backlogged` tells whether it waits for one.
        `body_bytes`: the size of what it sends, counted in flight until it finishes."""
        self.submitted_count += 1
        with self._count_lock:
            self.bytes_in_flight += body_bytes
        future = self.pool.submit(job)
        future.add_done_callback(lambda done: self._count_completion(done, body_bytes))
        self.futures.append(future)
        return future

    def backlogged(self) -> bool:
        """Whether a submitted job still waits for a free worker (the caller should wait before adding more).

        Counted from jobs not finished, not from jobs a worker picked up: a completion bumps
        `finished_count` before it wakes the loop, while the freed worker picks up the queued job
        a moment later. Asked in between, "picked up" would still say backlogged, and the loop would
        sleep through a whole further completion with no batch ready behind the running ones
        (measured: 63% of the subscribe ceiling instead of 97%)."""
        unfinished = self.submitted_count - self.finished_count
        return unfinished > self.max_in_flight or (unfinished > 1 and self.bytes_in_flight > self.max_bytes_in_flight)

    def running(self) -> list[Future[None]]:
        """The jobs not finished yet (started or queued)."""
        return [f for f in self.futures if not f.done()]

    def _count_completion(self, future: Future[None], body_bytes: int = 0) -> None:
        if future.cancelled() or future.exception() is not None:
            self.failure_seen = True
        with self._count_lock:
            self.bytes_in_flight -= body_bytes
            self.finished_count += 1
        self.wakeup.set()

    def wait(self, seen: int, timeout: float) -> None:
        """Return once a job finished after `finished_count` was `seen`, or `wakeup` was set, or after `timeout`.

        Read `seen` before checking what you wait for: a job that finishes in between is then noticed.
        """
        self.wakeup.clear()
        if self.finished_count != seen:
            return
        self.wakeup.wait(timeout)

    def completions(self, busy: Callable[[], bool], *, stoppable: bool = True) -> Iterator[None]:
        """While `busy()`, wait for the next completion (or a wake-up) and yield, so that the caller
        acts on each one (the writer echoes the states it freed) instead of waiting for them all.

        On SIGTERM a `stoppable` wait raises StopRequested; any other goes on for at most
        STOP_WAIT_SECONDS after the signal."""
        while True:
            seen = self.finished_count  # read before `busy()`: a job finishing in between is noticed
            if not busy():
                return
            timeout = WAIT_SLICE_SECONDS
            if self.stop.requested:
                if stoppable:
                    raise StopRequested()
                timeout = min(timeout, self.stop.requested_at + STOP_WAIT_SECONDS - time.monotonic())
                if timeout <= 0:
                    return
            self.wait(seen, timeout)
            yield

    def in_flight(self) -> bool:
        return bool(self.running())

    def raise_errors(self) -> None:
        """Forget finished jobs; re-raise the first failure among them."""
        for future in [f for f in self.futures if f.done()]:
            error = future.exception()
            if error is not None:
                raise error
            self.futures.remove(future)

    def drain(self) -> None:
        """Wait for every job; raise the first failure (the writer waits in its own loop instead)."""
        for future in list(self.futures):
            future.result()
        self.raise_errors()

    def close(self, wait: bool = True) -> None:
        """Shut the workers down; without `wait`, leave requests still retrying to the process's exit."""
        self.pool.shutdown(wait=wait, cancel_futures=True)

    def in_flight_count(self) -> int:
        """Jobs not finished yet, for the progress thread: it copies the queue (one C call, which the
        main thread's appends and removes cannot interleave with) instead of iterating it."""
        return sum(1 for future in tuple(self.futures) if not future.done())
