"""The connector driven the way the Airbyte platform drives a destination (airbyte-platform, 2026).

With `supportsRefreshes` (a registry entry), the platform rewrites `overwrite` to `append`, marks a
replace with `minimum_generation_id == generation_id > 0`, gives each state an `id` and the source's
count, and appends `STREAM_STATUS COMPLETE` for every stream after a clean source run. Without the
flag (a custom image), a stream keeps its literal mode and no COMPLETE ever arrives.
"""

from integration_tests.harness import (
    EMULATOR_KEY,
    catalog,
    configured_stream,
    lines,
    platform_state,
    platform_stream,
    record,
    run_connector,
    stream_status,
)

MIRROR_CONFIG = {
    "private_api_key": EMULATOR_KEY,
    "streams": [{"stream": "audience", "surface": "list_memberships_by_profile_id", "target": "Mirror"}],
}


def seeded(emulator):
    list_id = emulator.create_list("Mirror")
    emulator.add_members(list_id, [f"OLD{i:02d}" for i in range(30)] + ["KEEP1", "KEEP2"])
    return list_id


def members(emulator, list_id):
    return emulator.state()["memberships"].get(list_id, [])


def deletes(emulator):
    return [r for r in emulator.state()["requests"] if r["method"] == "DELETE"]


def test_a_replace_marked_by_generation_ids_mirrors_the_list_after_the_platforms_complete(emulator):
    list_id = seeded(emulator)
    messages = [
        record("audience", {"klaviyo_profile_id": "KEEP1"}),
        record("audience", {"klaviyo_profile_id": "KEEP2"}),
        platform_state("audience", 2, state_id=1, source_count=2),
        record("audience", {"klaviyo_profile_id": "NEW1"}),
        platform_state("audience", 3, state_id=2, source_count=1),
        stream_status("audience"),  # appended by the platform, not forwarded from the source
    ]
    run = run_connector(
        "write",
        config=MIRROR_CONFIG,
        catalog=catalog(platform_stream("audience", replace=True)),
        stdin=lines(messages),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert members(emulator, list_id) == ["KEEP1", "KEEP2", "NEW1"]
    assert [(s["id"], s["destinationStats"]) for s in run.states] == [
        (1, {"recordCount": 2.0, "rejectedRecordCount": 0.0}),
        (2, {"recordCount": 1.0, "rejectedRecordCount": 0.0}),
    ]
    assert any("30 removed (absent from this sync)" in line for line in run.logs)


def test_an_incremental_stream_on_a_refresh_capable_platform_only_adds(emulator):
    list_id = seeded(emulator)
    messages = [record("audience", {"klaviyo_profile_id": "NEW1"}), stream_status("audience")]
    run = run_connector(
        "write",
        config=MIRROR_CONFIG,
        catalog=catalog(platform_stream("audience", replace=False)),
        stdin=lines(messages),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(members(emulator, list_id)) == 33 and deletes(emulator) == []


def test_an_unrefreshed_stream_with_zero_generations_is_not_a_replace(emulator):
    list_id = seeded(emulator)
    stream = configured_stream("audience", generation_id=0, minimum_generation_id=0, sync_id=1)
    run = run_connector(
        "write",
        config=MIRROR_CONFIG,
        catalog=catalog(stream),
        stdin=lines([record("audience", {"klaviyo_profile_id": "NEW1"}), stream_status("audience")]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(members(emulator, list_id)) == 33 and deletes(emulator) == []


def test_a_clear_with_no_rows_empties_the_list(emulator):
    list_id = seeded(emulator)
    run = run_connector(
        "write",
        config=MIRROR_CONFIG,
        catalog=catalog(platform_stream("audience", replace=True, generation=4)),
        stdin=lines([platform_state("audience", None, state_id=1, source_count=0), stream_status("audience")]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert members(emulator, list_id) == []
    assert [s["destinationStats"] for s in run.states] == [{"recordCount": 0.0, "rejectedRecordCount": 0.0}]


def test_without_refreshes_a_literal_overwrite_never_completed_removes_nothing(emulator):
    list_id = seeded(emulator)
    run = run_connector(
        "write",
        config=MIRROR_CONFIG,
        catalog=catalog(configured_stream("audience", "overwrite")),
        stdin=lines([record("audience", {"klaviyo_profile_id": "NEW1"})]),  # no platform COMPLETE
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(members(emulator, list_id)) == 33 and deletes(emulator) == []
    assert any("Mirror of stream 'audience' skipped" in line for line in run.logs)


def test_a_replace_upserts_and_warns_on_profiles_and_mirrors_on_list_memberships(emulator):
    vip = emulator.create_list("VIP")
    body = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": [{"type": "profile", "attributes": {"email": "old@example.com"}}]}},
            "relationships": {"lists": {"data": [{"type": "list", "id": vip}]}},
        }
    }
    emulator.api("POST", "/api/profile-bulk-import-jobs", body)
    cfg = {
        "private_api_key": EMULATOR_KEY,
        "streams": [
            {"stream": "customers", "surface": "profiles"},
            {"stream": "vip", "surface": "list_memberships", "target": "VIP"},
        ],
        "list_mappings": [{"target": "VIP", "list_id": vip}],
    }
    messages = [
        record("customers", {"email": "a@example.com"}),
        record("customers", {"email": "b@example.com"}),
        record("vip", {"email": "a@example.com"}),
        platform_state("customers", 2, state_id=1, source_count=2),
        platform_state("vip", 1, state_id=2, source_count=1),
        stream_status("customers"),
        stream_status("vip"),
    ]
    run = run_connector(
        "write",
        config=cfg,
        catalog=catalog(platform_stream("customers", replace=True), platform_stream("vip", replace=True)),
        stdin=lines(messages),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state()
    emails = {p["id"]: p["attributes"]["email"] for p in state["profiles"]}
    assert sorted(emails.values()) == ["a@example.com", "b@example.com", "old@example.com"]
    assert [emails[p] for p in state["memberships"][vip]] == ["a@example.com"]  # the list mirrors the stream
    warnings = [line for line in run.logs if "asks to replace its data" in line]
    assert len(warnings) == 1 and "Stream 'customers'" in warnings[0], warnings
    assert "'profiles' surface cannot remove" in warnings[0]
    assert "map it to" not in warnings[0]  # a mirror needs a list: no hint for profiles
    assert any("Mirror of list 'VIP'" in line and "1 removed (absent from this sync)" in line for line in run.logs)
    assert [s["id"] for s in run.states] == [1, 2]


def test_every_state_counts_accepted_and_rejected_rows_summing_to_the_source_count(emulator):
    # Klaviyo refuses the second profile of the first job (a 400 pointing at it).
    emulator.fault(
        method="POST",
        path="/api/profile-bulk-import-jobs",
        status=400,
        count=1,
        pointer="/data/attributes/profiles/data/1/attributes/email",
        detail="Invalid email.",
    )
    messages = [
        record("customers", {"email": "a@example.com"}),
        record("customers", {"email": "b@example.com"}),  # refused by Klaviyo
        record("customers", {"first_name": "No identifier"}),  # rejected while rendering
        platform_state("customers", 3, state_id=11, source_count=3),
        record("customers", {"email": "c@example.com"}),
        record("customers", {"email": "not-an-email"}),
        platform_state("customers", 5, state_id=12, source_count=2),
        record("customers", {"email": "d@example.com"}),
        platform_state("customers", 6, state_id=13, source_count=1),
        stream_status("customers"),
    ]
    run = run_connector(
        "write",
        config={"private_api_key": EMULATOR_KEY, "max_rejected_share": 1},
        catalog=catalog(platform_stream("customers", object_name="profiles")),
        stdin=lines(messages),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    stats = [(s["id"], s["destinationStats"]) for s in run.states]
    assert stats == [
        (11, {"recordCount": 1.0, "rejectedRecordCount": 2.0}),
        (12, {"recordCount": 1.0, "rejectedRecordCount": 1.0}),
        (13, {"recordCount": 1.0, "rejectedRecordCount": 0.0}),
    ]
    for state in run.states:
        stats = state["destinationStats"]
        assert stats["recordCount"] + stats["rejectedRecordCount"] == state["sourceStats"]["recordCount"]
    emails = sorted(p["attributes"]["email"] for p in emulator.state()["profiles"])
    assert emails == ["a@example.com", "c@example.com", "d@example.com"]


def test_a_profiles_add_and_remove_in_one_open_batch_cost_one_request_not_two(emulator):
    list_id = seeded(emulator)
    deleted = "2026-01-01T00:00:00Z"
    rows = [
        {"klaviyo_profile_id": "P1"},
        {"klaviyo_profile_id": "P2"},
        {"klaviyo_profile_id": "P1", "_ab_cdc_deleted_at": deleted},  # replaces P1's pending add
        {"klaviyo_profile_id": "KEEP1", "_ab_cdc_deleted_at": deleted},
        {"klaviyo_profile_id": "KEEP1"},  # replaces KEEP1's pending removal
        {"klaviyo_profile_id": "P3"},
        {"klaviyo_profile_id": "P3"},  # the same add again rides on the first
        {"klaviyo_profile_id": "OLD00", "_ab_cdc_deleted_at": deleted},
    ]
    messages = [record("audience", row) for row in rows] + [platform_state("audience", 8, 1, 8)]
    before = len(emulator.state()["requests"])
    run = run_connector(
        "write",
        config=MIRROR_CONFIG,
        catalog=catalog(platform_stream("audience")),
        stdin=lines(messages),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    edits = [
        (r["method"], r["path"])
        for r in emulator.requests_since(before)
        if r["path"] == f"/api/lists/{list_id}/relationships/profiles" and r["method"] in ("POST", "DELETE")
    ]
    assert sorted(edits) == [("DELETE", edits[0][1]), ("POST", edits[0][1])], edits
    final = set(members(emulator, list_id))
    assert {"P2", "P3", "KEEP1", "KEEP2"} <= final and not {"P1", "OLD00"} & final
    assert [s["destinationStats"] for s in run.states] == [{"recordCount": 8.0, "rejectedRecordCount": 0.0}]
