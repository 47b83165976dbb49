"""`profile_deletions`: ask Klaviyo to delete people (GDPR / CCPA erasure), one request a profile.

Each row asks Klaviyo to delete the profiles of one person: `POST /api/data-privacy-deletion-jobs`
with exactly one of `id`, `email`, `phone_number` (the spec refuses several, and has no external
id). Klaviyo deletes *every* profile matching that identifier, asynchronously and irreversibly; its
202 means the request was accepted, and there is no status to read afterwards.

A row with several identifiers uses one, the most specific first (`DELETION_ORDER`):
`klaviyo_profile_id` names exactly one profile; an email address belongs to one person; a phone
number is the likeliest to be shared (a household, a switchboard), and a deletion by phone number
would erase every profile carrying it. `external_id` comes last because Klaviyo cannot delete by
it: such a row is first resolved to profile ids (`GET /api/profiles`, identity.py, 100 a lookup)
and each profile found is deleted by id. Only the chosen identifier is validated: an unused column
cannot block an erasure. A row whose person is not in Klaviyo (no profile for its external id, or
a 404) is counted as such and accepted: the state the row asks for holds.

Every row deletes, whatever the sync mode; a CDC-deleted row too, since it is still a request to
erase. The surface is `explicit_only`: only a `streams` entry or a destination object reaches it.

The endpoint allows 3/s and 60/min, so at most one deletion a second. Rows are queued and sent
from one worker (`_drain`, the lane) at that pace, so the rest of the sync keeps its other workers,
and the progress line shows the queue with an ETA. At most MAX_QUEUED rows wait; past that, reading
pauses. A dry run counts rows per identifier and sends (and looks up) nothing. `check` proves the
key's data-privacy:write scope with a deletion request that names nobody (`probe_write_scope`).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import orjson
from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.client import MAX_FILTER_VALUES, PACED_RATES, KlaviyoApiError, KlaviyoClient
from destination_klaviyo.errors import redact_detail
from destination_klaviyo.identifiers import (
    DEFAULT_PHONE_RULES,
    PHONE_COLUMNS,
    PROFILE_ID_COLUMN,
    PhoneRules,
    identifiers,
)
from destination_klaviyo.identity import resolve
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.sinks import Sink, SinkContext, probe_scope
from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, Surface, SurfaceSpec
from destination_klaviyo.totality import render_row

# (rendered key, the columns it comes from), most specific first; see the module docstring.
DELETION_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("id", (PROFILE_ID_COLUMN,)),
    ("email", ("email",)),
    ("phone_number", PHONE_COLUMNS),
    ("external_id", ("external_id",)),
)
# For logs and counts: what a row was deleted by, in the user's column names.
DELETED_BY = {"id": PROFILE_ID_COLUMN, "email": "email", "phone_number": "phone_number", "external_id": "external_id"}
# Rows waiting for their deletion request: 10,000 is under three hours of Klaviyo's pace and a few MB.
MAX_QUEUED = 10_000
# The connector's own pace (client.PACED_RATES: 97 % of Klaviyo's 60/min), for the ETA.
_STEADY = PACED_RATES["request_profile_deletion"][-1]
DELETIONS_PER_SECOND = _STEADY.limit / (_STEADY.interval / 1000)


def deletion_identifier(
    data: Mapping[str, Any], phones: PhoneRules = DEFAULT_PHONE_RULES
) -> Union[tuple[str, str], Rejection]:
    """The (key, value) a row is deleted by: the first identifier of DELETION_ORDER it carries.
    A phone number is read as on every surface (`default_phone_region`), so it matches the profile's."""
    for key, columns in DELETION_ORDER:
        present = {column: data[column] for column in columns if data.get(column) is not None}
        if not present:
            continue
        found = identifiers(present, accept_profile_id=True, phones=phones)
        if isinstance(found, Rejection):
            return found  # the identifier the order picks is invalid: reject, never fall back
        if key in found:
            return key, str(found[key])
    return Rejection(
        "missing_identifier",
        "record has no identifier: set one of klaviyo_profile_id, email, phone_e164 (or phone_number), external_id",
    )


