"""The rules that turn a row's columns into Klaviyo profile data, or into a reason they cannot be.

Surface modules compose these (profiles.py renders a profile resource from them, events.py an
event and its profile). Rules (shared
with condor-retl-klaviyo): identifier columns `email`, `phone_e164`/`phone_number` and
`external_id` (and, on `list_memberships`, `klaviyo_profile_id` as the resource `id`); the columns
named in PROFILE_ATTRIBUTES become profile attributes; flat location columns (LOCATION_KEYS: `city`,
`country`, `zip`...) go into `location`; every other column goes into `properties`.
Nulls are dropped everywhere because Klaviyo's bulk import never clears a field with a null, and an
unset field must never be cleared. Values Klaviyo would reject for the whole job (malformed
emails, phone numbers that are not E.164, wrong types, unknown location keys, numbers JSON cannot
carry, oversize profiles) are rejected here, per record, so one bad row cannot fail a
10,000-profile job.

Phone numbers: one function (`phone_e164`) for every surface. A number already written in E.164 is
taken as it is (the common case, one regex). Without a default region, spaces, dots, dashes and
parentheses are removed and the rest must be E.164. With `default_phone_region`, libphonenumber
(`phonenumbers`) reads national formats for that region and any international format, and the
number must be *valid* for its region, not merely possible: validity checks the number plan
(length and prefixes per region), so a digit too many or a typo in the area code is caught before
Klaviyo stores a number no one can text. A row whose phone is unusable but that has another
identifier is sent without the phone, and the caller is told (`Identifiers.dropped`), unless
`strict_phone` asks for such rows to be rejected.

Rendering is total: no row can raise out of it, because a row that raised would fail every retry
of the sync the same way, forever. Nesting is bounded (MAX_DEPTH, checked while nulls are
stripped, so no value can exhaust the stack); what JSON or Klaviyo cannot carry (NaN, Infinity,
lone UTF-16 surrogates, integers beyond 64 bits) is found after the one serialization, only when
it failed or wrote a null, so clean rows pay nothing for it; and `render_row` turns anything else
a surface's renderer raises into a rejection of that row (`unrenderable`).
"""

from __future__ import annotations

import math
import os
import re
import traceback
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping, Optional, Union

import orjson
import phonenumbers

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


# Klaviyo documents no nesting limit for profile properties. 32 levels hold any real document (a
# Shopify order is 5 or 6 deep) and stay far from orjson's 255 and Python's recursion limit.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Rejection:
    """Why a record was not sent. `detail` names columns, never values: rows hold personal data.

    `hint` is advice about the stream rather than the row (a column that looks like a misnamed
    identifier): the report gives it once per stream, on top of the per-row lines.
    """

    code: str
    detail: str
    hint: Optional[str] = None

    def __post_init__(self) -> None:
        _writable_detail(self)


@dataclass(frozen=True)
class Omission:
    """A value left out of a row that is still sent (a phone number that is not one), and why."""

    code: str
    detail: str

    def __post_init__(self) -> None:
        _writable_detail(self)


def _writable_detail(reason: Union[Rejection, Omission]) -> None:
    # A column name can itself hold a lone surrogate; the log line naming it must still be writable.
    if not reason.detail.isascii():
        object.__setattr__(reason, "detail", printable(reason.detail))


@dataclass(frozen=True)
class Amended:
    """A rendered row that is sent without a value of the record: the sink reports the omission."""

    body: bytes
    omission: Omission


Rendered = Union[bytes, Rejection, Amended]


@dataclass(frozen=True)
class PhoneRules:
    """How phone columns are read: `default_phone_region` (ISO 3166 alpha-2) and `strict_phone`."""

    default_region: Optional[str] = None
    strict: bool = False


DEFAULT_PHONE_RULES = PhoneRules()


class Identifiers(dict[str, Any]):
    """A row's identifiers (Klaviyo attribute -> value), and the unusable phone left out, if any.

    A dict, so that callers which only need the identifiers use it as one; `dropped` is read from
    the class (None) unless a phone was dropped, which keeps the common row free of extra work.
    """

    dropped: Optional[Omission] = None


