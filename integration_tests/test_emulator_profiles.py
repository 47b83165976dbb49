"""Emulator tests: profile reads (get_profiles, get_profiles_for_list) and deferred bulk import jobs."""

from __future__ import annotations

import time
from typing import Any, Iterator, Optional

import pytest
import requests

from integration_tests.klaviyo_emulator import EmulatorServer, limit_for
from integration_tests.klaviyo_emulator.__main__ import build_parser

KEY = "pk_test_profiles_key"
BULK = "/api/profile-bulk-import-jobs"


@pytest.fixture()
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_keys=[KEY]) as server:
        yield server


@pytest.fixture()
def http(emu: EmulatorServer) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers.update(emu.headers(KEY))
        yield s


def create_list(http: requests.Session, emu: EmulatorServer, name: str, opt_in: Optional[str] = None) -> str:
    attrs: dict[str, Any] = {"name": name}
    if opt_in:
        attrs["opt_in_process"] = opt_in
    r = http.post(emu.url + "/api/lists", json={"data": {"type": "list", "attributes": attrs}})
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"]


def bulk_body(profiles: list[dict[str, Any]], list_id: Optional[str] = None) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": profiles}}}
    if list_id:
        data["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return {"data": data}


def prof(**attrs: Any) -> dict[str, Any]:
    return {"type": "profile", "attributes": attrs}


def error_of(r: requests.Response) -> dict[str, Any]:
    assert r.headers["Content-Type"] == "application/vnd.api+json"
    body = r.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    err = body["errors"][0]
    assert err["status"] == r.status_code
    return err


def seed(http: requests.Session, emu: EmulatorServer, n: int, list_id: Optional[str] = None) -> list[str]:
    profiles = [
        prof(email=f"p{i:03d}@x.com", phone_number=f"+1555000{i:04d}", external_id=f"ext-{i}", first_name=f"F{i}")
        for i in range(n)
    ]
    assert http.post(emu.url + BULK, json=bulk_body(profiles, list_id)).status_code == 202
    return [emu.store.profile_by_email(f"p{i:03d}@x.com")["id"] for i in range(n)]


def all_pages(http: requests.Session, url: str, params: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    body = http.get(url, params=params).json()
    out += body["data"]
    while body["links"]["next"]:
        body = http.get(body["links"]["next"]).json()
        out += body["data"]
    return out


# ------------------------------------------------------------- get_profiles
def test_get_profiles_resource_shape_and_default_page(emu: EmulatorServer, http: requests.Session) -> None:
    ids = seed(http, emu, 25)
    r = http.get(emu.url + "/api/profiles")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.api+json"
    body = r.json()
    assert len(body["data"]) == 20  # spec: "Default: 20"
    first = body["data"][0]
    assert first["type"] == "profile" and first["id"] == ids[0]
    attrs = first["attributes"]
    for key in (
        "email",
        "phone_number",
        "external_id",
        "first_name",
        "last_name",
        "organization",
        "locale",
        "title",
        "image",
        "created",
        "updated",
        "last_event_date",
        "location",
        "properties",
    ):
        assert key in attrs
    assert attrs["email"] == "p000@x.com" and attrs["external_id"] == "ext-0" and attrs["last_name"] is None
    assert "subscriptions" not in attrs and "predictive_analytics" not in attrs
    assert first["links"]["self"] == f"{emu.url}/api/profiles/{ids[0]}/"
    assert set(first["relationships"]) == {"lists", "segments", "push-tokens", "conversations"}
    assert body["links"]["next"].startswith(emu.url + "/api/profiles?")
    assert [p["id"] for p in all_pages(http, emu.url + "/api/profiles")] == ids


@pytest.mark.parametrize("size", ["0", "101", "-1", "abc", ""])
def test_get_profiles_page_size_out_of_range(emu: EmulatorServer, http: requests.Session, size: str) -> None:
    r = http.get(emu.url + "/api/profiles", params={"page[size]": size})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "page[size]"}


def test_get_profiles_cursor_paging_keeps_filter_and_size(emu: EmulatorServer, http: requests.Session) -> None:
    ids = seed(http, emu, 30)
    emails = [f"p{i:03d}@x.com" for i in range(0, 30, 2)]
    flt = "any(email,[" + ",".join(f'"{e}"' for e in emails) + "])"
    r = http.get(emu.url + "/api/profiles", params={"filter": flt, "page[size]": 4})
    nxt = r.json()["links"]["next"]
    assert "page%5Bsize%5D=4" in nxt and "filter=" in nxt
    got = all_pages(http, emu.url + "/api/profiles", {"filter": flt, "page[size]": 4})
    assert [p["id"] for p in got] == ids[0:30:2]
    assert http.get(emu.url + "/api/profiles", params={"page[cursor]": "garbage"}).status_code == 400


@pytest.mark.parametrize(
    "flt, expected",
    [
        ('equals(email,"p003@x.com")', [3]),
        ('any(email,["p001@x.com","p004@x.com","nobody@x.com"])', [1, 4]),
        ('equals(phone_number,"+15550000002")', [2]),
        ('any(phone_number,["+15550000002","+15550000005"])', [2, 5]),
        ('equals(external_id,"ext-4")', [4]),
        ('any(external_id,["ext-0","ext-1"])', [0, 1]),
        ('and(any(email,["p001@x.com","p002@x.com"]),equals(external_id,"ext-2"))', [2]),
        ('any(email,["p001@x.com","p002@x.com"]),equals(external_id,"ext-2")', [2]),
        ('or(equals(email,"p001@x.com"),equals(external_id,"ext-2"))', [1, 2]),
        ("equals(email,'p005@x.com')", [5]),
        ('equals(email,"P005@x.com")', []),  # exact comparison
    ],
)
def test_get_profiles_filters(emu: EmulatorServer, http: requests.Session, flt: str, expected: list[int]) -> None:
    ids = seed(http, emu, 6)
    r = http.get(emu.url + "/api/profiles", params={"filter": flt})
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["data"]] == [ids[i] for i in expected]


