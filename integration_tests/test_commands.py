"""spec, check and discover through the real console script."""

import socket

from integration_tests.harness import EMULATOR_KEY, run_connector


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_spec():
    run = run_connector("spec")
    assert run.returncode == 0, run.stderr
    (message,) = run.of_type("SPEC")
    spec = message["spec"]
    props = spec["connectionSpecification"]["properties"]
    assert set(props) == {
        "private_api_key",
        "api_revision",
        "streams",
        "default_surface",
        "target_field",
        "list_mappings",
        "manage_lists",
        "dry_run",
        "max_rejected_share",
        "verify_bulk_jobs",
        "request_timeout_seconds",
        "retry_budget_seconds",
        "max_requests_in_flight",
        "target_registry",
    }
    assert props["private_api_key"]["airbyte_secret"] is True
    assert props["target_registry"]["airbyte_hidden"] is True
    assert spec["supported_destination_sync_modes"] == ["append", "overwrite", "append_dedup", "update", "soft_delete"]


def test_check_succeeds_with_a_good_key(emulator):
    run = run_connector("check", config={"private_api_key": EMULATOR_KEY}, origin=emulator.url)
    assert run.returncode == 0, run.stderr
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}
    requests = emulator.state()["requests"]
    assert [(r["method"], r["path"]) for r in requests] == [("GET", "/api/accounts")]


def test_check_with_a_bad_key_says_what_to_fix_and_never_prints_it(emulator):
    bad = "pk_not_a_real_key_123456"
    run = run_connector("check", config={"private_api_key": bad}, origin=emulator.url)
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "private API key" in status["message"] and "private_api_key" in status["message"]
    assert bad not in run.stdout + run.stderr


def test_check_with_an_unreachable_origin():
    key = "pk_secret_for_unreachable"
    run = run_connector("check", config={"private_api_key": key}, origin=f"http://127.0.0.1:{free_port()}")
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "Could not reach Klaviyo" in status["message"]
    assert key not in run.stdout + run.stderr


def test_check_with_a_bad_revision_is_refused_before_any_request(emulator):
    run = run_connector("check", config={"private_api_key": EMULATOR_KEY, "api_revision": "v2"}, origin=emulator.url)
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "api_revision" in status["message"]
    assert emulator.state()["requests"] == []


def test_discover_lists_each_surface_with_modes_and_matching_keys():
    run = run_connector("discover", config={"private_api_key": "pk_discover_secret"})
    assert run.returncode == 0, run.stderr
    (message,) = run.of_type("DESTINATION_CATALOG")
    operations = message["destination_catalog"]["operations"]
    modes = {}
    for op in operations:
        modes.setdefault(op["object_name"], set()).add(op["sync_mode"])
    assert modes == {
        "profiles": {"append", "append_dedup", "update"},
        "list_memberships": {"append", "append_dedup", "update"},
        "list_memberships_by_profile_id": {"append", "append_dedup", "update", "soft_delete"},
    }
    # A replace is not a mode on the data-activation screen (the platform sends it as generation ids):
    # each operation's schema says what a replace does there.
    descriptions = {op["object_name"]: op["json_schema"]["description"] for op in operations}
    assert "mirrors each target list" in descriptions["list_memberships_by_profile_id"]
    assert "removes nothing" in descriptions["profiles"] and "removes nothing" in descriptions["list_memberships"]
    keys = {op["object_name"]: op["matching_keys"] for op in operations}
    assert keys["profiles"] == [["email"], ["phone_number"], ["external_id"]]
    assert keys["list_memberships"] == [["email"], ["phone_number"], ["external_id"], ["klaviyo_profile_id"]]
    assert keys["list_memberships_by_profile_id"] == [["klaviyo_profile_id"]]
    profiles = next(op for op in operations if op["object_name"] == "profiles")
    assert "email" in profiles["json_schema"]["properties"]
    assert "pk_discover_secret" not in run.stdout + run.stderr


def test_check_with_a_key_missing_a_scope_names_the_scopes(emulator):
    emulator.fault(method="GET", path="/api/accounts", status=403, count=1, detail="You do not have permission.")
    run = run_connector("check", config={"private_api_key": EMULATOR_KEY}, origin=emulator.url)
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "lacks a scope" in status["message"] and "accounts:read" in status["message"]
    assert EMULATOR_KEY not in run.stdout + run.stderr


def test_a_malformed_origin_variable_is_refused(emulator):
    run = run_connector("check", config={"private_api_key": EMULATOR_KEY}, origin="ftp://example.com/path")
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "KLAVIYO_API_ORIGIN" in status["message"]
