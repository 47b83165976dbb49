"""Bulk write endpoints beyond profile imports: events, consent and data-privacy deletion.
Mixed into :class:`server.KlaviyoHandler`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .validation import parse_json_body
from .validation_events import validate_bulk_events

if TYPE_CHECKING:  # pragma: no cover
    from .server import Response


class BulkWritesMixin:
    """POST handlers for the event, consent and deletion jobs."""

    def _json_doc(self, body: bytes) -> dict[str, Any]:
        parsed = getattr(self, "_parsed_body", None)
        return parsed if isinstance(parsed, dict) else parse_json_body(body)

    # ---------------------------------------------------------------- events
    def _post_event_bulk_create(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        store = self.store  # type: ignore[attr-defined]
        entries = validate_bulk_events(self._json_doc(body), store.now())
        store.bulk_create_events(entries, len(body))
        self._items = sum(len(e.events) for e in entries)  # type: ignore[attr-defined]
        # Spec: 202 "Success" with no response body.
        return 202, None, {}
