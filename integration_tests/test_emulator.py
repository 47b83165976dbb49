"""Tests for the local Klaviyo API emulator.

The connector's integration tests trust this emulator to behave like
Klaviyo (shapes, limits, error pointers), so each endpoint and each error
path is pinned here against the real HTTP surface via ``requests``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import requests

from integration_tests.klaviyo_emulator import (
    DEFAULT_API_KEY,
    EmulatorServer,
    FilterError,
    RateLimiter,
    compile_filter,
    limit_for,
    parse_filter,
    quote_filter_string,
)
from integration_tests.klaviyo_emulator.filters import LIST_FILTER_FIELDS

KEY = "pk_test_super_secret_key_123"
KEY2 = "pk_second_key_456"
REPO_ROOT = Path(__file__).resolve().parents[1]
BULK = "/api/profile-bulk-import-jobs"


# ----------------------------------------------------------------- fixtures
@pytest.fixture()
def emu() -> Iterator[EmulatorServer]:
    """A fresh emulator per test so state never leaks between tests."""
    with EmulatorServer(api_keys=[KEY, KEY2]) as server:
        yield server


@pytest.fixture()
def http(emu: EmulatorServer) -> Iterator[requests.Session]:
    """A session carrying valid auth + revision headers, like the connector."""
    with requests.Session() as s:
        s.headers.update(emu.headers(KEY))
        yield s


def create_list(http: requests.Session, emu: EmulatorServer, name: str) -> str:
    r = http.post(emu.url + "/api/lists", json={"data": {"type": "list", "attributes": {"name": name}}})
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"]


def bulk_body(profiles: list[dict[str, Any]], list_id: Optional[str] = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": profiles}},
    }
    if list_id:
        data["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return {"data": data}


def prof(**attrs: Any) -> dict[str, Any]:
    return {"type": "profile", "attributes": attrs}


def error_of(r: requests.Response) -> dict[str, Any]:
    """Return the single JSON:API error object, checking the common shape."""
    assert r.headers["Content-Type"] == "application/vnd.api+json"
    body = r.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    err = body["errors"][0]
    for key in ("id", "status", "code", "title", "detail", "source"):
        assert key in err
    assert err["status"] == r.status_code
    return err


# ------------------------------------------------------------ auth/revision
def test_accounts_returns_one_spec_shaped_account(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.get(emu.url + "/api/accounts")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.api+json"
    body = r.json()
    assert len(body["data"]) == 1
    acct = body["data"][0]
    assert acct["type"] == "account" and acct["id"]
    attrs = acct["attributes"]
    for key in ("test_account", "contact_information", "timezone", "preferred_currency", "public_api_key", "locale"):
        assert key in attrs
    for key in ("default_sender_name", "default_sender_email", "organization_name", "street_address"):
        assert key in attrs["contact_information"]
    assert acct["links"]["self"].startswith(emu.url)
    assert body["links"]["self"].startswith(emu.url)


@pytest.mark.parametrize(
    "auth",
    [None, "", f"Bearer {KEY}", "Klaviyo-API-Key", "Klaviyo-API-Key wrong-key-xyz", f"klaviyo-api-key {KEY}"],
)
def test_bad_auth_is_401_and_never_echoes_key(emu: EmulatorServer, auth: Optional[str]) -> None:
    headers = {"revision": "2024-10-15"}
    if auth is not None:
        headers["Authorization"] = auth
    r = requests.get(emu.url + "/api/accounts", headers=headers)
    assert r.status_code == 401
    err = error_of(r)
    assert err["code"] == "not_authenticated"
    assert "wrong-key-xyz" not in r.text and KEY not in r.text
    state = requests.get(emu.url + "/__emulator__/state?include_bodies=1").text
    assert KEY not in state and "wrong-key-xyz" not in state


def test_second_key_accepted_and_default_key_when_none_given() -> None:
    with EmulatorServer(api_keys=[KEY, KEY2]) as emu:
        assert requests.get(emu.url + "/api/accounts", headers=emu.headers(KEY2)).status_code == 200
    with EmulatorServer() as emu:
        assert requests.get(emu.url + "/api/accounts", headers=emu.headers(DEFAULT_API_KEY)).status_code == 200
        assert requests.get(emu.url + "/api/accounts", headers=emu.headers(KEY)).status_code == 401


@pytest.mark.parametrize("revision", [None, "", "latest", "2024-13-01", "2024-02-30", "24-10-15", "2024-10-15.pre!"])
def test_bad_revision_is_400_on_revision_parameter(emu: EmulatorServer, revision: Optional[str]) -> None:
    headers = {"Authorization": f"Klaviyo-API-Key {KEY}"}
    if revision is not None:
        headers["revision"] = revision
    r = requests.get(emu.url + "/api/accounts", headers=headers)
    assert r.status_code == 400
    assert error_of(r)["source"] == {"parameter": "revision"}


@pytest.mark.parametrize("revision", ["2024-10-15", "2026-07-15", "2023-06-15.pre", "2024-02-15.beta_2"])
def test_valid_revisions_accepted(emu: EmulatorServer, revision: str) -> None:
    r = requests.get(emu.url + "/api/accounts", headers=emu.headers(KEY, revision=revision))
    assert r.status_code == 200


def test_unknown_path_404_and_wrong_method_405(emu: EmulatorServer, http: requests.Session) -> None:
    assert error_of(http.get(emu.url + "/api/nope"))["code"] == "not_found"
    r = http.delete(emu.url + "/api/accounts")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"


def test_trailing_slash_paths_work(emu: EmulatorServer, http: requests.Session) -> None:
    """Klaviyo's own links end in '/', so clients often call them that way."""
    assert http.get(emu.url + "/api/accounts/").status_code == 200
    assert http.get(emu.url + "/api/lists/").status_code == 200


