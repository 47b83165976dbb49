"""The emulator, as `python -m integration_tests.klaviyo_emulator` runs it, with data put in first.

Some benchmark cases act on what an account already holds: 500 lists that a first sync finds by
name (`manylists`), list members to unsubscribe (`unsubscribes`), profiles to delete
(`deletions`). Creating those through the API would spend the very rate limits the run measures
(and Klaviyo's 150 list creations a day), so this launcher writes them straight into the store
(`bench/datagen.py`'s `emulator_seed`), then starts the rate limiter's windows afresh and serves,
like the emulator's own command line (same flags, same `--lean` collector settings, same
`KLAVIYO_EMULATOR_LISTENING <url>` line). The ids of the lists it made are written as JSON
(`{name: id}`) to `--lists-out`.

    python bench/seeded_emulator.py --seed-kind manylists --seed-rows 200000 --lists-out lists.json \\
        --api-key KEY --lean --rate-limits klaviyo --latency-ms 250

Run from the repository root (the emulator is imported as `integration_tests.klaviyo_emulator`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402

from integration_tests.klaviyo_emulator.__main__ import build_parser, serve_until_stopped, server_from_args  # noqa: E402


def main() -> int:
    parser = build_parser()
    parser.prog = "python bench/seeded_emulator.py"
    parser.add_argument("--seed-kind", required=True, choices=tuple(datagen.STREAMS), help="bench/datagen.py kind")
    parser.add_argument("--seed-rows", type=int, required=True, help="rows of the input the seed is for")
    parser.add_argument("--seed-value", type=int, default=datagen.SEED, help="the input's random seed (datagen --seed)")
    parser.add_argument("--lists-out", type=Path, help="write {list name: id} of the created lists here")
    args = parser.parse_args()
    emulator = server_from_args(args)
    store = emulator.store
    seed = datagen.emulator_seed(args.seed_kind, args.seed_rows, args.seed_value)
    ids = {name: store.create_list(name, enforce_limit=False)["id"] for name in seed["lists"]}
    members: dict[str, list[str]] = {}
    for email, list_name in seed["profiles"]:
        profile_id, _ = store.upsert_profile({"email": email})
        if list_name is not None:
            members.setdefault(ids[list_name], []).append(profile_id)
    for list_id, profile_ids in members.items():
        store.add_members(list_id, profile_ids)
    if store.rate_limiter is not None:
        store.rate_limiter.reset()  # the windows start now, as for a freshly started emulator
    if args.lists_out:
        args.lists_out.write_text(json.dumps(ids))

    return serve_until_stopped(emulator)


if __name__ == "__main__":
    sys.exit(main())
