"""What a surface is: its name, and the description every other module asks instead of naming it.

A `SurfaceSpec` holds each per-surface fact in one place: the sync modes it honours, whether a
deletion row (`_ab_cdc_deleted_at`, `soft_delete`) is carried out or refused, whether a replace
mirrors, whether rows go to a list target, the scopes its requests need, its discover schema and
matching keys, how to build its sink, whether only an explicit mapping may reach it, whether it
changes consent, and (optionally) how it checks a stream's per-stream options at routing time and
what `check` asks Klaviyo to prove the key may write to it. `writer`, `routing`, `discover`,
`destination` and `spec` read these fields; none of them names a surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Optional

from airbyte_cdk.models import DestinationSyncMode

if TYPE_CHECKING:
    from destination_klaviyo.client import KlaviyoClient
    from destination_klaviyo.routing import StreamRoute
    from destination_klaviyo.sinks import Sink, SinkContext


class Surface(str, Enum):
    PROFILES = "profiles"
    LIST_MEMBERSHIPS = "list_memberships"
    LIST_MEMBERSHIPS_BY_PROFILE_ID = "list_memberships_by_profile_id"
    EVENTS = "events"
    SUBSCRIPTIONS = "subscriptions"
    SUPPRESSIONS = "suppressions"
    PROFILE_DELETIONS = "profile_deletions"


class ConsentChannel(str, Enum):
    """The consent channels the `subscriptions` surface sets: a per-stream option and a row column each."""

    EMAIL_MARKETING = "email_marketing"
    SMS_MARKETING = "sms_marketing"
    SMS_TRANSACTIONAL = "sms_transactional"


UPSERT_MODES: tuple[DestinationSyncMode, ...] = (
    DestinationSyncMode.append,
    DestinationSyncMode.append_dedup,
    DestinationSyncMode.update,
)

STRING = {"type": ["null", "string"]}


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one instance per surface
class SurfaceSpec:
    """Everything the connector needs to know about one surface, outside the surface's own module."""

    surface: Surface
    summary: str  # what a row does there, for logs and messages
    modes: tuple[DestinationSyncMode, ...]  # destination sync modes honoured; any other is a config_error
    matching_keys: tuple[str, ...]  # discover's matching keys: the columns a row is matched on
    scopes: tuple[str, ...]  # Klaviyo scopes its requests need
    needs_target: bool  # rows go to a list named by the target column / stream target
    removes: bool  # a deletion row is carried out (removed), not rejected
    mirrors: bool  # a replace makes the target list hold exactly this sync's rows
    schema: Callable[[str], dict[str, Any]]  # discover schema, given the configured target column
    make_sink: Callable[["SinkContext", Optional[str], Optional[str]], "Sink"]  # (context, target, list_id)
    # At routing time, before any request: validate the stream's per-stream options (a config_error
    # naming the stream and the field) and return what the sink needs to render its rows, kept on
    # the route as `plan` and handed to sinks through `SinkContext.plans`.
    prepare: Optional[Callable[["StreamRoute"], Any]] = None
    # For `check`: a request that changes nothing and fails with 403 when the key lacks the write
    # scope of this surface (a read cannot prove a write scope).
    probe: Optional[Callable[["KlaviyoClient"], None]] = None
    # Reached only when the user named it for the stream (a `streams` entry or a destination object),
    # never through `default_surface` or a stream's name: for surfaces whose every row is irreversible.
    explicit_only: bool = False
    # What a replace does on a surface that does not mirror, when that is not "nothing is removed"
    # (discover's schema description and the routing log say it instead of the generic warning).
    replace_note: Optional[str] = None
    # Its rows change consent (subscribe, unsubscribe, suppress): never suggested as a way to remove
    # list members, and documented for marketers.
    changes_consent: bool = False
