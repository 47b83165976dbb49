"""`write` of the profiles surface through the real console script, against the emulator."""

import json

import pytest

from integration_tests.harness import (
    EMULATOR_KEY,
    catalog,
    configured_stream,
    contains_null,
    lines,
    record,
    run_connector,
    stream_state,
)

CONFIG = {"private_api_key": EMULATOR_KEY, "streams": [{"stream": "customers", "surface": "profiles"}]}
CATALOG = catalog(configured_stream("customers", "append_dedup"))


def customer(i):
    return {
        "email": f"user{i:05d}@example.com",
        "phone_e164": f"+1555{i:07d}" if i % 2 else None,
        "external_id": i,
        "first_name": f"First{i}",
        "last_name": None,
        "location": {"city": "Paris", "zip": None},
        "plan": "pro" if i % 3 else None,
        "score": i / 2,
        "_ab_cdc_updated_at": "2026-01-01T00:00:00Z",
    }


def rows_with_states(n, every):
    messages = []
    for i in range(n):
        messages.append(record("customers", customer(i)))
        if (i + 1) % every == 0:
            messages.append(stream_state("customers", i + 1))
    return messages


def test_25000_rows_land_in_three_jobs_with_states_in_order(emulator):
    run = run_connector(
        "write", config=CONFIG, catalog=CATALOG, stdin=lines(rows_with_states(25_000, 1_000)), origin=emulator.url
    )
    assert run.returncode == 0, run.stderr[-3000:]
    landed = emulator.state(include_bodies=True)

    # Three jobs (10,000 + 10,000 + 5,000): states every 1,000 rows did not force tiny jobs.
    # Jobs run concurrently, so they may land in any order.
    assert sorted(job["profile_count"] for job in landed["jobs"]) == [5_000, 10_000, 10_000]
    for job in landed["jobs"]:
        assert job["body_size"] <= 5_000_000
        assert not contains_null(job["request_body"]), "a null was sent to Klaviyo"

    by_email = {p["attributes"]["email"]: p["attributes"] for p in landed["profiles"]}
    assert len(by_email) == 25_000
    assert by_email["user00007@example.com"] == {
        "email": "user00007@example.com",
        "phone_number": "+15550000007",
        "external_id": "7",
        "first_name": "First7",
        "location": {"city": "Paris"},
        "properties": {"plan": "pro", "score": 3.5},
    }
    assert "phone_number" not in by_email["user00006@example.com"]
    assert "plan" not in by_email["user00003@example.com"]["properties"]

    # Every state, in order, each once, with the destination's record count.
    cursors = [s["stream"]["stream_state"]["cursor"] for s in run.states]
    assert cursors == list(range(1_000, 25_001, 1_000))
    assert all(s["destinationStats"]["recordCount"] == 1_000.0 for s in run.states)
    assert all(s["sourceStats"] == {"recordCount": 0.0} for s in run.states)  # echoed as received
    assert EMULATOR_KEY not in run.stdout + run.stderr


def test_no_state_is_emitted_before_its_rows_are_accepted(emulator):
    # One of the three jobs fails for good (which one depends on arrival order, as jobs run
    # concurrently): states may cover the rows accepted from the start, and not one row more.
    emulator.fault(method="POST", path="/api/profile-bulk-import-jobs", status=400, count=1, skip=2)
    run = run_connector(
        "write", config=CONFIG, catalog=CATALOG, stdin=lines(rows_with_states(25_000, 1_000)), origin=emulator.url
    )
    assert run.returncode != 0
    landed = emulator.state()
    present = {p["attributes"]["email"] for p in landed["profiles"]}
    contiguous = next(i for i in range(25_001) if f"user{i:05d}@example.com" not in present)
    assert contiguous in (0, 10_000, 20_000)  # the failed job may be any of the three
    cursors = [s["stream"]["stream_state"]["cursor"] for s in run.states]
    assert cursors == list(range(1_000, contiguous + 1, 1_000))
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "system_error"
    assert "400" in trace["error"]["message"]


def test_unmapped_stream_fails_before_any_request(emulator):
    config = {"private_api_key": EMULATOR_KEY}
    messages = [record("customers", customer(1)), stream_state("customers", 1)]
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(messages), origin=emulator.url)
    assert run.returncode != 0
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "config_error"
    assert "'customers'" in trace["error"]["message"] and "streams" in trace["error"]["message"]
    assert emulator.state()["requests"] == []
    assert run.states == []


