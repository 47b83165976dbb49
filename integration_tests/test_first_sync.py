"""A first sync without surprises (issue 17): what a new user trips over, end to end.

Each test runs the console script against the emulator as Airbyte would, with rows shaped like a
customer CSV a new user brings.
"""

import json
import os
import queue
import subprocess
import threading
import time

from integration_tests.harness import (
    CONNECTOR,
    EMULATOR_KEY,
    catalog,
    configured_stream,
    lines,
    record,
    run_connector,
    stream_state,
    stream_status,
)


def config(**extra):
    return {"private_api_key": EMULATOR_KEY, "streams": [{"stream": "customers", "surface": "profiles"}], **extra}


def write(emulator, rows, cfg, configured=None):
    return run_connector(
        "write",
        config=cfg,
        catalog=configured or catalog(configured_stream("customers")),
        stdin=lines(rows),
        origin=emulator.url,
    )


def warnings(run):
    return [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]


def phones_by_email(emulator):
    return {p["attributes"].get("email"): p["attributes"].get("phone_number") for p in emulator.state()["profiles"]}


CSV_ROWS = [
    {"email": "ada@example.com", "phone_number": "(415) 867-5309", "first_name": "Ada"},
    {"email": "grace@example.com", "phone_number": "212.736.5000", "first_name": "Grace"},
    {"email": "alan@example.com", "phone_number": "+44 20 7946 0958", "first_name": "Alan"},
    {"email": "edsger@example.com", "phone_number": "n/a", "first_name": "Edsger"},
    {"phone_number": "(415) 555-0101", "first_name": "Phone only"},
]


def test_national_phones_with_a_region_and_unusable_phones_dropped_not_rejecting_the_row(emulator):
    rows = [record("customers", data) for data in CSV_ROWS] + [stream_state("customers", 5)]

    # Without default_phone_region: rows with an email still go, without the phone; the phone-only row
    # cannot reach a profile and is rejected.
    run = write(emulator, rows, config())
    assert run.returncode == 0, run.stdout[-3000:]
    assert phones_by_email(emulator) == {
        "ada@example.com": None,
        "grace@example.com": None,
        "alan@example.com": "+442079460958",
        "edsger@example.com": None,
    }
    dropped = [w for w in warnings(run) if "(invalid_phone_dropped)" in w]
    assert [w.split(" of stream")[0] for w in dropped] == ["Record #1", "Record #2", "Record #4"]
    assert all("column 'phone_number'" in w and "sent without a phone number" in w for w in dropped)
    assert any("#5" in w and "(invalid_phone)" in w for w in warnings(run))
    assert [s["destinationStats"] for s in run.states] == [{"recordCount": 4.0, "rejectedRecordCount": 1.0}]
    output = run.stdout + run.stderr
    assert "867-5309" not in output and "n/a" not in output

    # With default_phone_region US: national formats become E.164.
    emulator.reset()
    run = write(emulator, rows, config(default_phone_region="US"))
    assert run.returncode == 0, run.stdout[-3000:]
    assert phones_by_email(emulator) == {
        "ada@example.com": "+14158675309",
        "grace@example.com": "+12127365000",
        "alan@example.com": "+442079460958",
        "edsger@example.com": None,
        None: "+14155550101",
    }
    per_row = [w for w in warnings(run) if w.startswith(("Record #", "Rejected record #"))]
    assert [w.split(" of stream")[0] for w in per_row] == ["Record #4"]

    # strict_phone: the row with an unusable phone is rejected instead.
    emulator.reset()
    run = write(emulator, rows, config(default_phone_region="US", strict_phone=True, max_rejected_share=0.9))
    assert run.returncode == 0, run.stdout[-3000:]
    assert "edsger@example.com" not in phones_by_email(emulator)
    assert any("#4" in w and "(invalid_phone)" in w for w in warnings(run))