def test_get_profiles_filter_by_id_and_datetimes(emu: EmulatorServer, http: requests.Session) -> None:
    ids = seed(http, emu, 3)
    r = http.get(emu.url + "/api/profiles", params={"filter": f'any(id,["{ids[0]}","{ids[2]}"])'})
    assert [p["id"] for p in r.json()["data"]] == [ids[0], ids[2]]
    r = http.get(emu.url + "/api/profiles", params={"filter": f'equals(id,"{ids[1]}")'})
    assert [p["id"] for p in r.json()["data"]] == [ids[1]]
    r = http.get(emu.url + "/api/profiles", params={"filter": "greater-than(created,2000-01-01T00:00:00Z)"})
    assert len(r.json()["data"]) == 3
    r = http.get(emu.url + "/api/profiles", params={"filter": "less-than(updated,2000-01-01T00:00:00Z)"})
    assert r.json()["data"] == []


@pytest.mark.parametrize(
    "flt",
    [
        'equals(first_name,"F1")',  # not a filterable field
        'contains(email,"x")',  # operator not allowed
        'greater-than(email,"a")',
        'any(_kx,["a"])',  # _kx: equals only
        "equals(created,2024-01-01T00:00:00Z)",  # created: greater-than / less-than only
        'greater-or-equal(created,"2024-01-01")',
        "equals(email,p1@x.com)",  # unquoted string
        'any(email,"p1@x.com")',  # any needs a list
        'equals(email,"p1@x.com"',  # unbalanced
    ],
)
def test_get_profiles_invalid_filters_400(emu: EmulatorServer, http: requests.Session, flt: str) -> None:
    r = http.get(emu.url + "/api/profiles", params={"filter": flt})
    assert r.status_code == 400
    err = error_of(r)
    assert err["source"] == {"parameter": "filter"} and err["code"] == "invalid"


