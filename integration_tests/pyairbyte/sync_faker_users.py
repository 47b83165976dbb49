"""Sync source-faker's `users` into destination-klaviyo with PyAirbyte, as a PyAirbyte user would.

Runs with the Python of the PyAirbyte environment that integration_tests/test_pyairbyte.py builds
(not the connector's: their dependencies conflict). The destination is the connector's console
script, used as a local executable; KLAVIYO_API_ORIGIN in the environment points it at the emulator.
Prints one JSON line, prefixed with RESULT, for the test to check.

    python sync_faker_users.py --connector PATH --install-root DIR --work DIR --faker-lock FILE --count N
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import airbyte as ab
from airbyte.caches import DuckDBCache


def states(write_result) -> list[dict]:
    return [
        s.model_dump(mode="json", exclude_none=True) for s in write_result.get_state_provider().state_message_artifacts
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connector", required=True, help="the destination-klaviyo console script")
    parser.add_argument("--install-root", required=True, help="where PyAirbyte keeps source-faker's environment")
    parser.add_argument("--work", required=True, help="scratch folder (DuckDB cache)")
    parser.add_argument("--faker-lock", required=True, help="pins source-faker's dependencies")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--api-key", default="pk_emulator_demo_key")
    args = parser.parse_args()

    source = ab.get_source(
        "source-faker",
        config={"count": args.count, "seed": 42, "parallelism": 1},
        # PyAirbyte passes pip_url to `uv pip install` word by word: the lock pins the whole tree.
        pip_url=f"airbyte-source-faker==7.2.1 -r {args.faker_lock}",
        install_root=Path(args.install_root),
    )
    source.select_streams(["users"])

    destination = ab.get_destination(
        "destination-klaviyo",
        config={"private_api_key": args.api_key, "streams": [{"stream": "users", "surface": "profiles"}]},
        local_executable=args.connector,
    )
    destination.check()  # raises unless CONNECTION_STATUS is SUCCEEDED

    work = Path(args.work)
    cache = DuckDBCache(db_path=work / "cache.duckdb", cache_dir=work / "cache")

    # 1. PyAirbyte's default path: read into the local DuckDB cache, then write from the cache. The
    #    destination's echoed states are stored in the cache.
    first = destination.write(source, cache=cache)
    users = cache["users"].to_pandas()

    # 2. Straight from the source to the destination (no cache), incremental from the state the
    #    destination echoed in the first sync.
    second = destination.write(source, cache=False, state_cache=cache)

    result = {
        "cached_emails": sorted(users["email"].tolist()),
        "cached_columns": sorted(users.columns.tolist()),
        "first": {"processed": first.processed_records, "states": states(first)},
        "second": {"processed": second.processed_records, "states": states(second)},
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
