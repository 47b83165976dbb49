"""profile_deletions: which identifier a row is deleted by, the request body, routing, the sink."""

import orjson
import pytest
from airbyte_cdk.models import (
    AirbyteStream,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    DestinationSyncMode,
    SyncMode,
)
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.batching import Entry
from destination_klaviyo.client import ApiErrorItem, KlaviyoApiError
from destination_klaviyo.config import parse_config
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.report import SyncReport, backlog_text
from destination_klaviyo.routing import Routes, route_stream
from destination_klaviyo.sinks import SinkContext
from destination_klaviyo.surfaces import SURFACES, Surface
from destination_klaviyo.surfaces.profile_deletions import DeletionSink, deletion_body, deletion_identifier
from integration_tests.klaviyo_emulator.filters import parse_filter


@pytest.mark.parametrize(
    "row,expected",
    [
        ({"klaviyo_profile_id": "P1", "email": "a@example.com", "phone_number": "+14155550100"}, ("id", "P1")),
        ({"email": "a@example.com", "phone_number": "+14155550100", "external_id": "7"}, ("email", "a@example.com")),
        ({"phone_number": "+1 (415) 555-0100", "external_id": "7"}, ("phone_number", "+14155550100")),
        ({"phone_e164": "+14155550100"}, ("phone_number", "+14155550100")),
        ({"external_id": 7}, ("external_id", "7")),
        ({"email": "  ", "external_id": "x"}, ("external_id", "x")),  # blank counts as missing
        # Only the chosen identifier is checked: a bad column the order does not reach blocks nothing.
        ({"klaviyo_profile_id": "P1", "email": "not an email"}, ("id", "P1")),
    ],
)
def test_a_row_is_deleted_by_its_most_specific_identifier(row, expected):
    assert deletion_identifier(row) == expected


@pytest.mark.parametrize(
    "row,code",
    [
        ({"first_name": "Ada"}, "missing_identifier"),
        ({"email": "not an email", "external_id": "7"}, "invalid_email"),  # never falls back to a later one
        ({"phone_number": "12"}, "invalid_phone"),
    ],
)
def test_a_row_without_a_usable_identifier_is_rejected(row, code):
    found = deletion_identifier(row)
    assert isinstance(found, Rejection) and found.code == code


def test_the_body_names_exactly_one_identifier():
    by_id = orjson.loads(deletion_body("id", "P1"))["data"]
    assert by_id["type"] == "data-privacy-deletion-job"
    assert by_id["attributes"]["profile"]["data"] == {"type": "profile", "id": "P1", "attributes": {}}
    by_email = orjson.loads(deletion_body("email", "a@example.com"))["data"]["attributes"]["profile"]["data"]
    assert by_email == {"type": "profile", "attributes": {"email": "a@example.com"}}


def configured(name, object_name=None, mode=DestinationSyncMode.append):
    return ConfiguredAirbyteStream(
        stream=AirbyteStream(name=name, json_schema={}, supported_sync_modes=[SyncMode.full_refresh]),
        sync_mode=SyncMode.full_refresh,
        destination_sync_mode=mode,
        destination_object_name=object_name,
    )


def config(**extra):
    return parse_config({"private_api_key": "pk", **extra})


def test_deletions_are_reached_by_a_streams_entry_or_a_destination_object():
    cfg = config(streams=[{"stream": "gdpr", "surface": "profile_deletions"}])
    assert route_stream(cfg, configured("gdpr")).surface is Surface.PROFILE_DELETIONS
    assert route_stream(config(), configured("x", object_name="profile_deletions")).surface is Surface.PROFILE_DELETIONS


def test_a_stream_merely_named_profile_deletions_is_refused():
    with pytest.raises(AirbyteTracedException) as info:
        route_stream(config(), configured("profile_deletions"))
    assert info.value.failure_type.value == "config_error"
    assert "explicit" in info.value.message and "streams" in info.value.message


def test_default_surface_can_never_be_deletions_even_when_no_stream_would_use_it():
    cfg = config(default_surface="profile_deletions", streams=[{"stream": "c", "surface": "profiles"}])
    with pytest.raises(AirbyteTracedException) as info:
        Routes(cfg, ConfiguredAirbyteCatalog(streams=[configured("c")]))
    assert info.value.failure_type.value == "config_error" and "default_surface" in info.value.message


def test_every_mode_but_overwrite_deletes_and_only_deletions_are_explicit_only():
    spec = SURFACES[Surface.PROFILE_DELETIONS]
    assert DestinationSyncMode.overwrite not in spec.modes and DestinationSyncMode.soft_delete in spec.modes
    assert spec.removes and not spec.mirrors and not spec.needs_target
    assert [s for s, sp in SURFACES.items() if sp.explicit_only] == [Surface.PROFILE_DELETIONS]


