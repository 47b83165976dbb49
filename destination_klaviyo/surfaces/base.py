"""What a surface is: its name, and the description every other module asks instead of naming it.

A `SurfaceSpec` holds each per-surface fact in one place: the sync modes it honours, whether a
deletion row (`_ab_cdc_deleted_at`, `soft_delete`) is carried out or refused, whether a replace
mirrors, whether rows go to a list target, the scopes its requests need, its discover schema and
matching keys, how to build its sink, and whether only an explicit mapping may reach it. `writer`,
`routing`, `discover` and `spec` read these fields; none of them names a surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Optional

from airbyte_cdk.models import DestinationSyncMode

if TYPE_CHECKING:
    from destination_klaviyo.sinks import Sink, SinkContext


class Surface(str, Enum):
    PROFILES = "profiles"
    LIST_MEMBERSHIPS = "list_memberships"
    LIST_MEMBERSHIPS_BY_PROFILE_ID = "list_memberships_by_profile_id"
    PROFILE_DELETIONS = "profile_deletions"


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
    # Reached only when the user named it for the stream (a `streams` entry or a destination object),
    # never through `default_surface` or a stream's name: for surfaces whose every row is irreversible.
    explicit_only: bool = False
    # What a replace does on a surface that does not mirror, when that is not "nothing is removed"
    # (discover's schema description and the routing log say it instead of the generic warning).
    replace_note: Optional[str] = None