# --------------------------------------------------------------------- lists
def test_create_list_201_and_duplicates_allowed(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.post(emu.url + "/api/lists", json={"data": {"type": "list", "attributes": {"name": "Dup"}}})
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["type"] == "list" and data["attributes"]["name"] == "Dup"
    for key in ("created", "updated", "opt_in_process"):
        assert key in data["attributes"]
    assert data["links"]["self"] == f"{emu.url}/api/lists/{data['id']}/"
    second = create_list(http, emu, "Dup")
    assert second != data["id"]
    assert [rec["id"] for rec in emu.store.lists_by_name("Dup")] == [data["id"], second]


@pytest.mark.parametrize(
    "body, pointer",
    [
        ({"data": {"type": "lists", "attributes": {"name": "x"}}}, "/data/type"),
        ({"data": {"type": "list", "attributes": {}}}, "/data/attributes/name"),
        ({"data": {"type": "list", "attributes": {"name": ""}}}, "/data/attributes/name"),
        ({"data": {"type": "list", "attributes": {"name": 5}}}, "/data/attributes/name"),
        (
            {"data": {"type": "list", "attributes": {"name": "x", "opt_in_process": "maybe"}}},
            "/data/attributes/opt_in_process",
        ),
        ({"data": {"type": "list"}}, "/data/attributes"),
        ({"nodata": 1}, "/data"),
    ],
)
def test_create_list_validation(emu: EmulatorServer, http: requests.Session, body: Any, pointer: str) -> None:
    r = http.post(emu.url + "/api/lists", json=body)
    assert r.status_code == 400
    assert error_of(r)["source"]["pointer"] == pointer
    assert emu.store.lists == {}


def test_create_list_malformed_json(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.post(emu.url + "/api/lists", data=b"{not json")
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == "/data"


def test_list_create_daily_limit_429() -> None:
    with EmulatorServer(api_keys=[KEY], list_create_daily_limit=3) as emu, requests.Session() as http:
        http.headers.update(emu.headers(KEY))
        for i in range(3):
            create_list(http, emu, f"L{i}")
        r = http.post(emu.url + "/api/lists", json={"data": {"type": "list", "attributes": {"name": "L3"}}})
        assert r.status_code == 429
        err = error_of(r)
        assert err["code"] == "throttled"
        assert "daily limit" in err["detail"] and "3" in err["detail"]
        assert int(r.headers["Retry-After"]) >= 1
        assert len(emu.store.lists) == 3


def test_default_daily_limit_is_150(emu: EmulatorServer) -> None:
    assert emu.store.list_create_daily_limit == 150


def test_get_lists_pagination_with_absolute_next_links(emu: EmulatorServer, http: requests.Session) -> None:
    ids = [create_list(http, emu, f"List {i:02d}") for i in range(23)]
    r = http.get(emu.url + "/api/lists")
    assert r.status_code == 200
    body = r.json()
    assert len(body["data"]) == 10  # default and max page size is 10
    assert body["links"]["self"] == emu.url + "/api/lists"
    seen = [d["id"] for d in body["data"]]
    nxt = body["links"]["next"]
    pages = 1
    while nxt:
        assert nxt.startswith(emu.url + "/api/lists?")
        body = http.get(nxt).json()
        seen += [d["id"] for d in body["data"]]
        nxt = body["links"]["next"]
        pages += 1
    assert pages == 3 and seen == ids  # deterministic creation order, nothing lost


def test_next_link_uses_request_host(emu: EmulatorServer, http: requests.Session) -> None:
    for i in range(2):
        create_list(http, emu, f"H{i}")
    r = http.get(emu.url + "/api/lists", params={"page[size]": 1}, headers={"Host": "klaviyo.test:1234"})
    assert r.json()["links"]["next"].startswith("http://klaviyo.test:1234/api/lists?")


@pytest.mark.parametrize("size", ["0", "11", "-1", "abc", ""])
def test_get_lists_page_size_out_of_range(emu: EmulatorServer, http: requests.Session, size: str) -> None:
    r = http.get(emu.url + "/api/lists", params={"page[size]": size})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "page[size]"}


def test_bad_cursor_400(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.get(emu.url + "/api/lists", params={"page[cursor]": "garbage!!"})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "page[cursor]"}


def test_page_size_and_filter_preserved_in_next_link(emu: EmulatorServer, http: requests.Session) -> None:
    for _ in range(3):
        create_list(http, emu, "Same")
    create_list(http, emu, "Other")
    r = http.get(emu.url + "/api/lists", params={"filter": 'equals(name,"Same")', "page[size]": 2})
    body = r.json()
    assert len(body["data"]) == 2
    body2 = http.get(body["links"]["next"]).json()
    assert [d["attributes"]["name"] for d in body2["data"]] == ["Same"]
    assert body2["links"]["next"] is None


TRICKY_NAMES = [
    'He said "hi"',
    "O'Brien's list",
    "back\\slash",
    "mix \\\" both ' quotes",
    "comma, (parens) [brackets]",
    "unicodé ✓",
    "trailing\\",
]


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_filter_equals_name_with_escaped_quotes(emu: EmulatorServer, http: requests.Session, name: str) -> None:
    target = create_list(http, emu, name)
    create_list(http, emu, name.upper() + "x")
    create_list(http, emu, "plain")
    r = http.get(emu.url + "/api/lists", params={"filter": f"equals(name,{quote_filter_string(name)})"})
    assert r.status_code == 200, r.text
    assert [d["id"] for d in r.json()["data"]] == [target]
    # json.dumps output (JSON escapes) is accepted too.
    r = http.get(emu.url + "/api/lists", params={"filter": f"equals(name,{json.dumps(name)})"})
    assert [d["id"] for d in r.json()["data"]] == [target]


def test_filter_single_quotes_case_sensitive_any_and_id(emu: EmulatorServer, http: requests.Session) -> None:
    a = create_list(http, emu, "Alpha")
    b = create_list(http, emu, "Beta")
    create_list(http, emu, "alpha")

    def names(f: str) -> list[str]:
        r = http.get(emu.url + "/api/lists", params={"filter": f})
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["data"]]

    assert names("equals(name,'Alpha')") == [a]
    assert names('equals(name,"ALPHA")') == []
    assert names('any(name,["Alpha","Beta"])') == [a, b]
    assert names("equals(name,['Beta'])") == [b]  # the spec's own example form
    assert names(f'equals(id,"{b}")') == [b]
    assert names(f'any(id,["{a}","nope"])') == [a]
    assert names('equals(name,"Alpha"),equals(id,"' + a + '")') == [a]
    assert names("greater-than(created,2000-01-01T00:00:00Z)") != []


