"""Which Klaviyo surface each configured stream writes to, decided before any request is sent.

Order: the configured stream's `destination_object_name` (Airbyte data activation), then the
config's `streams` entry, then the stream's own name when it is a surface name, then
`default_surface`. A stream nothing maps, or a sync mode its surface cannot honour, is a
config_error naming the stream and the fix. A surface with per-stream options (events: the metric,
time column, ...; subscriptions: the channels) checks them here too (`SurfaceSpec.prepare`), so a
missing option also fails before any request; the route keeps what it prepared (`plan`), with the
stream's primary key and cursor from the configured catalog. A surface whose rows are irreversible
(`explicit_only`: profile deletions) is reached only by the first two rules, the user naming it for
the stream; `default_surface` may not name it at all.

Records and stream statuses find their route by one rule (`Routes.find`): the exact
(namespace, name) pair, else the one configured stream of that name.

A stream is a *replace* when its destination sync mode is a literal `overwrite` (`docker run ...
write`, platforms without refreshes), or when the platform marks it for truncation: with
`supportsRefreshes`, Airbyte rewrites `overwrite` to `append` and says "replace" with
`minimum_generation_id == generation_id > 0` (airbyte-platform `CatalogGenerationSetter`; the bulk
CDK reads it the same way). A full refresh overwrite, a "Refresh (remove records)" and a "Clear"
all arrive so. A replace mirrors on a surface that can; elsewhere rows are upserted and a warning
says which surface could remove.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from airbyte_cdk.models import ConfiguredAirbyteCatalog, ConfiguredAirbyteStream, DestinationSyncMode

from destination_klaviyo.config import KlaviyoConfig, StreamMapping
from destination_klaviyo.errors import config_error
from destination_klaviyo.state import StreamKey
from destination_klaviyo.surfaces import SURFACES, Surface, SurfaceSpec, surface_names

logger = logging.getLogger("airbyte")


@dataclass(frozen=True)
class StreamRoute:
    """A configured stream, the surface it writes to, and how."""

    key: StreamKey
    name: str
    spec: SurfaceSpec
    sync_mode: DestinationSyncMode
    default_target: Optional[str]
    how: str  # which rule mapped it, for logs
    replace: bool = False  # the platform (or a literal overwrite) asks to replace the stream's data
    options: Optional[StreamMapping] = None  # the stream's `streams` entry, if any
    primary_key: tuple[tuple[str, ...], ...] = ()  # paths into the record, from the configured catalog
    cursor_field: tuple[str, ...] = ()  # path into the record, from the configured catalog
    plan: Any = None  # the surface's `prepare(route)`: what its sink needs per stream

    @property
    def surface(self) -> Surface:
        return self.spec.surface

    @property
    def removes_every_row(self) -> bool:
        """soft_delete: every row of the stream is a deletion."""
        return self.sync_mode is DestinationSyncMode.soft_delete

    @property
    def mirrors(self) -> bool:
        """A replace on a surface that can mirror (a stream of removals cannot be mirrored)."""
        return self.replace and self.spec.mirrors and self.sync_mode is not DestinationSyncMode.soft_delete


def is_replace(configured: ConfiguredAirbyteStream) -> bool:
    """Literal `overwrite`, or the platform's truncate marker `minimum_generation_id == generation_id > 0`."""
    if configured.destination_sync_mode is DestinationSyncMode.overwrite:
        return True
    generation = configured.generation_id
    return generation is not None and generation > 0 and configured.minimum_generation_id == generation


def _warn_replace_without_mirror(route: StreamRoute) -> None:
    mirroring = " or ".join(surface.value for surface, spec in SURFACES.items() if spec.mirrors)
    if route.spec.replace_note:
        logger.warning(f"Stream '{route.name}' asks to replace its data: {route.spec.replace_note}")
    elif not route.spec.mirrors:
        hint = (
            f" To make a list hold exactly a stream's rows, map it to {mirroring}." if route.spec.needs_target else ""
        )
        logger.warning(
            f"Stream '{route.name}' asks to replace its data (a full refresh overwrite, a Refresh or a Clear), but the "
            f"'{route.surface.value}' surface cannot remove what earlier syncs wrote to Klaviyo: its rows are written "
            f"and nothing is removed.{hint}"
        )
    else:
        logger.warning(
            f"Stream '{route.name}' asks to replace its data, but it is in soft_delete mode (every row removes): "
            "no mirror runs, only its rows are removed."
        )


