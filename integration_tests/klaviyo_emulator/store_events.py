"""Events and metrics in the emulator's store (``POST /api/event-bulk-create-jobs``).

A mixin of :class:`store.EmulatorStore`: it relies on the store's ``lock``, ``profiles``,
``upsert_profile``, ``_match`` and ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from .errors import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from .validation_events import EventEntry

EVENT_MATCH_ATTRS = ("email", "phone_number", "external_id", "anonymous_id", "_kx")


def _iso(dt: datetime) -> str:
    from .store import iso

    return iso(dt)


@dataclass
class EventRecord:
    """One stored event."""

    id: str
    metric: str
    metric_id: str
    profile_id: str
    properties: dict[str, Any]
    time: datetime
    value: Optional[float]
    value_currency: Optional[str]
    unique_id: Optional[str]  # as sent (None when the client sent none)
    dedupe_id: str  # unique_id, or the time to the second
    backfill: bool
    job_id: str
    received_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "metric": self.metric,
            "metric_id": self.metric_id,
            "profile_id": self.profile_id,
            "properties": self.properties,
            "time": _iso(self.time),
            "value": self.value,
            "value_currency": self.value_currency,
            "unique_id": self.unique_id,
            "dedupe_id": self.dedupe_id,
            "backfill": self.backfill,
            "job_id": self.job_id,
            "received_at": _iso(self.received_at),
        }


@dataclass
class EventJobRecord:
    """One accepted Bulk Create Events request (Klaviyo answers 202 with no body, so no id is shown)."""

    id: str
    created_at: datetime
    event_count: int
    stored_count: int
    duplicate_count: int
    profile_ids: list[str] = field(default_factory=list)
    body_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": _iso(self.created_at),
            "event_count": self.event_count,
            "stored_count": self.stored_count,
            "duplicate_count": self.duplicate_count,
            "profile_ids": list(self.profile_ids),
            "body_size": self.body_size,
        }


class EventsMixin:
    """Events, metrics and their dedupe keys."""

    def _init_events_state(self) -> None:
        self.event_records: list[EventRecord] = []
        self.metrics: dict[str, dict[str, Any]] = {}  # metric name -> {id, name, service, created}
        self.event_jobs: list[EventJobRecord] = []
        self._event_keys: set[tuple[str, str, str]] = set()  # (profile id, metric name, dedupe id)

    def bulk_create_events(self, entries: list["EventEntry"], body_size: int = 0) -> EventJobRecord:
        """Apply a validated Bulk Create Events request, all or nothing.

        Checks first (nothing changes when one fails): a profile given only by an unknown ``id``
        is a 404, and a repeated (profile, metric, unique_id) inside the request is a 400 on the
        second occurrence (spec: "If a unique_id is repeated for the same profile and metric, the
        request will fail and no events will be processed"; without a unique_id the time to the
        second stands in for it). Then profiles are upserted and events stored; an event whose key
        is already stored is skipped (counted in ``duplicate_count``).
        """
        from .store import new_list_id, new_ulid

        with self.lock:  # type: ignore[attr-defined]
            now: datetime = self.now()  # type: ignore[attr-defined]
            # 1. Which profile each entry names: an existing id, or one to be created by this request.
            keys: list[Any] = []
            pending: dict[tuple[str, str], Any] = {}
            for i, entry in enumerate(entries):
                attrs = entry.profile_attributes
                key = self._match(entry.profile_id, attrs, EVENT_MATCH_ATTRS)  # type: ignore[attr-defined]
                if key is None:
                    if entry.profile_id and not any(attrs.get(k) for k in EVENT_MATCH_ATTRS):
                        raise ApiError(
                            404,
                            f"A profile with id '{entry.profile_id}' does not exist and no other identifier "
                            "was given to create it.",
                            pointer=f"{entry.pointer}/attributes/profile/data/id",
                        )
                    for k in EVENT_MATCH_ATTRS:
                        if attrs.get(k) and (k, attrs[k]) in pending:
                            key = pending[(k, attrs[k])]
                            break
                    if key is None:
                        key = ("new", i)
                for k in EVENT_MATCH_ATTRS:
                    if attrs.get(k):
                        pending.setdefault((k, attrs[k]), key)
                keys.append(key)
            # 2. A repeated unique_id for the same profile and metric fails the whole request.
            seen: set[tuple[Any, str, str]] = set()
            for key, entry in zip(keys, entries):
                for ev in entry.events:
                    dkey = (key, ev.metric, ev.dedupe_id)
                    if dkey in seen:
                        if ev.unique_id is not None:
                            pointer, why = f"{ev.pointer}/attributes/unique_id", f"unique_id '{ev.unique_id}'"
                        else:
                            pointer = f"{ev.pointer}/attributes/time" if ev.time_given else f"{ev.pointer}/attributes"
                            why = f"no unique_id and the same time to the second ({ev.time.isoformat()})"
                        raise ApiError(
                            400,
                            f"Duplicate event in request: {why} is repeated for the same profile and metric "
                            f"'{ev.metric}'; the request failed and no events were processed.",
                            pointer=pointer,
                        )
                    seen.add(dkey)
            # 3. Apply.
            job = EventJobRecord(
                id=new_ulid(now),
                created_at=now,
                event_count=sum(len(e.events) for e in entries),
                stored_count=0,
                duplicate_count=0,
                body_size=body_size,
            )
            for entry in entries:
                pid, _ = self.upsert_profile(  # type: ignore[attr-defined]
                    entry.profile_attributes, entry.profile_id, now=now, match_keys=EVENT_MATCH_ATTRS
                )
                if pid not in job.profile_ids:
                    job.profile_ids.append(pid)
                for ev in entry.events:
                    dkey = (pid, ev.metric, ev.dedupe_id)
                    if dkey in self._event_keys:
                        job.duplicate_count += 1
                        continue
                    metric = self.metrics.get(ev.metric)
                    if metric is None:
                        metric = {
                            "id": new_list_id(),
                            "name": ev.metric,
                            "service": ev.service or "api",
                            "created": now,
                        }
                        self.metrics[ev.metric] = metric
                    self._event_keys.add(dkey)
                    self.event_records.append(
                        EventRecord(
                            id=new_ulid(now),
                            metric=ev.metric,
                            metric_id=metric["id"],
                            profile_id=pid,
                            properties=_copy(ev.properties),
                            time=ev.time,
                            value=ev.value,
                            value_currency=ev.value_currency,
                            unique_id=ev.unique_id,
                            dedupe_id=ev.dedupe_id,
                            backfill=ev.backfill,
                            job_id=job.id,
                            received_at=now,
                        )
                    )
                    job.stored_count += 1
                    last = self._last_event.get(pid)  # type: ignore[attr-defined]
                    if last is None or ev.time > last:
                        self._last_event[pid] = ev.time  # type: ignore[attr-defined]
            self.event_jobs.append(job)
            return job

    def events(self, metric: Optional[str] = None) -> list[dict[str, Any]]:
        """Stored events (JSON-ready dicts, in arrival order), optionally of one metric name."""
        with self.lock:  # type: ignore[attr-defined]
            return [e.to_dict() for e in self.event_records if metric is None or e.metric == metric]

    def metric_names(self) -> list[str]:
        """Names of the metrics created by events, in creation order."""
        with self.lock:  # type: ignore[attr-defined]
            return list(self.metrics)

    def _drop_events_of(self, profile_ids: set[str]) -> int:
        """Delete every event of these profiles (data-privacy deletion); return how many."""
        before = len(self.event_records)
        self.event_records = [e for e in self.event_records if e.profile_id not in profile_ids]
        self._event_keys = {k for k in self._event_keys if k[0] not in profile_ids}
        return before - len(self.event_records)

    def _events_snapshot(self) -> dict[str, Any]:
        return {
            "events": [e.to_dict() for e in self.event_records],
            "metrics": [
                {"id": m["id"], "name": m["name"], "service": m["service"], "created": _iso(m["created"])}
                for m in self.metrics.values()
            ],
            "event_jobs": [j.to_dict() for j in self.event_jobs],
        }


def _copy(value: Any) -> Any:
    from .store import copy_json

    return copy_json(value)
