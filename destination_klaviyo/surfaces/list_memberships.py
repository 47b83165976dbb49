"""`list_memberships`: upsert profiles and add them to the row's target list, in one bulk import.

The same Bulk Profile Import jobs as `profiles`, with `relationships.lists` set to the target's
list, so there is one job stream per list. `klaviyo_profile_id` is accepted as an identifier (the
profile resource `id`), and the target column steers the row instead of becoming a property.
"""

from __future__ import annotations

from typing import Any

from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, Surface, SurfaceSpec
from destination_klaviyo.surfaces.profiles import MATCHING_KEYS, SCOPES, BulkImportSink, profile_schema


def schema(target_field: str) -> dict[str, Any]:
    found = profile_schema(with_profile_id=True)
    found["properties"][target_field] = {**STRING, "description": "Target list name (the `target_field` column)"}
    return found


SPEC = SurfaceSpec(
    surface=Surface.LIST_MEMBERSHIPS,
    summary="upserts profiles and adds them to the row's target list",
    modes=UPSERT_MODES,
    matching_keys=MATCHING_KEYS + ("klaviyo_profile_id",),
    scopes=SCOPES,
    needs_target=True,
    removes=False,
    mirrors=False,
    schema=schema,
    make_sink=lambda context, target, list_id: BulkImportSink(
        context, target, list_id, accept_profile_id=True, excluded_columns=(context.target_field,)
    ),
)