def _surface_from_name(value: str, where: str, stream: str) -> Surface:
    try:
        return Surface(value)
    except ValueError:
        raise config_error(
            f"Stream '{stream}': {where} '{value}' is not a Klaviyo surface. Use one of: {', '.join(surface_names())}."
        ) from None


def route_stream(config: KlaviyoConfig, configured: ConfiguredAirbyteStream) -> StreamRoute:
    name = configured.stream.name
    mapping = config.stream_mapping(name)
    explicit = True  # the user named the surface for this stream
    if configured.destination_object_name:
        surface = _surface_from_name(configured.destination_object_name, "destination object", name)
        how = "destination object"
    elif mapping is not None:
        surface, how = mapping.surface, "streams mapping"
    elif name in surface_names():
        surface, how, explicit = Surface(name), "stream name", False
    elif config.default_surface is not None:
        surface, how, explicit = config.default_surface, "default_surface", False
    else:
        raise config_error(
            f"Stream '{name}' is not mapped to a Klaviyo surface. Add a `streams` entry such as "
            f'{{"stream": "{name}", "surface": "profiles"}}, set `default_surface`, or pick a destination '
            f"object for it in the connection. Surfaces: {', '.join(surface_names())}."
        )
    spec = SURFACES[surface]
    if spec.explicit_only and not explicit:
        raise config_error(
            f"Stream '{name}' would go to the '{surface.value}' surface by its {how}, but that surface is reached only "
            f"by an explicit mapping, because every row of it is irreversible: add "
            f'{{"stream": "{name}", "surface": "{surface.value}"}} to `streams`, or pick it as the stream\'s '
            "destination object in the connection."
        )
    # The connection's choice first, then what the source declares.
    primary_key = configured.primary_key or configured.stream.source_defined_primary_key or []
    mode = configured.destination_sync_mode
    if mode not in spec.modes:
        allowed = ", ".join(m.value for m in spec.modes)
        raise config_error(
            f"Stream '{name}' uses destination sync mode '{mode.value}', which the '{surface.value}' surface "
            f"cannot honour. Choose one of: {allowed}."
        )
    route = StreamRoute(
        key=(configured.stream.namespace, name),
        name=name,
        spec=spec,
        sync_mode=mode,
        default_target=mapping.target if mapping else None,
        how=how,
        replace=is_replace(configured),
        options=mapping,
        primary_key=tuple(tuple(path) for path in primary_key if path),
        cursor_field=tuple(configured.cursor_field or configured.stream.default_cursor_field or ()),
    )
    if spec.prepare is not None:
        route = dataclasses.replace(route, plan=spec.prepare(route))
    if route.replace and not route.mirrors:
        _warn_replace_without_mirror(route)
    return route


class Routes:
    """The route of every configured stream, found by namespace and name."""

    def __init__(self, config: KlaviyoConfig, catalog: ConfiguredAirbyteCatalog) -> None:
        if not catalog.streams:
            raise config_error("The configured catalog has no streams: select at least one stream in the connection.")
        if config.default_surface is not None and SURFACES[config.default_surface].explicit_only:
            raise config_error(
                f"`default_surface` cannot be '{config.default_surface.value}': that surface is reached only by an "
                "explicit `streams` entry or destination object, never by default. Remove it from `default_surface` "
                "and map the stream(s) meant for it in `streams`."
            )
        self.by_key = {route.key: route for route in (route_stream(config, c) for c in catalog.streams)}

    def __iter__(self) -> Iterator[StreamRoute]:
        return iter(self.by_key.values())

    def log_choices(self) -> None:
        for route in self:
            logger.info(
                f"Stream '{route.name}' -> surface '{route.surface.value}' ({route.how}), mode {route.sync_mode.value}"
            )

    def find(self, namespace: Optional[str], name: str) -> Optional[StreamRoute]:
        """The stream `(namespace, name)`; else the one configured stream of that name, if only one."""
        route = self.by_key.get((namespace or None, name))
        if route is not None:
            return route
        matches = [r for r in self.by_key.values() if r.name == name]
        return matches[0] if len(matches) == 1 else None


def route_catalog(config: KlaviyoConfig, catalog: ConfiguredAirbyteCatalog) -> dict[StreamKey, StreamRoute]:
    return Routes(config, catalog).by_key
