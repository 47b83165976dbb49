"""The sink lifecycle every surface shares, and delivering a batch so that no good row is lost.

Like singer-sdk's `Sink`: `add` renders one row and buffers it (a full batch is flushed when the
next item does not fit), `flush` hands buffered batches to the `Dispatcher` without waiting for
Klaviyo, `lowest_pending_seq` is the watermark that lets states go (`StateLedger.release`), and
`finish` is work a sink owns after the drain (verifying bulk jobs). Each surface module subclasses
`Sink` with its rendering, envelope and limits. A sink never reports a row as delivered before
Klaviyo accepted it.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping, Optional, Sequence

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient
from destination_klaviyo.dispatch import Dispatcher
from destination_klaviyo.errors import MissingList, is_missing_list, redact_detail
from destination_klaviyo.identifiers import DEFAULT_PHONE_RULES, PhoneRules
from destination_klaviyo.identity import Identities
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.report import SyncReport

if TYPE_CHECKING:
    from destination_klaviyo.config import KlaviyoConfig
    from destination_klaviyo.routing import Routes
    from destination_klaviyo.surfaces.base import SurfaceSpec

logger = logging.getLogger("airbyte")

# Klaviyo may reject single items of a request with a 400 that points at them; we drop those rows
# (reporting why) and resend the rest, at most this many times per batch.
MAX_REJECTION_ROUNDS = 5


@dataclass(frozen=True)
class SinkContext:
    """What every sink of a sync shares: the client, the counts, the worker pool, and the settings."""

    client: Optional[KlaviyoClient]
    report: SyncReport
    dispatcher: Optional[Dispatcher] = None  # None: deliver synchronously (unit tests, embedding)
    dry_run: bool = False
    target_field: str = "list"
    verify_bulk_jobs: bool = False
    phones: PhoneRules = DEFAULT_PHONE_RULES  # default_phone_region and strict_phone
    # Some stream of this sync mirrors a list: list sinks remember whom they put in their list (a
    # mirror keeps them). Off otherwise, so that a sync without a mirror keeps no such set.
    mirrors: bool = False
    # Per-stream plans from routing (`StreamRoute.plan`), by stream key: how a surface with
    # per-stream options (events, subscriptions) renders that stream's rows.
    plans: Mapping[tuple[Optional[str], str], Any] = field(default_factory=dict)

    @classmethod
    def for_sync(
        cls,
        config: "KlaviyoConfig",
        routes: "Routes",
        client: Optional[KlaviyoClient],
        report: SyncReport,
        dispatcher: Dispatcher,
    ) -> "SinkContext":
        return cls(
            client,
            report,
            dispatcher,
            config.dry_run,
            config.target_field,
            config.verify_bulk_jobs,
            phones=PhoneRules(config.default_phone_region, config.strict_phone),
            plans={route.key: route.plan for route in routes if route.plan is not None},
            mirrors=any(route.mirrors for route in routes),
        )


@dataclass(frozen=True)
class Request:
    """One kind of request a sink sends: its label in the counts, what it does to rows, and the call."""

    kind: str  # e.g. "bulk import jobs", counted in the summary
    action: str  # upsert / add / remove: how delivered rows are counted per target
    send: Callable[[bytes], str]  # sends one body; returns a receipt for the log


@dataclass(frozen=True)
class Pointers:
    """Where a 400 blames rows: `row` captures an item index; `rows` is the array as a whole."""

    row: re.Pattern[str]
    rows: re.Pattern[str]


def accepted(future: Future[None]) -> bool:
    """Whether a delivery finished and Klaviyo took it; a failed or cancelled one stays pending for good."""
    return future.done() and not future.cancelled() and future.exception() is None


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


class Sink(ABC):
    """Takes one surface's rows for one target, batches them, and delivers the batches."""

    pointers: ClassVar[Pointers]

    def __init__(self, context: SinkContext, target: Optional[str] = None, list_id: Optional[str] = None) -> None:
        self.context = context
        self.report = context.report
        self.target = target
        self.list_id = list_id
        # A target without a list id is a list a dry run would create: nothing can be sent to it.
        self.dry_run = context.dry_run or (target is not None and list_id is None)
        # Batches handed to a worker: (first sequence number, future). A failed one stays here, so
        # the states after its rows are never released.
        self.inflight: list[tuple[int, Future[None]]] = []

    # -- the lifecycle ----------------------------------------------------------------------------
    @abstractmethod
    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        """Render one row, then reject it or buffer it; deliver full batches on the way."""

    @abstractmethod
    def flush(self) -> None:
        """Hand everything buffered to the dispatcher."""

    @abstractmethod
    def open_batches(self) -> Iterable[BodyBatch]:
        """The batches still filling."""

    def lowest_pending_seq(self) -> Optional[int]:
        """Smallest sequence number buffered or in flight and not yet accepted by Klaviyo, or None."""
        self.inflight = [(seq, f) for seq, f in self.inflight if not accepted(f)]
        seqs = [seq for seq, _ in self.inflight]
        seqs += [seq for seq in (b.first_seq() for b in self.open_batches()) if seq is not None]
        return min(seqs) if seqs else None

    def finish(self) -> None:
        """Work this sink owns once every request of the sync was accepted (none by default)."""

    def members_added(self) -> Identities:
        """The people this sync put in the sink's list (when `context.mirrors`), whom a mirror keeps."""
        return Identities()

    def unfinished_imports(self, max_wait: float) -> list[str]:
        """Wait (at most `max_wait` s) until Klaviyo finished the bulk import jobs this sink sent into
        its list; return those still running. A mirror reads the list only after them."""
        return []

    # -- delivery ---------------------------------------------------------------------------------
    def submit(
        self,
        batch: BodyBatch,
        request: Request,
        riders: Sequence[Entry] = (),
        after: Sequence[Future[None]] = (),
    ) -> Future[None]:
        """Deliver `batch` on a worker (or at once without a dispatcher); track it until accepted.

        `riders` are rows with no item of their own whose effect the batch carries (a row a later
        row of the same profile superseded): they are pending, and counted, with the batch.
        `after` are requests that must be done first (an earlier removal of a person this batch
        adds again); a failed one fails this one.
        """
        first = min(entry.seq for entry in (*batch.entries[:1], *riders))

        def job() -> None:
            for earlier in after:
                earlier.result()
            self.deliver(batch, request)
            if riders:
                self._count_delivered(riders, "superseded")

        return self.run(first, job, batch.size)

    def run(self, first_seq: int, job: Callable[[], None], body_bytes: int = 0) -> Future[None]:
        """Run `job` on a worker (or at once without a dispatcher); rows from `first_seq` on stay
        pending until it is done. Jobs only wait for jobs submitted before them, so none deadlocks."""
        dispatcher = self.context.dispatcher
        if dispatcher is None:
            future: Future[None] = Future()
            job()
            future.set_result(None)
        else:
            future = dispatcher.submit(job, body_bytes)
        self.inflight.append((first_seq, future))
        return future

    def deliver(self, batch: BodyBatch, request: Request) -> None:
        """Send a batch so that every good row gets in and every bad row is reported.

        A 400 that points at rows drops exactly those rows (reported with Klaviyo's redacted reason)
        and resends the rest. A 413, or a 400 about the rows that does not say which, halves the batch
        and delivers each half, down to single rows. Any other error fails the sync.
        """
        if self.dry_run:
            self.report.request_sent(request.kind)  # a dry run's summary says these were not sent
            self._count_delivered(batch.entries, request.action)
            return
        for _ in range(MAX_REJECTION_ROUNDS + 1):
            if not len(batch):
                return
            try:
                receipt = request.send(batch.body())
            except KlaviyoApiError as exc:
                rejected = rejected_items(exc, len(batch), self.pointers.row)
                if rejected:
                    for index, rejection in sorted(rejected.items()):
                        self.report.rejected(batch.entries[index], rejection)
                    batch = batch.without(set(rejected))
                    continue
                if self.list_id is not None and is_missing_list(exc):
                    raise MissingList(self.list_id, self.target) from None
                if not _blames_rows_unspecifically(exc, self.pointers):
                    raise
                self._split(batch, request, exc)
                return
            self.report.request_sent(request.kind)
            logger.info(f"Klaviyo accepted {receipt} ({len(batch)} rows, {batch.size} bytes)")
            self._count_delivered(batch.entries, request.action)
            return
        raise RuntimeError(f"Klaviyo kept rejecting rows of one request after {MAX_REJECTION_ROUNDS} rounds")

    def _split(self, batch: BodyBatch, request: Request, exc: KlaviyoApiError) -> None:
        if len(batch) == 1:
            reason = (
                "too large for Klaviyo (413)"
                if exc.status == 413
                else "; ".join(redact_detail(e.describe()) for e in exc.errors)
            )
            self.report.rejected(batch.entries[0], Rejection("klaviyo_rejected", f"Klaviyo rejected the row: {reason}"))
            return
        logger.warning(
            f"Klaviyo refused a request of {len(batch)} rows ({exc.status}) without naming rows; splitting it"
        )
        for half in batch.halves():
            self.deliver(half, request)

    def _count_delivered(self, entries: Sequence[Entry], action: str) -> None:
        per_stream: dict[str, int] = {}
        for entry in entries:
            per_stream[entry.stream] = per_stream.get(entry.stream, 0) + 1
        for stream, count in per_stream.items():
            self.report.delivered(stream, action, self.target, count)


