"""The surfaces a stream can write to, and the one registry of what each can do.

Each surface is one module (its rendering, batch envelope and limits, `Sink` subclass, discover
schema and matching keys) that ends with a `SPEC`; `SURFACES` maps a `Surface` to it. Adding a
surface: a module here, one line in `SURFACES`, one client method and one `endpoints.py` entry,
the emulator route, docs and tests (README, "Adding a surface").
"""

from __future__ import annotations

from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.surfaces import (
    events,
    list_memberships,
    list_memberships_by_profile_id,
    profile_deletions,
    profiles,
    subscriptions,
    suppressions,
)
from destination_klaviyo.surfaces.base import Surface, SurfaceSpec

SURFACES: dict[Surface, SurfaceSpec] = {
    spec.surface: spec
    for spec in (
        profiles.SPEC,
        list_memberships.SPEC,
        list_memberships_by_profile_id.SPEC,
        events.SPEC,
        subscriptions.SPEC,
        suppressions.SPEC,
        profile_deletions.SPEC,
    )
}

# Derived views, for the spec and tests.
SUPPORTED_MODES: dict[Surface, tuple[DestinationSyncMode, ...]] = {s: spec.modes for s, spec in SURFACES.items()}


def surface_names() -> list[str]:
    return [surface.value for surface in SURFACES]


def default_surface_names() -> list[str]:
    """The surfaces `default_surface` may name: not those only an explicit mapping may reach."""
    return [surface.value for surface, spec in SURFACES.items() if not spec.explicit_only]


def all_supported_modes() -> list[DestinationSyncMode]:
    """Union of the modes of every surface, in protocol order, for the spec."""
    wanted = {m for spec in SURFACES.values() for m in spec.modes}
    return [m for m in DestinationSyncMode if m in wanted]


def removing_surfaces() -> list[str]:
    """The surfaces whose deletion rows remove list members, for messages that point users at them.

    The consent surfaces carry out deletion rows too, but an unsubscribe is not a way to take someone
    off a list, so they are never suggested for it.
    """
    return [
        surface.value
        for surface, spec in SURFACES.items()
        if spec.removes and spec.needs_target and not spec.changes_consent
    ]


__all__ = [
    "SURFACES",
    "SUPPORTED_MODES",
    "Surface",
    "SurfaceSpec",
    "all_supported_modes",
    "default_surface_names",
    "removing_surfaces",
    "surface_names",
]
