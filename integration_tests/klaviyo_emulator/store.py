"""In-memory, thread-safe state of the Klaviyo emulator.

Everything the HTTP layer changes lives here behind one re-entrant lock, so
tests can inspect it directly (``emu.store``) and concurrent connector
requests cannot interleave half-applied imports.  API keys are deliberately
*not* stored here: the state is dumped by ``/__emulator__/state``.
"""

from __future__ import annotations

import base64
import copy
import math
import os
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Optional

from .errors import ApiError
from .ratelimit import RateLimiter
from .store_consent import ConsentMixin
from .store_events import EventsMixin

DEFAULT_LIST_CREATE_DAILY_LIMIT = 150
MAX_BULK_PROFILES = 10_000
MAX_BULK_BODY_BYTES = 5 * 1024 * 1024
MAX_PROFILE_BYTES = 100 * 1024
MAX_LIST_RELATIONSHIP_ITEMS = 1_000

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LIST_ID_ALPHABET = string.ascii_letters + string.digits
_ID_ATTRS = ("email", "phone_number", "external_id")
# Indexed for lookups; bulk import matches on _ID_ATTRS only, events also on anonymous_id and _kx.
_INDEX_ATTRS = _ID_ATTRS + ("anonymous_id", "_kx")


_RFC4648_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())


def new_ulid(now: Optional[datetime] = None) -> str:
    """Return a 26-char Crockford-base32 ULID, the shape of Klaviyo profile/job ids.

    10 characters of millisecond timestamp, then 16 of randomness (80 bits = 10 bytes, which base32
    encodes to exactly 16 characters, mapped from RFC 4648's alphabet to Crockford's).
    """
    ms = int((now or datetime.now(timezone.utc)).timestamp() * 1000)
    chars = []
    for _ in range(10):
        chars.append(_CROCKFORD[ms & 31])
        ms >>= 5
    randomness = base64.b32encode(os.urandom(10)).translate(_RFC4648_TO_CROCKFORD).decode("ascii")
    return "".join(reversed(chars)) + randomness


def new_list_id() -> str:
    """Return a 6-char alphanumeric id, the shape of Klaviyo list ids (e.g. ``Y6nRLr``)."""
    return "".join(secrets.choice(_LIST_ID_ALPHABET) for _ in range(6))


