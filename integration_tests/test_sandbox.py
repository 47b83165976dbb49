"""Live tests against a real Klaviyo account (a sandbox or test account), opt-in.

Skipped unless a key is given: DESTINATIONS__KLAVIYO__PRIVATE_API_KEY in the environment, or
secrets/config.json (git-ignored; see secrets/README.md). CI has neither, so they are skipped there.
They run the real console script against https://a.klaviyo.com:

- `check` with the key;
- a profile import (one profile with a unique email) that the connector verifies (verify_bulk_jobs)
  and the test then finds through Klaviyo's profiles API;
- a temporary managed list: the connector creates it by name (list_memberships_by_profile_id), adds a
  profile by id, then removes it (soft_delete); the list is deleted afterwards (DELETE /api/lists/{id}),
  also when a step failed.

What they leave behind: the test profiles (deleting a profile needs Klaviyo's data-privacy API and
scope); their emails are `airbyte-destination-klaviyo+sandbox-...@example.com` (override the domain
with KLAVIYO_SANDBOX_EMAIL_DOMAIN).

KLAVIYO_SANDBOX_API_ORIGIN (default https://a.klaviyo.com) sends both the connector and the test's
own requests elsewhere: only for trying these tests against a stand-in, never needed with a real key.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Callable, Optional

import pytest
import requests

from integration_tests.harness import ROOT, Run, catalog, configured_stream, lines, record, run_connector, stream_state

ENV_KEY = "DESTINATIONS__KLAVIYO__PRIVATE_API_KEY"
SECRETS_CONFIG = ROOT / "secrets" / "config.json"
DEFAULT_REVISION = "2026-04-15"


def sandbox_config() -> Optional[dict[str, Any]]:
    config: dict[str, Any] = {}
    if SECRETS_CONFIG.is_file():
        config = json.loads(SECRETS_CONFIG.read_text())
    if os.environ.get(ENV_KEY):
        config["private_api_key"] = os.environ[ENV_KEY]
    if not config.get("private_api_key"):
        return None
    # Only the account: the tests bring their own streams, lists and flags.
    return {k: v for k, v in config.items() if k in {"private_api_key", "api_revision"}}


CONFIG = sandbox_config()

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.requires_creds,
    pytest.mark.skipif(CONFIG is None, reason=f"live Klaviyo tests: set {ENV_KEY} or create secrets/config.json"),
]


class Klaviyo:
    """The few Klaviyo calls the tests make themselves (setup, verification, cleanup)."""

    def __init__(self, config: dict[str, Any], origin: str) -> None:
        self.origin = origin.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Klaviyo-API-Key {config['private_api_key']}",
                "revision": config.get("api_revision", DEFAULT_REVISION),
                "Accept": "application/vnd.api+json",
                "Content-Type": "application/vnd.api+json",
            }
        )

    def call(
        self, method: str, path: str, body: Optional[dict] = None, ok: tuple[int, ...] = (200,), **params: str
    ) -> Any:
        for _ in range(5):
            response = self.session.request(
                method, f"{self.origin}{path}", json=body, params=params or None, timeout=60
            )
            if response.status_code != 429:
                break
            time.sleep(min(float(response.headers.get("Retry-After", "2")), 30.0))
        assert response.status_code in ok, f"{method} {path} -> {response.status_code}: {response.text[:500]}"
        return response.json() if response.content else None

    def profile_id_by_email(self, email: str) -> Optional[str]:
        found = self.call("GET", "/api/profiles", **{"filter": f'equals(email,"{email}")'})["data"]
        return found[0]["id"] if found else None

    def create_profile(self, email: str) -> str:
        body = {"data": {"type": "profile", "attributes": {"email": email}}}
        answer = self.call("POST", "/api/profiles", body, ok=(201, 409))
        if "data" in answer:
            return answer["data"]["id"]
        return answer["errors"][0]["meta"]["duplicate_profile_id"]

    def list_member_ids(self, list_id: str) -> set[str]:
        ids: set[str] = set()
        url: Optional[str] = f"/api/lists/{list_id}/relationships/profiles"
        while url:
            page = self.call("GET", url.removeprefix(self.origin))
            ids |= {item["id"] for item in page["data"]}
            url = (page.get("links") or {}).get("next")
        return ids

    def list_ids_named(self, name: str) -> list[str]:
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return [
            item["id"] for item in self.call("GET", "/api/lists", **{"filter": f'equals(name,"{escaped}")'})["data"]
        ]

    def delete_list(self, list_id: str) -> None:
        self.call("DELETE", f"/api/lists/{list_id}", ok=(204, 404))


def eventually(check: Callable[[], bool], what: str, seconds: float = 90.0) -> None:
    """Klaviyo applies some writes asynchronously: wait a bounded time for them to show."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not seen within {seconds:.0f} s: {what}"
        time.sleep(3)


