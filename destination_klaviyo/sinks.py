"""Surfaces behind one interface: a sink takes rows, batches them and delivers them to Klaviyo.

The writer only knows `add`, `flush` and `lowest_pending_seq`; each sink owns its rendering,
batching and delivery rules. A sink never reports a row as delivered before Klaviyo accepted it.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from typing import Any, Mapping, Optional

from destination_klaviyo.batching import BodyBatch, Entry, new_bulk_job_batch
from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient
from destination_klaviyo.errors import redact_detail
from destination_klaviyo.rendering import Rejection, render_profile
from destination_klaviyo.report import SyncReport

logger = logging.getLogger("airbyte")

_PROFILE_POINTER = re.compile(r"^/data/attributes/profiles/data/(\d+)(/.*)?$")
# Klaviyo may reject single profiles of a job with a 400 that points at them; we drop those rows
# (reporting why) and resend the rest, at most this many times per batch.
MAX_REJECTION_ROUNDS = 5


class Sink(ABC):
    @abstractmethod
    def add(self, seq: int, stream: str, ordinal: int, data: Mapping[str, Any]) -> None:
        """Take one row; deliver full batches on the way."""

    @abstractmethod
    def flush(self) -> None:
        """Deliver everything buffered."""

    @abstractmethod
    def lowest_pending_seq(self) -> Optional[int]:
        """Smallest sequence number buffered and not yet accepted by Klaviyo, or None."""


class BulkImportSink(Sink):
    """`profiles` (no list) and `list_memberships` (one sink per resolved list id)."""

    def __init__(
        self,
        client: Optional[KlaviyoClient],
        report: SyncReport,
        *,
        list_id: Optional[str] = None,
        accept_profile_id: bool = False,
        excluded_columns: tuple[str, ...] = (),
        dry_run: bool = False,
    ) -> None:
        self.client = client
        self.report = report
        self.list_id = list_id
        self.accept_profile_id = accept_profile_id
        self.excluded_columns = excluded_columns
        self.dry_run = dry_run
        self.batch = new_bulk_job_batch(list_id)

    def add(self, seq: int, stream: str, ordinal: int, data: Mapping[str, Any]) -> None:
        rendered = render_profile(data, accept_profile_id=self.accept_profile_id, excluded_columns=self.excluded_columns)
        if isinstance(rendered, Rejection):
            self.report.rejected(stream, ordinal, rendered)
            return
        if not self.batch.fits(rendered):
            self.flush()
        self.batch.add(Entry(seq, stream, ordinal, rendered))

    def flush(self) -> None:
        if len(self.batch):
            self._deliver(self.batch)
            self.batch = new_bulk_job_batch(self.list_id)

    def lowest_pending_seq(self) -> Optional[int]:
        return self.batch.first_seq()

    def _deliver(self, batch: BodyBatch) -> None:
        if self.dry_run:
            self.report.request_sent("bulk import jobs planned (dry run)")
            self._count_delivered(batch)
            return
        assert self.client is not None
        for _ in range(MAX_REJECTION_ROUNDS):
            if not len(batch):
                return
            try:
                job_id = self.client.create_bulk_import_job(batch.body())
            except KlaviyoApiError as exc:
                rejected = self._rejected_profiles(exc, len(batch))
                if not rejected:
                    raise
                for index, rejection in sorted(rejected.items()):
                    entry = batch.entries[index]
                    self.report.rejected(entry.stream, entry.ordinal, rejection)
                batch = batch.without(set(rejected))
                continue
            self.report.request_sent("bulk import jobs")
            logger.info(f"Klaviyo accepted bulk import job {job_id} with {len(batch)} profiles ({batch.size} bytes)")
            self._count_delivered(batch)
            return
        raise RuntimeError(f"Klaviyo kept rejecting profiles of one bulk import job after {MAX_REJECTION_ROUNDS} rounds")

    def _count_delivered(self, batch: BodyBatch) -> None:
        for entry in batch.entries:
            self.report.delivered(entry.stream)

    @staticmethod
    def _rejected_profiles(exc: KlaviyoApiError, size: int) -> dict[int, Rejection]:
        """Profiles a 400 points at; empty when the error is about the job as a whole."""
        if exc.status != 400 or not exc.errors:
            return {}
        found: dict[int, Rejection] = {}
        for error in exc.errors:
            match = _PROFILE_POINTER.match(error.pointer or "")
            if not match or int(match.group(1)) >= size:
                return {}
            where = (match.group(2) or "").lstrip("/") or "profile"
            detail = redact_detail(error.detail or error.title or error.code or "invalid")
            found[int(match.group(1))] = Rejection("klaviyo_rejected", f"Klaviyo rejected {where}: {detail}")
        return found