def deletion_body(key: str, value: str) -> bytes:
    """A `data-privacy-deletion-job` naming exactly one identifier (`attributes` is required)."""
    profile: dict[str, Any] = {"type": "profile", "attributes": {}}
    if key == "id":
        profile["id"] = value
    else:
        profile["attributes"][key] = value
    return orjson.dumps({"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": profile}}}})


@dataclass(frozen=True)
class Deletion:
    """One row's erasure request: the row, and the identifier it is deleted by."""

    row: Entry
    key: str
    value: str


class DeletionSink(Sink):
    """Queues deletion rows and sends them one at a time, at Klaviyo's pace, from one worker."""

    def __init__(self, context: SinkContext, target: Optional[str] = None, list_id: Optional[str] = None) -> None:
        super().__init__(context, target, list_id)
        self.queue: deque[Deletion] = deque()  # oldest first: rows are queued in sequence order
        self.sending: list[Deletion] = []  # taken by the lane, not yet accepted
        self.changed = threading.Condition()
        self.lane: Optional[Future[None]] = None
        self.lane_active = False

    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        # `remove` changes nothing: every row of this surface is a request to erase.
        chosen = render_row(deletion_identifier, data, phones=self.context.phones)
        if isinstance(chosen, Rejection):
            self.report.rejected(row, chosen)
            return
        key, value = chosen
        self.report.tally(self._heading(row), f"by {DELETED_BY[key]}")
        if self.dry_run:
            self.report.request_sent("profile deletions")  # a dry run's summary says none was sent
            self.report.delivered(row.stream, "delete")
            return
        self._enqueue(Deletion(row, key, value))

    def _heading(self, row: Entry) -> str:
        return f"Profile deletions of stream '{row.stream}'"

    def _enqueue(self, deletion: Deletion) -> None:
        dispatcher = self.context.dispatcher
        with self.changed:
            while len(self.queue) >= MAX_QUEUED:
                if self.lane is not None and self.lane.done():
                    self.lane.result()  # the lane failed: raise its error here
                if dispatcher is not None:  # the lane stops early on these: raise them rather than wait
                    dispatcher.raise_errors()
                    dispatcher.stop.check()
                self.changed.wait(timeout=5.0)
            self.queue.append(deletion)
            start = not self.lane_active
            self.lane_active = True
        self._publish_backlog()
        if start:
            dispatcher = self.context.dispatcher
            if dispatcher is None:
                self._drain()
            else:
                self.lane = dispatcher.submit(self._drain)

    def _drain(self) -> None:
        """The lane: send queued deletions until the queue is empty (then a later row starts a new lane).

        It stops early once another request of the sync failed or SIGTERM came: the sync ends failed
        anyway, and hours of queued deletions must not stand between it and its report. What was not
        sent stays pending, so no state after it is echoed."""
        dispatcher = self.context.dispatcher
        while True:
            with self.changed:
                stopping = dispatcher is not None and (dispatcher.failure_seen or dispatcher.stop.requested)
                if not self.queue or stopping:
                    self.lane_active = False
                    self.changed.notify_all()
                    return
                work = [self.queue.popleft()]
                # External ids are looked up a hundred at a time: take the ones queued behind this one.
                while (
                    work[0].key == "external_id"
                    and self.queue
                    and self.queue[0].key == "external_id"
                    and len(work) < MAX_FILTER_VALUES
                ):
                    work.append(self.queue.popleft())
                self.sending = work
                self.changed.notify_all()
            self._send(work)
            with self.changed:
                self.sending = []
            self._publish_backlog()

    def _send(self, work: list[Deletion]) -> None:
        assert self.context.client is not None
        if work[0].key != "external_id":
            for deletion in work:
                self._delete(deletion, [(deletion.key, deletion.value)])
            return
        found = resolve(self.context.client, [{"external_id": d.value} for d in work])
        for deletion, profile_ids in zip(work, found):
            self._delete(deletion, [("id", profile_id) for profile_id in profile_ids])

    def _delete(self, deletion: Deletion, requests: list[tuple[str, str]]) -> None:
        """Send the row's deletion request(s); count the row once Klaviyo accepted all of them."""
        assert self.context.client is not None
        found = False
        for key, value in requests:
            try:
                self.context.client.request_profile_deletion(deletion_body(key, value))
            except KlaviyoApiError as exc:
                if exc.status == 404:  # no such profile (any more): nothing to erase
                    continue
                if exc.status == 400 and exc.errors and all((e.pointer or "").startswith("/data") for e in exc.errors):
                    detail = "; ".join(redact_detail(e.describe()) for e in exc.errors)
                    self.report.rejected(
                        deletion.row, Rejection("klaviyo_rejected", f"Klaviyo rejected the row: {detail}")
                    )
                    return
                raise
            self.report.request_sent("profile deletions")
            found = True
        if not found:
            self.report.tally(self._heading(deletion.row), "not in Klaviyo")
        self.report.delivered(deletion.row.stream, "delete")

    def _publish_backlog(self) -> None:
        self.report.backlog("profile deletions", len(self.queue) + len(self.sending), DELETIONS_PER_SECOND)

    def flush(self) -> None:
        """Nothing to hand over: every row is queued for the lane as it arrives."""

    def open_batches(self) -> tuple[BodyBatch, ...]:
        return ()

    def lowest_pending_seq(self) -> Optional[int]:
        with self.changed:
            waiting = [d.row.seq for d in self.sending] + ([self.queue[0].row.seq] if self.queue else [])
        return min(waiting) if waiting else None


