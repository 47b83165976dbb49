"""One RECORD message in: which stream and surface it is for, whether the row may remove, which list
it goes to, and the sink that takes it. A row that cannot be taken is rejected here, by name and
reason (report.py), and the sync goes on; a record of a stream not in the catalog stops the sync.
"""

from __future__ import annotations

from typing import Any

from destination_klaviyo.batching import Entry
from destination_klaviyo.errors import system_error
from destination_klaviyo.mirror import MirrorPlan
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.report import SyncReport
from destination_klaviyo.routing import Routes, StreamRoute
from destination_klaviyo.sinks import SinkPool
from destination_klaviyo.state import StateLedger
from destination_klaviyo.surfaces import removing_surfaces
from destination_klaviyo.targets import TargetResolver

CDC_DELETED_AT = "_ab_cdc_deleted_at"


class RecordIntake:
    """Routes each record to its sink (after target resolution) and notes what the mirror needs."""

    def __init__(
        self,
        routes: Routes,
        ledger: StateLedger,
        report: SyncReport,
        targets: TargetResolver,
        sinks: SinkPool,
        mirror: MirrorPlan,
    ) -> None:
        self.routes = routes
        self.ledger = ledger
        self.report = report
        self.targets = targets
        self.sinks = sinks
        self.mirror = mirror

    def _route(self, record: Any) -> StreamRoute:
        if not isinstance(record, dict):
            raise system_error("Received a RECORD message whose `record` is not a JSON object.")
        name = record.get("stream") or ""
        route = self.routes.find(record.get("namespace"), name)
        if route is None:
            raise system_error(f"Received a record of stream '{name}', which is not in the configured catalog.")
        return route

    def accept(self, record: Any) -> None:
        """The busiest call of a sync: once per row."""
        route = self._route(record)
        row = Entry(self.ledger.next_record(route.key), route.name, self.report.received(route.name), route.key)
        data = record.get("data")
        if not isinstance(data, dict):
            self.report.rejected(row, Rejection("invalid_record", "record data is not a JSON object"))
            return
        remove = route.removes_every_row or data.get(CDC_DELETED_AT) is not None
        if remove and not route.spec.removes:
            self.report.rejected(
                row,
                Rejection(
                    "delete_not_supported",
                    f"row is a deletion ({CDC_DELETED_AT} is set) and the '{route.surface.value}' surface cannot remove; "
                    f"surfaces that carry out deletions: {', '.join(removing_surfaces())}",
                ),
            )
            return
        target = list_id = None
        if route.spec.needs_target:
            found = self.targets.target_of(route, data)
            if isinstance(found, Rejection):
                self.report.rejected(row, found)
                return
            target = found
            resolution = self.targets.resolve(target)
            if resolution.refusal is not None:
                self.report.rejected(row, resolution.refusal)
                return
            list_id = resolution.list_id
            self.mirror.note_target(route, target)
        self.sinks.get(route.spec, target, list_id).add(row, data, remove=remove)

    def stream_status(self, trace: dict[str, Any]) -> None:
        """The platform sends STREAM_STATUS COMPLETE per stream once the source finished cleanly."""
        status = trace.get("stream_status") or {}
        descriptor = status.get("stream_descriptor") or {}
        route = self.routes.find(descriptor.get("namespace"), descriptor.get("name") or "")
        if route is not None:
            self.mirror.stream_status(route, status.get("status"))
