"""Emulator tests: POST /api/data-privacy-deletion-jobs (request_profile_deletion)."""

from __future__ import annotations

import time
from typing import Any, Iterator, Optional

import pytest
import requests

from integration_tests.klaviyo_emulator import EmulatorServer, limit_for

KEY = "pk_test_privacy_key"
DEL = "/api/data-privacy-deletion-jobs"
BULK = "/api/profile-bulk-import-jobs"
EVENTS = "/api/event-bulk-create-jobs"
BASE = "/data/attributes/profile/data"


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
    body = r.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    return body["errors"][0]


def deletion(profile_id: Optional[str] = None, **attrs: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "profile", "attributes": attrs}
    if profile_id is not None:
        data["id"] = profile_id
    return {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": data}}}}


def setup_profile(http: requests.Session, emu: EmulatorServer, email: str, phone: str) -> tuple[str, str]:
    r = http.post(emu.url + "/api/lists", json={"data": {"type": "list", "attributes": {"name": "L"}}})
    lid = r.json()["data"]["id"]
    body = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {
                "profiles": {"data": [{"type": "profile", "attributes": {"email": email, "phone_number": phone}}]}
            },
            "relationships": {"lists": {"data": [{"type": "list", "id": lid}]}},
        }
    }
    assert http.post(emu.url + BULK, json=body).status_code == 202
    event = {
        "type": "event-bulk-create",
        "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
            "events": {
                "data": [
                    {
                        "type": "event",
                        "attributes": {
                            "properties": {},
                            "metric": {"data": {"type": "metric", "attributes": {"name": "M"}}},
                        },
                    }
                ]
            },
        },
    }
    ev = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [event]}}}}
    assert http.post(emu.url + EVENTS, json=ev).status_code == 202
    sub = {
        "data": {
            "type": "profile-subscription-bulk-create-job",
            "attributes": {
                "profiles": {
                    "data": [
                        {
                            "type": "profile",
                            "attributes": {
                                "email": email,
                                "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}},
                            },
                        }
                    ]
                }
            },
        }
    }
    assert http.post(emu.url + "/api/profile-subscription-bulk-create-jobs", json=sub).status_code == 202
    return emu.store.profile_by_email(email)["id"], lid


@pytest.mark.parametrize("by", ["email", "phone_number", "id"])
def test_deletion_removes_the_profile_everywhere(emu: EmulatorServer, http: requests.Session, by: str) -> None:
    pid, lid = setup_profile(http, emu, "gone@x.com", "+15005550100")
    keep, _ = emu.store.upsert_profile({"email": "stay@x.com"})
    emu.store.add_members(lid, [keep])
    req = {
        "email": deletion(email="gone@x.com"),
        "phone_number": deletion(phone_number="+15005550100"),
        "id": deletion(pid),
    }[by]
    r = http.post(emu.url + DEL, json=req)
    assert r.status_code == 202 and r.content == b""
    assert pid not in emu.store.profiles and emu.store.profile_by_email("gone@x.com") is None
    assert emu.store.find_profile(phone_number="+15005550100") is None
    assert emu.store.list_members(lid) == [keep]
    assert emu.store.events() == [] and emu.store.consent_of(pid)["channels"] == {}
    assert [p["id"] for p in http.get(emu.url + "/api/profiles").json()["data"]] == [keep]
    assert [p["id"] for p in http.get(f"{emu.url}/api/lists/{lid}/profiles").json()["data"]] == [keep]
    rel = http.get(f"{emu.url}/api/lists/{lid}/relationships/profiles").json()["data"]
    assert [p["id"] for p in rel] == [keep]
    state = requests.get(emu.url + "/__emulator__/state").json()
    (record,) = state["deletions"]
    value = {"email": "gone@x.com", "phone_number": "+15005550100", "id": pid}[by]
    assert record["identifier"] == {by: value} and record["profile_ids"] == [pid]
    assert record["deleted_events"] == 1 and record["status"] == "complete"
    assert pid not in state["consent"]
    # the same email imported again is a new profile
    body = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": [{"type": "profile", "attributes": {"email": "gone@x.com"}}]}},
        }
    }
    http.post(emu.url + BULK, json=body)
    assert emu.store.profile_by_email("gone@x.com")["id"] != pid


def test_deleting_an_unknown_identifier_is_accepted_and_recorded(emu: EmulatorServer, http: requests.Session) -> None:
    assert http.post(emu.url + DEL, json=deletion(email="nobody@x.com")).status_code == 202
    assert emu.store.deletions[0]["profile_ids"] == []