class FakeKlaviyo:
    def __init__(self, profiles=(), fail=None):
        self.profiles = list(profiles)
        self.deleted = []
        self.filters = []
        self.fail = fail or {}

    def get_profiles(self, filter):
        self.filters.append(filter)
        (node,) = parse_filter(filter)
        wanted = {v.value for v in node.value}
        return iter([p for p in self.profiles if p["attributes"].get(node.field) in wanted])

    def request_profile_deletion(self, body):
        profile = orjson.loads(body)["data"]["attributes"]["profile"]["data"]
        named = profile.get("id") or next(iter(profile["attributes"].values()))
        if named in self.fail:
            raise self.fail[named]
        self.deleted.append(named)


def sink_with(client, dry_run=False):
    report = SyncReport(dry_run=dry_run)
    return DeletionSink(SinkContext(client, report, dispatcher=None, dry_run=dry_run)), report


def entry(seq):
    return Entry(seq, "gdpr", seq + 1, (None, "gdpr"))


def test_the_sink_deletes_by_the_chosen_identifier_and_resolves_external_ids():
    client = FakeKlaviyo(
        profiles=[{"id": "PX", "attributes": {"external_id": "x1"}}],
        fail={"gone@example.com": KlaviyoApiError("POST", "/api/data-privacy-deletion-jobs", 404, [])},
    )
    sink, report = sink_with(client)
    rows = [
        {"email": "a@example.com", "external_id": "x9"},
        {"external_id": "x1"},
        {"external_id": "nobody"},
        {"email": "gone@example.com"},
        {"first_name": "no identifier"},
    ]
    for seq, row in enumerate(rows):
        sink.add(entry(seq), row, remove=seq == 0)
    assert client.deleted == ["a@example.com", "PX"]
    assert report.streams["gdpr"].delivered == 4  # a person not in Klaviyo is accepted: nothing left to erase
    assert report.tallies["Profile deletions of stream 'gdpr'"] == {
        "by email": 2,
        "by external_id": 2,
        "not in Klaviyo": 2,
    }
    assert report.streams["gdpr"].rejected == {"missing_identifier": 1}
    assert sink.lowest_pending_seq() is None


def test_a_400_about_the_row_rejects_it_and_anything_else_fails():
    bad = KlaviyoApiError(
        "POST", "/x", 400, [ApiErrorItem(None, "400", "invalid", None, "Invalid 'x'", "/data/attributes")]
    )
    client = FakeKlaviyo(fail={"bad@example.com": bad})
    sink, report = sink_with(client)
    sink.add(entry(0), {"email": "bad@example.com"})
    assert report.streams["gdpr"].rejected == {"klaviyo_rejected": 1} and report.streams["gdpr"].delivered == 0
    client.fail["boom@example.com"] = KlaviyoApiError("POST", "/x", 403, [])
    with pytest.raises(KlaviyoApiError):
        sink.add(entry(1), {"email": "boom@example.com"})
    assert sink.lowest_pending_seq() == 1  # its state is never released


def test_dry_run_counts_per_identifier_and_calls_nothing():
    client = FakeKlaviyo()
    sink, report = sink_with(client, dry_run=True)
    for seq, row in enumerate([{"email": "a@example.com"}, {"external_id": "7"}, {"klaviyo_profile_id": "P"}]):
        sink.add(entry(seq), row)
    assert client.deleted == [] and client.filters == []
    assert report.requests == {"profile deletions": 3}
    assert report.tallies["Profile deletions of stream 'gdpr'"] == {
        "by email": 1,
        "by external_id": 1,
        "by klaviyo_profile_id": 1,
    }


def test_the_progress_eta_of_a_backlog():
    assert backlog_text("profile deletions", 0, 1.0) == ""
    assert (
        backlog_text("profile deletions", 3480, 58 / 60) == ", 3,480 profile deletions pending (about 1h00m at 58/min)"
    )
    assert backlog_text("profile deletions", 10, 58 / 60) == ", 10 profile deletions pending (about 1 min at 58/min)"


def test_the_deletion_lane_stops_early_once_another_request_of_the_sync_failed():
    from destination_klaviyo.dispatch import Dispatcher

    client = FakeKlaviyo()
    dispatcher = Dispatcher(2)
    try:
        failed = dispatcher.submit(lambda: 1 / 0)  # another sink's request fails first
        failed.exception()  # wait for it (its done callback sets failure_seen)
        assert dispatcher.failure_seen
        report = SyncReport()
        sink = DeletionSink(SinkContext(client, report, dispatcher=dispatcher))
        for seq in range(5):
            sink.add(entry(seq), {"email": f"u{seq}@example.com"})
        sink.lane.exception(timeout=10)  # the lane ended without sending the queued deletions
        assert client.deleted == [] and sink.lowest_pending_seq() == 0  # so no state after them goes out
    finally:
        dispatcher.close()
