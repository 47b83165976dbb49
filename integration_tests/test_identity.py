"""Identity, end to end: deleting profiles, removing and mirroring list members by email, phone or
external id. The console script against the emulator, as Airbyte runs it."""

import time

import pytest

from integration_tests.harness import (
    EMULATOR_KEY,
    EmulatorProcess,
    catalog,
    configured_stream,
    lines,
    platform_state,
    record,
    run_connector,
    stream_state,
    stream_status,
)

DELETIONS = "/api/data-privacy-deletion-jobs"


def config(**extra):
    return {"private_api_key": EMULATOR_KEY, **extra}


def import_profiles(emulator, *profiles):
    """Seed profiles through the emulated bulk import (applied at once without deferred jobs)."""
    data = [{"type": "profile", "attributes": attributes} for attributes in profiles]
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": data}}}}
    emulator.api("POST", "/api/profile-bulk-import-jobs", body)
    return {
        p["attributes"].get("email") or p["attributes"].get("external_id"): p["id"]
        for p in emulator.state()["profiles"]
    }


def requests_to(emulator, method, path):
    return [r for r in emulator.state()["requests"] if r["method"] == method and r["path"] == path]


# -- profile_deletions ---------------------------------------------------------------------------


def test_a_deletion_stream_deletes_each_row_by_its_most_specific_identifier(emulator):
    ids = import_profiles(
        emulator,
        {"email": "by-id@example.com"},
        {"email": "by-email@example.com", "phone_number": "+14155550101"},
        {"phone_number": "+14155550102"},
        {"external_id": "crm-7", "email": "ext@example.com"},
        {"email": "cdc@example.com"},
        {"email": "keep@example.com", "external_id": "crm-keep"},
    )
    phone_only = next(
        p["id"] for p in emulator.state()["profiles"] if p["attributes"].get("phone_number") == "+14155550102"
    )
    rows = [
        record("erasure", {"klaviyo_profile_id": ids["by-id@example.com"], "email": "not-an-email"}),
        record("erasure", {"email": "by-email@example.com", "phone_number": "+14155550101", "external_id": "x"}),
        record("erasure", {"phone_number": "+1 415 555 0102", "request_id": 3}),
        stream_state("erasure", 3),
        record("erasure", {"external_id": "crm-7"}),
        record("erasure", {"external_id": "crm-unknown"}),  # not in Klaviyo: counted, accepted
        record("erasure", {"first_name": "nobody"}),  # no identifier: rejected
        record("erasure", {"email": "cdc@example.com", "_ab_cdc_deleted_at": "2026-01-01T00:00:00Z"}),
        platform_state("erasure", 7, state_id=2, source_count=4),
    ]
    run = run_connector(
        "write",
        config=config(streams=[{"stream": "erasure", "surface": "profile_deletions"}]),
        catalog=catalog(configured_stream("erasure", "append_dedup")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state(include_bodies=True)
    assert [p["attributes"]["email"] for p in state["profiles"]] == ["keep@example.com"]
    # One identifier per request, the most specific the row has; an external id is resolved to the id.
    identifiers = [d["identifier"] for d in state["deletions"]]
    assert identifiers == [
        {"id": ids["by-id@example.com"]},
        {"email": "by-email@example.com"},
        {"phone_number": "+14155550102"},
        {"id": ids["ext@example.com"]},
        {"email": "cdc@example.com"},
    ]
    assert phone_only in state["deletions"][2]["profile_ids"]
    (lookup,) = requests_to(emulator, "GET", "/api/profiles")  # both external ids in one lookup
    assert "any%28external_id" in lookup["query"]
    assert [s["destinationStats"] for s in run.states] == [
        {"recordCount": 3.0, "rejectedRecordCount": 0.0},
        {"recordCount": 3.0, "rejectedRecordCount": 1.0},
    ]
    summary = [line for line in run.logs if "Profile deletions of stream 'erasure'" in line]
    assert summary and "by email 2" in summary[0] and "by external_id 2" in summary[0]
    assert "by klaviyo_profile_id 1" in summary[0] and "by phone_number 1" in summary[0]
    assert "not in Klaviyo 1" in summary[0]
    assert "by-email@example.com" not in run.stdout + run.stderr  # identifiers are personal data


def test_deletions_are_never_reached_by_a_stream_name_or_default_surface(emulator):
    import_profiles(emulator, {"email": "safe@example.com"})
    for cfg, stream in (
        (config(), "profile_deletions"),
        (config(default_surface="profile_deletions"), "anything"),
    ):
        run = run_connector(
            "write",
            config=cfg,
            catalog=catalog(configured_stream(stream)),
            stdin=lines([record(stream, {"email": "safe@example.com"})]),
            origin=emulator.url,
        )
        assert run.returncode != 0
        (trace,) = run.traces
        assert trace["error"]["failure_type"] == "config_error"
        assert "profile_deletions" in trace["error"]["message"]
    assert requests_to(emulator, "POST", DELETIONS) == []
    assert [p["attributes"]["email"] for p in emulator.state()["profiles"]] == ["safe@example.com"]


def test_a_destination_object_picked_in_the_connection_reaches_deletions(emulator):
    import_profiles(emulator, {"email": "picked@example.com"})
    run = run_connector(
        "write",
        config=config(),
        catalog=catalog(configured_stream("requests", "soft_delete", object_name="profile_deletions")),
        stdin=lines([record("requests", {"email": "picked@example.com"})]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert emulator.state()["profiles"] == []


def test_a_dry_run_of_deletions_counts_rows_and_sends_nothing(emulator):
    import_profiles(emulator, {"email": "a@example.com", "external_id": "e1"})
    before = len(emulator.state()["requests"])
    rows = [record("erasure", {"email": "a@example.com"}), record("erasure", {"external_id": "e1"})]
    run = run_connector(
        "write",
        config=config(dry_run=True, streams=[{"stream": "erasure", "surface": "profile_deletions"}]),
        catalog=catalog(configured_stream("erasure")),
        stdin=lines(rows + [stream_state("erasure", 2)]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert emulator.requests_since(before) == []  # no deletion, and not even a lookup
    assert len(emulator.state()["profiles"]) == 1
    plan = [line for line in run.logs if line.startswith("Dry run plan")]
    assert any("Profile deletions of stream 'erasure': by email 1, by external_id 1" in line for line in plan), plan
    assert "Dry run plan: Requests a real sync would send: profile deletions: 2." in plan, plan
    assert run.states == []


def test_a_key_without_the_data_privacy_scope_fails_naming_it_and_keeps_the_state(emulator):
    import_profiles(emulator, {"email": "a@example.com"})
    emulator.fault(method="POST", path=DELETIONS, status=403, count=1, detail="You do not have permission.")
    run = run_connector(
        "write",
        config=config(streams=[{"stream": "erasure", "surface": "profile_deletions"}]),
        catalog=catalog(configured_stream("erasure")),
        stdin=lines([record("erasure", {"email": "a@example.com"}), stream_state("erasure", 1)]),
        origin=emulator.url,
    )
    assert run.returncode != 0
    error = run.traces[-1]["error"]
    assert error["failure_type"] == "config_error" and "data-privacy:write" in error["message"]
    assert run.states == []


# -- removal on list_memberships --------------------------------------------------------------------


def seed_list(emulator, name, *profiles):
    """A list holding these profiles (bulk import into it), and {email or external id or phone: id}."""
    list_id = emulator.create_list(name)
    data = [{"type": "profile", "attributes": attributes} for attributes in profiles]
    body = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": data}},
            "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}},
        }
    }
    job = emulator.api("POST", "/api/profile-bulk-import-jobs", body)["data"]["id"]
    while emulator.api("GET", f"/api/profile-bulk-import-jobs/{job}")["data"]["attributes"]["status"] != "complete":
        time.sleep(0.1)  # a deferred emulator applies it after its delay
    ids = {}
    for p in emulator.state()["profiles"]:
        a = p["attributes"]
        ids[a.get("email") or a.get("external_id") or a.get("phone_number")] = p["id"]
    return list_id, ids


def member_keys(emulator, list_id):
    """The list's members by email (else external id, else phone), sorted."""
    state = emulator.state()
    profiles = {p["id"]: p["attributes"] for p in state["profiles"]}
    keys = []
    for pid in state["memberships"].get(list_id, []):
        a = profiles.get(pid, {})
        keys.append(a.get("email") or a.get("external_id") or a.get("phone_number") or pid)
    return sorted(keys)


SEED = (
    {"email": "by-email@example.com"},
    {"phone_number": "+14155550100"},
    {"external_id": "crm-3"},
    {"email": "by-id@example.com"},
    {"email": "stays@example.com"},
)


def test_cdc_deletions_remove_list_members_by_email_phone_external_id_or_profile_id(emulator):
    list_id, ids = seed_list(emulator, "VIP", *SEED)
    deleted = "2026-01-01T00:00:00Z"
    rows = [
        record("vip", {"email": "new@example.com", "first_name": "New"}),
        record("vip", {"email": "by-email@example.com", "_ab_cdc_deleted_at": deleted}),
        record("vip", {"phone_number": "+1 415 555 0100", "_ab_cdc_deleted_at": deleted}),
        record("vip", {"external_id": "crm-3", "_ab_cdc_deleted_at": deleted}),
        record("vip", {"klaviyo_profile_id": ids["by-id@example.com"], "_ab_cdc_deleted_at": deleted}),
        record("vip", {"email": "never-synced@example.com", "_ab_cdc_deleted_at": deleted}),
        record("vip", {"_ab_cdc_deleted_at": deleted, "first_name": "no identifier"}),
        platform_state("vip", 7, state_id=1, source_count=7),
    ]
    run = run_connector(
        "write",
        config=config(streams=[{"stream": "vip", "surface": "list_memberships", "target": "VIP"}]),
        catalog=catalog(configured_stream("vip", "append_dedup")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert member_keys(emulator, list_id) == ["new@example.com", "stays@example.com"]
    # Lookups go by identifier with any(); removals by profile id, in one request.
    lookups = requests_to(emulator, "GET", "/api/profiles")
    assert lookups and all("any%28" in r["query"] for r in lookups)
    assert len(requests_to(emulator, "DELETE", f"/api/lists/{list_id}/relationships/profiles")) == 1
    # A person not in Klaviyo is accepted (nothing to remove) and counted; a row without identifier is rejected.
    assert [s["destinationStats"] for s in run.states] == [{"recordCount": 6.0, "rejectedRecordCount": 1.0}]
    target = [line for line in run.logs if line.startswith("Sync summary: Target 'VIP'")]
    assert target == [
        f"Sync summary: Target 'VIP' (Klaviyo list {list_id}, found by its name): 1 row named someone not in Klaviyo "
        "(nothing to remove), 4 profiles removed from the list, 1 profile upserted and added to the list."
    ], target
    # Removing from a list never deletes the profile.
    assert len(emulator.state()["profiles"]) == len(SEED) + 1


def test_soft_delete_removes_every_rows_person_from_the_list(emulator):
    list_id, _ = seed_list(emulator, "Churned", *SEED)
    rows = [record("gone", {"email": "by-email@example.com"}), record("gone", {"external_id": "crm-3"})]
    run = run_connector(
        "write",
        config=config(streams=[{"stream": "gone", "surface": "list_memberships", "target": "Churned"}]),
        catalog=catalog(configured_stream("gone", "soft_delete")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert member_keys(emulator, list_id) == ["+14155550100", "by-id@example.com", "stays@example.com"]
    assert requests_to(emulator, "POST", "/api/profile-bulk-import-jobs")[1:] == []  # nothing upserted


def test_a_dry_run_plans_removals_and_looks_nothing_up(emulator):
    list_id, _ = seed_list(emulator, "VIP", *SEED)
    before = len(emulator.state()["requests"])
    run = run_connector(
        "write",
        config=config(dry_run=True, streams=[{"stream": "vip", "surface": "list_memberships", "target": "VIP"}]),
        catalog=catalog(configured_stream("vip", "soft_delete")),
        stdin=lines([record("vip", {"email": "by-email@example.com"})]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    made = emulator.requests_since(before)
    assert [r for r in made if r["method"] != "GET" or r["path"] == "/api/profiles"] == []
    assert len(member_keys(emulator, list_id)) == len(SEED)
    assert any(
        line.startswith("Dry run plan: Target 'VIP' (Klaviyo list")
        and "1 profile would be removed from the list" in line
        for line in run.logs
    ), run.logs


@pytest.fixture(scope="module")
def deferred_emulator():
    """Bulk imports complete 2 s after Klaviyo accepted them, as real imports are processed later."""
    with EmulatorProcess(extra_args=["--job-processing-seconds", "2"]) as emulator:
        yield emulator


@pytest.fixture
def slow_imports(deferred_emulator):
    deferred_emulator.reset()
    return deferred_emulator


def test_a_person_imported_then_deleted_in_one_sync_ends_removed_and_one_removed_then_added_ends_a_member(slow_imports):
    emulator = slow_imports
    list_id, _ = seed_list(emulator, "VIP", {"email": "readded@example.com"}, {"email": "stays@example.com"})
    deleted = "2026-01-01T00:00:00Z"
    rows = [
        record("vip", {"email": "flash@example.com", "first_name": "Flash"}),  # imported, still queued at Klaviyo ...
        record("vip", {"email": "flash@example.com", "_ab_cdc_deleted_at": deleted}),  # ... when this removal comes
        record("vip", {"email": "readded@example.com", "_ab_cdc_deleted_at": deleted}),
        record("vip", {"email": "readded@example.com", "first_name": "Back"}),  # must be imported after the removal
        stream_state("vip", 4),
    ]
    run = run_connector(
        "write",
        config=config(streams=[{"stream": "vip", "surface": "list_memberships", "target": "VIP"}]),
        catalog=catalog(configured_stream("vip")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    time.sleep(2.5)  # let the last import, accepted at the end of the sync, be processed
    assert member_keys(emulator, list_id) == ["readded@example.com", "stays@example.com"]
    flash = next(p for p in emulator.state()["profiles"] if p["attributes"].get("email") == "flash@example.com")
    assert flash["attributes"]["first_name"] == "Flash"  # the import happened; only the membership is gone
    # The connector polled its import job before removing, and no job of its own was left unfinished then.
    polls = requests_to(emulator, "GET", "/api/profile-bulk-import-jobs/" + emulator.state()["jobs"][1]["id"])
    assert polls
    assert len(run.states) == 1


# -- mirror by identifiers ----------------------------------------------------------------------------


def seed_members(emulator, name, people):
    """A list of these people, imported into it in jobs of 10,000 (waits for deferred jobs)."""
    list_id = emulator.create_list(name)
    jobs = []
    for start in range(0, len(people), 10_000):
        data = [{"type": "profile", "attributes": attributes} for attributes in people[start : start + 10_000]]
        body = {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {"profiles": {"data": data}},
                "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}},
            }
        }
        jobs.append(emulator.api("POST", "/api/profile-bulk-import-jobs", body)["data"]["id"])
    for job in jobs:
        while emulator.api("GET", f"/api/profile-bulk-import-jobs/{job}")["data"]["attributes"]["status"] != "complete":
            time.sleep(0.2)
    return list_id


def person(i):
    """Member i of the seeded list: most by email, every 10th by phone only, every 10th + 5 by external id only."""
    if i % 10 == 0:
        return {"phone_number": f"+1415555{i:04d}"}
    if i % 10 == 5:
        return {"external_id": f"crm-{i}"}
    return {"email": f"member{i}@example.com", "first_name": f"M{i}"}


def test_a_replace_mirrors_a_list_of_thousands_by_identifier_after_the_syncs_own_imports_finished(slow_imports):
    emulator = slow_imports
    list_id = seed_members(emulator, "Audience", [person(i) for i in range(3000)])
    ids = {p["id"]: p["attributes"] for p in emulator.state()["profiles"]}
    by_email = {a["email"]: pid for pid, a in ids.items() if a.get("email")}
    # Rows name existing members by each identifier (profile id, email, phone, external id), and new
    # people this sync imports (their job is still queued at Klaviyo when the last row has been read).
    rows, expected = [], set()
    for i in range(0, 3000, 2):  # every other member is kept
        attributes = person(i)
        if "email" in attributes and i % 4 == 2:
            rows.append({"klaviyo_profile_id": by_email[attributes["email"]]})
        else:
            rows.append(dict(attributes))
        expected.add(attributes.get("email") or attributes.get("phone_number") or attributes.get("external_id"))
    for i in range(400):
        rows.append({"email": f"new{i}@example.com", "plan": "pro"})
        expected.add(f"new{i}@example.com")
    run = run_connector(
        "write",
        config=config(streams=[{"stream": "audience", "surface": "list_memberships", "target": "Audience"}]),
        catalog=catalog(configured_stream("audience", "overwrite")),
        stdin=lines([record("audience", row) for row in rows] + [stream_status("audience")]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(member_keys(emulator, list_id)) == expected
    # The mirror read the list once the sync's own import was complete: the new people were members.
    line = next(line for line in run.logs if "Mirror of list 'Audience'" in line)
    assert "3,400 members before, 1,900 kept, 1,500 removed (absent from this sync)" in line, line
    reads = requests_to(emulator, "GET", f"/api/lists/{list_id}/profiles")
    assert len(reads) == 34 and all("page%5Bsize%5D=100" in r["query"] for r in reads)
    removals = requests_to(emulator, "DELETE", f"/api/lists/{list_id}/relationships/profiles")
    assert len(removals) == 2  # 1,500 ids, 1,000 a request
    assert len(emulator.state()["profiles"]) == 3400  # a mirror removes members, never profiles


def test_one_list_fed_by_both_list_surfaces_keeps_what_either_put_there(slow_imports):
    emulator = slow_imports
    list_id = seed_members(
        emulator,
        "Both",
        [{"email": "by-email@example.com"}, {"email": "by-id@example.com"}, {"email": "absent@example.com"}],
    )
    ids = {p["attributes"]["email"]: p["id"] for p in emulator.state()["profiles"]}
    cfg = config(
        streams=[
            {"stream": "crm", "surface": "list_memberships", "target": "Both"},
            {"stream": "app", "surface": "list_memberships_by_profile_id", "target": "Both"},
        ]
    )
    messages = [
        record("crm", {"email": "by-email@example.com"}),
        record("crm", {"email": "imported@example.com"}),  # imported into the list by this sync
        record("app", {"klaviyo_profile_id": ids["by-id@example.com"]}),
        stream_status("crm"),
        stream_status("app"),
    ]
    configured = catalog(configured_stream("crm", "overwrite"), configured_stream("app", "overwrite"))

    plan = run_connector(
        "write", config={**cfg, "dry_run": True}, catalog=configured, stdin=lines(messages), origin=emulator.url
    )
    assert plan.returncode == 0, plan.stdout[-3000:]
    assert any(
        line.startswith("Dry run plan: List 'Both'") and "1 is not and would be removed" in line for line in plan.logs
    ), plan.logs
    assert requests_to(emulator, "DELETE", f"/api/lists/{list_id}/relationships/profiles") == []

    run = run_connector("write", config=cfg, catalog=configured, stdin=lines(messages), origin=emulator.url)
    assert run.returncode == 0, run.stdout[-3000:]
    # Before, the mirror knew only profile ids and removed what list_memberships had imported.
    assert member_keys(emulator, list_id) == ["by-email@example.com", "by-id@example.com", "imported@example.com"]
    assert any("Mirror of list 'Both'" in line and "1 removed (absent from this sync)" in line for line in run.logs)


def test_check_with_a_deletion_stream_probes_the_scope_and_deletes_nothing(emulator):
    import_profiles(emulator, {"email": "a@example.com"})
    cfg = config(streams=[{"stream": "erasure", "surface": "profile_deletions"}])
    run = run_connector("check", config=cfg, origin=emulator.url)
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}
    state = emulator.state()
    (probe,) = requests_to(emulator, "POST", DELETIONS)
    assert probe["status"] == 400 and state["deletions"] == [] and len(state["profiles"]) == 1

    emulator.fault(method="POST", path=DELETIONS, status=403, count=1, detail="You do not have permission.")
    status = run_connector("check", config=cfg, origin=emulator.url).of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "data-privacy:write" in status["message"]