def test_deleting_a_membership_only_id(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.post(emu.url + "/api/lists", json={"data": {"type": "list", "attributes": {"name": "G"}}})
    lid = r.json()["data"]["id"]
    http.post(
        f"{emu.url}/api/lists/{lid}/relationships/profiles", json={"data": [{"type": "profile", "id": "01GHOST"}]}
    )
    assert http.post(emu.url + DEL, json=deletion("01GHOST")).status_code == 202
    assert emu.store.list_members(lid) == [] and emu.store.deletions[0]["profile_ids"] == ["01GHOST"]


@pytest.mark.parametrize(
    "req, pointer",
    [
        (deletion("01ABC", email="a@x.com"), BASE),  # "If multiple identifiers are provided, we will return an error."
        (deletion(email="a@x.com", phone_number="+15005550006"), BASE),
        (deletion("01ABC", email="a@x.com", phone_number="+15005550006"), BASE),
        (deletion(), BASE),  # none
        (deletion(email=None), BASE),
        (deletion(email=""), f"{BASE}/attributes/email"),
        (deletion(email=5), f"{BASE}/attributes/email"),
        (deletion(""), f"{BASE}/id"),
        (deletion(email="a@x.com", external_id="E1"), f"{BASE}/attributes/external_id"),
        (
            {
                "data": {
                    "type": "data-privacy-deletion-jobs",
                    "attributes": {"profile": {"data": {"type": "profile", "attributes": {"email": "a@x.com"}}}},
                }
            },
            "/data/type",
        ),
        ({"data": {"type": "data-privacy-deletion-job", "attributes": {}}}, "/data/attributes/profile"),
        (
            {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": {"type": "profile"}}}}},
            f"{BASE}/attributes",
        ),
        (
            {
                "data": {
                    "type": "data-privacy-deletion-job",
                    "attributes": {"profile": {"data": {"type": "person", "attributes": {"email": "a@x.com"}}}},
                }
            },
            f"{BASE}/type",
        ),
        ({"data": []}, "/data"),
    ],
)
def test_deletion_validation(emu: EmulatorServer, http: requests.Session, req: Any, pointer: str) -> None:
    emu.store.upsert_profile({"email": "a@x.com"})
    r = http.post(emu.url + DEL, json=req)
    assert r.status_code == 400, r.text
    assert error_of(r)["source"]["pointer"] == pointer
    assert emu.store.profile_by_email("a@x.com") is not None and emu.store.deletions == []


def test_deletion_rate_limit_3_per_second() -> None:
    limit = limit_for("POST", DEL)
    assert limit is not None and (limit.operation, limit.burst, limit.steady) == ("request_profile_deletion", 3, 60)
    with EmulatorServer(api_keys=[KEY], rate_limits="klaviyo", time_scale=0.001) as emu, requests.Session() as http:
        http.headers.update(emu.headers(KEY))
        for i in range(3):
            assert http.post(emu.url + DEL, json=deletion(email=f"{i}@x.com")).status_code == 202
        r = http.post(emu.url + DEL, json=deletion(email="3@x.com"))
        assert r.status_code == 429 and "Retry-After" in r.headers and len(emu.store.deletions) == 3


def test_deletion_faults_log_and_auth(emu: EmulatorServer, http: requests.Session) -> None:
    emu.store.upsert_profile({"email": "a@x.com"})
    emu.store.add_fault(path=DEL, status=503)
    assert http.post(emu.url + DEL, json=deletion(email="a@x.com")).status_code == 503
    assert emu.store.profile_by_email("a@x.com") is not None
    assert http.post(emu.url + DEL, json=deletion(email="a@x.com")).status_code == 202
    assert emu.store.request_bodies(DEL)[0] == deletion(email="a@x.com")
    assert requests.post(emu.url + DEL, json=deletion(email="a@x.com")).status_code == 401
    assert http.get(emu.url + DEL).status_code == 405


def test_a_deferred_import_of_a_deleted_profile_id_is_counted_failed() -> None:
    with EmulatorServer(api_keys=[KEY], job_processing_seconds=0.3) as emu, requests.Session() as http:
        http.headers.update(emu.headers(KEY))
        pid, _ = emu.store.upsert_profile({"email": "x@x.com"})
        body = {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {
                        "data": [
                            {"type": "profile", "id": pid, "attributes": {"first_name": "X"}},
                            {"type": "profile", "attributes": {"email": "y@x.com"}},
                        ]
                    }
                },
            }
        }
        job_id = http.post(emu.url + BULK, json=body).json()["data"]["id"]
        assert http.post(emu.url + DEL, json=deletion(pid)).status_code == 202
        time.sleep(0.35)
        attrs = http.get(f"{emu.url}{BULK}/{job_id}").json()["data"]["attributes"]
        assert attrs["status"] == "complete" and attrs["failed_count"] == 1 and attrs["completed_count"] == 1
        assert pid not in emu.store.profiles and emu.store.profile_by_email("y@x.com") is not None
