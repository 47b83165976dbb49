"""Emulator tests: POST /api/event-bulk-create-jobs (bulk_create_events)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Optional

import pytest
import requests

from integration_tests.klaviyo_emulator import EmulatorServer, limit_for

KEY = "pk_test_events_key"
EVENTS = "/api/event-bulk-create-jobs"
ROOT = "/data/attributes/events-bulk-create/data"


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


def event(metric: str = "Placed Order", **attrs: Any) -> dict[str, Any]:
    attrs.setdefault("properties", {})
    attrs["metric"] = {"data": {"type": "metric", "attributes": {"name": metric}}}
    return {"type": "event", "attributes": attrs}


def entry(
    profile_attrs: dict[str, Any], events: list[dict[str, Any]], profile_id: Optional[str] = None
) -> dict[str, Any]:
    profile: dict[str, Any] = {"type": "profile", "attributes": profile_attrs}
    if profile_id:
        profile["id"] = profile_id
    return {
        "type": "event-bulk-create",
        "attributes": {"profile": {"data": profile}, "events": {"data": events}},
    }


def body(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": list(entries)}}}}


def one(**event_attrs: Any) -> dict[str, Any]:
    return body(entry({"email": "a@x.com"}, [event(**event_attrs)]))


# -------------------------------------------------------------- happy path
def test_valid_request_202_no_body_stores_events_profiles_and_metrics(
    emu: EmulatorServer, http: requests.Session
) -> None:
    req = body(
        entry(
            {"email": "a@x.com", "first_name": "Ann", "properties": {"tier": "gold"}, "location": {"city": "Oslo"}},
            [
                event(
                    "Placed Order",
                    properties={"OrderId": "o-1", "Items": [{"sku": "A"}], "nothing": None},
                    time="2024-03-01T12:00:00.750Z",
                    value=9.99,
                    value_currency="USD",
                    unique_id="o-1",
                ),
                event("Viewed Product", properties={}, time="2024-03-01T12:00:01+02:00"),
            ],
        ),
        entry({"phone_number": "+15550001111"}, [event("Placed Order", unique_id="o-2", backfill=True)]),
    )
    r = http.post(emu.url + EVENTS, json=req)
    assert r.status_code == 202 and r.content == b""
    events = emu.store.events()
    assert len(events) == 3
    ann = emu.store.profile_by_email("a@x.com")
    assert ann["attributes"]["first_name"] == "Ann" and ann["attributes"]["properties"] == {"tier": "gold"}
    first = events[0]
    assert first["metric"] == "Placed Order" and first["profile_id"] == ann["id"]
    assert first["properties"] == {"OrderId": "o-1", "Items": [{"sku": "A"}], "nothing": None}
    assert first["time"] == "2024-03-01T12:00:00+00:00"  # truncated to the second
    assert (first["value"], first["value_currency"], first["unique_id"]) == (9.99, "USD", "o-1")
    assert events[1]["time"] == "2024-03-01T10:00:01+00:00" and events[1]["unique_id"] is None
    assert events[2]["backfill"] is True and events[0]["backfill"] is False
    assert emu.store.find_profile(phone_number="+15550001111")["id"] == events[2]["profile_id"]
    assert [e["metric"] for e in emu.store.events(metric="Placed Order")] == ["Placed Order", "Placed Order"]
    assert emu.store.metric_names() == ["Placed Order", "Viewed Product"]
    state = requests.get(emu.url + "/__emulator__/state").json()
    assert len(state["events"]) == 3 and [m["name"] for m in state["metrics"]] == ["Placed Order", "Viewed Product"]
    assert state["event_jobs"][0]["event_count"] == 3 and state["event_jobs"][0]["stored_count"] == 3
    assert emu.store.request_bodies(EVENTS) == [req]
    # the profile's last_event_date is the latest event time
    attrs = http.get(emu.url + "/api/profiles", params={"filter": 'equals(email,"a@x.com")'}).json()["data"][0]
    assert attrs["attributes"]["last_event_date"] == "2024-03-01T12:00:00+00:00"
    assert requests.post(emu.url + "/__emulator__/reset").status_code == 200
    assert emu.store.events() == [] and emu.store.metric_names() == []


def test_events_update_existing_profiles_and_match_every_identifier(
    emu: EmulatorServer, http: requests.Session
) -> None:
    pid, _ = emu.store.upsert_profile({"email": "known@x.com", "first_name": "Old"})
    req = body(
        entry({"email": "known@x.com", "last_name": "New"}, [event(unique_id="1")]),
        entry({"anonymous_id": "anon-1"}, [event(unique_id="2")]),
        entry({"anonymous_id": "anon-1", "_kx": "kx-1"}, [event(unique_id="3")]),
        entry({"_kx": "kx-1"}, [event(unique_id="4")]),
        entry({}, [event(unique_id="5")], profile_id=pid),
    )
    assert http.post(emu.url + EVENTS, json=req).status_code == 202
    attrs = emu.store.profiles[pid]["attributes"]
    assert attrs["first_name"] == "Old" and attrs["last_name"] == "New"
    owners = [e["profile_id"] for e in emu.store.events()]
    assert owners[0] == owners[4] == pid
    assert owners[1] == owners[2] == owners[3] != pid
    assert len(emu.store.profiles) == 2


# ------------------------------------------------------------------- dedupe
def test_same_unique_id_in_a_later_request_is_not_stored_twice(emu: EmulatorServer, http: requests.Session) -> None:
    assert http.post(emu.url + EVENTS, json=one(unique_id="u1", properties={"v": 1})).status_code == 202
    r = http.post(emu.url + EVENTS, json=one(unique_id="u1", properties={"v": 2}))
    assert r.status_code == 202
    events = emu.store.events()
    assert len(events) == 1 and events[0]["properties"] == {"v": 1}  # the first one is kept
    assert emu.store.event_jobs[-1].duplicate_count == 1 and emu.store.event_jobs[-1].stored_count == 0
    # a different metric, or a different profile, is a different event
    http.post(emu.url + EVENTS, json=body(entry({"email": "a@x.com"}, [event("Other", unique_id="u1")])))
    http.post(emu.url + EVENTS, json=body(entry({"email": "b@x.com"}, [event(unique_id="u1")])))
    assert len(emu.store.events()) == 3


def test_without_unique_id_one_event_per_profile_metric_and_second(emu: EmulatorServer, http: requests.Session) -> None:
    http.post(emu.url + EVENTS, json=one(time="2024-05-05T10:00:00.100Z"))
    http.post(emu.url + EVENTS, json=one(time="2024-05-05T10:00:00.900Z"))  # same second: dropped
    http.post(emu.url + EVENTS, json=one(time="2024-05-05T10:00:01Z"))  # next second: kept
    assert [e["time"] for e in emu.store.events()] == ["2024-05-05T10:00:00+00:00", "2024-05-05T10:00:01+00:00"]


def test_repeated_unique_id_in_one_request_fails_the_whole_request(emu: EmulatorServer, http: requests.Session) -> None:
    req = body(
        entry({"email": "a@x.com"}, [event(unique_id="dup"), event(unique_id="ok")]),
        entry({"email": "b@x.com"}, [event(unique_id="dup")]),  # another profile: fine
        entry({"email": "a@x.com", "first_name": "Changed"}, [event(unique_id="x"), event(unique_id="dup")]),
    )
    r = http.post(emu.url + EVENTS, json=req)
    assert r.status_code == 400
    err = error_of(r)
    assert err["source"]["pointer"] == f"{ROOT}/2/attributes/events/data/1/attributes/unique_id"
    assert "dup" in err["detail"]
    assert emu.store.events() == [] and emu.store.profiles == {} and emu.store.metric_names() == []
    assert emu.store.count_requests("POST", EVENTS, status=400) == 1


def test_repeated_unique_id_for_an_existing_profile_named_two_ways(emu: EmulatorServer, http: requests.Session) -> None:
    pid, _ = emu.store.upsert_profile({"email": "a@x.com", "external_id": "E1"})
    req = body(
        entry({"email": "a@x.com"}, [event(unique_id="dup")]),
        entry({"external_id": "E1"}, [event(unique_id="dup")]),
    )
    r = http.post(emu.url + EVENTS, json=req)
    assert r.status_code == 400
    assert error_of(r)["source"]["pointer"] == f"{ROOT}/1/attributes/events/data/0/attributes/unique_id"
    # a new profile named by the same phone twice, too
    req = body(
        entry({"phone_number": "+15550000001", "email": "n@x.com"}, [event(unique_id="d2")]),
        entry({"phone_number": "+15550000001"}, [event(unique_id="d2")]),
    )
    assert http.post(emu.url + EVENTS, json=req).status_code == 400
    assert list(emu.store.profiles) == [pid]


def test_same_second_without_unique_id_in_one_request_fails(emu: EmulatorServer, http: requests.Session) -> None:
    req = body(entry({"email": "a@x.com"}, [event(time="2024-01-01T00:00:00Z"), event(time="2024-01-01T00:00:00.5Z")]))
    r = http.post(emu.url + EVENTS, json=req)
    assert r.status_code == 400
    assert error_of(r)["source"]["pointer"] == f"{ROOT}/0/attributes/events/data/1/attributes/time"
    req = body(entry({"email": "a@x.com"}, [event(), event()]))  # both default to the request time
    r = http.post(emu.url + EVENTS, json=req)
    assert r.status_code == 400
    assert error_of(r)["source"]["pointer"] == f"{ROOT}/0/attributes/events/data/1/attributes"
    ok = body(entry({"email": "a@x.com"}, [event(), event("Other metric")]))
    assert http.post(emu.url + EVENTS, json=ok).status_code == 202


# ------------------------------------------------------------------- limits
def test_up_to_1000_events_per_request(emu: EmulatorServer, http: requests.Session) -> None:
    events = [event(unique_id=str(i)) for i in range(1000)]
    req = body(entry({"email": "a@x.com"}, events[:600]), entry({"email": "b@x.com"}, events[600:]))
    assert http.post(emu.url + EVENTS, json=req).status_code == 202
    assert len(emu.store.events()) == 1000
    req = body(entry({"email": "a@x.com"}, events[:600]), entry({"email": "b@x.com"}, events[600:] + [event()]))
    r = http.post(emu.url + EVENTS, json=req)
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == ROOT
    assert "1,000" in error_of(r)["detail"]


def test_event_properties_limit_400(emu: EmulatorServer, http: requests.Session) -> None:
    props = {f"p{i}": i for i in range(400)}
    assert http.post(emu.url + EVENTS, json=one(properties=props)).status_code == 202
    props["one_more"] = 1
    r = http.post(emu.url + EVENTS, json=one(properties=props, unique_id="x"))
    assert r.status_code == 400
    assert error_of(r)["source"]["pointer"] == f"{ROOT}/0/attributes/events/data/0/attributes/properties"


@pytest.mark.parametrize(
    "where, pointer",
    [
        ("event_value", f"{ROOT}/0/attributes/events/data/0/attributes/properties/big"),
        ("event_key", f"{ROOT}/0/attributes/events/data/0/attributes/properties/" + "k" * 102_401),
        ("profile", f"{ROOT}/0/attributes/profile/data/attributes/properties/bio"),
        ("nested", f"{ROOT}/0/attributes/events/data/0/attributes/properties/items/1/name"),
    ],
)
def test_a_single_string_cannot_exceed_100kb(
    emu: EmulatorServer, http: requests.Session, where: str, pointer: str
) -> None:
    big = "x" * 102_401
    props: dict[str, Any] = {}
    profile: dict[str, Any] = {"email": "a@x.com"}
    if where == "event_value":
        props["big"] = big
    elif where == "event_key":
        props["k" * 102_401] = 1
    elif where == "profile":
        profile["properties"] = {"bio": big}
    else:
        props["items"] = [{"name": "ok"}, {"name": big}]
    r = http.post(emu.url + EVENTS, json=body(entry(profile, [event(properties=props)])))
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == pointer
    ok = {"fits": "é" * 51_200}  # 102,400 bytes of UTF-8
    assert (
        http.post(emu.url + EVENTS, json=body(entry({"email": "a@x.com"}, [event(properties=ok)]))).status_code == 202
    )


def test_body_over_5mb_is_413(emu: EmulatorServer, http: requests.Session) -> None:
    chunk = "y" * 100_000
    events = [event(unique_id=str(i), properties={"a": chunk}) for i in range(53)]
    r = http.post(emu.url + EVENTS, json=body(entry({"email": "a@x.com"}, events)))
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"
    assert emu.store.events() == []


@pytest.mark.parametrize(
    "mutate, pointer",
    [
        (lambda e: e.update(time="1990-12-31T23:59:59Z"), "/attributes/time"),
        (lambda e: e.update(time="not a time"), "/attributes/time"),
        (lambda e: e.update(time=1700000000), "/attributes/time"),
        (lambda e: e.update(time=(datetime.now(timezone.utc) + timedelta(days=366)).isoformat()), "/attributes/time"),
        (lambda e: e.update(value="9.99"), "/attributes/value"),
        (lambda e: e.update(value=True), "/attributes/value"),
        (lambda e: e.update(value_currency="usd"), "/attributes/value_currency"),
        (lambda e: e.update(value_currency="EURO"), "/attributes/value_currency"),
        (lambda e: e.update(unique_id=5), "/attributes/unique_id"),
        (lambda e: e.update(unique_id=""), "/attributes/unique_id"),
        (lambda e: e.update(backfill="yes"), "/attributes/backfill"),
        (lambda e: e.update(color="red"), "/attributes/color"),
        (lambda e: e.pop("properties"), "/attributes/properties"),
        (lambda e: e.update(properties=[1]), "/attributes/properties"),
        (lambda e: e.pop("metric"), "/attributes/metric"),
        (
            lambda e: e.update(metric={"data": {"type": "metrics", "attributes": {"name": "x"}}}),
            "/attributes/metric/data/type",
        ),
        (
            lambda e: e.update(metric={"data": {"type": "metric", "attributes": {}}}),
            "/attributes/metric/data/attributes/name",
        ),
        (
            lambda e: e.update(metric={"data": {"type": "metric", "attributes": {"name": " "}}}),
            "/attributes/metric/data/attributes/name",
        ),
        (
            lambda e: e.update(metric={"data": {"type": "metric", "attributes": {"name": "m" * 128}}}),
            "/attributes/metric/data/attributes/name",
        ),
        (
            lambda e: e.update(metric={"data": {"type": "metric", "attributes": {"name": "m", "id": "1"}}}),
            "/attributes/metric/data/attributes/id",
        ),
        (
            lambda e: e.update(metric={"data": {"type": "metric", "attributes": {"name": "m", "service": 1}}}),
            "/attributes/metric/data/attributes/service",
        ),
    ],
)
def test_event_attribute_validation(emu: EmulatorServer, http: requests.Session, mutate: Any, pointer: str) -> None:
    ev = event()
    mutate(ev["attributes"])
    r = http.post(emu.url + EVENTS, json=body(entry({"email": "a@x.com"}, [event(unique_id="first"), ev])))
    assert r.status_code == 400, r.text
    assert error_of(r)["source"]["pointer"] == f"{ROOT}/0/attributes/events/data/1" + pointer
    assert emu.store.events() == [] and emu.store.profiles == {}


def test_accepted_edge_values(emu: EmulatorServer, http: requests.Session) -> None:
    evs = [
        event("m" * 127, unique_id="a"),
        event(unique_id="b", time="1991-01-01T00:00:00Z", value=0, value_currency="EUR"),
        event(unique_id="c", time=(datetime.now(timezone.utc) + timedelta(days=300)).isoformat()),
        event(unique_id="d", time="2024-01-01T00:00:00", value=None, value_currency=None, backfill=None),
        event(unique_id="e", properties={"$extra": {"html": "<b>x</b>"}}),
    ]
    evs[0]["attributes"]["metric"]["data"]["attributes"]["service"] = "api"
    assert http.post(emu.url + EVENTS, json=body(entry({"email": "a@x.com"}, evs))).status_code == 202
    assert len(emu.store.events()) == 5
    assert emu.store.events()[3]["time"] == "2024-01-01T00:00:00+00:00"  # naive times are UTC


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    keys = path.split("/")
    target: Any = doc
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    if value is _DELETE:
        del target[keys[-1]]
    elif isinstance(target, list):
        target[int(keys[-1])] = value
    else:
        target[keys[-1]] = value
    return doc


_DELETE = object()
_BASE = body(entry({"email": "a@x.com"}, [event(unique_id="1")]))
_E = "data/attributes/events-bulk-create/data/0"


@pytest.mark.parametrize(
    "path, value, pointer",
    [
        ("data", [], "/data"),
        ("data/type", "event-bulk-create-jobs", "/data/type"),
        ("data/attributes", _DELETE, "/data/attributes"),
        ("data/attributes/events-bulk-create", _DELETE, "/data/attributes/events-bulk-create"),
        ("data/attributes/events-bulk-create/data", [], ROOT),
        ("data/attributes/events-bulk-create/data", {}, ROOT),
        ("data/attributes/extra", 1, "/data/attributes/extra"),
        ("data/relationships", {}, "/data/relationships"),
        (f"{_E}/type", "event", f"{ROOT}/0/type"),
        (f"{_E}/attributes/profile", _DELETE, f"{ROOT}/0/attributes/profile"),
        (f"{_E}/attributes/profile/data", _DELETE, f"{ROOT}/0/attributes/profile/data"),
        (f"{_E}/attributes/profile/data/type", "profiles", f"{ROOT}/0/attributes/profile/data/type"),
        (
            f"{_E}/attributes/profile/data/attributes",
            {"first_name": "x"},
            f"{ROOT}/0/attributes/profile/data/attributes",
        ),
        (f"{_E}/attributes/profile/data/attributes/email", None, f"{ROOT}/0/attributes/profile/data/attributes/email"),
        (f"{_E}/attributes/profile/data/attributes/email", 5, f"{ROOT}/0/attributes/profile/data/attributes/email"),
        (
            f"{_E}/attributes/profile/data/attributes/favourite",
            "x",
            f"{ROOT}/0/attributes/profile/data/attributes/favourite",
        ),
        (
            f"{_E}/attributes/profile/data/attributes/location",
            {"planet": "x"},
            f"{ROOT}/0/attributes/profile/data/attributes/location/planet",
        ),
        (
            f"{_E}/attributes/profile/data/meta",
            {"patch_properties": {"push": {}}},
            f"{ROOT}/0/attributes/profile/data/meta/patch_properties/push",
        ),
        (f"{_E}/attributes/profile/data/id", "", f"{ROOT}/0/attributes/profile/data/id"),
        (f"{_E}/attributes/events", _DELETE, f"{ROOT}/0/attributes/events"),
        (f"{_E}/attributes/events/data", [], f"{ROOT}/0/attributes/events/data"),
        (f"{_E}/attributes/events/data/0/type", "events", f"{ROOT}/0/attributes/events/data/0/type"),
        (f"{_E}/attributes/backfill", "no", f"{ROOT}/0/attributes/backfill"),
        (f"{_E}/attributes/bogus", 1, f"{ROOT}/0/attributes/bogus"),
    ],
)
def test_request_shape_validation(
    emu: EmulatorServer, http: requests.Session, path: str, value: Any, pointer: str
) -> None:
    r = http.post(emu.url + EVENTS, json=_set(_BASE, path, value))
    assert r.status_code == 400, r.text
    assert error_of(r)["source"]["pointer"] == pointer
    assert emu.store.events() == []


def test_malformed_json_and_unknown_profile_id(emu: EmulatorServer, http: requests.Session) -> None:
    r = http.post(emu.url + EVENTS, data=b"{nope")
    assert r.status_code == 400 and error_of(r)["source"]["pointer"] == "/data"
    r = http.post(emu.url + EVENTS, json=body(entry({}, [event()], profile_id="01UNKNOWN")))
    assert r.status_code == 404 and error_of(r)["source"]["pointer"] == f"{ROOT}/0/attributes/profile/data/id"
    # an unknown id with another identifier creates the profile
    r = http.post(emu.url + EVENTS, json=body(entry({"email": "new@x.com"}, [event()], profile_id="01UNKNOWN")))
    assert r.status_code == 202 and emu.store.profile_by_email("new@x.com") is not None


def test_auth_revision_fault_and_timeline(emu: EmulatorServer, http: requests.Session) -> None:
    assert requests.post(emu.url + EVENTS, json=one()).status_code == 401
    assert http.get(emu.url + EVENTS).status_code == 405
    emu.store.add_fault(path=EVENTS, method="POST", status=429, retry_after=2)
    r = http.post(emu.url + EVENTS, json=one())
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert emu.store.events() == []
    assert http.post(emu.url + EVENTS, json=one()).status_code == 202
    assert len(emu.store.request_bodies(EVENTS)) == 2  # the faulted body is logged too
    rows = requests.get(emu.url + "/__emulator__/stats?timeline=1").json()["timeline"]
    assert [(row[3], row[4]) for row in rows if row[2] == EVENTS] == [(401, None), (405, None), (429, None), (202, 1)]


def test_bulk_create_events_rate_limit_from_the_spec() -> None:
    limit = limit_for("POST", EVENTS)
    assert limit is not None and (limit.operation, limit.burst, limit.steady) == ("bulk_create_events", 10, 150)
    with EmulatorServer(api_keys=[KEY], rate_limits="klaviyo", time_scale=0.001) as emu, requests.Session() as http:
        http.headers.update(emu.headers(KEY))
        for i in range(10):
            assert http.post(emu.url + EVENTS, json=one(unique_id=str(i))).status_code == 202
        r = http.post(emu.url + EVENTS, json=one(unique_id="11"))
        assert r.status_code == 429 and len(emu.store.events()) == 10
