"""Benchmark: time and peak memory of one `destination-klaviyo write` of N generated profile rows
against the local emulator. Prints numbers; asserts nothing. Run: .venv/bin/python scripts/bench_write.py --rows 100000"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration_tests.harness import CONNECTOR, EMULATOR_KEY, EmulatorProcess, record, stream_state  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--state-every", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"private_api_key": EMULATOR_KEY, "default_surface": "profiles"}))
        catalog = Path(tmp) / "catalog.json"
        stream = {"name": "customers", "json_schema": {}, "supported_sync_modes": ["incremental"]}
        catalog.write_text(
            json.dumps({"streams": [{"stream": stream, "sync_mode": "incremental", "destination_sync_mode": "append"}]})
        )
        stdin = Path(tmp) / "messages.jsonl"
        with stdin.open("w") as out:
            for i in range(args.rows):
                row = {
                    "email": f"u{i}@example.com",
                    "first_name": "Ada",
                    "external_id": i,
                    "plan": "pro",
                    "score": i * 0.5,
                }
                out.write(json.dumps(record("customers", row)) + "\n")
                if (i + 1) % args.state_every == 0:
                    out.write(json.dumps(stream_state("customers", i + 1)) + "\n")
        with EmulatorProcess() as emulator, stdin.open("rb") as source:
            env = dict(os.environ, KLAVIYO_API_ORIGIN=emulator.url)
            started = time.monotonic()
            process = subprocess.Popen(
                [str(CONNECTOR), "write", "--config", str(config), "--catalog", str(catalog)],
                stdin=source,
                stdout=subprocess.DEVNULL,
                env=env,
            )
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.monotonic() - started
            jobs = len(emulator.state()["jobs"])
    print(f"rows: {args.rows}")
    print(f"exit status: {os.waitstatus_to_exitcode(status)}")
    print(f"wall seconds: {elapsed:.2f}")
    print(f"rows per second: {args.rows / elapsed:,.0f}")
    print(f"connector cpu seconds: {usage.ru_utime + usage.ru_stime:.2f}")
    print(f"connector peak RSS MiB: {usage.ru_maxrss / 1024:.1f}")
    print(f"bulk import jobs: {jobs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
