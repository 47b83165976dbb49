"""The consent surfaces without a network: rendering, the four request bodies, the unsubscribe
guard and the order of a person's opposite actions, driven by a fake client."""

import json
import re
from datetime import datetime, timezone

import orjson
import pytest
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.batching import Entry
from destination_klaviyo.client import ApiErrorItem, KlaviyoApiError, KlaviyoUnreachable
from destination_klaviyo.config import parse_config
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.report import SyncReport
from destination_klaviyo.sinks import SinkContext
from destination_klaviyo.surfaces import SURFACES, Surface, removing_surfaces
from destination_klaviyo.surfaces.base import ConsentChannel as C
from destination_klaviyo.surfaces.subscription_items import (
    MAX_PROFILES_PER_SUBSCRIBE,
    MAX_PROFILES_PER_UNSUBSCRIBE,
    SubscriptionPlan,
    new_subscribe_batch,
    new_unsubscribe_batch,
    render_subscription,
)
from destination_klaviyo.surfaces.subscriptions import SubscriptionSink
from destination_klaviyo.surfaces.suppressions import (
    MAX_EMAILS_PER_SUPPRESSION_JOB,
    SuppressionSink,
    new_suppression_batch,
    render_suppression_item,
)
from destination_klaviyo.surfaces.unsubscribe_guard import GLOBAL_UNSUBSCRIBE

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
EMAIL = SubscriptionPlan(frozenset({C.EMAIL_MARKETING}))
KEY = (None, "consent")


def entry(i, key=KEY):
    return Entry(seq=i, stream=key[1], ordinal=i + 1, key=key)


def item(rendered):
    assert not isinstance(rendered, Rejection), rendered
    return orjson.loads(rendered.item)


