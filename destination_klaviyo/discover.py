"""`discover` for Airbyte data activation: the destination objects (surfaces) and how each is written.

The Python CDK has no destination discover, and its own `AirbyteMessage` has no
`destination_catalog` field; the protocol models it depends on do (`DestinationCatalog`,
`DestinationOperation`, message type DESTINATION_CATALOG). So the entry point adds the command and
this module serializes the catalog with those models, from the same surface table that `spec` and
`write` use.
"""

from __future__ import annotations

from typing import Any

from airbyte_protocol_dataclasses.models import DestinationCatalog, DestinationOperation
from serpyco_rs import Serializer

from destination_klaviyo.rendering import LOCATION_KEYS
from destination_klaviyo.surfaces import MATCHING_KEYS, SUPPORTED_MODES, Surface

_STRING = {"type": ["null", "string"]}


def _profile_schema(with_profile_id: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "email": {**_STRING, "description": "Identifier: email address"},
        "phone_number": {**_STRING, "description": "Identifier: phone number in E.164 format"},
        "phone_e164": {**_STRING, "description": "Identifier: alias of phone_number"},
        "external_id": {**_STRING, "description": "Identifier: your system's id for the person"},
    }
    if with_profile_id:
        properties["klaviyo_profile_id"] = {**_STRING, "description": "Identifier: Klaviyo profile id"}
    for name in ("first_name", "last_name", "organization", "locale", "title", "image", "anonymous_id"):
        properties[name] = dict(_STRING)
    properties["location"] = {
        "type": ["null", "object"],
        "properties": {key: {"type": ["null", "string", "number"]} for key in sorted(LOCATION_KEYS)},
        "additionalProperties": False,
    }
    properties["properties"] = {"type": ["null", "object"], "description": "Custom profile properties"}
    return {
        "type": "object",
        "additionalProperties": True,
        "description": "Columns not listed here become custom profile properties.",
        "properties": properties,
    }


def _schema(surface: Surface) -> dict[str, Any]:
    if surface is Surface.LIST_MEMBERSHIPS_BY_PROFILE_ID:
        return {
            "type": "object",
            "required": ["klaviyo_profile_id"],
            "additionalProperties": True,
            "properties": {
                "klaviyo_profile_id": {"type": "string", "description": "Klaviyo profile id"},
                "list": {**_STRING, "description": "Target list name (column set by target_field)"},
            },
        }
    schema = _profile_schema(with_profile_id=surface is Surface.LIST_MEMBERSHIPS)
    if surface is Surface.LIST_MEMBERSHIPS:
        schema["properties"]["list"] = {**_STRING, "description": "Target list name (column set by target_field)"}
    return schema


def destination_catalog() -> DestinationCatalog:
    operations = [
        DestinationOperation(
            object_name=surface.value,
            sync_mode=mode,
            json_schema=_schema(surface),
            matching_keys=[[key] for key in MATCHING_KEYS[surface]],
        )
        for surface, modes in SUPPORTED_MODES.items()
        for mode in modes
    ]
    return DestinationCatalog(operations=operations)


_CATALOG_SERIALIZER = Serializer(DestinationCatalog, omit_none=True)


def discover_message() -> dict[str, Any]:
    return {"type": "DESTINATION_CATALOG", "destination_catalog": _CATALOG_SERIALIZER.dump(destination_catalog())}
