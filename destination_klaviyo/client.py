"""The one HTTP client the connector uses to talk to Klaviyo.

The API origin is fixed in code. Only the environment variable KLAVIYO_API_ORIGIN (meant for tests
and the bundled emulator) can point it elsewhere; the user's config never can, so a config cannot
send the private key to another host.

Transient failures (429, 5xx, timeouts, dropped connections) are retried by urllib3's `Retry`
(exponential backoff with jitter, honouring `Retry-After` and Klaviyo's `RateLimit-Reset`) for as
long as the request's retry budget lasts: time, not a count of attempts, is the rule, because what
a sync must ride out is a period (another app spending the account's rate limit for a minute, a
deploy at Klaviyo), and a count turns a `Retry-After: 1` into a give-up after nine seconds. Before
each request a client-side limiter holds the call to the endpoint's published rates
(endpoints.py), so that 429s stay rare.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence
from urllib.parse import urlsplit

import orjson
import requests
from pyrate_limiter import BucketFactory, Duration, InMemoryBucket, Limiter, Rate, RateItem, TimeClock
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from destination_klaviyo import __version__
from destination_klaviyo.endpoints import ENDPOINTS, endpoint_for

DEFAULT_API_ORIGIN = "https://a.klaviyo.com"
API_ORIGIN_ENV = "KLAVIYO_API_ORIGIN"
JSON_API = "application/vnd.api+json"
RETRY_STATUSES = (429, 500, 502, 503, 504)
# A single Retry-After longer than this is not waited out inside one request (the daily list cap).
MAX_RETRY_AFTER_SECONDS = 300
# Retries of one request stop once this long has passed since its first failure (`retry_budget_seconds`).
DEFAULT_RETRY_BUDGET_SECONDS = 600.0
# Profile reads: `page[size]` is at most 100 (spec). An `any()` filter list: the spec gives no
# maximum for profiles, but says "Max of 100" for the any() lists it does bound; 100 is safe.
MAX_PAGE_SIZE = 100
MAX_FILTER_VALUES = 100
# The identifiers a profile read asks for (sparse fieldset): what matching people needs, no more.
IDENTIFIER_FIELDS = "email,phone_number,external_id"


class KlaviyoRetry(Retry):
    """urllib3's Retry bounded by time since the request's first failure, not by a count of attempts,
    and reading Klaviyo's RateLimit-Reset when there is no Retry-After.

    A wait (a backoff or what the server asked for) never runs past the budget: it is cut short at
    the budget's end for one last attempt, after which the request gives up.
    """

    def __init__(
        self,
        *args: Any,
        first_failure: Optional[float] = None,
        budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.first_failure = first_failure
        self.budget_seconds = budget_seconds

    def new(self, **kwargs: Any) -> "KlaviyoRetry":
        kwargs.setdefault("first_failure", self.first_failure or time.monotonic())
        kwargs.setdefault("budget_seconds", self.budget_seconds)
        return super().new(**kwargs)  # type: ignore[return-value]

    def remaining_seconds(self) -> float:
        if self.first_failure is None:
            return self.budget_seconds
        return self.first_failure + self.budget_seconds - time.monotonic()

    def is_exhausted(self) -> bool:
        return self.remaining_seconds() <= 0 or super().is_exhausted()

    def get_retry_after(self, response: Any) -> Optional[float]:
        try:
            retry_after = super().get_retry_after(response)
        except InvalidHeader:  # a malformed Retry-After is ignored, not a reason to fail the request
            retry_after = None
        if retry_after is None:
            reset = response.headers.get("RateLimit-Reset")
            if reset is not None:
                try:
                    retry_after = min(max(0.0, float(reset)), float(self.retry_after_max))
                except ValueError:
                    retry_after = None
        return retry_after

    def sleep(self, response: Any = None) -> None:
        wait = self.get_retry_after(response) if self.respect_retry_after_header and response is not None else None
        if not wait:
            wait = self.get_backoff_time()
        wait = min(wait, self.remaining_seconds())
        if wait > 0:
            time.sleep(wait)


def api_origin() -> str:
    origin = os.environ.get(API_ORIGIN_ENV, "").strip() or DEFAULT_API_ORIGIN
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"{API_ORIGIN_ENV} must be an origin like https://a.klaviyo.com, got {origin!r}")
    return origin.rstrip("/")


@dataclass(frozen=True)
class ApiErrorItem:
    id: Optional[str]
    status: Optional[str]
    code: Optional[str]
    title: Optional[str]
    detail: Optional[str]
    pointer: Optional[str]

    def describe(self) -> str:
        text = self.detail or self.title or self.code or "error"
        return f"{text} (at {self.pointer})" if self.pointer else text


class KlaviyoApiError(Exception):
    """A non-success HTTP answer from Klaviyo, with its JSON:API `errors` parsed."""

    def __init__(
        self, method: str, path: str, status: int, errors: list[ApiErrorItem], retry_after: Optional[str] = None
    ):
        self.method = method
        self.path = path
        self.status = status
        self.errors = errors
        self.retry_after = retry_after
        summary = "; ".join(e.describe() for e in errors) or "no error details"
        super().__init__(f"Klaviyo answered {status} to {method} {path}: {summary}")


class KlaviyoUnreachable(Exception):
    """The origin could not be reached at all (DNS, refused connection, TLS, timeout)."""


def _parse_errors(response: requests.Response) -> list[ApiErrorItem]:
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return []
    items = payload.get("errors") if isinstance(payload, dict) else None
    parsed = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        source = item.get("source") if isinstance(item.get("source"), dict) else {}
        parsed.append(
            ApiErrorItem(
                id=item.get("id"),
                status=str(item.get("status")) if item.get("status") is not None else None,
                code=item.get("code"),
                title=item.get("title"),
                detail=item.get("detail"),
                pointer=source.get("pointer") or source.get("parameter"),
            )
        )
    return parsed


# Slightly under the published rates: the limiter counts when a worker starts a request, Klaviyo
# counts fixed windows when it arrives, and concurrent requests can drift across a window edge. 97%
# of the steady rate (and one under the burst) keeps that drift from ever producing a 429.
PACED_RATES: dict[str, list[Rate]] = {
    ep.name: [
        Rate(max(1, ep.burst_per_second - 1), Duration.SECOND),
        Rate(max(1, int(ep.steady_per_minute * 0.97)), Duration.MINUTE),
    ]
    for ep in ENDPOINTS.values()
}


class PerEndpointBuckets(BucketFactory):
    """pyrate-limiter buckets keyed by endpoint name, each with that endpoint's burst and steady rates."""

    def __init__(self) -> None:
        self.clock = TimeClock()
        self.buckets: dict[str, InMemoryBucket] = {}

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, self.clock.now(), weight=weight)

    def get(self, item: RateItem) -> InMemoryBucket:
        if item.name not in self.buckets:
            self.buckets[item.name] = self.create(self.clock, InMemoryBucket, PACED_RATES[item.name])
        return self.buckets[item.name]


