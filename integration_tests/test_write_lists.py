"""The two list surfaces, target resolution, the registry, dry run and sync modes, end to end."""

import pytest

from integration_tests.harness import (
    EMULATOR_KEY,
    catalog,
    configured_stream,
    lines,
    record,
    run_connector,
    stream_state,
    stream_status,
)

MUTATING = {"POST", "DELETE", "PATCH", "PUT"}


def config(**extra):
    return {"private_api_key": EMULATOR_KEY, **extra}


def lists_by_name(state):
    found = {}
    for item in state["lists"]:
        found.setdefault(item["name"], []).append(item["id"])
    return found


def list_lookups(requests):
    return [r for r in requests if r["method"] == "GET" and r["path"] == "/api/lists"]


def list_creates(requests):
    return [r for r in requests if r["method"] == "POST" and r["path"] == "/api/lists"]


def control_registry(run):
    (control,) = [m["control"] for m in run.of_type("CONTROL")][-1:]
    assert control["type"] == "CONNECTOR_CONFIG"
    return control["connectorConfig"]["config"]


TRICKY = ['VIP "gold", tier\\1', "Clients, Paris", "Ünïcødé ✓ 顧客", "it's"]


def test_list_memberships_creates_lists_by_exact_name_and_imports_into_them(emulator):
    rows = [
        record("audiences", {"email": f"u{i}@example.com", "list": TRICKY[i % len(TRICKY)], "tier": i})
        for i in range(40)
    ]
    rows.append(record("audiences", {"email": "default@example.com"}))  # no list column: the stream's target
    rows.append(stream_state("audiences", 41))
    cfg = config(streams=[{"stream": "audiences", "surface": "list_memberships", "target": "Everyone"}])
    run = run_connector(
        "write", config=cfg, catalog=catalog(configured_stream("audiences")), stdin=lines(rows), origin=emulator.url
    )
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state(include_bodies=True)
    names = lists_by_name(state)
    assert sorted(names) == sorted(TRICKY + ["Everyone"])
    assert all(len(ids) == 1 for ids in names.values())
    for job in state["jobs"]:
        body = job["request_body"]["data"]
        assert body["relationships"]["lists"]["data"][0]["id"] == job["list_id"]
        assert all("list" not in p["attributes"].get("properties", {}) for p in body["attributes"]["profiles"]["data"])
    emails_in = {
        name: sorted(
            p["attributes"]["email"] for p in state["profiles"] if p["id"] in state["memberships"].get(ids[0], [])
        )
        for name, ids in names.items()
    }
    assert emails_in["Everyone"] == ["default@example.com"]
    assert len(emails_in["Clients, Paris"]) == 10
    assert len(state["jobs"]) == 5  # one job per target list
    # The resolved targets are handed back to Airbyte for the next sync, with the key masked.
    updated = control_registry(run)
    assert updated["private_api_key"] == "**********"
    assert {e["target"]: e["list_id"] for e in updated["target_registry"]} == {n: ids[0] for n, ids in names.items()}
    assert updated["streams"] == cfg["streams"]
    assert EMULATOR_KEY not in run.stdout + run.stderr
    assert [s["stream"]["stream_state"]["cursor"] for s in run.states] == [41]


