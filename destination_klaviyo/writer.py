"""The `write` command's message loop: rows to sinks, states out once their rows are in, mirror last.

Batches keep filling across state messages (a state does not force a tiny job); a state is echoed
as soon as every row before it has been accepted. States also force a flush when they have waited
longer than STATE_MAX_WAIT_SECONDS, so a slow trickle of rows cannot hold the source's progress
back for the whole sync. On failure, rows already accepted keep their states; nothing after the
failure point is acknowledged, and no mirror removal runs.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator, Mapping

from airbyte_cdk.models import ConfiguredAirbyteCatalog, DestinationSyncMode

from destination_klaviyo.batching import Entry
from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient, KlaviyoUnreachable
from destination_klaviyo.config import KlaviyoConfig
from destination_klaviyo.dispatch import Dispatcher
from destination_klaviyo.errors import MissingList, as_traced, config_error, system_error
from destination_klaviyo.mirror import MirrorPlan
from destination_klaviyo.rendering import Rejection, target_problem
from destination_klaviyo.report import Progress, SyncReport
from destination_klaviyo.routing import Routes, StreamRoute
from destination_klaviyo.sinks import SinkContext, SinkPool
from destination_klaviyo.state import StateLedger
from destination_klaviyo.surfaces import removing_surfaces
from destination_klaviyo.targets import TargetResolver

logger = logging.getLogger("airbyte")

STATE_MAX_WAIT_SECONDS = 60.0  # with no request in flight; see _write
CDC_DELETED_AT = "_ab_cdc_deleted_at"


class KlaviyoWriter:
    """Reads the sync's messages once, in order, and turns them into Klaviyo requests and echoed states."""

    def __init__(
        self,
        config: KlaviyoConfig,
        catalog: ConfiguredAirbyteCatalog,
        client_factory: Callable[[], KlaviyoClient],
        raw_config: Mapping[str, Any],
    ) -> None:
        # Routing first: an unmapped stream or unsupported mode fails before any client exists.
        self.routes = Routes(config, catalog)
        self.config = config
        client = client_factory()
        self.ledger = StateLedger()
        self.report = SyncReport(dry_run=config.dry_run, on_rejected=self.ledger.count_rejected)
        self.targets = TargetResolver(config, raw_config, client, self.report)
        dispatcher = Dispatcher(config.max_requests_in_flight)
        self.sinks = SinkPool(
            SinkContext(client, self.report, dispatcher, config.dry_run, config.target_field, config.verify_bulk_jobs)
        )
        self.mirror = MirrorPlan(self.routes)
        self.progress = Progress(self.report)
        for route in self.routes:
            logger.info(
                f"Stream '{route.name}' -> surface '{route.surface.value}' ({route.how}), mode {route.sync_mode.value}"
            )

    def close(self) -> None:
        self.sinks.dispatcher.close()
        if self.sinks.context.client is not None:
            self.sinks.context.client.close()

    # -- records ----------------------------------------------------------------------------------
    def _route(self, record: Any) -> StreamRoute:
        if not isinstance(record, dict):
            raise system_error("Received a RECORD message whose `record` is not a JSON object.")
        name = record.get("stream") or ""
        route = self.routes.find(record.get("namespace"), name)
        if route is None:
            raise system_error(f"Received a record of stream '{name}', which is not in the configured catalog.")
        return route

    def _accept_record(self, record: Any) -> None:
        route = self._route(record)
        row = Entry(self.ledger.next_record(route.key), route.name, self.report.received(route.name), route.key)
        data = record.get("data")
        if not isinstance(data, dict):
            self.report.rejected(row, Rejection("invalid_record", "record data is not a JSON object"))
            return
        remove = route.sync_mode is DestinationSyncMode.soft_delete or data.get(CDC_DELETED_AT) is not None
        if remove and not route.spec.removes:
            self.report.rejected(
                row,
                Rejection(
                    "delete_not_supported",
                    f"row is a deletion ({CDC_DELETED_AT} is set) and the '{route.surface.value}' surface cannot remove; "
                    f"use {' or '.join(removing_surfaces())} to remove list members",
                ),
            )
            return
        target = list_id = None
        if route.spec.needs_target:
            found = self.targets.target_of(route, data)
            if not isinstance(found, Rejection):
                found = target_problem(self.config.target_field, found) or found
            if isinstance(found, Rejection):
                self.report.rejected(row, found)
                return
            target = found
            list_id = self.targets.resolve(target).list_id
            self.mirror.note_target(route, target)
        self.sinks.get(route.spec, target, list_id).add(row, data, remove=remove)

    def _stream_status(self, trace: dict[str, Any]) -> None:
        """The platform sends STREAM_STATUS COMPLETE per stream once the source finished cleanly."""
        status = trace.get("stream_status") or {}
        descriptor = status.get("stream_descriptor") or {}
        route = self.routes.find(descriptor.get("namespace"), descriptor.get("name") or "")
        if route is not None:
            self.mirror.stream_status(route, status.get("status"))

    # -- states -----------------------------------------------------------------------------------
    def _released_states(self, *, every_time: bool = False) -> Iterator[dict[str, Any]]:
        """States whose rows are all in. Checked only when something changed, unless `every_time`
        (at the end of input, where a missed change would hold the last states back for good)."""
        dispatcher = self.sinks.dispatcher
        if not self.ledger.may_release(dispatcher.finished_count) and not every_time:
            return
        dispatcher.raise_errors()
        if not self.config.dry_run and self.ledger.pending_count():
            yield from self.ledger.release(self.sinks.lowest_pending_seq())

    def _after_failure(self, flush: bool) -> Iterator[dict[str, Any]]:
        """Let requests in flight finish, then echo the states whose rows all got in."""
        try:
            if flush:
                self.sinks.flush()
        except Exception as flush_exc:  # the original error is the one to report
            logger.error(f"Could not deliver buffered rows after the failure: {type(flush_exc).__name__}")
        self.sinks.dispatcher.settle()
        if not self.config.dry_run:
            yield from self.ledger.release(self.sinks.lowest_pending_seq())

    # -- the loop ---------------------------------------------------------------------------------
    def write(self, messages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        prefix = "Dry run plan" if self.config.dry_run else "Sync summary"
        try:
            yield from self._write(messages)
        except (KlaviyoApiError, KlaviyoUnreachable, MissingList) as exc:
            # Klaviyo refused or is unreachable: send nothing more, but commit what is already in.
            yield from self._after_failure(flush=False)
            self.report.log_summary(f"{prefix} (failed)")
            raise as_traced(exc) from None
        except BaseException:
            # Bad input or a bug: deliver what was read before it so its states can be committed.
            yield from self._after_failure(flush=True)
            self.report.log_summary(f"{prefix} (failed)")
            raise
        if self.config.dry_run:
            dropped = self.ledger.discard()
            logger.info(
                f"Dry run: {dropped} state message(s) were not emitted, so a later real sync re-reads these rows."
            )
        else:
            self.sinks.finish()
        self.report.log_summary(prefix)
        self._check_rejected_share()

    def _check_rejected_share(self) -> None:
        """Good rows are in and their states emitted; now fail loudly if too many rows were bad."""
        received, rejected = self.report.total_received(), self.report.total_rejected()
        if received and rejected / received > self.config.max_rejected_share:
            raise config_error(
                f"{rejected} of {received} rows ({rejected / received:.0%}) were rejected, more than "
                f"`max_rejected_share` ({self.config.max_rejected_share:.0%}). The other rows were delivered. "
                "The 'Rejected record' log lines say why (no row data is logged): fix the source data or the "
                "stream mapping, or raise `max_rejected_share`."
            )

    def _write(self, messages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for message in messages:
            kind = message["type"]
            if kind == "RECORD":
                self._accept_record(message.get("record") or {})
                if self.targets.outbox:
                    yield from self.targets.take_messages()
                yield from self._released_states()
                if not self.ledger.records_seen % 2048:
                    self._log_progress()
            elif kind == "STATE":
                self.ledger.add_state(message)
                if self.ledger.oldest_wait_seconds() > STATE_MAX_WAIT_SECONDS and not self.sinks.dispatcher.running():
                    # A slow trickle of rows: send the partial batches holding the state back. While
                    # requests are in flight the state waits for Klaviyo's pace, and flushing would
                    # only spend the 150-jobs-a-minute budget on partial jobs.
                    self.sinks.flush()
                yield from self._released_states()
            elif kind == "TRACE" and (message.get("trace") or {}).get("type") == "STREAM_STATUS":
                self._stream_status(message["trace"])
            # LOG, other TRACE and CONTROL messages from the source need no action here.
        self.sinks.flush()
        self.sinks.dispatcher.drain()
        yield from self._released_states(every_time=True)
        self.mirror.run(self.sinks.context.client, self.targets, self.sinks, self.report, dry_run=self.config.dry_run)
        yield from self.targets.take_messages()

    def _log_progress(self) -> None:
        self.progress.log(self.ledger.records_seen, len(self.sinks.dispatcher.running()), self.ledger.states_released)
