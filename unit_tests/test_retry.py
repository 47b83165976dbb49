"""The retry policy: time since a request's first failure is the rule, not a count of attempts."""

import pytest
from urllib3.exceptions import MaxRetryError

from destination_klaviyo import client as client_module
from destination_klaviyo.client import RETRY_STATUSES, KlaviyoClient, KlaviyoRetry


class Clock:
    def __init__(self):
        self.now = 1_000.0
        self.slept = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class Response:
    def __init__(self, status, headers=None):
        self.status = status
        self.headers = headers or {}

    def get_redirect_location(self):
        return False


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(client_module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(client_module.time, "sleep", fake.sleep)
    return fake


def policy(**kwargs):
    return KlaviyoRetry(
        total=kwargs.pop("retries", None),
        backoff_factor=1.0,
        backoff_max=60,
        backoff_jitter=0.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
        **kwargs,
    )


def test_retry_after_one_is_waited_out_for_the_whole_budget_not_nine_attempts(clock):
    retry, attempts = policy(budget_seconds=60), 1
    throttled = Response(429, {"Retry-After": "1"})
    with pytest.raises(MaxRetryError):
        while True:
            retry = retry.increment("POST", "/api/profile-bulk-import-jobs", response=throttled)
            retry.sleep(throttled)
            attempts += 1
    assert attempts == 61  # one a second for 60 seconds: the budget, not a count, ended it
    assert set(clock.slept) == {1}


def test_a_wait_never_runs_past_the_budget(clock):
    retry = policy(budget_seconds=10)
    slow_down = Response(429, {"Retry-After": "30"})
    retry = retry.increment("POST", "/x", response=slow_down)
    retry.sleep(slow_down)
    assert clock.slept == [10]  # cut short for one last attempt at the budget's end
    with pytest.raises(MaxRetryError):
        retry.increment("POST", "/x", response=slow_down)


def test_backoff_is_exponential_without_retry_after(clock):
    retry = policy(budget_seconds=600)
    for _ in range(5):
        retry = retry.increment("POST", "/x", response=Response(503))
        retry.sleep(Response(503))
    assert clock.slept == [2, 4, 8, 16]  # the first retry goes at once, as in urllib3


def test_ratelimit_reset_stands_in_for_a_missing_retry_after_and_a_malformed_one_is_ignored(clock):
    retry = policy()
    assert retry.get_retry_after(Response(429, {"RateLimit-Reset": "7"})) == 7
    assert retry.get_retry_after(Response(429, {"Retry-After": "soon", "RateLimit-Reset": "3"})) == 3
    assert retry.get_retry_after(Response(429, {"Retry-After": "soon"})) is None


def test_a_count_can_still_cap_retries(clock):
    retry = policy(retries=1, budget_seconds=600)
    retry = retry.increment("GET", "/api/accounts", response=Response(503))
    with pytest.raises(MaxRetryError):
        retry.increment("GET", "/api/accounts", response=Response(503))


def test_the_client_takes_its_budget_from_the_caller():
    client = KlaviyoClient("pk_test", "2026-04-15", origin="http://127.0.0.1:9", retry_budget_seconds=42)
    try:
        retry = client.session.get_adapter("http://127.0.0.1:9").max_retries
        assert isinstance(retry, KlaviyoRetry) and retry.budget_seconds == 42 and retry.total is None
    finally:
        client.close()
