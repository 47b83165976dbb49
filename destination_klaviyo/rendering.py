"""The rules that turn a row's columns into Klaviyo profile data, or into a reason they cannot be.

Surface modules compose these (profiles.py renders a profile resource from them, events.py an
event and its profile). Rules (shared with condor-retl-klaviyo): identifier columns `email`,
`phone_e164`/`phone_number` and `external_id` (and, on `list_memberships`, `klaviyo_profile_id` as
the resource `id`) are read by identifiers.py; the columns named in PROFILE_ATTRIBUTES become
profile attributes; flat location columns (LOCATION_KEYS: `city`, `country`, `zip`...) go into
`location`; every other column goes into `properties`.
Nulls are dropped everywhere because Klaviyo's bulk import never clears a field with a null, and an
unset field must never be cleared. Values Klaviyo would reject for the whole job (malformed
emails, phone numbers that are not E.164, wrong types, unknown location keys, numbers JSON cannot
carry, oversize profiles) are rejected per record, here, in identifiers.py (emails, phone numbers)
and in totality.py (what JSON cannot carry, size), so one bad row cannot fail a 10,000-profile job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from destination_klaviyo.identifiers import IDENTIFIER_COLUMNS, PROFILE_ID_COLUMN, as_text
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.totality import CONTAINERS, MAX_DEPTH, TooDeep, strip_nulls

PROFILE_ATTRIBUTES = (
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "location",
    "anonymous_id",
    "properties",
)
_ATTRIBUTE_SET = frozenset(PROFILE_ATTRIBUTES)
STRING_ATTRIBUTES = _ATTRIBUTE_SET - {"location", "properties"}
LOCATION_KEYS = frozenset(
    {"address1", "address2", "city", "country", "latitude", "longitude", "region", "zip", "timezone", "ip"}
)
# Airbyte bookkeeping columns (CDC and raw-table metadata) describe the sync, not the person.
META_PREFIXES = ("_ab_", "_airbyte_")
IDENTIFIER_SKIP = frozenset(IDENTIFIER_COLUMNS) | {PROFILE_ID_COLUMN}
_LOCATION_SCALARS = frozenset({str, int, float})  # checked by class first: the common case needs no isinstance


def _stripped(column: str, value: Any) -> Any:
    """`strip_nulls(value)`, or the rejection of a column nested deeper than MAX_DEPTH."""
    try:
        return strip_nulls(value)
    except TooDeep:
        return _too_deep(column)


def _too_deep(column: str) -> Rejection:
    return Rejection("too_deep", f"column '{column}' nests objects or arrays deeper than {MAX_DEPTH} levels")


def _attribute(column: str, value: Any) -> Union[Any, Rejection]:
    if column in STRING_ATTRIBUTES:
        return as_text(column, value, allow_numbers=True)
    if not isinstance(value, dict):
        return Rejection("invalid_value", f"column '{column}' must be a JSON object, got {type(value).__name__}")
    if column == "location":
        # Klaviyo's location values are scalars: dropping null members is all the cleaning needed.
        cleaned = {}
        for key, item in value.items():
            if item is None:
                continue
            if key not in LOCATION_KEYS:
                unknown = sorted(set(value) - LOCATION_KEYS)
                return Rejection(
                    "invalid_value",
                    f"column 'location' has keys Klaviyo does not accept: {', '.join(unknown)}"
                    f" (allowed: {', '.join(sorted(LOCATION_KEYS))})",
                )
            if item.__class__ not in _LOCATION_SCALARS and isinstance(item, (dict, list, bool)):
                return Rejection("invalid_value", f"column 'location' key '{key}' must be a string or a number")
            cleaned[key] = item
        return cleaned
    return _stripped(column, value)


# Where a column goes, decided once per set of column names (rows of a stream share them), not per
# row and column: the row is then rendered kind by kind, with no per-column classification.
_SKIP, _TEXT, _OBJECT, _LOCATION, _PROPERTY = "skip", "text attribute", "object attribute", "location key", "property"
# Bounded: a source whose rows each have other column names must not grow the cache forever.
MAX_COLUMN_PLANS = 10_000


def _column_kind(column: str, excluded_columns: tuple[str, ...]) -> str:
    if column in IDENTIFIER_SKIP or column in excluded_columns or column.startswith(META_PREFIXES):
        return _SKIP
    if column in STRING_ATTRIBUTES:
        return _TEXT
    if column in _ATTRIBUTE_SET:
        return _OBJECT
    if column in LOCATION_KEYS:
        return _LOCATION
    return _PROPERTY


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """The columns of one set of column names, by what each becomes (in the row's column order)."""

    text: tuple[str, ...]  # string profile attributes (first_name, title, ...)
    objects: tuple[str, ...]  # object attributes: `location`, `properties`
    flat_location: tuple[str, ...]  # flat location columns (city, zip, ...)
    others: tuple[str, ...]  # every other column that is sent: custom (or event) properties


_PLANS: dict[tuple[tuple[str, ...], tuple[str, ...]], ColumnPlan] = {}


def column_plan(columns: tuple[str, ...], excluded_columns: tuple[str, ...]) -> ColumnPlan:
    key = (columns, excluded_columns)
    plan = _PLANS.get(key)
    if plan is None:
        kinds = [(column, _column_kind(column, excluded_columns)) for column in columns]
        plan = ColumnPlan(*(tuple(c for c, k in kinds if k is kind) for kind in (_TEXT, _OBJECT, _LOCATION, _PROPERTY)))
        if len(_PLANS) < MAX_COLUMN_PLANS:
            _PLANS[key] = plan
    return plan


def _split_columns(
    data: Mapping[str, Any], identifiers: dict[str, Any], excluded_columns: tuple[str, ...]
) -> Union[tuple[dict[str, Any], Optional[dict[str, Any]], dict[str, Any]], Rejection]:
    """The one pass over a row's columns that every surface rendering a profile shares:
    (profile attributes, the `properties` column, every other column), or why the row cannot go.

    Flat location columns (`city`, `country`, `zip`... LOCATION_KEYS) go into `location`, as Segment
    and Census do. A `location` object wins for the keys it has, and flat columns fill the keys it
    lacks: a column then always means the same thing, whether or not a row's `location` is null,
    rather than switching between a location key and a custom property row by row.
    """
    plan = column_plan(tuple(data), excluded_columns)
    attributes: dict[str, Any] = dict(identifiers)
    for column in plan.text:
        value = data[column]
        if value is None:
            continue
        if value.__class__ is not str:
            value = as_text(column, value, allow_numbers=True)
            if value.__class__ is Rejection:
                return value  # type: ignore[no-any-return]
        attributes[column] = value
    nested: Optional[dict[str, Any]] = None
    for column in plan.objects:
        value = data[column]
        if value is None:
            continue
        rendered = _attribute(column, value)
        if rendered.__class__ is Rejection:
            return rendered  # type: ignore[no-any-return]
        if column == "properties":
            nested = rendered
        elif rendered != {}:
            attributes[column] = rendered
    if plan.flat_location:
        flat = {column: value for column in plan.flat_location if (value := data[column]) is not None}
        if flat:
            for column, value in flat.items():
                if isinstance(value, (dict, list, bool)):
                    return Rejection(
                        "invalid_value", f"column '{column}' (a location key) must be a string or a number"
                    )
            location = attributes.get("location")
            attributes["location"] = {**flat, **location} if location else flat
    others = {column: value for column in plan.others if (value := data[column]) is not None}
    for column, value in others.items():
        if isinstance(value, CONTAINERS):
            try:
                others[column] = strip_nulls(value)
            except TooDeep:
                return _too_deep(column)
    return attributes, nested, others


def profile_attributes(
    data: Mapping[str, Any], identifiers: dict[str, Any], excluded_columns: tuple[str, ...] = ()
) -> Union[dict[str, Any], Rejection]:
    """The profile's `attributes`: its identifiers, known attributes (flat location columns in
    `location`), and every other column in `properties`. `excluded_columns` steer the connector
    (the target column) and are not sent."""
    split = _split_columns(data, identifiers, excluded_columns)
    if isinstance(split, Rejection):
        return split
    attributes, nested, others = split
    if others:
        # A top-level column wins over a key of the same name inside the `properties` column.
        attributes["properties"] = {**nested, **others} if nested else others
    elif nested:
        attributes["properties"] = nested
    return attributes


def event_columns(
    data: Mapping[str, Any], identifiers: dict[str, Any], excluded_columns: tuple[str, ...] = ()
) -> Union[tuple[dict[str, Any], dict[str, Any]], Rejection]:
    """An event row split in two: the profile's `attributes` (its identifiers and the known profile
    attributes) and the event's `properties` (every other column).

    Same column rules as `profile_attributes` (flat location columns too: they locate the person),
    with one difference: the `properties` column holds the event's properties here (a column wins
    over a key of the same name inside it), since a row of an event table describes the event, not
    the person. `excluded_columns` steer the connector (metric, time, unique id, value columns) and
    are not sent as properties.
    """
    split = _split_columns(data, identifiers, excluded_columns)
    if isinstance(split, Rejection):
        return split
    attributes, nested, others = split
    return attributes, ({**nested, **others} if nested else others)
