"""The events surface without a network: rendering a row as an event, its unique_id, the batch
limits and the duplicate-unique_id split, the routing-time checks, and check's scope probe."""

import hashlib
import logging
import re
from datetime import datetime, timezone

import orjson
import pytest
from airbyte_cdk.models import AirbyteStream, ConfiguredAirbyteStream, DestinationSyncMode, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.batching import Entry
from destination_klaviyo.client import ApiErrorItem, KlaviyoApiError
from destination_klaviyo.config import parse_config
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.report import SyncReport
from destination_klaviyo.routing import route_stream
from destination_klaviyo.sinks import SinkContext
from destination_klaviyo.surfaces.events import (
    BODY_PREFIX,
    BODY_SUFFIX,
    MAX_EVENT_BODY_BYTES,
    MAX_EVENTS_PER_REQUEST,
    EventPlan,
    EventSink,
    event_time,
    probe_write_scope,
    render_event,
)

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
KEY = (None, "orders")


def plan(**options):
    """The plan routing prepares for an `orders` stream with these `streams` options."""
    mode = options.pop("mode", DestinationSyncMode.append)
    primary_key = options.pop("primary_key", None)
    cursor = options.pop("cursor_field", None)
    if "metric_field" not in options:
        options.setdefault("metric", "Placed Order")
    config = parse_config({"private_api_key": "pk", "streams": [{"stream": "orders", "surface": "events", **options}]})
    configured = ConfiguredAirbyteStream(
        stream=AirbyteStream(name="orders", json_schema={}, supported_sync_modes=[SyncMode.incremental]),
        sync_mode=SyncMode.incremental,
        destination_sync_mode=mode,
        primary_key=primary_key,
        cursor_field=cursor,
    )
    return route_stream(config, configured).plan


def event(data, p=None):
    """The rendered item as JSON, and its event's attributes."""
    out = render_event(data, p or plan(), NOW)
    assert not isinstance(out, Rejection), out
    item = orjson.loads(out.item)
    return item, item["attributes"]["events"]["data"][0]["attributes"]


def rejection(data, p=None):
    out = render_event(data, p or plan(), NOW)
    assert isinstance(out, Rejection), out
    return out


# -- rendering ---------------------------------------------------------------------------------
def test_an_order_row_becomes_one_profile_group_with_one_event():
    p = plan(time_field="ordered_at", value_field="total", value_currency="USD", primary_key=[["order_id"]])
    item, attributes = event(
        {
            "email": "ada@example.com",
            "phone_e164": "+1 (500) 555-0006",
            "first_name": "Ada",
            "location": {"city": "London", "zip": None},
            "order_id": 1001,
            "ordered_at": "2026-03-01T10:15:30.250Z",
            "total": 42.5,
            "items": [{"sku": "A1", "note": None}, None],
            "coupon": None,
            "_ab_cdc_updated_at": "2026-03-01",
        },
        p,
    )
    assert item["type"] == "event-bulk-create" and "backfill" not in item["attributes"]
    assert item["attributes"]["profile"] == {
        "data": {
            "type": "profile",
            "attributes": {
                "email": "ada@example.com",
                "phone_number": "+15005550006",
                "first_name": "Ada",
                "location": {"city": "London"},
            },
        }
    }
    assert attributes == {
        "properties": {"order_id": 1001, "items": [{"sku": "A1"}]},  # nulls dropped, steering columns not sent
        "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order"}}},
        "time": "2026-03-01T10:15:30+00:00",  # UTC, truncated to the second
        "value": 42.5,
        "value_currency": "USD",
        "unique_id": attributes["unique_id"],
    }
    assert len(attributes["unique_id"]) == 32


def test_the_properties_column_holds_event_properties_and_a_column_wins_over_its_keys():
    _, attributes = event({"email": "a@b.co", "properties": {"sku": "old", "size": "M", "gone": None}, "sku": "new"})
    assert attributes["properties"] == {"sku": "new", "size": "M"}
    assert rejection({"email": "a@b.co", "properties": [1]}).code == "invalid_value"