@pytest.mark.parametrize("mode", ["overwrite", "soft_delete"])
def test_unsupported_sync_mode_fails_before_any_request(emulator, mode):
    run = run_connector(
        "write",
        config=CONFIG,
        catalog=catalog(configured_stream("customers", mode)),
        stdin=lines([record("customers", customer(1))]),
        origin=emulator.url,
    )
    assert run.returncode != 0
    assert run.traces[0]["error"]["failure_type"] == "config_error"
    assert mode in run.traces[0]["error"]["message"]
    assert emulator.state()["requests"] == []


def test_destination_object_name_routes_the_stream(emulator):
    config = {"private_api_key": EMULATOR_KEY}
    configured = catalog(configured_stream("anything", "update", object_name="profiles"))
    run = run_connector(
        "write",
        config=config,
        catalog=configured,
        stdin=lines([record("anything", {"email": "x@example.com"})]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stderr
    assert [p["attributes"]["email"] for p in emulator.state()["profiles"]] == ["x@example.com"]


def test_bad_rows_are_rejected_with_reasons_and_the_sync_goes_on(emulator):
    messages = [
        record("customers", {"email": "ok1@example.com"}),
        record("customers", {"first_name": "Secretname", "plan": "pro"}),  # no identifier
        record("customers", {"email": "big@example.com", "blob": "x" * 120_000}),  # > 100 KB
        record("customers", {"email": "ok2@example.com", "location": "Secretcity"}),  # wrong type
        record("customers", {"email": "ok3@example.com"}),
        stream_state("customers", 5),
    ]
    config = {**CONFIG, "max_rejected_share": 0.8}  # 3 of 5 rejected is tolerated here
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(messages), origin=emulator.url)
    assert run.returncode == 0, run.stderr
    emails = sorted(p["attributes"]["email"] for p in emulator.state()["profiles"])
    assert emails == ["ok1@example.com", "ok3@example.com"]
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
    assert any("#2" in w and "missing_identifier" in w for w in warnings)
    assert any("#3" in w and "profile_too_large" in w for w in warnings)
    assert any("#4" in w and "invalid_value" in w for w in warnings)
    infos = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "INFO"]
    assert "Sync summary: Stream 'customers': received 5, delivered 2, rejected 3." in infos
    assert (
        "Sync summary: Stream 'customers': 3 rows rejected (invalid_value: 1, missing_identifier: 1, "
        "profile_too_large: 1). The 'Rejected record' lines above say why, row by row (column names, no values)."
    ) in warnings
    output = run.stdout + run.stderr
    for secret in ("Secretname", "Secretcity", "big@example.com", "ok2@example.com"):
        assert secret not in output
    # Accepted and rejected rows are counted apart; their sum is what the source sent (protocol 0.18.0).
    assert [s["destinationStats"] for s in run.states] == [{"recordCount": 2.0, "rejectedRecordCount": 3.0}]


def test_klaviyo_rejecting_one_profile_drops_only_that_row(emulator):
    # Klaviyo answers 400 pointing at profile 1 of the job; the connector reports that row and resends the rest.
    emulator.fault(
        method="POST",
        path="/api/profile-bulk-import-jobs",
        status=400,
        count=1,
        pointer="/data/attributes/profiles/data/1/attributes/email",
        detail="Invalid email address 'rejected@example.invalid'",
    )
    messages = [
        record("customers", {"email": e}) for e in ("a@example.com", "rejected@example.invalid", "c@example.com")
    ]
    messages.append(stream_state("customers", 3))
    run = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=lines(messages), origin=emulator.url)
    assert run.returncode == 0, run.stderr
    assert sorted(p["attributes"]["email"] for p in emulator.state()["profiles"]) == ["a@example.com", "c@example.com"]
    assert "rejected@example.invalid" not in run.stdout + run.stderr
    assert any("klaviyo_rejected" in line and "#2" in line for line in run.logs)
    assert len(run.states) == 1


def test_a_non_json_line_stops_the_sync_after_committing_what_came_before(emulator):
    before = [record("customers", {"email": "first@example.com"}), stream_state("customers", 1)]
    after = [record("customers", {"email": "second@example.com"}), stream_state("customers", 2)]
    stdin = lines(before) + "this is not json\n" + lines(after)
    run = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=stdin, origin=emulator.url)
    assert run.returncode != 0
    assert [p["attributes"]["email"] for p in emulator.state()["profiles"]] == ["first@example.com"]
    assert [s["stream"]["stream_state"]["cursor"] for s in run.states] == [1]
    assert "line 3" in run.traces[0]["error"]["message"]


