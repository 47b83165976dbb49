"""Faults Klaviyo (or the network) throws at a sync, injected in the emulator.

Every scenario must end with every valid row present exactly as sent, no duplicate list, states in
order and none ahead of its data. Backoff sleeps make these a few seconds each (one rides out a
minute of 429s). No test asserts on time: when a state must come out while a request is still
retrying, the test checks the order of stdout lines; SIGTERM scenarios wait for the exit with a
generous guard (a connector that waited out the held request would take minutes).
"""

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from integration_tests.harness import (
    CONNECTOR,
    EMULATOR_KEY,
    EmulatorProcess,
    LiveConnector,
    catalog,
    configured_stream,
    leaked,
    lines,
    record,
    run_connector,
    stream_state,
)

CONFIG = {"private_api_key": EMULATOR_KEY, "default_surface": "profiles", "request_timeout_seconds": 2}
CATALOG = catalog(configured_stream("customers"))
BULK = "/api/profile-bulk-import-jobs"


PAD = "x" * 2_000  # ~2 KB profiles: a 5 MB job holds ~2,390 of them, so 6,000 rows make 3 jobs


def rows(n, start=0, every=500):
    messages = []
    for i in range(start, start + n):
        messages.append(
            record("customers", {"email": f"f{i:05d}@example.com", "first_name": f"F{i}", "rank": i, "pad": PAD})
        )
        if (i + 1) % every == 0:
            messages.append(stream_state("customers", i + 1))
    return messages


