"""The fewest bulk import jobs an input file fits in: each row rendered by the connector's own
`render_profile`, jobs filled in row order up to Klaviyo's limits.

A Bulk Profile Import job holds at most 10,000 profiles and 5 MB of body (spec:
`bulk_import_profiles`; 5 MB read as 5,000,000 bytes, as the connector reads it). Filling jobs in
row order, each until the next profile would not fit, gives the fewest jobs for that order (a
job can only gain by taking a profile earlier, never by leaving one for later), so "profiles per
job that fit" is rows / that number. With `--group-column` (list_memberships: the target column)
each list has its own stream of jobs, as in the connector, and the fewest is the sum over lists.

This runs in its own process with the benchmarked connector first on `PYTHONPATH` (`run.py`
passes `--ref`'s export), so the sizes are those of the rendering being measured. It prints one
JSON object: rows, rejected rows, the envelope, the item sizes (mean, min, max), and per group
`[rows, fewest jobs, item bytes, rows of the jobs before the last]` (the last job of a group holds
what is left; the others were filled until the next profile did not fit).

    .venv/bin/python bench/packing.py --data FILE [--group-column list]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

import orjson

MAX_PROFILES_PER_JOB = 10_000  # spec: "Accepts up to 10,000 profiles per request"
MAX_JOB_BODY_BYTES = 5_000_000  # spec: "The maximum allowed payload size is 5MB"
# The job body around the comma-joined profiles (a list relationship adds its suffix on
# list_memberships; a Klaviyo list id is 6 characters).
PREFIX = b'{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":['
SUFFIX = b"]}}}}"
LIST_SUFFIX = b']}},"relationships":{"lists":{"data":[{"type":"list","id":"AbC123"}]}}}}'


class Jobs:
    """Jobs of one stream (one list), filled in row order."""

    __slots__ = ("envelope", "jobs", "count", "size", "rows", "item_bytes", "closed_rows")

    def __init__(self, envelope: int) -> None:
        self.envelope = envelope
        self.jobs = 0
        self.count = 0  # profiles in the job being filled
        self.size = envelope  # its body size
        self.rows = 0
        self.item_bytes = 0
        self.closed_rows = 0  # rows in the jobs before the last (those that were filled up)

    def add(self, item: int) -> None:
        self.rows += 1
        self.item_bytes += item
        if self.count and (self.count >= MAX_PROFILES_PER_JOB or self.size + 1 + item > MAX_JOB_BODY_BYTES):
            self.closed_rows += self.count
            self.count, self.size = 0, self.envelope
        if not self.count:
            self.jobs += 1
            self.size += item
        else:
            self.size += 1 + item
        self.count += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--group-column", help="one job stream per value of this column (list_memberships)")
    args = parser.parse_args()
    from destination_klaviyo.surfaces.profiles import render_profile  # the benchmarked connector's

    options: dict[str, Any] = {}
    if args.group_column:  # as ListMembershipSink renders: profile ids accepted, target column excluded
        options = {"accept_profile_id": True, "excluded_columns": (args.group_column,)}
    envelope = len(PREFIX) + len(LIST_SUFFIX if args.group_column else SUFFIX)
    groups: dict[Optional[str], Jobs] = {}
    total = count = rejected = 0
    smallest, largest = None, 0
    with args.data.open("rb") as lines:
        for line in lines:
            if not line.startswith(b'{"type":"RECORD"'):
                continue
            data = orjson.loads(line)["record"]["data"]
            rendered = render_profile(data, **options)
            body = rendered if isinstance(rendered, bytes) else getattr(rendered, "body", None)
            if not isinstance(body, bytes):
                rejected += 1
                continue
            size = len(body)
            key = data.get(args.group_column) if args.group_column else None
            jobs = groups.get(key)
            if jobs is None:
                jobs = groups[key] = Jobs(envelope)
            jobs.add(size)
            count += 1
            total += size
            smallest = size if smallest is None else min(smallest, size)
            largest = max(largest, size)
    json.dump(
        {
            "rows": count,
            "rejected": rejected,
            "envelope_bytes": envelope,
            "item_bytes": {"mean": total / count if count else None, "min": smallest, "max": largest, "total": total},
            "fewest_jobs": sum(j.jobs for j in groups.values()),
            # per group: rows, fewest jobs, item bytes, rows in the jobs before the last (the full ones)
            "groups": {str(k): [j.rows, j.jobs, j.item_bytes, j.closed_rows] for k, j in groups.items()},
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