def test_a_record_of_a_stream_outside_the_catalog_fails_the_sync(emulator):
    stdin = lines([record("customers", {"email": "a@example.com"}), record("ghost", {"email": "b@example.com"})])
    run = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=stdin, origin=emulator.url)
    assert run.returncode != 0
    assert "'ghost'" in run.traces[0]["error"]["message"]
    assert [p["attributes"]["email"] for p in emulator.state()["profiles"]] == ["a@example.com"]


def test_write_with_a_bad_key_is_a_config_error_that_never_prints_the_key(emulator):
    bad = "pk_wrong_key_for_write_0001"
    config = {**CONFIG, "private_api_key": bad}
    run = run_connector(
        "write",
        config=config,
        catalog=CATALOG,
        stdin=lines([record("customers", {"email": "a@example.com"})]),
        origin=emulator.url,
    )
    assert run.returncode != 0
    assert run.traces[0]["error"]["failure_type"] == "config_error"
    assert "private API key" in run.traces[0]["error"]["message"]
    assert bad not in run.stdout + run.stderr


def test_state_id_and_unknown_fields_are_echoed_untouched(emulator):
    state = stream_state("customers", 1)
    state["state"]["id"] = 42
    state["state"]["stream"]["stream_state"] = {"cursor": 1, "nested": {"keep": [1, 2]}}
    run = run_connector(
        "write",
        config=CONFIG,
        catalog=CATALOG,
        stdin=lines([record("customers", {"email": "a@example.com"}), state]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stderr
    (echoed,) = run.states
    expected = json.loads(json.dumps(state["state"]))
    expected["destinationStats"] = {"recordCount": 1.0, "rejectedRecordCount": 0.0}
    assert echoed == expected


def test_dry_run_sends_nothing_and_emits_no_state(emulator):
    config = {**CONFIG, "dry_run": True}
    run = run_connector(
        "write", config=config, catalog=CATALOG, stdin=lines(rows_with_states(12_000, 1_000)), origin=emulator.url
    )
    assert run.returncode == 0, run.stderr
    assert emulator.state()["requests"] == []
    assert run.states == []
    assert any(line.startswith("Dry run plan: Stream 'customers': 12,000 rows read") for line in run.logs)
    assert "Dry run plan: Requests a real sync would send: bulk import jobs: 2." in run.logs


def test_too_many_rejected_rows_fail_the_sync_after_delivering_the_good_ones(emulator):
    messages = [record("customers", {"email": "good@example.com"})]
    messages += [record("customers", {"first_name": f"Nobody{i}"}) for i in range(3)]
    messages.append(stream_state("customers", 4))
    run = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=lines(messages), origin=emulator.url)
    assert run.returncode != 0
    assert [p["attributes"]["email"] for p in emulator.state()["profiles"]] == ["good@example.com"]
    assert [s["stream"]["stream_state"]["cursor"] for s in run.states] == [4]
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "config_error"
    assert "3 of 4 rows (75%)" in trace["error"]["message"] and "max_rejected_share" in trace["error"]["message"]


def test_an_empty_catalog_is_a_clear_config_error(emulator):
    run = run_connector("write", config=CONFIG, catalog={"streams": []}, stdin="", origin=emulator.url)
    assert run.returncode != 0
    assert run.traces[0]["error"]["failure_type"] == "config_error"
    assert "no streams" in run.traces[0]["error"]["message"]


def test_verify_bulk_jobs_reports_what_klaviyo_imported(emulator):
    config = {**CONFIG, "verify_bulk_jobs": True}
    messages = [record("customers", {"email": f"v{i}@example.com"}) for i in range(3)]
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(messages), origin=emulator.url)
    assert run.returncode == 0, run.stdout[-2000:]
    (job,) = emulator.state()["jobs"]
    assert any(
        f"Bulk import job {job['id']}: complete, 3 of 3 profiles imported, 0 failed" in line for line in run.logs
    )
    gets = [
        r
        for r in emulator.state()["requests"]
        if r["method"] == "GET" and r["path"].startswith("/api/profile-bulk-import-jobs/")
    ]
    assert len(gets) == 1
