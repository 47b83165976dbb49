"""docs/klaviyo.md's "From a CSV to a sync", run as written, so the walkthrough cannot drift.

The section's files (a code block right after a line naming it, such as `walkthrough/config.json`:)
are written, and its shell block runs in bash, in a scratch folder that links the repository's
`.venv` and `integration_tests` the way the repository root holds them. The one change is the
emulator's port: 8787 in the docs, a free port here, so parallel test runs cannot collide. The
output is then held against what the section says it prints.
"""

import csv
import io
import json
import re
import socket
import subprocess

import orjson

from destination_klaviyo.identifiers import PhoneRules
from destination_klaviyo.surfaces.profiles import render_profile
from integration_tests.harness import ROOT

SECTION = "## From a CSV to a sync"
DOCS_PORT = "8787"
BLOCK = re.compile(r"(?:^`(?P<path>[\w./-]+)`:\n\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```\n", re.M | re.S)
TIMING = re.compile(r"in [\d.,]+ (?:s|min \d+ s) \([\d,]+ rows/s\)")


def walkthrough_blocks():
    text = (ROOT / "docs" / "klaviyo.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [(m["path"], m["lang"], m["body"]) for m in BLOCK.finditer(section)]


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def test_the_csv_walkthrough_runs_as_written(tmp_path):
    blocks = walkthrough_blocks()
    files = {path: body for path, _, body in blocks if path}
    assert set(files) == {
        "walkthrough/customers.csv",
        "walkthrough/config.json",
        "walkthrough/catalog.json",
        "walkthrough/csv_to_airbyte.py",
    }
    (script,) = [body for path, lang, body in blocks if lang == "bash"]
    (stream_status,) = [json.loads(body) for path, lang, body in blocks if lang == "json" and not path]
    (summary,) = [body for path, lang, body in blocks if lang == "" and body.startswith("Sync summary")]

    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    for name in (".venv", "integration_tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    assert script.count(DOCS_PORT) == 2
    done = subprocess.run(
        ["bash", "-e", "-c", script.replace(DOCS_PORT, free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    messages = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    (status,) = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert status == {"status": "SUCCEEDED"}
    (state,) = [m["state"] for m in messages if m["type"] == "STATE"]
    assert state["destinationStats"] == {"recordCount": 3.0, "rejectedRecordCount": 0.0}
    logs = [m["log"]["message"] for m in messages if m["type"] == "LOG"]
    assert any(line.startswith("Record #3 of stream 'customers' (invalid_phone_dropped)") for line in logs), logs
    printed = [TIMING.sub("in <time>", line) for line in logs if line.startswith("Sync summary")]
    assert printed == [TIMING.sub("in <time>", line) for line in summary.splitlines()]
    # The STREAM_STATUS shown for people running `write` by hand is exactly what the script sends.
    sent = (tmp_path / "walkthrough" / "messages.jsonl").read_text().splitlines()
    assert json.loads(sent[-1]) == stream_status
    assert [json.loads(line)["type"] for line in sent] == ["RECORD"] * 3 + ["STATE", "TRACE"]
    # What the section says Ada's profile holds (the emulator is gone with the script: render her row).
    ada = next(csv.DictReader(io.StringIO(files["walkthrough/customers.csv"])))
    attributes = orjson.loads(render_profile(ada, phones=PhoneRules(default_region="US")))["attributes"]
    assert attributes["phone_number"] == "+14158675309" and attributes["location"] == {"city": "San Francisco"}
    assert attributes["properties"] == {"plan": "pro"}
