"""Which Klaviyo surface each configured stream writes to, decided before any request is sent.

Order: the configured stream's `destination_object_name` (Airbyte data activation), then the
config's `streams` entry, then the stream's own name when it is a surface name, then
`default_surface`. A stream nothing maps, or a sync mode its surface cannot honour, is a
config_error naming the stream and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from airbyte_cdk.models import ConfiguredAirbyteCatalog, ConfiguredAirbyteStream, DestinationSyncMode

from destination_klaviyo.config import KlaviyoConfig, config_error
from destination_klaviyo.state import StreamKey
from destination_klaviyo.surfaces import SUPPORTED_MODES, Surface

SURFACE_NAMES = ", ".join(s.value for s in Surface)


@dataclass(frozen=True)
class StreamRoute:
    key: StreamKey
    name: str
    surface: Surface
    sync_mode: DestinationSyncMode
    default_target: Optional[str]
    how: str  # which rule mapped it, for logs


def _surface_from_name(value: str, where: str, stream: str) -> Surface:
    try:
        return Surface(value)
    except ValueError:
        raise config_error(
            f"Stream '{stream}': {where} '{value}' is not a Klaviyo surface. Use one of: {SURFACE_NAMES}."
        ) from None


def route_stream(config: KlaviyoConfig, configured: ConfiguredAirbyteStream) -> StreamRoute:
    name = configured.stream.name
    mapping = config.stream_mapping(name)
    if configured.destination_object_name:
        surface = _surface_from_name(configured.destination_object_name, "destination object", name)
        how = "destination object"
    elif mapping is not None:
        surface, how = mapping.surface, "streams mapping"
    elif name in {s.value for s in Surface}:
        surface, how = Surface(name), "stream name"
    elif config.default_surface is not None:
        surface, how = config.default_surface, "default_surface"
    else:
        raise config_error(
            f"Stream '{name}' is not mapped to a Klaviyo surface. Add a `streams` entry such as "
            f'{{"stream": "{name}", "surface": "profiles"}}, set `default_surface`, or pick a destination '
            f"object for it in the connection. Surfaces: {SURFACE_NAMES}."
        )
    if surface not in SUPPORTED_MODES:
        raise config_error(
            f"Stream '{name}' is mapped (by {how}) to the '{surface.value}' surface, which this version of "
            f"destination-klaviyo does not implement yet. Map it to: "
            + ", ".join(s.value for s in SUPPORTED_MODES)
            + "."
        )
    mode = configured.destination_sync_mode
    if mode not in SUPPORTED_MODES[surface]:
        allowed = ", ".join(m.value for m in SUPPORTED_MODES[surface])
        raise config_error(
            f"Stream '{name}' uses destination sync mode '{mode.value}', which the '{surface.value}' surface "
            f"cannot honour. Choose one of: {allowed}."
        )
    return StreamRoute(
        key=(configured.stream.namespace, name),
        name=name,
        surface=surface,
        sync_mode=mode,
        default_target=mapping.target if mapping else None,
        how=how,
    )


def route_catalog(config: KlaviyoConfig, catalog: ConfiguredAirbyteCatalog) -> dict[StreamKey, StreamRoute]:
    routes = [route_stream(config, configured) for configured in catalog.streams]
    return {route.key: route for route in routes}