class SinkPool:
    """Every sink of a sync, one per surface and target, sharing the context (and its dispatcher)."""

    def __init__(self, context: SinkContext) -> None:
        self.context = context
        self.sinks: dict[tuple[SurfaceSpec, str], Sink] = {}

    @property
    def dispatcher(self) -> Dispatcher:
        assert self.context.dispatcher is not None
        return self.context.dispatcher

    def get(self, spec: "SurfaceSpec", target: Optional[str], list_id: Optional[str]) -> Sink:
        key = (spec, target or "")
        sink = self.sinks.get(key)
        if sink is None:
            sink = self.sinks[key] = spec.make_sink(self.context, target, list_id)
        return sink

    def flush(self) -> None:
        for sink in self.sinks.values():
            sink.flush()

    def lowest_pending_seq(self) -> Optional[int]:
        pending = [seq for sink in self.sinks.values() if (seq := sink.lowest_pending_seq()) is not None]
        return min(pending) if pending else None

    def finish(self) -> None:
        for sink in self.sinks.values():
            sink.finish()

    def members_added(self, list_id: str) -> Identities:
        """The people any sink of this sync put in `list_id` (both list surfaces can feed one list)."""
        added = Identities()
        for sink in self.sinks.values():
            if sink.list_id == list_id:
                added |= sink.members_added()
        return added

    def unfinished_imports(self, list_id: str, max_wait: float) -> list[str]:
        """This sync's bulk import jobs into `list_id` that Klaviyo had not finished after waiting."""
        feeding = [sink for sink in self.sinks.values() if sink.list_id == list_id]
        return [job_id for sink in feeding for job_id in sink.unfinished_imports(max_wait)]


def probe_scope(send: Callable[[bytes], Any], body: bytes) -> None:
    """For `check`: send a request that changes nothing (it names no event, no profile). Klaviyo's
    403 (the key lacks the write scope) and transient failures are raised; any other refusal (400:
    nothing in it) means Klaviyo authorized the request, so the key has the scope."""
    try:
        send(body)
    except KlaviyoApiError as exc:
        if exc.status in (401, 403) or exc.status >= 429:
            raise
