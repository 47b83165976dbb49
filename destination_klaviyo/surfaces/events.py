"""`events`: warehouse rows become Klaviyo events (orders, activity), each recorded once.

Klaviyo's Bulk Create Events (spec: `bulk_create_events`, `POST /api/event-bulk-create-jobs`,
scope `events:write`) takes up to 1,000 events and 5 MB per request, 100 KB per string and 400
properties per event, and answers 202 with no body. Its body groups events by profile; we send one
profile group per row, so an item of the batch is exactly one row (a 400 pointing at item i blames
row i) and the body stays byte-exact. Against grouping a person's events together that costs 84
bytes of group envelope per event, plus the profile once per event rather than once per person:
at most ~200 KB of a request's 1,000 events, which only matters when events average over ~4.8 KB
(below that, 1,000 events fill a request before 5 MB do).

A row: the identifier columns and the profile attribute columns describe the person (as on
`profiles`); every other column is an event property; the stream's options (its `streams` entry)
name the metric (fixed, or a column), the time, value and unique id columns, the currency and the
backfill flag.

Exactly once: every event carries a `unique_id`, and Klaviyo records an event whose unique_id it
already holds for that profile and metric only once, so a row sent again after a crash or a retry
is the same event. Without `unique_id_field` the id is derived (`EventPlan.unique_id`). A unique_id
repeated for the same profile and metric inside one request fails the whole request (spec), so a
row whose (metric, unique_id) is already in the open batch waits for the next request; the rule
ignores the profile because two rows may name one person by different identifiers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

import orjson

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.client import KlaviyoClient
from destination_klaviyo.errors import config_error
from destination_klaviyo.identifiers import (
    DEFAULT_PHONE_RULES,
    IDENTIFIER_COLUMNS,
    PhoneRules,
    identifiers,
    missing_identifier,
)
from destination_klaviyo.rejections import Omission, Rejection
from destination_klaviyo.rendering import event_columns
from destination_klaviyo.sinks import Pointers, Request, Sink, SinkContext, probe_scope
from destination_klaviyo.surfaces.base import UPSERT_MODES, Surface, SurfaceSpec
from destination_klaviyo.surfaces.profiles import MATCHING_KEYS, profile_schema
from destination_klaviyo.totality import longest_string_column, render_row, serialize

if TYPE_CHECKING:
    from destination_klaviyo.routing import StreamRoute

logger = logging.getLogger("airbyte")

MAX_EVENTS_PER_REQUEST = 1_000
# Klaviyo documents "5MB" per request and "100KB" per string; we read both as decimal, the
# stricter reading (the emulator reads them as binary).
MAX_EVENT_BODY_BYTES = 5 * 1000 * 1000
MAX_STRING_BYTES = 100 * 1000
MAX_METRIC_NAME_CHARS = 127  # metric `name`: "Must be less than 128 characters." (config.py: metric)
MAX_EVENT_PROPERTIES = 400  # event `properties`: "must not exceed 400 properties" (top-level keys)
# "The time must be after the year 1990 and can only be up to 1 year in the future."
EARLIEST_EVENT_TIME = datetime(1991, 1, 1, tzinfo=timezone.utc)
MAX_FUTURE = timedelta(days=365)
UNIQUE_ID_HEX_CHARS = 32  # 128 bits of sha256: collisions are not a practical concern

BODY_PREFIX = b'{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":{"data":['
BODY_SUFFIX = b"]}}}}"
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def new_event_batch() -> BodyBatch:
    return BodyBatch(BODY_PREFIX, BODY_SUFFIX, MAX_EVENTS_PER_REQUEST, MAX_EVENT_BODY_BYTES)


# -- per-stream plan -----------------------------------------------------------------------------
@dataclass(frozen=True)
class EventPlan:
    """How one stream's rows become events: its options, checked at routing time."""

    namespace: Optional[str]
    stream: str
    metric: Optional[str]  # a fixed metric name ...
    metric_field: Optional[str]  # ... or the column holding it
    time_field: Optional[str]
    unique_id_field: Optional[str]
    value_field: Optional[str]
    value_currency: Optional[str]
    backfill: bool
    primary_key: tuple[tuple[str, ...], ...]
    cursor_field: tuple[str, ...]  # empty unless the mode is append (see `unique_id`)

    @property
    def steering_columns(self) -> tuple[str, ...]:
        """Columns that fill the event's own fields, not its properties."""
        named = (self.metric_field, self.time_field, self.unique_id_field, self.value_field)
        return tuple(column for column in named if column)

    def unique_id(self, data: Mapping[str, Any], resource: dict[str, Any]) -> str:
        """A stable id for the row's event: the same row always gets the same id, across syncs.

        With a primary key (the connection's, else the source's): a hash of the stream, the key's
        values and, in `append` mode, the cursor value, so each new version of a row is a new
        event while `append_dedup` / `update` keep one event per key. Without one, or when a key
        value is missing: a hash of the stream and the whole rendered event. Hashing keeps row
        values out of Klaviyo's unique_id.
        """
        keys = [_at(data, path) for path in self.primary_key]
        if keys and all(value is not None for value in keys):
            identity: list[Any] = ["key", self.namespace, self.stream, keys]
            if self.cursor_field:
                identity.append(_at(data, self.cursor_field))
        else:
            identity = ["event", self.namespace, self.stream, resource]
        digest = hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS, default=str))
        return digest.hexdigest()[:UNIQUE_ID_HEX_CHARS]