def assert_exactly_delivered(emulator, n, run):
    profiles = emulator.state()["profiles"]
    by_email = {p["attributes"]["email"]: p["attributes"] for p in profiles}
    assert len(profiles) == n == len(by_email)
    for i in (0, n // 2, n - 1):
        assert by_email[f"f{i:05d}@example.com"] == {
            "email": f"f{i:05d}@example.com",
            "first_name": f"F{i}",
            "properties": {"rank": i, "pad": PAD},
        }
    cursors = [s["stream"]["stream_state"]["cursor"] for s in run.states]
    assert cursors == sorted(cursors) and cursors[-1] == n


FAULTS = {
    "500 twice": dict(status=500, count=2),
    "502": dict(status=502, count=1),
    "503 twice": dict(status=503, count=2),
    "429 with Retry-After": dict(status=429, count=2, retry_after=1),
    "slow past the client timeout (then applied)": dict(delay_seconds=3, count=1),
    "dropped connection": dict(drop=True, count=1),
    "applied, then the connection dropped": dict(drop=True, apply=True, count=1),
    "applied, then answered 500": dict(status=500, apply=True, count=1),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_bulk_import_survives(emulator, fault):
    emulator.fault(method="POST", path=BULK, skip=1, **fault)  # the second of three jobs is hit
    run = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=lines(rows(6_000)), origin=emulator.url)
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(emulator.state()["jobs"]) >= 3
    assert emulator.state()["faults"] == []  # the fault did fire
    assert_exactly_delivered(emulator, 6_000, run)


def test_list_relationship_edits_survive_errors_and_drops(emulator):
    list_id = emulator.create_list("Faulty")
    emulator.add_members(list_id, ["GONE1", "GONE2"])
    emulator.fault(method="POST", path=f"/api/lists/{list_id}/relationships/profiles", status=503, count=1)
    emulator.fault(method="DELETE", path=f"/api/lists/{list_id}/relationships/profiles", drop=True, apply=True, count=1)
    config = {**CONFIG, "streams": [{"stream": "m", "surface": "list_memberships_by_profile_id", "target": "Faulty"}]}
    messages = [record("m", {"klaviyo_profile_id": f"P{i}"}) for i in range(1_500)]
    messages += [record("m", {"klaviyo_profile_id": g, "_ab_cdc_deleted_at": "2026-01-01"}) for g in ("GONE1", "GONE2")]
    run = run_connector(
        "write", config=config, catalog=catalog(configured_stream("m")), stdin=lines(messages), origin=emulator.url
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert emulator.state()["memberships"][list_id] == sorted(f"P{i}" for i in range(1_500))


def test_list_create_that_fails_after_taking_effect_makes_one_list(emulator):
    emulator.fault(method="POST", path="/api/lists", drop=True, apply=True, count=1)
    config = {**CONFIG, "default_surface": "list_memberships"}
    run = run_connector(
        "write",
        config=config,
        catalog=CATALOG,
        stdin=lines([record("customers", {"email": "a@example.com", "list": "Only once"})]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert [item["name"] for item in emulator.state()["lists"]] == ["Only once"]


def test_throttling_for_a_minute_is_ridden_out(emulator):
    # Another app spends the account's budget for a minute: 429 with Retry-After: 4, fifteen times.
    # The default retry budget (10 minutes from the first failure) waits it out; no row is lost.
    emulator.fault(method="POST", path=BULK, status=429, retry_after=4, count=15)
    config = {**CONFIG, "max_requests_in_flight": 1}
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(rows(1_000)), origin=emulator.url)
    assert run.returncode == 0, run.stdout[-3000:]
    assert not run.traces
    assert emulator.state()["faults"] == []  # every one of the fifteen 429s was answered
    statuses = [r["status"] for r in emulator.state()["requests"] if r["path"] == BULK]
    assert statuses == [429] * 15 + [202]
    assert_exactly_delivered(emulator, 1_000, run)


def test_persistent_throttling_is_a_transient_error_with_no_state_past_delivered_rows(emulator):
    # A small retry budget keeps this quick; once it is spent the sync stops as transient (Airbyte retries it).
    emulator.fault(method="POST", path=BULK, status=429, retry_after=1, count=100, skip=1)
    config = {**CONFIG, "retry_budget_seconds": 4}
    run = run_connector("write", config=config, catalog=CATALOG, stdin=lines(rows(6_000)), origin=emulator.url)
    assert run.returncode != 0
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "transient_error"
    assert "429" in trace["error"]["message"]
    present = {p["attributes"]["email"] for p in emulator.state()["profiles"]}
    contiguous = next(i for i in range(6_001) if f"f{i:05d}@example.com" not in present)
    assert contiguous < 6_000
    cursors = [s["stream"]["stream_state"]["cursor"] for s in run.states]
    assert cursors == list(range(500, contiguous + 1, 500))


def test_a_sync_killed_mid_run_and_resumed_from_its_last_state_loses_nothing(emulator):
    total = 12_000
    # Hold the second job for a while so the kill lands in the middle of the sync.
    emulator.fault(method="POST", path=BULK, delay_seconds=4, skip=1, count=1)
    with tempfile.TemporaryDirectory() as tmp:
        config_path, catalog_path = Path(tmp) / "config.json", Path(tmp) / "catalog.json"
        # One request at a time, so "the second job" is the second one sent and the kill lands mid-run.
        config_path.write_text(json.dumps({**CONFIG, "max_requests_in_flight": 1}))
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
        process.stdin.write(lines(rows(total, every=1_000)))  # ~5 jobs of ~2,390 rows
        process.stdin.close()
        states, output = [], []
        for line in process.stdout:
            output.append(line)
            message = json.loads(line)
            if message["type"] == "STATE":
                states.append(message["state"]["stream"]["stream_state"]["cursor"])
                if states[-1] >= 2_000:  # the first job is in; the second is being held
                    process.send_signal(signal.SIGKILL)
                    break
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        assert not leaked(EMULATOR_KEY, "".join(output), process.stderr.read() if process.stderr else "")
    last = states[-1]
    assert last < total
    # Airbyte restarts the source from the last state the destination echoed.
    resumed = run_connector(
        "write",
        config=CONFIG,
        catalog=CATALOG,
        stdin=lines(rows(total - last, start=last, every=1_000)),
        origin=emulator.url,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert_exactly_delivered(emulator, total, resumed)


def cursor(message):
    return message["state"]["stream"]["stream_state"]["cursor"]


def is_state(message, at_least=0):
    return message["type"] == "STATE" and cursor(message) >= at_least


# One request at a time, so the jobs go out in row order: rows 0-~2,360, ~2,360-~4,720, the rest.
ONE_AT_A_TIME = {**CONFIG, "max_requests_in_flight": 1}
LAST_STATE_BEFORE_THE_THIRD_JOB = 4_500


def jobs_by_first_row(emulator):
    """{first row: job id} of the emulator's bulk jobs (a job retried after taking effect appears twice)."""
    state = emulator.state()
    email_of = {p["id"]: p["attributes"]["email"] for p in state["profiles"]}
    jobs: dict[int, set[str]] = {}
    for job in state["jobs"]:
        jobs.setdefault(min(int(email_of[i][1:6]) for i in job["profile_ids"]), set()).add(job["id"])
    return jobs


RETRYING = {
    "503s, retried": dict(status=503, retry_after=1, count=4),
    "answers slower than the timeout, retried": dict(delay_seconds=3, count=2),
}


@pytest.mark.parametrize("fault", RETRYING.values(), ids=RETRYING.keys())
def test_states_of_accepted_rows_are_echoed_while_a_later_request_is_still_retrying(emulator, fault):
    emulator.fault(method="POST", path=BULK, skip=2, **fault)  # the third job keeps failing for a few seconds
    run = run_connector("write", config=ONE_AT_A_TIME, catalog=CATALOG, stdin=lines(rows(6_000)), origin=emulator.url)
    assert run.returncode == 0, run.stdout[-3000:]
    assert emulator.state()["faults"] == []
    assert_exactly_delivered(emulator, 6_000, run)
    jobs = jobs_by_first_row(emulator)
    assert len(jobs) == 3
    third_job_first_row = max(jobs)
    assert LAST_STATE_BEFORE_THE_THIRD_JOB < third_job_first_row < LAST_STATE_BEFORE_THE_THIRD_JOB + 500
    # stdout is one stream, written in the order things happened in the connector: the state after
    # the second job's rows came out before the third job was finally accepted, not after it.
    out = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    state_at = next(i for i, m in enumerate(out) if is_state(m) and cursor(m) == LAST_STATE_BEFORE_THE_THIRD_JOB)
    accepted_at = next(
        i
        for i, m in enumerate(out)
        if m["type"] == "LOG" and any(f"job {job}" in m["log"]["message"] for job in jobs[third_job_first_row])
    )
    assert state_at < accepted_at
    assert all(cursor(m) <= LAST_STATE_BEFORE_THE_THIRD_JOB for m in out[:accepted_at] if is_state(m))


def test_rows_with_values_json_cannot_carry_are_rejected_one_by_one_and_the_rest_delivered(emulator):
    deep = 1
    for _ in range(500):
        deep = {"level": deep}
    good = [record("customers", {"email": f"g{i}@example.com", "n": i}) for i in range(6)]
    bad = [
        record("customers", {"email": "deep@example.com", "tree": deep}),
        record("customers", {"email": "nan@example.com", "score": float("nan")}),
        record("customers", {"email": "inf@example.com", "score": float("inf")}),
        record("customers", {"email": "sur@example.com", "name": "caf\ud800"}),
    ]
    # json.dumps, as a Python source writes: bare NaN / Infinity tokens, the surrogate as \ud800.
    stdin = lines(good[:3] + bad + good[3:] + [stream_state("customers", 10)])
    assert "NaN" in stdin and "Infinity" in stdin and "\\ud800" in stdin
    run = run_connector("write", config=CONFIG, catalog=CATALOG, stdin=stdin, origin=emulator.url)
    assert run.returncode == 0, run.stdout[-3000:]
    assert not run.traces
    rejected = sorted(line.split("(")[1].split(")")[0] for line in run.logs if line.startswith("Rejected record"))
    assert rejected == ["invalid_text", "invalid_value", "invalid_value", "too_deep"]
    assert sorted(p["attributes"]["email"] for p in emulator.state()["profiles"]) == sorted(
        f"g{i}@example.com" for i in range(6)
    )
    (state,) = run.states
    assert state["destinationStats"] == {"recordCount": 6.0, "rejectedRecordCount": 4.0}


def test_sigterm_while_a_request_is_held_echoes_the_safe_states_and_exits_promptly():
    # Its own emulator: the held request must not outlive this test in a shared one.
    with EmulatorProcess() as emulator:
        emulator.fault(method="POST", path=BULK, delay_seconds=120, status=503, skip=2, count=1)  # the third job hangs
        config = {**ONE_AT_A_TIME, "request_timeout_seconds": 300}
        with LiveConnector(config, CATALOG, emulator.url) as connector:
            connector.send(lines(rows(6_000)))
            connector.close_stdin()
            connector.read_until(
                lambda m: is_state(m, LAST_STATE_BEFORE_THE_THIRD_JOB)
            )  # the third job is now in flight
            connector.process.send_signal(signal.SIGTERM)
            # Waiting out the held request would take two minutes; this is only a guard against that.
            code = connector.wait(timeout=60)
        run = connector.run
        assert code == 143, run.stdout[-3000:]  # 128 + SIGTERM: never mistaken for a successful sync
        (trace,) = run.traces
        assert trace["error"]["failure_type"] == "transient_error" and "SIGTERM" in trace["error"]["message"]
        cursors = [s["stream"]["stream_state"]["cursor"] for s in run.states]
        assert cursors == list(range(500, LAST_STATE_BEFORE_THE_THIRD_JOB + 1, 500))
        present = {p["attributes"]["email"] for p in emulator.state()["profiles"]}
        assert all(f"f{i:05d}@example.com" in present for i in range(LAST_STATE_BEFORE_THE_THIRD_JOB))


def test_states_go_out_while_the_input_is_quiet_and_sigterm_ends_the_wait_for_more(emulator):
    with LiveConnector(ONE_AT_A_TIME, CATALOG, emulator.url) as connector:
        # Two full jobs go out, the rest waits in an open batch; stdin stays open and silent, as
        # while a source runs a slow query. The states of the accepted jobs must not wait for a line.
        connector.send(lines(rows(6_000)))
        connector.read_until(lambda m: is_state(m, LAST_STATE_BEFORE_THE_THIRD_JOB))
        connector.process.send_signal(signal.SIGTERM)
        code = connector.wait(timeout=60)
    run = connector.run
    assert code == 143, run.stdout[-3000:]
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "transient_error"
    assert [s["stream"]["stream_state"]["cursor"] for s in run.states] == list(
        range(500, LAST_STATE_BEFORE_THE_THIRD_JOB + 1, 500)
    )
    assert len(jobs_by_first_row(emulator)) == 2  # the open batch was not sent on the way out


def test_sigterm_while_the_main_thread_is_stuck_in_a_list_lookup_still_ends_the_process():
    # A list lookup runs on the main thread and cannot be interrupted; the watchdog ends the process.
    with EmulatorProcess() as emulator:
        emulator.fault(method="GET", path="/api/lists", delay_seconds=120, status=503, count=1)
        config = {**CONFIG, "default_surface": "list_memberships", "request_timeout_seconds": 300}
        with LiveConnector(config, CATALOG, emulator.url) as connector:
            connector.send(lines([record("customers", {"email": "a@example.com", "list": "Held"})]))
            deadline = time.monotonic() + 60
            while (
                requests.get(f"{emulator.url}/__emulator__/faults", timeout=10).json()["faults"]
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)  # until the lookup is being held
            connector.process.send_signal(signal.SIGTERM)
            code = connector.wait(timeout=60)  # the held lookup alone would take two minutes
        run = connector.run
        assert code == 143
        (trace,) = run.traces
        assert "SIGTERM" in trace["error"]["message"]
        assert any("after SIGTERM; exiting now" in log for log in run.logs)