def test_get_profiles_any_accepts_100_values_and_refuses_101(emu: EmulatorServer, http: requests.Session) -> None:
    seed(http, emu, 2)
    values = [f'"v{i}@x.com"' for i in range(99)] + ['"p001@x.com"']
    r = http.get(emu.url + "/api/profiles", params={"filter": f"any(email,[{','.join(values)}])"})
    assert r.status_code == 200 and [p["attributes"]["email"] for p in r.json()["data"]] == ["p001@x.com"]
    too_many = ",".join(values + ['"z@x.com"'])
    r = http.get(emu.url + "/api/profiles", params={"filter": f"any(email,[{too_many}])"})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "filter"}
    assert "100" in error_of(r)["detail"]


def test_get_profiles_sparse_fieldsets(emu: EmulatorServer, http: requests.Session) -> None:
    seed(http, emu, 1)
    emu.store.upsert_profile({"email": "p000@x.com", "location": {"city": "Boston", "zip": "02110"}})
    r = http.get(emu.url + "/api/profiles", params={"fields[profile]": "email,location.city"})
    assert r.status_code == 200
    assert r.json()["data"][0]["attributes"] == {"email": "p000@x.com", "location": {"city": "Boston"}}
    r = http.get(
        emu.url + "/api/profiles",
        params={
            "fields[profile]": "email,subscriptions.email.marketing.consent",
            "additional-fields[profile]": "subscriptions",
        },
    )
    assert r.json()["data"][0]["attributes"] == {
        "email": "p000@x.com",
        "subscriptions": {"email": {"marketing": {"consent": "NEVER_SUBSCRIBED"}}},
    }
    r = http.get(emu.url + "/api/profiles", params={"fields[profile]": "email,favourite_colour"})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "fields[profile]"}


def test_get_profiles_subscriptions_default_shape(emu: EmulatorServer, http: requests.Session) -> None:
    seed(http, emu, 1)
    r = http.get(emu.url + "/api/profiles", params={"additional-fields[profile]": "subscriptions"})
    subs = r.json()["data"][0]["attributes"]["subscriptions"]
    assert set(subs) == {"email", "sms", "mobile_push", "whatsapp"}
    em = subs["email"]["marketing"]
    assert em["consent"] == "NEVER_SUBSCRIBED" and em["can_receive_email_marketing"] is True
    assert em["suppression"] == [] and em["list_suppressions"] == [] and em["consent_timestamp"] is None
    assert subs["sms"]["marketing"] == {
        "can_receive_sms_marketing": False,
        "consent": "NEVER_SUBSCRIBED",
        "consent_timestamp": None,
        "method": None,
        "method_detail": None,
        "last_updated": None,
    }
    assert subs["sms"]["transactional"]["can_receive_sms_transactional"] is False
    assert subs["mobile_push"]["marketing"]["can_receive_push_marketing"] is False
    assert set(subs["whatsapp"]) == {"marketing", "transactional", "conversational"}


def test_get_profiles_additional_fields_validation_and_predictive(emu: EmulatorServer, http: requests.Session) -> None:
    seed(http, emu, 1)
    r = http.get(emu.url + "/api/profiles", params={"additional-fields[profile]": "subscriptions,predictive_analytics"})
    attrs = r.json()["data"][0]["attributes"]
    assert "subscriptions" in attrs and set(attrs["predictive_analytics"].values()) == {None}
    r = http.get(emu.url + "/api/profiles", params={"additional-fields[profile]": "everything"})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "additional-fields[profile]"}


def test_get_profiles_sort(emu: EmulatorServer, http: requests.Session) -> None:
    http.post(emu.url + BULK, json=bulk_body([prof(email="b@x.com"), prof(email="c@x.com"), prof(email="a@x.com")]))
    emu.store.upsert_profile({"external_id": "no-email"})

    def emails(sort: str) -> list[Optional[str]]:
        r = http.get(emu.url + "/api/profiles", params={"sort": sort})
        assert r.status_code == 200
        return [p["attributes"]["email"] for p in r.json()["data"]]

    assert emails("email") == ["a@x.com", "b@x.com", "c@x.com", None]
    assert emails("-email") == ["c@x.com", "b@x.com", "a@x.com", None]
    assert emails("created")[:3] == ["b@x.com", "c@x.com", "a@x.com"]
    r = http.get(emu.url + "/api/profiles", params={"sort": "first_name"})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "sort"}


