"""The consent surfaces end to end: the console script against the emulator, consent read back.

`subscriptions` subscribes into the row's list and unsubscribes only people on that list (unless
the stream allows global unsubscribes); `suppressions` suppresses and unsuppresses email addresses.
Every test also checks what must never happen: an unsubscribe without a list, and anybody
unsubscribed globally who was not meant to be.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import pytest

from integration_tests.harness import (
    EMULATOR_KEY,
    catalog,
    configured_stream,
    lines,
    record,
    run_connector,
    stream_state,
)

SUB = "/api/profile-subscription-bulk-create-jobs"
UNSUB = "/api/profile-subscription-bulk-delete-jobs"
SUPP = "/api/profile-suppression-bulk-create-jobs"
UNSUPP = "/api/profile-suppression-bulk-delete-jobs"
MUTATING = {"POST", "DELETE", "PATCH", "PUT"}
DELETED = {"_ab_cdc_deleted_at": "2026-01-01T00:00:00Z"}


def config(**extra: Any) -> dict[str, Any]:
    return {"private_api_key": EMULATOR_KEY, **extra}


def consent_stream(stream: str = "consent", target: str = "Newsletter", **options: Any) -> dict[str, Any]:
    return {"stream": stream, "surface": "subscriptions", "target": target, **options}


def write(emulator, cfg, streams: Iterable[dict[str, Any]], messages: list[dict[str, Any]]):
    return run_connector("write", config=cfg, catalog=catalog(*streams), stdin=lines(messages), origin=emulator.url)


def create_list(emulator, name: str, opt_in: Optional[str] = None) -> str:
    attributes = {"name": name, **({"opt_in_process": opt_in} if opt_in else {})}
    return emulator.api("POST", "/api/lists", {"data": {"type": "list", "attributes": attributes}})["data"]["id"]


def seed_subscribed(emulator, list_id: Optional[str], emails: Iterable[str] = (), phones: Iterable[str] = ()) -> None:
    """Subscribe people through the API itself (into `list_id`, or with no list: not on any)."""
    profiles = [
        {
            "type": "profile",
            "attributes": {"email": e, "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}},
        }
        for e in emails
    ] + [
        {
            "type": "profile",
            "attributes": {"phone_number": p, "subscriptions": {"sms": {"marketing": {"consent": "SUBSCRIBED"}}}},
        }
        for p in phones
    ]
    data: dict[str, Any] = {
        "type": "profile-subscription-bulk-create-job",
        "attributes": {"profiles": {"data": profiles}},
    }
    if list_id:
        data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    emulator.api("POST", SUB, {"data": data})


class Consent:
    """The emulator's state, read by email or phone number."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.by_email = {
            p["attributes"].get("email"): p["id"] for p in state["profiles"] if p["attributes"].get("email")
        }
        self.by_phone = {
            p["attributes"].get("phone_number"): p["id"]
            for p in state["profiles"]
            if p["attributes"].get("phone_number")
        }

    def pid(self, who: str) -> str:
        return (self.by_phone if who.startswith("+") else self.by_email)[who]

    def channel(self, who: str, channel: str = "email.marketing") -> str:
        record_ = self.state["consent"].get(self.pid(who), {}).get(channel)
        return record_["consent"] if record_ else "NEVER_SUBSCRIBED"

    def suppressions(self, who: str) -> list[str]:
        return sorted(s["reason"] for s in self.state["suppressions"].get(self.pid(who), []))

    def on_list(self, who: str, list_id: str) -> bool:
        return self.pid(who) in self.state["memberships"].get(list_id, [])

    def list_unsubscribed(self, who: str, list_id: str) -> bool:
        return any(u["list_id"] == list_id for u in self.state["list_unsubscribes"].get(self.pid(who), []))


def bodies(state: dict[str, Any], path: str) -> list[dict[str, Any]]:
    return [
        r["json_body"] for r in state["requests"] if r["method"] == "POST" and r["path"] == path and r["status"] < 300
    ]


