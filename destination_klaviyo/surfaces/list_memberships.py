"""`list_memberships`: upsert profiles into the row's target list, and remove people from it, by
email, phone number, external id or profile id.

Adds are the same Bulk Profile Import jobs as `profiles`, with `relationships.lists` set to the
target's list, so there is one job stream per list. `klaviyo_profile_id` is accepted as an
identifier (the profile resource `id`), and the target column steers the row instead of becoming a
property.

A deletion row (`_ab_cdc_deleted_at` set, or the stream in `soft_delete`) removes its person from
the list. Klaviyo removes list members by profile id only (`DELETE /api/lists/{id}/relationships/
profiles`, 1,000 a request), so removal rows are gathered (up to 1,000), their identifiers resolved
to profile ids (identity.py: `GET /api/profiles`, 100 values a lookup, the bulk-import match order)
and the profiles found removed. A person not in Klaviyo is counted (`not in Klaviyo`) and accepted:
they are not in the list, which is what the row asks for.

Order per person. Imports are processed by Klaviyo after it accepted them, so a removal must not
reach Klaviyo before an earlier import of the same person is processed, or the import would add
them back. A removal therefore waits until every import job this sink sent before it is finished
(`jobs.wait_for_jobs`; a bounded wait, then the sync fails transiently rather than remove out of
order). The other way round, an add of a person whose removal is pending is sent only once that
removal is done. Rows are recognised as the same person by a shared identifier value (the usual
case: a CDC delete carries the key columns of its insert); adds are tracked this way only once the
sink has seen a removal, so a stream of adds alone pays nothing for it.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import orjson
from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.client import KlaviyoApiError
from destination_klaviyo.errors import ImportsPending, MissingList, is_missing_list
from destination_klaviyo.identifiers import IDENTIFIER_COLUMNS, PROFILE_ID_COLUMN, identifiers, missing_identifier
from destination_klaviyo.identity import Identities, IdentityKey, identity_keys, resolve
from destination_klaviyo.jobs import MAX_WAIT_SECONDS, wait_for_jobs
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.sinks import Request, SinkContext
from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, Surface, SurfaceSpec
from destination_klaviyo.surfaces.list_memberships_by_profile_id import MAX_PROFILES_PER_RELATIONSHIP_REQUEST
from destination_klaviyo.surfaces.profiles import (
    MATCHING_KEYS,
    SCOPES,
    BulkImportSink,
    new_bulk_job_batch,
    profile_schema,
)
from destination_klaviyo.totality import render_row

# Removal rows resolved and removed together: one DELETE request's worth when each row is one profile.
MAX_REMOVAL_ROWS = MAX_PROFILES_PER_RELATIONSHIP_REQUEST
MAX_REMOVAL_BYTES = 5 * 1000 * 1000  # never reached by 1,000 rows of identifiers; BodyBatch wants a bound


def new_removal_batch() -> BodyBatch:
    """Removal rows waiting to be resolved: a JSON array of each row's identifiers (not sent as is)."""
    return BodyBatch(b"[", b"]", MAX_REMOVAL_ROWS, MAX_REMOVAL_BYTES)


@dataclass
class ImportTicket:
    """One import batch handed to a worker, and the Klaviyo jobs it became (a split batch makes several)."""

    future: Optional[Future[None]] = None
    job_ids: list[str] = field(default_factory=list)


