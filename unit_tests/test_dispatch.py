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


def test_settle_waits_without_raising():
    dispatcher = Dispatcher(1)
    try:
        future = dispatcher.submit(lambda: 1 / 0)
        dispatcher.settle()
        assert future.done() and isinstance(future.exception(), ZeroDivisionError)
    finally:
        dispatcher.close()
