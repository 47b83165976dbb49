"""Translate Klaviyo failures into Airbyte traces that tell the user what to fix."""

from __future__ import annotations

import re

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.client import KlaviyoApiError, KlaviyoUnreachable
from destination_klaviyo.config import config_error

REQUIRED_SCOPES = "accounts:read, profiles:write, lists:read, lists:write"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def redact_detail(text: str) -> str:
    """Klaviyo quotes offending values in error details; those can be personal data."""
    return _QUOTED.sub("'<redacted>'", text)


def explain(exc: Exception) -> str:
    """One actionable sentence for a failure talking to Klaviyo."""
    if isinstance(exc, KlaviyoUnreachable):
        return (
            f"Could not reach Klaviyo ({exc}). Check the network path from Airbyte to the Klaviyo API "
            "(proxy, firewall, DNS) and retry."
        )
    if isinstance(exc, KlaviyoApiError):
        details = "; ".join(redact_detail(e.describe()) for e in exc.errors) or "no details"
        if exc.status == 401:
            return (
                "Klaviyo rejected the private API key (401 not authenticated). Paste a valid private API key "
                "(Klaviyo > Settings > API keys; it starts with 'pk_') into `private_api_key`."
            )
        if exc.status == 403:
            return (
                f"The private API key lacks a scope needed for {exc.method} {exc.path} (403: {details}). "
                f"Give the key these scopes: {REQUIRED_SCOPES}."
            )
        if exc.status == 400 and any(
            e.pointer in ("revision",) or (e.code or "").startswith("invalid_revision") for e in exc.errors
        ):
            return f"Klaviyo does not accept the configured `api_revision` ({details}). Use a date revision such as 2026-04-15."
        return f"Klaviyo answered {exc.status} to {exc.method} {exc.path}: {details}"
    return str(exc)


def as_traced(exc: Exception) -> AirbyteTracedException:
    """Auth and scope problems are the user's to fix (config_error); everything else is a system error."""
    message = explain(exc)
    if isinstance(exc, KlaviyoApiError) and exc.status in (401, 403):
        return config_error(message)
    if isinstance(exc, KlaviyoApiError) and exc.status == 400 and "api_revision" in message:
        return config_error(message)
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