def profiles_in(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [p["attributes"] for p in body["data"]["attributes"]["profiles"]["data"]]


def assert_every_unsubscribe_names_a_list(state: dict[str, Any]) -> None:
    for r in state["requests"]:
        if r["method"] == "POST" and r["path"] == UNSUB:
            assert r["json_body"]["data"]["relationships"]["list"]["data"]["id"], "an unsubscribe without a list"


def summary(run, prefix: str = "Sync summary") -> list[str]:
    return [line.split(": ", 1)[1] for line in run.logs if line.startswith(prefix + ": ")]


def rejections(run) -> list[str]:
    return [line for line in run.logs if line.startswith("Rejected record")]


# -- subscribe -------------------------------------------------------------------------------------
def test_subscribe_email_and_sms_into_managed_lists(emulator):
    rows = [record("consent", {"email": f"e{i}@example.com", "first_name": "ignored"}) for i in range(40)]
    rows += [
        record(
            "consent",
            {
                "phone_e164": f"+1500555{i:04d}",
                "email_marketing": False,
                "sms_marketing": True,
                "sms_transactional": True,
            },
        )
        for i in range(10)
    ]
    rows += [
        record(
            "consent", {"email": f"both{i}@example.com", "phone_number": f"+1500666{i:04d}", "sms_marketing": "true"}
        )
        for i in range(5)
    ]
    rows.append(
        record(
            "consent",
            {"phone_number": "+15007770000", "sms_marketing": True, "email_marketing": False, "list": "VIP SMS"},
        )
    )
    rows.append(record("consent", {"email": "nophone@example.com", "email_marketing": False, "sms_marketing": True}))
    rows.append(stream_state("consent", 57))
    cfg = config(streams=[consent_stream(channels=["email_marketing"])])
    run = write(emulator, cfg, [configured_stream("consent", "append_dedup")], rows)
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state(include_bodies=True)
    lists = {item["name"]: item["id"] for item in state["lists"]}
    assert sorted(lists) == ["Newsletter", "VIP SMS"] and len(state["lists"]) == 2  # found or created once each
    consent = Consent(state)
    newsletter = lists["Newsletter"]
    for i in range(40):
        assert consent.channel(f"e{i}@example.com") == "SUBSCRIBED" and consent.on_list(f"e{i}@example.com", newsletter)
        assert consent.channel(f"e{i}@example.com", "sms.marketing") == "NEVER_SUBSCRIBED"
    for i in range(10):
        phone = f"+1500555{i:04d}"
        assert consent.channel(phone, "sms.marketing") == consent.channel(phone, "sms.transactional") == "SUBSCRIBED"
        assert consent.on_list(phone, newsletter)
    for i in range(5):
        assert (
            consent.channel(f"both{i}@example.com")
            == consent.channel(f"+1500666{i:04d}", "sms.marketing")
            == "SUBSCRIBED"
        )
    assert consent.channel("+15007770000", "sms.marketing") == "SUBSCRIBED" and consent.on_list(
        "+15007770000", lists["VIP SMS"]
    )
    assert "nophone@example.com" not in consent.by_email  # rejected: SMS needs a phone number
    (reason,) = rejections(run)
    assert "(missing_identifier)" in reason and "sms_marketing" in reason and "nophone" not in reason
    sent = bodies(state, SUB)
    assert sent and all("historical_import" not in b["data"]["attributes"] for b in sent)
    assert {b["data"]["relationships"]["list"]["data"]["id"] for b in sent} == set(lists.values())
    # Only the identifiers a row's channels need are sent; the other columns are not profile data.
    everyone = [p for b in sent for p in profiles_in(b)]
    assert {"email": "e0@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}} in everyone
    assert state["global_unsubscribes"] == [] and bodies(state, UNSUB) == []
    (echoed,) = run.states
    assert echoed["destinationStats"] == {"recordCount": 56.0, "rejectedRecordCount": 1.0}
    assert (
        f"Target 'Newsletter' (Klaviyo list {newsletter}, created by this sync): 55 profiles subscribed into the list."
        in summary(run)
    )


def test_historical_import_with_consented_at_and_a_double_opt_in_list(emulator):
    list_id = create_list(emulator, "Double", opt_in="double_opt_in")
    rows = [record("c", {"email": f"now{i}@example.com"}) for i in range(3)]
    rows += [
        record("c", {"email": f"past{i}@example.com", "consented_at": f"2023-0{i + 1}-15T08:30:00Z"}) for i in range(3)
    ]
    rows.append(record("c", {"email": "future@example.com", "consented_at": "2999-01-01T00:00:00Z"}))
    rows.append(stream_state("c", 7))
    cfg = config(
        streams=[consent_stream("c", "Double", channels=["email_marketing"])],
        list_mappings=[{"target": "Double", "list_id": list_id}],
    )
    run = write(emulator, cfg, [configured_stream("c")], rows)
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state(include_bodies=True)
    consent = Consent(state)
    for i in range(3):
        # Double opt-in: a confirmation email went out; not subscribed, not on the list until they click.
        assert consent.channel(f"now{i}@example.com") == "NEVER_SUBSCRIBED"
        assert not consent.on_list(f"now{i}@example.com", list_id)
        past = f"past{i}@example.com"
        assert consent.channel(past) == "SUBSCRIBED" and consent.on_list(past, list_id)
        assert state["consent"][consent.pid(past)]["email.marketing"]["consent_timestamp"].startswith(
            f"2023-0{i + 1}-15T08:30:00"
        )
    pending = [c for c in state["opt_in_confirmations"] if c["status"] == "pending"]
    assert sorted(c["email"] for c in pending) == [f"now{i}@example.com" for i in range(3)]
    assert "future@example.com" not in consent.by_email
    assert any("(invalid_consented_at)" in line for line in rejections(run))
    historical = [b for b in bodies(state, SUB) if b["data"]["attributes"].get("historical_import")]
    (plain,) = [b for b in bodies(state, SUB) if not b["data"]["attributes"].get("historical_import")]
    assert [p["email"] for b in historical for p in profiles_in(b)] == [f"past{i}@example.com" for i in range(3)]
    assert all("consented_at" in p["subscriptions"]["email"]["marketing"] for b in historical for p in profiles_in(b))
    assert all("consented_at" not in p["subscriptions"]["email"]["marketing"] for p in profiles_in(plain))
    assert any("uses double opt-in" in line and list_id in line for line in run.logs)
    assert (
        f"Target 'Double' (Klaviyo list {list_id}, mapped in list_mappings): 3 profiles subscribed into the list, "
        "3 profiles subscribed into the list as a historical import (consent collected earlier)." in summary(run)
    )


# -- unsubscribe -----------------------------------------------------------------------------------
def seeded_newsletter(emulator) -> str:
    list_id = create_list(emulator, "Newsletter")
    seed_subscribed(emulator, list_id, [f"m{i}@example.com" for i in range(150)], ["+15005550100"])
    seed_subscribed(emulator, None, ["outsider@example.com"])  # subscribed, on no list
    return list_id


def test_unsubscribe_reaches_list_members_only_and_nobody_globally(emulator):
    list_id = seeded_newsletter(emulator)
    before = len(emulator.state()["requests"])
    rows = [record("optouts", {"email": f"m{i}@example.com", **DELETED}) for i in range(120)]
    rows += [
        record("optouts", {"email": "outsider@example.com", **DELETED}),  # subscribed, but not on this list
        record("optouts", {"email": "stranger@example.com", **DELETED}),  # unknown to Klaviyo
        record("optouts", {"klaviyo_profile_id": "01ONLYANID", **DELETED}),  # Klaviyo cannot unsubscribe by id
        record("optouts", {"phone_number": "+15005550100", "email_marketing": False, "sms_marketing": True, **DELETED}),
        record("optouts", {"email": "late@example.com"}),  # subscribed, then unsubscribed, in one sync
        record("optouts", {"email": "late@example.com", **DELETED}),
        stream_state("optouts", 126),
    ]
    cfg = config(
        streams=[consent_stream("optouts", channels=["email_marketing"])],
        list_mappings=[{"target": "Newsletter", "list_id": list_id}],
    )
    run = write(emulator, cfg, [configured_stream("optouts")], rows)
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state(include_bodies=True)
    consent = Consent(state)
    assert state["global_unsubscribes"] == []
    assert_every_unsubscribe_names_a_list(state)
    for i in range(150):
        email = f"m{i}@example.com"
        assert consent.on_list(email, list_id) is (i >= 120)
        assert consent.list_unsubscribed(email, list_id) is (i < 120)
        assert consent.channel(email) == "SUBSCRIBED"  # a list unsubscribe leaves global consent alone
    assert consent.list_unsubscribed("+15005550100", list_id) and not consent.on_list("+15005550100", list_id)
    assert (
        consent.list_unsubscribed("late@example.com", list_id) and consent.channel("late@example.com") == "SUBSCRIBED"
    )
    assert (
        consent.channel("outsider@example.com") == "SUBSCRIBED" and consent.suppressions("outsider@example.com") == []
    )
    assert "stranger@example.com" not in consent.by_email  # nothing was sent for them: no profile created
    sent = [p.get("email") or p.get("phone_number") for b in bodies(state, UNSUB) for p in profiles_in(b)]
    assert "outsider@example.com" not in sent and "stranger@example.com" not in sent
    codes = [line.split("(", 1)[1].split(")", 1)[0] for line in rejections(run)]
    assert sorted(codes) == ["missing_identifier", "not_a_list_member", "not_a_list_member"]
    assert any("klaviyo_profile_id" in line for line in rejections(run))
    # Membership is looked up in batches: one request per 100 emails (or phone numbers) of a request.
    lookups = [
        r
        for r in emulator.requests_since(before)
        if r["method"] == "GET" and r["path"] == f"/api/lists/{list_id}/profiles"
    ]
    assert 3 <= len(lookups) <= 4, lookups
    (echoed,) = run.states
    assert echoed["destinationStats"] == {"recordCount": 123.0, "rejectedRecordCount": 3.0}


def test_with_allow_global_unsubscribe_non_members_are_unsubscribed_everywhere_and_counted(emulator):
    list_id = seeded_newsletter(emulator)
    rows = [record("optouts", {"email": e}) for e in ("m0@example.com", "outsider@example.com", "stranger@example.com")]
    rows.append(stream_state("optouts", 3))
    cfg = config(
        streams=[consent_stream("optouts", channels=["email_marketing"], allow_global_unsubscribe=True)],
        list_mappings=[{"target": "Newsletter", "list_id": list_id}],
    )
    run = write(emulator, cfg, [configured_stream("optouts", "soft_delete")], rows)  # every row unsubscribes
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state(include_bodies=True)
    consent = Consent(state)
    assert_every_unsubscribe_names_a_list(state)
    assert consent.list_unsubscribed("m0@example.com", list_id) and consent.channel("m0@example.com") == "SUBSCRIBED"
    globally = sorted((g["email"], g["reason"], g["list_id"]) for g in state["global_unsubscribes"])
    assert globally == [
        ("outsider@example.com", "not_in_list", list_id),
        ("stranger@example.com", "not_in_list", list_id),
    ]
    assert consent.channel("outsider@example.com") == "UNSUBSCRIBED" and consent.suppressions(
        "outsider@example.com"
    ) == ["UNSUBSCRIBE"]
    assert rejections(run) == []
    assert (
        f"Target 'Newsletter' (Klaviyo list {list_id}, mapped in list_mappings): 1 profile unsubscribed from the list, "
        "2 profiles unsubscribed from everything (not on the list; allow_global_unsubscribe)." in summary(run)
    )
    assert any("not on list" in line and "globally" in line for line in run.logs if not line.startswith("Sync summary"))


# -- suppressions ----------------------------------------------------------------------------------
def test_suppress_and_unsuppress(emulator):
    seed_subscribed(emulator, None, ["unsub@example.com"])
    emulator.api(
        "POST",
        UNSUB,
        {"data": {"type": "profile-subscription-bulk-delete-job", "attributes": {"profiles": {"data": [
            {"type": "profile", "attributes": {"email": "unsub@example.com", "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}}
        ]}}}},
    )  # fmt: skip
    rows = [record("blocked", {"email": e}) for e in ("a@example.com", "b@example.com", "c@example.com")]
    rows += [
        record("blocked", {"email": "b@example.com", **DELETED}),  # suppressed above: unsuppressed after it
        record("blocked", {"email": "unsub@example.com", **DELETED}),  # an unsubscribe is not lifted
        record("blocked", {"email": "d@example.com", **DELETED}),
        record("blocked", {"email": "d@example.com"}),  # unsuppressed, then suppressed: ends suppressed
        record("blocked", {"phone_number": "+15005550006"}),  # no email: rejected
        stream_state("blocked", 8),
    ]
    run = write(
        emulator,
        config(streams=[{"stream": "blocked", "surface": "suppressions"}]),
        [configured_stream("blocked")],
        rows,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    consent = Consent(emulator.state())
    assert consent.suppressions("a@example.com") == consent.suppressions("c@example.com") == ["USER_SUPPRESSED"]
    assert consent.suppressions("d@example.com") == ["USER_SUPPRESSED"]
    assert consent.suppressions("b@example.com") == []
    assert consent.suppressions("unsub@example.com") == ["UNSUBSCRIBE"]
    assert [line.split("(", 1)[1].split(")")[0] for line in rejections(run)] == ["missing_identifier"]
    assert "Suppressions: suppress 4, unsuppress 3" in summary(run)
    assert emulator.state()["global_unsubscribes"][0]["email"] == "unsub@example.com"  # the seed's own, only
    assert len(emulator.state()["global_unsubscribes"]) == 1


# -- dry run ---------------------------------------------------------------------------------------
def test_dry_run_plans_consent_changes_with_lookups_and_changes_nothing(emulator):
    list_id = seeded_newsletter(emulator)
    before_state = emulator.state()
    before = len(before_state["requests"])
    rows = [
        record("consent", {"email": "new1@example.com"}),
        record("consent", {"email": "new2@example.com"}),
        record("consent", {"email": "fresh@example.com", "list": "Brand new"}),
        record("consent", {"email": "m0@example.com", **DELETED}),
        record("consent", {"email": "stranger@example.com", **DELETED}),
        record("everything", {"email": "outsider@example.com", **DELETED}),
        record("blocked", {"email": "x@example.com"}),
        stream_state("consent", 5),
    ]
    cfg = config(
        dry_run=True,
        streams=[
            consent_stream("consent", channels=["email_marketing"]),
            consent_stream("everything", channels=["email_marketing"], allow_global_unsubscribe=True),
            {"stream": "blocked", "surface": "suppressions"},
        ],
    )
    streams = [configured_stream("consent"), configured_stream("everything"), configured_stream("blocked")]
    run = write(emulator, cfg, streams, rows)
    assert run.returncode == 0, run.stdout[-3000:]
    made = emulator.requests_since(before)
    assert [r for r in made if r["method"] in MUTATING] == []
    assert any(r["path"] == f"/api/lists/{list_id}/profiles" for r in made)  # the guard's lookups are reads
    after = emulator.state()
    for key in ("consent", "suppressions", "memberships", "global_unsubscribes", "list_unsubscribes", "lists"):
        assert after[key] == before_state[key], key
    assert run.states == [] and run.of_type("CONTROL") == []
    plan = summary(run, "Dry run plan")
    assert (
        f"Target 'Newsletter' (Klaviyo list {list_id}, found by its name): 2 profiles would be subscribed into the "
        "list, 1 profile would be unsubscribed from the list, 1 profile would be unsubscribed from everything "
        "(not on the list; allow_global_unsubscribe)." in plan
    )
    assert (
        "Target 'Brand new' (no such list yet: a real sync would create it): 1 profile would be subscribed into the list."
        in plan
    )
    assert "Suppressions: suppress 1" in plan
    assert any("(not_a_list_member: 1)" in line and "Stream 'consent'" in line for line in plan)
    assert any("would unsubscribe 1 person(s)" in line for line in run.logs)


# -- faults ----------------------------------------------------------------------------------------
def test_a_fault_run_ends_exactly_right(emulator):
    list_id = create_list(emulator, "Newsletter")
    seed_subscribed(emulator, list_id, [f"m{i}@example.com" for i in range(30)])
    for spec in (
        dict(method="POST", path=SUB, status=503, count=1),
        dict(method="POST", path=SUB, status=429, retry_after=1, count=1),
        dict(method="POST", path=SUB, status=500, apply=True, count=1),
        dict(method="GET", path=f"/api/lists/{list_id}/profiles", status=503, count=1),
        dict(method="POST", path=UNSUB, status=429, retry_after=1, count=1),
        dict(method="POST", path=UNSUB, status=500, apply=True, count=1),  # took effect, answer lost
        dict(method="POST", path=SUPP, status=502, count=1),
        dict(method="POST", path=SUPP, status=429, retry_after=1, count=1),
        dict(method="POST", path=UNSUPP, status=500, apply=True, count=1),
    ):
        emulator.fault(**spec)
    rows = []
    for i in range(1_500):
        rows.append(record("consent", {"email": f"s{i}@example.com"}))
        if (i + 1) % 500 == 0:
            rows.append(stream_state("consent", i + 1))
    rows += [record("consent", {"email": f"m{i}@example.com", **DELETED}) for i in range(30)]
    rows.append(record("consent", {"email": "stranger@example.com", **DELETED}))
    rows.append(stream_state("consent", 1_531))
    rows += [record("blocked", {"email": f"x{i}@example.com"}) for i in range(150)]
    rows += [record("blocked", {"email": f"x{i}@example.com", **DELETED}) for i in range(10)]
    rows.append(stream_state("blocked", 160))
    cfg = config(
        request_timeout_seconds=5,
        streams=[consent_stream(channels=["email_marketing"]), {"stream": "blocked", "surface": "suppressions"}],
        list_mappings=[{"target": "Newsletter", "list_id": list_id}],
    )
    run = write(emulator, cfg, [configured_stream("consent"), configured_stream("blocked")], rows)
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state(include_bodies=True)
    assert state["faults"] == []  # every fault fired
    consent = Consent(state)
    assert all(consent.channel(f"s{i}@example.com") == "SUBSCRIBED" for i in range(1_500))
    assert sorted(state["memberships"][list_id]) == sorted(consent.pid(f"s{i}@example.com") for i in range(1_500))
    assert all(consent.list_unsubscribed(f"m{i}@example.com", list_id) for i in range(30))
    assert state["global_unsubscribes"] == []  # the resent unsubscribe did not reach people already off the list
    assert_every_unsubscribe_names_a_list(state)
    assert all(
        consent.suppressions(f"x{i}@example.com") == (["USER_SUPPRESSED"] if i >= 10 else []) for i in range(150)
    )
    cursors = [(s["stream"]["stream_descriptor"]["name"], s["stream"]["stream_state"]["cursor"]) for s in run.states]
    assert [c for s, c in cursors if s == "consent"] == [500, 1_000, 1_500, 1_531]
    assert [c for s, c in cursors if s == "blocked"] == [160]
    assert [line.split("(", 1)[1].split(")")[0] for line in rejections(run)] == ["not_a_list_member"]
    assert (
        f"Target 'Newsletter' (Klaviyo list {list_id}, mapped in list_mappings): 1,500 profiles subscribed into the list, 30 profiles unsubscribed from the list."
        in summary(run)
    )


UNSUBSCRIBE_FAULTS = {  # the fault, and whether the first sync must stop
    "503 before applying": (dict(status=503), True),
    "429": (dict(status=429, retry_after=1), False),
    "500 after applying": (dict(status=500, apply=True), False),
    "dropped after applying": (dict(drop=True, apply=True), False),
    "dropped before applying": (dict(drop=True), True),
    # applied 4 s after it arrived; the connector gives up at 2 s and looks again 5 s later
    "slower than the timeout, then applied": (dict(delay_seconds=4), False),
}


@pytest.mark.parametrize("fault,stops", UNSUBSCRIBE_FAULTS.values(), ids=UNSUBSCRIBE_FAULTS.keys())
def test_an_unsubscribe_whose_answer_is_lost_is_never_sent_twice(emulator, fault, stops):
    """After a failure that may have taken effect, people off the list are done; anyone still on it
    stops the sync (Klaviyo may yet run the lost request), and the retried sync finishes the job."""
    list_id = create_list(emulator, "Newsletter")
    seed_subscribed(emulator, list_id, [f"m{i}@example.com" for i in range(5)])
    emulator.fault(method="POST", path=UNSUB, count=1, **fault)
    rows = [record("optouts", {"email": f"m{i}@example.com"}) for i in range(5)] + [stream_state("optouts", 5)]
    cfg = config(
        request_timeout_seconds=2,
        streams=[consent_stream("optouts", channels=["email_marketing"])],
        list_mappings=[{"target": "Newsletter", "list_id": list_id}],
    )
    streams = [configured_stream("optouts", "soft_delete")]
    run = write(emulator, cfg, streams, rows)
    assert emulator.state()["faults"] == [] and emulator.state()["global_unsubscribes"] == []
    assert (run.returncode != 0) is stops, run.stdout[-3000:]
    if stops:  # rather than resend: Airbyte retries the sync from its last state
        (trace,) = run.traces
        assert trace["error"]["failure_type"] == "transient_error" and run.states == []
        assert any("not sent again in this sync" in line for line in run.logs)
        run = write(emulator, cfg, streams, rows)
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state()
    consent = Consent(state)
    assert state["global_unsubscribes"] == []
    assert all(consent.list_unsubscribed(f"m{i}@example.com", list_id) for i in range(5))
    assert [s["stream"]["stream_state"]["cursor"] for s in run.states] == [5]
    assert run.states[0]["destinationStats"] == {"recordCount": 5.0, "rejectedRecordCount": 0.0}


def test_syncing_the_same_opt_outs_again_sends_nothing_and_rejects_nobody(emulator):
    list_id = seeded_newsletter(emulator)
    seed_subscribed(emulator, None, ["gone@example.com"])
    emulator.api(
        "POST",
        UNSUB,
        {"data": {"type": "profile-subscription-bulk-delete-job", "attributes": {"profiles": {"data": [
            {"type": "profile", "attributes": {"email": "gone@example.com", "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}}
        ]}}}},
    )  # fmt: skip
    rows = [record("optouts", {"email": f"m{i}@example.com"}) for i in range(3)] + [stream_state("optouts", 3)]
    cfg = config(
        streams=[consent_stream("optouts", channels=["email_marketing"])],
        list_mappings=[{"target": "Newsletter", "list_id": list_id}],
    )
    streams = [configured_stream("optouts", "soft_delete")]
    first = write(emulator, cfg, streams, rows)
    assert first.returncode == 0, first.stdout[-3000:]
    before = len(emulator.state()["requests"])
    again = write(
        emulator,
        cfg,
        streams,
        rows[:-1] + [record("optouts", {"email": "gone@example.com"}), stream_state("optouts", 4)],
    )
    assert again.returncode == 0, again.stdout[-3000:]
    assert [r for r in emulator.requests_since(before) if r["method"] in MUTATING] == []
    assert rejections(again) == []
    assert (
        f"Target 'Newsletter' (Klaviyo list {list_id}, mapped in list_mappings): 4 rows already unsubscribed (nothing sent)."
        in summary(again)
    )
    assert len(emulator.state()["global_unsubscribes"]) == 1  # the seed's own


# -- check and scopes ------------------------------------------------------------------------------
def test_check_names_the_missing_read_scope_of_the_consent_surfaces(emulator):
    cfg = config(streams=[consent_stream()], default_surface="suppressions")
    good = run_connector("check", config=cfg, origin=emulator.url)
    assert good.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}
    assert any(
        "'subscriptions' surface needs the scopes" in line and "subscriptions:write" in line for line in good.logs
    )
    emulator.fault(method="GET", path="/api/profiles", status=403, count=1)
    bad = run_connector("check", config=cfg, origin=emulator.url)
    status = bad.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "profiles:read" in status["message"] and "subscriptions" in status["message"]
    assert "subscriptions:write" in status["message"]  # what to grant


def test_a_key_without_subscriptions_write_fails_the_sync_naming_the_scope(emulator):
    emulator.fault(method="POST", path=SUB, status=403, count=1)
    run = write(
        emulator,
        config(streams=[consent_stream(channels=["email_marketing"])]),
        [configured_stream("consent")],
        [record("consent", {"email": "a@example.com"}), stream_state("consent", 1)],
    )
    assert run.returncode != 0
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "config_error" and "subscriptions:write" in trace["error"]["message"]
    assert run.states == []
