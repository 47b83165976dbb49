"""How long after Klaviyo accepted a state's rows the connector echoes that state; prints a table.

    .venv/bin/python bench/release_latency.py [--scenario throttled|retrying|held] [--ref REV]

Each scenario runs the real `destination-klaviyo write` against the emulator (its own process),
feeding 12,000 rows of ~2 KB (five bulk import jobs) with a STREAM state every 500 rows, and
reads the connector's stdout line by line, noting when each state arrived. A state is *safe* once
every job holding one of its rows was accepted (the job's `created_at` in the emulator, plus the
emulator's answer latency); its release latency is arrival minus that moment.

- throttled: Klaviyo's rate limits and 250 ms latency per request (`--rate-limits klaviyo`).
- retrying: the third job is answered 503 (with Retry-After: 2) five times before it gets in.
- held: the third job is held 12 s by the emulator before it is accepted.

Nothing is asserted; the process-level tests check the ordering (integration_tests/test_faults.py).
`--ref REV` runs `destination_klaviyo/` as of a git revision (to compare before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration_tests.harness import (  # noqa: E402
    CONNECTOR,
    EMULATOR_KEY,
    EmulatorProcess,
    catalog,
    configured_stream,
    lines,
    record,
    stream_state,
)

ROWS, EVERY, PAD = 12_000, 500, "x" * 2_000
BULK = "/api/profile-bulk-import-jobs"


def messages() -> str:
    out = []
    for i in range(ROWS):
        out.append(record("customers", {"email": f"f{i:05d}@example.com", "rank": i, "pad": PAD}))
        if (i + 1) % EVERY == 0:
            out.append(stream_state("customers", i + 1))
    return lines(out)


def export_ref(ref: str, tmp: Path) -> Path:
    target = tmp / "source"
    target.mkdir()
    archive = subprocess.run(["git", "archive", ref, "destination_klaviyo"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def run(scenario: str, source_dir: Optional[Path], tmp: Path) -> list[tuple[int, float, float]]:
    """(cursor, safe at, echoed at) per state, in seconds since the connector started."""
    extra = ["--rate-limits", "klaviyo", "--latency-ms", "250"] if scenario == "throttled" else []
    latency = 0.25 if scenario == "throttled" else 0.0
    with EmulatorProcess(extra_args=extra) as emulator:
        if scenario == "retrying":
            emulator.fault(method="POST", path=BULK, status=503, retry_after=2, count=5, skip=2)
        elif scenario == "held":
            emulator.fault(method="POST", path=BULK, delay_seconds=12, count=1, skip=2)
        config = {"private_api_key": EMULATOR_KEY, "default_surface": "profiles", "request_timeout_seconds": 60}
        (tmp / "config.json").write_text(json.dumps(config))
        (tmp / "catalog.json").write_text(json.dumps(catalog(configured_stream("customers"))))
        (tmp / "input.jsonl").write_text(messages())
        env = dict(os.environ, KLAVIYO_API_ORIGIN=emulator.url)
        if source_dir is not None:
            env["PYTHONPATH"] = str(source_dir)
        echoed: list[tuple[int, float]] = []
        start = time.time()
        with open(tmp / "input.jsonl", "rb") as stdin:
            process = subprocess.Popen(
                [str(CONNECTOR), "write", "--config", str(tmp / "config.json"), "--catalog", str(tmp / "catalog.json")],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=tmp,
            )
            assert process.stdout is not None
            for line in process.stdout:
                message = json.loads(line)
                if message["type"] == "STATE":
                    echoed.append((message["state"]["stream"]["stream_state"]["cursor"], time.time() - start))
            process.wait()
        state = emulator.state()
    email_of = {p["id"]: p["attributes"]["email"] for p in state["profiles"]}
    accepted_at = [0.0] * ROWS
    for job in state["jobs"]:
        at = datetime.fromisoformat(job["created_at"]).timestamp() + latency - start
        for profile_id in job["profile_ids"]:
            accepted_at[int(email_of[profile_id][1:6])] = at
    out, safe = [], 0.0
    by_cursor = dict(echoed)
    for cursor in range(EVERY, ROWS + 1, EVERY):
        safe = max([safe, *accepted_at[cursor - EVERY : cursor]])
        out.append((cursor, safe, by_cursor.get(cursor, float("nan"))))
    print(f"exit {process.returncode}, {len(echoed)} states echoed", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=("throttled", "retrying", "held"), action="append")
    parser.add_argument("--ref", help="run destination_klaviyo/ as of this git revision (default: working tree)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        source_dir = export_ref(args.ref, tmp) if args.ref else None
        for scenario in args.scenario or ["throttled", "retrying", "held"]:
            rows = run(scenario, source_dir, tmp)
            lags = [echoed - safe for _, safe, echoed in rows]
            print(f"\n{scenario} ({args.ref or 'working tree'}): state cursor, rows safe at (s), echoed at (s), lag (s)")
            for (cursor, safe, echoed), lag in zip(rows, lags):
                print(f"  {cursor:>6} {safe:8.2f} {echoed:8.2f} {lag:8.2f}")
            finite = sorted(lag for lag in lags if lag == lag)
            if finite:
                print(f"  lag: median {finite[len(finite) // 2]:.2f} s, max {finite[-1]:.2f} s")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