def printable(text: str) -> str:
    """`text` with anything UTF-8 cannot encode (lone surrogates) written as a backslash escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_CONTAINERS = (dict, list)
_LOCATION_SCALARS = frozenset({str, int, float})  # checked by class first: the common case needs no isinstance


class TooDeep(Exception):
    """A value nests objects and arrays deeper than MAX_DEPTH."""


def strip_nulls(value: Any, levels: int = MAX_DEPTH) -> Any:
    """Drop nulls at every depth: members of objects and items of arrays.

    Raises TooDeep for a value nested more than `levels` deep, before the stack could run out.
    Written for the hot path: scalars (most values) are not passed through a call.
    """
    if isinstance(value, dict):
        if levels <= 0:
            raise TooDeep
        levels -= 1
        return {
            k: strip_nulls(v, levels) if isinstance(v, _CONTAINERS) else v for k, v in value.items() if v is not None
        }
    if isinstance(value, list):
        if levels <= 0:
            raise TooDeep
        levels -= 1
        return [strip_nulls(v, levels) if isinstance(v, _CONTAINERS) else v for v in value if v is not None]
    return value


def _stripped(column: str, value: Any) -> Any:
    """`strip_nulls(value)`, or the rejection of a column nested deeper than MAX_DEPTH."""
    try:
        return strip_nulls(value)
    except TooDeep:
        return _too_deep(column)


def _too_deep(column: str) -> Rejection:
    return Rejection("too_deep", f"column '{column}' nests objects or arrays deeper than {MAX_DEPTH} levels")


def invalid_text(column: str, value: str) -> Optional[Rejection]:
    """The rejection of text that is not valid Unicode (a lone UTF-16 surrogate, which JSON
    parsers accept from `\\ud800` escapes but no UTF-8 encoder can write), else None."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return Rejection(
            "invalid_text", f"column '{column}' holds text that is not valid Unicode (a lone UTF-16 surrogate)"
        )
    return None


def _json_default(value: Any) -> Any:
    """Values a Python caller of `write()` may hand us that JSON has no type for."""
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None  # None is caught as non-finite below
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1  # the integers orjson (and most JSON readers) carry exactly


# A target is looked up by name in a request URL (`filter=equals(name,"...")`); percent-encoded, a
# longer name could pass the 8 KB request line most servers and proxies accept.
MAX_TARGET_CHARS = 500


def target_problem(column: str, target: str) -> Optional[Rejection]:
    """Why a row's target (a list name) cannot be looked up or created, else None."""
    if len(target) > MAX_TARGET_CHARS:
        return Rejection("invalid_target", f"column '{column}' is longer than {MAX_TARGET_CHARS} characters")
    return invalid_text(column, target)


def _value_problem(value: Any) -> Optional[tuple[str, str]]:
    """(code, what is wrong) for the first thing in `value` that JSON or Klaviyo cannot carry, or None.

    Iterative, with its own bound: it also runs on values that failed to serialize."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if invalid_text("", item):
                return "invalid_text", "holds text that is not valid Unicode (a lone UTF-16 surrogate)"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not _INT64_MIN <= item <= _UINT64_MAX:
                return "invalid_value", "holds a whole number beyond 64 bits"
        elif isinstance(item, (float, Decimal)):
            if not (math.isfinite(item) if isinstance(item, float) else item.is_finite()):
                return "invalid_value", "holds a number JSON cannot carry (NaN or Infinity)"
        elif isinstance(item, (dict, list, tuple, set, frozenset)):
            if depth >= MAX_DEPTH:
                return "too_deep", f"nests objects or arrays deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        return "invalid_value", "has a member name that is not text"
                    if invalid_text("", key):
                        return "invalid_text", "has a member name that is not valid Unicode (a lone UTF-16 surrogate)"
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None


def _sent_columns(resource: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """A rendered resource's values, each under the name of the column (or `properties` key) it came from."""
    if "id" in resource:
        yield PROFILE_ID_COLUMN, resource["id"]
    attributes = resource.get("attributes")
    if isinstance(attributes, Mapping):
        for key, value in attributes.items():
            if key == "properties" and isinstance(value, Mapping):
                yield from value.items()
            else:
                yield key, value
    for key, value in resource.items():
        if key not in ("id", "attributes", "type"):
            yield key, value


