"""The `write` command: route rows to sinks, deliver them, and echo states once their rows are in.

Batches keep filling across state messages (a state does not force a tiny job); a state is echoed
as soon as every row before it has been accepted. States also force a flush when they have waited
longer than STATE_MAX_WAIT_SECONDS, so a slow trickle of rows cannot hold the source's progress
back for the whole sync. On failure, rows already accepted keep their states; nothing after the
failure point is acknowledged, and no mirror removal runs.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Callable, Generator, Iterable, Iterator, Mapping, Optional

from airbyte_cdk.models import ConfiguredAirbyteCatalog, DestinationSyncMode, FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient, KlaviyoUnreachable
from destination_klaviyo.config import KlaviyoConfig, config_error
from destination_klaviyo.dispatch import Dispatcher
from destination_klaviyo.errors import as_traced
from destination_klaviyo.jobs import verify_jobs
from destination_klaviyo.mirror import mirror_list
from destination_klaviyo.registry import registry_update_message
from destination_klaviyo.rendering import Rejection
from destination_klaviyo.report import SyncReport
from destination_klaviyo.routing import StreamRoute, route_catalog
from destination_klaviyo.sinks import BulkImportSink, RelationshipSink, Sink
from destination_klaviyo.state import StateLedger, StreamKey
from destination_klaviyo.surfaces import LIST_SURFACES, Surface
from destination_klaviyo.targets import Resolution, TargetResolver

logger = logging.getLogger("airbyte")

STATE_MAX_WAIT_SECONDS = 60.0  # with no request in flight; see _write
PROGRESS_EVERY_SECONDS = 5.0
CDC_DELETED_AT = "_ab_cdc_deleted_at"


class UnknownStream(AirbyteTracedException):
    """A record whose stream the configured catalog does not list: the platform and we disagree."""


class KlaviyoWriter:
    def __init__(
        self,
        config: KlaviyoConfig,
        catalog: ConfiguredAirbyteCatalog,
        client_factory: Callable[[], KlaviyoClient],
        raw_config: Mapping[str, Any],
    ) -> None:
        # Routing first: an unmapped stream or unsupported mode fails before any client exists.
        if not catalog.streams:
            raise config_error("The configured catalog has no streams: select at least one stream in the connection.")
        self.routes = route_catalog(config, catalog)
        self.config = config
        self.raw_config = raw_config
        self.client = client_factory()
        self.report = SyncReport(dry_run=config.dry_run)
        self.ledger = StateLedger()
        self.resolver = TargetResolver(config, self.client)
        self.sinks: dict[tuple[Surface, str], Sink] = {}
        self.dispatcher = Dispatcher(config.max_requests_in_flight)
        self.completed: set[StreamKey] = set()
        self.incomplete: set[StreamKey] = set()
        self.mirror_targets: dict[StreamKey, set[str]] = defaultdict(set)
        self._oldest_pending_state: Optional[float] = None
        self._release_marker: tuple[int, int] = (-1, -1)
        self._started = self._last_progress = time.monotonic()
        self._rows_at_last_progress = 0
        self.states_emitted = 0
        for route in self.routes.values():
            logger.info(
                f"Stream '{route.name}' -> surface '{route.surface.value}' ({route.how}), mode {route.sync_mode.value}"
            )

    # -- routing rows -----------------------------------------------------------------------------
    def _route(self, record: dict[str, Any]) -> StreamRoute:
        name = record.get("stream")
        route = self.routes.get((record.get("namespace"), name or ""))
        if route is None:
            matches = [r for r in self.routes.values() if r.name == name]
            if len(matches) == 1:
                return matches[0]
            text = f"Received a record of stream '{name}', which is not in the configured catalog."
            raise UnknownStream(message=text, internal_message=text, failure_type=FailureType.system_error)
        return route

    def _target(self, route: StreamRoute, data: dict[str, Any]) -> str | Rejection:
        """The target column when present and non-null, else the stream's `target`, else its name."""
        value = data.get(self.config.target_field)
        if value is None:
            return route.default_target or route.name
        if not isinstance(value, str) or not value.strip():
            return Rejection("invalid_target", f"column '{self.config.target_field}' must be a non-empty list name")
        return value

    def _resolve(self, target: str, create: bool = True) -> Generator[dict[str, Any], None, Resolution]:
        """Resolve a target once; persist a newly found or created list id in the registry.

        Yields the config update to emit, if any, and returns the resolution.
        """
        known = self.resolver.resolved.get(target)
        if known is not None:
            return known
        resolution = self.resolver.resolve(target, create=create)
        if resolution.list_id is None and not create:
            return resolution  # absent, and not to be created
        self.report.resolved(target, _describe(resolution))
        if resolution.is_new_registry_entry and not self.config.dry_run:
            yield registry_update_message(self.raw_config, self.resolver.new_registry_entries())
        return resolution

    def _sink(self, route: StreamRoute, target: Optional[str]) -> Sink:
        key = (route.surface, target or "")
        sink = self.sinks.get(key)
        if sink is None:
            dry_run = self.config.dry_run
            if route.surface is Surface.PROFILES:
                sink = BulkImportSink(self.client, self.report, dry_run=dry_run, dispatcher=self.dispatcher)
            else:
                assert target is not None
                list_id = self.resolver.resolved[target].list_id
                if route.surface is Surface.LIST_MEMBERSHIPS:
                    sink = BulkImportSink(
                        self.client,
                        self.report,
                        list_id=list_id,
                        target=target,
                        accept_profile_id=True,
                        excluded_columns=(self.config.target_field,),
                        dry_run=dry_run or list_id is None,
                        dispatcher=self.dispatcher,
                    )
                else:
                    sink = RelationshipSink(
                        self.client,
                        self.report,
                        list_id,
                        target,
                        dry_run=dry_run or list_id is None,
                        dispatcher=self.dispatcher,
                    )
            self.sinks[key] = sink
        return sink

    def _accept_record(self, record: dict[str, Any]) -> Iterator[dict[str, Any]]:
        route = self._route(record)
        seq = self.ledger.next_record(route.key)
        ordinal = self.report.received(route.name)
        data = record.get("data")
        if not isinstance(data, dict):
            self.report.rejected(route.name, ordinal, Rejection("invalid_record", "record data is not a JSON object"))
            return
        remove = route.sync_mode is DestinationSyncMode.soft_delete or data.get(CDC_DELETED_AT) is not None
        if remove and route.surface is not Surface.LIST_MEMBERSHIPS_BY_PROFILE_ID:
            self.report.rejected(
                route.name,
                ordinal,
                Rejection(
                    "delete_not_supported",
                    f"row is a deletion ({CDC_DELETED_AT} is set) and the '{route.surface.value}' surface cannot remove; "
                    "use list_memberships_by_profile_id to remove list members",
                ),
            )
            return
        target: Optional[str] = None
        if route.surface in LIST_SURFACES:
            found = self._target(route, data)
            if isinstance(found, Rejection):
                self.report.rejected(route.name, ordinal, found)
                return
            target = found
            yield from self._resolve(target)
            if route.sync_mode is DestinationSyncMode.overwrite:
                self.mirror_targets[route.key].add(target)
        self._sink(route, target).add(seq, route.name, ordinal, data, remove=remove)

    # -- states -----------------------------------------------------------------------------------
    def _lowest_pending(self) -> Optional[int]:
        pending = [seq for sink in self.sinks.values() if (seq := sink.lowest_pending_seq()) is not None]
        return min(pending) if pending else None

    def _released_states(self) -> Iterator[dict[str, Any]]:
        # Which states may go only changes when a state arrives or a request finishes; between
        # those events this is two attribute reads per row.
        marker = (self.dispatcher.completed, self.ledger.states_seen)
        if marker == self._release_marker:
            return
        self._release_marker = marker
        self.dispatcher.raise_errors()
        if self.config.dry_run or not self.ledger.pending():
            return
        for state in self.ledger.release(self._lowest_pending()):
            self.states_emitted += 1
            yield state
        if not self.ledger.pending():
            self._oldest_pending_state = None

    def _progress(self) -> None:
        """A log line every few seconds, so a long sync shows it is moving and how fast."""
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_SECONDS:
            return
        read = self.ledger.records_seen
        rate = (read - self._rows_at_last_progress) / (now - self._last_progress)
        delivered = sum(c.delivered for c in self.report.streams.values())
        in_flight = len(self.dispatcher.running())
        logger.info(
            f"Progress: read {read} rows ({rate:,.0f} rows/s now, {read / (now - self._started):,.0f} on average), "
            f"{'would deliver' if self.config.dry_run else 'delivered'} {delivered}, "
            f"rejected {self.report.total_rejected()}, {in_flight} request(s) in flight, {self.states_emitted} state(s) echoed"
        )
        self._last_progress, self._rows_at_last_progress = now, read

    def flush_all(self) -> None:
        for sink in self.sinks.values():
            sink.flush()

    def _after_failure(self, flush: bool) -> Iterator[dict[str, Any]]:
        """Let requests in flight finish, then echo the states whose rows all got in."""
        try:
            if flush:
                self.flush_all()
        except Exception as flush_exc:  # the original error is the one to report
            logger.error(f"Could not deliver buffered rows after the failure: {type(flush_exc).__name__}")
        self.dispatcher.settle()
        if not self.config.dry_run:
            yield from self.ledger.release(self._lowest_pending())

    def _stream_status(self, trace: dict[str, Any]) -> None:
        """The platform sends STREAM_STATUS COMPLETE per stream once the source finished cleanly."""
        status = trace.get("stream_status") or {}
        descriptor = status.get("stream_descriptor") or {}
        key = (descriptor.get("namespace") or None, descriptor.get("name", ""))
        matches = [k for k in self.routes if k == key or (k[1] == key[1] and not key[0])]
        for route_key in matches:
            if status.get("status") == "COMPLETE":
                self.completed.add(route_key)
            elif status.get("status") == "INCOMPLETE":
                self.incomplete.add(route_key)

    # -- mirror -----------------------------------------------------------------------------------
    def _mirror(self) -> Iterator[dict[str, Any]]:
        mirror_routes = [r for r in self.routes.values() if r.sync_mode is DestinationSyncMode.overwrite]
        keep: dict[str, set[str]] = defaultdict(set)  # list id -> profiles this sync added (all streams)
        for (surface, target), sink in self.sinks.items():
            if isinstance(sink, RelationshipSink) and sink.list_id:
                keep[sink.list_id] |= sink.added_ids
        blocked: set[str] = set()
        targets: dict[str, set[StreamKey]] = defaultdict(set)
        for route in mirror_routes:
            wanted = self.mirror_targets[route.key] or {route.default_target or route.name}
            for target in wanted:
                targets[target].add(route.key)
            if route.key not in self.completed or route.key in self.incomplete:
                blocked |= wanted
                logger.warning(
                    f"Mirror of stream '{route.name}' skipped: the stream was not reported complete "
                    "(no STREAM_STATUS COMPLETE received), so no list member is removed."
                )
        for target in sorted(set(targets) - blocked):
            # A target that got no rows is looked up but never created just to be emptied.
            list_id = (yield from self._resolve(target, create=False)).list_id
            if list_id is None:
                continue  # absent, or a dry run's list-to-be: no members to remove
            mirror_list(self.client, self.report, list_id, target, keep[list_id], dry_run=self.config.dry_run)

    # -- the loop ---------------------------------------------------------------------------------
    def write(self, messages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        try:
            yield from self._write_and_report(messages)
        finally:
            self.dispatcher.close()

    def _write_and_report(self, messages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        prefix = "Dry run plan" if self.config.dry_run else "Sync summary"
        try:
            yield from self._write(messages)
        except (KlaviyoApiError, KlaviyoUnreachable) as exc:
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
        elif self.config.verify_bulk_jobs:
            job_ids = [job for sink in self.sinks.values() if isinstance(sink, BulkImportSink) for job in sink.job_ids]
            verify_jobs(self.client, self.report, job_ids)
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
                yield from self._accept_record(message.get("record") or {})
                yield from self._released_states()
                if not self.ledger.records_seen % 2048:
                    self._progress()
            elif kind == "STATE":
                self.ledger.add_state(message)
                if self._oldest_pending_state is None:
                    self._oldest_pending_state = time.monotonic()
                elif (
                    time.monotonic() - self._oldest_pending_state > STATE_MAX_WAIT_SECONDS
                    and not self.dispatcher.running()
                ):
                    # A slow trickle of rows: send the partial batches holding the state back. While
                    # requests are in flight the state waits for Klaviyo's pace, and flushing would
                    # only spend the 150-jobs-a-minute budget on partial jobs.
                    self.flush_all()
                yield from self._released_states()
            elif kind == "TRACE" and (message.get("trace") or {}).get("type") == "STREAM_STATUS":
                self._stream_status(message["trace"])
            # LOG, other TRACE and CONTROL messages from the source need no action here.
        self.flush_all()
        self.dispatcher.drain()
        yield from self._released_states()
        yield from self._mirror()


def _describe(resolution: Resolution) -> str:
    if resolution.list_id is None:
        return "a new list (dry run: would create it)"
    return f"list {resolution.list_id} ({resolution.how})"
