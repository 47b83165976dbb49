"""HTTP layer: a ThreadingHTTPServer that speaks the Klaviyo endpoints we need.

Every ``/api/*`` request goes through the same pipeline so behaviour is
uniform: read body (5 MB cap -> 413) -> authenticate (401) -> check the
``revision`` header (400) -> injected fault, if any -> route -> respond with a
JSON:API document -> append to the request log.  ``/__emulator__/*`` is the
unauthenticated test-support surface.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import traceback
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Optional, TextIO
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from . import filters
from .errors import ApiError
from .handlers_bulk import BulkWritesMixin
from .handlers_profiles import ProfileReadsMixin
from .ratelimit import KLAVIYO_RATE_LIMITS, RateLimiter
from .store import (
    DEFAULT_LIST_CREATE_DAILY_LIMIT,
    MAX_BULK_BODY_BYTES,
    EmulatorStore,
    JobRecord,
    RequestRecord,
    iso,
)
from .validation import (
    parse_json_body,
    validate_bulk_import,
    validate_create_list,
    validate_profile_relationships,
)

DEFAULT_API_KEY = "pk_emulator_demo_key"
DEFAULT_REVISION = "2026-07-15"
JSONAPI = "application/vnd.api+json"
_REVISION_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(\.[A-Za-z0-9_-]+)?$")
_DRAIN_LIMIT = 64 * 1024 * 1024  # above this we stop reading and close the socket
_ACCOUNT_ID = "EmUl8r"
# POST bodies kept in the request log (parsed before faults and validation, so rejected and
# faulted requests are visible too): the bulk and consent endpoints.
_LOGGED_BODY_PATHS = frozenset(
    {
        "/api/profile-bulk-import-jobs",
        "/api/event-bulk-create-jobs",
        "/api/profile-subscription-bulk-create-jobs",
        "/api/profile-subscription-bulk-delete-jobs",
        "/api/profile-suppression-bulk-create-jobs",
        "/api/profile-suppression-bulk-delete-jobs",
        "/api/data-privacy-deletion-jobs",
    }
)

Response = tuple[int, Optional[dict[str, Any]], dict[str, str]]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"emu:offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, num = raw.rpartition(":")
        if prefix != "emu:offset" or not num.isdigit():
            raise ValueError
        return int(num)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Invalid page cursor.", parameter="page[cursor]") from None


class EmulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the store and the accepted-key digests."""

    daemon_threads = True
    allow_reuse_address = True
    # Concurrent clients (benchmarks with many connections) must not overflow the listen backlog.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        store: EmulatorStore,
        api_keys: Iterable[str],
        log_stream: Optional[TextIO] = None,
    ) -> None:
        self.store = store
        # Only digests are kept, so the keys cannot leak through state dumps.
        self.key_digests = [_digest(k) for k in api_keys]
        self.log_stream = log_stream
        super().__init__(address, KlaviyoHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client hangs up (e.g. timeout tests with delay faults)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class KlaviyoHandler(ProfileReadsMixin, BulkWritesMixin, BaseHTTPRequestHandler):
    """Request handler; one instance per request, many threads at once."""

    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "KlaviyoEmulator/1.0"
    # Headers and body go out in separate writes; without TCP_NODELAY every
    # keep-alive request would stall ~40 ms on Nagle + delayed ACK.
    disable_nagle_algorithm = True

    # -------------------------------------------------------------- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default access log (we write our own, header-free)."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    @property
    def store(self) -> EmulatorStore:
        return self.server.store

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        if not host:
            h, p = self.server.server_address[:2]
            host = f"{h}:{p}"
        return f"http://{host}"

    def _read_body(self) -> bytes:
        """Read the request body; over 5 MB -> 413 (after draining it)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > _DRAIN_LIMIT:
                    self.close_connection = True
                    raise self._too_large(total)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            body = b"".join(chunks)
            if len(body) > MAX_BULK_BODY_BYTES:
                raise self._too_large(len(body))
            return body
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Invalid Content-Length header.") from None
        if length > MAX_BULK_BODY_BYTES:
            if length <= _DRAIN_LIMIT:
                remaining = length
                while remaining > 0:
                    got = self.rfile.read(min(remaining, 1 << 16))
                    if not got:
                        break
                    remaining -= len(got)
            else:
                self.close_connection = True
            raise self._too_large(length)
        return self.rfile.read(length) if length > 0 else b""

    @staticmethod
    def _too_large(size: int) -> ApiError:
        return ApiError(
            413,
            f"Request body is {size} bytes; the maximum allowed payload size is 5MB ({MAX_BULK_BODY_BYTES} bytes).",
            pointer="/data",
        )

    def _send(self, status: int, doc: Optional[Any], headers: dict[str, str], content_type: str = JSONAPI) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status == 204 or doc is None:
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = json.dumps(doc, separators=(",", ":"), default=str).encode("utf-8")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _log(self, method: str, path: str, status: int, size: int) -> None:
        stream = self.server.log_stream
        if stream is not None:
            try:
                stream.write(f"klaviyo-emulator {method} {path} -> {status} ({size} bytes)\n")
                stream.flush()
            except (OSError, ValueError):
                pass

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        if path == "/api" or path.startswith("/api/"):
            self.store.request_started()
            try:
                self._handle_api(method, path, split.query)
            finally:
                self.store.request_finished()
        elif path.startswith("/__emulator__"):
            self._handle_admin(method, path, split.query)
        else:
            try:
                self._read_body()
            except ApiError:
                pass
            self._send(404, ApiError(404, f"No route for {path}.").to_document(), {})

    # ------------------------------------------------------------------ /api
    def _authenticate(self) -> None:
        header = self.headers.get("Authorization") or ""
        scheme, _, key = header.partition(" ")
        key = key.strip()
        ok = scheme == "Klaviyo-API-Key" and bool(key)
        if ok:
            digest = _digest(key)
            ok = any(hmac.compare_digest(digest, d) for d in self.server.key_digests)
        if not ok:
            # Never echo the presented key back.
            raise ApiError(
                401,
                "Missing or invalid private key. Send 'Authorization: Klaviyo-API-Key <private key>'.",
                code="not_authenticated",
            )

    def _check_revision(self) -> None:
        value = (self.headers.get("revision") or "").strip()
        m = _REVISION_RE.match(value)
        valid = False
        if m:
            try:
                date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                valid = True
            except ValueError:
                valid = False
        if not valid:
            raise ApiError(
                400,
                "A valid 'revision' header is required (format: YYYY-MM-DD[.suffix]).",
                parameter="revision",
            )

    def _handle_api(self, method: str, path: str, query: str) -> None:
        arrived = time.monotonic()
        body_size = 0
        json_body: Any = None
        self._parsed_body: Any = None
        self._items: Optional[int] = None
        limiter = self.store.rate_limiter
        rate_headers: dict[str, str] = {}
        # Deferred bulk imports (job_processing_seconds > 0) that are due take effect first.
        self.store.process_due_jobs()
        try:
            try:
                body = self._read_body()
            except ApiError as exc:
                if exc.status == 413:
                    try:
                        body_size = int(self.headers.get("Content-Length") or 0)
                    except ValueError:
                        body_size = 0
                raise
            body_size = len(body)
            self._authenticate()
            self._check_revision()
            if method == "POST" and path in _LOGGED_BODY_PATHS and body:
                # Parsed before faults/validation so even rejected or faulted
                # bulk requests are visible to tests in the request log.
                try:
                    self._parsed_body = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    pass
                if self.store.retain_bodies:
                    json_body = self._parsed_body
            if limiter is not None:
                # Opt-in (--rate-limits klaviyo): per-operation fixed windows, see ratelimit.py.
                decision = limiter.acquire(method, path, at=arrived, variant=self._rate_variant(query))
                if not decision.allowed:
                    raise ApiError(
                        429,
                        f"Request was throttled. Expected available in {decision.headers['Retry-After']} "
                        f"second(s) ({decision.window} limit of {decision.limit.operation if decision.limit else method}).",
                        code="throttled",
                        headers=decision.headers,
                    )
                rate_headers = decision.headers
            fault = self.store.take_fault(method, path)
            if fault is not None:
                if fault.delay_seconds:
                    time.sleep(fault.delay_seconds)
                if fault.apply:
                    # The request takes effect, but the client gets an error: a lost response.
                    self._route(method, path, query, body)
                if fault.drop:
                    # Hang up without a word, as a dropped connection or a proxy reset would.
                    self.store.log_request(RequestRecord(method, path, query, 0, body_size, time.time(), json_body))
                    self.close_connection = True
                    return
                if fault.status is not None:
                    headers = {}
                    if fault.retry_after is not None:
                        ra = fault.retry_after
                        headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
                    raise ApiError(
                        fault.status,
                        fault.detail or f"Injected fault: {fault.status} for {method} {path}.",
                        code=fault.code,
                        pointer=fault.pointer,
                        headers=headers,
                    )
            status, doc, headers = self._route(method, path, query, body)
        except ApiError as exc:
            status, doc, headers = exc.status, exc.to_document(), exc.headers
        except Exception:  # pragma: no cover - defensive
            traceback.print_exc(file=sys.stderr)
            status, doc, headers = 500, ApiError(500, "Internal emulator error.").to_document(), {}
        # Log before answering so a client that has its response can rely on
        # the request already being in the store.
        self.store.log_request(
            RequestRecord(
                method=method,
                path=path,
                query=query,
                status=status,
                body_size=body_size,
                timestamp=time.time(),
                json_body=json_body,
                items=self._items if status < 400 else None,
            )
        )
        self._log(method, path, status, body_size)
        if rate_headers and status != 429:
            headers = {**rate_headers, **headers}
        if limiter is not None and limiter.latency_seconds > 0:
            # Opt-in latency: the answer leaves no earlier than `latency` after the request arrived
            # (our own processing counts toward it). Only this request's thread sleeps.
            delay = arrived + limiter.latency_seconds - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._send(status, doc, headers)

    @staticmethod
    def _rate_variant(query: str) -> Optional[str]:
        """``predictive_analytics`` when the request asks for it (smaller limits on profile reads)."""
        for k, v in parse_qsl(query, keep_blank_values=True):
            if k == "additional-fields[profile]" and "predictive_analytics" in v.split(","):
                return "predictive_analytics"
        return None

    def _route(self, method: str, path: str, query: str, body: bytes) -> Response:
        params: dict[str, str] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            params.setdefault(k, v)
        parts = path.split("/")[2:]  # after "", "api"
        routes: list[tuple[list[str], dict[str, Callable[..., Response]]]] = [
            (["accounts"], {"GET": self._get_accounts}),
            (["profile-bulk-import-jobs"], {"GET": self._get_jobs, "POST": self._post_job}),
            (["profile-bulk-import-jobs", "*"], {"GET": self._get_job}),
            (["profile-bulk-import-jobs", "*", "import-errors"], {"GET": self._get_job_errors}),
            (["lists"], {"GET": self._get_lists, "POST": self._post_list}),
            (["lists", "*"], {"GET": self._get_list}),
            (["lists", "*", "profiles"], {"GET": self._get_list_member_profiles}),
            (["profiles"], {"GET": self._get_profiles}),
            (["event-bulk-create-jobs"], {"POST": self._post_event_bulk_create}),
            (["profile-subscription-bulk-create-jobs"], {"POST": self._post_subscribe}),
            (["profile-subscription-bulk-delete-jobs"], {"POST": self._post_unsubscribe}),
            (["profile-suppression-bulk-create-jobs"], {"GET": self._get_suppress_jobs, "POST": self._post_suppress}),
            (["profile-suppression-bulk-create-jobs", "*"], {"GET": self._get_suppress_job}),
            (
                ["profile-suppression-bulk-delete-jobs"],
                {"GET": self._get_unsuppress_jobs, "POST": self._post_unsuppress},
            ),
            (["profile-suppression-bulk-delete-jobs", "*"], {"GET": self._get_unsuppress_job}),
            (["data-privacy-deletion-jobs"], {"POST": self._post_deletion}),
            (
                ["lists", "*", "relationships", "profiles"],
                {
                    "GET": self._get_list_profiles,
                    "POST": self._post_list_profiles,
                    "DELETE": self._delete_list_profiles,
                },
            ),
        ]
        for pattern, methods in routes:
            if len(pattern) != len(parts):
                continue
            args = []
            for pat, part in zip(pattern, parts):
                if pat == "*":
                    args.append(part)
                elif pat != part:
                    break
            else:
                handler = methods.get(method)
                if handler is None:
                    raise ApiError(405, f'Method "{method}" not allowed.', headers={"Allow": ", ".join(methods)})
                return handler(*args, params=params, body=body, query=query)
        raise ApiError(404, f"The path {path} is not served by the Klaviyo emulator.")

    # ---------------------------------------------------------- pagination
    def _paginate(
        self, items: list[Any], params: dict[str, str], default: int, maximum: int, path: str, query: str
    ) -> tuple[list[Any], dict[str, Optional[str]]]:
        raw_size = params.get("page[size]")
        size = default
        if raw_size is not None:
            if not re.fullmatch(r"\d+", raw_size) or not 1 <= int(raw_size) <= maximum:
                raise ApiError(
                    400,
                    f"page[size] must be an integer between 1 and {maximum}.",
                    parameter="page[size]",
                )
            size = int(raw_size)
        offset = _decode_cursor(params["page[cursor]"]) if params.get("page[cursor]") else 0
        page = items[offset : offset + size]
        base = self._base_url()
        self_link = f"{base}{path}" + (f"?{query}" if query else "")

        def link(new_offset: int) -> str:
            pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "page[cursor]"]
            if new_offset:
                pairs.append(("page[cursor]", _encode_cursor(new_offset)))
            qs = urlencode(pairs, quote_via=quote)
            return f"{base}{path}" + (f"?{qs}" if qs else "")

        links: dict[str, Optional[str]] = {
            "self": self_link,
            "next": link(offset + size) if offset + size < len(items) else None,
            "prev": link(max(0, offset - size)) if offset > 0 else None,
        }
        return page, links

    # ------------------------------------------------------------- accounts
    def _get_accounts(self, *, params: dict[str, str], body: bytes, query: str) -> Response:
        base = self._base_url()
        account = {
            "type": "account",
            "id": _ACCOUNT_ID,
            "attributes": {
                "test_account": True,
                "contact_information": {
                    "default_sender_name": "Klaviyo Emulator",
                    "default_sender_email": "emulator@example.com",
                    "website_url": "https://example.com",
                    "organization_name": "Klaviyo Emulator",
                    "street_address": {
                        "address1": "125 Summer Street",
                        "address2": None,
                        "city": "Boston",
                        "region": "MA",
                        "country": "US",
                        "zip": "02110",
                    },
                },
                "industry": "Software / SaaS",
                "timezone": "UTC",
                "preferred_currency": "USD",
                "public_api_key": _ACCOUNT_ID,
                "locale": "en-US",
            },
            "links": {"self": f"{base}/api/accounts/{_ACCOUNT_ID}/"},
        }
        return 200, {"data": [account], "links": {"self": f"{base}/api/accounts/", "next": None, "prev": None}}, {}

    # ----------------------------------------------------------------- jobs
    def _job_resource(self, job: JobRecord, status: Optional[str] = None) -> dict[str, Any]:
        base = self._base_url()
        url = f"{base}/api/profile-bulk-import-jobs/{job.id}"
        status = status or job.status
        done = status == "complete"
        started = None
        if status != "queued":
            started = iso(job.started_at or job.created_at)
        return {
            "type": "profile-bulk-import-job",
            "id": job.id,
            "attributes": {
                "status": status,
                "created_at": iso(job.created_at),
                "total_count": job.total_count,
                "completed_count": job.total_count - job.failed_count if done else 0,
                "failed_count": job.failed_count if done else 0,
                "completed_at": iso(job.completed_at) if done and job.completed_at else None,
                "expires_at": iso(job.created_at + timedelta(days=7)),
                "started_at": started,
            },
            "relationships": {
                "lists": {
                    "data": [{"type": "list", "id": lid} for lid in job.list_ids],
                    "links": {"self": f"{url}/relationships/lists/", "related": f"{url}/lists/"},
                },
                "profiles": {
                    "links": {"self": f"{url}/relationships/profiles/", "related": f"{url}/profiles/"},
                },
                "import-errors": {"links": {"related": f"{url}/import-errors/"}},
            },
            "links": {"self": f"{url}/"},
        }

    def _post_job(self, *, params: dict[str, str], body: bytes, query: str) -> Response:
        doc = self._parsed_body if isinstance(self._parsed_body, dict) else parse_json_body(body)
        profiles, list_ids = validate_bulk_import(doc)
        job = self.store.bulk_import(profiles, list_ids, doc, len(body))
        self._items = len(profiles)
        resource = self._job_resource(job, status="queued")
        return 202, {"data": resource, "links": {"self": f"{self._base_url()}/api/profile-bulk-import-jobs/"}}, {}

    def _get_jobs(self, *, params: dict[str, str], body: bytes, query: str) -> Response:
        with self.store.lock:
            jobs = list(self.store.jobs.values())
        page, links = self._paginate(jobs, params, 20, 100, "/api/profile-bulk-import-jobs", query)
        return 200, {"data": [self._job_resource(j) for j in page], "links": links}, {}

    def _require_job(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        if job is None:
            raise ApiError(404, f"A profile bulk import job with id '{job_id}' does not exist.")
        return job

    def _get_job(self, job_id: str, *, params: dict[str, str], body: bytes, query: str) -> Response:
        job = self._require_job(job_id)
        return (
            200,
            {
                "data": self._job_resource(job),
                "links": {"self": f"{self._base_url()}/api/profile-bulk-import-jobs/{job_id}/"},
            },
            {},
        )

    def _get_job_errors(self, job_id: str, *, params: dict[str, str], body: bytes, query: str) -> Response:
        self._require_job(job_id)
        # Invalid profiles fail the whole request up front, so jobs have no per-row errors.
        _, links = self._paginate([], params, 20, 100, f"/api/profile-bulk-import-jobs/{job_id}/import-errors", query)
        return 200, {"data": [], "links": links}, {}

    # ---------------------------------------------------------------- lists
    def _list_resource(self, rec: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._base_url()}/api/lists/{rec['id']}"
        return {
            "type": "list",
            "id": rec["id"],
            "attributes": {
                "name": rec["name"],
                "created": iso(rec["created"]),
                "updated": iso(rec["updated"]),
                "opt_in_process": rec["opt_in_process"],
            },
            "relationships": {
                "profiles": {"links": {"self": f"{url}/relationships/profiles/", "related": f"{url}/profiles/"}},
                "tags": {"links": {"self": f"{url}/relationships/tags/", "related": f"{url}/tags/"}},
                "flow-triggers": {
                    "links": {"self": f"{url}/relationships/flow-triggers/", "related": f"{url}/flow-triggers/"}
                },
            },
            "links": {"self": f"{url}/"},
        }

    _LIST_SORTS = {"created", "-created", "id", "-id", "name", "-name", "updated", "-updated"}

    def _get_lists(self, *, params: dict[str, str], body: bytes, query: str) -> Response:
        predicate = filters.compile_filter(params.get("filter"), filters.LIST_FILTER_FIELDS)
        sort = params.get("sort")
        if sort is not None and sort not in self._LIST_SORTS:
            raise ApiError(400, f"'{sort}' is not a valid sort option.", parameter="sort")
        with self.store.lock:
            lists = list(self.store.lists.values())
        matched = [
            rec
            for rec in lists
            if predicate({"name": rec["name"], "id": rec["id"], "created": rec["created"], "updated": rec["updated"]})
        ]
        if sort:
            key = sort.lstrip("-")
            matched.sort(key=lambda r: r[key], reverse=sort.startswith("-"))
        page, links = self._paginate(matched, params, 10, 10, "/api/lists", query)
        return 200, {"data": [self._list_resource(r) for r in page], "links": links}, {}

    def _post_list(self, *, params: dict[str, str], body: bytes, query: str) -> Response:
        name, opt_in = validate_create_list(parse_json_body(body))
        rec = self.store.create_list(name, opt_in)
        return 201, {"data": self._list_resource(rec), "links": {"self": f"{self._base_url()}/api/lists/"}}, {}

    def _get_list(self, list_id: str, *, params: dict[str, str], body: bytes, query: str) -> Response:
        rec = self.store.require_list(list_id)
        return (
            200,
            {"data": self._list_resource(rec), "links": {"self": f"{self._base_url()}/api/lists/{list_id}/"}},
            {},
        )

    def _get_list_profiles(self, list_id: str, *, params: dict[str, str], body: bytes, query: str) -> Response:
        self.store.require_list(list_id)
        predicate = filters.compile_filter(
            params.get("filter"),
            filters.LIST_PROFILE_FILTER_FIELDS,
            max_list_values=filters.MAX_PROFILE_FILTER_LIST_VALUES,
        )
        sort = params.get("sort")
        if sort is not None and sort not in ("joined_group_at", "-joined_group_at"):
            raise ApiError(400, f"'{sort}' is not a valid sort option.", parameter="sort")
        with self.store.lock:
            entries = self.store.member_entries(list_id)
            records = []
            for pid, joined in entries:
                attrs = (self.store.profiles.get(pid) or {}).get("attributes", {})
                records.append(
                    (
                        pid,
                        {
                            "email": attrs.get("email"),
                            "phone_number": attrs.get("phone_number"),
                            "push_token": None,
                            "_kx": attrs.get("_kx"),
                            "joined_group_at": joined,
                        },
                    )
                )
        matched = [(pid, rec) for pid, rec in records if predicate(rec)]
        if sort == "-joined_group_at":
            matched.reverse()
        page, links = self._paginate(matched, params, 20, 100, f"/api/lists/{list_id}/relationships/profiles", query)
        return 200, {"data": [{"type": "profile", "id": pid} for pid, _ in page], "links": links}, {}

    def _post_list_profiles(self, list_id: str, *, params: dict[str, str], body: bytes, query: str) -> Response:
        self.store.require_list(list_id)
        ids = validate_profile_relationships(parse_json_body(body))
        self.store.add_members(list_id, ids)
        self._items = len(ids)
        return 204, None, {}

    def _delete_list_profiles(self, list_id: str, *, params: dict[str, str], body: bytes, query: str) -> Response:
        self.store.require_list(list_id)
        ids = validate_profile_relationships(parse_json_body(body))
        self.store.remove_members(list_id, ids)
        self._items = len(ids)
        return 204, None, {}

    # -------------------------------------------------------- /__emulator__
    def _handle_admin(self, method: str, path: str, query: str) -> None:
        ctype = "application/json"
        try:
            body = self._read_body()
            params = dict(parse_qsl(query, keep_blank_values=True))
            if path == "/__emulator__/health" and method == "GET":
                self._send(200, {"ok": True}, {}, ctype)
            elif path == "/__emulator__/stats" and method == "GET":
                timeline = params.get("timeline", "") in ("1", "true", "yes")
                self._send(200, self.store.stats(timeline=timeline), {}, ctype)
            elif path == "/__emulator__/state" and method == "GET":
                include = params.get("include_bodies", "") in ("1", "true", "yes")
                self._send(200, self.store.snapshot(include_bodies=include), {}, ctype)
            elif path == "/__emulator__/reset" and method == "POST":
                opts = json.loads(body) if body.strip() else {}
                self.store.reset(keep_faults=bool(isinstance(opts, dict) and opts.get("keep_faults")))
                self._send(200, {"ok": True}, {}, ctype)
            elif path == "/__emulator__/faults" and method == "GET":
                with self.store.lock:
                    faults = [f.to_dict() for f in self.store.faults]
                self._send(200, {"faults": faults}, {}, ctype)
            elif path == "/__emulator__/faults" and method == "DELETE":
                self.store.clear_faults()
                self._send(200, {"ok": True}, {}, ctype)
            elif path == "/__emulator__/faults" and method == "POST":
                spec = json.loads(body or b"null")
                if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
                    raise ApiError(400, "Fault body must be an object with at least 'path'.", pointer="/path")
                allowed = {
                    "method",
                    "path",
                    "status",
                    "count",
                    "retry_after",
                    "delay_seconds",
                    "code",
                    "detail",
                    "skip",
                    "pointer",
                    "apply",
                    "drop",
                }
                unknown = set(spec) - allowed
                if unknown:
                    raise ApiError(400, f"Unknown fault fields: {sorted(unknown)}.", pointer="/")
                try:
                    fault = self.store.add_fault(
                        path=spec["path"],
                        method=spec.get("method"),
                        status=spec.get("status"),
                        count=int(spec.get("count", 1)),
                        retry_after=spec.get("retry_after"),
                        delay_seconds=float(spec.get("delay_seconds") or 0),
                        code=spec.get("code"),
                        detail=spec.get("detail"),
                        skip=int(spec.get("skip") or 0),
                        pointer=spec.get("pointer"),
                        apply=bool(spec.get("apply")),
                        drop=bool(spec.get("drop")),
                    )
                except (TypeError, ValueError) as exc:
                    raise ApiError(400, f"Invalid fault: {exc}", pointer="/") from None
                self._send(201, {"fault": fault.to_dict()}, {}, ctype)
            else:
                raise ApiError(404, f"No emulator endpoint {method} {path}.")
        except json.JSONDecodeError as exc:
            self._send(400, ApiError(400, f"Malformed JSON: {exc}").to_document(), {}, ctype)
        except ApiError as exc:
            self._send(exc.status, exc.to_document(), exc.headers, ctype)


class EmulatorServer:
    """Run the emulator in a daemon thread for tests.

    ``with EmulatorServer(api_keys=["k"]) as emu: requests.get(emu.url + ...)``;
    ``emu.store`` is the live :class:`EmulatorStore`.
    """

    def __init__(
        self,
        api_keys: Optional[Iterable[str]] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        list_create_daily_limit: int = DEFAULT_LIST_CREATE_DAILY_LIMIT,
        store: Optional[EmulatorStore] = None,
        log_stream: Optional[TextIO] = None,
        rate_limits: Optional[str] = None,
        latency_ms: float = 0.0,
        time_scale: float = 1.0,
        lean: bool = False,
        job_processing_seconds: float = 0.0,
    ) -> None:
        keys = [k for k in (api_keys or []) if k] or [DEFAULT_API_KEY]
        self._default_key = keys[0]
        self.store = store or EmulatorStore(
            list_create_daily_limit=list_create_daily_limit, job_processing_seconds=job_processing_seconds
        )
        if store is not None and job_processing_seconds:
            self.store.job_processing_seconds = float(job_processing_seconds)
        if lean:
            # Benchmarks: keep counts, not contents (bodies dropped, profiles reduced to identifiers).
            self.store.retain_bodies = False
            self.store.identifiers_only = True
        if rate_limits not in (None, "off", "klaviyo"):
            raise ValueError(f"rate_limits must be None, 'off' or 'klaviyo', got {rate_limits!r}")
        table = KLAVIYO_RATE_LIMITS if rate_limits == "klaviyo" else ()
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if table or latency_ms:
            # Opt-in only: without these arguments the emulator answers at once and never throttles.
            self.store.rate_limiter = RateLimiter(table, time_scale=time_scale, latency_ms=latency_ms)
        self.httpd = EmulatorHTTPServer((host, port), self.store, keys, log_stream)
        self.host = self.httpd.server_address[0]
        self.port = self.httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "EmulatorServer":
        """Start serving in a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="klaviyo-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread (used by the CLI)."""
        self.httpd.serve_forever(poll_interval=0.2)

    def headers(self, api_key: Optional[str] = None, revision: str = DEFAULT_REVISION) -> dict[str, str]:
        """Request headers a well-behaved client sends (auth, revision, JSON:API types)."""
        return {
            "Authorization": f"Klaviyo-API-Key {api_key or self._default_key}",
            "revision": revision,
            "Accept": JSONAPI,
            "Content-Type": JSONAPI,
        }

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
