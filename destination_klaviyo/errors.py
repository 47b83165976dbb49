"""Translate Klaviyo failures into Airbyte traces that tell the user what to fix.

- 401: the key is wrong (config_error);
- 403: the key lacks a scope; the scopes of the failing endpoint are named (config_error);
- 404 on a list: a mapped or registered list no longer exists (config_error);
- 429, 5xx and unreachable, once retries are spent: transient_error (Airbyte retries the sync);
- anything else: system_error quoting Klaviyo's error id, code and detail, with quoted values
  redacted because they can be personal data.
"""

from __future__ import annotations

import re

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.client import KlaviyoApiError, KlaviyoUnreachable
from destination_klaviyo.endpoints import ALL_SCOPES, endpoint_for

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LIST_PATH = re.compile(r"^/api/lists/([^/]+)")


def _missing_list(exc: KlaviyoApiError) -> bool:
    """A 404 about a list: on a list's own path, or a bulk job's `relationships.lists`."""
    if exc.status != 404:
        return False
    return bool(_LIST_PATH.match(exc.path)) or any("/relationships/lists" in (e.pointer or "") for e in exc.errors)


def redact_detail(text: str) -> str:
    """Klaviyo quotes offending values in error details; those can be personal data."""
    return _QUOTED.sub("'<redacted>'", text)


def _details(exc: KlaviyoApiError) -> str:
    parts = []
    for error in exc.errors:
        ident = ", ".join(f"{k} {v}" for k, v in (("id", error.id), ("code", error.code)) if v)
        parts.append(redact_detail(error.describe()) + (f" [{ident}]" if ident else ""))
    return "; ".join(parts) or "no details"


def explain(exc: Exception) -> str:
    """One actionable sentence for a failure talking to Klaviyo."""
    if isinstance(exc, KlaviyoUnreachable):
        return (
            f"Could not reach Klaviyo ({exc}). Check the network path from Airbyte to the Klaviyo API "
            "(proxy, firewall, DNS) and retry."
        )
    if isinstance(exc, KlaviyoApiError):
        details = _details(exc)
        if exc.status == 401:
            return (
                "Klaviyo rejected the private API key (401 not authenticated). Paste a valid private API key "
                "(Klaviyo > Settings > API keys; it starts with 'pk_') into `private_api_key`."
            )
        if exc.status == 403:
            endpoint = endpoint_for(exc.method, exc.path)
            needed = ", ".join(endpoint.scopes) if endpoint else ", ".join(ALL_SCOPES)
            return (
                f"The private API key lacks a scope needed for {exc.method} {exc.path} ({needed}; 403: {details}). "
                f"Edit the key in Klaviyo > Settings > API keys and grant: {', '.join(ALL_SCOPES)}."
            )
        if _missing_list(exc):
            list_match = _LIST_PATH.match(exc.path)
            which = (
                f"Klaviyo list {list_match.group(1)}"
                if list_match
                else f"The Klaviyo list of a bulk import job ({details})"
            )
            return (
                f"{which} does not exist (404). Fix or remove the entry that maps a target to it in "
                "`list_mappings` (or in `target_registry`), or map the target to an existing list."
            )
        if exc.status == 400 and any(e.pointer == "revision" for e in exc.errors):
            return f"Klaviyo does not accept the configured `api_revision` ({details}). Use a date revision such as 2026-04-15."
        if exc.status == 429 or exc.status >= 500:
            return (
                f"Klaviyo kept answering {exc.status} to {exc.method} {exc.path} after retries ({details}). "
                "This is usually temporary: the sync can be retried; rows after the last checkpoint are resent."
            )
        return f"Klaviyo answered {exc.status} to {exc.method} {exc.path}: {details}"
    return str(exc)


def failure_type(exc: Exception) -> FailureType:
    if isinstance(exc, KlaviyoUnreachable):
        return FailureType.transient_error
    if isinstance(exc, KlaviyoApiError):
        if exc.status in (401, 403) or _missing_list(exc):
            return FailureType.config_error
        if exc.status == 400 and any(e.pointer == "revision" for e in exc.errors):
            return FailureType.config_error
        if exc.status == 429 or exc.status >= 500:
            return FailureType.transient_error
    return FailureType.system_error


def as_traced(exc: Exception) -> AirbyteTracedException:
    message = explain(exc)
    return AirbyteTracedException(message=message, internal_message=message, failure_type=failure_type(exc))