def _unsendable(resource: Mapping[str, Any]) -> Optional[Rejection]:
    """The rejection naming the column that JSON or Klaviyo cannot carry, or None."""
    for column, value in _sent_columns(resource):
        if not isinstance(column, str) or invalid_text("", column):
            return Rejection("invalid_text", f"column '{column}' has a name that is not valid Unicode")
        problem = _value_problem(value)
        if problem is not None:
            return Rejection(problem[0], f"column '{column}' {problem[1]}")
    return None


def _as_text(column: str, value: Any, allow_numbers: bool) -> Union[str, Rejection]:
    if isinstance(value, str):
        return value
    if allow_numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    kind = type(value).__name__
    return Rejection("invalid_value", f"column '{column}' must be a string, got {kind}")


# (columns, in order of preference) -> rendered key, and whether a number is accepted as text.
# A phone given as a number (a CSV column typed as an integer) is read as its digits.
_IDENTIFIERS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("email",), "email", False),
    (PHONE_COLUMNS, "phone_number", True),
    (("external_id",), "external_id", True),
)
_PROFILE_ID: tuple[tuple[str, ...], str, bool] = ((PROFILE_ID_COLUMN,), "id", False)
_ID_GROUPS = _IDENTIFIERS + (_PROFILE_ID,)


def phone_e164(text: str, region: Optional[str]) -> Optional[str]:
    """The number in E.164 form, or None when it is not a usable phone number (see the module doc)."""
    if E164.match(text):
        return text
    if region is None:
        text = PHONE_PUNCTUATION.sub("", text)
        return text if E164.match(text) else None
    # Slow (tens of microseconds), so only for numbers not already written in E.164.
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)  # type: ignore[no-any-return]


def _phone_rejection(column: str, rules: PhoneRules) -> Rejection:
    if rules.default_region is None:
        return Rejection(
            "invalid_phone", f"column '{column}' is not an E.164 phone number (+, country code, up to 15 digits)"
        )
    return Rejection(
        "invalid_phone",
        f"column '{column}' is not a valid phone number (E.164, or a national number of region {rules.default_region})",
    )


# Column names people give an identifier, squeezed (lower case; no spaces, _, - or .) -> the column
# the connector reads. Only ever suggested, when a row has no identifier: columns are never renamed,
# because `mobile` or `user_id` may well be meant as a custom property.
IDENTIFIER_ALIASES = {
    **dict.fromkeys(("phone", "phonee164", "phonenumbere164", "e164", "phonenum", "telephone", "tel"), "phone_number"),
    **dict.fromkeys(
        ("mobile", "mobilephone", "mobilenumber", "cell", "cellphone", "cellnumber", "sms"), "phone_number"
    ),
    **dict.fromkeys(("mail", "emailaddress", "emailaddr", "emails"), "email"),
    **dict.fromkeys(("extid", "externalidentifier", "externalkey", "userid", "customerid"), "external_id"),
    **dict.fromkeys(("profileid", "klaviyoid", "klaviyoprofile"), PROFILE_ID_COLUMN),
}
_SQUEEZE = re.compile(r"[\s_.\-]+")
_HINTS: dict[tuple[tuple[str, ...], tuple[str, ...]], Optional[str]] = {}


def identifier_hint(columns: tuple[str, ...], accepted: tuple[str, ...]) -> Optional[str]:
    """ "did you mean `email`?" for a row with no identifier, from its column names alone.

    A column matches an accepted identifier column when they are equal ignoring case, spaces,
    underscores, dashes and dots (`Email`, `Phone-Number`, `externalId`), or through
    IDENTIFIER_ALIASES. Computed once per set of column names (rows of a stream share them), and
    only for rows rejected as missing an identifier: the hot path never comes here.
    """
    key = (columns, accepted)
    if key in _HINTS:
        return _HINTS[key]
    wanted = {_SQUEEZE.sub("", column).lower(): column for column in accepted}
    guesses = []
    for column in columns:
        if column in accepted:
            continue  # there, but blank
        squeezed = _SQUEEZE.sub("", column).lower()
        meant = wanted.get(squeezed) or IDENTIFIER_ALIASES.get(squeezed)
        if meant in accepted:
            guesses.append(f"did you mean `{meant}`? the row has a column `{column}`")
    hint = "; ".join(guesses) or None
    if len(_HINTS) < 10_000:  # bounded, like the column kinds below
        _HINTS[key] = hint
    return hint