def copy_json(value: Any) -> Any:
    """Deep copy of parsed JSON (dicts, lists, scalars), several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return copy.deepcopy(value)


def iso(dt: datetime) -> str:
    """Format a datetime the way Klaviyo does (ISO 8601 with offset)."""
    return dt.astimezone(timezone.utc).isoformat()


@dataclass
class RequestRecord:
    """One logged ``/api`` request (never includes headers, so never the key)."""

    method: str
    path: str
    query: str
    status: int
    body_size: int
    timestamp: float
    json_body: Any = None  # parsed body, kept for the bulk and consent POST endpoints
    items: Optional[int] = None  # profiles in an accepted bulk job / ids in a list-relationship edit

    def to_dict(self, include_body: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "body_size": self.body_size,
            "timestamp": self.timestamp,
        }
        if include_body and self.json_body is not None:
            out["json_body"] = self.json_body
        return out


@dataclass
class JobRecord:
    """A profile bulk import job plus the request that created it."""

    id: str
    status: str
    list_ids: list[str]
    profile_ids: list[str]
    total_count: int
    body_size: int
    request_body: Any
    created_at: datetime
    completed_at: Optional[datetime]
    # Deferred processing (``job_processing_seconds`` > 0): when processing starts and when the
    # import is applied. Both None for jobs applied synchronously (the default).
    started_at: Optional[datetime] = None
    due_at: Optional[datetime] = None
    failed_count: int = 0

    @property
    def list_id(self) -> Optional[str]:
        """The (first) list the import added profiles to, if any."""
        return self.list_ids[0] if self.list_ids else None

    @property
    def profile_count(self) -> int:
        return self.total_count

    def to_dict(self, include_body: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "list_id": self.list_id,
            "list_ids": list(self.list_ids),
            "profile_count": self.total_count,
            "profile_ids": list(self.profile_ids),
            "body_size": self.body_size,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at) if self.started_at else None,
            "completed_at": iso(self.completed_at) if self.completed_at else None,
            "due_at": iso(self.due_at) if self.due_at else None,
            "failed_count": self.failed_count,
        }
        if include_body:
            out["request_body"] = self.request_body
        return out


@dataclass
class Fault:
    """Make the next ``count`` matching ``/api`` requests fail and/or stall.

    ``path`` matches the request path exactly (trailing slash ignored); end
    it with ``*`` for a prefix match.  ``method`` ``None``/``"*"`` matches all.
    ``status`` ``None`` means "only delay, then serve normally".  ``skip`` lets
    that many matching requests through untouched first (e.g. fail the 3rd job).
    ``pointer`` is the error's ``source.pointer`` (e.g. to blame one profile).
    ``apply`` serves the request for real and then answers with the fault: a
    response lost after the server acted (e.g. a list create that "timed out").
    ``drop`` closes the connection without any response (status 0 in the log).
    """

    path: str
    method: Optional[str] = None
    status: Optional[int] = None
    count: int = 1
    retry_after: Optional[float] = None
    delay_seconds: float = 0.0
    code: Optional[str] = None
    detail: Optional[str] = None
    skip: int = 0
    pointer: Optional[str] = None
    apply: bool = False
    drop: bool = False
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method not in (None, "*") and self.method.upper() != method.upper():
            return False
        pattern = self.path.rstrip("/") or "/"
        if pattern.endswith("*"):
            return path.startswith(pattern[:-1])
        return path == pattern

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "remaining": self.count,
            "hits": self.hits,
            "retry_after": self.retry_after,
            "delay_seconds": self.delay_seconds,
            "code": self.code,
            "detail": self.detail,
            "skip": self.skip,
            "pointer": self.pointer,
            "apply": self.apply,
            "drop": self.drop,
        }


class EmulatorStore(EventsMixin, ConsentMixin):
    """Profiles, lists, memberships, jobs, events, consent, request log and pending faults."""

    def __init__(
        self,
        list_create_daily_limit: int = DEFAULT_LIST_CREATE_DAILY_LIMIT,
        clock: Optional[Callable[[], datetime]] = None,
        *,
        retain_bodies: bool = True,
        identifiers_only: bool = False,
        rate_limiter: Optional[RateLimiter] = None,
        job_processing_seconds: float = 0.0,
    ) -> None:
        if job_processing_seconds < 0:
            raise ValueError("job_processing_seconds must not be negative")
        self.lock = threading.RLock()
        # 0 (default): a bulk import is applied before its 202 answer. X > 0: the job stays
        # ``queued`` for X/2 seconds, ``processing`` until X, and is applied (``complete``) at X.
        self.job_processing_seconds = float(job_processing_seconds)
        # The account-level default opt-in setting: used by Bulk Subscribe without a list ("If a
        # list is not provided, the opt-in process used will be determined by the account-level
        # default opt-in setting") and by Create List without opt_in_process ("If not provided,
        # uses account default"). Klaviyo's own default is not in the spec; the emulator's is single.
        self.account_opt_in_process = "single_opt_in"
        self.list_create_daily_limit = list_create_daily_limit
        # False (benchmarks): request bodies are parsed and applied but not kept in the request log
        # or the job records, so a multi-million-row run does not hold every body in memory.
        self.retain_bodies = retain_bodies
        # True (benchmarks): a stored profile keeps only email/phone_number/external_id (enough to
        # match later imports); everything is still validated, matched and counted.
        self.identifiers_only = identifiers_only
        # Set when rate limits and/or latency are emulated (opt-in); its counters are in snapshots.
        self.rate_limiter = rate_limiter
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        self._flight_lock = threading.Lock()
        self.in_flight = 0  # /api requests being handled right now
        self._init_state()

    def _init_state(self) -> None:
        self.profiles: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        # list id -> {profile id: joined_at datetime}; dicts keep join order.
        self.memberships: dict[str, dict[str, datetime]] = {}
        self.jobs: dict[str, JobRecord] = {}
        # job id -> (profiles, list ids) of deferred imports not applied yet
        self._pending_imports: dict[str, tuple[list[dict[str, Any]], list[str]]] = {}
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.list_creations: dict[str, int] = {}
        self._index: dict[str, dict[str, str]] = {k: {} for k in _INDEX_ATTRS}
        self._init_events_state()
        self._init_consent_state()
        # Consent (see README "Consent"): profile id -> channel ("email.marketing", "sms.marketing",
        # ...) -> {consent, consent_timestamp, last_updated, created_timestamp, method, method_detail,
        # custom_method_detail, double_optin, phone_number}; a missing channel is NEVER_SUBSCRIBED.
        self.consent: dict[str, dict[str, dict[str, Any]]] = {}
        # profile id -> global email suppressions [{reason, timestamp}]
        self.suppressions: dict[str, list[dict[str, Any]]] = {}
        # profile id -> list-scoped email suppressions [{list_id, reason, timestamp}]
        self.list_suppressions: dict[str, list[dict[str, Any]]] = {}
        self._last_event: dict[str, datetime] = {}  # profile id -> time of its latest event
        self._profile_seq: dict[str, int] = {}  # profile id -> creation sequence (for ordering lookups)
        self._next_seq = 0
        self.max_in_flight = 0  # the most /api requests handled at once (client concurrency)

    # ------------------------------------------------------------------ misc
    def now(self) -> datetime:
        return self.clock()

    def reset(self, keep_faults: bool = False) -> None:
        """Forget everything (optionally keeping pending faults)."""
        with self.lock:
            faults = self.faults
            self._init_state()
            if keep_faults:
                self.faults = faults
            if self.rate_limiter is not None:
                self.rate_limiter.reset()

    # ----------------------------------------------------------------- lists
    def create_list(
        self, name: str, opt_in_process: Optional[str] = None, *, enforce_limit: bool = True
    ) -> dict[str, Any]:
        """Create a list; duplicates are allowed, as in Klaviyo.

        Raises a 429 ``throttled`` :class:`ApiError` once the per-UTC-day
        creation limit is used up (Klaviyo's ``150/d`` on Create List).
        """
        with self.lock:
            now = self.now()
            day = now.astimezone(timezone.utc).date().isoformat()
            used = self.list_creations.get(day, 0)
            if enforce_limit and used >= self.list_create_daily_limit:
                midnight = datetime.combine(
                    now.astimezone(timezone.utc).date() + timedelta(days=1),
                    datetime.min.time(),
                    tzinfo=timezone.utc,
                )
                retry = max(1, math.ceil((midnight - now).total_seconds()))
                raise ApiError(
                    429,
                    f"Request was throttled. The daily limit of {self.list_create_daily_limit} list "
                    f"creations per day (Create List rate limit {self.list_create_daily_limit}/d) has "
                    f"been reached. Expected available in {retry} seconds.",
                    headers={"Retry-After": str(retry)},
                )
            list_id = new_list_id()
            while list_id in self.lists:
                list_id = new_list_id()
            record = {
                "id": list_id,
                "name": name,
                "opt_in_process": opt_in_process or self.account_opt_in_process,
                "created": now,
                "updated": now,
            }
            self.lists[list_id] = record
            self.memberships[list_id] = {}
            self.list_creations[day] = used + 1
            return record

    def get_list(self, list_id: str) -> Optional[dict[str, Any]]:
        with self.lock:
            return self.lists.get(list_id)

    def lists_by_name(self, name: str) -> list[dict[str, Any]]:
        """All lists with exactly this name (case-sensitive), in creation order."""
        with self.lock:
            return [rec for rec in self.lists.values() if rec["name"] == name]

    def require_list(self, list_id: str, pointer: Optional[str] = None) -> dict[str, Any]:
        """Return the list or raise Klaviyo-like 404."""
        rec = self.get_list(list_id)
        if rec is None:
            raise ApiError(404, f"A list with id '{list_id}' does not exist.", pointer=pointer)
        return rec

    # -------------------------------------------------------------- profiles
    def find_profile(
        self,
        *,
        email: Optional[str] = None,
        phone_number: Optional[str] = None,
        external_id: Optional[str] = None,
    ) -> Optional[dict[str, Any]]:
        """Look a profile up by one identifier (exact match)."""
        with self.lock:
            for key, value in (("email", email), ("phone_number", phone_number), ("external_id", external_id)):
                if value:
                    pid = self._index[key].get(value)
                    if pid:
                        return self.profiles[pid]
            return None

    def profile_by_email(self, email: str) -> Optional[dict[str, Any]]:
        return self.find_profile(email=email)

    def _match(
        self, profile_id: Optional[str], attrs: dict[str, Any], keys: tuple[str, ...] = _ID_ATTRS
    ) -> Optional[str]:
        if profile_id and profile_id in self.profiles:
            return profile_id
        for key in keys:
            value = attrs.get(key)
            if isinstance(value, str) and value:
                pid = self._index[key].get(value)
                if pid:
                    return pid
        return None

    def _reindex(self, pid: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        for key in _INDEX_ATTRS:
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if before and self._index[key].get(before) == pid:
                del self._index[key][before]
            if isinstance(after, str) and after:
                self._index[key][after] = pid

    @staticmethod
    def _merge(existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
        """Only provided keys change; ``properties``/``location`` merge key by key."""
        merged = dict(existing)
        for key, value in incoming.items():
            if key in ("properties", "location") and isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **copy_json(value)}
            else:
                merged[key] = copy_json(value)
        return merged

    def upsert_profile(
        self,
        attributes: dict[str, Any],
        profile_id: Optional[str] = None,
        *,
        now: Optional[datetime] = None,
        match_keys: tuple[str, ...] = _ID_ATTRS,
    ) -> tuple[str, bool]:
        """Create or update one profile; returns ``(id, created)``.

        Matching order: resource id, then email, phone_number, external_id (then, for events,
        anonymous_id and _kx: ``match_keys``).
        """
        if self.identifiers_only:
            attributes = {k: attributes[k] for k in _INDEX_ATTRS if k in attributes}
        with self.lock:
            now = now or self.now()
            pid = self._match(profile_id, attributes, match_keys)
            if pid is None:
                pid = new_ulid(now)
                while pid in self.profiles:
                    pid = new_ulid(now)
                attrs = self._merge({}, attributes)
                self.profiles[pid] = {"id": pid, "attributes": attrs, "created": now, "updated": now}
                self._profile_seq[pid] = self._next_seq
                self._next_seq += 1
                self._reindex(pid, {}, attrs)
                return pid, True
            rec = self.profiles[pid]
            merged = self._merge(rec["attributes"], attributes)
            self._reindex(pid, rec["attributes"], merged)
            rec["attributes"] = merged
            rec["updated"] = now
            return pid, False

    def profile_views(self, profile_ids: Optional[Iterable[str]] = None) -> list[dict[str, Any]]:
        """Copies of stored profiles with what a profile resource shows besides its attributes:
        ``{id, record, consent, suppressions, list_suppressions, last_event_date}``, in creation
        order (or in the order of ``profile_ids``, skipping unknown ids)."""
        with self.lock:
            ids = list(self.profiles) if profile_ids is None else [p for p in profile_ids if p in self.profiles]
            return [self._profile_view(pid) for pid in ids]

    def profile_ids_by(self, field: str, values: Iterable[str]) -> list[str]:
        """Ids of the profiles whose ``field`` (``id``, ``email``, ``phone_number``, ``external_id``,
        ``anonymous_id``, ``_kx``) equals one of ``values`` (exact), in creation order."""
        with self.lock:
            if field == "id":
                found = {v for v in values if v in self.profiles}
            else:
                index = self._index[field]
                found = {index[v] for v in values if v in index}
            return sorted(found, key=lambda pid: self._profile_seq.get(pid, -1))

    def _profile_view(self, pid: str) -> dict[str, Any]:
        rec = self.profiles[pid]
        return {
            "id": pid,
            "record": {
                "attributes": copy_json(rec["attributes"]),
                "created": rec["created"],
                "updated": rec["updated"],
            },
            "consent": {k: dict(v) for k, v in self.consent.get(pid, {}).items()},
            "suppressions": [dict(x) for x in self.suppressions.get(pid, ())],
            "list_suppressions": [dict(x) for x in self.list_suppressions.get(pid, ())],
            "last_event_date": self._last_event.get(pid),
        }

    # ----------------------------------------------------------------- jobs
    def bulk_import(
        self,
        profiles: list[dict[str, Any]],
        list_ids: list[str],
        request_body: Any,
        body_size: int,
    ) -> JobRecord:
        """Record a validated bulk import job and apply it (now, or later when deferred).

        Referential checks happen first under the lock so a failing request
        changes nothing: every list must exist, and a profile that carries
        only a resource ``id`` must refer to an existing profile.  With
        ``job_processing_seconds`` > 0 the job is stored ``queued`` and
        applied by :meth:`process_due_jobs` once that many seconds have passed.
        """
        with self.lock:
            for i, list_id in enumerate(list_ids):
                self.require_list(list_id, pointer=f"/data/relationships/lists/data/{i}/id")
            for i, prof in enumerate(profiles):
                attrs = prof.get("attributes") or {}
                pid = prof.get("id")
                has_identifier = any(isinstance(attrs.get(k), str) and attrs.get(k) for k in _ID_ATTRS)
                if pid and pid not in self.profiles and not has_identifier:
                    raise ApiError(
                        404,
                        f"A profile with id '{pid}' does not exist and no email, phone_number or "
                        "external_id was given to create it.",
                        pointer=f"/data/attributes/profiles/data/{i}/id",
                    )
            now = self.now()
            job = JobRecord(
                id=new_ulid(now),
                status="complete",
                list_ids=list(list_ids),
                profile_ids=[],
                total_count=len(profiles),
                body_size=body_size,
                request_body=request_body if self.retain_bodies else None,
                created_at=now,
                completed_at=now,
            )
            self.jobs[job.id] = job
            delay = self.job_processing_seconds
            if delay > 0:
                job.status = "queued"
                job.completed_at = None
                job.due_at = now + timedelta(seconds=delay)
                self._pending_imports[job.id] = (profiles, list(list_ids))
                # Timers only make the store catch up without a request; every /api request,
                # snapshot and job read also calls process_due_jobs(), which is idempotent.
                for after in (delay / 2, delay):
                    timer = threading.Timer(after + 0.01, self.process_due_jobs)
                    timer.daemon = True
                    timer.start()
                return job
            self._apply_import(job, profiles, list_ids, now)
            return job

    def _apply_import(self, job: JobRecord, profiles: list[dict[str, Any]], list_ids: list[str], now: datetime) -> None:
        ids: list[str] = []
        for prof in profiles:
            attrs = prof.get("attributes") or {}
            pid = prof.get("id")
            if (
                pid
                and pid not in self.profiles
                and not any(isinstance(attrs.get(k), str) and attrs.get(k) for k in _ID_ATTRS)
            ):
                # Only possible for a deferred job whose profile was deleted in the meantime.
                job.failed_count += 1
                continue
            pid, _ = self.upsert_profile(attrs, pid, now=now)
            ids.append(pid)
        for list_id in list_ids:
            if list_id in self.lists:
                self._add_members(list_id, ids, now)
        job.profile_ids = ids

    def process_due_jobs(self) -> None:
        """Advance deferred bulk import jobs: ``queued`` -> ``processing`` (at half the delay) ->
        applied and ``complete`` (at the full delay). A no-op when nothing is pending."""
        if not self._pending_imports:
            return
        with self.lock:
            now = self.now()
            for job_id in list(self._pending_imports):
                job = self.jobs.get(job_id)
                if job is None or job.due_at is None:
                    self._pending_imports.pop(job_id, None)
                    continue
                halfway = job.created_at + (job.due_at - job.created_at) / 2
                if now >= job.due_at:
                    profiles, list_ids = self._pending_imports.pop(job_id)
                    job.started_at = job.started_at or halfway
                    self._apply_import(job, profiles, list_ids, now)
                    job.status = "complete"
                    job.completed_at = now
                elif now >= halfway and job.status == "queued":
                    job.status = "processing"
                    job.started_at = now

    def get_job(self, job_id: str) -> Optional[JobRecord]:
        self.process_due_jobs()
        with self.lock:
            return self.jobs.get(job_id)

    def bulk_request_bodies(self) -> list[Any]:
        """Parsed bodies of every bulk import request received (accepted or not)."""
        with self.lock:
            return [
                r.json_body
                for r in self.requests
                if r.json_body is not None and r.method == "POST" and r.path == "/api/profile-bulk-import-jobs"
            ]

    def request_bodies(self, path: str, method: str = "POST") -> list[Any]:
        """Parsed bodies of every request to ``path`` (accepted, rejected or faulted), in arrival
        order. Kept for the bulk and consent endpoints (not in lean mode)."""
        path = path.rstrip("/") or "/"
        with self.lock:
            return [
                r.json_body for r in self.requests if r.json_body is not None and r.method == method and r.path == path
            ]

    def sent_profiles(self) -> list[Any]:
        """Every profile object the client put in any bulk import request body."""
        out: list[Any] = []
        for body in self.bulk_request_bodies():
            try:
                data = body["data"]["attributes"]["profiles"]["data"]
            except (KeyError, TypeError):
                continue
            if isinstance(data, list):
                out.extend(data)
        return out

    # ----------------------------------------------------------- memberships
    def _add_members(self, list_id: str, profile_ids: Iterable[str], now: datetime) -> None:
        members = self.memberships.setdefault(list_id, {})
        for pid in profile_ids:
            if pid not in members:
                members[pid] = now

    def add_members(self, list_id: str, profile_ids: Iterable[str]) -> None:
        """Add profile ids to a list (idempotent; unknown ids are recorded as-is)."""
        with self.lock:
            self.require_list(list_id)
            self._add_members(list_id, profile_ids, self.now())

    def remove_members(self, list_id: str, profile_ids: Iterable[str]) -> None:
        """Remove profile ids from a list (ids not on the list are ignored)."""
        with self.lock:
            self.require_list(list_id)
            members = self.memberships.setdefault(list_id, {})
            for pid in profile_ids:
                members.pop(pid, None)

    def list_members(self, list_id: str) -> list[str]:
        """Profile ids on a list, in join order."""
        with self.lock:
            return list(self.memberships.get(list_id, {}))

    def member_entries(self, list_id: str) -> list[tuple[str, datetime]]:
        with self.lock:
            return list(self.memberships.get(list_id, {}).items())

    # ---------------------------------------------------------- request log
    def request_started(self) -> None:
        with self._flight_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def request_finished(self) -> None:
        with self._flight_lock:
            self.in_flight -= 1

    def log_request(self, record: RequestRecord) -> None:
        with self.lock:
            self.requests.append(record)

    def count_requests(self, method: Optional[str] = None, path_prefix: str = "", status: Optional[int] = None) -> int:
        """How many ``/api`` requests matched ``method`` and ``path_prefix`` (and ``status``)."""
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and r.path.startswith(path_prefix)
                and (status is None or r.status == status)
            )

    def request_counts(self) -> dict[str, int]:
        """Counts keyed by ``"METHOD /path"`` for quick assertions and the state dump."""
        with self.lock:
            counts: dict[str, int] = {}
            for r in self.requests:
                key = f"{r.method} {r.path}"
                counts[key] = counts.get(key, 0) + 1
            return counts

    # ---------------------------------------------------------------- faults
    def add_fault(
        self,
        path: str,
        method: Optional[str] = None,
        status: Optional[int] = None,
        count: int = 1,
        retry_after: Optional[float] = None,
        delay_seconds: float = 0.0,
        code: Optional[str] = None,
        detail: Optional[str] = None,
        skip: int = 0,
        pointer: Optional[str] = None,
        apply: bool = False,
        drop: bool = False,
    ) -> Fault:
        """Queue a fault; see :class:`Fault` for matching rules."""
        if count < 1:
            raise ValueError("count must be >= 1")
        if status is None and not delay_seconds and not drop:
            raise ValueError("a fault needs a status, a delay, or both")
        if status is not None and not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        fault = Fault(
            path=path,
            method=method.upper() if method else None,
            status=status,
            count=count,
            retry_after=retry_after,
            delay_seconds=float(delay_seconds or 0),
            code=code,
            detail=detail,
            skip=max(0, int(skip)),
            pointer=pointer,
            apply=apply,
            drop=drop,
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Optional[Fault]:
        """Consume one use of the first matching fault, if any."""
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.count -= 1
                    fault.hits += 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
            return None

    def clear_faults(self) -> None:
        with self.lock:
            self.faults = []

    # -------------------------------------------------------------- dumping
    def snapshot(self, include_bodies: bool = False) -> dict[str, Any]:
        """A JSON-ready copy of the whole state (served by ``/__emulator__/state``)."""
        self.process_due_jobs()
        with self.lock:
            return {
                "profiles": [
                    {
                        "id": p["id"],
                        "attributes": copy.deepcopy(p["attributes"]),
                        "created": iso(p["created"]),
                        "updated": iso(p["updated"]),
                    }
                    for p in self.profiles.values()
                ],
                "lists": [
                    {"id": rec["id"], "name": rec["name"], "created": iso(rec["created"])}
                    for rec in self.lists.values()
                ],
                "memberships": {lid: sorted(members) for lid, members in self.memberships.items()},
                "jobs": [job.to_dict(include_body=include_bodies) for job in self.jobs.values()],
                "requests": [r.to_dict(include_body=include_bodies) for r in self.requests],
                "request_counts": self.request_counts(),
                "faults": [f.to_dict() for f in self.faults],
                "list_creations": dict(self.list_creations),
                "list_create_daily_limit": self.list_create_daily_limit,
                "throttled": self.rate_limiter.throttled_total() if self.rate_limiter else 0,
                "rate_limits": self.rate_limiter.snapshot() if self.rate_limiter else None,
                **self._events_snapshot(),
                **self._consent_snapshot(),
                "generated_at": time.time(),
            }

    def stats(self, timeline: bool = False) -> dict[str, Any]:
        """Counts only, cheap at any size (served by ``/__emulator__/stats``); used by benchmarks.

        With ``timeline``, one ``[timestamp, method, path, status, items]`` row per ``/api``
        request, in arrival order (``items``: profiles of an accepted bulk job, ids of an accepted
        list-relationship edit, else null).
        """
        self.process_due_jobs()
        with self.lock:
            status_counts: dict[str, int] = {}
            for r in self.requests:
                key = str(r.status)
                status_counts[key] = status_counts.get(key, 0) + 1
            out: dict[str, Any] = {
                "profiles": len(self.profiles),
                "lists": len(self.lists),
                "jobs": len(self.jobs),
                "events": len(self.event_records),
                "metrics": len(self.metrics),
                "global_unsubscribes": len(self.global_unsubscribes),
                "deletions": len(self.deletions),
                "memberships": {lid: len(members) for lid, members in self.memberships.items()},
                "requests": len(self.requests),
                "request_counts": self.request_counts(),
                "status_counts": status_counts,
                "max_in_flight": self.max_in_flight,
                "throttled": self.rate_limiter.throttled_total() if self.rate_limiter else 0,
                "rate_limits": self.rate_limiter.snapshot() if self.rate_limiter else None,
                "generated_at": time.time(),
            }
            if timeline:
                out["timeline"] = [[r.timestamp, r.method, r.path, r.status, r.items] for r in self.requests]
            return out