class ListMembershipSink(BulkImportSink):
    """One list: profiles imported into it by bulk import jobs, people removed from it by identifier."""

    def __init__(self, context: SinkContext, target: Optional[str], list_id: Optional[str]) -> None:
        super().__init__(context, target, list_id, accept_profile_id=True, excluded_columns=(context.target_field,))
        self.removals = new_removal_batch()
        self.removal_keys: set[IdentityKey] = set()  # people in `removals`
        self.removals_sent: list[tuple[set[IdentityKey], Future[None]]] = []  # removals not known done
        self.removing = False  # a removal was seen: from now on, adds record who they are
        self.import_keys: set[IdentityKey] = set()  # people in the open import batch (once removing)
        self.import_after: list[Future[None]] = []  # removals the open import batch must follow
        self.tickets: list[ImportTicket] = []  # imports sent and not known finished at Klaviyo
        self.finished_jobs: set[str] = set()  # import jobs Klaviyo is known to have finished
        # The people this sync put in the list, for a mirror (kept only when the sync mirrors).
        self.kept = Identities() if context.mirrors else None

    # -- rows -------------------------------------------------------------------------------------
    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        if remove:
            self._add_removal(row, data)
            return
        rendered = self.render(row, data)
        if rendered is None:
            return
        if not self.batch.fits(rendered):
            self._flush_imports()
        if self.removing or self.kept is not None:
            found = identifiers(data, accept_profile_id=True, phones=self.context.phones)
            assert not isinstance(found, Rejection)  # render accepted the same identifiers
            if self.kept is not None:
                self.kept.add(found)
        if self.removing:
            keys = set(identity_keys(found))
            if keys & self.removal_keys:
                self._flush_removals()  # this person's removal goes first, then this add
            for people, future in self.removals_sent:
                if keys & people and not future.done() and future not in self.import_after:
                    self.import_after.append(future)
            self.import_keys |= keys
        self.batch.add(row, rendered)

    def _add_removal(self, row: Entry, data: Mapping[str, Any]) -> None:
        found = render_row(identifiers, data, accept_profile_id=True, phones=self.context.phones)
        if isinstance(found, Rejection):
            self.report.rejected(row, found)
            return
        if not found:
            self.report.rejected(
                row,
                missing_identifier(
                    data,
                    IDENTIFIER_COLUMNS + (PROFILE_ID_COLUMN,),
                    "record has no identifier: set at least one of email, phone_e164 (or phone_number), "
                    "external_id, klaviyo_profile_id",
                ),
            )
            return
        if found.dropped is not None:
            self.report.omitted(row, found.dropped)
        if self.kept is not None:
            self.kept.discard(found)
        keys = set(identity_keys(found))
        if not self.removing:
            self.removing = True
            self._flush_imports()  # adds before the first removal were not tracked: all go first
        elif keys & self.import_keys:
            self._flush_imports()  # this person's import goes first; the removal waits for it
        item = orjson.dumps(found)
        if not self.removals.fits(item):
            self._flush_removals()
        self.removals.add(row, item)
        self.removal_keys |= keys

    # -- sending ----------------------------------------------------------------------------------
    def flush(self) -> None:
        # Open removals and open imports never share a person (add and _add_removal see to it).
        self._flush_removals()
        self._flush_imports()

    def open_batches(self) -> tuple[BodyBatch, ...]:
        return (self.batch, self.removals)

    def _flush_imports(self) -> None:
        if not len(self.batch):
            return
        batch, self.batch = self.batch, new_bulk_job_batch(self.list_id)
        after, self.import_after, self.import_keys = self.import_after, [], set()
        ticket = ImportTicket()
        request = Request("bulk import jobs", "upsert", lambda body: self._send_import(body, ticket))
        ticket.future = self.submit(batch, request, after=after)
        self.tickets.append(ticket)

    def _send_import(self, body: bytes, ticket: ImportTicket) -> str:
        assert self.context.client is not None
        job_id = self.context.client.create_bulk_import_job(body)
        ticket.job_ids.append(job_id)
        self.job_ids.append(job_id)
        return f"bulk import job {job_id}"

    def _flush_removals(self) -> None:
        if not len(self.removals):
            return
        batch, self.removals = self.removals, new_removal_batch()
        people, self.removal_keys = self.removal_keys, set()
        self.tickets = [t for t in self.tickets if not self._ticket_finished(t)]
        earlier = list(self.tickets)
        first = batch.first_seq()
        assert first is not None
        future = self.run(first, lambda: self._remove(batch, earlier))
        self.removals_sent = [(p, f) for p, f in self.removals_sent if not f.done() or f.exception() is not None]
        self.removals_sent.append((people, future))

    def members_added(self) -> Identities:
        return Identities(set(self.kept.keys)) if self.kept is not None else Identities()

    def unfinished_imports(self, max_wait: float) -> list[str]:
        if self.dry_run or not self.job_ids:
            return []
        assert self.context.client is not None
        return wait_for_jobs(self.context.client, list(self.job_ids), self.finished_jobs, max_wait)

    def _ticket_finished(self, ticket: ImportTicket) -> bool:
        future = ticket.future
        return (
            future is not None
            and future.done()
            and future.exception() is None
            and all(job_id in self.finished_jobs for job_id in ticket.job_ids)
        )

    def _remove(self, batch: BodyBatch, earlier: list[ImportTicket]) -> None:
        """On a worker: wait for the earlier imports, resolve the rows to profile ids, remove those."""
        if self.dry_run:
            self.report.request_sent("list removals")  # a dry run's summary says none was sent
            self._count_delivered(batch.entries, "remove")
            return
        client = self.context.client
        assert client is not None and self.list_id is not None
        for ticket in earlier:
            assert ticket.future is not None
            ticket.future.result()  # a failed import fails this too
        job_ids = [job_id for ticket in earlier for job_id in ticket.job_ids]
        still = wait_for_jobs(client, job_ids, self.finished_jobs, MAX_WAIT_SECONDS)
        if still:
            raise ImportsPending(still, MAX_WAIT_SECONDS)
        found = resolve(client, orjson.loads(batch.body()))
        profile_ids = list(dict.fromkeys(profile_id for ids in found for profile_id in ids))
        for start in range(0, len(profile_ids), MAX_PROFILES_PER_RELATIONSHIP_REQUEST):
            chunk = profile_ids[start : start + MAX_PROFILES_PER_RELATIONSHIP_REQUEST]
            body = orjson.dumps({"data": [{"type": "profile", "id": profile_id} for profile_id in chunk]})
            try:
                client.edit_list_members(self.list_id, body, remove=True)
            except KlaviyoApiError as exc:
                if is_missing_list(exc):
                    raise MissingList(self.list_id, self.target) from None
                raise
            self.report.request_sent("list removals")
        self._count_delivered([e for e, ids in zip(batch.entries, found) if ids], "remove")
        self._count_delivered([e for e, ids in zip(batch.entries, found) if not ids], "not in Klaviyo")


def schema(target_field: str) -> dict[str, Any]:
    found = profile_schema(with_profile_id=True)
    found["properties"][target_field] = {**STRING, "description": "Target list name (the `target_field` column)"}
    return found


SPEC = SurfaceSpec(
    surface=Surface.LIST_MEMBERSHIPS,
    summary="upserts profiles into the row's target list and removes people from it",
    modes=UPSERT_MODES + (DestinationSyncMode.soft_delete, DestinationSyncMode.overwrite),
    matching_keys=MATCHING_KEYS + ("klaviyo_profile_id",),
    scopes=SCOPES + ("profiles:read",),
    needs_target=True,
    removes=True,
    mirrors=True,
    schema=schema,
    make_sink=ListMembershipSink,
)