def test_the_metric_comes_from_a_column_per_row():
    p = plan(metric_field="kind")
    _, attributes = event({"email": "a@b.co", "kind": "Started Subscription", "plan": "pro"}, p)
    assert attributes["metric"]["data"]["attributes"]["name"] == "Started Subscription"
    assert attributes["properties"] == {"plan": "pro"}  # the metric column is not a property
    assert rejection({"email": "a@b.co", "kind": " "}, p).code == "missing_metric"
    assert rejection({"email": "a@b.co"}, p).code == "missing_metric"
    assert rejection({"email": "a@b.co", "kind": 3}, p).code == "invalid_metric"
    long = rejection({"email": "a@b.co", "kind": "x" * 128}, p)
    assert long.code == "invalid_metric" and "'kind'" in long.detail and "x" * 20 not in long.detail
    assert event({"email": "a@b.co", "kind": "x" * 127}, p)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2026-03-01T10:15:30Z", "2026-03-01T10:15:30+00:00"),
        ("2026-03-01T12:15:30+02:00", "2026-03-01T10:15:30+00:00"),
        ("2026-03-01 10:15:30", "2026-03-01T10:15:30+00:00"),  # no zone: UTC
        ("2026-03-01T10:15:30.999999", "2026-03-01T10:15:30+00:00"),
        ("2026-03-01", "2026-03-01T00:00:00+00:00"),
        (1772360130, "2026-03-01T10:15:30+00:00"),  # epoch seconds
        (1772360130.75, "2026-03-01T10:15:30+00:00"),
        (1772360130750, "2026-03-01T10:15:30+00:00"),  # milliseconds
        (1772360130750123, "2026-03-01T10:15:30+00:00"),  # microseconds
        ("1991-01-01T00:00:00Z", "1991-01-01T00:00:00+00:00"),
        ("2027-06-01T12:00:00Z", "2027-06-01T12:00:00+00:00"),  # 365 days ahead of NOW
    ],
)
def test_event_times_are_normalised_to_utc_seconds(value, expected):
    assert event_time(value, "at", NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        "2026-13-01",
        True,
        {"t": 1},
        float("nan"),
        float("inf"),
        None,
        "1990-12-31T23:59:59Z",  # Klaviyo: after the year 1990
        "2027-06-01T12:00:01Z",  # more than a year ahead
        10**18,
    ],
)
def test_bad_or_out_of_window_times_are_rejected_naming_the_column(value):
    found = event_time(value, "ordered_at", NOW)
    assert isinstance(found, Rejection) and found.code == "invalid_time"
    assert "'ordered_at'" in found.detail and (not isinstance(value, str) or not value or value not in found.detail)


def test_without_time_field_no_time_is_sent():
    _, attributes = event({"email": "a@b.co", "ordered_at": "2026-01-01"})
    assert "time" not in attributes and attributes["properties"] == {"ordered_at": "2026-01-01"}


@pytest.mark.parametrize("value,expected", [(19, 19), (19.99, 19.99), ("19.99", 19.99), (" -3e2 ", -300.0), ("7", 7.0)])
def test_value_is_a_number_or_a_numeric_string(value, expected):
    _, attributes = event({"email": "a@b.co", "total": value}, plan(value_field="total"))
    assert attributes["value"] == expected and "value_currency" not in attributes


@pytest.mark.parametrize("value", ["19,99", "nan", "inf", "1_000", True, [1], float("nan")])
def test_a_bad_value_is_rejected(value):
    found = rejection({"email": "a@b.co", "total": value}, plan(value_field="total"))
    assert found.code == "invalid_value" and "'total'" in found.detail


def test_a_missing_value_is_simply_not_sent():
    _, attributes = event({"email": "a@b.co", "total": None}, plan(value_field="total", value_currency="EUR"))
    assert "value" not in attributes and "value_currency" not in attributes