def test_get_profiles_fault_and_request_log(emu: EmulatorServer, http: requests.Session) -> None:
    emu.store.add_fault(path="/api/profiles", method="GET", status=503)
    assert http.get(emu.url + "/api/profiles").status_code == 503
    assert http.get(emu.url + "/api/profiles").status_code == 200
    assert emu.store.count_requests("GET", "/api/profiles") == 2
    assert requests.get(emu.url + "/api/profiles", headers={"revision": "2026-07-15"}).status_code == 401
    r = requests.get(emu.url + "/api/profiles", headers={**emu.headers(KEY), "revision": "nope"})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "revision"}


# --------------------------------------------------- get_profiles_for_list
def test_list_member_profiles_full_resources_in_join_order(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "Members")
    ids = seed(http, emu, 45, lid)
    url = f"{emu.url}/api/lists/{lid}/profiles"
    r = http.get(url)
    assert r.status_code == 200
    body = r.json()
    assert len(body["data"]) == 20
    member = body["data"][0]
    assert member["type"] == "profile" and member["id"] == ids[0]
    assert member["attributes"]["email"] == "p000@x.com"
    assert member["attributes"]["phone_number"] == "+15550000000"
    assert member["attributes"]["external_id"] == "ext-0"
    assert member["attributes"]["joined_group_at"]
    got = all_pages(http, url, {"page[size]": 100})
    assert [p["id"] for p in got] == ids
    assert len(http.get(url, params={"page[size]": 100}).json()["data"]) == 45
    r = http.get(url, params={"page[size]": 101})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "page[size]"}
    rev = http.get(url, params={"sort": "-joined_group_at", "page[size]": 100}).json()["data"]
    assert [p["id"] for p in rev] == list(reversed(ids))


def test_list_member_profiles_filters(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "Members")
    ids = seed(http, emu, 5, lid)
    url = f"{emu.url}/api/lists/{lid}/profiles"
    r = http.get(url, params={"filter": 'any(email,["p001@x.com","p003@x.com","out@x.com"])'})
    assert [p["id"] for p in r.json()["data"]] == [ids[1], ids[3]]
    r = http.get(url, params={"filter": 'equals(phone_number,"+15550000004")'})
    assert [p["id"] for p in r.json()["data"]] == [ids[4]]
    r = http.get(url, params={"filter": "greater-than(joined_group_at,2000-01-01T00:00:00Z)"})
    assert len(r.json()["data"]) == 5
    r = http.get(url, params={"filter": "less-than(joined_group_at,2000-01-01T00:00:00Z)"})
    assert r.json()["data"] == []
    for bad in ('equals(external_id,"ext-1")', 'equals(id,"x")', 'contains(email,"p")'):
        r = http.get(url, params={"filter": bad})
        assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "filter"}
    many = ",".join(f'"e{i}@x.com"' for i in range(101))
    assert http.get(url, params={"filter": f"any(email,[{many}])"}).status_code == 400


def test_list_member_profiles_only_members_unknown_list_and_ghost_ids(
    emu: EmulatorServer, http: requests.Session
) -> None:
    lid = create_list(http, emu, "A")
    other = create_list(http, emu, "B")
    seed(http, emu, 2, lid)
    http.post(emu.url + BULK, json=bulk_body([prof(email="other@x.com")], other))
    http.post(
        f"{emu.url}/api/lists/{lid}/relationships/profiles", json={"data": [{"type": "profile", "id": "01GHOST"}]}
    )
    data = http.get(f"{emu.url}/api/lists/{lid}/profiles").json()["data"]
    assert [p["attributes"]["email"] for p in data] == ["p000@x.com", "p001@x.com"]
    r = http.get(f"{emu.url}/api/lists/NOPE/profiles")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = http.get(f"{emu.url}/api/lists/{lid}/profiles", params={"fields[profile]": "email,joined_group_at"})
    assert set(r.json()["data"][0]["attributes"]) == {"email", "joined_group_at"}
    r = http.get(f"{emu.url}/api/lists/{lid}/profiles", params={"additional-fields[profile]": "subscriptions"})
    assert r.json()["data"][0]["attributes"]["subscriptions"]["email"]["marketing"]["consent"] == "NEVER_SUBSCRIBED"
    assert http.post(f"{emu.url}/api/lists/{lid}/profiles", json={}).status_code == 405