def test_lookup_finds_existing_lists_with_tricky_names_instead_of_creating(emulator):
    existing = {name: emulator.create_list(name) for name in TRICKY}
    emulator.create_list('VIP "gold", tier')  # a near miss that must not match
    before = len(emulator.state()["requests"])
    rows = [record("a", {"email": f"u{i}@example.com", "list": name}) for i, name in enumerate(TRICKY)]
    run = run_connector(
        "write",
        config=config(default_surface="list_memberships"),
        catalog=catalog(configured_stream("a")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert list_creates(emulator.requests_since(before)) == []
    jobs = emulator.state()["jobs"]
    assert sorted(job["list_id"] for job in jobs) == sorted(existing.values())


def test_paging_through_more_than_ten_lists_of_the_same_name_picks_the_oldest_and_warns(emulator):
    ids = [emulator.create_list("Duplicated") for _ in range(12)]
    before = len(emulator.state()["requests"])
    rows = [record("a", {"email": "x@example.com", "list": "Duplicated"})]
    run = run_connector(
        "write",
        config=config(default_surface="list_memberships"),
        catalog=catalog(configured_stream("a")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    lookups = list_lookups(emulator.requests_since(before))
    # One page of the account's lists (ten of them named so), then the name looked up: 10 per page, two pages.
    assert len(lookups) == 3
    assert emulator.state()["jobs"][0]["list_id"] == ids[0]
    assert any("12 Klaviyo lists are named exactly 'Duplicated'" in line for line in run.logs)


def test_many_new_targets_read_the_account_lists_a_page_per_miss_and_announce_them_in_one_update(emulator):
    ids = {f"Store {i:02d}": emulator.create_list(f"Store {i:02d}") for i in range(40)}
    before = len(emulator.state()["requests"])
    rows = [record("a", {"email": f"p{i}@example.com", "list": f"Store {i % 40:02d}"}) for i in range(120)]
    run = run_connector(
        "write",
        config=config(default_surface="list_memberships"),
        catalog=catalog(configured_stream("a")),
        stdin=lines(rows + [stream_state("a", 1)]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    lookups = list_lookups(emulator.requests_since(before))
    # 40 targets would be 40 lookups by name; the four pages of the account's lists, read one per miss
    # along with the lookup that missed, make it at most eight.
    assert len(lookups) <= 8, [r["query"] for r in lookups]
    assert {j["list_id"] for j in emulator.state()["jobs"]} == set(ids.values())
    controls = [m["control"] for m in run.of_type("CONTROL")]
    assert len(controls) == 1  # one update before the state, not one per target
    registry = {e["target"]: e["list_id"] for e in controls[0]["connectorConfig"]["config"]["target_registry"]}
    assert registry == ids
    kinds = [m["type"] for m in run.messages if m["type"] in ("CONTROL", "STATE")]
    assert kinds == ["CONTROL", "STATE"]


def test_a_target_missing_from_the_whole_account_is_created_after_a_fresh_lookup_and_only_once(emulator):
    for i in range(3):
        emulator.create_list(f"Old {i}")
    before = len(emulator.state()["requests"])
    rows = [record("a", {"email": f"p{i}@example.com", "list": name}) for i, name in enumerate(["Old 0", "New", "New"])]
    run = run_connector(
        "write",
        config=config(default_surface="list_memberships", manage_lists=True),
        catalog=catalog(configured_stream("a")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    requests = emulator.requests_since(before)
    # The one directory page holds every list: 'Old 0' costs nothing more, 'New' one lookup by name, then a create.
    assert ["equals" in r["query"] for r in list_lookups(requests)] == [False, True]
    assert len(list_creates(requests)) == 1
    assert len(lists_by_name(emulator.state())["New"]) == 1


def test_two_streams_feed_one_target_and_the_second_sync_uses_the_registry(emulator):
    streams = [
        {"stream": "web", "surface": "list_memberships", "target": "Newsletter"},
        {"stream": "shop", "surface": "list_memberships", "target": "Newsletter"},
    ]
    configured = catalog(configured_stream("web"), configured_stream("shop"))
    rows = [
        record("web", {"email": "w@example.com"}),
        record("shop", {"email": "s@example.com"}),
        record("web", {"email": "w2@example.com"}),
    ]
    first = run_connector(
        "write", config=config(streams=streams), catalog=configured, stdin=lines(rows), origin=emulator.url
    )
    assert first.returncode == 0, first.stdout[-3000:]
    state = emulator.state()
    (list_id,) = lists_by_name(state)["Newsletter"]
    assert len(state["jobs"]) == 1 and state["jobs"][0]["profile_count"] == 3
    assert len(state["memberships"][list_id]) == 3

    # Airbyte stores the CONNECTOR_CONFIG; the next sync runs with it: no lookup, no create.
    second_config = {**control_registry(first), "private_api_key": EMULATOR_KEY}
    before = len(emulator.state()["requests"])
    second = run_connector(
        "write",
        config=second_config,
        catalog=configured,
        stdin=lines([record("shop", {"email": "s2@example.com"})]),
        origin=emulator.url,
    )
    assert second.returncode == 0, second.stdout[-3000:]
    made = emulator.requests_since(before)
    assert [(r["method"], r["path"]) for r in made] == [("POST", "/api/profile-bulk-import-jobs")]
    assert second.of_type("CONTROL") == []
    assert len(emulator.state()["memberships"][list_id]) == 4


def test_explicit_list_mappings_skip_lookup_and_create(emulator):
    list_id = emulator.create_list("Whatever it is called")
    before = len(emulator.state()["requests"])
    cfg = config(
        default_surface="list_memberships_by_profile_id", list_mappings=[{"target": "vip", "list_id": list_id}]
    )
    rows = [record("members", {"klaviyo_profile_id": "P1", "list": "vip"})]
    run = run_connector(
        "write", config=cfg, catalog=catalog(configured_stream("members")), stdin=lines(rows), origin=emulator.url
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert [(r["method"], r["path"]) for r in emulator.requests_since(before)] == [
        ("POST", f"/api/lists/{list_id}/relationships/profiles")
    ]
    assert emulator.state()["memberships"][list_id] == ["P1"]


def test_manage_lists_off_with_an_unknown_target_fails_clearly_before_writing(emulator):
    cfg = config(default_surface="list_memberships", manage_lists=False)
    run = run_connector(
        "write",
        config=cfg,
        catalog=catalog(configured_stream("a")),
        stdin=lines([record("a", {"email": "x@example.com", "list": "Nope"})]),
        origin=emulator.url,
    )
    assert run.returncode != 0
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "config_error"
    assert "'Nope'" in trace["error"]["message"] and "list_mappings" in trace["error"]["message"]
    assert [r["method"] for r in emulator.state()["requests"] if r["method"] in MUTATING] == []


def test_a_create_whose_response_was_lost_does_not_make_a_second_list(emulator):
    emulator.fault(method="POST", path="/api/lists", status=504, count=1, apply=True)
    run = run_connector(
        "write",
        config=config(default_surface="list_memberships"),
        catalog=catalog(configured_stream("a")),
        stdin=lines([record("a", {"email": "x@example.com", "list": "Once"})]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(lists_by_name(emulator.state())["Once"]) == 1
    assert len(list_creates(emulator.state()["requests"])) == 1


def test_the_daily_list_creation_limit_is_explained(emulator_process):
    from integration_tests.harness import EmulatorProcess

    with EmulatorProcess(extra_args=["--list-create-daily-limit", "0"]) as emulator:
        run = run_connector(
            "write",
            config=config(default_surface="list_memberships"),
            catalog=catalog(configured_stream("a")),
            stdin=lines([record("a", {"email": "x@example.com", "list": "New"})]),
            origin=emulator.url,
        )
    assert run.returncode != 0
    message = run.traces[0]["error"]["message"]
    assert "150 list creations per day" in message and "list_mappings" in message


def test_by_profile_id_adds_removes_cdc_deletes_and_rejects_rows_without_an_id(emulator):
    list_id = emulator.create_list("Members")
    emulator.add_members(list_id, ["P-old"])
    rows = [
        record("m", {"klaviyo_profile_id": "P1"}),
        record("m", {"klaviyo_profile_id": "P2"}),
        record("m", {"email": "no-id@example.com"}),
        record("m", {"klaviyo_profile_id": "P-old", "_ab_cdc_deleted_at": "2026-01-01T00:00:00Z"}),
        record("m", {"klaviyo_profile_id": "P2", "_ab_cdc_deleted_at": "2026-01-01T00:00:00Z"}),  # added, then deleted
        stream_state("m", 5),
    ]
    cfg = config(streams=[{"stream": "m", "surface": "list_memberships_by_profile_id", "target": "Members"}])
    run = run_connector(
        "write",
        config=cfg,
        catalog=catalog(configured_stream("m", "append_dedup")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert emulator.state()["memberships"][list_id] == ["P1"]
    assert any("#3" in line and "missing_identifier" in line for line in run.logs)
    assert "no-id@example.com" not in run.stdout
    assert len(run.states) == 1


def test_soft_delete_removes_every_row(emulator):
    list_id = emulator.create_list("Churned")
    emulator.add_members(list_id, ["A", "B", "C"])
    cfg = config(streams=[{"stream": "gone", "surface": "list_memberships_by_profile_id", "target": "Churned"}])
    rows = [record("gone", {"klaviyo_profile_id": p}) for p in ("A", "C")]
    run = run_connector(
        "write",
        config=cfg,
        catalog=catalog(configured_stream("gone", "soft_delete")),
        stdin=lines(rows),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert emulator.state()["memberships"][list_id] == ["B"]


MIRROR_CONFIG = config(
    streams=[{"stream": "audience", "surface": "list_memberships_by_profile_id", "target": "Mirror"}],
    # These tests are about what a mirror does; its safety net (most of a big list going) has its own.
    mirror_max_removal_share=1,
)
MIRROR_CATALOG = catalog(configured_stream("audience", "overwrite"))


def seeded_mirror(emulator):
    list_id = emulator.create_list("Mirror")
    emulator.add_members(list_id, [f"OLD{i:04d}" for i in range(250)] + ["KEEP1", "KEEP2"])  # > 100: paged reads
    return list_id


def test_overwrite_mirrors_the_list_exactly(emulator):
    list_id = seeded_mirror(emulator)
    rows = [record("audience", {"klaviyo_profile_id": p}) for p in ("KEEP1", "KEEP2", "NEW1")]
    run = run_connector(
        "write",
        config=MIRROR_CONFIG,
        catalog=MIRROR_CATALOG,
        stdin=lines(rows + [stream_status("audience")]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert emulator.state()["memberships"][list_id] == ["KEEP1", "KEEP2", "NEW1"]
    assert any("250 removed (absent from this sync)" in line for line in run.logs)


def test_mirror_removes_nothing_when_the_stream_is_not_complete(emulator):
    list_id = seeded_mirror(emulator)
    rows = [record("audience", {"klaviyo_profile_id": "NEW1"})]
    for tail in ([], [stream_status("audience", "INCOMPLETE")]):
        run = run_connector(
            "write", config=MIRROR_CONFIG, catalog=MIRROR_CATALOG, stdin=lines(rows + tail), origin=emulator.url
        )
        assert run.returncode == 0, run.stdout[-3000:]
        assert len(emulator.state()["memberships"][list_id]) == 253
        assert any("Mirror of stream 'audience' skipped" in line for line in run.logs)


def test_mirror_removes_nothing_when_the_sync_fails(emulator):
    list_id = seeded_mirror(emulator)
    stdin = (
        lines([record("audience", {"klaviyo_profile_id": "NEW1"})]) + "garbage\n" + lines([stream_status("audience")])
    )
    run = run_connector("write", config=MIRROR_CONFIG, catalog=MIRROR_CATALOG, stdin=stdin, origin=emulator.url)
    assert run.returncode != 0
    assert [r for r in emulator.state()["requests"] if r["method"] == "DELETE"] == []
    assert "NEW1" in emulator.state()["memberships"][list_id]

    emulator.fault(method="POST", path="/api/lists/*", status=403, count=1)
    run = run_connector(
        "write",
        config=MIRROR_CONFIG,
        catalog=MIRROR_CATALOG,
        stdin=lines([record("audience", {"klaviyo_profile_id": "NEW2"}), stream_status("audience")]),
        origin=emulator.url,
    )
    assert run.returncode != 0
    assert [r for r in emulator.state()["requests"] if r["method"] == "DELETE"] == []


def test_dry_run_makes_no_mutating_request_and_reports_the_plan(emulator):
    list_id = seeded_mirror(emulator)
    before = len(emulator.state()["requests"])
    cfg = {
        **MIRROR_CONFIG,
        "dry_run": True,
        "streams": MIRROR_CONFIG["streams"]
        + [{"stream": "signups", "surface": "list_memberships", "target": "Brand new list"}],
    }
    configured = catalog(configured_stream("audience", "overwrite"), configured_stream("signups"))
    rows = [
        record("audience", {"klaviyo_profile_id": "KEEP1"}),
        record("audience", {"email": "no-id@example.com"}),
        record("signups", {"email": "s@example.com"}),
        stream_state("signups", 1),
        stream_status("audience"),
    ]
    run = run_connector("write", config=cfg, catalog=configured, stdin=lines(rows), origin=emulator.url)
    assert run.returncode == 0, run.stdout[-3000:]
    made = emulator.requests_since(before)
    assert [r for r in made if r["method"] in MUTATING] == []
    assert run.states == [] and run.of_type("CONTROL") == []
    assert len(emulator.state()["memberships"][list_id]) == 252
    plan = [line for line in run.logs if line.startswith("Dry run plan: ")]
    expected = [
        "Dry run plan: Nothing was sent to Klaviyo. 3 rows read in",
        "Dry run plan: Stream 'audience': 2 rows read; 1 would be delivered, 1 would be rejected.",
        "Dry run plan: Stream 'audience': 1 row would be rejected (missing_identifier: 1).",
        "Dry run plan: Stream 'signups': 1 row read; 1 would be delivered.",
        "Dry run plan: Target 'Brand new list' (no such list yet: a real sync would create it): "
        "1 profile would be upserted and added to the list.",
        f"Dry run plan: Target 'Mirror' (Klaviyo list {list_id}, found by its name): 1 profile would be added to the list.",
        f"Dry run plan: List 'Mirror' ({list_id}) would be mirrored: of its 252 members, 1 is in this sync and would "
        "stay, 251 are not and would be removed.",
        "Dry run plan: Requests a real sync would send: bulk import jobs: 1, list additions: 1, mirror removals: 1.",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in plan), (start, plan)


@pytest.mark.parametrize(
    "surface,mode",
    [
        ("profiles", "overwrite"),
        ("profiles", "soft_delete"),
    ],
)
def test_modes_a_surface_cannot_honour_fail_before_any_request(emulator, surface, mode):
    cfg = config(streams=[{"stream": "s", "surface": surface}])
    run = run_connector(
        "write",
        config=cfg,
        catalog=catalog(configured_stream("s", mode)),
        stdin=lines([record("s", {"email": "a@example.com"})]),
        origin=emulator.url,
    )
    assert run.returncode != 0
    error = run.traces[0]["error"]
    assert error["failure_type"] == "config_error" and mode in error["message"] and surface in error["message"]
    assert emulator.state()["requests"] == []


def test_cdc_deletions_on_the_profiles_surface_are_rejected_not_upserted(emulator):
    cfg = config(default_surface="profiles")
    rows = [
        record("a", {"email": "keep@example.com"}),
        record("a", {"email": "gone@example.com", "_ab_cdc_deleted_at": "2026-01-01"}),
    ]
    run = run_connector(
        "write", config=cfg, catalog=catalog(configured_stream("a")), stdin=lines(rows), origin=emulator.url
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert [p["attributes"]["email"] for p in emulator.state()["profiles"]] == ["keep@example.com"]
    line = next(line for line in run.logs if "delete_not_supported" in line)
    assert "list_memberships, list_memberships_by_profile_id" in line
    assert "profile_deletions" not in line  # a list removal is not an erasure: never suggest it


def test_profile_id_is_sent_as_the_resource_id_on_list_memberships(emulator):
    emulator.api(
        "POST",
        "/api/profile-bulk-import-jobs",
        {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {"data": [{"type": "profile", "attributes": {"email": "known@example.com"}}]}
                },
            }
        },
    )
    (known,) = emulator.state()["profiles"]
    run = run_connector(
        "write",
        config=config(default_surface="list_memberships"),
        catalog=catalog(configured_stream("a")),
        stdin=lines([record("a", {"klaviyo_profile_id": known["id"], "first_name": "Known", "list": "L"})]),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state(include_bodies=True)
    (job,) = [j for j in state["jobs"] if j["list_id"]]
    assert job["request_body"]["data"]["attributes"]["profiles"]["data"] == [
        {"type": "profile", "attributes": {"first_name": "Known"}, "id": known["id"]}
    ]
    (profile,) = state["profiles"]
    assert profile["attributes"] == {"email": "known@example.com", "first_name": "Known"}
    assert state["memberships"][job["list_id"]] == [known["id"]]


@pytest.mark.parametrize("surface", ["list_memberships", "list_memberships_by_profile_id"])
def test_a_mapping_to_a_deleted_list_is_a_config_error_naming_it(emulator, surface):
    cfg = config(default_surface=surface, list_mappings=[{"target": "vip", "list_id": "GONE42"}])
    row = {"klaviyo_profile_id": "P1", "email": "a@example.com", "list": "vip"}
    run = run_connector(
        "write",
        config=cfg,
        catalog=catalog(configured_stream("a")),
        stdin=lines([record("a", row)]),
        origin=emulator.url,
    )
    assert run.returncode != 0
    error = run.traces[0]["error"]
    assert error["failure_type"] == "config_error"
    assert "does not exist (404)" in error["message"] and "list_mappings" in error["message"]
    assert "GONE42" in error["message"] and "'vip'" in error["message"], error["message"]  # the target and the id
