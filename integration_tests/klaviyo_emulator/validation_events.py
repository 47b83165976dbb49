"""Request-body validation for ``POST /api/event-bulk-create-jobs`` (bulk_create_events).

Follows the spec's ``EventsBulkCreateJob`` schema and the operation's description ("Accepts up to
1,000 events per request. The maximum allowed payload size is 5MB. A single string cannot exceed
100KB."). Pure functions: they return plain data for the store or raise :class:`ApiError` with a
JSON pointer to the offending member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from .errors import ApiError
from .validation import _escape, _require_object, _require_type, find_null

MAX_EVENTS_PER_REQUEST = 1_000
MAX_EVENT_PROPERTIES = 400  # spec, event `properties`: "must not exceed 400 properties"
MAX_STRING_BYTES = 100 * 1024  # "A single string cannot exceed 100KB" (read as KiB, like the 100 KB profile limit)
MAX_METRIC_NAME_CHARS = 127  # metric `name`: "Must be less than 128 characters."
EARLIEST_EVENT_TIME = datetime(1991, 1, 1, tzinfo=timezone.utc)  # "must be after the year 1990"
MAX_FUTURE = timedelta(days=365)  # "can only be up to 1 year in the future"

ROOT = "/data/attributes/events-bulk-create/data"
# OnsiteProfileCreateQueryResourceObject attributes
_STRING_ATTRS = (
    "email",
    "phone_number",
    "external_id",
    "anonymous_id",
    "_kx",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
)
_PROFILE_ATTRS = frozenset(_STRING_ATTRS + ("location", "properties"))
EVENT_PROFILE_IDENTIFIERS = ("email", "phone_number", "external_id", "anonymous_id", "_kx")
_LOCATION_STRING_ATTRS = frozenset({"address1", "address2", "city", "country", "region", "zip", "timezone", "ip"})
_LOCATION_ATTRS = _LOCATION_STRING_ATTRS | {"latitude", "longitude"}
_EVENT_ATTRS = frozenset({"properties", "time", "value", "value_currency", "backfill", "metric", "unique_id"})
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


@dataclass
class EventSpec:
    """One validated event."""

    metric: str
    service: Optional[str]
    properties: dict[str, Any]
    time: datetime  # UTC, truncated to the second
    time_given: bool
    value: Optional[float]
    value_currency: Optional[str]
    unique_id: Optional[str]
    backfill: bool
    pointer: str  # "/data/attributes/events-bulk-create/data/<i>/attributes/events/data/<j>"

    @property
    def dedupe_id(self) -> str:
        """The event's unique_id, or (spec) "the time to the second" when none was given."""
        return self.unique_id if self.unique_id is not None else self.time.isoformat()


@dataclass
class EventEntry:
    """One ``event-bulk-create`` item: a profile and its events."""

    profile_id: Optional[str]
    profile_attributes: dict[str, Any]
    events: list[EventSpec]
    pointer: str


def _long_string(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) * 4 > MAX_STRING_BYTES and len(value.encode("utf-8")) > MAX_STRING_BYTES
    if isinstance(value, dict):
        return any(_long_string(k) or _long_string(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_long_string(v) for v in value)
    return False


def _find_long_string(value: Any, pointer: str) -> Optional[str]:
    if isinstance(value, str):
        return pointer if _long_string(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            child = f"{pointer}/{_escape(str(k))}"
            if _long_string(k):
                return child
            found = _find_long_string(v, child)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_long_string(v, f"{pointer}/{i}")
            if found:
                return found
    return None


def _string_or_none(attrs: dict[str, Any], key: str, ptr: str) -> Optional[str]:
    value = attrs.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"'{key}' must be a string.", pointer=f"{ptr}/{key}")
    return value


def _bool_or_none(attrs: dict[str, Any], key: str, ptr: str) -> Optional[bool]:
    value = attrs.get(key)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"'{key}' must be a boolean.", pointer=f"{ptr}/{key}")
    return value