def _at(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def prepare(route: "StreamRoute") -> EventPlan:
    """Check the stream's event options before any request; the plan its rows are rendered with."""
    options = route.options
    if options is None or (options.metric is None and options.metric_field is None):
        raise config_error(
            f"Stream '{route.name}' writes to the events surface but names no metric: add `metric` (a fixed "
            f'metric name such as "Placed Order") or `metric_field` (the column holding each row\'s metric '
            f'name) to its `streams` entry, e.g. {{"stream": "{route.name}", "surface": "events", '
            f'"metric": "Placed Order"}}.'
        )
    if options.backfill and options.time_field is None:
        logger.warning(
            f"Stream '{route.name}': backfill is on but no time_field is set, so every event is recorded at the "
            "time Klaviyo receives it. Set time_field to the column holding when each event happened."
        )
    append = route.sync_mode.value == "append"
    return EventPlan(
        namespace=route.key[0],
        stream=route.name,
        metric=options.metric,
        metric_field=options.metric_field,
        time_field=options.time_field,
        unique_id_field=options.unique_id_field,
        value_field=options.value_field,
        value_currency=options.value_currency,
        backfill=options.backfill,
        primary_key=route.primary_key,
        cursor_field=route.cursor_field if append else (),
    )


# -- rendering -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RenderedEvent:
    """One row as an `event-bulk-create` item, and the key no second item of its request may share."""

    item: bytes
    key: tuple[str, str]  # (metric name, unique_id)
    omission: Optional[Omission] = None  # the row's unusable phone number, left out of its profile


def event_time(value: Any, column: str, now: datetime) -> Union[str, Rejection]:
    """A time column as ISO 8601 UTC to the second, inside Klaviyo's window.

    Accepted: ISO 8601 date-times and dates (a value without a time zone is UTC, as warehouses
    store it), and epoch numbers, whose magnitude says the unit: under 10^11 seconds, under 10^14
    milliseconds, under 10^17 microseconds (every time Klaviyo accepts is unambiguous that way).
    """
    when: Optional[datetime] = None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    elif isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        when = _from_epoch(value)
    elif value is None:
        return Rejection("invalid_time", f"column '{column}' is empty: it must say when the event happened")
    if when is None:
        return Rejection(
            "invalid_time",
            f"column '{column}' is not a time: use an ISO 8601 date-time or date, or epoch seconds or milliseconds",
        )
    when = when.astimezone(timezone.utc).replace(microsecond=0)  # Klaviyo truncates to the second
    if when < EARLIEST_EVENT_TIME or when > now + MAX_FUTURE:
        return Rejection(
            "invalid_time",
            f"column '{column}' is outside Klaviyo's window for event times (after 1990, at most 1 year ahead)",
        )
    return when.isoformat()


def _from_epoch(value: Union[int, float, Decimal]) -> Optional[datetime]:
    if not math.isfinite(value):
        return None
    magnitude = abs(value)
    divisor = 1 if magnitude < 1e11 else 1_000 if magnitude < 1e14 else 1_000_000 if magnitude < 1e17 else 0
    if not divisor:
        return None
    seconds = value // divisor if isinstance(value, int) else float(value) / divisor
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def event_value(value: Any, column: str) -> Union[int, float, Rejection]:
    """A monetary value: a number, or a string holding one (warehouses often export decimals as text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number: Union[int, float] = value
    elif isinstance(value, Decimal):
        number = float(value)
    elif isinstance(value, str) and _NUMBER.match(value):
        number = float(value)
    else:
        return Rejection("invalid_value", f"column '{column}' must be a number (or a string holding one)")
    if isinstance(number, float) and not math.isfinite(number):
        return Rejection("invalid_value", f"column '{column}' must be a finite number")
    return number


def _metric(data: Mapping[str, Any], plan: EventPlan) -> Union[str, Rejection]:
    if plan.metric is not None:
        return plan.metric
    column = plan.metric_field
    value = data.get(column) if column else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return Rejection("missing_metric", f"column '{column}' is empty: it names the event's metric")
    if not isinstance(value, str):
        return Rejection("invalid_metric", f"column '{column}' must be a string (the metric name)")
    if len(value) > MAX_METRIC_NAME_CHARS:
        return Rejection(
            "invalid_metric", f"column '{column}' is {len(value)} characters; Klaviyo metric names are under 128"
        )
    return value


def _unique_id_column(data: Mapping[str, Any], column: str) -> Union[str, Rejection]:
    value = data.get(column)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    if value is None or isinstance(value, str):
        return Rejection("missing_unique_id", f"column '{column}' is empty: it holds the event's unique id")
    return Rejection("invalid_value", f"column '{column}' must be a string or a number (the event's unique id)")


def render_event(
    data: Mapping[str, Any],
    plan: EventPlan,
    now: Optional[datetime] = None,
    phones: PhoneRules = DEFAULT_PHONE_RULES,
) -> Union[RenderedEvent, Rejection]:
    """Render one row as an `event-bulk-create` item: its profile and its one event."""
    found = identifiers(data, accept_profile_id=False, phones=phones)
    if isinstance(found, Rejection):
        return found
    if not found:
        return missing_identifier(
            data,
            IDENTIFIER_COLUMNS,
            "record has no identifier: set at least one of email, phone_e164 (or phone_number), external_id",
        )
    metric = _metric(data, plan)
    if isinstance(metric, Rejection):
        return metric
    split = event_columns(data, found, plan.steering_columns)
    if isinstance(split, Rejection):
        return split
    profile, properties = split
    if len(properties) > MAX_EVENT_PROPERTIES:
        return Rejection(
            "too_many_properties",
            f"the event has {len(properties)} properties; Klaviyo accepts at most {MAX_EVENT_PROPERTIES} per event",
        )
    event: dict[str, Any] = {
        "properties": properties,
        "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
    }
    if plan.time_field:
        when = event_time(data.get(plan.time_field), plan.time_field, now or datetime.now(timezone.utc))
        if isinstance(when, Rejection):
            return when
        event["time"] = when
    if plan.value_field and data.get(plan.value_field) is not None:
        value = event_value(data[plan.value_field], plan.value_field)
        if isinstance(value, Rejection):
            return value
        event["value"] = value
        if plan.value_currency:
            event["value_currency"] = plan.value_currency
    if plan.unique_id_field:
        unique_id = _unique_id_column(data, plan.unique_id_field)
        if isinstance(unique_id, Rejection):
            return unique_id
    else:
        unique_id = plan.unique_id(data, {"profile": profile, "event": event})
    event["unique_id"] = unique_id
    if plan.backfill:
        # The spec has the flag per profile group and per event and does not say which wins; both
        # say the same thing here.
        event["backfill"] = True
    group: dict[str, Any] = {
        "profile": {"data": {"type": "profile", "attributes": profile}},
        "events": {"data": [{"type": "event", "attributes": event}]},
    }
    if plan.backfill:
        group["backfill"] = True
    item = serialize(
        {"type": "event-bulk-create", "attributes": group},
        MAX_EVENT_BODY_BYTES - len(BODY_PREFIX) - len(BODY_SUFFIX),
        "event",
    )
    if isinstance(item, Rejection):
        return item
    if len(item) > MAX_STRING_BYTES:  # a shorter item cannot hold a longer string
        column = longest_string_column(data, MAX_STRING_BYTES)
        if column is not None:
            return Rejection(
                "string_too_large",
                f"column '{column}' holds a string over {MAX_STRING_BYTES:,} bytes; "
                "Klaviyo accepts at most 100 KB per string",
            )
    return RenderedEvent(item, (metric, unique_id), found.dropped)


# -- the sink ------------------------------------------------------------------------------------
class EventSink(Sink):
    """Events of every events stream of the sync, 1,000 (or 5 MB) per Bulk Create Events request."""

    pointers = Pointers(
        re.compile(r"^/data/attributes/events-bulk-create/data/(\d+)(/.*)?$"),
        re.compile(r"^/data/attributes/events-bulk-create(/data)?/?$"),
    )

    def __init__(self, context: SinkContext, target: Optional[str] = None, list_id: Optional[str] = None) -> None:
        super().__init__(context, target, list_id)
        self.batch = new_event_batch()
        self.keys: set[tuple[str, str]] = set()  # (metric, unique_id) of the open batch
        self.request = Request("event bulk create jobs", "create", self._send)

    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        assert not remove, "events never remove; the writer refuses deletion rows for them"
        plan = self.context.plans.get(row.key)
        assert isinstance(plan, EventPlan), f"stream {row.key} was routed to events without a plan"
        rendered = render_row(render_event, data, plan=plan, phones=self.context.phones)
        if isinstance(rendered, Rejection):
            self.report.rejected(row, rendered)
            return
        if rendered.omission is not None:
            self.report.omitted(row, rendered.omission)
        # A repeated unique_id would fail the whole request: the repeat goes in the next one.
        if rendered.key in self.keys or not self.batch.fits(rendered.item):
            self.flush()
        self.batch.add(row, rendered.item)
        self.keys.add(rendered.key)

    def flush(self) -> None:
        if len(self.batch):
            batch, self.batch, self.keys = self.batch, new_event_batch(), set()
            self.submit(batch, self.request)

    def open_batches(self) -> tuple[BodyBatch, ...]:
        return (self.batch,)

    def _send(self, body: bytes) -> str:
        assert self.context.client is not None
        self.context.client.create_event_bulk_job(body)
        return "a Bulk Create Events request"  # 202 with no body: Klaviyo gives it no id


# -- check ---------------------------------------------------------------------------------------
# A request with no event: nothing to record, so it changes nothing whatever Klaviyo answers.
PROBE_BODY = BODY_PREFIX + BODY_SUFFIX


def probe_write_scope(client: KlaviyoClient) -> None:
    """Klaviyo's 403 when the key lacks events:write (see sinks.probe_scope)."""
    probe_scope(client.create_event_bulk_job, PROBE_BODY)


# -- discover ------------------------------------------------------------------------------------
def schema(target_field: str) -> dict[str, Any]:
    found = profile_schema()
    found["description"] = (
        "Identifier and profile columns describe the person; every other column becomes an event property. "
        "The metric, time, unique id and value columns are named in the stream's `streams` entry."
    )
    found["properties"]["properties"] = {"type": ["null", "object"], "description": "Event properties"}
    return found


SPEC = SurfaceSpec(
    surface=Surface.EVENTS,
    summary="records events (orders, activity) on profiles",
    modes=UPSERT_MODES,
    matching_keys=MATCHING_KEYS,
    scopes=("events:write",),
    needs_target=False,
    removes=False,
    mirrors=False,
    schema=schema,
    make_sink=lambda context, target, list_id: EventSink(context),
    prepare=prepare,
    probe=probe_write_scope,
)
