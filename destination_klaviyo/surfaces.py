"""The three Klaviyo surfaces and the sync modes each one honours.

This table is the single source of truth for `spec`, `discover` and the up-front catalog check in
`write`, so that what the connector advertises is exactly what it accepts.
"""

from __future__ import annotations

from enum import Enum

from airbyte_cdk.models import DestinationSyncMode


class Surface(str, Enum):
    PROFILES = "profiles"
    LIST_MEMBERSHIPS = "list_memberships"
    LIST_MEMBERSHIPS_BY_PROFILE_ID = "list_memberships_by_profile_id"


UPSERT_MODES: tuple[DestinationSyncMode, ...] = (
    DestinationSyncMode.append,
    DestinationSyncMode.append_dedup,
    DestinationSyncMode.update,
)

# The destination sync modes each surface honours:
# - upsert modes: profiles upsert; list_memberships upsert and add; by_profile_id adds (a row with
#   `_ab_cdc_deleted_at` set is removed instead);
# - soft_delete (by_profile_id only): every row is removed from its list;
# - overwrite (by_profile_id only): mirror. Rows are added, then the list's members absent from this
#   sync are removed, once the stream is complete.
SUPPORTED_MODES: dict[Surface, tuple[DestinationSyncMode, ...]] = {
    Surface.PROFILES: UPSERT_MODES,
    Surface.LIST_MEMBERSHIPS: UPSERT_MODES,
    Surface.LIST_MEMBERSHIPS_BY_PROFILE_ID: UPSERT_MODES
    + (DestinationSyncMode.soft_delete, DestinationSyncMode.overwrite),
}

# The columns a surface matches profiles on (matching keys of `discover`).
MATCHING_KEYS: dict[Surface, tuple[str, ...]] = {
    Surface.PROFILES: ("email", "phone_number", "external_id"),
    Surface.LIST_MEMBERSHIPS: ("email", "phone_number", "external_id", "klaviyo_profile_id"),
    Surface.LIST_MEMBERSHIPS_BY_PROFILE_ID: ("klaviyo_profile_id",),
}


LIST_SURFACES = frozenset({Surface.LIST_MEMBERSHIPS, Surface.LIST_MEMBERSHIPS_BY_PROFILE_ID})


def all_supported_modes() -> list[DestinationSyncMode]:
    """Union of the modes of every implemented surface, in protocol order, for the spec."""
    wanted = {m for modes in SUPPORTED_MODES.values() for m in modes}
    return [m for m in DestinationSyncMode if m in wanted]
