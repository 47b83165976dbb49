"""Requests in flight: up to N deliveries run on worker threads while the main thread keeps reading.

Klaviyo's rate limits, not our loop, should set the pace: a 5 MB bulk job takes a second or more
to upload and be accepted, and one-at-a-time submission would reach a fraction of the 150 jobs a
minute Klaviyo allows. The client-side limiter (client.py) keeps the concurrent workers within the
published rates. A failure on a worker is raised on the main thread at the next check.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable


class Dispatcher:
    """Runs deliveries on up to `max_in_flight` worker threads and hands their failures back."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="klaviyo-request")
        self.futures: deque[Future[None]] = deque()
        # Bumped by worker threads as jobs finish: lets the main thread skip re-checking states
        # and errors while nothing has changed (reading it needs no lock; a lost increment would
        # hold states back, so bumping it takes one).
        self.finished_count = 0
        self._count_lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> Future[None]:
        """Run `job` on a worker, first waiting for a free slot (which bounds memory, too)."""
        self.raise_errors()
        while len(running := self.running()) >= self.max_in_flight:
            wait(running, return_when=FIRST_COMPLETED)
            self.raise_errors()
        future = self.pool.submit(job)
        future.add_done_callback(self._count_completion)
        self.futures.append(future)
        return future

    def running(self) -> list[Future[None]]:
        """The jobs not finished yet."""
        return [f for f in self.futures if not f.done()]

    def _count_completion(self, _: Future[None]) -> None:
        with self._count_lock:
            self.finished_count += 1

    def raise_errors(self) -> None:
        """Forget finished jobs; re-raise the first failure among them."""
        for future in [f for f in self.futures if f.done()]:
            error = future.exception()
            if error is not None:
                raise error
            self.futures.remove(future)

    def drain(self) -> None:
        """Wait for every job; raise the first failure."""
        for future in list(self.futures):
            future.result()
        self.raise_errors()

    def settle(self) -> None:
        """Wait for every job, without raising: used on the way out of a failed sync."""
        wait(list(self.futures))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def in_flight_count(self) -> int:
        """Jobs not finished yet, for the progress thread: it copies the queue (one C call, which the
        main thread's appends and removes cannot interleave with) instead of iterating it."""
        return sum(1 for future in tuple(self.futures) if not future.done())