def test_backfill_is_set_on_the_profile_group_and_on_the_event():
    item, attributes = event({"email": "a@b.co", "at": "2026-01-01"}, plan(backfill=True, time_field="at"))
    assert item["attributes"]["backfill"] is True and attributes["backfill"] is True


def test_rows_without_an_identifier_or_with_a_bad_one_are_rejected_as_on_profiles():
    assert rejection({"first_name": "Ada", "order_id": 1}).code == "missing_identifier"
    assert rejection({"email": "not-an-email"}).code == "invalid_email"
    assert rejection({"phone_number": "12"}).code == "invalid_phone"
    assert rejection({"email": "a@b.co", "first_name": {"x": 1}}).code == "invalid_value"
    assert rejection({"email": "a@b.co", "score": float("nan")}).code == "invalid_value"


def test_at_most_400_properties():
    assert event({"email": "a@b.co", **{f"p{i}": i for i in range(400)}})
    too_many = rejection({"email": "a@b.co", **{f"p{i}": i for i in range(401)}})
    assert too_many.code == "too_many_properties" and "401" in too_many.detail


def test_strings_over_100_kb_are_rejected_naming_the_column():
    assert event({"email": "a@b.co", "note": "x" * 100_000})
    found = rejection({"email": "a@b.co", "note": "x" * 100_001})
    assert found.code == "string_too_large" and "'note'" in found.detail
    nested = rejection({"email": "a@b.co", "lines": [{"text": "é" * 50_001}]})  # 100,002 bytes in UTF-8
    assert nested.code == "string_too_large" and "'lines'" in nested.detail


def test_an_event_that_cannot_fit_a_request_is_rejected():
    found = rejection({"email": "a@b.co", **{f"p{i}": "x" * 90_000 for i in range(56)}})
    assert found.code == "event_too_large"


# -- unique_id -----------------------------------------------------------------------------------
def uid(data, p):
    return event(data, p)[1]["unique_id"]


def test_unique_id_from_primary_key_and_cursor_in_append_mode():
    p = plan(primary_key=[["order_id"]], cursor_field=["updated_at"])
    row = {"email": "a@b.co", "order_id": 7, "updated_at": "2026-01-01", "total": 5}
    same = uid(row, p)
    assert uid(dict(reversed(list(row.items()))), p) == same  # column order does not matter
    assert uid({**row, "total": 6}, p) == same  # only the key and cursor count
    assert uid({**row, "updated_at": "2026-01-02"}, p) != same  # a new version is a new event
    assert uid({**row, "order_id": 8}, p) != same
    assert re.fullmatch(r"[0-9a-f]{32}", same)  # a hash: no row value in it


def test_derived_unique_ids_never_change_between_connector_versions():
    """A changed derivation would record every re-sent row a second time after an upgrade."""
    row = {"email": "a@b.co", "order_id": "A-1001", "updated_at": "2026-03-02T08:00:00Z", "sku": "TEA"}
    keyed = plan(primary_key=[["order_id"]], cursor_field=["updated_at"])
    assert uid(row, keyed) == "dbb68eb37f735aed7ecfb3f2214d2b05"
    # = sha256 of the canonical JSON ["key", namespace, stream, [key values], cursor value], 32 hex digits
    identity = orjson.dumps(["key", None, "orders", ["A-1001"], "2026-03-02T08:00:00Z"])
    assert hashlib.sha256(identity).hexdigest()[:32] == "dbb68eb37f735aed7ecfb3f2214d2b05"
    deduped = plan(mode=DestinationSyncMode.append_dedup, primary_key=[["order_id"]], cursor_field=["updated_at"])
    assert uid(row, deduped) == "5d0b3fdfcec86da0005c3dbdda39edc4"  # docs/klaviyo.md's worked example
    assert uid(row, plan()) == "e242bcd023e9270cb3f5de4125e4ed7c"


