"""Surfaces behind one interface: a sink takes rows, batches them and delivers them to Klaviyo.

The writer only knows `add`, `flush` and `lowest_pending_seq`; each sink owns its rendering,
batching and delivery rules. A sink never reports a row as delivered before Klaviyo accepted it.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from destination_klaviyo.batching import BodyBatch, Entry, new_bulk_job_batch, new_relationship_batch
from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient
from destination_klaviyo.dispatch import Dispatcher
from destination_klaviyo.errors import redact_detail
from destination_klaviyo.rendering import Rejection, render_profile, render_profile_reference
from destination_klaviyo.report import SyncReport

logger = logging.getLogger("airbyte")

# Klaviyo may reject single items of a request with a 400 that points at them; we drop those rows
# (reporting why) and resend the rest, at most this many times per batch.
MAX_REJECTION_ROUNDS = 5


class Sink(ABC):
    def __init__(
        self,
        client: Optional[KlaviyoClient],
        report: SyncReport,
        list_id: Optional[str],
        target: Optional[str],
        dry_run: bool,
        dispatcher: Optional[Dispatcher],
    ) -> None:
        self.client = client
        self.report = report
        self.list_id = list_id
        self.target = target
        self.dry_run = dry_run
        self.dispatcher = dispatcher
        # Batches handed to a worker: (first sequence number, future). A failed one stays here, so
        # the states after its rows are never released.
        self.inflight: list[tuple[int, Future[None]]] = []

    def _submit(self, batch: BodyBatch, job: Callable[[], None]) -> Future[None]:
        first = batch.first_seq()
        assert first is not None
        if self.dispatcher is None:  # synchronous use (tests, embedding)
            future: Future[None] = Future()
            job()
            future.set_result(None)
        else:
            future = self.dispatcher.submit(job)
        self.inflight.append((first, future))
        return future

    def _lowest(self, *open_batches: BodyBatch) -> Optional[int]:
        self.inflight = [(seq, f) for seq, f in self.inflight if not f.done() or f.exception() is not None]
        seqs = [seq for seq, _ in self.inflight] + [s for s in (b.first_seq() for b in open_batches) if s is not None]
        return min(seqs) if seqs else None

    @abstractmethod
    def add(self, seq: int, stream: str, ordinal: int, data: Mapping[str, Any], *, remove: bool = False) -> None:
        """Take one row; deliver full batches on the way."""

    @abstractmethod
    def flush(self) -> None:
        """Deliver everything buffered."""

    @abstractmethod
    def lowest_pending_seq(self) -> Optional[int]:
        """Smallest sequence number buffered and not yet accepted by Klaviyo, or None."""


@dataclass(frozen=True)
class Pointers:
    """Where a 400 blames rows: `row` captures an item index; `rows` is the array as a whole."""

    row: re.Pattern[str]
    rows: re.Pattern[str]


BULK_POINTERS = Pointers(
    re.compile(r"^/data/attributes/profiles/data/(\d+)(/.*)?$"), re.compile(r"^/data/attributes/profiles(/data)?/?$")
)
RELATIONSHIP_POINTERS = Pointers(re.compile(r"^/data/(\d+)(/.*)?$"), re.compile(r"^/data/?$"))


def rejected_items(exc: KlaviyoApiError, size: int, pointer: re.Pattern[str]) -> dict[int, Rejection]:
    """Items a 400 points at; empty when the error is about the request as a whole."""
    if exc.status != 400 or not exc.errors:
        return {}
    found: dict[int, Rejection] = {}
    for error in exc.errors:
        match = pointer.match(error.pointer or "")
        if not match or int(match.group(1)) >= size:
            return {}
        where = (match.group(2) or "").lstrip("/") or "the row"
        detail = redact_detail(error.detail or error.title or error.code or "invalid")
        found[int(match.group(1))] = Rejection("klaviyo_rejected", f"Klaviyo rejected {where}: {detail}")
    return found


def _blames_rows_unspecifically(exc: KlaviyoApiError, pointers: Pointers) -> bool:
    """A 413, or a 400 about the rows without saying which: halving the batch will find them."""
    if exc.status == 413:
        return True
    return exc.status == 400 and bool(exc.errors) and all(pointers.rows.match(e.pointer or "") for e in exc.errors)


def deliver(
    batch: BodyBatch,
    send: Callable[[bytes], str],
    report: SyncReport,
    kind: str,
    pointers: Pointers,
    dry_run: bool,
    action: str,
    target: Optional[str],
) -> None:
    """Send a batch so that every good row gets in and every bad row is reported.

    A 400 that points at rows drops exactly those rows (reported with Klaviyo's redacted reason)
    and resends the rest. A 413, or a 400 about the rows that does not say which, halves the batch
    and delivers each half, down to single rows. Any other error fails the sync. `kind` names the
    request in the counts; `action` (upsert/add/remove) and `target` label the delivered rows.
    """
    if dry_run:
        report.request_sent(f"{kind} planned (dry run)")
    else:
        for _ in range(MAX_REJECTION_ROUNDS + 1):
            if not len(batch):
                return
            try:
                receipt = send(batch.body())
            except KlaviyoApiError as exc:
                rejected = rejected_items(exc, len(batch), pointers.row)
                if rejected:
                    for index, rejection in sorted(rejected.items()):
                        entry = batch.entries[index]
                        report.rejected(entry.stream, entry.ordinal, rejection)
                    batch = batch.without(set(rejected))
                    continue
                if not _blames_rows_unspecifically(exc, pointers):
                    raise
                if len(batch) == 1:
                    entry = batch.entries[0]
                    reason = (
                        "too large for Klaviyo (413)"
                        if exc.status == 413
                        else "; ".join(redact_detail(e.describe()) for e in exc.errors)
                    )
                    report.rejected(
                        entry.stream,
                        entry.ordinal,
                        Rejection("klaviyo_rejected", f"Klaviyo rejected the row: {reason}"),
                    )
                    return
                logger.warning(
                    f"Klaviyo refused a request of {len(batch)} rows ({exc.status}) without naming rows; splitting it"
                )
                for half in batch.halves():
                    deliver(half, send, report, kind, pointers, dry_run, action, target)
                return
            report.request_sent(kind)
            logger.info(f"Klaviyo accepted {receipt} ({len(batch)} rows, {batch.size} bytes)")
            break
        else:
            raise RuntimeError(f"Klaviyo kept rejecting rows of one request after {MAX_REJECTION_ROUNDS} rounds")
    per_stream: dict[str, int] = {}
    for entry in batch.entries:
        per_stream[entry.stream] = per_stream.get(entry.stream, 0) + 1
    for stream, count in per_stream.items():
        report.delivered(stream, action, target, count)


class BulkImportSink(Sink):
    """`profiles` (no list) and `list_memberships` (one sink per resolved list id): upserts only."""

    def __init__(
        self,
        client: Optional[KlaviyoClient],
        report: SyncReport,
        *,
        list_id: Optional[str] = None,
        target: Optional[str] = None,
        accept_profile_id: bool = False,
        excluded_columns: tuple[str, ...] = (),
        dry_run: bool = False,
        dispatcher: Optional[Dispatcher] = None,
    ) -> None:
        super().__init__(client, report, list_id, target, dry_run, dispatcher)
        self.accept_profile_id = accept_profile_id
        self.excluded_columns = excluded_columns
        self.job_ids: list[str] = []  # accepted jobs, for the optional follow-up (jobs.py)
        self.batch = new_bulk_job_batch(list_id)

    def add(self, seq: int, stream: str, ordinal: int, data: Mapping[str, Any], *, remove: bool = False) -> None:
        assert not remove, "bulk import surfaces never remove; routing refuses it"
        rendered = render_profile(
            data, accept_profile_id=self.accept_profile_id, excluded_columns=self.excluded_columns
        )
        if isinstance(rendered, Rejection):
            self.report.rejected(stream, ordinal, rendered)
            return
        if not self.batch.fits(rendered):
            self.flush()
        self.batch.add(Entry(seq, stream, ordinal), rendered)

    def flush(self) -> None:
        if len(self.batch):
            batch, self.batch = self.batch, new_bulk_job_batch(self.list_id)
            self._submit(
                batch,
                lambda: deliver(
                    batch,
                    self._send,
                    self.report,
                    "bulk import jobs",
                    BULK_POINTERS,
                    self.dry_run,
                    "upsert",
                    self.target,
                ),
            )

    def _send(self, body: bytes) -> str:
        assert self.client is not None
        job_id = self.client.create_bulk_import_job(body)
        self.job_ids.append(job_id)
        return f"bulk import job {job_id}"

    def lowest_pending_seq(self) -> Optional[int]:
        return self._lowest(self.batch)


class RelationshipSink(Sink):
    """`list_memberships_by_profile_id` for one list: adds and removes by Klaviyo profile id.

    Adds and removes go in separate requests. When a profile is about to be queued in one direction
    while it waits (queued or in flight) in the other, that other batch is sent and awaited first, so
    a profile's rows take effect in their order even with requests running concurrently.
    """

    def __init__(
        self,
        client: Optional[KlaviyoClient],
        report: SyncReport,
        list_id: Optional[str],
        target: str,
        *,
        dry_run: bool = False,
        dispatcher: Optional[Dispatcher] = None,
    ) -> None:
        super().__init__(client, report, list_id, target, dry_run, dispatcher)
        self.batches = {False: new_relationship_batch(), True: new_relationship_batch()}
        self.queued: dict[bool, set[str]] = {False: set(), True: set()}
        self.sent: dict[bool, list[tuple[set[str], Future[None]]]] = {False: [], True: []}
        self.added_ids: set[str] = set()  # every profile this sync put in the list (for mirror)

    def add(self, seq: int, stream: str, ordinal: int, data: Mapping[str, Any], *, remove: bool = False) -> None:
        rendered = render_profile_reference(data)
        if isinstance(rendered, Rejection):
            self.report.rejected(stream, ordinal, rendered)
            return
        profile_id = str(data["klaviyo_profile_id"])  # validated by render_profile_reference
        other = not remove
        if profile_id in self.queued[other]:
            self._flush(other)
        self.sent[other] = [(ids, f) for ids, f in self.sent[other] if not f.done() or f.exception() is not None]
        for ids, future in self.sent[other]:
            if profile_id in ids:
                future.result()
        if not self.batches[remove].fits(rendered):
            self._flush(remove)
        self.batches[remove].add(Entry(seq, stream, ordinal), rendered)
        self.queued[remove].add(profile_id)
        if remove:
            self.added_ids.discard(profile_id)
        else:
            self.added_ids.add(profile_id)

    def _flush(self, remove: bool) -> None:
        batch = self.batches[remove]
        if not len(batch):
            return
        ids = self.queued[remove]
        self.batches[remove] = new_relationship_batch()
        self.queued[remove] = set()
        kind = "list removals" if remove else "list additions"

        def send(body: bytes) -> str:
            assert self.client is not None and self.list_id is not None
            self.client.edit_list_members(self.list_id, body, remove=remove)
            return f"{kind} for list {self.list_id}"

        action = "remove" if remove else "add"
        future = self._submit(
            batch,
            lambda: deliver(batch, send, self.report, kind, RELATIONSHIP_POINTERS, self.dry_run, action, self.target),
        )
        self.sent[remove].append((ids, future))

    def flush(self) -> None:
        # Order between the two only matters for a profile in both, and `add` never lets that happen.
        self._flush(False)
        self._flush(True)

    def lowest_pending_seq(self) -> Optional[int]:
        return self._lowest(*self.batches.values())
