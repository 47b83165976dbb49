"""The `write` command: route rows to sinks, deliver them, and echo states once their rows are in.

Batches keep filling across state messages (a state does not force a tiny job); a state is echoed
as soon as every row before it has been accepted. States also force a flush when they have waited
longer than STATE_MAX_WAIT_SECONDS, so a slow trickle of rows cannot hold the source's progress
back for the whole sync. On failure, rows already accepted keep their states; nothing after the
failure point is acknowledged.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Iterator, Optional

from airbyte_cdk.models import ConfiguredAirbyteCatalog, FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient, KlaviyoUnreachable
from destination_klaviyo.config import KlaviyoConfig
from destination_klaviyo.errors import as_traced
from destination_klaviyo.rendering import Rejection
from destination_klaviyo.report import SyncReport
from destination_klaviyo.routing import StreamRoute, route_catalog
from destination_klaviyo.sinks import BulkImportSink, Sink
from destination_klaviyo.state import StateLedger, StreamKey
from destination_klaviyo.surfaces import Surface

logger = logging.getLogger("airbyte")

STATE_MAX_WAIT_SECONDS = 60.0


class UnknownStream(AirbyteTracedException):
    """A record whose stream the configured catalog does not list: the platform and we disagree."""


class KlaviyoWriter:
    def __init__(self, config: KlaviyoConfig, catalog: ConfiguredAirbyteCatalog, client: Optional[KlaviyoClient]) -> None:
        # Routing first: an unmapped stream or unsupported mode fails before any request.
        self.routes = route_catalog(config, catalog)
        self.config = config
        self.client = client
        self.report = SyncReport()
        self.ledger = StateLedger()
        self.sinks: dict[Any, Sink] = {}
        self._oldest_pending_state: Optional[float] = None
        for route in self.routes.values():
            logger.info(f"Stream '{route.name}' -> surface '{route.surface.value}' ({route.how}), mode {route.sync_mode.value}")

    def _route(self, record: dict[str, Any]) -> StreamRoute:
        name = record.get("stream")
        key: StreamKey = (record.get("namespace"), name or "")
        route = self.routes.get(key)
        if route is None:
            matches = [r for r in self.routes.values() if r.name == name]
            if len(matches) == 1:
                return matches[0]
            text = f"Received a record of stream '{name}', which is not in the configured catalog."
            raise UnknownStream(message=text, internal_message=text, failure_type=FailureType.system_error)
        return route

    def _sink_for(self, route: StreamRoute) -> Sink:
        if route.surface is Surface.PROFILES:
            sink = self.sinks.get(Surface.PROFILES)
            if sink is None:
                sink = BulkImportSink(self.client, self.report, dry_run=self.config.dry_run)
                self.sinks[Surface.PROFILES] = sink
            return sink
        raise NotImplementedError(route.surface.value)  # routing refuses unimplemented surfaces earlier

    def _lowest_pending(self) -> Optional[int]:
        pending = [seq for sink in self.sinks.values() if (seq := sink.lowest_pending_seq()) is not None]
        return min(pending) if pending else None

    def _released_states(self) -> Iterator[dict[str, Any]]:
        if self.config.dry_run:
            return
        yield from self.ledger.release(self._lowest_pending())
        if not self.ledger.pending():
            self._oldest_pending_state = None

    def flush_all(self) -> None:
        for sink in self.sinks.values():
            sink.flush()

    def write(self, messages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        try:
            yield from self._write(messages)
        except (KlaviyoApiError, KlaviyoUnreachable) as exc:
            self.report.log_summary("Sync summary (failed)")
            raise as_traced(exc) from None
        except BaseException:
            # Deliver what was read before the failure so its states can still be committed.
            try:
                self.flush_all()
                yield from self._released_states()
            except Exception as flush_exc:  # the original error is the one to report
                logger.error(f"Could not deliver buffered rows after the failure: {type(flush_exc).__name__}")
            self.report.log_summary("Sync summary (failed)")
            raise

    def _write(self, messages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for message in messages:
            kind = message["type"]
            if kind == "RECORD":
                record = message.get("record") or {}
                route = self._route(record)
                seq = self.ledger.next_record(route.key)
                ordinal = self.report.received(route.name)
                data = record.get("data")
                if not isinstance(data, dict):
                    self.report.rejected(route.name, ordinal, Rejection("invalid_record", "record data is not a JSON object"))
                else:
                    self._sink_for(route).add(seq, route.name, ordinal, data)
                yield from self._released_states()
            elif kind == "STATE":
                self.ledger.add_state(message)
                if self._oldest_pending_state is None:
                    self._oldest_pending_state = time.monotonic()
                elif time.monotonic() - self._oldest_pending_state > STATE_MAX_WAIT_SECONDS:
                    self.flush_all()
                yield from self._released_states()
            # LOG, TRACE and CONTROL messages from the source need no action here.
        self.flush_all()
        yield from self._released_states()
        if self.config.dry_run:
            dropped = self.ledger.discard()
            logger.info(f"Dry run: {dropped} state message(s) were not emitted, so a later real sync re-reads these rows.")
            self.report.log_summary("Dry run plan")
        else:
            self.report.log_summary()
