"""Emulator tests: consent endpoints (bulk subscribe / unsubscribe / suppress / unsuppress)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Optional

import pytest
import requests

from integration_tests.klaviyo_emulator import EmulatorServer, limit_for

KEY = "pk_test_consent_key"
SUB = "/api/profile-subscription-bulk-create-jobs"
UNSUB = "/api/profile-subscription-bulk-delete-jobs"
SUPP = "/api/profile-suppression-bulk-create-jobs"
UNSUPP = "/api/profile-suppression-bulk-delete-jobs"
P0 = "/data/attributes/profiles/data/0"


@pytest.fixture()
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_keys=[KEY]) as server:
        yield server


@pytest.fixture()
def http(emu: EmulatorServer) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers.update(emu.headers(KEY))
        yield s


def error_of(r: requests.Response) -> dict[str, Any]:
    assert r.headers["Content-Type"] == "application/vnd.api+json"
    body = r.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    err = body["errors"][0]
    assert err["status"] == r.status_code
    return err


def create_list(http: requests.Session, emu: EmulatorServer, name: str, opt_in: Optional[str] = None) -> str:
    attrs: dict[str, Any] = {"name": name}
    if opt_in:
        attrs["opt_in_process"] = opt_in
    r = http.post(emu.url + "/api/lists", json={"data": {"type": "list", "attributes": attrs}})
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"]


def sub_profile(
    email: Optional[str] = None,
    phone: Optional[str] = None,
    channels: Optional[dict[str, Any]] = None,
    profile_id: Optional[str] = None,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if email:
        attrs["email"] = email
    if phone:
        attrs["phone_number"] = phone
    if channels is None:
        channels = {"email": {"marketing": {"consent": "SUBSCRIBED"}}}
    attrs["subscriptions"] = channels
    out: dict[str, Any] = {"type": "profile", "attributes": attrs}
    if profile_id:
        out["id"] = profile_id
    return out


def sub_body(
    profiles: list[dict[str, Any]],
    list_id: Optional[str] = None,
    historical: Optional[bool] = None,
    custom_source: Optional[str] = None,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {"profiles": {"data": profiles}}
    if historical is not None:
        attrs["historical_import"] = historical
    if custom_source is not None:
        attrs["custom_source"] = custom_source
    data: dict[str, Any] = {"type": "profile-subscription-bulk-create-job", "attributes": attrs}
    if list_id:
        data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return {"data": data}


def unsub_profile(
    email: Optional[str] = None, phone: Optional[str] = None, channels: Optional[dict[str, Any]] = None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if email:
        attrs["email"] = email
    if phone:
        attrs["phone_number"] = phone
    attrs["subscriptions"] = channels or {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}
    return {"type": "profile", "attributes": attrs}


def unsub_body(profiles: list[dict[str, Any]], list_id: Optional[str] = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-subscription-bulk-delete-job",
        "attributes": {"profiles": {"data": profiles}},
    }
    if list_id:
        data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return {"data": data}


def supp_body(
    emails: Optional[list[str]] = None, list_id: Optional[str] = None, delete: bool = False
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-suppression-bulk-delete-job" if delete else "profile-suppression-bulk-create-job",
        "attributes": {},
    }
    if emails is not None:
        data["attributes"]["profiles"] = {"data": [{"type": "profile", "attributes": {"email": e}} for e in emails]}
    if list_id:
        data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return {"data": data}


def subscriptions(http: requests.Session, emu: EmulatorServer, email: str) -> dict[str, Any]:
    r = http.get(
        emu.url + "/api/profiles",
        params={"filter": f'equals(email,"{email}")', "additional-fields[profile]": "subscriptions"},
    )
    return r.json()["data"][0]["attributes"]["subscriptions"]


def pid_of(emu: EmulatorServer, email: str) -> str:
    prof = emu.store.profile_by_email(email)
    assert prof is not None
    return prof["id"]


# ------------------------------------------------------------------ subscribe
def test_subscribe_single_opt_in_list_subscribes_and_adds_to_list(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "Newsletter", "single_opt_in")
    r = http.post(emu.url + SUB, json=sub_body([sub_profile("a@x.com")], lid, custom_source="Checkout"))
    assert r.status_code == 202 and r.content == b""
    pid = pid_of(emu, "a@x.com")
    assert emu.store.channel_consent(pid) == "SUBSCRIBED"
    assert emu.store.list_members(lid) == [pid]
    em = subscriptions(http, emu, "a@x.com")["email"]["marketing"]
    assert em["consent"] == "SUBSCRIBED" and em["can_receive_email_marketing"] is True
    assert em["method"] == "API" and em["custom_method_detail"] == "Checkout" and em["double_optin"] is False
    assert em["consent_timestamp"] and em["last_updated"]
    assert emu.store.global_unsubscribes == [] and emu.store.opt_in_confirmations == []
    state = requests.get(emu.url + "/__emulator__/state").json()
    assert state["consent"][pid]["email.marketing"]["consent"] == "SUBSCRIBED"
    assert state["consent_jobs"][0]["type"] == "profile-subscription-bulk-create-job"
    assert state["consent_jobs"][0]["list_id"] == lid
    assert emu.store.request_bodies(SUB)[0]["data"]["relationships"]["list"]["data"]["id"] == lid


def test_subscribe_sms_and_other_channels(emu: EmulatorServer, http: requests.Session) -> None:
    channels = {
        "email": {"marketing": {"consent": "SUBSCRIBED"}, "open_tracking": {"consent": "SUBSCRIBED"}},
        "sms": {"marketing": {"consent": "SUBSCRIBED"}, "transactional": {"consent": "SUBSCRIBED"}},
        "whatsapp": {"marketing": {"consent": "SUBSCRIBED"}},
        "push": {
            "marketing": {"consent": "SUBSCRIBED"},
            "tokens": [{"token": "tok-1", "platform": "ios", "vendor": "apns", "enablement_status": "AUTHORIZED"}],
        },
    }
    r = http.post(emu.url + SUB, json=sub_body([sub_profile("a@x.com", "+15005550006", channels)]))
    assert r.status_code == 202, r.text
    pid = pid_of(emu, "a@x.com")
    assert emu.store.profiles[pid]["attributes"]["phone_number"] == "+15005550006"
    for ch in (
        "sms.marketing",
        "sms.transactional",
        "whatsapp.marketing",
        "mobile_push.marketing",
        "email.open_tracking",
    ):
        assert emu.store.channel_consent(pid, ch) == "SUBSCRIBED"
    assert emu.store.channel_consent(pid, "whatsapp.transactional") == "NEVER_SUBSCRIBED"
    subs = subscriptions(http, emu, "a@x.com")
    assert subs["sms"]["marketing"]["can_receive_sms_marketing"] is True
    assert subs["sms"]["transactional"]["can_receive_sms_transactional"] is True
    assert subs["mobile_push"]["marketing"]["can_receive_push_marketing"] is True
    assert subs["whatsapp"]["marketing"]["phone_number"] == "+15005550006"
    assert [t["token"] for t in emu.store.consent_of(pid)["push_tokens"]] == ["tok-1"]


def test_double_opt_in_list_leaves_the_profile_pending(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "DOI", "double_opt_in")
    channels = {"email": {"marketing": {"consent": "SUBSCRIBED"}}}
    assert http.post(emu.url + SUB, json=sub_body([sub_profile("p@x.com", channels=channels)], lid)).status_code == 202
    pid = pid_of(emu, "p@x.com")
    assert emu.store.channel_consent(pid) == "NEVER_SUBSCRIBED"
    assert emu.store.list_members(lid) == []
    pending = emu.store.consent_of(pid)["pending_opt_ins"]
    assert len(pending) == 1 and pending[0]["list_id"] == lid and pending[0]["email"] == "p@x.com"
    # a second request re-sends the confirmation, it does not add another pending record
    http.post(emu.url + SUB, json=sub_body([sub_profile("p@x.com")], lid))
    assert [c["sent_count"] for c in emu.store.opt_in_confirmations] == [2]
    # the recipient confirms
    assert emu.store.confirm_opt_in(pid) == 1
    assert emu.store.channel_consent(pid) == "SUBSCRIBED" and emu.store.list_members(lid) == [pid]
    assert subscriptions(http, emu, "p@x.com")["email"]["marketing"]["double_optin"] is True
    assert emu.store.opt_in_confirmations[0]["status"] == "confirmed"


def test_double_opt_in_does_not_hold_back_sms_or_historical_imports(
    emu: EmulatorServer, http: requests.Session
) -> None:
    lid = create_list(http, emu, "DOI", "double_opt_in")
    channels = {"email": {"marketing": {"consent": "SUBSCRIBED"}}, "sms": {"marketing": {"consent": "SUBSCRIBED"}}}
    http.post(emu.url + SUB, json=sub_body([sub_profile("s@x.com", "+15005550001", channels)], lid))
    pid = pid_of(emu, "s@x.com")
    assert emu.store.channel_consent(pid, "sms.marketing") == "SUBSCRIBED"
    assert emu.store.channel_consent(pid) == "NEVER_SUBSCRIBED"  # email waits for the confirmation
    assert emu.store.list_members(lid) == [pid]  # joined through the SMS subscription
    past = "2020-02-03T04:05:06+00:00"
    hist = {"email": {"marketing": {"consent": "SUBSCRIBED", "consented_at": past}}}
    r = http.post(emu.url + SUB, json=sub_body([sub_profile("h@x.com", channels=hist)], lid, historical=True))
    assert r.status_code == 202, r.text
    hid = pid_of(emu, "h@x.com")
    assert emu.store.channel_consent(hid) == "SUBSCRIBED" and hid in emu.store.list_members(lid)
    assert subscriptions(http, emu, "h@x.com")["email"]["marketing"]["consent_timestamp"] == past
    assert [c["profile_id"] for c in emu.store.opt_in_confirmations] == [pid]


def test_subscribe_without_list_uses_the_account_default(emu: EmulatorServer, http: requests.Session) -> None:
    http.post(emu.url + SUB, json=sub_body([sub_profile("one@x.com")]))
    assert emu.store.channel_consent(pid_of(emu, "one@x.com")) == "SUBSCRIBED"
    emu.store.account_opt_in_process = "double_opt_in"
    http.post(emu.url + SUB, json=sub_body([sub_profile("two@x.com")]))
    assert emu.store.channel_consent(pid_of(emu, "two@x.com")) == "NEVER_SUBSCRIBED"
    assert emu.store.opt_in_confirmations[0]["list_id"] is None
    # lists created without opt_in_process take the account default too
    assert emu.store.lists[create_list(http, emu, "Default")]["opt_in_process"] == "double_opt_in"


@pytest.mark.parametrize(
    "historical, consented_at, pointer_suffix",
    [
        (True, None, "consented_at"),  # "the consented_at field is required"
        (True, "2999-01-01T00:00:00Z", "consented_at"),  # "and must be in the past"
        (True, "yesterday", "consented_at"),
        (False, "2020-01-01T00:00:00Z", "consented_at"),  # "if the historical_import flag is not included, ... error"
        (None, "2020-01-01T00:00:00Z", "consented_at"),
    ],
)
def test_historical_import_and_consented_at_rules(
    emu: EmulatorServer,
    http: requests.Session,
    historical: Optional[bool],
    consented_at: Optional[str],
    pointer_suffix: str,
) -> None:
    params: dict[str, Any] = {"consent": "SUBSCRIBED"}
    if consented_at is not None:
        params["consented_at"] = consented_at
    channels = {
        "sms": {"marketing": {"consent": "SUBSCRIBED", "consented_at": "2020-01-01T00:00:00Z"}},
        "email": {"marketing": params},
    }
    if not historical:
        channels["sms"]["marketing"].pop("consented_at")
    r = http.post(
        emu.url + SUB, json=sub_body([sub_profile("a@x.com", "+15005550006", channels)], historical=historical)
    )
    assert r.status_code == 400, r.text
    assert error_of(r)["source"]["pointer"] == f"{P0}/attributes/subscriptions/email/marketing/{pointer_suffix}"
    assert emu.store.profiles == {}


def test_subscribe_lifts_the_suppressions_the_spec_names(emu: EmulatorServer, http: requests.Session) -> None:
    pid, _ = emu.store.upsert_profile({"email": "s@x.com"})
    now = datetime.now(timezone.utc)
    emu.store.suppressions[pid] = [
        {"reason": r, "timestamp": now} for r in ("UNSUBSCRIBE", "SPAM_COMPLAINT", "USER_SUPPRESSED", "HARD_BOUNCE")
    ]
    assert subscriptions(http, emu, "s@x.com")["email"]["marketing"]["can_receive_email_marketing"] is False
    http.post(emu.url + SUB, json=sub_body([sub_profile("s@x.com")]))
    assert [s["reason"] for s in emu.store.consent_of(pid)["suppressions"]] == ["HARD_BOUNCE"]
    emu.store.suppressions[pid] = [{"reason": "INVALID_EMAIL", "timestamp": now}]
    http.post(emu.url + SUB, json=sub_body([sub_profile("s@x.com")]))
    assert [s["reason"] for s in emu.store.consent_of(pid)["suppressions"]] == ["INVALID_EMAIL"]


def test_subscribe_by_profile_id(emu: EmulatorServer, http: requests.Session) -> None:
    pid, _ = emu.store.upsert_profile({"email": "byid@x.com"})
    r = http.post(emu.url + SUB, json=sub_body([sub_profile(profile_id=pid)]))
    assert r.status_code == 202 and emu.store.channel_consent(pid) == "SUBSCRIBED"
    r = http.post(emu.url + SUB, json=sub_body([sub_profile(profile_id="01UNKNOWN")]))
    assert r.status_code == 404 and error_of(r)["source"]["pointer"] == f"{P0}/id"
    sms = {"sms": {"marketing": {"consent": "SUBSCRIBED"}}}
    r = http.post(emu.url + SUB, json=sub_body([sub_profile(profile_id=pid, channels=sms)]))
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == f"{P0}/attributes/phone_number"


def test_subscribe_up_to_1000_profiles(emu: EmulatorServer, http: requests.Session) -> None:
    profiles = [sub_profile(f"u{i}@x.com") for i in range(1000)]
    assert http.post(emu.url + SUB, json=sub_body(profiles)).status_code == 202
    assert len(emu.store.profiles) == 1000
    r = http.post(emu.url + SUB, json=sub_body(profiles + [sub_profile("one-more@x.com")]))
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == "/data/attributes/profiles/data"


def test_subscribe_unknown_list_404(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.post(emu.url + SUB, json=sub_body([sub_profile("a@x.com")], "NOPE"))
    assert r.status_code == 404 and error_of(r)["source"]["pointer"] == "/data/relationships/list/data/id"
    assert emu.store.profiles == {}


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    keys = path.split("/")
    target: Any = doc
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


_DELETE = object()
_SUB = sub_body([sub_profile("a@x.com", "+15005550006", {"email": {"marketing": {"consent": "SUBSCRIBED"}}})], "LIST01")
_PA = "data/attributes/profiles/data/0/attributes"


@pytest.mark.parametrize(
    "path, value, pointer",
    [
        ("data/type", "profile-subscription-bulk-delete-job", "/data/type"),
        ("data/attributes/profiles", _DELETE, "/data/attributes/profiles"),
        ("data/attributes/profiles/data", [], "/data/attributes/profiles/data"),
        ("data/attributes/historical_import", "yes", "/data/attributes/historical_import"),
        ("data/attributes/custom_source", 1, "/data/attributes/custom_source"),
        ("data/attributes/list_id", "x", "/data/attributes/list_id"),
        ("data/attributes/profiles/data/0/type", "profiles", f"{P0}/type"),
        ("data/attributes/profiles/data/0/id", "", f"{P0}/id"),
        (f"{_PA}/phone_number", "5005550006", f"{P0}/attributes/phone_number"),  # not E.164
        (f"{_PA}/phone_number", "+1 500 555 0006", f"{P0}/attributes/phone_number"),
        (f"{_PA}/email", 5, f"{P0}/attributes/email"),
        (f"{_PA}/first_name", "A", f"{P0}/attributes/first_name"),
        (f"{_PA}/age_gated_date_of_birth", "01/02/2000", f"{P0}/attributes/age_gated_date_of_birth"),
        (f"{_PA}/subscriptions", _DELETE, f"{P0}/attributes/subscriptions"),
        (f"{_PA}/subscriptions", {}, f"{P0}/attributes/subscriptions"),
        (f"{_PA}/subscriptions/fax", {"marketing": {"consent": "SUBSCRIBED"}}, f"{P0}/attributes/subscriptions/fax"),
        (f"{_PA}/subscriptions/email", {}, f"{P0}/attributes/subscriptions/email"),
        (
            f"{_PA}/subscriptions/email/marketing/consent",
            "UNSUBSCRIBED",
            f"{P0}/attributes/subscriptions/email/marketing/consent",
        ),
        (
            f"{_PA}/subscriptions/email/marketing/consent",
            _DELETE,
            f"{P0}/attributes/subscriptions/email/marketing/consent",
        ),
        (
            f"{_PA}/subscriptions/email/transactional",
            {"consent": "SUBSCRIBED"},
            f"{P0}/attributes/subscriptions/email/transactional",
        ),
        (
            f"{_PA}/subscriptions/email/open_tracking",
            {"consent": "SUBSCRIBED", "consented_at": "2020-01-01T00:00:00Z"},
            f"{P0}/attributes/subscriptions/email/open_tracking/consented_at",
        ),
        (
            f"{_PA}/subscriptions/whatsapp",
            {"conversational": {"consent": "SUBSCRIBED"}},
            f"{P0}/attributes/subscriptions/whatsapp/conversational",
        ),
        (f"{_PA}/subscriptions/push", {"tokens": []}, f"{P0}/attributes/subscriptions/push/marketing"),
        (
            f"{_PA}/subscriptions/push",
            {"marketing": {"consent": "SUBSCRIBED"}, "tokens": [{"token": "t", "platform": "web", "vendor": "fcm"}]},
            f"{P0}/attributes/subscriptions/push/tokens/0/platform",
        ),
        (
            f"{_PA}/subscriptions/push",
            {"marketing": {"consent": "SUBSCRIBED"}, "tokens": [{"platform": "ios", "vendor": "apns"}]},
            f"{P0}/attributes/subscriptions/push/tokens/0/token",
        ),
        (f"{_PA}/email", _DELETE, f"{P0}/attributes/email"),  # email channel without an email
        ("data/relationships/list/data/type", "segment", "/data/relationships/list/data/type"),
        ("data/relationships/list/data/id", "", "/data/relationships/list/data/id"),
        ("data/relationships/lists", {}, "/data/relationships/lists"),
    ],
)
def test_subscribe_shape_validation(
    emu: EmulatorServer, http: requests.Session, path: str, value: Any, pointer: str
) -> None:
    r = http.post(emu.url + SUB, json=_set(_SUB, path, value))
    assert r.status_code == 400, r.text
    assert error_of(r)["source"]["pointer"] == pointer
    assert emu.store.profiles == {}


def test_subscribe_sms_needs_a_phone_number(emu: EmulatorServer, http: requests.Session) -> None:
    sms = {"sms": {"transactional": {"consent": "SUBSCRIBED"}}}
    r = http.post(emu.url + SUB, json=sub_body([sub_profile("a@x.com", channels=sms)]))
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == f"{P0}/attributes/phone_number"


# ---------------------------------------------------------------- unsubscribe
def test_unsubscribe_with_list_member_only_leaves_that_list(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "L")
    http.post(emu.url + SUB, json=sub_body([sub_profile("m@x.com")], lid))
    pid = pid_of(emu, "m@x.com")
    r = http.post(emu.url + UNSUB, json=unsub_body([unsub_profile("m@x.com")], lid))
    assert r.status_code == 202 and r.content == b""
    assert emu.store.list_members(lid) == []
    assert emu.store.channel_consent(pid) == "SUBSCRIBED"  # global consent untouched
    assert emu.store.global_unsubscribes == []
    info = emu.store.consent_of(pid)
    assert info["list_unsubscribes"][0]["list_id"] == lid and info["suppressions"] == []
    em = subscriptions(http, emu, "m@x.com")["email"]["marketing"]
    assert em["list_suppressions"][0]["list_id"] == lid and em["can_receive_email_marketing"] is True
    r = http.get(
        emu.url + "/api/profiles",
        params={"filter": f'equals(subscriptions.email.marketing.list_suppressions.list_id,"{lid}")'},
    )
    assert [p["id"] for p in r.json()["data"]] == [pid]
    # subscribing to the list again lifts the list-level suppression
    http.post(emu.url + SUB, json=sub_body([sub_profile("m@x.com")], lid))
    assert emu.store.consent_of(pid)["list_suppressions"] == [] and emu.store.list_members(lid) == [pid]


def test_unsubscribe_with_list_globally_unsubscribes_non_members(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "L")
    other = create_list(http, emu, "Other")
    http.post(emu.url + SUB, json=sub_body([sub_profile("out@x.com")], other))
    pid = pid_of(emu, "out@x.com")
    r = http.post(emu.url + UNSUB, json=unsub_body([unsub_profile("out@x.com"), unsub_profile("new@x.com")], lid))
    assert r.status_code == 202
    assert emu.store.channel_consent(pid) == "UNSUBSCRIBED"
    assert emu.store.list_members(other) == [pid]  # other lists are not edited
    new = pid_of(emu, "new@x.com")  # "a new profile will be created and then unsubscribed"
    assert emu.store.channel_consent(new) == "UNSUBSCRIBED"
    globals_ = emu.store.global_unsubscribes
    assert [(g["profile_id"], g["reason"], g["list_id"]) for g in globals_] == [
        (pid, "not_in_list", lid),
        (new, "not_in_list", lid),
    ]
    em = subscriptions(http, emu, "out@x.com")["email"]["marketing"]
    assert em["consent"] == "UNSUBSCRIBED" and em["can_receive_email_marketing"] is False
    assert [s["reason"] for s in em["suppression"]] == ["UNSUBSCRIBE"]
    state = requests.get(emu.url + "/__emulator__/state").json()
    assert [g["profile_id"] for g in state["global_unsubscribes"]] == [pid, new]


def test_unsubscribe_without_list_is_global(emu: EmulatorServer, http: requests.Session) -> None:
    channels = {"email": {"marketing": {"consent": "SUBSCRIBED"}}, "sms": {"marketing": {"consent": "SUBSCRIBED"}}}
    http.post(emu.url + SUB, json=sub_body([sub_profile("g@x.com", "+15005550009", channels)]))
    pid = pid_of(emu, "g@x.com")
    un = {"sms": {"marketing": {"consent": "UNSUBSCRIBED"}}}
    assert (
        http.post(emu.url + UNSUB, json=unsub_body([unsub_profile(phone="+15005550009", channels=un)])).status_code
        == 202
    )
    assert emu.store.channel_consent(pid, "sms.marketing") == "UNSUBSCRIBED"
    assert emu.store.channel_consent(pid) == "SUBSCRIBED"  # only the channels named change
    assert emu.store.consent_of(pid)["suppressions"] == []  # suppressions are email-only
    assert [(g["reason"], g["channels"]) for g in emu.store.global_unsubscribes] == [("no_list", ["sms.marketing"])]


def test_unsubscribe_limits_and_validation(emu: EmulatorServer, http: requests.Session) -> None:
    profiles = [unsub_profile(f"u{i}@x.com") for i in range(100)]
    assert http.post(emu.url + UNSUB, json=unsub_body(profiles)).status_code == 202
    r = http.post(emu.url + UNSUB, json=unsub_body(profiles + [unsub_profile("x@x.com")]))
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == "/data/attributes/profiles/data"
    cases = [
        (
            unsub_profile("a@x.com", channels={"email": {"marketing": {"consent": "SUBSCRIBED"}}}),
            f"{P0}/attributes/subscriptions/email/marketing/consent",
        ),
        (unsub_profile(channels={"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}), f"{P0}/attributes/email"),
        (
            unsub_profile("a@x.com", channels={"sms": {"marketing": {"consent": "UNSUBSCRIBED"}}}),
            f"{P0}/attributes/phone_number",
        ),
        (
            unsub_profile("a@x.com", "+44 20", {"sms": {"marketing": {"consent": "UNSUBSCRIBED"}}}),
            f"{P0}/attributes/phone_number",
        ),
        (
            unsub_profile("a@x.com", channels={"push": {"marketing": {"consent": "UNSUBSCRIBED"}}}),
            f"{P0}/attributes/subscriptions/push/tokens",
        ),
        ({**unsub_profile("a@x.com"), "id": "01X"}, f"{P0}/id"),  # the unsubscribe schema has no profile id
        (
            unsub_profile(
                "a@x.com",
                channels={"email": {"marketing": {"consent": "UNSUBSCRIBED", "consented_at": "2020-01-01T00:00:00Z"}}},
            ),
            f"{P0}/attributes/subscriptions/email/marketing/consented_at",
        ),
    ]
    for prof, pointer in cases:
        r = http.post(emu.url + UNSUB, json=unsub_body([prof]))
        assert r.status_code == 400, (prof, r.text)
        assert error_of(r)["source"]["pointer"] == pointer
    r = http.post(emu.url + UNSUB, json=unsub_body([unsub_profile("a@x.com")], "NOPE"))
    assert r.status_code == 404 and error_of(r)["source"]["pointer"] == "/data/relationships/list/data/id"


def test_unsubscribe_whatsapp_conversational_and_push_tokens(emu: EmulatorServer, http: requests.Session) -> None:
    tok = {"token": "tok-9", "platform": "android", "vendor": "fcm"}
    channels = {"push": {"marketing": {"consent": "SUBSCRIBED"}, "tokens": [tok], "anonymous_id": "anon-9"}}
    assert http.post(emu.url + SUB, json=sub_body([sub_profile(channels=channels)])).status_code == 202
    (pid,) = emu.store.profiles  # created from the push anonymous_id alone
    assert emu.store.profiles[pid]["attributes"] == {"anonymous_id": "anon-9"}
    assert emu.store.consent_of(pid)["push_tokens"][0]["token"] == "tok-9"
    push_only = {"push": {"marketing": {"consent": "UNSUBSCRIBED"}, "tokens": [tok]}}
    assert http.post(emu.url + UNSUB, json=unsub_body([unsub_profile(channels=push_only)])).status_code == 202
    assert emu.store.consent_of(pid)["push_tokens"] == []
    wa = {"whatsapp": {"conversational": {"consent": "UNSUBSCRIBED"}}}
    assert (
        http.post(emu.url + UNSUB, json=unsub_body([unsub_profile(phone="+15005550002", channels=wa)])).status_code
        == 202
    )
    wid = emu.store.find_profile(phone_number="+15005550002")["id"]
    assert emu.store.channel_consent(wid, "whatsapp.conversational") == "UNSUBSCRIBED"


# -------------------------------------------------------- suppress / unsuppress
def test_suppress_creates_and_suppresses_then_unsuppress_lifts_only_user_suppressed(
    emu: EmulatorServer, http: requests.Session
) -> None:
    pid, _ = emu.store.upsert_profile({"email": "known@x.com"})
    r = http.post(emu.url + SUPP, json=supp_body(["known@x.com", "new@x.com"]))
    assert r.status_code == 202
    job = r.json()["data"]
    assert job["type"] == "profile-suppression-bulk-create-job" and job["attributes"]["status"] == "queued"
    assert job["attributes"]["total_count"] == 2 and job["links"]["self"].startswith(emu.url + SUPP + "/")
    new = pid_of(emu, "new@x.com")  # "one will be created and immediately suppressed"
    for p in (pid, new):
        assert [s["reason"] for s in emu.store.consent_of(p)["suppressions"]] == ["USER_SUPPRESSED"]
    assert emu.store.channel_consent(pid) == "NEVER_SUBSCRIBED"  # consent itself is untouched
    got = http.get(f"{emu.url}{SUPP}/{job['id']}").json()["data"]["attributes"]
    assert got["status"] == "complete" and got["completed_count"] == 2 and got["skipped_count"] == 0
    flt = 'equals(subscriptions.email.marketing.suppression.reason,"USER_SUPPRESSED")'
    assert len(http.get(emu.url + "/api/profiles", params={"filter": flt}).json()["data"]) == 2

    now = datetime.now(timezone.utc)
    emu.store.suppressions[pid].append({"reason": "HARD_BOUNCE", "timestamp": now})
    emu.store.suppressions[new] = [{"reason": "UNSUBSCRIBE", "timestamp": now}] + emu.store.suppressions[new]
    r = http.post(emu.url + UNSUPP, json=supp_body(["known@x.com", "new@x.com", "ghost@x.com"], delete=True))
    assert r.status_code == 202 and r.json()["data"]["type"] == "profile-suppression-bulk-delete-job"
    assert [s["reason"] for s in emu.store.consent_of(pid)["suppressions"]] == ["HARD_BOUNCE"]
    assert [s["reason"] for s in emu.store.consent_of(new)["suppressions"]] == ["UNSUBSCRIBE"]
    assert emu.store.profile_by_email("ghost@x.com") is None  # "no action will be taken"
    got = http.get(f"{emu.url}{UNSUPP}/{r.json()['data']['id']}").json()["data"]["attributes"]
    assert got["skipped_count"] == 1 and got["completed_count"] == 2


def test_suppress_by_list_and_source_rules(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "S")
    http.post(emu.url + SUB, json=sub_body([sub_profile("a@x.com"), sub_profile("b@x.com")], lid))
    http.post(
        f"{emu.url}/api/lists/{lid}/relationships/profiles", json={"data": [{"type": "profile", "id": "01GHOST"}]}
    )
    r = http.post(emu.url + SUPP, json=supp_body(list_id=lid))
    assert r.status_code == 202
    assert r.json()["data"]["relationships"]["lists"]["data"] == [{"type": "list", "id": lid}]
    for email in ("a@x.com", "b@x.com"):
        assert emu.store.consent_by_email(email)["suppressions"][0]["reason"] == "USER_SUPPRESSED"
    assert emu.store.consent_jobs[r.json()["data"]["id"]].skipped_count == 1  # the id with no profile
    both = supp_body(["a@x.com"], lid)
    assert http.post(emu.url + SUPP, json=both).status_code == 400
    neither = supp_body()
    r = http.post(emu.url + SUPP, json=neither)
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == "/data"
    seg = {
        "data": {
            "type": "profile-suppression-bulk-create-job",
            "attributes": {},
            "relationships": {"segment": {"data": {"type": "segment", "id": "SEG1"}}},
        }
    }
    r = http.post(emu.url + SUPP, json=seg)
    assert r.status_code == 404 and error_of(r)["source"]["pointer"] == "/data/relationships/segment/data/id"
    r = http.post(emu.url + SUPP, json=supp_body(list_id="NOPE"))
    assert r.status_code == 404


@pytest.mark.parametrize("path, delete", [(SUPP, False), (UNSUPP, True)])
def test_suppression_email_limit_100_and_shape(
    emu: EmulatorServer, http: requests.Session, path: str, delete: bool
) -> None:
    emails = [f"e{i}@x.com" for i in range(100)]
    assert http.post(emu.url + path, json=supp_body(emails, delete=delete)).status_code == 202
    r = http.post(emu.url + path, json=supp_body(emails + ["one@x.com"], delete=delete))
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == "/data/attributes/profiles/data"
    bad = supp_body(["a@x.com"], delete=delete)
    bad["data"]["attributes"]["profiles"]["data"][0]["attributes"] = {"email": ""}
    r = http.post(emu.url + path, json=bad)
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == f"{P0}/attributes/email"
    bad["data"]["attributes"]["profiles"]["data"][0]["attributes"] = {
        "email": "a@x.com",
        "phone_number": "+15005550006",
    }
    r = http.post(emu.url + path, json=bad)
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == f"{P0}/attributes/phone_number"
    wrong = supp_body(["a@x.com"], delete=not delete)
    r = http.post(emu.url + path, json=wrong)
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == "/data/type"


def test_suppression_job_listing_filters_and_404(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "J")
    first = http.post(emu.url + SUPP, json=supp_body(["a@x.com"])).json()["data"]["id"]
    second = http.post(emu.url + SUPP, json=supp_body(list_id=lid)).json()["data"]["id"]
    http.post(emu.url + UNSUPP, json=supp_body(["a@x.com"], delete=True))
    data = http.get(emu.url + SUPP).json()["data"]
    assert [j["id"] for j in data] == [first, second]
    assert [j["id"] for j in http.get(emu.url + SUPP, params={"sort": "-created"}).json()["data"]] == [second, first]
    r = http.get(emu.url + SUPP, params={"filter": f'equals(list_id,"{lid}")'})
    assert [j["id"] for j in r.json()["data"]] == [second]
    assert len(http.get(emu.url + SUPP, params={"filter": 'equals(status,"complete")'}).json()["data"]) == 2
    assert http.get(emu.url + SUPP, params={"filter": 'equals(email,"a")'}).status_code == 400
    assert len(http.get(emu.url + UNSUPP).json()["data"]) == 1
    assert http.get(f"{emu.url}{SUPP}/NOPE").status_code == 404
    assert http.get(f"{emu.url}{UNSUPP}/{first}").status_code == 404  # a create job is not a delete job


# ------------------------------------------------------------- cross-cutting
@pytest.mark.parametrize(
    "method, path, operation",
    [
        ("POST", SUB, "bulk_subscribe_profiles"),
        ("POST", UNSUB, "bulk_unsubscribe_profiles"),
        ("POST", SUPP, "bulk_suppress_profiles"),
        ("POST", UNSUPP, "bulk_unsuppress_profiles"),
        ("GET", SUPP, "get_bulk_suppress_profiles_jobs"),
        ("GET", SUPP + "/01J", "get_bulk_suppress_profiles_job"),
        ("GET", UNSUPP, "get_bulk_unsuppress_profiles_jobs"),
        ("GET", UNSUPP + "/01J", "get_bulk_unsuppress_profiles_job"),
    ],
)
def test_consent_rate_limits_follow_the_spec(method: str, path: str, operation: str) -> None:
    limit = limit_for(method, path)
    assert limit is not None and (limit.operation, limit.burst, limit.steady) == (operation, 75, 750)


def test_consent_faults_auth_and_reset(emu: EmulatorServer, http: requests.Session) -> None:
    emu.store.add_fault(path="/api/profile-subscription*", status=500, count=2)
    assert http.post(emu.url + SUB, json=sub_body([sub_profile("a@x.com")])).status_code == 500
    assert http.post(emu.url + UNSUB, json=unsub_body([unsub_profile("a@x.com")])).status_code == 500
    assert emu.store.profiles == {} and emu.store.global_unsubscribes == []
    assert len(emu.store.request_bodies(SUB)) == 1 and len(emu.store.request_bodies(UNSUB)) == 1
    emu.store.add_fault(path=UNSUB, method="POST", status=504, apply=True)
    assert http.post(emu.url + UNSUB, json=unsub_body([unsub_profile("lost@x.com")])).status_code == 504
    assert len(emu.store.global_unsubscribes) == 1  # applied, then the answer was lost
    assert requests.post(emu.url + SUPP, json=supp_body(["a@x.com"])).status_code == 401
    requests.post(emu.url + "/__emulator__/reset")
    state = requests.get(emu.url + "/__emulator__/state").json()
    for key in ("consent", "suppressions", "list_suppressions", "list_unsubscribes", "push_tokens"):
        assert state[key] == {}
    for key in ("global_unsubscribes", "opt_in_confirmations", "consent_jobs", "deletions"):
        assert state[key] == []


def test_state_reports_consent_in_json(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "DOI", "double_opt_in")
    http.post(emu.url + SUB, json=sub_body([sub_profile("p@x.com")], lid))
    state = requests.get(emu.url + "/__emulator__/state").json()
    assert state["opt_in_confirmations"][0]["status"] == "pending"
    assert state["account_opt_in_process"] == "single_opt_in"
    stats = requests.get(emu.url + "/__emulator__/stats").json()
    assert stats["global_unsubscribes"] == 0


def test_consented_at_must_be_in_the_past_even_by_a_second(emu: EmulatorServer, http: requests.Session) -> None:
    soon = (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat()
    channels = {"email": {"marketing": {"consent": "SUBSCRIBED", "consented_at": soon}}}
    r = http.post(emu.url + SUB, json=sub_body([sub_profile("a@x.com", channels=channels)], historical=True))
    assert r.status_code == 400
