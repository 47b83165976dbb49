"""A first sync without surprises (issue 17): what a new user trips over, end to end.

Each test runs the console script against the emulator as Airbyte would, with rows shaped like a
customer CSV a new user brings.
"""

from integration_tests.harness import (
    EMULATOR_KEY,
    catalog,
    configured_stream,
    lines,
    record,
    run_connector,
    stream_state,
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
    assert [w for w in warnings(run) if "(invalid_phone" in w and "#4" not in w] == []

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
    hint = "did you mean `email`? the row has a column `Email`; did you mean `phone_number`? the row has a column `mobile`"
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
        record("customers", {"email": "flat@example.com", "city": "Lyon", "country": "FR", "zip": "69001", "tier": "a"}),
        record("customers", {"email": "both@example.com", "city": "Flat", "zip": "1", "location": {"city": "Object"}}),
    ]
    run = write(emulator, rows, config())
    assert run.returncode == 0, run.stdout[-3000:]
    stored = {p["attributes"]["email"]: p["attributes"] for p in emulator.state()["profiles"]}
    assert stored["flat@example.com"]["location"] == {"city": "Lyon", "country": "FR", "zip": "69001"}
    assert stored["flat@example.com"]["properties"] == {"tier": "a"}
    assert stored["both@example.com"]["location"] == {"city": "Object", "zip": "1"}
    assert "properties" not in stored["both@example.com"]