def missing_identifier(data: Mapping[str, Any], accepted: tuple[str, ...], detail: str) -> Rejection:
    """The `missing_identifier` rejection, with a hint when a column looks like a misnamed identifier."""
    hint = identifier_hint(tuple(data), accepted)
    if hint is None:
        return Rejection("missing_identifier", detail)
    return Rejection("missing_identifier", f"{detail} ({hint})", hint)


def identifiers(
    data: Mapping[str, Any], accept_profile_id: bool, phones: PhoneRules = DEFAULT_PHONE_RULES
) -> Union[Identifiers, Rejection]:
    found = Identifiers()
    bad_phone: Optional[Rejection] = None
    for columns, key, allow_numbers in _ID_GROUPS if accept_profile_id else _IDENTIFIERS:
        for column in columns:  # the first column of the group with a non-blank value
            value = data.get(column)
            if value is not None and not (value.__class__ is str and not value.strip()):
                break
        else:
            continue
        text = value if value.__class__ is str else _as_text(column, value, allow_numbers=allow_numbers)
        if key == "phone_number":
            phone = phone_e164(text, phones.default_region) if text.__class__ is str else None
            if phone is None:
                bad_phone = _phone_rejection(column, phones)
                continue
            text = phone
        elif text.__class__ is Rejection:
            return text  # type: ignore[return-value]
        elif key == "email" and not EMAIL.match(text):
            return Rejection("invalid_email", f"column '{column}' is not an email address")
        found[key] = text
    if bad_phone is not None:
        # Only the phone is wrong: the row still reaches its profile through another identifier.
        if phones.strict or not found:
            return bad_phone
        found.dropped = Omission(
            "invalid_phone_dropped", f"{bad_phone.detail}; the row was sent without a phone number"
        )
    return found


def _attribute(column: str, value: Any) -> Union[Any, Rejection]:
    if column in STRING_ATTRIBUTES:
        return _as_text(column, value, allow_numbers=True)
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
            value = _as_text(column, value, allow_numbers=True)
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
        if isinstance(value, _CONTAINERS):
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
    """The resource as compact JSON, unless it is over `max_bytes` or holds something JSON or
    Klaviyo cannot carry (NaN, Infinity, a lone surrogate, an integer beyond 64 bits)."""
    try:
        body = orjson.dumps(resource, default=_json_default)
    except orjson.JSONEncodeError:
        return _unsendable(resource) or Rejection("invalid_value", f"the {what} could not be written as JSON")
    if len(body) > max_bytes:
        return Rejection(
            f"{what}_too_large",
            f"rendered {what} is {len(body)} bytes; Klaviyo accepts at most {max_bytes} bytes per {what}",
        )
    # orjson writes NaN and Infinity as null; nulls were stripped, so a null here is one of those
    # (or the word inside a string). Checked after the size, so a huge row is not walked for it.
    if b"null" in body:
        problem = _unsendable(resource)
        if problem is not None:
            return problem
    return body


def render_row(render: Callable[..., Rendered], data: Mapping[str, Any], **options: Any) -> Rendered:
    """`render(data, **options)`, with any exception it raises turned into a rejection of the row.

    The rules above give every known problem its own code; this is the net under them. A row that
    raised out of rendering would stop the sync, and every retry of it, at the same row. The
    detail names the exception type and where it was raised, never a value.
    """
    try:
        return render(data, **options)
    except Exception as exc:  # noqa: BLE001 - a bug or an input nobody foresaw: that row, not the sync
        return unrenderable(exc)


def unrenderable(exc: Exception) -> Rejection:
    """The rejection of a row whose rendering raised: the exception's type and line, never a value."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return Rejection("unrenderable", f"the row could not be rendered ({type(exc).__name__}{where})")