def test_relationship_ids_any_limit_matches_profile_endpoints(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "R")
    many = ",".join(f'"e{i}@x.com"' for i in range(101))
    r = http.get(f"{emu.url}/api/lists/{lid}/relationships/profiles", params={"filter": f"any(email,[{many}])"})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "filter"}


# ------------------------------------------------------------- rate limits
@pytest.mark.parametrize(
    "method, path, variant, operation, burst, steady",
    [
        ("GET", "/api/profiles", None, "get_profiles", 75, 750),
        ("GET", "/api/profiles", "predictive_analytics", "get_profiles+predictive_analytics", 10, 150),
        ("GET", "/api/lists/AbC123/profiles", None, "get_profiles_for_list", 75, 750),
        (
            "GET",
            "/api/lists/AbC123/profiles",
            "predictive_analytics",
            "get_profiles_for_list+predictive_analytics",
            10,
            150,
        ),
        (
            "GET",
            "/api/lists/AbC123/relationships/profiles",
            "predictive_analytics",
            "get_profile_ids_for_list",
            75,
            750,
        ),
    ],
)
def test_profile_read_rate_limits_follow_the_spec(
    method: str, path: str, variant: Optional[str], operation: str, burst: int, steady: int
) -> None:
    limit = limit_for(method, path, variant=variant)
    assert limit is not None and (limit.operation, limit.burst, limit.steady) == (operation, burst, steady)


def test_predictive_analytics_reads_use_their_own_window() -> None:
    with EmulatorServer(api_keys=[KEY], rate_limits="klaviyo", time_scale=0.001) as emu:
        with requests.Session() as http:
            http.headers.update(emu.headers(KEY))
            params = {"additional-fields[profile]": "predictive_analytics"}
            for _ in range(10):
                assert http.get(emu.url + "/api/profiles", params=params).status_code == 200
            r = http.get(emu.url + "/api/profiles", params=params)
            assert r.status_code == 429 and "Retry-After" in r.headers
            ok = http.get(emu.url + "/api/profiles")
            assert ok.status_code == 200 and ok.headers["RateLimit-Limit"] == "750"


# ------------------------------------------------- deferred bulk import jobs
def test_deferred_import_job_goes_queued_processing_complete() -> None:
    with EmulatorServer(api_keys=[KEY], job_processing_seconds=0.6) as emu, requests.Session() as http:
        http.headers.update(emu.headers(KEY))
        lid = create_list(http, emu, "Later")
        start = time.monotonic()
        r = http.post(emu.url + BULK, json=bulk_body([prof(email="late@x.com"), prof(email="later@x.com")], lid))
        assert r.status_code == 202 and r.json()["data"]["attributes"]["status"] == "queued"
        job_id = r.json()["data"]["id"]
        job_url = f"{emu.url}{BULK}/{job_id}"
        attrs = http.get(job_url).json()["data"]["attributes"]
        assert attrs["status"] == "queued" and attrs["completed_count"] == 0 and attrs["started_at"] is None
        # nothing applied yet: no profile, no member
        assert http.get(f"{emu.url}/api/lists/{lid}/profiles").json()["data"] == []
        assert http.get(emu.url + "/api/profiles").json()["data"] == []
        assert emu.store.list_members(lid) == []
        time.sleep(max(0.0, start + 0.4 - time.monotonic()))
        attrs = http.get(job_url).json()["data"]["attributes"]
        assert attrs["status"] == "processing" and attrs["started_at"] and attrs["completed_at"] is None
        assert emu.store.list_members(lid) == []
        time.sleep(max(0.0, start + 0.7 - time.monotonic()))
        attrs = http.get(job_url).json()["data"]["attributes"]
        assert attrs["status"] == "complete" and attrs["completed_count"] == 2 and attrs["completed_at"]
        members = http.get(f"{emu.url}/api/lists/{lid}/profiles").json()["data"]
        assert [m["attributes"]["email"] for m in members] == ["late@x.com", "later@x.com"]
        state = requests.get(emu.url + "/__emulator__/state").json()
        job = next(j for j in state["jobs"] if j["id"] == job_id)
        assert job["status"] == "complete" and len(job["profile_ids"]) == 2


