"""Mirror (`overwrite` on `list_memberships_by_profile_id`): make a list hold exactly this sync's rows.

Runs only after the stream is known to be complete and every add was accepted; it then reads the
list's current members (every page) and removes those this sync did not put there.
"""

from __future__ import annotations

import logging
from typing import Optional

import orjson

from destination_klaviyo.batching import MAX_PROFILES_PER_RELATIONSHIP_REQUEST
from destination_klaviyo.client import KlaviyoClient
from destination_klaviyo.report import SyncReport

logger = logging.getLogger("airbyte")


def mirror_list(
    client: Optional[KlaviyoClient],
    report: SyncReport,
    list_id: str,
    target: str,
    keep: set[str],
    *,
    dry_run: bool,
) -> int:
    """Remove the members of `list_id` not in `keep`; return how many were (or would be) removed."""
    assert client is not None
    members = client.list_member_ids(list_id)
    absent = sorted(set(members) - keep)
    for start in range(0, len(absent), MAX_PROFILES_PER_RELATIONSHIP_REQUEST):
        chunk = absent[start : start + MAX_PROFILES_PER_RELATIONSHIP_REQUEST]
        if dry_run:
            report.request_sent("mirror removals planned (dry run)")
            continue
        body = orjson.dumps({"data": [{"type": "profile", "id": profile_id} for profile_id in chunk]})
        client.edit_list_members(list_id, body, remove=True)
        report.request_sent("mirror removals")
    verb = "would remove" if dry_run else "removed"
    report.mirrored(
        f"Mirror of target '{target}' (list {list_id}): {len(members)} members before, "
        f"{len(members) - len(absent)} kept, {verb} {len(absent)} absent from this sync"
    )
    return len(absent)