def parse_datetime_value(value: Any, pointer: str, what: str) -> datetime:
    """An ISO-8601 date-time string as an aware UTC datetime (naive values are taken as UTC)."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"'{what}' must be an ISO 8601 date-time string.", pointer=pointer)
    try:
        dt = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ApiError(400, f"'{what}' is not a valid ISO 8601 date-time: {value!r}.", pointer=pointer) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _validate_profile(prof: Any, base: str) -> tuple[Optional[str], dict[str, Any]]:
    if not isinstance(prof, dict):
        raise ApiError(400, "'profile.data' must be a profile resource object.", pointer=base)
    null_at = find_null(prof, base)
    if null_at:
        raise ApiError(
            400,
            "Null values are not allowed in event profiles (emulator strictness: omit the key instead of "
            "sending null, so existing Klaviyo data is not blanked).",
            pointer=null_at,
        )
    for key in prof:
        if key not in ("type", "id", "attributes", "meta"):
            raise ApiError(
                400, f"'{key}' is not a valid member of a profile resource.", pointer=f"{base}/{_escape(key)}"
            )
    _require_type(prof, "profile", base)
    pid = prof.get("id")
    if pid is not None and (not isinstance(pid, str) or not pid):
        raise ApiError(400, "A profile id must be a non-empty string.", pointer=f"{base}/id")
    attrs = _require_object(prof.get("attributes"), f"{base}/attributes", "attributes")
    for key, value in attrs.items():
        ptr = f"{base}/attributes/{_escape(key)}"
        if key not in _PROFILE_ATTRS:
            raise ApiError(
                400,
                f"'{key}' is not a valid attribute for a profile; put custom fields under 'properties'.",
                pointer=ptr,
            )
        if key in _STRING_ATTRS and not isinstance(value, str):
            raise ApiError(400, f"'{key}' must be a string.", pointer=ptr)
        if key == "properties":
            _require_object(value, ptr, "properties")
        if key == "location":
            _require_object(value, ptr, "location")
            for lkey, lval in value.items():
                lptr = f"{ptr}/{_escape(lkey)}"
                if lkey not in _LOCATION_ATTRS:
                    raise ApiError(400, f"'{lkey}' is not a valid location attribute.", pointer=lptr)
                if lkey in _LOCATION_STRING_ATTRS and not isinstance(lval, str):
                    raise ApiError(400, f"location '{lkey}' must be a string.", pointer=lptr)
                if lkey in ("latitude", "longitude") and (
                    isinstance(lval, bool) or not isinstance(lval, (str, int, float))
                ):
                    raise ApiError(400, f"location '{lkey}' must be a string or number.", pointer=lptr)
    if not pid and not any(attrs.get(k) for k in EVENT_PROFILE_IDENTIFIERS):
        raise ApiError(
            400,
            "An event's profile needs at least one identifier: id, email, phone_number, external_id, "
            "anonymous_id or _kx.",
            pointer=f"{base}/attributes",
        )
    if "meta" in prof:
        meta = _require_object(prof["meta"], f"{base}/meta", "meta")
        allowed = {"patch_properties": {"append", "unappend", "unset"}, "patch_identifiers": {"append", "unappend"}}
        for mkey, mval in meta.items():
            if mkey not in allowed:
                raise ApiError(
                    400, f"'{mkey}' is not a valid profile meta member.", pointer=f"{base}/meta/{_escape(mkey)}"
                )
            _require_object(mval, f"{base}/meta/{mkey}", mkey)
            for sub in mval:
                if sub not in allowed[mkey]:
                    raise ApiError(
                        400, f"'{sub}' is not a valid member of {mkey}.", pointer=f"{base}/meta/{mkey}/{_escape(sub)}"
                    )
    return pid, attrs


def _validate_event(ev: Any, ptr: str, now: datetime, entry_backfill: bool) -> EventSpec:
    ev = _require_object(ev, ptr, "event")
    for key in ev:
        if key not in ("type", "attributes"):
            raise ApiError(400, f"'{key}' is not a valid member of an event resource.", pointer=f"{ptr}/{_escape(key)}")
    _require_type(ev, "event", ptr)
    aptr = f"{ptr}/attributes"
    attrs = _require_object(ev.get("attributes"), aptr, "attributes")
    for key in attrs:
        if key not in _EVENT_ATTRS:
            raise ApiError(400, f"'{key}' is not a valid event attribute.", pointer=f"{aptr}/{_escape(key)}")
    if "properties" not in attrs:
        raise ApiError(400, "'properties' is required (it may be an empty object).", pointer=f"{aptr}/properties")
    props = _require_object(attrs["properties"], f"{aptr}/properties", "properties")
    if len(props) > MAX_EVENT_PROPERTIES:
        raise ApiError(
            400,
            f"The event has {len(props)} properties; an event must not exceed {MAX_EVENT_PROPERTIES} properties.",
            pointer=f"{aptr}/properties",
        )
    metric = _require_object(attrs.get("metric"), f"{aptr}/metric", "metric")
    mdata = _require_object(metric.get("data"), f"{aptr}/metric/data", "metric.data")
    _require_type(mdata, "metric", f"{aptr}/metric/data")
    mattrs = _require_object(mdata.get("attributes"), f"{aptr}/metric/data/attributes", "metric attributes")
    for key in mattrs:
        if key not in ("name", "service"):
            raise ApiError(
                400,
                f"'{key}' is not a valid metric attribute.",
                pointer=f"{aptr}/metric/data/attributes/{_escape(key)}",
            )
    name = mattrs.get("name")
    nptr = f"{aptr}/metric/data/attributes/name"
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "The metric 'name' is required and must be a non-empty string.", pointer=nptr)
    if len(name) > MAX_METRIC_NAME_CHARS:
        raise ApiError(
            400, f"The metric name is {len(name)} characters; it must be less than 128 characters.", pointer=nptr
        )
    service = _string_or_none(mattrs, "service", f"{aptr}/metric/data/attributes")
    time_value = attrs.get("time")
    if time_value is None:
        when, given = now, False
    else:
        when, given = parse_datetime_value(time_value, f"{aptr}/time", "time"), True
        if when < EARLIEST_EVENT_TIME:
            raise ApiError(400, "The event time must be after the year 1990.", pointer=f"{aptr}/time")
        if when > now + MAX_FUTURE:
            raise ApiError(400, "The event time can only be up to 1 year in the future.", pointer=f"{aptr}/time")
    when = when.replace(microsecond=0)  # spec: "The time is truncated to the second."
    value = attrs.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ApiError(400, "'value' must be a number.", pointer=f"{aptr}/value")
    currency = _string_or_none(attrs, "value_currency", aptr)
    if currency is not None and not _CURRENCY_RE.match(currency):
        raise ApiError(
            400,
            "'value_currency' must be an ISO 4217 currency code (three upper-case letters, e.g. 'USD').",
            pointer=f"{aptr}/value_currency",
        )
    unique_id = _string_or_none(attrs, "unique_id", aptr)
    if unique_id is not None and not unique_id:
        raise ApiError(
            400, "'unique_id' must not be empty; omit it to use the event time.", pointer=f"{aptr}/unique_id"
        )
    backfill = _bool_or_none(attrs, "backfill", aptr)
    return EventSpec(
        metric=name,
        service=service,
        properties=props,
        time=when,
        time_given=given,
        value=value,
        value_currency=currency,
        unique_id=unique_id,
        backfill=bool(entry_backfill if backfill is None else backfill),
        pointer=ptr,
    )


def validate_bulk_events(doc: dict[str, Any], now: datetime) -> list[EventEntry]:
    """Validate a Bulk Create Events body; return its entries (profile + events)."""
    data = _require_object(doc.get("data"), "/data", "data")
    for key in data:
        if key not in ("type", "attributes"):
            raise ApiError(400, f"'{key}' is not a valid member of this resource.", pointer=f"/data/{_escape(key)}")
    _require_type(data, "event-bulk-create-job", "/data")
    attrs = _require_object(data.get("attributes"), "/data/attributes", "attributes")
    for key in attrs:
        if key != "events-bulk-create":
            raise ApiError(400, f"'{key}' is not a valid attribute.", pointer=f"/data/attributes/{_escape(key)}")
    wrapper = _require_object(
        attrs.get("events-bulk-create"), "/data/attributes/events-bulk-create", "events-bulk-create"
    )
    items = wrapper.get("data")
    if not isinstance(items, list):
        raise ApiError(400, "'events-bulk-create.data' must be an array.", pointer=ROOT)
    if not items:
        raise ApiError(400, "At least one event-bulk-create item is required.", pointer=ROOT)
    total = 0
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("attributes"), dict):
            events = item["attributes"].get("events")
            if isinstance(events, dict) and isinstance(events.get("data"), list):
                total += len(events["data"])
    if total > MAX_EVENTS_PER_REQUEST:
        raise ApiError(
            400,
            f"{total} events were provided; this endpoint accepts up to {MAX_EVENTS_PER_REQUEST:,} events per request.",
            pointer=ROOT,
        )
    long_at = _find_long_string(doc, "") if _long_string(doc) else None
    if long_at:
        raise ApiError(
            400, f"A single string cannot exceed 100KB ({MAX_STRING_BYTES} bytes UTF-8).", pointer=long_at or "/"
        )
    entries: list[EventEntry] = []
    for i, item in enumerate(items):
        base = f"{ROOT}/{i}"
        item = _require_object(item, base, "event-bulk-create")
        for key in item:
            if key not in ("type", "attributes"):
                raise ApiError(
                    400, f"'{key}' is not a valid member of this resource.", pointer=f"{base}/{_escape(key)}"
                )
        _require_type(item, "event-bulk-create", base)
        iattrs = _require_object(item.get("attributes"), f"{base}/attributes", "attributes")
        for key in iattrs:
            if key not in ("profile", "events", "backfill"):
                raise ApiError(400, f"'{key}' is not a valid attribute.", pointer=f"{base}/attributes/{_escape(key)}")
        entry_backfill = _bool_or_none(iattrs, "backfill", f"{base}/attributes")
        profile = _require_object(iattrs.get("profile"), f"{base}/attributes/profile", "profile")
        pid, pattrs = _validate_profile(profile.get("data"), f"{base}/attributes/profile/data")
        events = _require_object(iattrs.get("events"), f"{base}/attributes/events", "events")
        evlist = events.get("data")
        eptr = f"{base}/attributes/events/data"
        if not isinstance(evlist, list):
            raise ApiError(400, "'events.data' must be an array of events.", pointer=eptr)
        if not evlist:
            raise ApiError(400, "At least one event is required for each profile.", pointer=eptr)
        specs = [_validate_event(ev, f"{eptr}/{j}", now, bool(entry_backfill)) for j, ev in enumerate(evlist)]
        entries.append(EventEntry(pid, pattrs, specs, base))
    return entries
