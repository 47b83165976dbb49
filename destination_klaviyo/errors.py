"""One path from a failure to the Airbyte trace a user reads.

Below the writer, code raises typed exceptions (`KlaviyoApiError`, `KlaviyoUnreachable`,
`MissingList`) or returns a `Rejection` for one bad row; only this module builds an
`AirbyteTracedException`. `classify` is the single table from a failure to (failure type,
message):

- 401: the key is wrong (config_error);
- 403: the key lacks a scope; the scopes of the failing endpoint are named (config_error);
- 404 on a list: a mapped or registered list no longer exists (config_error, naming the target
  and the list id when the sink that sent it knows them);
- bulk import jobs Klaviyo had not finished in time, which removals must follow: transient_error;
- 400 on the `revision` header: the configured `api_revision` (config_error);
- 429, 5xx and unreachable, once retries are spent: transient_error (Airbyte retries the sync);
- SIGTERM (`StopRequested`): transient_error, so a stopped sync is retried, never taken as done;
- anything else from Klaviyo: system_error quoting Klaviyo's error id, code and detail, with
  quoted values redacted because they can be personal data.

Messages say what to fix and name fields, never values.
"""

from __future__ import annotations

import re
from typing import Optional

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.client import KlaviyoApiError, KlaviyoUnreachable
from destination_klaviyo.endpoints import ALL_SCOPES, endpoint_for

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LIST_PATH = re.compile(r"^/api/lists/([^/]+)")


def _traced(message: str, failure_type: FailureType) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=message, failure_type=failure_type)


def config_error(message: str) -> AirbyteTracedException:
    """The user must change something (config, key, mapping); Airbyte does not retry."""
    return _traced(message, FailureType.config_error)


def transient_error(message: str) -> AirbyteTracedException:
    """Klaviyo or the network is having trouble; Airbyte retries the sync."""
    return _traced(message, FailureType.transient_error)


def system_error(message: str) -> AirbyteTracedException:
    """Something the platform or Klaviyo did that neither the user nor a retry can fix."""
    return _traced(message, FailureType.system_error)


class MissingList(Exception):
    """Klaviyo answered 404 for a list a sink wrote to: the mapping or registry entry is stale."""

    def __init__(self, list_id: Optional[str], target: Optional[str]) -> None:
        super().__init__(f"list {list_id} of target {target} does not exist")
        self.list_id = list_id
        self.target = target


class ImportsPending(Exception):
    """Klaviyo had not finished bulk import jobs that list removals (or a mirror) must follow."""

    def __init__(self, job_ids: list[str], waited_seconds: float) -> None:
        super().__init__(f"{len(job_ids)} bulk import job(s) still running after {waited_seconds:.0f}s")
        self.job_ids = job_ids
        self.waited_seconds = waited_seconds


class StopRequested(Exception):
    """The platform (or Kubernetes) asked the connector to stop with SIGTERM (stopping.py)."""


def is_missing_list(exc: KlaviyoApiError) -> bool:
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


_STALE_LIST_FIX = (
    "Fix or remove the entry that maps a target to it in `list_mappings` (or in `target_registry`), "
    "or map the target to an existing list."
)


def _classify_api_error(exc: KlaviyoApiError) -> tuple[FailureType, str]:
    details = _details(exc)
    if exc.status == 401:
        return FailureType.config_error, (
            "Klaviyo rejected the private API key (401 not authenticated). Paste a valid private API key "
            "(Klaviyo > Settings > API keys; it starts with 'pk_') into `private_api_key`."
        )
    if exc.status == 403:
        endpoint = endpoint_for(exc.method, exc.path)
        needed = ", ".join(endpoint.scopes) if endpoint else ", ".join(ALL_SCOPES)
        return FailureType.config_error, (
            f"The private API key lacks a scope needed for {exc.method} {exc.path} ({needed}; 403: {details}). "
            f"Edit the key in Klaviyo > Settings > API keys and grant {needed} (the scopes each surface needs are "
            "listed in the docs: grant only those of the surfaces you use)."
        )
    if is_missing_list(exc):
        list_match = _LIST_PATH.match(exc.path)
        which = (
            f"Klaviyo list {list_match.group(1)}"
            if list_match
            else f"The Klaviyo list of a bulk import job ({details})"
        )
        return FailureType.config_error, f"{which} does not exist (404). {_STALE_LIST_FIX}"
    if exc.status == 400 and any(e.pointer == "revision" for e in exc.errors):
        return FailureType.config_error, (
            f"Klaviyo does not accept the configured `api_revision` ({details}). Use a date revision such as 2026-04-15."
        )
    if exc.status == 429 or exc.status >= 500:
        return FailureType.transient_error, (
            f"Klaviyo kept answering {exc.status} to {exc.method} {exc.path} after retries for the whole retry "
            f"budget (`retry_budget_seconds`) ({details}). This is usually temporary: the sync can be retried; "
            "rows after the last checkpoint are resent. If other apps often use up the account's rate limits "
            "for longer, raise `retry_budget_seconds`."
        )
    return FailureType.system_error, f"Klaviyo answered {exc.status} to {exc.method} {exc.path}: {details}"


def classify(exc: BaseException) -> tuple[FailureType, str]:
    """The failure type and the one actionable message for any failure of a command."""
    if isinstance(exc, AirbyteTracedException):
        return exc.failure_type or FailureType.system_error, exc.message or str(exc)
    if isinstance(exc, KlaviyoUnreachable):
        return FailureType.transient_error, (
            f"Could not reach Klaviyo ({exc}). Check the network path from Airbyte to the Klaviyo API "
            "(proxy, firewall, DNS) and retry."
        )
    if isinstance(exc, KlaviyoApiError):
        return _classify_api_error(exc)
    if isinstance(exc, ImportsPending):
        return FailureType.transient_error, (
            f"Klaviyo had not finished {len(exc.job_ids)} bulk import job(s) of this sync after "
            f"{exc.waited_seconds:.0f}s ({', '.join(exc.job_ids[:5])}), so the list removals that follow them were "
            "not sent: a removal sent before its import is processed would be undone by it. Rows after the last "
            "checkpoint are sent again when the sync is retried."
        )
    if isinstance(exc, StopRequested):
        return FailureType.transient_error, (
            "The sync was stopped by SIGTERM (Airbyte cancelled it, or the machine it ran on is shutting down). "
            "States of the rows Klaviyo had accepted were echoed; the next attempt resumes from the last one."
        )
    if isinstance(exc, MissingList):
        return FailureType.config_error, (
            f"Klaviyo list {exc.list_id} (target '{exc.target}') does not exist (404). {_STALE_LIST_FIX}"
        )
    return FailureType.system_error, f"{type(exc).__name__}: {redact_detail(str(exc))}"


def explain(exc: BaseException) -> str:
    """The message of `classify`, for `check`'s connection status."""
    return classify(exc)[1]


def as_traced(exc: BaseException) -> AirbyteTracedException:
    if isinstance(exc, AirbyteTracedException):
        return exc
    failure_type, message = classify(exc)
    return _traced(message, failure_type)