@pytest.mark.parametrize("mode", [DestinationSyncMode.append_dedup, DestinationSyncMode.update])
def test_deduped_modes_keep_one_event_per_primary_key(mode):
    p = plan(mode=mode, primary_key=[["order_id"]], cursor_field=["updated_at"])
    row = {"email": "a@b.co", "order_id": 7, "updated_at": "2026-01-01"}
    assert uid(row, p) == uid({**row, "updated_at": "2026-01-02", "status": "shipped"}, p)


def test_unique_id_depends_on_the_stream_and_nested_key_paths_work():
    p = plan(primary_key=[["order", "id"], ["line"]])
    row = {"email": "a@b.co", "order": {"id": "A"}, "line": 1}
    other_stream = EventPlan(**{**p.__dict__, "stream": "returns"})
    assert uid(row, p) != uid(row, other_stream)
    assert uid(row, p) != uid({**row, "line": 2}, p)


def test_without_a_primary_key_the_whole_event_is_hashed():
    p = plan()
    row = {"email": "a@b.co", "sku": "A1", "qty": 2}
    assert uid(row, p) == uid({"qty": 2, "sku": "A1", "email": "a@b.co"}, p)
    assert uid(row, p) != uid({**row, "qty": 3}, p)
    # A key declared but missing in a row: the whole event is hashed (still the same id on a re-send).
    keyed = plan(primary_key=[["order_id"]])
    assert uid({"email": "a@b.co", "sku": "A1"}, keyed) == uid({"email": "a@b.co", "sku": "A1"}, keyed)


def test_unique_id_from_a_column():
    p = plan(unique_id_field="event_id")
    _, attributes = event({"email": "a@b.co", "event_id": 99, "x": 1}, p)
    assert attributes["unique_id"] == "99" and attributes["properties"] == {"x": 1}
    assert uid({"email": "a@b.co", "event_id": "evt_1"}, p) == "evt_1"
    assert rejection({"email": "a@b.co", "event_id": ""}, p).code == "missing_unique_id"
    assert rejection({"email": "a@b.co"}, p).code == "missing_unique_id"
    assert rejection({"email": "a@b.co", "event_id": {"a": 1}}, p).code == "invalid_value"


# -- routing -------------------------------------------------------------------------------------
def configured(name="orders"):
    return ConfiguredAirbyteStream(
        stream=AirbyteStream(name=name, json_schema={}, supported_sync_modes=[SyncMode.incremental]),
        sync_mode=SyncMode.incremental,
        destination_sync_mode=DestinationSyncMode.append,
    )


@pytest.mark.parametrize(
    "config",
    [
        {"default_surface": "events"},
        {"streams": [{"stream": "orders", "surface": "events", "time_field": "at"}]},
    ],
)
def test_a_stream_routed_to_events_without_a_metric_fails_at_routing_naming_stream_and_fields(config):
    with pytest.raises(AirbyteTracedException) as info:
        route_stream(parse_config({"private_api_key": "pk", **config}), configured())
    assert info.value.failure_type.value == "config_error"
    message = info.value.message
    assert "'orders'" in message and "`metric`" in message and "`metric_field`" in message


def test_backfill_without_time_field_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="airbyte"):
        plan(backfill=True)
    assert any("backfill is on but no time_field" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="airbyte"):
        plan(backfill=True, time_field="at")
    assert not caplog.records


def test_the_destination_object_events_uses_the_streams_entry_options():
    config = parse_config(
        {"private_api_key": "pk", "streams": [{"stream": "orders", "surface": "events", "metric": "Placed Order"}]}
    )
    stream = configured()
    stream.destination_object_name = "events"
    assert route_stream(config, stream).plan.metric == "Placed Order"


# -- batching and the sink -----------------------------------------------------------------------
class FakeClient:
    def __init__(self, fail=None):
        self.bodies = []
        self.fail = fail  # (status, pointer) for the first call

    def create_event_bulk_job(self, body):
        if self.fail is not None:
            status, pointer = self.fail
            self.fail = None
            error = ApiErrorItem("e", str(status), "invalid", "Invalid", "bad 'x'", pointer)
            raise KlaviyoApiError("POST", "/api/event-bulk-create-jobs", status, [error])
        self.bodies.append(orjson.loads(body))
        assert len(body) <= MAX_EVENT_BODY_BYTES