def test_a_misnamed_identifier_column_gets_a_did_you_mean_once_per_stream(emulator):
    rows = [record("customers", {"Email": f"u{i}@example.com", "mobile": "+15005550006"}) for i in range(3)]
    rows.append(record("customers", {"email": "right@example.com", "mobile": "+15005550006"}))
    run = write(emulator, rows, config(max_rejected_share=1))
    assert run.returncode == 0, run.stdout[-3000:]
    hint = (
        "did you mean `email`? the row has a column `Email`; did you mean `phone_number`? the row has a column `mobile`"
    )
    per_row = [w for w in warnings(run) if w.startswith("Rejected record #")]
    assert len(per_row) == 3 and all("(missing_identifier)" in w and hint in w for w in per_row)
    per_stream = [w for w in warnings(run) if w.startswith("Stream 'customers': rows without an identifier")]
    assert len(per_stream) == 1 and hint in per_stream[0] and "never renamed" in per_stream[0]
    # Only suggested, never renamed: the row that has an identifier keeps `mobile` as a custom property.
    (profile,) = emulator.state()["profiles"]
    assert profile["attributes"] == {"email": "right@example.com", "properties": {"mobile": "+15005550006"}}
    assert "u0@example.com" not in run.stdout + run.stderr


def test_flat_location_columns_land_in_the_profiles_location(emulator):
    rows = [
        record(
            "customers", {"email": "flat@example.com", "city": "Lyon", "country": "FR", "zip": "69001", "tier": "a"}
        ),
        record("customers", {"email": "both@example.com", "city": "Flat", "zip": "1", "location": {"city": "Object"}}),
    ]
    run = write(emulator, rows, config())
    assert run.returncode == 0, run.stdout[-3000:]
    stored = {p["attributes"]["email"]: p["attributes"] for p in emulator.state()["profiles"]}
    assert stored["flat@example.com"]["location"] == {"city": "Lyon", "country": "FR", "zip": "69001"}
    assert stored["flat@example.com"]["properties"] == {"tier": "a"}
    assert stored["both@example.com"]["location"] == {"city": "Object", "zip": "1"}
    assert "properties" not in stored["both@example.com"]


# -- mirror safety -----------------------------------------------------------------------------------

MUTATING = {"POST", "DELETE", "PATCH", "PUT"}


def mirror_config(**extra):
    streams = [
        {"stream": "big", "surface": "list_memberships_by_profile_id", "target": "Big"},
        {"stream": "small", "surface": "list_memberships_by_profile_id", "target": "Small"},
    ]
    return {"private_api_key": EMULATOR_KEY, "streams": streams, **extra}


MIRROR_CATALOG = catalog(configured_stream("big", "overwrite"), configured_stream("small", "overwrite"))


def seeded_lists(emulator):
    big = emulator.create_list("Big")
    emulator.add_members(big, [f"B{i:03d}" for i in range(150)])
    small = emulator.create_list("Small")
    emulator.add_members(small, [f"S{i}" for i in range(10)])
    return big, small


def mirror_rows(keep_big, keep_small=5):
    rows = [record("big", {"klaviyo_profile_id": f"B{i:03d}"}) for i in range(keep_big)]
    rows += [record("small", {"klaviyo_profile_id": f"S{i}"}) for i in range(keep_small)]
    return rows + [stream_status("big"), stream_status("small")]


