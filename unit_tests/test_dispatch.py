import threading

import pytest

from destination_klaviyo.dispatch import Dispatcher


def test_every_finished_job_is_counted_even_when_workers_finish_together():
    dispatcher = Dispatcher(8)
    start = threading.Barrier(8)
    try:
        for _ in range(400):
            dispatcher.submit(lambda: None)
        # Eight jobs that finish at the same instant, on eight threads.
        futures = [dispatcher.submit(lambda: start.wait(timeout=5)) for _ in range(8)]
        dispatcher.drain()
        assert all(f.done() for f in futures)
        assert dispatcher.finished_count == 408
    finally:
        dispatcher.close()


def test_at_most_max_in_flight_jobs_run_at_once():
    dispatcher = Dispatcher(2)
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def job():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(timeout=5)
        with lock:
            running[0] -= 1

    try:
        threading.Timer(0.2, release.set).start()
        for _ in range(6):
            dispatcher.submit(job)
        dispatcher.drain()
        assert peak[0] == 2
    finally:
        dispatcher.close()


def test_a_worker_failure_is_raised_on_the_main_thread():
    dispatcher = Dispatcher(2)

    def boom():
        raise ValueError("worker failed")

    try:
        dispatcher.submit(boom)
        with pytest.raises(ValueError):
            dispatcher.drain()
    finally:
        dispatcher.close()


def test_submitting_never_waits_and_the_backlog_says_when_to():
    dispatcher = Dispatcher(1)
    release = threading.Event()
    try:
        first = dispatcher.submit(lambda: release.wait(timeout=5))
        second = dispatcher.submit(lambda: None)  # returns at once, queued behind the first
        assert dispatcher.backlogged() and not second.done()
        seen = dispatcher.finished_count
        release.set()
        while dispatcher.finished_count < seen + 2:
            dispatcher.wait(dispatcher.finished_count, timeout=5)
        assert first.done() and second.done() and not dispatcher.backlogged()
    finally:
        dispatcher.close()


def test_the_backlog_clears_as_a_completion_is_counted_not_when_a_worker_picks_the_next_job():
    """A done callback runs on the worker before it takes the queued job: that is the moment the
    writer is woken, and it must then see room for its next batch (else it sleeps through a whole
    further completion with nothing queued: 63% of the subscribe ceiling, measured)."""
    dispatcher = Dispatcher(1)
    release = threading.Event()
    seen_at_completion = []
    try:
        first = dispatcher.submit(lambda: release.wait(timeout=5))
        dispatcher.submit(lambda: None)
        assert dispatcher.backlogged()
        first.add_done_callback(lambda f: seen_at_completion.append(dispatcher.backlogged()))
        release.set()
        dispatcher.drain()
        assert seen_at_completion == [False]
    finally:
        dispatcher.close()


def test_big_bodies_in_flight_hold_the_loop_back_before_the_request_count_does():
    """Memory follows body bytes in flight: two 5 MB jobs over a 6 MB budget backlog the loop with
    slots to spare, and a single job of any size never does (it could never be sent otherwise)."""
    dispatcher = Dispatcher(8, max_bytes_in_flight=6_000_000)
    release = threading.Event()
    try:
        dispatcher.submit(lambda: release.wait(timeout=5), body_bytes=5_000_000)
        assert not dispatcher.backlogged()  # one job, however big
        dispatcher.submit(lambda: release.wait(timeout=5), body_bytes=5_000_000)
        assert dispatcher.backlogged() and dispatcher.bytes_in_flight == 10_000_000
        release.set()
        dispatcher.drain()
        assert not dispatcher.backlogged() and dispatcher.bytes_in_flight == 0
    finally:
        dispatcher.close()


def test_a_completion_sets_the_shared_wakeup_event():
    wakeup = threading.Event()
    dispatcher = Dispatcher(1, wakeup)
    try:
        dispatcher.submit(lambda: None)
        assert wakeup.wait(timeout=30)  # set by the completion (False here would mean no wake-up at all)
        assert dispatcher.finished_count == 1
    finally:
        dispatcher.close()
