"""`write` of the events surface through the real console script, against the emulator (which
validates Bulk Create Events against the spec, stores events and dedupes them like Klaviyo)."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from integration_tests.harness import (
    CONNECTOR,
    EMULATOR_KEY,
    catalog,
    configured_stream,
    contains_null,
    leaked,
    lines,
    record,
    run_connector,
    stream_state,
)

EVENTS_PATH = "/api/event-bulk-create-jobs"
ORDERS = {
    "stream": "orders",
    "surface": "events",
    "metric_field": "kind",
    "time_field": "occurred_at",
    "value_field": "total",
    "value_currency": "USD",
}
CONFIG = {"private_api_key": EMULATOR_KEY, "streams": [ORDERS]}


def orders_stream(mode="append"):
    """`orders` with the primary key and cursor a source declares: the default unique_id uses them."""
    stream = configured_stream("orders", mode)
    stream["primary_key"] = [["order_id"]]
    stream["cursor_field"] = ["updated_at"]
    return stream


CATALOG = catalog(orders_stream())
KINDS = ("Placed Order", "Ordered Product", "Refunded Order")


def order(i):
    return {
        "order_id": f"o{i:05d}",
        "email": f"buyer{i % 50:03d}@example.com",
        "first_name": f"Buyer{i % 50}",
        "kind": KINDS[i % 3],
        "occurred_at": 1_767_225_600 + i * 60,  # epoch seconds from 2026-01-01T00:00:00Z, a minute apart
        "updated_at": "2026-01-02T00:00:00Z",
        "total": f"{i}.50" if i % 2 else i + 0.5,  # decimals arrive as strings from some warehouses
        "items": [{"sku": f"SKU{i % 7}", "qty": 1 + i % 3, "gift_note": None}],
        "coupon": None,
    }


def orders(n, start=0, every=500):
    messages = []
    for i in range(start, start + n):
        messages.append(record("orders", order(i)))
        if (i + 1) % every == 0:
            messages.append(stream_state("orders", i + 1))
    return messages


def events_by_order(landed):
    return {e["properties"]["order_id"]: e for e in landed["events"]}


def test_orders_arrive_as_events_with_profile_properties_value_and_unique_id(emulator):
    run = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=lines(orders(2_500)), origin=emulator.url)
    assert run.returncode == 0, run.stderr[-3000:]
    landed = emulator.state(include_bodies=True)

    # 2,500 events in requests of at most 1,000, no null sent, every one stored once.
    bodies = [r["json_body"] for r in landed["requests"] if r["path"] == EVENTS_PATH]
    groups = [body["data"]["attributes"]["events-bulk-create"]["data"] for body in bodies]
    assert sorted(len(g) for g in groups) == [500, 1_000, 1_000]
    assert not any(contains_null(g["attributes"]["profile"]) for body in groups for g in body)
    assert all(r["status"] == 202 for r in landed["requests"] if r["path"] == EVENTS_PATH)
    assert len(landed["events"]) == 2_500 and sum(j["duplicate_count"] for j in landed["event_jobs"]) == 0

    profiles = {p["id"]: p["attributes"] for p in landed["profiles"]}
    assert len(profiles) == 50
    by_order = events_by_order(landed)
    for i in (0, 1, 1_234, 2_499):
        event = by_order[f"o{i:05d}"]
        assert profiles[event["profile_id"]]["email"] == f"buyer{i % 50:03d}@example.com"
        assert profiles[event["profile_id"]]["first_name"] == f"Buyer{i % 50}"
        assert event["metric"] == KINDS[i % 3]
        assert event["time"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_767_225_600 + i * 60)))
        assert event["value"] == i + 0.5 and event["value_currency"] == "USD"
        assert event["properties"] == {
            "order_id": f"o{i:05d}",
            "updated_at": "2026-01-02T00:00:00Z",
            "items": [{"sku": f"SKU{i % 7}", "qty": 1 + i % 3}],
        }
        assert re.fullmatch(r"[0-9a-f]{32}", event["unique_id"])
        assert event["backfill"] is False
    assert len({e["unique_id"] for e in landed["events"]}) == 2_500
    assert sorted(landed_metric["name"] for landed_metric in landed["metrics"]) == sorted(KINDS)

    cursors = [s["stream"]["stream_state"]["cursor"] for s in run.states]
    assert cursors == list(range(500, 2_501, 500))
    assert all(s["destinationStats"] == {"recordCount": 500.0, "rejectedRecordCount": 0.0} for s in run.states)
    assert any("event bulk create jobs: 3" in line for line in run.logs)

    # The same rows again (a full refresh, or a retried sync): the same unique_ids, nothing new stored.
    again = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=lines(orders(2_500)), origin=emulator.url)
    assert again.returncode == 0, again.stderr[-3000:]
    after = emulator.state()
    assert len(after["events"]) == 2_500
    assert sum(j["duplicate_count"] for j in after["event_jobs"]) == 2_500


def test_backfill_marks_every_event_and_a_fixed_metric_names_them_all(emulator):
    config = {
        "private_api_key": EMULATOR_KEY,
        "streams": [
            {
                "stream": "orders",
                "surface": "events",
                "metric": "Placed Order",
                "time_field": "occurred_at",
                "backfill": True,
            }
        ],
    }
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(orders(10)), origin=emulator.url)
    assert run.returncode == 0, run.stderr[-3000:]
    events = emulator.state()["events"]
    assert len(events) == 10 and {e["metric"] for e in events} == {"Placed Order"}
    assert all(e["backfill"] for e in events)
    assert all(e["properties"]["kind"] in KINDS for e in events)  # not the metric column here: a property
    assert all(e["value"] is None for e in events)


def test_a_sync_killed_mid_run_and_resumed_resends_the_same_unique_ids(emulator):
    total = 5_000
    # Hold the second request while the connector is killed; the emulator applies it afterwards, as
    # Klaviyo would a request whose answer never reached a crashed client.
    emulator.fault(method="POST", path=EVENTS_PATH, delay_seconds=4, skip=1, count=1)
    with tempfile.TemporaryDirectory() as tmp:
        config_path, catalog_path = Path(tmp) / "config.json", Path(tmp) / "catalog.json"
        config_path.write_text(json.dumps({**CONFIG, "max_requests_in_flight": 1}))  # one request at a time
        catalog_path.write_text(json.dumps(CATALOG))
        env = dict(os.environ, KLAVIYO_API_ORIGIN=emulator.url)
        process = subprocess.Popen(
            [str(CONNECTOR), "write", "--config", str(config_path), "--catalog", str(catalog_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(lines(orders(total)))
        process.stdin.close()
        states, output = [], []
        for line in process.stdout:
            output.append(line)
            message = json.loads(line)
            if message["type"] == "STATE":
                states.append(message["state"]["stream"]["stream_state"]["cursor"])
                if states[-1] >= 1_000:  # the first request is in; the second is being held
                    process.send_signal(signal.SIGKILL)
                    break
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        assert not leaked(EMULATOR_KEY, "".join(output), process.stderr.read() if process.stderr else "")
    last = states[-1]
    assert last < total
    deadline = time.monotonic() + 30
    while len(emulator.state()["event_jobs"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the held request lands after the kill
    before = {e["properties"]["order_id"]: e["unique_id"] for e in emulator.state()["events"]}
    assert len(before) > last  # rows after the last echoed state are already in Klaviyo

    # Airbyte restarts the source from the last state the destination echoed.
    resumed = run_connector(
        "write", config=CONFIG, catalog=CATALOG, stdin=lines(orders(total - last, start=last)), origin=emulator.url
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    landed = emulator.state()
    assert len(landed["events"]) == total
    assert len({(e["profile_id"], e["metric"], e["unique_id"]) for e in landed["events"]}) == total
    resent = [o for o in before if int(o[1:]) >= last]
    assert resent and sum(j["duplicate_count"] for j in landed["event_jobs"]) == len(resent)
    after = {e["properties"]["order_id"]: e["unique_id"] for e in landed["events"]}
    assert all(after[o] == before[o] for o in before)
    assert resumed.states[-1]["stream"]["stream_state"]["cursor"] == total


def test_bad_rows_are_rejected_and_the_rest_delivered(emulator):
    # Klaviyo refuses one event of the request (the third item): that row is reported, the rest resent.
    emulator.fault(
        method="POST",
        path=EVENTS_PATH,
        status=400,
        count=1,
        pointer="/data/attributes/events-bulk-create/data/2/attributes/events/data/0/attributes/properties",
        detail="Invalid property value 'Secretvalue'",
    )
    rows = [order(i) for i in range(8)]
    rows[1]["occurred_at"] = "last tuesday"  # invalid_time
    rows[3] = {**rows[3], "email": None}  # no identifier left
    rows[5]["kind"] = None  # missing_metric
    rows[6]["_ab_cdc_deleted_at"] = "2026-01-03T00:00:00Z"  # events are facts
    messages = [record("orders", r) for r in rows] + [stream_state("orders", 8)]
    config = {**CONFIG, "max_rejected_share": 0.9}
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(messages), origin=emulator.url)
    assert run.returncode == 0, run.stderr[-3000:]
    # Rows 0, 2, 4, 7 passed rendering; Klaviyo refused the third of them (row 4, ordinal #5).
    assert sorted(events_by_order(emulator.state())) == ["o00000", "o00002", "o00007"]
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
    expected = {2: "invalid_time", 4: "missing_identifier", 5: "klaviyo_rejected", 6: "missing_metric"}
    for ordinal, code in {**expected, 7: "delete_not_supported"}.items():
        assert any(f"#{ordinal} of stream 'orders' ({code})" in w for w in warnings), (ordinal, code, warnings)
    assert any("'occurred_at'" in w for w in warnings)
    assert "Secretvalue" not in run.stdout + run.stderr and "last tuesday" not in run.stdout + run.stderr
    assert [s["destinationStats"] for s in run.states] == [{"recordCount": 3.0, "rejectedRecordCount": 5.0}]


def test_a_repeated_unique_id_goes_into_the_next_request(emulator):
    config = {
        "private_api_key": EMULATOR_KEY,
        "streams": [{"stream": "orders", "surface": "events", "metric": "Placed Order", "unique_id_field": "order_id"}],
    }
    rows = [
        {"order_id": "A", "email": "one@example.com", "n": 1},
        {"order_id": "B", "email": "one@example.com", "n": 2},
        {"order_id": "A", "email": "one@example.com", "n": 3},  # the same event again: would fail the request
        {"order_id": "C", "email": "two@example.com", "n": 4},
    ]
    messages = [record("orders", r) for r in rows] + [stream_state("orders", 4)]
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(messages), origin=emulator.url)
    assert run.returncode == 0, run.stderr[-3000:]
    landed = emulator.state(include_bodies=True)
    requests = [r for r in landed["requests"] if r["path"] == EVENTS_PATH]
    assert [r["status"] for r in requests] == [202, 202]  # no whole-request 400
    groups = [r["json_body"]["data"]["attributes"]["events-bulk-create"]["data"] for r in requests]
    sent = [[g["attributes"]["events"]["data"][0]["attributes"]["unique_id"] for g in body] for body in groups]
    assert sorted(sent) == [["A", "B"], ["A", "C"]]
    # Klaviyo keeps the first event of a unique_id for that profile and metric.
    assert sorted(e["unique_id"] for e in landed["events"]) == ["A", "B", "C"]
    assert len(run.states) == 1 and run.states[0]["destinationStats"]["recordCount"] == 4.0


def test_dry_run_plans_events_and_sends_none(emulator):
    run = run_connector(
        "write", config={**CONFIG, "dry_run": True}, catalog=CATALOG, stdin=lines(orders(2_100)), origin=emulator.url
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert emulator.state()["requests"] == [] and emulator.state()["events"] == []
    assert run.states == []
    assert "Dry run plan: Stream 'orders': 2,100 rows read; 2,100 would be delivered." in run.logs
    assert "Dry run plan: Requests a real sync would send: event bulk create jobs: 3." in run.logs


def test_a_stream_without_a_metric_fails_before_any_request(emulator):
    config = {"private_api_key": EMULATOR_KEY, "default_surface": "events"}
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(orders(3)), origin=emulator.url)
    assert run.returncode != 0
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "config_error"
    assert "'orders'" in trace["error"]["message"] and "metric_field" in trace["error"]["message"]
    assert emulator.state()["requests"] == []


def test_a_key_without_events_write_fails_write_with_a_config_error_naming_the_scope(emulator):
    emulator.fault(method="POST", path=EVENTS_PATH, status=403, count=5, detail="You do not have permission.")
    run = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=lines(orders(3)), origin=emulator.url)
    assert run.returncode != 0
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "config_error"
    assert "lacks a scope" in trace["error"]["message"] and "events:write" in trace["error"]["message"]
    assert run.states == []


def test_check_names_events_write_when_the_key_lacks_it(emulator):
    emulator.fault(method="POST", path=EVENTS_PATH, status=403, count=1, detail="You do not have permission.")
    run = run_connector("check", config=CONFIG, origin=emulator.url)
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "lacks a scope" in status["message"] and "events:write" in status["message"]
    assert emulator.state()["events"] == []


def test_check_with_events_probes_the_scope_and_changes_nothing(emulator):
    run = run_connector("check", config=CONFIG, origin=emulator.url)
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}
    landed = emulator.state()
    assert [(r["method"], r["path"]) for r in landed["requests"]] == [("GET", "/api/accounts"), ("POST", EVENTS_PATH)]
    assert landed["events"] == [] and landed["profiles"] == [] and landed["event_jobs"] == []


def test_a_full_refresh_replace_records_each_row_once_and_removes_nothing(emulator):
    # As the platform sends a full refresh overwrite with refreshes on: append + the replace marker.
    config = {"private_api_key": EMULATOR_KEY, "streams": [{**ORDERS}]}
    for generation in (1, 2):
        stream = configured_stream(
            "orders", "append", generation_id=generation, minimum_generation_id=generation, primary_key=[["order_id"]]
        )
        run = run_connector(
            "write", config=config, catalog=catalog(stream), stdin=lines(orders(30)), origin=emulator.url
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert any("asks to replace its data" in line for line in run.logs)
    landed = emulator.state()
    assert len(landed["events"]) == 30
    assert [j["duplicate_count"] for j in landed["event_jobs"]] == [0, 30]