def test_a_mirror_removing_most_of_a_big_list_removes_nothing_anywhere_and_fails_saying_how_to_allow_it(emulator):
    big, small = seeded_lists(emulator)
    before = len(emulator.state()["requests"])
    run = write(emulator, mirror_rows(keep_big=50), mirror_config(), MIRROR_CATALOG)
    assert run.returncode != 0
    (trace,) = run.traces
    message = trace["error"]["message"]
    assert trace["error"]["failure_type"] == "config_error"
    assert "100 of its 150 members (67%) of list 'Big'" in message
    assert "mirror_max_removal_share" in message and "(50%)" in message and "1 turns the check off" in message
    # Evaluated first, for every list: the small list's mirror (5 of 10, under the size floor) did not run either.
    assert [r for r in emulator.requests_since(before) if r["method"] == "DELETE"] == []
    state = emulator.state()["memberships"]
    assert len(state[big]) == 150 and len(state[small]) == 10
    summary = [w for w in warnings(run) if w.startswith("Sync summary (failed): Mirror of target")]
    assert len(summary) == 2 and all("not run, nothing removed" in line for line in summary), summary
    # A failed sync's whole summary is on WARN lines, its headline included.
    assert any(w.startswith("Sync summary (failed): 55 rows read in") for w in warnings(run)), warnings(run)
    assert not [line for line in infos(run) if line.startswith("Sync summary")]

    # Raising the share (1 turns the check off) lets the same mirror run.
    run = write(emulator, mirror_rows(keep_big=50), mirror_config(mirror_max_removal_share=1), MIRROR_CATALOG)
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state()["memberships"]
    assert len(state[big]) == 50 and len(state[small]) == 5


def test_an_empty_source_table_does_not_empty_a_big_list_and_a_dry_run_fails_the_same_way(emulator):
    big, _ = seeded_lists(emulator)
    empty = [stream_status("big"), stream_status("small")]
    for cfg in (mirror_config(), mirror_config(dry_run=True)):
        before = len(emulator.state()["requests"])
        run = write(emulator, empty, cfg, MIRROR_CATALOG)
        assert run.returncode != 0
        assert "150 of its 150 members (100%) of list 'Big'" in run.traces[0]["error"]["message"]
        assert [r for r in emulator.requests_since(before) if r["method"] in MUTATING] == []
        assert len(emulator.state()["memberships"][big]) == 150
    assert "A real sync would not mirror" in run.traces[0]["error"]["message"]
    assert any(w.startswith("Dry run plan (failed): Mirror of target 'Big'") for w in warnings(run))


def test_a_mirror_skipped_for_lack_of_complete_is_in_the_summary(emulator):
    big, _ = seeded_lists(emulator)
    rows = [record("big", {"klaviyo_profile_id": "B000"})]  # no STREAM_STATUS COMPLETE
    run = write(emulator, rows, mirror_config(), MIRROR_CATALOG)
    assert run.returncode == 0, run.stdout[-3000:]
    assert any(
        w.startswith("Sync summary: Mirror of stream 'big' skipped: the stream was not reported complete")
        for w in warnings(run)
    ), warnings(run)
    assert len(emulator.state()["memberships"][big]) == 150


# -- targets -----------------------------------------------------------------------------------------


def audiences_config(**extra):
    return {
        "private_api_key": EMULATOR_KEY,
        "streams": [{"stream": "audiences", "surface": "list_memberships", "target": "Everyone "}],
        **extra,
    }


def infos(run):
    return [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "INFO"]


def test_targets_are_trimmed_and_a_fallback_to_the_default_target_is_logged_once(emulator):
    rows = [
        record("audiences", {"email": "a@example.com", "list": "VIP "}),
        record("audiences", {"email": "b@example.com", "list": " VIP"}),
        record("audiences", {"email": "c@example.com", "list": "VIP"}),
        record("audiences", {"email": "d@example.com", "list": "   "}),
        record("audiences", {"email": "e@example.com"}),
        record("audiences", {"email": "f@example.com", "list": None}),
    ]
    run = write(emulator, rows, audiences_config(), catalog(configured_stream("audiences")))
    assert run.returncode == 0, run.stdout[-3000:]
    state = emulator.state()
    names = sorted(item["name"] for item in state["lists"])
    assert names == ["Everyone", "VIP"]
    vip = next(item["id"] for item in state["lists"] if item["name"] == "VIP")
    assert len(state["memberships"][vip]) == 3
    assert any("#4" in w and "(invalid_target)" in w for w in warnings(run))
    fallback = [line for line in infos(run) if "go to the stream's default target" in line]
    assert fallback == [
        "Stream 'audiences': rows with no value in the target column 'list' go to the stream's default target "
        "'Everyone' (its `target` in `streams`). Logged once per stream."
    ]


