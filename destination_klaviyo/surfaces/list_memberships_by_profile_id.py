"""`list_memberships_by_profile_id`: add and remove list members by Klaviyo profile id.

For rows that carry Klaviyo's profile id: `POST` / `DELETE /api/lists/{id}/relationships/profiles`
with up to 1,000 `{"type": "profile", "id": ...}` per request (204 = done). A deletion row
(`_ab_cdc_deleted_at`, or the stream in `soft_delete`) removes the profile from the row's list, and
a replace (`overwrite`) mirrors the list: rows are added, then members absent from the sync removed
(mirror.py).
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import orjson
from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.identifiers import PROFILE_ID_COLUMN, identifiers, missing_identifier
from destination_klaviyo.identity import Identities
from destination_klaviyo.rejections import Rejection, Rendered
from destination_klaviyo.sinks import Pointers, Request, Sink, SinkContext, accepted
from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, Surface, SurfaceSpec
from destination_klaviyo.totality import invalid_text, render_row

MAX_PROFILES_PER_RELATIONSHIP_REQUEST = 1_000
MAX_RELATIONSHIP_BODY_BYTES = 5 * 1000 * 1000
# A reference is `{"type":"profile","id":"..."}` inside `{"data":[...]}`: an id longer than this
# could not be sent even alone.
MAX_PROFILE_ID_CHARS = MAX_RELATIONSHIP_BODY_BYTES - len(b'{"data":[{"type":"profile","id":""}]}')


def new_relationship_batch() -> BodyBatch:
    """Body of POST/DELETE /api/lists/{id}/relationships/profiles: `{"data": [profile refs]}`."""
    return BodyBatch(b'{"data":[', b"]}", MAX_PROFILES_PER_RELATIONSHIP_REQUEST, MAX_RELATIONSHIP_BODY_BYTES)


def render_profile_reference(data: Mapping[str, Any]) -> Rendered:
    """Render a row as `{"type": "profile", "id": ...}`."""
    found = identifiers({PROFILE_ID_COLUMN: data.get(PROFILE_ID_COLUMN)}, accept_profile_id=True)
    if isinstance(found, Rejection):
        return found
    if "id" not in found:
        return missing_identifier(
            data,
            (PROFILE_ID_COLUMN,),
            f"record has no '{PROFILE_ID_COLUMN}': list_memberships_by_profile_id matches profiles only by Klaviyo profile id",
        )
    profile_id = found["id"]
    if len(profile_id) > MAX_PROFILE_ID_CHARS:  # before any encoding: a huge value is not walked twice
        return Rejection(
            "invalid_value",
            f"column '{PROFILE_ID_COLUMN}' is longer than one request to Klaviyo can carry "
            f"({MAX_RELATIONSHIP_BODY_BYTES} bytes), so it cannot be a profile id",
        )
    return invalid_text(PROFILE_ID_COLUMN, profile_id) or orjson.dumps({"type": "profile", "id": profile_id})


@dataclass
class Pending:
    """One direction (adds or removes) of one list: the open batch and the requests already sent."""

    request: Request
    batch: BodyBatch = field(default_factory=new_relationship_batch)
    ids: list[str] = field(default_factory=list)  # profile id of each item of `batch`
    queued: set[str] = field(default_factory=set)  # the same ids, for lookups
    # Rows whose effect an item of `batch` carries: a repeat of the same profile in this direction,
    # or an opposite row it superseded. They are counted, and release states, with that item.
    riders: dict[str, list[Entry]] = field(default_factory=dict)
    sent: list[tuple[set[str], Future[None]]] = field(default_factory=list)

    def take_superseded(self, profile_id: str) -> list[Entry]:
        """Drop the open item of `profile_id`; return its row and riders, now carried by the newer row."""
        index = self.ids.index(profile_id)
        carried = self.riders.pop(profile_id, []) + [self.batch.entries[index]]
        self.batch = self.batch.without({index})
        del self.ids[index]
        self.queued.discard(profile_id)
        return carried


class RelationshipSink(Sink):
    """Adds and removes by profile id for one list; each profile's rows take effect in their order.

    Adds and removes go in separate requests. While a profile waits in an open batch, a later row
    for it replaces that item (only its last action is sent, so CDC-heavy input does not double the
    requests); when the earlier row was already sent, the later one waits until Klaviyo accepted it.
    """

    pointers = Pointers(re.compile(r"^/data/(\d+)(/.*)?$"), re.compile(r"^/data/?$"))

    def __init__(self, context: SinkContext, target: Optional[str], list_id: Optional[str]) -> None:
        super().__init__(context, target, list_id)
        self.adds = Pending(Request("list additions", "add", lambda body: self._send(body, remove=False)))
        self.removes = Pending(Request("list removals", "remove", lambda body: self._send(body, remove=True)))
        # The profiles this sync put in the list, for a mirror (kept only when the sync mirrors).
        self.added = Identities() if context.mirrors else None

    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        rendered = render_row(render_profile_reference, data)
        if isinstance(rendered, Rejection):
            self.report.rejected(row, rendered)
            return
        profile_id = str(data[PROFILE_ID_COLUMN])  # validated by render_profile_reference
        mine, other = (self.removes, self.adds) if remove else (self.adds, self.removes)
        if self.added is not None:
            if remove:
                self.added.discard({"id": profile_id})
            else:
                self.added.add({"id": profile_id})
        if profile_id in mine.queued:
            mine.riders.setdefault(profile_id, []).append(row)  # the same action again
            return
        carried = other.take_superseded(profile_id) if profile_id in other.queued else []
        for ids, future in [(ids, f) for ids, f in other.sent if not f.done()]:
            if profile_id in ids:
                future.result()  # the earlier opposite row was sent: it must be applied first
        if not mine.batch.fits(rendered):
            self._flush(mine)
        mine.batch.add(row, rendered)
        mine.ids.append(profile_id)
        mine.queued.add(profile_id)
        if carried:
            mine.riders[profile_id] = carried

    def _flush(self, pending: Pending) -> None:
        if not len(pending.batch):
            return
        batch, ids, riders = pending.batch, pending.queued, [e for rows in pending.riders.values() for e in rows]
        pending.batch, pending.ids, pending.queued, pending.riders = new_relationship_batch(), [], set(), {}
        pending.sent = [(sent_ids, f) for sent_ids, f in pending.sent if not accepted(f)]
        pending.sent.append((ids, self.submit(batch, pending.request, riders)))

    def _send(self, body: bytes, *, remove: bool) -> str:
        assert self.context.client is not None and self.list_id is not None
        self.context.client.edit_list_members(self.list_id, body, remove=remove)
        return f"list {'removals' if remove else 'additions'} for list {self.list_id}"

    def flush(self) -> None:
        # Order between the two only matters for a profile in both, and `add` never lets that happen.
        self._flush(self.adds)
        self._flush(self.removes)

    def open_batches(self) -> tuple[BodyBatch, ...]:
        return (self.adds.batch, self.removes.batch)

    def lowest_pending_seq(self) -> Optional[int]:
        riders = [e.seq for p in (self.adds, self.removes) for rows in p.riders.values() for e in rows]
        lowest = super().lowest_pending_seq()
        return min(riders + ([lowest] if lowest is not None else [])) if riders else lowest

    def members_added(self) -> Identities:
        return Identities(set(self.added.keys)) if self.added is not None else Identities()


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