def _limiter() -> Limiter:
    return Limiter(PerEndpointBuckets(), raise_when_fail=False, max_delay=Duration.MINUTE * 2)


class KlaviyoClient:
    """The one way to Klaviyo: auth and revision headers, pacing, retries, typed errors, one method per operation."""

    def __init__(
        self,
        private_api_key: str,
        api_revision: str,
        *,
        origin: Optional[str] = None,
        retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS,
        retries: Optional[int] = None,
        backoff_factor: float = 1.0,
        timeout: tuple[float, float] = (10.0, 120.0),
        rate_limit: bool = True,
    ) -> None:
        """`retry_budget_seconds` bounds the retries of each request; `retries` can also cap their
        number (`check`, which must answer quickly, uses one)."""
        self.origin = origin or api_origin()
        self.timeout = timeout
        self.limiter = _limiter() if rate_limit else None
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Klaviyo-API-Key {private_api_key}",
                "revision": api_revision,
                "Accept": JSON_API,
                "Content-Type": JSON_API,
                "User-Agent": f"airbyte-destination-klaviyo/{__version__}",
            }
        )
        retry = KlaviyoRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=retries,
            backoff_factor=backoff_factor,
            backoff_max=60,
            backoff_jitter=1.0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # imports, list edits and events (unique_id) are idempotent
            respect_retry_after_header=True,
            retry_after_max=MAX_RETRY_AFTER_SECONDS,
            raise_on_status=False,
            budget_seconds=retry_budget_seconds,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Creating a list is not idempotent: a blind retry after a timeout could create a second
        # list. Those requests go out exactly once; targets.py looks up before trying again.
        self.once_session = requests.Session()
        self.once_session.headers.update(self.session.headers)
        once = HTTPAdapter(max_retries=Retry(total=0, connect=0, read=0, status=0, other=0, raise_on_status=False))
        self.once_session.mount("http://", once)
        self.once_session.mount("https://", once)

    def close(self) -> None:
        self.session.close()
        self.once_session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Optional[bytes] = None,
        params: Optional[dict[str, Any]] = None,
        retry: bool = True,
    ) -> requests.Response:
        """Send one request; return the response when it is a 2xx, else raise a typed error."""
        url = path if path.startswith("http") else f"{self.origin}{path}"
        session = self.session if retry else self.once_session
        endpoint = endpoint_for(method, urlsplit(url).path)
        if self.limiter is not None and endpoint is not None:
            self.limiter.try_acquire(endpoint.name)
        try:
            response = session.request(method, url, data=body, params=params, timeout=self.timeout)
        except requests.exceptions.RetryError as exc:
            raise KlaviyoUnreachable(
                f"{method} {urlsplit(url).path}: gave up after retries ({type(exc).__name__})"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise KlaviyoUnreachable(
                f"could not reach {self.origin} for {method} {path}: {type(exc).__name__}"
            ) from None
        if response.status_code >= 400:
            raise KlaviyoApiError(
                method, path, response.status_code, _parse_errors(response), response.headers.get("Retry-After")
            )
        return response

    def get_accounts(self) -> dict[str, Any]:
        return orjson.loads(self.request("GET", "/api/accounts").content)

    def create_bulk_import_job(self, body: bytes) -> str:
        """POST a pre-serialized `profile-bulk-import-job`; Klaviyo's 202 means the job was accepted."""
        response = self.request("POST", "/api/profile-bulk-import-jobs", body=body)
        payload = orjson.loads(response.content) if response.content else {}
        return str(payload.get("data", {}).get("id", ""))

    def create_event_bulk_job(self, body: bytes) -> None:
        """POST a pre-serialized `event-bulk-create-job` (bulk_create_events); 202 with no body = accepted.

        Retried like every write: each event carries a `unique_id`, and Klaviyo records an event
        whose unique_id it already has for that profile and metric only once.
        """
        self.request("POST", "/api/event-bulk-create-jobs", body=body)

    def _paginate(self, path: str, params: Optional[dict[str, Any]] = None) -> Iterator[dict[str, Any]]:
        """Every item of `data` across all pages, following `links.next` on our own origin."""
        url: Optional[str] = path
        while url:
            payload = orjson.loads(self.request("GET", url, params=params).content)
            yield from payload.get("data", [])
            url, params = _next_page(payload), None  # `next` carries the query

    # -- bulk import jobs -------------------------------------------------------------------------
    def get_bulk_import_job(self, job_id: str) -> dict[str, Any]:
        return orjson.loads(self.request("GET", f"/api/profile-bulk-import-jobs/{job_id}").content)["data"]

    def get_bulk_import_job_errors(self, job_id: str) -> list[dict[str, Any]]:
        """The job's import errors, every page."""
        return list(self._paginate(f"/api/profile-bulk-import-jobs/{job_id}/import-errors"))

    # -- lists ------------------------------------------------------------------------------------
    def find_lists_named(self, name: str) -> list[dict[str, Any]]:
        """Every list whose name is exactly `name` (Klaviyo filters; we re-check), across all pages."""
        params = {"filter": f"equals(name,{quote_filter_string(name)})", "fields[list]": "name,created"}
        return [
            item for item in self._paginate("/api/lists", params) if (item.get("attributes") or {}).get("name") == name
        ]

    def lists_page(self, url: Optional[str]) -> tuple[list[dict[str, Any]], Optional[str]]:
        """One page of every list in the account, oldest first (10 a page, the API's most), and the
        next page's URL; `url` None asks for the first."""
        if url is None:
            response = self.request("GET", "/api/lists", params={"fields[list]": "name,created", "sort": "created"})
        else:
            response = self.request("GET", url)
        payload = orjson.loads(response.content)
        return payload.get("data", []), _next_page(payload)

    def create_list(self, name: str) -> dict[str, Any]:
        """POST /api/lists once, without automatic retries (see `once_session`)."""
        body = orjson.dumps({"data": {"type": "list", "attributes": {"name": name}}})
        return orjson.loads(self.request("POST", "/api/lists", body=body, retry=False).content)["data"]

    def list_member_ids(self, list_id: str) -> list[str]:
        """All profile ids in a list, following every page (100 per page, the API's maximum)."""
        path = f"/api/lists/{list_id}/relationships/profiles"
        return [item["id"] for item in self._paginate(path, {"page[size]": 100})]

    def edit_list_members(self, list_id: str, body: bytes, *, remove: bool) -> None:
        """POST (add) or DELETE (remove) up to 1,000 `{"type": "profile", "id": ...}`; 204 = done."""
        self.request("DELETE" if remove else "POST", f"/api/lists/{list_id}/relationships/profiles", body=body)

    def get_list(self, list_id: str) -> dict[str, Any]:
        """One list's name and `opt_in_process` (double_opt_in or single_opt_in)."""
        params = {"fields[list]": "name,opt_in_process"}
        return orjson.loads(self.request("GET", f"/api/lists/{list_id}", params=params).content)["data"]

    def get_profiles_for_list(self, list_id: str, filter: Optional[str] = None) -> Iterator[dict[str, Any]]:
        """A list's members (or those matching `filter`: `email` and `phone_number` are the only
        identifiers this endpoint filters on), with their identifiers, every page."""
        params = {"page[size]": MAX_PAGE_SIZE, "fields[profile]": IDENTIFIER_FIELDS}
        if filter is not None:
            params["filter"] = filter
        return self._paginate(f"/api/lists/{list_id}/profiles", params)

    def get_lists_page(self) -> list[dict[str, Any]]:
        """One list at most (a read that changes nothing: `check` uses it to test lists:read)."""
        params = {"page[size]": 1, "fields[list]": "name"}
        return orjson.loads(self.request("GET", "/api/lists", params=params).content).get("data", [])

    # -- profiles ---------------------------------------------------------------------------------
    def get_profiles(self, filter: str, *, with_consent: bool = False) -> Iterator[dict[str, Any]]:
        """The profiles matching a filter such as `any(email,[...])`, with their identifiers (and, with
        `with_consent`, their `subscriptions`: per channel, and the email list suppressions), every page."""
        params = {"filter": filter, "page[size]": MAX_PAGE_SIZE, "fields[profile]": IDENTIFIER_FIELDS}
        if with_consent:
            params["fields[profile]"] += ",subscriptions"
            params["additional-fields[profile]"] = "subscriptions"
        return self._paginate("/api/profiles", params)

    def get_profiles_page(self) -> list[dict[str, Any]]:
        """One profile at most (a read that changes nothing: `check` uses it to test profiles:read)."""
        params = {"page[size]": 1, "fields[profile]": "email"}
        return orjson.loads(self.request("GET", "/api/profiles", params=params).content).get("data", [])

    def request_profile_deletion(self, body: bytes) -> None:
        """POST one `data-privacy-deletion-job` (exactly one of id, email, phone_number); 202 = accepted.

        Safe to retry: deleting what is already deleted changes nothing."""
        self.request("POST", "/api/data-privacy-deletion-jobs", body=body)

    # -- consent ----------------------------------------------------------------------------------
    def bulk_subscribe_profiles(self, body: bytes) -> None:
        """POST a pre-serialized `profile-subscription-bulk-create-job`; 202 (no body) = accepted.

        Retried like the imports: subscribing again sets the same consent (on a double opt-in list
        Klaviyo may send the confirmation message again).
        """
        self.request("POST", "/api/profile-subscription-bulk-create-jobs", body=body)

    def bulk_unsubscribe_profiles(self, body: bytes) -> None:
        """POST a pre-serialized `profile-subscription-bulk-delete-job` exactly once; 202 = accepted.

        Not idempotent: an unsubscribe that took effect removed its profiles from the list, and
        Klaviyo unsubscribes a profile that is not on the list from everything. A blind retry after
        a lost answer would do exactly that, so the subscriptions sink re-checks membership first.
        """
        self.request("POST", "/api/profile-subscription-bulk-delete-jobs", body=body, retry=False)

    def bulk_suppress_profiles(self, body: bytes) -> str:
        """POST a pre-serialized `profile-suppression-bulk-create-job`; returns the job id (202)."""
        response = self.request("POST", "/api/profile-suppression-bulk-create-jobs", body=body)
        return str((orjson.loads(response.content) if response.content else {}).get("data", {}).get("id", ""))

    def bulk_unsuppress_profiles(self, body: bytes) -> str:
        """POST a pre-serialized `profile-suppression-bulk-delete-job`; returns the job id (202)."""
        response = self.request("POST", "/api/profile-suppression-bulk-delete-jobs", body=body)
        return str((orjson.loads(response.content) if response.content else {}).get("data", {}).get("id", ""))


def _next_page(payload: dict[str, Any]) -> Optional[str]:
    """Path and query of `links.next`: paging stays on our origin, whatever host the link names."""
    link = (payload.get("links") or {}).get("next")
    if not link:
        return None
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def quote_filter_string(value: str) -> str:
    """A string literal for Klaviyo's filter syntax: double quotes, with backslash and quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def any_filter(field: str, values: Sequence[str]) -> str:
    """`any(field,["a","b"])`, each value quoted; at most MAX_FILTER_VALUES values."""
    if not 0 < len(values) <= MAX_FILTER_VALUES:
        raise ValueError(f"an any() filter takes 1 to {MAX_FILTER_VALUES} values, got {len(values)}")
    return f"any({field},[{','.join(quote_filter_string(v) for v in values)}])"