def sink_for(p, client=None):
    report = SyncReport()
    sink = EventSink(SinkContext(client or FakeClient(), report, plans={KEY: p}))
    return sink, report


def feed(sink, rows):
    for i, data in enumerate(rows):
        sink.add(Entry(i, "orders", i + 1, KEY), data)
    sink.flush()


def events_of(body):
    groups = body["data"]["attributes"]["events-bulk-create"]["data"]
    return [g["attributes"]["events"]["data"][0]["attributes"] for g in groups]


def test_at_most_1000_events_per_request_and_nothing_lost():
    client = FakeClient()
    sink, report = sink_for(plan(unique_id_field="n"), client)
    feed(sink, [{"email": f"u{i}@example.com", "n": i} for i in range(2_345)])
    assert [len(events_of(b)) for b in client.bodies] == [1_000, 1_000, 345]
    assert [e["unique_id"] for b in client.bodies for e in events_of(b)] == [str(i) for i in range(2_345)]
    assert report.streams["orders"].delivered == 2_345


def test_at_most_5_000_000_bytes_per_request_measured_on_the_wire():
    client = FakeClient()
    sink, _ = sink_for(plan(unique_id_field="n"), client)
    feed(sink, [{"email": f"u{i}@example.com", "n": i, "pad": "x" * 60_000} for i in range(200)])
    sizes = [len(orjson.dumps(b)) for b in client.bodies]
    assert len(client.bodies) >= 3 and max(sizes) <= MAX_EVENT_BODY_BYTES
    assert sum(len(events_of(b)) for b in client.bodies) == 200
    first = len(events_of(client.bodies[0]))
    assert first < MAX_EVENTS_PER_REQUEST and sizes[0] + 60_000 > MAX_EVENT_BODY_BYTES  # the next one did not fit


def test_a_repeated_unique_id_waits_for_the_next_request():
    client = FakeClient()
    sink, report = sink_for(plan(unique_id_field="event_id", metric_field="kind"), client)
    feed(
        sink,
        [
            {"email": "a@example.com", "event_id": "e1", "kind": "Placed Order"},
            {"external_id": "A", "event_id": "e1", "kind": "Placed Order"},  # maybe the same person: a clash
            {"email": "b@example.com", "event_id": "e1", "kind": "Refunded Order"},  # another metric: no clash
            {"email": "c@example.com", "event_id": "e2", "kind": "Placed Order"},
        ],
    )
    ids = [[(e["metric"]["data"]["attributes"]["name"], e["unique_id"]) for e in events_of(b)] for b in client.bodies]
    assert ids == [
        [("Placed Order", "e1")],
        [("Placed Order", "e1"), ("Refunded Order", "e1"), ("Placed Order", "e2")],
    ]
    assert report.streams["orders"].delivered == 4


def test_the_body_is_byte_exact_and_the_grouping_overhead_is_small():
    client = FakeClient()
    sink, _ = sink_for(plan(unique_id_field="n"), client)
    sink.add(Entry(0, "orders", 1, KEY), {"email": "a@example.com", "n": 1})
    body = sink.batch.body()
    assert body.startswith(BODY_PREFIX) and body.endswith(BODY_SUFFIX) and len(body) == sink.batch.size
    parsed = orjson.loads(body)
    assert parsed["data"]["type"] == "event-bulk-create-job"
    group = parsed["data"]["attributes"]["events-bulk-create"]["data"][0]
    profile = orjson.dumps(group["attributes"]["profile"]["data"])
    one_event = orjson.dumps(group["attributes"]["events"]["data"][0])
    # What one group per row costs over one event inside a shared group: the group's own JSON.
    overhead = len(sink.batch.item(0)) - len(profile) - len(one_event)
    assert overhead == 84  # surfaces/events.py quotes this figure