# -- check ---------------------------------------------------------------------------------------
# A deletion request naming no profile: Klaviyo deletes "the profiles corresponding to one of" the
# identifiers, so with none there is nothing it could delete; it answers 400 once it authorized the
# key, 403 before that when the key lacks data-privacy:write.
_NOBODY = {"type": "profile", "attributes": {}}
PROBE_BODY = orjson.dumps({"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": _NOBODY}}}})


def probe_write_scope(client: KlaviyoClient) -> None:
    """Klaviyo's 403 when the key lacks data-privacy:write (see sinks.probe_scope)."""
    probe_scope(client.request_profile_deletion, PROBE_BODY)


def schema(target_field: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": True,
        "description": (
            "Each row asks Klaviyo to delete every profile matching one identifier, the first present of "
            "klaviyo_profile_id, email, phone_number, external_id (resolved to profile ids first). "
            "Irreversible; other columns are ignored."
        ),
        "properties": {
            PROFILE_ID_COLUMN: {**STRING, "description": "Identifier (first choice): Klaviyo profile id"},
            "email": {**STRING, "description": "Identifier (second choice): email address"},
            "phone_number": {**STRING, "description": "Identifier (third choice): phone number"},
            "phone_e164": {**STRING, "description": "Identifier: alias of phone_number"},
            "external_id": {**STRING, "description": "Identifier (last choice): your system's id, looked up first"},
        },
    }


SPEC = SurfaceSpec(
    surface=Surface.PROFILE_DELETIONS,
    summary="deletes profiles (GDPR / CCPA erasure requests)",
    modes=UPSERT_MODES + (DestinationSyncMode.soft_delete,),
    matching_keys=(PROFILE_ID_COLUMN, "email", "phone_number", "external_id"),
    scopes=("data-privacy:write", "profiles:read"),
    needs_target=False,
    removes=True,  # a deletion row (CDC, soft_delete) is carried out: it deletes, like every row here
    mirrors=False,
    schema=schema,
    make_sink=DeletionSink,
    probe=probe_write_scope,
    explicit_only=True,
    replace_note=(
        "A replace (a full refresh overwrite, or a Refresh or Clear of the stream in Airbyte) deletes the profiles of "
        "its rows like any sync; nothing else is deleted."
    ),
)