def test_at_most_max_new_lists_per_sync_are_created_and_the_summary_names_the_others(emulator):
    existing = emulator.create_list("Existing")
    targets = ["Existing", "New 1", "New 2", "New 3", "New 4", "New 3"]
    rows = [record("audiences", {"email": f"u{i}@example.com", "list": t}) for i, t in enumerate(targets)]
    for cfg in (audiences_config(max_new_lists_per_sync=2, dry_run=True), audiences_config(max_new_lists_per_sync=2)):
        before = len(emulator.state()["requests"])
        run = write(emulator, rows, cfg, catalog(configured_stream("audiences")))
        assert run.returncode == 0, run.stdout[-3000:]
        refused = [w for w in warnings(run) if "(too_many_new_lists)" in w and w.startswith("Rejected record")]
        assert [w.split(" of stream")[0] for w in refused] == [
            "Rejected record #4",
            "Rejected record #5",
            "Rejected record #6",
        ]
        assert all("max_new_lists_per_sync" in w and "New 3" not in w for w in refused)  # a row names no value
        prefix = "Dry run plan" if cfg.get("dry_run") else "Sync summary"
        (summary,) = [w for w in warnings(run) if w.startswith(f"{prefix}: 2 new lists")]
        assert "'New 3', 'New 4'" in summary and "raise `max_new_lists_per_sync`" in summary
        if cfg.get("dry_run"):
            assert [r for r in emulator.requests_since(before) if r["method"] in MUTATING] == []
    names = sorted(item["name"] for item in emulator.state()["lists"])
    assert names == ["Existing", "New 1", "New 2"]  # finding "Existing" did not count
    memberships = emulator.state()["memberships"]
    assert len(memberships[existing]) == 1


# -- what a user reads: progress by the clock, the summary --------------------------------------------


def test_progress_is_logged_by_the_clock_while_the_source_is_slow_and_the_summary_says_how_it_went(emulator, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config()))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog(configured_stream("customers"))))
    args = [str(CONNECTOR), "write", "--config", "config.json", "--catalog", "catalog.json"]
    env = {**os.environ, "KLAVIYO_API_ORIGIN": emulator.url}
    process = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out: "queue.Queue[str]" = queue.Queue()
    reader = threading.Thread(target=lambda: [out.put(line) for line in process.stdout], daemon=True)
    reader.start()
    try:
        process.stdin.write(lines([record("customers", {"email": "first@example.com"})]))
        process.stdin.flush()
        # The source now pauses: the connector is blocked reading stdin, and still says how it is doing
        # (the first line counts the row read; the next one, with no new row, says what it waits for).
        seen = []
        deadline = time.monotonic() + 60
        while not any("Progress:" in line and "waiting for the source" in line for line in seen):
            assert time.monotonic() < deadline, seen
            try:
                seen.append(out.get(timeout=1))
            except queue.Empty:
                pass
        process.stdin.write(lines([record("customers", {"email": "second@example.com"}), stream_state("customers", 2)]))
        process.stdin.close()
        assert process.wait(timeout=120) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)
    while not out.empty():
        seen.append(out.get())
    messages = [json.loads(line) for line in seen if line.strip()]  # every stdout line is one whole message
    logs = [(m["log"]["level"], m["log"]["message"]) for m in messages if m["type"] == "LOG"]
    progress = [message for level, message in logs if message.startswith("Progress:")]
    assert progress[0].startswith("Progress: read 1 row (") and "waiting" not in progress[0], progress
    assert progress[1].startswith("Progress: read 1 row (0 rows/s now") and "waiting for the source" in progress[1]
    (headline,) = [(level, message) for level, message in logs if message.startswith("Sync summary: 2 rows read in")]
    assert headline[0] == "INFO" and "rows/s" in headline[1]
    assert "2 delivered to Klaviyo, 0 rejected; 1 state passed back to Airbyte." in headline[1]
    assert all(level == "INFO" for level, message in logs if message.startswith("Sync summary"))