@pytest.fixture(scope="module")
def origin() -> str:
    return os.environ.get("KLAVIYO_SANDBOX_API_ORIGIN", "https://a.klaviyo.com")


@pytest.fixture(scope="module")
def klaviyo(origin) -> Klaviyo:
    return Klaviyo(CONFIG, origin)


@pytest.fixture(scope="module")
def run_id() -> str:
    return uuid.uuid4().hex[:12]


def sandbox_email(run_id: str, what: str) -> str:
    domain = os.environ.get("KLAVIYO_SANDBOX_EMAIL_DOMAIN", "example.com")
    return f"airbyte-destination-klaviyo+sandbox-{run_id}-{what}@{domain}"


def connector(origin: str, command: str, **kwargs: Any) -> Run:
    """The console script against Klaviyo (no KLAVIYO_API_ORIGIN unless a stand-in origin is set)."""
    stand_in = origin if origin != "https://a.klaviyo.com" else None
    return run_connector(command, origin=stand_in, timeout=900, **kwargs)


def test_check_with_the_sandbox_key(origin):
    run = connector(origin, "check", config=CONFIG)
    assert run.returncode == 0, run.stderr
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}
    assert CONFIG["private_api_key"] not in run.stdout + run.stderr


def test_profile_import_into_the_sandbox(origin, klaviyo, run_id):
    email = sandbox_email(run_id, "import")
    config = {**CONFIG, "streams": [{"stream": "customers", "surface": "profiles"}], "verify_bulk_jobs": True}
    messages = [
        record("customers", {"email": email, "first_name": "Sandbox", "airbyte_sandbox_run": run_id}),
        stream_state("customers", 1),
    ]
    run = connector(
        origin,
        "write",
        config=config,
        catalog=catalog(configured_stream("customers", "append_dedup")),
        stdin=lines(messages),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    (state,) = run.states
    assert state["destinationStats"]["recordCount"] == 1
    assert CONFIG["private_api_key"] not in run.stdout + run.stderr
    eventually(lambda: klaviyo.profile_id_by_email(email) is not None, f"profile {email}")


def test_temporary_managed_list_add_and_remove_by_profile_id(origin, klaviyo, run_id):
    profile_id = klaviyo.create_profile(sandbox_email(run_id, "list"))
    list_name = f"airbyte-destination-klaviyo sandbox {run_id}"
    stream = {"stream": "members", "surface": "list_memberships_by_profile_id", "target": list_name}
    config = {**CONFIG, "streams": [stream], "manage_lists": True}
    rows = [record("members", {"klaviyo_profile_id": profile_id}), stream_state("members", 1)]
    list_ids: set[str] = set()
    try:
        # Add: the connector finds no list of that name, creates it, adds the profile, and hands the
        # new list id to Airbyte in a CONNECTOR_CONFIG control message.
        added = connector(
            origin, "write", config=config, catalog=catalog(configured_stream("members", "append")), stdin=lines(rows)
        )
        list_ids |= set(klaviyo.list_ids_named(list_name))
        assert added.returncode == 0, added.stdout[-4000:] + added.stderr[-2000:]
        assert len(added.states) == 1
        (control,) = [m["control"] for m in added.of_type("CONTROL")]
        registry = control["connectorConfig"]["config"]["target_registry"]
        (entry,) = [e for e in registry if e["target"] == list_name]
        list_ids.add(entry["list_id"])
        assert list_ids == {entry["list_id"]}, "exactly one list was created"
        assert control["connectorConfig"]["config"]["private_api_key"] == "**********"
        eventually(lambda: profile_id in klaviyo.list_member_ids(entry["list_id"]), "the profile in the new list")

        # Remove: the next sync reads the registry from its config (as Airbyte stores it) and removes
        # the same profile by id.
        config_after = {**config, "target_registry": registry}
        removed = connector(
            origin,
            "write",
            config=config_after,
            catalog=catalog(configured_stream("members", "soft_delete")),
            stdin=lines(rows),
        )
        assert removed.returncode == 0, removed.stdout[-4000:] + removed.stderr[-2000:]
        assert len(removed.states) == 1
        eventually(
            lambda: profile_id not in klaviyo.list_member_ids(entry["list_id"]), "the profile removed from the list"
        )
        assert set(klaviyo.list_ids_named(list_name)) == {entry["list_id"]}, "no second list"
    finally:
        for list_id in list_ids | set(klaviyo.list_ids_named(list_name)):
            klaviyo.delete_list(list_id)
        assert klaviyo.list_ids_named(list_name) == []