def test_a_400_pointing_at_one_event_rejects_that_row_and_resends_the_rest():
    pointer = "/data/attributes/events-bulk-create/data/1/attributes/events/data/0/attributes/time"
    client = FakeClient(fail=(400, pointer))
    sink, report = sink_for(plan(unique_id_field="n"), client)
    feed(sink, [{"email": f"u{i}@example.com", "n": i} for i in range(3)])
    assert [e["unique_id"] for e in events_of(client.bodies[0])] == ["0", "2"]
    assert report.streams["orders"].rejected == {"klaviyo_rejected": 1}
    assert report.streams["orders"].delivered == 2


def test_a_400_about_the_whole_array_halves_the_batch():
    client = FakeClient(fail=(400, "/data/attributes/events-bulk-create/data"))
    sink, report = sink_for(plan(unique_id_field="n"), client)
    feed(sink, [{"email": f"u{i}@example.com", "n": i} for i in range(4)])
    assert [len(events_of(b)) for b in client.bodies] == [2, 2]
    assert report.streams["orders"].delivered == 4


def test_dry_run_sends_nothing_and_counts_the_plan():
    client = FakeClient()
    report = SyncReport(dry_run=True)
    sink = EventSink(SinkContext(client, report, dry_run=True, plans={KEY: plan()}))
    feed(sink, [{"email": f"u{i}@example.com", "n": i} for i in range(3)])
    assert client.bodies == [] and report.streams["orders"].delivered == 3
    assert report.requests == {"event bulk create jobs": 1}


# -- check ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 404])
def test_the_scope_probe_takes_a_refused_empty_request_as_authorized(status):
    probe_write_scope(FakeClient(fail=(status, "/data/attributes/events-bulk-create/data")))


def test_the_scope_probe_raises_klaviyos_403():
    with pytest.raises(KlaviyoApiError) as info:
        probe_write_scope(FakeClient(fail=(403, None)))
    from destination_klaviyo.errors import explain

    assert "events:write" in explain(info.value)


def test_the_probe_body_holds_no_event():
    client = FakeClient()
    probe_write_scope(client)
    assert client.bodies == [
        {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": []}}}}
    ]


# -- the person's columns: the rules shared with profiles (phones, location, near-miss names) ---------
def test_an_event_row_follows_the_profile_rules_for_phones_location_and_misnamed_identifiers():
    from destination_klaviyo.identifiers import PhoneRules

    row = {"email": "a@b.co", "phone_number": "06 12 34 56 78", "city": "Lyon", "sku": "X"}
    out = render_event(row, plan(), NOW, phones=PhoneRules(default_region="FR"))
    group = orjson.loads(out.item)["attributes"]
    profile = group["profile"]["data"]["attributes"]
    assert profile == {"email": "a@b.co", "phone_number": "+33612345678", "location": {"city": "Lyon"}}
    assert group["events"]["data"][0]["attributes"]["properties"] == {"sku": "X"}
    assert out.omission is None

    out = render_event({"email": "a@b.co", "phone_number": "not a phone"}, plan(), NOW)
    assert out.omission is not None and out.omission.code == "invalid_phone_dropped"
    assert "phone_number" not in orjson.loads(out.item)["attributes"]["profile"]["data"]["attributes"]

    missing = rejection({"Email": "a@b.co", "sku": "X"})
    assert missing.code == "missing_identifier" and "did you mean `email`?" in missing.detail


def test_the_event_sink_reports_a_dropped_phone_and_delivers_the_row():
    client = FakeClient()
    sink, report = sink_for(plan(unique_id_field="n"), client)
    feed(sink, [{"email": "a@b.co", "phone_number": "12", "n": 1}])
    assert report.streams["orders"].delivered == 1
    assert report.streams["orders"].omitted == {"invalid_phone_dropped": 1}
