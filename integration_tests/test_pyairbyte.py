"""PyAirbyte syncs source-faker's users into this destination, against the emulator.

PyAirbyte (`airbyte` on PyPI) cannot share the connector's environment (its pins conflict with the
connector's lock), so it gets an environment of its own, built from integration_tests/pyairbyte/
pyairbyte.lock with uv (a PyAirbyte dependency; much faster than pip for its ~180 packages) and kept
under .venv/pyairbyte/<hash of the locks>/ between runs. PyAirbyte itself installs source-faker from
PyPI into its own environment there too, pinned by integration_tests/pyairbyte/source-faker.lock.
From a clean clone this costs about half a minute of downloads; later runs reuse both environments.

The destination is the connector's console script, handed to PyAirbyte as a local executable, so
this is the connector under test, not a published image. PyAirbyte runs offline
(AIRBYTE_OFFLINE_MODE: no registry lookup, no telemetry).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from integration_tests.harness import CONNECTOR, ROOT

HERE = Path(__file__).resolve().parent / "pyairbyte"
PYAIRBYTE_LOCK = HERE / "pyairbyte.lock"
FAKER_LOCK = HERE / "source-faker.lock"
CACHE_ROOT = ROOT / ".venv" / "pyairbyte"
USERS = 50

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (3, 10) <= sys.version_info[:2] <= (3, 12),
        reason="PyAirbyte 0.71.3 needs Python 3.10 to 3.12 (Requires-Python <3.13,>=3.10)",
    ),
]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def pyairbyte_home() -> Path:
    """The PyAirbyte environment (and PyAirbyte's connector installs), built once per lock contents."""
    digest = hashlib.sha256(PYAIRBYTE_LOCK.read_bytes() + FAKER_LOCK.read_bytes() + sys.version.encode()).hexdigest()[
        :16
    ]
    home = CACHE_ROOT / digest
    if (home / ".ready").exists():
        return home
    if CACHE_ROOT.exists():
        for stale in CACHE_ROOT.iterdir():  # environments of older locks, or a half-built one
            shutil.rmtree(stale, ignore_errors=True)
    venv = home / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    uv_pin = re.search(r"^uv==\S+$", PYAIRBYTE_LOCK.read_text(), re.M).group(0)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", uv_pin])
    _run(
        [
            str(venv / "bin" / "uv"),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            "-r",
            str(PYAIRBYTE_LOCK),
        ]
    )
    (home / ".ready").touch()
    return home


@pytest.fixture(scope="module")
def emulator_after_sync(emulator_process):
    emulator_process.reset()
    return emulator_process


@pytest.fixture(scope="module")
def synced(emulator_after_sync, tmp_path_factory) -> dict:
    """One run of the script (two syncs) for every test of this module."""
    emulator = emulator_after_sync
    pyairbyte = pyairbyte_home()
    tmp_path = tmp_path_factory.mktemp("pyairbyte")
    venv_bin = pyairbyte / "venv" / "bin"
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env.update(
        PATH=os.pathsep.join([str(venv_bin), env.get("PATH", "")]),  # PyAirbyte calls `uv` to install the source
        KLAVIYO_API_ORIGIN=emulator.url,  # inherited by the destination process
        AIRBYTE_OFFLINE_MODE="1",
        DO_NOT_TRACK="1",
        NO_LIVE_PROGRESS="1",
        AIRBYTE_PROJECT_DIR=str(tmp_path),
        AIRBYTE_LOGGING_ROOT=str(tmp_path / "logs"),
        AIRBYTE_TEMP_DIR=str(tmp_path / "tmp"),
    )
    (tmp_path / "tmp").mkdir()
    done = _run(
        [
            str(venv_bin / "python"),
            str(HERE / "sync_faker_users.py"),
            "--connector", str(CONNECTOR),
            "--install-root", str(pyairbyte / "connectors"),
            "--work", str(tmp_path),
            "--faker-lock", str(FAKER_LOCK),
            "--count", str(USERS),
        ],
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    result["logs"] = tmp_path / "logs"
    return result


def test_pyairbyte_syncs_faker_users_into_klaviyo_profiles(synced, emulator_after_sync):
    state = emulator_after_sync.state()
    emails = synced["cached_emails"]
    assert len(emails) == len(set(emails)) == USERS

    # Every user PyAirbyte read arrived as one profile, matched on its email, across both syncs.
    profiles = {p["attributes"]["email"]: p["attributes"] for p in state["profiles"]}
    assert sorted(profiles) == emails
    for attributes in profiles.values():
        properties = attributes["properties"]
        # faker's other columns became custom properties; PyAirbyte's bookkeeping columns were not sent
        assert {"id", "name", "age", "occupation", "address"} <= set(properties)
        assert not [key for key in properties if key.startswith(("_airbyte", "_ab_"))]
        assert isinstance(properties["address"], dict) and None not in properties["address"].values()
    assert {"_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta"} <= set(synced["cached_columns"])

    # Two syncs, two bulk import jobs (50 rows fit one), nothing rejected, one check.
    calls = [(r["method"], r["path"], r["status"]) for r in state["requests"]]
    assert calls.count(("GET", "/api/accounts", 200)) == 1
    assert calls.count(("POST", "/api/profile-bulk-import-jobs", 202)) == 2
    assert {c for c in calls if c[0] != "GET"} == {("POST", "/api/profile-bulk-import-jobs", 202)}


def test_pyairbyte_keeps_the_state_the_destination_echoed(synced):
    """PyAirbyte stores the destination's STATE (echoed after Klaviyo accepted the rows) and hands it
    to the source next time: the second sync ran incrementally from it."""
    for sync in ("first", "second"):
        assert synced[sync]["processed"] == USERS
        (state,) = synced[sync]["states"]
        assert state["stream"]["stream_descriptor"]["name"] == "users"
        assert state["destinationStats"]["recordCount"] == USERS
        assert state["sourceStats"]["recordCount"] == USERS
    first_cursor = synced["first"]["states"][0]["stream"]["stream_state"]
    second_cursor = synced["second"]["states"][0]["stream"]["stream_state"]
    assert first_cursor["seed"] == second_cursor["seed"] == 42
    assert second_cursor["updated_at"] >= first_cursor["updated_at"]


def test_pyairbyte_logged_the_connectors_messages_without_the_key(synced):
    logs = [p.read_text() for p in (synced["logs"] / "destination-klaviyo").glob("*.log")]
    assert logs and all(logs)
    assert not [text for text in logs if "pk_emulator_demo_key" in text]
