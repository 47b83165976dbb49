"""The rules that turn a row's columns into Klaviyo profile data, or into a reason they cannot be.

Surface modules compose these (profiles.py renders a profile resource from them, events.py an
event and its profile). Rules (shared
with condor-retl-klaviyo): identifier columns `email`, `phone_e164`/`phone_number` and
`external_id` (and, on `list_memberships`, `klaviyo_profile_id` as the resource `id`); the columns
named in PROFILE_ATTRIBUTES become profile attributes; every other column goes into `properties`.
Nulls are dropped everywhere because Klaviyo's bulk import never clears a field with a null, and an
unset field must never be cleared. Values Klaviyo would reject for the whole job (malformed
emails, phone numbers that are not E.164, wrong types, unknown location keys, numbers JSON cannot
carry, oversize profiles) are rejected here, per record, so one bad row cannot fail a
10,000-profile job.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping, Union

import orjson

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
PHONE_COLUMNS = ("phone_e164", "phone_number")
IDENTIFIER_COLUMNS = ("email", *PHONE_COLUMNS, "external_id")
PROFILE_ID_COLUMN = "klaviyo_profile_id"
# Airbyte bookkeeping columns (CDC and raw-table metadata) describe the sync, not the person.
META_PREFIXES = ("_ab_", "_airbyte_")
IDENTIFIER_SKIP = frozenset(IDENTIFIER_COLUMNS) | {PROFILE_ID_COLUMN}

# Deliberately loose: one @, no spaces, a dot in the domain. Klaviyo decides the rest, and its
# per-profile 400 is handled by dropping just that row.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
PHONE_PUNCTUATION = re.compile(r"[\s().\-]")


@dataclass(frozen=True)
class Rejection:
    """Why a record was not sent. `detail` names columns, never values: rows hold personal data."""

    code: str
    detail: str


Rendered = Union[bytes, Rejection]


_CONTAINERS = (dict, list)


def strip_nulls(value: Any) -> Any:
    """Drop nulls at every depth: members of objects and items of arrays.

    Written for the hot path: scalars (most values) are not passed through a call.
    """
    if isinstance(value, dict):
        return {k: strip_nulls(v) if isinstance(v, _CONTAINERS) else v for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) if isinstance(v, _CONTAINERS) else v for v in value if v is not None]
    return value


def _json_default(value: Any) -> Any:
    """Values a Python caller of `write()` may hand us that JSON has no type for."""
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None  # None is caught as non-finite below
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Decimal):
        return not value.is_finite()
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


def _as_text(column: str, value: Any, allow_numbers: bool) -> Union[str, Rejection]:
    if isinstance(value, str):
        return value
    if allow_numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    kind = type(value).__name__
    return Rejection("invalid_value", f"column '{column}' must be a string, got {kind}")


# (columns, in order of preference) -> rendered key, and whether a number is accepted as text.
_IDENTIFIERS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("email",), "email", False),
    (PHONE_COLUMNS, "phone_number", False),
    (("external_id",), "external_id", True),
)
_PROFILE_ID: tuple[tuple[str, ...], str, bool] = ((PROFILE_ID_COLUMN,), "id", False)


def _first_present(data: Mapping[str, Any], columns: tuple[str, ...]) -> Union[tuple[str, Any], None]:
    for column in columns:
        value = data.get(column)
        if value is not None and not (value.__class__ is str and not value.strip()):
            return column, value
    return None


def identifiers(data: Mapping[str, Any], accept_profile_id: bool) -> Union[dict[str, Any], Rejection]:
    found: dict[str, Any] = {}
    for columns, key, allow_numbers in _IDENTIFIERS + ((_PROFILE_ID,) if accept_profile_id else ()):
        present = _first_present(data, columns)
        if present is None:
            continue
        column, value = present
        text = value if value.__class__ is str else _as_text(column, value, allow_numbers=allow_numbers)
        if isinstance(text, Rejection):
            return text
        if key == "email":
            if not EMAIL.match(text):
                return Rejection("invalid_email", f"column '{column}' is not an email address")
        elif key == "phone_number":
            if not E164.match(text):
                text = PHONE_PUNCTUATION.sub("", text)
                if not E164.match(text):
                    return Rejection(
                        "invalid_phone",
                        f"column '{column}' is not an E.164 phone number (+, country code, up to 15 digits)",
                    )
        found[key] = text
    return found


def _attribute(column: str, value: Any) -> Union[Any, Rejection]:
    if column in STRING_ATTRIBUTES:
        return _as_text(column, value, allow_numbers=True)
    if not isinstance(value, dict):
        return Rejection("invalid_value", f"column '{column}' must be a JSON object, got {type(value).__name__}")
    if column == "location":
        # Klaviyo's location values are scalars: dropping null members is all the cleaning needed.
        cleaned = {k: v for k, v in value.items() if v is not None} if None in value.values() else value
        if not LOCATION_KEYS.issuperset(cleaned):
            unknown = sorted(set(cleaned) - LOCATION_KEYS)
            return Rejection(
                "invalid_value",
                f"column 'location' has keys Klaviyo does not accept: {', '.join(unknown)}"
                f" (allowed: {', '.join(sorted(LOCATION_KEYS))})",
            )
        for key, item in cleaned.items():
            if isinstance(item, (dict, list, bool)):
                return Rejection("invalid_value", f"column 'location' key '{key}' must be a string or a number")
        return cleaned
    return strip_nulls(value)


# What a column is, decided once per column name instead of per row (rows of a stream share names).
_SKIP, _TEXT, _OBJECT, _PROPERTY = "skip", "text attribute", "object attribute", "property"
_KINDS: dict[tuple[str, ...], dict[str, str]] = {}


def _column_kind(column: str, excluded_columns: Iterable[str]) -> str:
    if column in IDENTIFIER_SKIP or column in excluded_columns or column.startswith(META_PREFIXES):
        return _SKIP
    if column in STRING_ATTRIBUTES:
        return _TEXT
    if column in _ATTRIBUTE_SET:
        return _OBJECT
    return _PROPERTY


def _column_kinds(excluded_columns: tuple[str, ...]) -> dict[str, str]:
    kinds = _KINDS.get(excluded_columns)
    if kinds is None:
        kinds = _KINDS[excluded_columns] = {}
    return kinds


def profile_attributes(
    data: Mapping[str, Any], identifiers: dict[str, Any], excluded_columns: tuple[str, ...] = ()
) -> Union[dict[str, Any], Rejection]:
    """The profile's `attributes`: its identifiers, known attributes, and every other column in
    `properties`. `excluded_columns` steer the connector (the target column) and are not sent."""
    attributes: dict[str, Any] = dict(identifiers)
    extra_properties: dict[str, Any] = {}
    kinds = _column_kinds(excluded_columns)
    for column, value in data.items():
        if value is None:
            continue
        kind = kinds.get(column)
        if kind is None:
            kind = _column_kind(column, excluded_columns)
            if len(kinds) < 10_000:  # bounded: a source with ever-new column names must not grow it forever
                kinds[column] = kind
        if kind is _SKIP:
            continue
        if kind is _PROPERTY:
            extra_properties[column] = strip_nulls(value) if isinstance(value, _CONTAINERS) else value
            continue
        if kind is _TEXT and value.__class__ is str:
            attributes[column] = value
        else:
            rendered = _attribute(column, value)
            if isinstance(rendered, Rejection):
                return rendered
            if rendered != {}:
                attributes[column] = rendered
    if extra_properties:
        # A top-level column wins over a key of the same name inside the `properties` column.
        attributes["properties"] = {**attributes.get("properties", {}), **extra_properties}
    return attributes


def event_columns(
    data: Mapping[str, Any], identifiers: dict[str, Any], excluded_columns: tuple[str, ...] = ()
) -> Union[tuple[dict[str, Any], dict[str, Any]], Rejection]:
    """An event row split in two: the profile's `attributes` (its identifiers and the known profile
    attributes) and the event's `properties` (every other column).

    Same column rules as `profile_attributes`, with one difference: the `properties` column holds
    the event's properties here (a column wins over a key of the same name inside it), since a row
    of an event table describes the event, not the person. `excluded_columns` steer the connector
    (metric, time, unique id, value columns) and are not sent as properties.
    """
    attributes: dict[str, Any] = dict(identifiers)
    properties: dict[str, Any] = {}
    nested: Any = None
    kinds = _column_kinds(excluded_columns)
    for column, value in data.items():
        if value is None:
            continue
        kind = kinds.get(column)
        if kind is None:
            kind = _column_kind(column, excluded_columns)
            if len(kinds) < 10_000:
                kinds[column] = kind
        if kind is _SKIP:
            continue
        if kind is _PROPERTY:
            properties[column] = strip_nulls(value) if isinstance(value, _CONTAINERS) else value
        elif column == "properties":
            if not isinstance(value, dict):
                return Rejection("invalid_value", f"column 'properties' must be a JSON object, got {type(value).__name__}")
            nested = strip_nulls(value)
        elif kind is _TEXT and value.__class__ is str:
            attributes[column] = value
        else:
            rendered = _attribute(column, value)
            if isinstance(rendered, Rejection):
                return rendered
            if rendered != {}:
                attributes[column] = rendered
    if nested:
        properties = {**nested, **properties}
    return attributes, properties


def longest_string_column(data: Mapping[str, Any], max_bytes: int) -> Union[str, None]:
    """The first column whose name or value holds a string over `max_bytes` UTF-8 bytes, at any depth."""
    for column, value in data.items():
        if _has_long_string(column, max_bytes) or _has_long_string(value, max_bytes):
            return column
    return None


def _has_long_string(value: Any, max_bytes: int) -> bool:
    if isinstance(value, str):
        # A character is at most 4 bytes: most strings are cleared without encoding them.
        return len(value) > max_bytes // 4 and len(value.encode("utf-8", "surrogatepass")) > max_bytes
    if isinstance(value, dict):
        return any(_has_long_string(k, max_bytes) or _has_long_string(v, max_bytes) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_long_string(v, max_bytes) for v in value)
    return False


def serialize(resource: dict[str, Any], max_bytes: int, what: str) -> Rendered:
    """The resource as compact JSON, unless it holds NaN/Infinity or is over `max_bytes`."""
    body = orjson.dumps(resource, default=_json_default)
    # orjson writes NaN and Infinity as null; nulls were stripped, so a null here is one of those.
    if b"null" in body and _has_non_finite(resource):
        return Rejection("invalid_value", "record has a number JSON cannot carry (NaN or Infinity)")
    if len(body) > max_bytes:
        return Rejection(
            f"{what}_too_large",
            f"rendered {what} is {len(body)} bytes; Klaviyo accepts at most {max_bytes} bytes per {what}",
        )
    return body