@pytest.mark.parametrize(
    "flt",
    [
        'equals(name,"unterminated)',
        "equals(name,Alpha)",  # strings must be quoted
        'equals(name,"bad \\q escape")',
        'contains(name,"x")',  # operator not allowed for lists
        'equals(email,"x")',  # field not allowed for lists
        'equals(name,"x"',
        'equals(name,"x"))',
        'any(name,"x")',
        'greater-than(created,"2024-01-01T00:00:00Z")',  # datetimes are unquoted
        "",
    ],
)
def test_invalid_filters_400(emu: EmulatorServer, http: requests.Session, flt: str) -> None:
    r = http.get(emu.url + "/api/lists", params={"filter": flt})
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "invalid" and err["source"] == {"parameter": "filter"}


def test_filter_parser_round_trips_python_repr_and_quote_helper() -> None:
    """Klaviyo's own MCP server formats values with repr(); both styles parse."""
    for name in TRICKY_NAMES + ["tab\there", "nl\nhere"]:
        for literal in (quote_filter_string(name), repr(name), json.dumps(name)):
            pred = compile_filter(f"equals(name,{literal})", LIST_FILTER_FIELDS)
            assert pred({"name": name}), literal
            assert not pred({"name": name + " "}), literal
    with pytest.raises(FilterError):
        parse_filter("equals(name,'a\\zb')")


def test_get_single_list(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "One")
    r = http.get(f"{emu.url}/api/lists/{lid}")
    assert r.status_code == 200 and r.json()["data"]["id"] == lid
    assert http.get(f"{emu.url}/api/lists/NOPE00").status_code == 404


# --------------------------------------------------------------- bulk import
def test_bulk_import_202_job_shape_and_applied(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "Import target")
    profiles = [
        prof(email="a@example.com", first_name="Ann", properties={"tier": "gold"}),
        prof(phone_number="+15005550006"),
        prof(external_id="ext-1", location={"city": "Boston"}),
    ]
    r = http.post(emu.url + BULK, json=bulk_body(profiles, lid))
    assert r.status_code == 202, r.text
    job = r.json()["data"]
    assert job["type"] == "profile-bulk-import-job"
    assert job["attributes"]["status"] == "queued"
    assert job["attributes"]["total_count"] == 3
    assert job["attributes"]["created_at"]
    assert job["links"]["self"] == f"{emu.url}{BULK}/{job['id']}/"
    assert job["relationships"]["lists"]["data"] == [{"type": "list", "id": lid}]
    assert len(job["id"]) == 26

    got = http.get(f"{emu.url}{BULK}/{job['id']}")
    assert got.status_code == 200
    attrs = got.json()["data"]["attributes"]
    assert attrs["status"] == "complete" and attrs["completed_count"] == 3 and attrs["completed_at"]

    assert len(emu.store.profiles) == 3
    members = emu.store.list_members(lid)
    assert sorted(members) == sorted(emu.store.profiles)
    assert all(len(pid) == 26 for pid in members)
    rec = emu.store.jobs[job["id"]]
    assert rec.list_id == lid and rec.profile_count == 3 and rec.request_body == bulk_body(profiles, lid)
    assert rec.body_size == len(json.dumps(bulk_body(profiles, lid)))

    errs = http.get(f"{emu.url}{BULK}/{job['id']}/import-errors")
    assert errs.status_code == 200 and errs.json()["data"] == []
    assert http.get(f"{emu.url}{BULK}/01NOPE").status_code == 404


def test_bulk_import_upsert_merges_attributes(emu: EmulatorServer, http: requests.Session) -> None:
    first = [
        prof(
            email="m@example.com",
            first_name="Mia",
            last_name="Old",
            properties={"a": 1, "b": 2},
            location={"city": "Boston", "zip": "02110"},
        )
    ]
    assert http.post(emu.url + BULK, json=bulk_body(first)).status_code == 202
    pid = emu.store.profile_by_email("m@example.com")["id"]
    second = [prof(email="m@example.com", last_name="New", properties={"b": 3, "c": 4}, location={"city": "NYC"})]
    assert http.post(emu.url + BULK, json=bulk_body(second)).status_code == 202
    assert len(emu.store.profiles) == 1
    attrs = emu.store.profiles[pid]["attributes"]
    assert attrs["first_name"] == "Mia"  # untouched
    assert attrs["last_name"] == "New"
    assert attrs["properties"] == {"a": 1, "b": 3, "c": 4}
    assert attrs["location"] == {"city": "NYC", "zip": "02110"}


def test_bulk_import_matching_order(emu: EmulatorServer, http: requests.Session) -> None:
    http.post(emu.url + BULK, json=bulk_body([prof(phone_number="+15550001"), prof(external_id="x-9")]))
    by_phone = emu.store.find_profile(phone_number="+15550001")["id"]
    by_ext = emu.store.find_profile(external_id="x-9")["id"]
    http.post(
        emu.url + BULK,
        json=bulk_body(
            [
                prof(phone_number="+15550001", first_name="P"),
                prof(external_id="x-9", first_name="X"),
                {"type": "profile", "id": by_phone, "attributes": {"email": "p@example.com"}},
            ]
        ),
    )
    assert len(emu.store.profiles) == 2
    assert emu.store.profiles[by_phone]["attributes"] == {
        "phone_number": "+15550001",
        "first_name": "P",
        "email": "p@example.com",
    }
    assert emu.store.profiles[by_ext]["attributes"]["first_name"] == "X"
    assert emu.store.profile_by_email("p@example.com")["id"] == by_phone


