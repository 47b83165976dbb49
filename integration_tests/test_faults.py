"""Faults Klaviyo (or the network) throws at a sync, injected in the emulator.

Every scenario must end with every valid row present exactly as sent, no duplicate list, states in
order and none ahead of its data. Backoff sleeps make these a few seconds each; no test asserts on
time.
"""

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from integration_tests.harness import (
    CONNECTOR,
    EMULATOR_KEY,
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
        import json

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
