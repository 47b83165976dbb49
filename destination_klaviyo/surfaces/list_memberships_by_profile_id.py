"""`list_memberships_by_profile_id`: add and remove list members by Klaviyo profile id.

The surface for authoritative membership: `POST` / `DELETE /api/lists/{id}/relationships/profiles`
with up to 1,000 `{"type": "profile", "id": ...}` per request (204 = done). A deletion row
(`_ab_cdc_deleted_at`, or the stream in `soft_delete`) removes the profile from the row's list, and
a replace (`overwrite`) mirrors the list: rows are added, then members absent from the sync removed
(mirror.py).
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from typing import Any, Callable, Mapping, Optional

import orjson
from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.rendering import PROFILE_ID_COLUMN, Rejection, Rendered, identifiers
from destination_klaviyo.sinks import Pointers, Request, Sink, SinkContext
from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, Surface, SurfaceSpec

MAX_PROFILES_PER_RELATIONSHIP_REQUEST = 1_000
MAX_RELATIONSHIP_BODY_BYTES = 5 * 1000 * 1000


def new_relationship_batch() -> BodyBatch:
    """Body of POST/DELETE /api/lists/{id}/relationships/profiles: `{"data": [profile refs]}`."""
    return BodyBatch(b'{"data":[', b"]}", MAX_PROFILES_PER_RELATIONSHIP_REQUEST, MAX_RELATIONSHIP_BODY_BYTES)


def render_profile_reference(data: Mapping[str, Any]) -> Rendered:
    """Render a row as `{"type": "profile", "id": ...}`."""
    found = identifiers({PROFILE_ID_COLUMN: data.get(PROFILE_ID_COLUMN)}, accept_profile_id=True)
    if isinstance(found, Rejection):
        return found
    if "id" not in found:
        return Rejection(
            "missing_identifier",
            f"record has no '{PROFILE_ID_COLUMN}': list_memberships_by_profile_id matches profiles only by Klaviyo profile id",
        )
    return orjson.dumps({"type": "profile", "id": found["id"]})


class RelationshipSink(Sink):
    """Adds and removes by profile id for one list.

    Adds and removes go in separate requests. When a profile is about to be queued in one direction
    while it waits (queued or in flight) in the other, that other batch is sent and awaited first, so
    a profile's rows take effect in their order even with requests running concurrently.
    """

    pointers = Pointers(re.compile(r"^/data/(\d+)(/.*)?$"), re.compile(r"^/data/?$"))

    def __init__(self, context: SinkContext, target: Optional[str], list_id: Optional[str]) -> None:
        super().__init__(context, target, list_id)
        self.adds = new_relationship_batch()
        self.removes = new_relationship_batch()
        self.queued_adds: set[str] = set()
        self.queued_removes: set[str] = set()
        # Requests handed to the dispatcher, with the profile ids they carry.
        self.sent_adds: list[tuple[set[str], Future[None]]] = []
        self.sent_removes: list[tuple[set[str], Future[None]]] = []
        self.added_ids: set[str] = set()  # every profile this sync put in the list (for mirror)
        self.add_request = Request("list additions", "add", lambda body: self._send(body, remove=False))
        self.remove_request = Request("list removals", "remove", lambda body: self._send(body, remove=True))

    def add(self, seq: int, stream: str, ordinal: int, data: Mapping[str, Any], *, remove: bool = False) -> None:
        rendered = render_profile_reference(data)
        if isinstance(rendered, Rejection):
            self.report.rejected(stream, ordinal, rendered)
            return
        profile_id = str(data[PROFILE_ID_COLUMN])  # validated by render_profile_reference
        if remove:
            self._wait_for_other_direction(profile_id, self.queued_adds, self.sent_adds, self._flush_adds)
            if not self.removes.fits(rendered):
                self._flush_removes()
            self.removes.add(Entry(seq, stream, ordinal), rendered)
            self.queued_removes.add(profile_id)
            self.added_ids.discard(profile_id)
        else:
            self._wait_for_other_direction(profile_id, self.queued_removes, self.sent_removes, self._flush_removes)
            if not self.adds.fits(rendered):
                self._flush_adds()
            self.adds.add(Entry(seq, stream, ordinal), rendered)
            self.queued_adds.add(profile_id)
            self.added_ids.add(profile_id)

    def _wait_for_other_direction(
        self, profile_id: str, queued: set[str], sent: list[tuple[set[str], Future[None]]], flush: Callable[[], None]
    ) -> None:
        """A profile waiting in the other direction goes out, and is accepted, before this row."""
        if profile_id in queued:
            flush()
        sent[:] = [(ids, f) for ids, f in sent if not f.done() or f.exception() is not None]
        for ids, future in sent:
            if profile_id in ids:
                future.result()

    def _flush_adds(self) -> None:
        if len(self.adds):
            batch, ids = self.adds, self.queued_adds
            self.adds, self.queued_adds = new_relationship_batch(), set()
            self.sent_adds.append((ids, self.submit(batch, self.add_request)))

    def _flush_removes(self) -> None:
        if len(self.removes):
            batch, ids = self.removes, self.queued_removes
            self.removes, self.queued_removes = new_relationship_batch(), set()
            self.sent_removes.append((ids, self.submit(batch, self.remove_request)))

    def _send(self, body: bytes, *, remove: bool) -> str:
        assert self.context.client is not None and self.list_id is not None
        self.context.client.edit_list_members(self.list_id, body, remove=remove)
        return f"list {'removals' if remove else 'additions'} for list {self.list_id}"

    def flush(self) -> None:
        # Order between the two only matters for a profile in both, and `add` never lets that happen.
        self._flush_adds()
        self._flush_removes()

    def open_batches(self) -> tuple[BodyBatch, ...]:
        return (self.adds, self.removes)

    def members_added(self) -> set[str]:
        return set(self.added_ids)


def schema(target_field: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [PROFILE_ID_COLUMN],
        "additionalProperties": True,
        "properties": {
            PROFILE_ID_COLUMN: {"type": "string", "description": "Klaviyo profile id"},
            target_field: {**STRING, "description": "Target list name (the `target_field` column)"},
        },
    }


SPEC = SurfaceSpec(
    surface=Surface.LIST_MEMBERSHIPS_BY_PROFILE_ID,
    summary="adds and removes list members by Klaviyo profile id",
    modes=UPSERT_MODES + (DestinationSyncMode.soft_delete, DestinationSyncMode.overwrite),
    matching_keys=(PROFILE_ID_COLUMN,),
    scopes=("lists:write", "profiles:write"),
    needs_target=True,
    removes=True,
    mirrors=True,
    schema=schema,
    make_sink=RelationshipSink,
)
