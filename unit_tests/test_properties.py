"""Property-based tests: whatever the rows, rendering never sends a null or an oversize profile,
and batching never exceeds a limit and never drops, duplicates or reorders a row."""

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destination_klaviyo.batching import Entry
from destination_klaviyo.rejections import Amended, Rejection
from destination_klaviyo.report import SyncReport
from destination_klaviyo.sinks import SinkContext
from destination_klaviyo.surfaces import profiles as profile_surface
from destination_klaviyo.surfaces.events import EventPlan, render_event
from destination_klaviyo.surfaces.profiles import MAX_PROFILE_BYTES, BulkImportSink, render_profile
from integration_tests.harness import contains_null

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
columns = st.sampled_from(
    [
        "email",
        "phone_e164",
        "phone_number",
        "external_id",
        "first_name",
        "location",
        "properties",
        "title",
        "plan",
        "list",
        "_ab_cdc_lsn",
    ]
)
records = st.dictionaries(st.one_of(columns, st.text(max_size=10)), json_values, max_size=10)
emails = st.from_regex(r"[a-z0-9]{1,12}@[a-z]{1,8}\.[a-z]{2,4}", fullmatch=True)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.booleans())
def test_rendering_sends_no_null_and_stays_in_bounds(data, accept_profile_id):
    out = render_profile(data, accept_profile_id=accept_profile_id)
    if isinstance(out, Rejection):
        assert out.code and out.detail
        return
    dropped_phone = isinstance(out, Amended)
    if dropped_phone:  # sent without its unusable phone number
        assert out.omission.code == "invalid_phone_dropped" and out.omission.detail
        out = out.body
    assert len(out) <= MAX_PROFILE_BYTES
    profile = orjson.loads(out)
    assert not (dropped_phone and "phone_number" in profile["attributes"])
    assert not contains_null(profile)
    identifiers = {"email", "phone_number", "external_id"} & set(profile["attributes"])
    assert identifiers or "id" in profile
    assert not any(key.startswith("_ab_") for key in profile["attributes"].get("properties", {}))


@settings(max_examples=400)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), emails)
def test_a_row_with_a_valid_email_is_never_lost_for_its_other_columns(extra, email):
    extra = {
        k: v
        for k, v in extra.items()
        if k not in ("email", "phone_e164", "phone_number", "external_id", "klaviyo_profile_id", "location")
    }
    out = render_profile({**extra, "email": email})
    if isinstance(out, Rejection):  # only reasons that name a real problem with a value are allowed
        assert out.code in ("invalid_value", "invalid_text", "too_deep", "profile_too_large"), out
    else:
        assert orjson.loads(out)["attributes"]["email"] == email


class RecordingClient:
    def __init__(self):
        self.bodies = []

    def create_bulk_import_job(self, body):
        self.bodies.append(body)
        return str(len(self.bodies))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=900, max_value=4_000),
)
def test_batching_never_exceeds_a_limit_nor_loses_a_row(pads, max_items, max_bytes):
    original = (profile_surface.MAX_PROFILES_PER_JOB, profile_surface.MAX_JOB_BODY_BYTES)
    profile_surface.MAX_PROFILES_PER_JOB, profile_surface.MAX_JOB_BODY_BYTES = max_items, max_bytes
    try:
        client = RecordingClient()
        report = SyncReport()
        sink = BulkImportSink(SinkContext(client, report))
        sent_emails = []
        for i, pad in enumerate(pads):
            email = f"u{i}@example.com"
            sink.add(Entry(i, "s", i + 1, (None, "s")), {"email": email, "pad": "x" * pad})
            if not isinstance(render_profile({"email": email, "pad": "x" * pad}), Rejection):
                sent_emails.append(email)
        sink.flush()
    finally:
        profile_surface.MAX_PROFILES_PER_JOB, profile_surface.MAX_JOB_BODY_BYTES = original
    received = []
    for body in client.bodies:
        profiles = orjson.loads(body)["data"]["attributes"]["profiles"]["data"]
        assert 1 <= len(profiles) <= max_items
        assert len(body) <= max_bytes  # every single profile here (< 800 bytes) fits a job on its own
        received += [p["attributes"]["email"] for p in profiles]
    assert received == sent_emails
    assert report.streams["s"].delivered == len(sent_emails)


EVENT_PLAN = EventPlan(
    namespace=None,
    stream="orders",
    metric=None,
    metric_field="kind",
    time_field="at",
    unique_id_field=None,
    value_field="total",
    value_currency="USD",
    backfill=False,
    primary_key=(("order_id",),),
    cursor_field=(),
)
event_columns = st.sampled_from(["total", "order_id", "properties", "first_name", "email", "sku"])
event_records = st.dictionaries(st.one_of(event_columns, st.text(max_size=10)), json_values, max_size=10)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(event_records, emails, st.sampled_from(["Placed Order", "Viewed Product"]))
def test_event_rendering_sends_no_null_and_only_what_klaviyo_accepts(data, email, kind):
    out = render_event({**data, "email": email, "kind": kind, "at": "2026-01-01T00:00:00Z"}, EVENT_PLAN)
    if isinstance(out, Rejection):  # a wrong type in a known column (value, profile attribute, properties)
        assert out.code in ("invalid_value", "invalid_phone"), out
        return
    group = orjson.loads(out.item)
    assert not contains_null(group)
    attributes = group["attributes"]["events"]["data"][0]["attributes"]
    assert attributes["metric"]["data"]["attributes"]["name"] == kind
    assert len(attributes["properties"]) <= 400 and len(attributes["unique_id"]) == 32
    assert out.key == (kind, attributes["unique_id"])
    assert not {"kind", "at", "total"} & set(attributes["properties"])