def test_deferred_import_applies_without_any_request() -> None:
    with EmulatorServer(api_keys=[KEY], job_processing_seconds=0.2) as emu, requests.Session() as http:
        http.headers.update(emu.headers(KEY))
        lid = create_list(http, emu, "Timer")
        assert http.post(emu.url + BULK, json=bulk_body([prof(email="t@x.com")], lid)).status_code == 202
        deadline = time.monotonic() + 2
        while not emu.store.list_members(lid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(emu.store.list_members(lid)) == 1
        assert next(iter(emu.store.jobs.values())).status == "complete"


def test_deferred_import_still_validates_synchronously() -> None:
    with EmulatorServer(api_keys=[KEY], job_processing_seconds=5) as emu, requests.Session() as http:
        http.headers.update(emu.headers(KEY))
        r = http.post(emu.url + BULK, json=bulk_body([prof(email="x@x.com")], "NOPE"))
        assert r.status_code == 404
        r = http.post(emu.url + BULK, json=bulk_body([prof(first_name="no identifier")]))
        assert r.status_code == 400
        assert emu.store.jobs == {}
        # reset forgets queued jobs: they never apply afterwards
        assert http.post(emu.url + BULK, json=bulk_body([prof(email="y@x.com")])).status_code == 202
        emu.store.reset()
        emu.store.process_due_jobs()
        assert emu.store.profiles == {} and emu.store.jobs == {}


def test_default_mode_applies_before_the_answer(emu: EmulatorServer, http: requests.Session) -> None:
    assert emu.store.job_processing_seconds == 0
    r = http.post(emu.url + BULK, json=bulk_body([prof(email="now@x.com")]))
    assert r.json()["data"]["attributes"]["status"] == "queued"
    assert emu.store.profile_by_email("now@x.com") is not None
    attrs = http.get(f"{emu.url}{BULK}/{r.json()['data']['id']}").json()["data"]["attributes"]
    assert attrs["status"] == "complete" and attrs["started_at"] and attrs["completed_count"] == 1


def test_cli_job_processing_seconds_flag() -> None:
    assert build_parser().parse_args([]).job_processing_seconds == 0.0
    assert build_parser().parse_args(["--job-processing-seconds", "2.5"]).job_processing_seconds == 2.5
    with pytest.raises(ValueError):
        EmulatorServer(api_keys=[KEY], job_processing_seconds=-1)


def test_identity_lookups_stay_fast_on_a_large_account(emu: EmulatorServer, http: requests.Session) -> None:
    profiles = [prof(email=f"big{i}@x.com", external_id=f"B{i}") for i in range(10_000)]
    assert http.post(emu.url + BULK, json=bulk_body(profiles)).status_code == 202
    start = time.monotonic()
    for batch in range(20):
        emails = [f"big{i}@x.com" for i in range(batch * 100, batch * 100 + 100)][::-1]
        flt = "any(email,[" + ",".join(f'"{e}"' for e in emails) + "])"
        data = http.get(emu.url + "/api/profiles", params={"filter": flt, "page[size]": 100}).json()["data"]
        # creation order, whatever the order of the values
        assert [p["attributes"]["email"] for p in data] == emails[::-1]
    r = http.get(emu.url + "/api/profiles", params={"filter": 'any(external_id,["B9999","B0","nope"])'})
    assert [p["attributes"]["external_id"] for p in r.json()["data"]] == ["B0", "B9999"]
    # a filter the index cannot serve alone still scans correctly
    r = http.get(emu.url + "/api/profiles", params={"filter": 'equals(email,"big5@x.com"),equals(external_id,"B5")'})
    assert [p["attributes"]["email"] for p in r.json()["data"]] == ["big5@x.com"]
    assert time.monotonic() - start < 5
