"""`discover` for Airbyte data activation: the destination objects (surfaces) and how each is written.

The Python CDK has no destination discover, and its own `AirbyteMessage` has no
`destination_catalog` field; the protocol models it depends on do (`DestinationCatalog`,
`DestinationOperation`, message type DESTINATION_CATALOG). So the entry point adds the command and
this module serializes the catalog with those models, from the same surface table that `spec` and
`write` use.
"""

from __future__ import annotations

from typing import Any

from airbyte_protocol_dataclasses.models import DestinationCatalog, DestinationOperation, DestinationSyncMode
from serpyco_rs import Serializer

from destination_klaviyo.surfaces import SURFACES, SurfaceSpec

# What the data-activation screen can pick. A replace is not a mode there: the platform expresses it
# with generation ids on an append stream (routing.py), so each schema says what a replace does.
DATA_ACTIVATION_MODES = (
    DestinationSyncMode.append,
    DestinationSyncMode.append_dedup,
    DestinationSyncMode.update,
    DestinationSyncMode.soft_delete,
)


def _schema(spec: SurfaceSpec, target_field: str) -> dict[str, Any]:
    schema = spec.schema(target_field)
    if spec.replace_note:
        replace = spec.replace_note
    elif spec.mirrors:
        replace = (
            "A replace (a full refresh overwrite, or a Refresh or Clear of the stream in Airbyte) mirrors each target "
            "list once the stream completes: members absent from the sync are removed."
        )
    else:
        replace = (
            "A replace (a full refresh overwrite, or a Refresh or Clear of the stream in Airbyte) writes the rows and "
            f"removes nothing: the {spec.surface.value} surface cannot remove what earlier syncs wrote."
        )
    schema["description"] = " ".join(filter(None, (schema.get("description"), replace)))
    return schema


def destination_catalog(target_field: str = "list") -> DestinationCatalog:
    operations = [
        DestinationOperation(
            object_name=surface.value,
            sync_mode=mode,
            json_schema=_schema(spec, target_field),
            matching_keys=[[key] for key in spec.matching_keys],
        )
        for surface, spec in SURFACES.items()
        for mode in DATA_ACTIVATION_MODES
        if mode in spec.modes
    ]
    return DestinationCatalog(operations=operations)


_CATALOG_SERIALIZER = Serializer(DestinationCatalog, omit_none=True)


def discover_message(target_field: str = "list") -> dict[str, Any]:
    catalog = _CATALOG_SERIALIZER.dump(destination_catalog(target_field))
    return {"type": "DESTINATION_CATALOG", "destination_catalog": catalog}