# -- rendering -------------------------------------------------------------------------------------
def test_the_streams_channels_apply_and_only_the_identifiers_they_need_are_sent():
    plan = SubscriptionPlan(frozenset({C.EMAIL_MARKETING}))
    got = item(render_subscription({"email": "a@example.com", "phone_number": "+15005550006", "plan": "pro"}, plan))
    assert got == {
        "type": "profile",
        "attributes": {"email": "a@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}},
    }


def test_columns_override_the_stream_channel_by_channel():
    data = {"email": "a@example.com", "phone_e164": "+1 (500) 555-0006", "email_marketing": False}
    data |= {"sms_marketing": True, "sms_transactional": "TRUE"}
    got = item(render_subscription(data, EMAIL))
    assert got["attributes"] == {
        "phone_number": "+15005550006",
        "subscriptions": {"sms": {"marketing": {"consent": "SUBSCRIBED"}, "transactional": {"consent": "SUBSCRIBED"}}},
    }


@pytest.mark.parametrize(
    "data,code",
    [
        ({"email": "a@example.com"}, "missing_channel"),  # no stream channels, no column
        ({"email": "a@example.com", "email_marketing": False}, "missing_channel"),
        ({"email": "a@example.com", "email_marketing": 1}, "invalid_value"),
        ({"email": "a@example.com", "email_marketing": "yes"}, "invalid_value"),
        ({"email": "a@example.com", "sms_marketing": True}, "missing_identifier"),  # SMS needs a phone
        ({"phone_number": "+15005550006", "email_marketing": True}, "missing_identifier"),
        ({"external_id": "c1", "email_marketing": True}, "missing_identifier"),  # subscribe has no external_id
        ({"klaviyo_profile_id": "01P", "email_marketing": True}, "missing_identifier"),  # needs the email too
        ({"email": "not an email", "email_marketing": True}, "invalid_email"),
        ({"phone_number": "12", "sms_marketing": True}, "invalid_phone"),
    ],
)
def test_rows_that_cannot_give_consent_are_rejected(data, code):
    rendered = render_subscription(data, now=NOW)
    assert isinstance(rendered, Rejection) and rendered.code == code
    assert "a@example.com" not in rendered.detail and "+1500" not in rendered.detail


def test_a_profile_id_pins_the_profile_on_subscribe_but_cannot_unsubscribe():
    data = {"klaviyo_profile_id": "01PROFILE", "email": "a@example.com", "email_marketing": True}
    assert item(render_subscription(data))["id"] == "01PROFILE"
    removed = item(render_subscription(data, remove=True))
    assert "id" not in removed and removed["attributes"]["email"] == "a@example.com"
    only_id = render_subscription({"klaviyo_profile_id": "01PROFILE", "email_marketing": True}, remove=True)
    assert isinstance(only_id, Rejection) and only_id.code == "missing_identifier"
    assert "klaviyo_profile_id" in only_id.detail and "email or phone number only" in only_id.detail


@pytest.mark.parametrize(
    "value,sent",
    [
        ("2024-05-01T09:30:00Z", "2024-05-01T09:30:00+00:00"),
        ("2024-05-01T11:30:00+02:00", "2024-05-01T09:30:00+00:00"),
        ("2024-05-01 09:30:00", "2024-05-01T09:30:00+00:00"),  # no zone: UTC
        ("2024-05-01", "2024-05-01T00:00:00+00:00"),
    ],
)
def test_consented_at_makes_a_historical_import_with_a_utc_time(value, sent):
    rendered = render_subscription({"email": "a@example.com", "consented_at": value}, EMAIL, now=NOW)
    assert not isinstance(rendered, Rejection) and rendered.historical
    assert orjson.loads(rendered.item)["attributes"]["subscriptions"]["email"]["marketing"] == {
        "consent": "SUBSCRIBED",
        "consented_at": sent,
    }


@pytest.mark.parametrize("value", ["2026-06-01T12:00:00Z", "2030-01-01", "yesterday", "01/05/2024", 1714555800])
def test_a_consented_at_in_the_future_or_unreadable_is_rejected(value):
    rendered = render_subscription({"email": "a@example.com", "consented_at": value}, EMAIL, now=NOW)
    assert isinstance(rendered, Rejection) and rendered.code == "invalid_consented_at"


def test_no_consented_at_is_not_historical_and_a_deletion_ignores_it():
    assert not render_subscription({"email": "a@example.com", "consented_at": " "}, EMAIL, now=NOW).historical
    removed = render_subscription({"email": "a@example.com", "consented_at": "2030-01-01"}, EMAIL, remove=True)
    assert item(removed)["attributes"]["subscriptions"] == {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}


def test_age_gated_date_of_birth_is_passed_on_subscribe_only():
    data = {"phone_number": "+15005550006", "sms_marketing": True, "age_gated_date_of_birth": "1990-02-03"}
    assert item(render_subscription(data))["attributes"]["age_gated_date_of_birth"] == "1990-02-03"
    assert "age_gated_date_of_birth" not in item(render_subscription(data, remove=True))["attributes"]
    bad = render_subscription({**data, "age_gated_date_of_birth": "03/02/1990"})
    assert isinstance(bad, Rejection) and bad.code == "invalid_value"


def test_suppression_items_are_emails_only():
    assert orjson.loads(render_suppression_item({"email": "a@example.com", "phone_number": "x"}).item) == {
        "type": "profile",
        "attributes": {"email": "a@example.com"},
    }
    for data, code in (({"phone_number": "+15005550006"}, "missing_identifier"), ({"email": "nope"}, "invalid_email")):
        rejected = render_suppression_item(data)
        assert isinstance(rejected, Rejection) and rejected.code == code


# -- the four bodies -------------------------------------------------------------------------------
def fill(batch, body, n):
    for i in range(n):
        if not batch.fits(body):
            return i
        batch.add(entry(i), body)
    return n


def test_subscribe_body_carries_the_list_and_the_historical_flag_per_request():
    body = render_subscription({"email": "a@example.com"}, EMAIL).item
    for historical in (False, True):
        batch = new_subscribe_batch("L1", historical)
        batch.add(entry(0), body)
        parsed = orjson.loads(batch.body())
        assert len(batch.body()) == batch.size
        assert parsed["data"]["type"] == "profile-subscription-bulk-create-job"
        assert parsed["data"]["relationships"] == {"list": {"data": {"type": "list", "id": "L1"}}}
        assert parsed["data"]["attributes"].get("historical_import", False) is historical
        assert parsed["data"]["attributes"]["profiles"]["data"] == [orjson.loads(body)]
    assert fill(new_subscribe_batch("L1"), body, 1_500) == MAX_PROFILES_PER_SUBSCRIBE == 1_000


def test_unsubscribe_body_always_names_the_list():
    body = render_subscription({"email": "a@example.com"}, EMAIL, remove=True).item
    batch = new_unsubscribe_batch("L1")
    batch.add(entry(0), body)
    parsed = orjson.loads(batch.body())
    assert parsed["data"]["type"] == "profile-subscription-bulk-delete-job"
    assert parsed["data"]["relationships"]["list"]["data"] == {"type": "list", "id": "L1"}
    assert "historical_import" not in parsed["data"]["attributes"]
    assert fill(new_unsubscribe_batch("L1"), body, 150) == MAX_PROFILES_PER_UNSUBSCRIBE == 100


@pytest.mark.parametrize(
    "remove,kind", [(False, "profile-suppression-bulk-create-job"), (True, "profile-suppression-bulk-delete-job")]
)
def test_suppression_bodies(remove, kind):
    body = render_suppression_item({"email": "a@example.com"}).item
    batch = new_suppression_batch(remove)
    batch.add(entry(0), body)
    parsed = orjson.loads(batch.body())
    assert parsed == {"data": {"type": kind, "attributes": {"profiles": {"data": [orjson.loads(body)]}}}}
    assert "relationships" not in parsed["data"]  # never "every member of a list or segment"
    assert fill(new_suppression_batch(remove), body, 150) == MAX_EMAILS_PER_SUPPRESSION_JOB == 100


# -- the sink with a fake client -------------------------------------------------------------------
def parse_any(filter):
    """`any(field,["a","b"])` -> (field, values): the filter the client builds (at most 100 values)."""
    match = re.fullmatch(r"any\((\w+),\[(.*)\]\)", filter)
    assert match, filter
    values = json.loads(f"[{match.group(2)}]")
    assert 0 < len(values) <= 100
    return match.group(1), values


class FakeKlaviyo:
    """Members of one list by profile id; records every call in order."""

    def __init__(self, members=(), opt_in="single_opt_in", consent=()):
        self.members = {pid: dict(attrs) for pid, attrs in members}
        self.consent = dict(consent)  # email -> Klaviyo's `subscriptions` object
        self.calls = []
        self.opt_in = opt_in
        self.fail_unsubscribe = []  # exceptions to raise, in order, after (or before) applying

    def get_list(self, list_id):
        self.calls.append(("get_list", list_id))
        return {"id": list_id, "attributes": {"name": "L", "opt_in_process": self.opt_in}}

    def get_profiles_for_list(self, list_id, filter):
        field, values = parse_any(filter)
        self.calls.append(("lookup", field, len(values)))
        return [
            {"id": pid, "attributes": attrs} for pid, attrs in self.members.items() if attrs.get(field) in set(values)
        ]

    def get_profiles(self, filter, with_consent=False):
        assert with_consent
        field, values = parse_any(filter)
        self.calls.append(("profiles", field, len(values)))
        return [
            {"id": f"C-{email}", "attributes": {"email": email, "subscriptions": subs}}
            for email, subs in self.consent.items()
            if field == "email" and email in set(values)
        ]

    def bulk_subscribe_profiles(self, body):
        self.calls.append(
            (
                "subscribe",
                [p["attributes"].get("email") for p in orjson.loads(body)["data"]["attributes"]["profiles"]["data"]],
            )
        )
        for p in orjson.loads(body)["data"]["attributes"]["profiles"]["data"]:
            self.members[p["attributes"]["email"]] = {"email": p["attributes"]["email"]}

    def bulk_unsubscribe_profiles(self, body):
        emails = [p["attributes"].get("email") for p in orjson.loads(body)["data"]["attributes"]["profiles"]["data"]]
        self.calls.append(("unsubscribe", emails))
        apply, error = self.fail_unsubscribe.pop(0) if self.fail_unsubscribe else (True, None)
        if apply:
            self.members = {pid: a for pid, a in self.members.items() if a.get("email") not in emails}
        if error is not None:
            raise error


def sink(client, plans=None, dry_run=False, list_id="L1"):
    report = SyncReport(dry_run=dry_run)
    context = SinkContext(client, report, None, dry_run, plans=plans or {KEY: EMAIL})
    return SubscriptionSink(context, "Newsletter", list_id), report


def test_only_confirmed_members_are_unsubscribed_and_lookups_are_batched(monkeypatch):
    members = [(f"P{i}", {"email": f"m{i}@example.com"}) for i in range(150)]
    client = FakeKlaviyo(members)
    s, report = sink(client)
    for i in range(150):
        s.add(entry(i), {"email": f"m{i}@example.com"}, remove=True)
    s.add(entry(150), {"email": "stranger@example.com"}, remove=True)
    s.flush()
    lookups = [c for c in client.calls if c[0] == "lookup"]
    assert lookups == [("lookup", "email", 100), ("lookup", "email", 51)]  # one per request of 100 rows
    sent = [email for c in client.calls if c[0] == "unsubscribe" for email in c[1]]
    assert sorted(sent) == sorted(f"m{i}@example.com" for i in range(150))
    assert report.streams["consent"].rejected == {"not_a_list_member": 1}
    assert report.targets["Newsletter"] == {"unsubscribe": 150}


def test_with_allow_global_unsubscribe_non_members_are_sent_and_counted_as_global():
    client = FakeKlaviyo([("P1", {"email": "m@example.com"})])
    plans = {KEY: SubscriptionPlan(frozenset({C.EMAIL_MARKETING}), allow_global_unsubscribe=True)}
    s, report = sink(client, plans)
    s.add(entry(0), {"email": "m@example.com"}, remove=True)
    s.add(entry(1), {"email": "stranger@example.com"}, remove=True)
    s.flush()
    assert [c for c in client.calls if c[0] == "unsubscribe"] == [
        ("unsubscribe", ["m@example.com", "stranger@example.com"])
    ]
    assert report.targets["Newsletter"] == {"unsubscribe": 1, GLOBAL_UNSUBSCRIBE: 1}
    assert not report.streams["consent"].rejected


def test_email_and_phone_must_belong_to_one_member():
    client = FakeKlaviyo([("P1", {"email": "a@example.com"}), ("P2", {"phone_number": "+15005550006"})])
    s, report = sink(client, {KEY: SubscriptionPlan(frozenset({C.EMAIL_MARKETING, C.SMS_MARKETING}))})
    s.add(entry(0), {"email": "a@example.com", "phone_number": "+15005550006"}, remove=True)
    s.flush()
    assert report.streams["consent"].rejected == {"not_a_list_member": 1}
    assert not [c for c in client.calls if c[0] == "unsubscribe"]


def test_a_lost_answer_is_followed_by_a_fresh_look_and_never_a_blind_resend(monkeypatch):
    monkeypatch.setattr("destination_klaviyo.surfaces.unsubscribe_guard.time.sleep", lambda s: None)
    client = FakeKlaviyo([("P1", {"email": "a@example.com"}), ("P2", {"email": "b@example.com"})])
    lost = KlaviyoApiError("POST", "/api/profile-subscription-bulk-delete-jobs", 500, [])
    client.fail_unsubscribe = [(True, lost), (False, KlaviyoUnreachable("timeout")), (True, None)]
    s, report = sink(client)
    s.add(entry(0), {"email": "a@example.com"}, remove=True)
    s.add(entry(1), {"email": "b@example.com"}, remove=True)
    s.flush()
    # The first attempt took effect: both left the list. No second unsubscribe goes out for them.
    assert [c for c in client.calls if c[0] == "unsubscribe"] == [("unsubscribe", ["a@example.com", "b@example.com"])]
    assert report.targets["Newsletter"] == {"unsubscribe": 2}


def test_a_lost_answer_with_people_still_on_the_list_stops_rather_than_resend(monkeypatch):
    monkeypatch.setattr("destination_klaviyo.surfaces.unsubscribe_guard.time.sleep", lambda s: None)
    client = FakeKlaviyo([("P1", {"email": "a@example.com"})])
    lost = KlaviyoApiError("POST", "/api/profile-subscription-bulk-delete-jobs", 503, [])
    client.fail_unsubscribe = [(False, lost)]  # not applied (yet): Klaviyo may still run it
    s, report = sink(client)
    s.add(entry(0), {"email": "a@example.com"}, remove=True)
    with pytest.raises(KlaviyoApiError):
        s.flush()
    assert [c for c in client.calls if c[0] == "unsubscribe"] == [("unsubscribe", ["a@example.com"])]
    assert report.targets["Newsletter"] == {}


def test_people_already_unsubscribed_in_klaviyo_are_done_not_rejected():
    unsubscribed = {"email": {"marketing": {"consent": "UNSUBSCRIBED", "list_suppressions": []}}}
    from_this_list = {"email": {"marketing": {"consent": "SUBSCRIBED", "list_suppressions": [{"list_id": "L1"}]}}}
    from_another = {"email": {"marketing": {"consent": "SUBSCRIBED", "list_suppressions": [{"list_id": "L9"}]}}}
    consent = {"gone@example.com": unsubscribed, "left@example.com": from_this_list, "other@example.com": from_another}
    client = FakeKlaviyo(consent=consent)
    s, report = sink(client)
    for i, email in enumerate(("gone@example.com", "left@example.com", "other@example.com", "new@example.com")):
        s.add(entry(i), {"email": email}, remove=True)
    s.flush()
    assert not [c for c in client.calls if c[0] == "unsubscribe"]
    assert report.targets["Newsletter"] == {"already unsubscribed (nothing sent)": 2}
    assert report.streams["consent"].rejected == {"not_a_list_member": 2}


def test_a_refused_request_is_sent_again_after_a_look(monkeypatch):
    monkeypatch.setattr("destination_klaviyo.surfaces.unsubscribe_guard.time.sleep", lambda s: None)
    client = FakeKlaviyo([("P1", {"email": "a@example.com"})])
    throttled = KlaviyoApiError("POST", "/x", 429, [ApiErrorItem(None, "429", "throttled", None, None, None)], "0")
    client.fail_unsubscribe = [(False, throttled)]
    s, report = sink(client)
    s.add(entry(0), {"email": "a@example.com"}, remove=True)
    s.flush()
    assert [c[0] for c in client.calls if c[0] in ("lookup", "unsubscribe")] == [
        "lookup",
        "unsubscribe",
        "lookup",
        "unsubscribe",
    ]
    assert report.targets["Newsletter"] == {"unsubscribe": 1}


def test_a_subscribe_then_an_unsubscribe_of_the_same_person_go_out_in_that_order():
    client = FakeKlaviyo()
    s, report = sink(client)
    s.add(entry(0), {"email": "a@example.com"})
    s.add(entry(1), {"email": "b@example.com"})
    s.add(entry(2), {"email": "a@example.com"}, remove=True)
    s.flush()
    kinds = [c[0] for c in client.calls if c[0] != "get_list"]
    assert kinds == ["subscribe", "lookup", "unsubscribe"]
    assert report.targets["Newsletter"] == {"subscribe": 2, "unsubscribe": 1}


def test_the_same_person_twice_is_unsubscribed_once_and_counted_twice():
    client = FakeKlaviyo([("P1", {"email": "a@example.com"})])
    s, report = sink(client)
    s.add(entry(0), {"email": "a@example.com"}, remove=True)
    s.add(entry(1), {"email": "a@example.com"}, remove=True)
    s.flush()
    assert [c for c in client.calls if c[0] == "unsubscribe"] == [("unsubscribe", ["a@example.com"])]
    assert report.targets["Newsletter"] == {"unsubscribe": 2} and not report.streams["consent"].rejected


def test_dry_run_looks_up_but_sends_nothing():
    client = FakeKlaviyo([("P1", {"email": "a@example.com"})])
    s, report = sink(client, dry_run=True)
    s.add(entry(0), {"email": "new@example.com"})
    s.add(entry(1), {"email": "a@example.com"}, remove=True)
    s.add(entry(2), {"email": "stranger@example.com"}, remove=True)
    s.flush()
    assert {c[0] for c in client.calls} == {"get_list", "lookup", "profiles"}
    assert report.targets["Newsletter"] == {"subscribe": 1, "unsubscribe": 1}
    assert report.streams["consent"].rejected == {"not_a_list_member": 1}


def test_a_double_opt_in_list_is_noted():
    s, report = sink(FakeKlaviyo(opt_in="double_opt_in"))
    assert any("double opt-in" in line and "list L1" in line for _, line in report.summary_lines(1.0, 0))


def test_suppress_and_unsuppress_of_one_address_keep_their_order():
    calls = []

    class Client:
        def bulk_suppress_profiles(self, body):
            calls.append(("suppress", len(orjson.loads(body)["data"]["attributes"]["profiles"]["data"])))
            return "J1"

        def bulk_unsuppress_profiles(self, body):
            calls.append(("unsuppress", len(orjson.loads(body)["data"]["attributes"]["profiles"]["data"])))
            return "J2"

    report = SyncReport()
    s = SuppressionSink(SinkContext(Client(), report, None))
    s.add(entry(0), {"email": "a@example.com"})
    s.add(entry(1), {"email": "b@example.com"})
    s.add(entry(2), {"email": "a@example.com"}, remove=True)
    s.add(entry(3), {"email": "c@example.com"}, remove=True)
    s.flush()
    assert calls == [("suppress", 2), ("unsuppress", 2)]
    assert report.tallies["Suppressions"] == {"suppress": 2, "unsuppress": 2}


# -- registry and config ---------------------------------------------------------------------------
def test_consent_surfaces_are_never_suggested_for_removing_list_members():
    assert "subscriptions" not in removing_surfaces() and "suppressions" not in removing_surfaces()
    assert SURFACES[Surface.SUBSCRIPTIONS].removes and SURFACES[Surface.SUPPRESSIONS].removes
    assert not SURFACES[Surface.SUBSCRIPTIONS].mirrors and SURFACES[Surface.SUBSCRIPTIONS].needs_target


@pytest.mark.parametrize(
    "mapping,field",
    [
        ({"stream": "s", "surface": "profiles", "channels": ["email_marketing"]}, "channels"),
        ({"stream": "s", "surface": "suppressions", "allow_global_unsubscribe": True}, "allow_global_unsubscribe"),
        ({"stream": "s", "surface": "subscriptions", "channels": ["push"]}, "channels"),
        ({"stream": "s", "surface": "subscriptions", "channels": []}, "channels"),
    ],
)
def test_subscription_options_are_checked(mapping, field):
    with pytest.raises(AirbyteTracedException) as info:
        parse_config({"private_api_key": "pk", "streams": [mapping]})
    assert info.value.failure_type.value == "config_error" and field in info.value.message


def test_a_replace_of_a_consent_stream_says_nobody_absent_is_unsubscribed(caplog):
    from airbyte_cdk.models import AirbyteStream, ConfiguredAirbyteStream, DestinationSyncMode, SyncMode

    from destination_klaviyo.routing import route_stream

    configured = ConfiguredAirbyteStream(
        stream=AirbyteStream(name="consent", json_schema={}, supported_sync_modes=[SyncMode.full_refresh]),
        sync_mode=SyncMode.full_refresh,
        destination_sync_mode=DestinationSyncMode.append,
        generation_id=3,
        minimum_generation_id=3,
    )
    cfg = parse_config(
        {
            "private_api_key": "pk",
            "streams": [{"stream": "consent", "surface": "subscriptions", "channels": ["sms_marketing"]}],
        }
    )
    route = route_stream(cfg, configured)
    assert route.replace and not route.mirrors
    assert route.plan == SubscriptionPlan(frozenset({C.SMS_MARKETING}))
    assert "nobody absent from this sync is unsubscribed" in caplog.text
