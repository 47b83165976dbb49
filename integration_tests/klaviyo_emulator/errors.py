"""JSON:API error objects shaped like Klaviyo's.

Klaviyo answers every failure with ``{"errors": [{id, status, code, title,
detail, source, links, meta}]}`` (the spec's 4XX/5XX schema requires id, code,
title and detail; live responses also carry ``status``, ``links`` and
``meta``).  Handlers raise :class:`ApiError`; the server turns it into that
body so every error path is shaped the same way.
"""

from __future__ import annotations

import uuid
from typing import Any, Optional

# Default (code, title) per HTTP status, following the codes Klaviyo uses.
_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("invalid", "Invalid input."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    409: ("conflict", "Conflict."),
    413: ("request_too_large", "Request entity too large."),
    415: ("unsupported_media_type", "Unsupported media type."),
    429: ("throttled", "Request was throttled."),
    500: ("error", "A server error occurred."),
    502: ("bad_gateway", "Bad gateway."),
    503: ("service_unavailable", "Service unavailable."),
    504: ("gateway_timeout", "Gateway timeout."),
}


def default_code_title(status: int) -> tuple[str, str]:
    """Return Klaviyo-like ``(code, title)`` for an HTTP status."""
    if status in _DEFAULTS:
        return _DEFAULTS[status]
    if status >= 500:
        return _DEFAULTS[500]
    return _DEFAULTS[400]


class ApiError(Exception):
    """A request failure that becomes one JSON:API error object.

    Raised anywhere inside request handling so validation code stays linear;
    ``headers`` lets throttling errors carry ``Retry-After``.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: Optional[str] = None,
        title: Optional[str] = None,
        pointer: Optional[str] = None,
        parameter: Optional[str] = None,
        headers: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(detail)
        dcode, dtitle = default_code_title(status)
        self.status = status
        self.code = code or dcode
        self.title = title or dtitle
        self.detail = detail
        self.pointer = pointer
        self.parameter = parameter
        self.headers = dict(headers or {})

    def to_error_object(self) -> dict[str, Any]:
        """Build the single error object placed in the ``errors`` array."""
        source: dict[str, str] = {}
        if self.pointer is not None:
            source["pointer"] = self.pointer
        if self.parameter is not None:
            source["parameter"] = self.parameter
        if not source:
            source["pointer"] = "/data/"
        return {
            "id": str(uuid.uuid4()),
            "status": self.status,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": source,
            "links": {},
            "meta": {},
        }

    def to_document(self) -> dict[str, Any]:
        """Build the full ``{"errors": [...]}`` response document."""
        return {"errors": [self.to_error_object()]}
