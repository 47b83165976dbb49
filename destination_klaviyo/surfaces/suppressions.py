"""`suppressions`: suppress email addresses, and lift the suppressions this surface sets.

Klaviyo's spec: Bulk Suppress Profiles (`POST /api/profile-suppression-bulk-create-jobs`) and Bulk
Unsuppress Profiles (`POST /api/profile-suppression-bulk-delete-jobs`) take at most 100 email
addresses per request and answer 202 with a job. "Suppressed profiles cannot receive email
marketing, independent of their consent status"; a missing profile is created and suppressed.
Unsuppressing "only removes suppressions with reason USER_SUPPRESSED": unsubscribes, hard bounces
and invalid addresses stay. Email is the only identifier. Both endpoints can also act on every
member of a list or segment; this surface never uses that (a row names one address).

A row suppresses its `email`; a deletion row (`_ab_cdc_deleted_at`, or the stream in `soft_delete`)
unsuppresses it. Suppressing and unsuppressing are idempotent, so both are retried like imports.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence, Union

import orjson
from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.identifiers import identifiers
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.sinks import Pointers, Request, SinkContext
from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, Surface, SurfaceSpec
from destination_klaviyo.surfaces.consent import ConsentItem, Lane, LaneSink, person_keys
from destination_klaviyo.totality import render_row

MAX_EMAILS_PER_SUPPRESSION_JOB = 100  # "Email address per request limit: 100"
MAX_SUPPRESSION_BODY_BYTES = 5 * 1000 * 1000  # no limit in the spec; 100 addresses are far below
SUMMARY_SUBJECT = "Suppressions"


def render_suppression_item(data: Mapping[str, Any]) -> Union[ConsentItem, Rejection]:
    """`{"type": "profile", "attributes": {"email": ...}}`, the only shape these jobs accept."""
    found = identifiers({"email": data.get("email")}, accept_profile_id=False)
    if isinstance(found, Rejection):
        return found
    if "email" not in found:
        return Rejection("missing_identifier", "suppressions work on email addresses only: the row has no 'email'")
    email = found["email"]
    return ConsentItem(orjson.dumps({"type": "profile", "attributes": {"email": email}}), person_keys(email))


def new_suppression_batch(remove: bool) -> BodyBatch:
    kind = b"profile-suppression-bulk-delete-job" if remove else b"profile-suppression-bulk-create-job"
    prefix = b'{"data":{"type":"' + kind + b'","attributes":{"profiles":{"data":['
    return BodyBatch(prefix, b"]}}}}", MAX_EMAILS_PER_SUPPRESSION_JOB, MAX_SUPPRESSION_BODY_BYTES)


class SuppressionSink(LaneSink):
    """Suppress and unsuppress jobs; an address's rows take effect in their order."""

    pointers = Pointers(
        re.compile(r"^/data/attributes/profiles/data/(\d+)(/.*)?$"),
        re.compile(r"^/data/attributes/profiles(/data)?/?$"),
    )

    def __init__(self, context: SinkContext, target: Optional[str] = None, list_id: Optional[str] = None) -> None:
        super().__init__(context, None, None)
        self.suppresses = Lane(
            Request("suppression jobs", "suppress", lambda body: self._send(body, remove=False)),
            lambda: new_suppression_batch(remove=False),
        )
        self.unsuppresses = Lane(
            Request("unsuppression jobs", "unsuppress", lambda body: self._send(body, remove=True)),
            lambda: new_suppression_batch(remove=True),
        )
        self.lanes = (self.suppresses, self.unsuppresses)

    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        rendered = render_row(render_suppression_item, data)
        if isinstance(rendered, Rejection):
            self.report.rejected(row, rendered)
            return
        keys = rendered.keys
        lane, other = (self.unsuppresses, self.suppresses) if remove else (self.suppresses, self.unsuppresses)
        self.queue(row, rendered.item, keys, lane, (other,))

    def _send(self, body: bytes, *, remove: bool) -> str:
        assert self.context.client is not None
        if remove:
            return f"unsuppression job {self.context.client.bulk_unsuppress_profiles(body)}"
        return f"suppression job {self.context.client.bulk_suppress_profiles(body)}"

    def _count_delivered(self, entries: Sequence[Entry], action: str) -> None:
        super()._count_delivered(entries, action)
        self.report.tally(SUMMARY_SUBJECT, action, len(entries))


def schema(target_field: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["email"],
        "additionalProperties": True,
        "description": "A row suppresses its email address; a deletion row unsuppresses it. Other columns are ignored.",
        "properties": {"email": {**STRING, "description": "The email address to suppress (or unsuppress)"}},
    }


SPEC = SurfaceSpec(
    surface=Surface.SUPPRESSIONS,
    summary="suppresses email addresses; deletion rows unsuppress them",
    modes=UPSERT_MODES + (DestinationSyncMode.soft_delete,),
    matching_keys=("email",),
    scopes=("profiles:write", "subscriptions:write"),
    needs_target=False,
    removes=True,
    mirrors=False,
    schema=schema,
    make_sink=SuppressionSink,
    changes_consent=True,
    replace_note=(
        "A replace (a full refresh overwrite, or a Refresh or Clear of the stream in Airbyte) writes its rows, and "
        "nobody absent from this sync is unsubscribed or unsuppressed: consent changes only for the rows the stream sends."
    ),
)