@pytest.mark.parametrize(
    "body, pointer",
    [
        ({"data": {"type": "profile-bulk-import-jobs", "attributes": {"profiles": {"data": []}}}}, "/data/type"),
        ({"data": {"type": "profile-bulk-import-job", "attributes": {}}}, "/data/attributes/profiles"),
        (
            {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": {}}}}},
            "/data/attributes/profiles/data",
        ),
        (bulk_body([prof(email="ok@x.com"), prof(first_name="NoIds")]), "/data/attributes/profiles/data/1/attributes"),
        (bulk_body([prof(email="")]), "/data/attributes/profiles/data/0/attributes"),
        (bulk_body([{"type": "person", "attributes": {"email": "a@x.com"}}]), "/data/attributes/profiles/data/0/type"),
        (bulk_body([prof(email="a@x.com", first_name=None)]), "/data/attributes/profiles/data/0/attributes/first_name"),
        (
            bulk_body([prof(email="a@x.com"), prof(email="b@x.com", properties={"x": {"y": None}})]),
            "/data/attributes/profiles/data/1/attributes/properties/x/y",
        ),
        (
            bulk_body([prof(email="a@x.com", location={"city": None})]),
            "/data/attributes/profiles/data/0/attributes/location/city",
        ),
        (
            bulk_body([{"type": "profile", "id": None, "attributes": {"email": "a@x.com"}}]),
            "/data/attributes/profiles/data/0/id",
        ),
        (
            bulk_body([prof(email="a@x.com", favourite_colour="red")]),
            "/data/attributes/profiles/data/0/attributes/favourite_colour",
        ),
        (bulk_body([prof(email=5)]), "/data/attributes/profiles/data/0/attributes/email"),
        (bulk_body([prof(email="a@x.com", properties=[1])]), "/data/attributes/profiles/data/0/attributes/properties"),
    ],
)
def test_bulk_import_validation_pointers(emu: EmulatorServer, http: requests.Session, body: Any, pointer: str) -> None:
    r = http.post(emu.url + BULK, json=body)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["source"]["pointer"] == pointer
    assert emu.store.profiles == {} and emu.store.jobs == {}  # all-or-nothing


def test_bulk_import_null_detail_mentions_nulls(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.post(emu.url + BULK, json=bulk_body([prof(email="a@x.com", last_name=None)]))
    assert "null" in error_of(r)["detail"].lower()
    # The rejected body is still logged so tests can see what the client sent.
    assert emu.store.sent_profiles() == [prof(email="a@x.com", last_name=None)]


def test_bulk_import_over_10000_profiles_400(emu: EmulatorServer, http: requests.Session) -> None:
    profiles = [prof(email=f"u{i}@x.io") for i in range(10_001)]
    r = http.post(emu.url + BULK, json=bulk_body(profiles))
    assert r.status_code == 400
    assert error_of(r)["source"]["pointer"] == "/data/attributes/profiles/data"
    ok = http.post(emu.url + BULK, json=bulk_body(profiles[:10_000]))
    assert ok.status_code == 202 and len(emu.store.profiles) == 10_000


def test_bulk_import_body_over_5mb_413(emu: EmulatorServer, http: requests.Session) -> None:
    limit = 5 * 1024 * 1024
    base = json.dumps(bulk_body([prof(email="a@x.com", properties={"pad": ""})]))
    # Pad with spaces so the JSON stays valid; only the byte count matters.
    over = (base + " " * (limit + 1 - len(base))).encode()
    assert len(over) == limit + 1
    r = http.post(emu.url + BULK, data=over)
    assert r.status_code == 413
    assert error_of(r)["code"] == "request_too_large"
    exact = (base + " " * (limit - len(base))).encode()
    assert http.post(emu.url + BULK, data=exact).status_code == 202
    sizes = [rq.body_size for rq in emu.store.requests if rq.path == BULK]
    assert sizes == [limit + 1, limit]
    # keep-alive connection still usable after the drained 413
    assert http.get(emu.url + "/api/accounts").status_code == 200


def test_bulk_import_profile_over_100kb_400(emu: EmulatorServer, http: requests.Session) -> None:
    big = prof(email="big@x.com", properties={"blob": "x" * (100 * 1024)})
    small = prof(email="small@x.com")
    r = http.post(emu.url + BULK, json=bulk_body([small, big]))
    assert r.status_code == 400
    assert error_of(r)["source"]["pointer"] == "/data/attributes/profiles/data/1"


def test_bulk_import_unknown_list_404(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.post(emu.url + BULK, json=bulk_body([prof(email="a@x.com")], "NOLIST"))
    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "not_found"
    assert err["source"]["pointer"] == "/data/relationships/lists/data/0/id"
    assert emu.store.profiles == {}


def test_bulk_import_unknown_profile_id_without_identifiers_404(emu: EmulatorServer, http: requests.Session) -> None:
    body = bulk_body([{"type": "profile", "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "attributes": {"first_name": "x"}}])
    r = http.post(emu.url + BULK, json=body)
    assert r.status_code == 404
    assert error_of(r)["source"]["pointer"] == "/data/attributes/profiles/data/0/id"


def test_25000_profiles_in_three_jobs_is_fast(emu: EmulatorServer, http: requests.Session) -> None:
    """The connector's tests push 25k profiles through in 3 jobs; keep that quick."""
    lid = create_list(http, emu, "Big")
    start = time.monotonic()
    for lo, hi in ((0, 10_000), (10_000, 20_000), (20_000, 25_000)):
        profiles = [
            prof(
                email=f"user{i}@example.com",
                first_name=f"F{i}",
                properties={"score": i, "segment": "s" + str(i % 7)},
                location={"city": "Boston", "country": "US"},
            )
            for i in range(lo, hi)
        ]
        r = http.post(emu.url + BULK, json=bulk_body(profiles, lid))
        assert r.status_code == 202
    elapsed = time.monotonic() - start
    assert len(emu.store.profiles) == 25_000
    assert len(emu.store.list_members(lid)) == 25_000
    assert len(emu.store.jobs) == 3
    assert sum(j.profile_count for j in emu.store.jobs.values()) == 25_000
    assert elapsed < 30, elapsed
    # Page through the membership with the max page size.
    url: Optional[str] = f"{emu.url}/api/lists/{lid}/relationships/profiles?page[size]=100"
    count = 0
    pages = 0
    while url and pages < 5:
        body = http.get(url).json()
        count += len(body["data"])
        url = body["links"]["next"]
        pages += 1
    assert count == 500


# ------------------------------------------------------ list relationships
def test_list_profile_relationships_add_get_remove(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "Rel")
    http.post(emu.url + BULK, json=bulk_body([prof(email=f"r{i}@x.com") for i in range(45)]))
    ids = list(emu.store.profiles)
    url = f"{emu.url}/api/lists/{lid}/relationships/profiles"
    r = http.post(url, json={"data": [{"type": "profile", "id": pid} for pid in ids]})
    assert r.status_code == 204 and r.content == b""
    # idempotent re-add
    assert http.post(url, json={"data": [{"type": "profile", "id": ids[0]}]}).status_code == 204

    first = http.get(url)
    assert first.status_code == 200
    body = first.json()
    assert len(body["data"]) == 20  # default page size
    assert body["data"][0] == {"type": "profile", "id": ids[0]}
    got = [d["id"] for d in body["data"]]
    nxt = body["links"]["next"]
    while nxt:
        assert nxt.startswith(url)
        body = http.get(nxt).json()
        got += [d["id"] for d in body["data"]]
        nxt = body["links"]["next"]
    assert got == ids

    r = http.delete(url, json={"data": [{"type": "profile", "id": pid} for pid in ids[:40]]})
    assert r.status_code == 204
    assert emu.store.list_members(lid) == ids[40:]
    r = http.get(url, params={"page[size]": 100})
    assert [d["id"] for d in r.json()["data"]] == ids[40:] and r.json()["links"]["next"] is None


def test_list_relationship_filter_by_email(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "F")
    http.post(emu.url + BULK, json=bulk_body([prof(email="a@x.com"), prof(email="b@x.com")], lid))
    url = f"{emu.url}/api/lists/{lid}/relationships/profiles"
    r = http.get(url, params={"filter": 'equals(email,"b@x.com")'})
    assert [d["id"] for d in r.json()["data"]] == [emu.store.profile_by_email("b@x.com")["id"]]
    assert http.get(url, params={"filter": 'equals(name,"x")'}).status_code == 400


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_list_relationships_unknown_list_404(emu: EmulatorServer, http: requests.Session, method: str) -> None:
    kwargs: dict[str, Any] = {} if method == "GET" else {"json": {"data": [{"type": "profile", "id": "x"}]}}
    r = http.request(method, f"{emu.url}/api/lists/NOPE/relationships/profiles", **kwargs)
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_list_relationships_over_1000_is_400(emu: EmulatorServer, http: requests.Session, method: str) -> None:
    lid = create_list(http, emu, "Cap")
    url = f"{emu.url}/api/lists/{lid}/relationships/profiles"
    many = {"data": [{"type": "profile", "id": f"P{i}"} for i in range(1001)]}
    r = http.request(method, url, json=many)
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == "/data"
    ok = {"data": many["data"][:1000]}
    assert http.request(method, url, json=ok).status_code == 204


@pytest.mark.parametrize(
    "body, pointer",
    [
        ({"data": {"type": "profile", "id": "x"}}, "/data"),
        ({"data": [{"type": "list", "id": "x"}]}, "/data/0/type"),
        ({"data": [{"type": "profile"}]}, "/data/0/id"),
        ({"data": [{"type": "profile", "id": "ok"}, "nope"]}, "/data/1"),
    ],
)
def test_list_relationships_body_validation(
    emu: EmulatorServer, http: requests.Session, body: Any, pointer: str
) -> None:
    lid = create_list(http, emu, "V")
    r = http.post(f"{emu.url}/api/lists/{lid}/relationships/profiles", json=body)
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == pointer


def test_list_relationships_page_size_limits(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "P")
    url = f"{emu.url}/api/lists/{lid}/relationships/profiles"
    assert http.get(url, params={"page[size]": 100}).status_code == 200
    r = http.get(url, params={"page[size]": 101})
    assert r.status_code == 400 and error_of(r)["source"] == {"parameter": "page[size]"}


def test_adding_unknown_profile_id_records_membership(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "Ghosts")
    url = f"{emu.url}/api/lists/{lid}/relationships/profiles"
    assert http.post(url, json={"data": [{"type": "profile", "id": "01GHOST"}]}).status_code == 204
    assert emu.store.list_members(lid) == ["01GHOST"]
    assert "01GHOST" not in emu.store.profiles  # no placeholder profile is invented


# ------------------------------------------------------------------- faults
def test_fault_injection_via_http_429_then_success(emu: EmulatorServer, http: requests.Session) -> None:
    spec = {"method": "POST", "path": BULK, "status": 429, "count": 2, "retry_after": 1, "delay_seconds": 0}
    r = requests.post(emu.url + "/__emulator__/faults", json=spec)
    assert r.status_code == 201 and r.json()["fault"]["remaining"] == 2
    body = bulk_body([prof(email="f@x.com")])
    for _ in range(2):
        r = http.post(emu.url + BULK, json=body)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "1"
        assert error_of(r)["code"] == "throttled"
    assert emu.store.profiles == {}
    assert http.post(emu.url + BULK, json=body).status_code == 202
    assert emu.store.count_requests("POST", BULK) == 3
    assert emu.store.count_requests("POST", BULK, status=429) == 2
    # faulted requests still have their bodies logged
    assert len(emu.store.bulk_request_bodies()) == 3
    assert requests.get(emu.url + "/__emulator__/faults").json()["faults"] == []


def test_fault_matching_method_path_and_prefix(emu: EmulatorServer, http: requests.Session) -> None:
    emu.store.add_fault(path="/api/lists*", status=503, count=1)
    assert http.get(emu.url + "/api/accounts").status_code == 200  # other path unaffected
    r = http.get(emu.url + "/api/lists")
    assert r.status_code == 503 and "Retry-After" not in r.headers
    assert http.get(emu.url + "/api/lists").status_code == 200
    emu.store.add_fault(path="/api/lists", method="POST", status=500)
    assert http.get(emu.url + "/api/lists").status_code == 200
    assert (
        http.post(emu.url + "/api/lists", json={"data": {"type": "list", "attributes": {"name": "x"}}}).status_code
        == 500
    )


def test_delay_fault(emu: EmulatorServer, http: requests.Session) -> None:
    requests.post(emu.url + "/__emulator__/faults", json={"path": "/api/accounts", "delay_seconds": 0.3})
    start = time.monotonic()
    r = http.get(emu.url + "/api/accounts")
    assert r.status_code == 200 and time.monotonic() - start >= 0.3
    start = time.monotonic()
    http.get(emu.url + "/api/accounts")
    assert time.monotonic() - start < 0.3


def test_fault_endpoint_validation_and_clear(emu: EmulatorServer) -> None:
    assert requests.post(emu.url + "/__emulator__/faults", json={"status": 429}).status_code == 400
    assert requests.post(emu.url + "/__emulator__/faults", json={"path": "/api/x"}).status_code == 400
    assert (
        requests.post(emu.url + "/__emulator__/faults", json={"path": "/api/x", "status": 429, "bogus": 1}).status_code
        == 400
    )
    assert (
        requests.post(emu.url + "/__emulator__/faults", json={"path": "/api/x", "status": 429, "count": 5}).status_code
        == 201
    )
    assert requests.delete(emu.url + "/__emulator__/faults").status_code == 200
    assert emu.store.faults == []


# ------------------------------------------------------- state/reset/log
def test_state_reset_and_request_log(emu: EmulatorServer, http: requests.Session) -> None:
    lid = create_list(http, emu, "S")
    http.post(emu.url + BULK, json=bulk_body([prof(email="s@x.com")], lid))
    http.get(emu.url + "/api/lists", params={"filter": 'equals(name,"S")'})
    state = requests.get(emu.url + "/__emulator__/state").json()
    assert [p["attributes"]["email"] for p in state["profiles"]] == ["s@x.com"]
    assert state["lists"] == [{"id": lid, "name": "S", "created": state["lists"][0]["created"]}]
    assert state["memberships"] == {lid: [state["profiles"][0]["id"]]}
    job = state["jobs"][0]
    assert job["list_id"] == lid and job["profile_count"] == 1 and job["body_size"] > 0
    assert "request_body" not in job
    methods = [(r["method"], r["path"], r["status"]) for r in state["requests"]]
    assert methods == [("POST", "/api/lists", 201), ("POST", BULK, 202), ("GET", "/api/lists", 200)]
    assert "filter=" in state["requests"][2]["query"]
    assert state["request_counts"]["POST /api/lists"] == 1
    full = requests.get(emu.url + "/__emulator__/state?include_bodies=1").json()
    assert full["jobs"][0]["request_body"]["data"]["type"] == "profile-bulk-import-job"
    assert emu.store.count_requests(path_prefix="/api/lists") == 2

    assert requests.post(emu.url + "/__emulator__/reset").status_code == 200
    state = requests.get(emu.url + "/__emulator__/state").json()
    assert state["profiles"] == [] and state["lists"] == [] and state["requests"] == [] and state["jobs"] == []


def test_admin_requests_are_not_logged_or_authenticated(emu: EmulatorServer) -> None:
    assert requests.get(emu.url + "/__emulator__/health").json() == {"ok": True}
    requests.get(emu.url + "/__emulator__/state")
    assert emu.store.requests == []


def test_concurrent_requests_are_consistent(emu: EmulatorServer) -> None:
    """ThreadingHTTPServer + one lock: parallel writers must not lose updates."""
    errors: list[str] = []

    def worker(n: int) -> None:
        with requests.Session() as s:
            s.headers.update(emu.headers(KEY))
            for j in range(5):
                r = s.post(emu.url + BULK, json=bulk_body([prof(email=f"c{n}-{j}-{k}@x.com") for k in range(20)]))
                if r.status_code != 202:
                    errors.append(r.text)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(emu.store.profiles) == 8 * 5 * 20
    assert emu.store.count_requests("POST", BULK) == 40


# ------------------------------------------------------------- subprocess
def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result:
        raise AssertionError("emulator did not print its listening line in time")
    return result[0]


def test_cli_subprocess_listens_and_serves() -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integration_tests.klaviyo_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--api-key",
            KEY2,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = _read_line(proc, 15)
        prefix, url = line.strip().split(" ")
        assert prefix == "KLAVIYO_EMULATOR_LISTENING"
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        headers = {"Authorization": f"Klaviyo-API-Key {KEY2}", "revision": "2026-07-15"}
        r = requests.get(url + "/api/accounts", headers=headers, timeout=5)
        assert r.status_code == 200 and r.json()["data"][0]["type"] == "account"
        bad = requests.get(url + "/api/accounts", headers={"revision": "2026-07-15"}, timeout=5)
        assert bad.status_code == 401
    finally:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert out == ""  # exactly one stdout line, already consumed
    assert KEY not in err and KEY2 not in err


def test_cli_default_key() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "integration_tests.klaviyo_emulator", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _read_line(proc, 15).split()[1]
        headers = {"Authorization": f"Klaviyo-API-Key {DEFAULT_API_KEY}", "revision": "2026-07-15"}
        assert requests.get(url + "/api/accounts", headers=headers, timeout=5).status_code == 200
    finally:
        proc.send_signal(2)  # SIGINT also stops it cleanly
        proc.communicate(timeout=10)
    assert proc.returncode == 0


# ------------------------------------------------- throttled mode (opt-in)
# No test here asserts a duration: windows are either driven by a fake clock, or made so long
# (time_scale=0.001: a 1-second burst window lasts 1,000 real seconds) that none resets mid-test.
REL = "/api/lists/{}/relationships/profiles"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_default_mode_never_throttles_and_sends_no_rate_limit_headers(
    emu: EmulatorServer, http: requests.Session
) -> None:
    for _ in range(20):  # GET /api/accounts is 1/s burst in Klaviyo's spec
        r = http.get(emu.url + "/api/accounts")
        assert r.status_code == 200
        assert not [h for h in r.headers if h.lower().startswith("ratelimit")]
    state = requests.get(emu.url + "/__emulator__/state").json()
    assert state["throttled"] == 0 and state["rate_limits"] is None
    assert emu.store.rate_limiter is None


@pytest.mark.parametrize(
    "method, path, operation, burst, steady",
    [
        ("POST", BULK, "bulk_import_profiles", 10, 150),
        ("POST", BULK + "/", "bulk_import_profiles", 10, 150),
        ("GET", BULK + "/01ABC", "get_bulk_import_profiles_job", 10, 150),
        ("GET", "/api/lists", "get_lists", 75, 750),
        ("POST", "/api/lists", "create_list", 10, 150),
        ("GET", "/api/lists/AbC123", "get_list", 75, 750),
        ("GET", REL.format("AbC123"), "get_profile_ids_for_list", 75, 750),
        ("POST", REL.format("AbC123"), "add_profiles_to_list", 10, 150),
        ("DELETE", REL.format("AbC123"), "remove_profiles_from_list", 10, 150),
        ("GET", "/api/accounts", "get_accounts", 1, 15),
    ],
)
def test_rate_limit_table_follows_the_spec(method: str, path: str, operation: str, burst: int, steady: int) -> None:
    limit = limit_for(method, path)
    assert limit is not None
    assert (limit.operation, limit.burst, limit.steady) == (operation, burst, steady)


def test_rate_limit_table_ignores_unknown_routes() -> None:
    assert limit_for("GET", "/api/nowhere") is None
    assert limit_for("PATCH", "/api/lists/AbC123") is None


def test_burst_limit_answers_429_with_retry_after_and_changes_nothing() -> None:
    with EmulatorServer(api_keys=[KEY], rate_limits="klaviyo", time_scale=0.001) as emu:
        with requests.Session() as http:
            http.headers.update(emu.headers(KEY))
            for i in range(10):
                r = http.post(emu.url + BULK, json=bulk_body([prof(email=f"u{i}@example.com")]))
                assert r.status_code == 202, r.text
                assert r.headers["RateLimit-Limit"] == "150"
                assert r.headers["RateLimit-Remaining"] == str(149 - i)
                assert int(r.headers["RateLimit-Reset"]) >= 1
            r = http.post(emu.url + BULK, json=bulk_body([prof(email="late@example.com")]))
            assert r.status_code == 429
            assert error_of(r)["code"] == "throttled"
            assert int(r.headers["Retry-After"]) >= 1
            # Klaviyo sends no RateLimit-* headers on a 429, only Retry-After.
            assert not [h for h in r.headers if h.lower().startswith("ratelimit")]
            # Each operation has its own windows.
            assert http.get(emu.url + "/api/lists").status_code == 200
            state = requests.get(emu.url + "/__emulator__/state").json()
    assert len(emu.store.jobs) == 10 and emu.store.profile_by_email("late@example.com") is None
    assert state["throttled"] == 1
    assert state["rate_limits"]["throttled"] == {"bulk_import_profiles": 1}
    assert state["rate_limits"]["throttled_by_window"] == {"burst": 1, "steady": 0}
    assert state["rate_limits"]["accepted"] == {"bulk_import_profiles": 10, "get_lists": 1}
    assert [r["status"] for r in state["requests"]].count(429) == 1


def test_steady_window_fills_then_resets_on_the_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    path = REL.format("L1")
    for i in range(150):
        if i and i % 10 == 0:
            clock.now += 1.0  # a new burst window every 10 requests
        assert limiter.acquire("POST", path).allowed
    assert clock.now == 14.0
    refused = limiter.acquire("POST", path)
    assert not refused.allowed and refused.window == "steady"
    assert refused.headers == {"Retry-After": "46"}  # until the minute ends
    assert limiter.acquire("DELETE", path).allowed  # removals are another operation
    clock.now = 60.0
    again = limiter.acquire("POST", path)
    assert again.allowed and again.headers["RateLimit-Remaining"] == "149"
    assert limiter.snapshot()["throttled"] == {"add_profiles_to_list": 1}


def test_burst_window_refuses_the_eleventh_request_in_a_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(10):
        assert limiter.acquire("POST", BULK).allowed
    refused = limiter.acquire("POST", BULK)
    assert not refused.allowed and refused.window == "burst" and refused.headers == {"Retry-After": "1"}
    clock.now = 1.0
    assert limiter.acquire("POST", BULK).allowed


def test_time_scale_shortens_windows_and_latency_and_retry_after_stays_in_real_seconds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(time_scale=60, latency_ms=250, clock=clock)
    assert limiter.latency_seconds == pytest.approx(0.25 / 60)
    for i in range(150):
        clock.now = (i // 10 + 0.5) / 60  # 10 requests in each simulated second (1/60 real s)
        assert limiter.acquire("POST", BULK).allowed
    refused = limiter.acquire("POST", BULK)
    # 45.5 simulated seconds are 0.76 real seconds: Retry-After is whole real seconds, at least 1.
    assert not refused.allowed and refused.window == "steady" and refused.headers == {"Retry-After": "1"}
    clock.now = 60.5 / 60  # the next simulated minute
    assert limiter.acquire("POST", BULK).allowed


def test_a_request_arriving_in_an_older_window_counts_in_the_current_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    clock.now = 1.5
    for _ in range(10):
        assert limiter.acquire("POST", BULK).allowed
    assert not limiter.acquire("POST", BULK, at=0.9).allowed  # window 1 is full; it never goes back to 0


def test_throttled_counts_in_state_and_stats_and_reset_starts_a_new_epoch() -> None:
    with EmulatorServer(api_keys=[KEY], rate_limits="klaviyo", time_scale=0.001) as emu:
        headers = emu.headers(KEY)
        statuses = [requests.get(emu.url + "/api/accounts", headers=headers).status_code for _ in range(3)]
        assert statuses == [200, 429, 429]
        assert requests.get(emu.url + "/__emulator__/state").json()["throttled"] == 2
        stats = requests.get(emu.url + "/__emulator__/stats").json()
        assert stats["throttled"] == 2 and stats["status_counts"] == {"200": 1, "429": 2}
        assert stats["rate_limits"]["limits"]["get_accounts"] == {
            "method": "GET",
            "path": "/api/accounts",
            "burst_per_s": 1,
            "steady_per_m": 15,
        }
        requests.post(emu.url + "/__emulator__/reset").raise_for_status()
        assert requests.get(emu.url + "/__emulator__/stats").json()["throttled"] == 0
        assert requests.get(emu.url + "/api/accounts", headers=headers).status_code == 200


def test_latency_does_not_serialize_concurrent_requests() -> None:
    with EmulatorServer(api_keys=[KEY], latency_ms=300) as emu:
        start = threading.Barrier(5)
        statuses: list[int] = []

        def call() -> None:
            start.wait()
            statuses.append(requests.get(emu.url + "/api/accounts", headers=emu.headers(KEY)).status_code)

        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = requests.get(emu.url + "/__emulator__/stats").json()
    assert statuses == [200] * 5
    assert stats["max_in_flight"] > 1  # held answers wait in their own threads
    assert stats["throttled"] == 0 and stats["rate_limits"]["enabled"] is False


def test_stats_timeline_counts_items_of_accepted_requests(emu: EmulatorServer, http: requests.Session) -> None:
    list_id = create_list(http, emu, "Timeline")
    assert http.post(emu.url + BULK, json=bulk_body([prof(email=f"t{i}@example.com") for i in range(3)])).ok
    ids = [{"type": "profile", "id": f"P{i}"} for i in range(2)]
    assert http.post(emu.url + REL.format(list_id), json={"data": ids}).status_code == 204
    assert http.post(emu.url + BULK, json=bulk_body([])).status_code == 400
    stats = requests.get(emu.url + "/__emulator__/stats", params={"timeline": "1"}).json()
    assert [(row[1], row[3], row[4]) for row in stats["timeline"]] == [
        ("POST", 201, None),
        ("POST", 202, 3),
        ("POST", 204, 2),
        ("POST", 400, None),
    ]
    assert stats["profiles"] == 3 and stats["jobs"] == 1 and stats["memberships"] == {list_id: 2}
    assert stats["max_in_flight"] == 1


def test_lean_mode_keeps_identifiers_and_drops_bodies() -> None:
    with EmulatorServer(api_keys=[KEY], lean=True) as emu:
        body = bulk_body([prof(email="lean@example.com", first_name="Ada", properties={"plan": "pro"})])
        assert requests.post(emu.url + BULK, json=body, headers=emu.headers(KEY)).status_code == 202
        bad = bulk_body([prof(email="x@example.com", first_name=None)])
        assert requests.post(emu.url + BULK, json=bad, headers=emu.headers(KEY)).status_code == 400
    profile = emu.store.profile_by_email("lean@example.com")
    assert profile is not None and profile["attributes"] == {"email": "lean@example.com"}
    assert emu.store.bulk_request_bodies() == []
    assert [job.request_body for job in emu.store.jobs.values()] == [None]


def test_cli_throttled_flags() -> None:
    args = [sys.executable, "-m", "integration_tests.klaviyo_emulator", "--port", "0", "--api-key", KEY]
    args += ["--rate-limits", "klaviyo", "--latency-ms", "1", "--time-scale", "0.001", "--lean"]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = _read_line(proc, 15).split()[1]
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": "2026-07-15"}
        first = requests.get(url + "/api/accounts", headers=headers, timeout=5)
        second = requests.get(url + "/api/accounts", headers=headers, timeout=5)
        assert (first.status_code, second.status_code) == (200, 429)
        assert first.headers["RateLimit-Limit"] == "15" and int(second.headers["Retry-After"]) >= 1
        stats = requests.get(url + "/__emulator__/stats", timeout=5).json()
        assert stats["throttled"] == 1 and stats["rate_limits"]["latency_ms"] == 1.0
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize("flags", [["--time-scale", "0"], ["--latency-ms", "-1"], ["--rate-limits", "fast"]])
def test_cli_refuses_bad_throttling_flags(flags: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "integration_tests.klaviyo_emulator", "--port", "0", *flags],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and done.stdout == ""
