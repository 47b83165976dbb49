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

# Surfaces implemented by this version, with the destination sync modes each honours.
SUPPORTED_MODES: dict[Surface, tuple[DestinationSyncMode, ...]] = {
    Surface.PROFILES: UPSERT_MODES,
}

# Identifier columns a surface matches profiles on, as (column, rendered Klaviyo key).
MATCHING_KEYS: dict[Surface, tuple[str, ...]] = {
    Surface.PROFILES: ("email", "phone_number", "external_id"),
    Surface.LIST_MEMBERSHIPS: ("email", "phone_number", "external_id", "klaviyo_profile_id"),
    Surface.LIST_MEMBERSHIPS_BY_PROFILE_ID: ("klaviyo_profile_id",),
}


def implemented_surfaces() -> list[Surface]:
    return [s for s in Surface if s in SUPPORTED_MODES]


def all_supported_modes() -> list[DestinationSyncMode]:
    """Union of the modes of every implemented surface, in protocol order, for the spec."""
    wanted = {m for modes in SUPPORTED_MODES.values() for m in modes}
    return [m for m in DestinationSyncMode if m in wanted]
