"""spec, check and discover through the real console script."""

import json
import socket
import subprocess

import pytest

from destination_klaviyo.surfaces import SURFACES
from integration_tests.harness import (
    CONNECTOR,
    EMULATOR_KEY,
    Run,
    catalog,
    configured_stream,
    lines,
    record,
    run_connector,
    stream_state,
)


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
        "default_phone_region",
        "strict_phone",
        "max_new_lists_per_sync",
        "mirror_max_removal_share",
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
        "list_memberships": {"append", "append_dedup", "update", "soft_delete"},
        "list_memberships_by_profile_id": {"append", "append_dedup", "update", "soft_delete"},
        "events": {"append", "append_dedup", "update"},
        "profile_deletions": {"append", "append_dedup", "update", "soft_delete"},
        "subscriptions": {"append", "append_dedup", "update", "soft_delete"},
        "suppressions": {"append", "append_dedup", "update", "soft_delete"},
    }
    # A replace is not a mode on the data-activation screen (the platform sends it as generation ids):
    # each operation's schema says what a replace does there.
    descriptions = {op["object_name"]: op["json_schema"]["description"] for op in operations}
    assert "mirrors each target list" in descriptions["list_memberships_by_profile_id"]
    assert "mirrors each target list" in descriptions["list_memberships"]
    assert "removes nothing" in descriptions["profiles"]
    assert "removes nothing" in descriptions["events"]
    keys = {op["object_name"]: op["matching_keys"] for op in operations}
    assert keys["profiles"] == [["email"], ["phone_number"], ["external_id"]]
    assert keys["list_memberships"] == [["email"], ["phone_number"], ["external_id"], ["klaviyo_profile_id"]]
    assert keys["list_memberships_by_profile_id"] == [["klaviyo_profile_id"]]
    assert keys["profile_deletions"] == [["klaviyo_profile_id"], ["email"], ["phone_number"], ["external_id"]]
    assert "deletes the profiles of its rows" in descriptions["profile_deletions"]
    assert "Irreversible" in descriptions["profile_deletions"]
    assert keys["events"] == [["email"], ["phone_number"], ["external_id"]]
    assert keys["subscriptions"] == [["email"], ["phone_number"]] and keys["suppressions"] == [["email"]]
    assert "only if they are on it" in descriptions["subscriptions"] and "unsuppresses" in descriptions["suppressions"]
    events = next(op for op in operations if op["object_name"] == "events")
    assert "Event properties" in events["json_schema"]["properties"]["properties"]["description"]
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


# -- input files: read once (a pipe works), and a file that cannot be read is named ---------------


def test_check_discover_and_write_read_their_files_once_so_pipes_work(emulator):
    """The README's `--config <(echo ...)`: a pipe can be read once, so each file is read once."""
    config = {"private_api_key": EMULATOR_KEY, "default_surface": "list_memberships", "target_field": "segment"}
    check = run_connector("check", config=config, origin=emulator.url, via_pipes=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}

    discover = run_connector("discover", config=config, via_pipes=True)
    assert discover.returncode == 0, discover.stdout + discover.stderr
    operations = discover.of_type("DESTINATION_CATALOG")[0]["destination_catalog"]["operations"]
    # The list surfaces' schemas name the configured target column, not the default `list`.
    list_surfaces = {surface.value for surface, spec in SURFACES.items() if spec.needs_target}
    assert list_surfaces == {"list_memberships", "list_memberships_by_profile_id", "subscriptions"}
    for op in operations:
        columns = op["json_schema"]["properties"]
        assert "list" not in columns, op["object_name"]
        assert ("segment" in columns) == (op["object_name"] in list_surfaces), op["object_name"]

    write = run_connector(
        "write",
        config=config,
        catalog=catalog(configured_stream("people")),
        stdin=lines([record("people", {"email": "pipe@example.com", "segment": "Piped"}), stream_state("people", 1)]),
        origin=emulator.url,
        via_pipes=True,
    )
    assert write.returncode == 0, write.stdout[-3000:] + write.stderr[-3000:]
    assert [s["stream"]["stream_state"]["cursor"] for s in write.states] == [1]
    assert [item["name"] for item in emulator.state()["lists"]] == ["Piped"]


def run_with_files(tmp_path, command, config_text, catalog_text=None):
    args = [str(CONNECTOR), command, "--config", config_text]
    if catalog_text is not None:
        args += ["--catalog", catalog_text]
    done = subprocess.run(args, input="", capture_output=True, text=True, timeout=120, cwd=tmp_path)
    return Run(done.returncode, done.stdout, done.stderr)


def failure_message(run, command):
    if command == "check":  # check answers with a connection status, as for any config problem
        (status,) = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
        assert status["status"] == "FAILED"
        return status["message"]
    assert run.returncode != 0
    (trace,) = run.traces
    assert trace["error"]["failure_type"] == "config_error", trace
    return trace["error"]["message"]


@pytest.mark.parametrize("command", ["check", "discover", "write"])
def test_an_input_file_that_cannot_be_read_is_named_with_the_reason_and_never_quoted(tmp_path, command):
    secret = "pk_secret_inside_a_broken_file"
    broken = tmp_path / "broken.json"
    broken.write_text('{"private_api_key": "' + secret + '",')  # cut short
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([{"private_api_key": secret}]))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"private_api_key": secret}))
    cases = [
        (str(tmp_path / "missing.json"), "was not found"),
        (str(tmp_path), "is a directory"),
        (str(broken), "is not valid JSON (line 1, column"),
        (str(listed), "is not an object"),
    ]
    for path, reason in cases:
        catalog_path = str(tmp_path / "missing.json") if command == "write" else None
        run = run_with_files(tmp_path, command, path, catalog_path)
        message = failure_message(run, command)
        assert f"The --config file '{path}'" in message and reason in message, message
        assert secret not in run.stdout + run.stderr
        assert "Something went wrong" not in message
    if command == "write":
        for path, reason in [
            (str(tmp_path / "missing.json"), "was not found"),
            (str(listed), "not a configured catalog"),
        ]:
            message = failure_message(run_with_files(tmp_path, command, str(good), path), command)
            assert f"The --catalog file '{path}'" in message and reason in message, message
