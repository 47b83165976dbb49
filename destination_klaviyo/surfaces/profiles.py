"""`profiles`: upsert profiles through Klaviyo's Bulk Profile Import jobs.

A job holds at most 10,000 profiles and 5 MB of body (spec: `bulk_import_profiles`); 202 means
Klaviyo accepted the job, which it then runs asynchronously. A row must carry an identifier
(email, phone number or external id); its other columns become attributes and custom properties
(rendering.py). `list_memberships` sends the same jobs with a list relationship.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping, Optional

import orjson

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.identifiers import (
    DEFAULT_PHONE_RULES,
    IDENTIFIER_COLUMNS,
    PROFILE_ID_COLUMN,
    PhoneRules,
    identifiers,
    missing_identifier,
)
from destination_klaviyo.jobs import verify_jobs
from destination_klaviyo.rejections import Amended, Rejection, Rendered
from destination_klaviyo.rendering import LOCATION_KEYS, profile_attributes
from destination_klaviyo.sinks import Pointers, Request, Sink, SinkContext
from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, Surface, SurfaceSpec
from destination_klaviyo.totality import serialize, unrenderable

logger = logging.getLogger("airbyte")

MAX_PROFILES_PER_JOB = 10_000
# Klaviyo documents a "5MB" payload limit; we read it as 5,000,000 bytes, the stricter reading.
MAX_JOB_BODY_BYTES = 5 * 1000 * 1000
# Klaviyo documents "100KB" per profile; we read it as decimal kilobytes, the stricter reading.
MAX_PROFILE_BYTES = 100 * 1000

MATCHING_KEYS = ("email", "phone_number", "external_id")
SCOPES = ("lists:write", "profiles:write")


def render_profile(
    data: Mapping[str, Any],
    accept_profile_id: bool = False,
    excluded_columns: tuple[str, ...] = (),
    phones: PhoneRules = DEFAULT_PHONE_RULES,
) -> Rendered:
    """Render one record as a serialized JSON:API `profile` resource for a bulk import job.

    `accept_profile_id` is true on `list_memberships`, where `klaviyo_profile_id` identifies the
    profile as the resource `id`. `excluded_columns` are columns that steer the connector (the
    target column) and are therefore not profile properties. A row sent without its unusable phone
    number comes back `Amended`, for the sink to report.
    """
    found = identifiers(data, accept_profile_id, phones)
    if isinstance(found, Rejection):
        return found
    if not found:
        accepted = "email, phone_e164 (or phone_number), external_id"
        if accept_profile_id:
            accepted += ", klaviyo_profile_id"
        return missing_identifier(
            data,
            IDENTIFIER_COLUMNS + (PROFILE_ID_COLUMN,) if accept_profile_id else IDENTIFIER_COLUMNS,
            f"record has no identifier: set at least one of {accepted}",
        )
    resource_id = found.pop("id", None)
    attributes = profile_attributes(data, found, excluded_columns)
    if isinstance(attributes, Rejection):
        return attributes
    resource: dict[str, Any] = {"type": "profile", "attributes": attributes}
    if resource_id is not None:
        resource["id"] = resource_id
    body = serialize(resource, MAX_PROFILE_BYTES, "profile")
    if found.dropped is not None and isinstance(body, bytes):
        return Amended(body, found.dropped)
    return body


def job_envelope(list_id: Optional[str]) -> tuple[bytes, bytes]:
    """Prefix and suffix of a `profile-bulk-import-job` body around the comma-joined profiles."""
    prefix = b'{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":['
    suffix = b"]}}"
    if list_id is not None:
        relationships = orjson.dumps({"lists": {"data": [{"type": "list", "id": list_id}]}})
        suffix += b',"relationships":' + relationships
    suffix += b"}}"
    return prefix, suffix


def new_bulk_job_batch(list_id: Optional[str] = None) -> BodyBatch:
    prefix, suffix = job_envelope(list_id)
    return BodyBatch(prefix, suffix, MAX_PROFILES_PER_JOB, MAX_JOB_BODY_BYTES)


class BulkImportSink(Sink):
    """Profiles for one bulk import job stream: no list (`profiles`) or one list (`list_memberships`)."""

    pointers = Pointers(
        re.compile(r"^/data/attributes/profiles/data/(\d+)(/.*)?$"),
        re.compile(r"^/data/attributes/profiles(/data)?/?$"),
    )

    def __init__(
        self,
        context: SinkContext,
        target: Optional[str] = None,
        list_id: Optional[str] = None,
        *,
        accept_profile_id: bool = False,
        excluded_columns: tuple[str, ...] = (),
    ) -> None:
        super().__init__(context, target, list_id)
        self.accept_profile_id = accept_profile_id
        self.excluded_columns = excluded_columns
        self.job_ids: list[str] = []  # accepted jobs, for `finish` with verify_bulk_jobs
        self.batch = new_bulk_job_batch(list_id)
        self.request = Request("bulk import jobs", "upsert", self._send)

    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        assert not remove, "bulk import surfaces never remove; the writer refuses deletion rows for them"
        rendered = self.render(row, data)
        if rendered is None:
            return
        if not self.batch.offer(row, rendered):
            self.flush()
            self.batch.add(row, rendered)

    def render(self, row: Entry, data: Mapping[str, Any]) -> Optional[bytes]:
        """The row as a profile of the job, or None when it is rejected (reported here, as is a
        phone number left out of it)."""
        # As `render_row`, written out: this is the busiest call of a sync, and positional arguments
        # to a plain function cost less than a wrapper and keywords.
        try:
            rendered = render_profile(data, self.accept_profile_id, self.excluded_columns, self.context.phones)
        except Exception as exc:  # noqa: BLE001 - a bug or an input nobody foresaw: that row, not the sync
            rendered = unrenderable(exc)
        if rendered.__class__ is bytes:
            return rendered  # type: ignore[return-value]
        if isinstance(rendered, Rejection):
            self.report.rejected(row, rendered)
            return None
        assert isinstance(rendered, Amended)
        self.report.omitted(row, rendered.omission)
        return rendered.body

    def flush(self) -> None:
        if len(self.batch):
            batch, self.batch = self.batch, new_bulk_job_batch(self.list_id)
            self.submit(batch, self.request)

    def open_batches(self) -> tuple[BodyBatch, ...]:
        return (self.batch,)

    def _send(self, body: bytes) -> str:
        assert self.context.client is not None
        job_id = self.context.client.create_bulk_import_job(body)
        self.job_ids.append(job_id)
        return f"bulk import job {job_id}"

    def finish(self) -> None:
        if self.context.verify_bulk_jobs and not self.dry_run and self.job_ids:
            assert self.context.client is not None
            verify_jobs(self.context.client, self.report, self.job_ids)


def profile_schema(with_profile_id: bool = False) -> dict[str, Any]:
    """The columns a profile row understands; others become custom properties."""
    properties: dict[str, Any] = {
        "email": {**STRING, "description": "Identifier: email address"},
        "phone_number": {
            **STRING,
            "description": "Identifier: phone number in E.164 format (national formats too, with `default_phone_region`)",
        },
        "phone_e164": {**STRING, "description": "Identifier: alias of phone_number"},
        "external_id": {**STRING, "description": "Identifier: your system's id for the person"},
    }
    if with_profile_id:
        properties["klaviyo_profile_id"] = {**STRING, "description": "Identifier: Klaviyo profile id"}
    for name in ("first_name", "last_name", "organization", "locale", "title", "image", "anonymous_id"):
        properties[name] = dict(STRING)
    properties["location"] = {
        "type": ["null", "object"],
        "properties": {key: {"type": ["null", "string", "number"]} for key in sorted(LOCATION_KEYS)},
        "additionalProperties": False,
    }
    for key in sorted(LOCATION_KEYS):
        properties[key] = {"type": ["null", "string", "number"], "description": f"Goes into location.{key}"}
    properties["properties"] = {"type": ["null", "object"], "description": "Custom profile properties"}
    return {
        "type": "object",
        "additionalProperties": True,
        "description": "Columns not listed here become custom profile properties.",
        "properties": properties,
    }


SPEC = SurfaceSpec(
    surface=Surface.PROFILES,
    summary="upserts profiles",
    modes=UPSERT_MODES,
    matching_keys=MATCHING_KEYS,
    scopes=SCOPES,
    needs_target=False,
    removes=False,
    mirrors=False,
    schema=lambda target_field: profile_schema(),
    make_sink=lambda context, target, list_id: BulkImportSink(context),
)
