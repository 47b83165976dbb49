"""Mirror: a replace on a mirroring surface makes each target list hold exactly this sync's rows.

A replace is a literal `overwrite` or the platform's truncate marker (routing.py, `is_replace`).

A mirror removes people from lists, so it runs only when it is safe: after the last row, once
every add was accepted, and only for a stream the platform reported complete (a `STREAM_STATUS`
`COMPLETE` trace). A stream reported incomplete, or never reported, removes nothing. The list's
current members are read (every page), and those that no stream of this sync put there are removed.
A target that got no rows is looked up but never created just to be emptied.

Who "this sync put there" is comes from every sink that wrote to the list (`SinkPool.members_added`,
an `Identities`): profile ids from `list_memberships_by_profile_id`, and emails, phone numbers,
external ids (and profile ids) from `list_memberships`, so one list can be fed by both. When only
profile ids are involved the members' ids are enough (`GET .../relationships/profiles`); otherwise
the members are read with their identifiers (`GET /api/lists/{id}/profiles`, 100 a page) and a
member is kept when any of its identifiers was named by a row. Before reading, the mirror waits
until Klaviyo finished this sync's own bulk import jobs into the list (`jobs.wait_for_jobs`): the
list is read as the sync left it. If they are not finished within MAX_WAIT_SECONDS, that list is
not mirrored, and the summary says so.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Iterable, Optional

import orjson

from destination_klaviyo.client import KlaviyoClient
from destination_klaviyo.identity import Identities
from destination_klaviyo.jobs import MAX_WAIT_SECONDS
from destination_klaviyo.report import SyncReport
from destination_klaviyo.routing import StreamRoute
from destination_klaviyo.sinks import SinkPool
from destination_klaviyo.state import StreamKey
from destination_klaviyo.surfaces.list_memberships_by_profile_id import MAX_PROFILES_PER_RELATIONSHIP_REQUEST
from destination_klaviyo.targets import TargetResolver

logger = logging.getLogger("airbyte")


class MirrorPlan:
    """Which targets this sync mirrors, which streams the platform reported complete, and the run."""

    def __init__(self, routes: Iterable[StreamRoute]) -> None:
        self.routes = [r for r in routes if r.mirrors]
        self.keys = {r.key for r in self.routes}
        self.targets: dict[StreamKey, set[str]] = defaultdict(set)  # stream -> targets its rows named
        self.complete: set[StreamKey] = set()
        self.incomplete: set[StreamKey] = set()

    def note_target(self, route: StreamRoute, target: str) -> None:
        """A row of `route` went to `target`: if the stream mirrors, that list is mirrored."""
        if route.key in self.keys:
            self.targets[route.key].add(target)

    def stream_status(self, route: StreamRoute, status: Optional[str]) -> None:
        if status == "COMPLETE":
            self.complete.add(route.key)
        elif status == "INCOMPLETE":
            self.incomplete.add(route.key)

    def run(
        self,
        client: Optional[KlaviyoClient],
        resolver: TargetResolver,
        sinks: SinkPool,
        report: SyncReport,
        *,
        dry_run: bool,
    ) -> None:
        blocked: set[str] = set()
        wanted_by_target: set[str] = set()
        for route in self.routes:
            wanted = self.targets[route.key] or {route.default_target or route.name}
            wanted_by_target |= wanted
            if route.key not in self.complete or route.key in self.incomplete:
                blocked |= wanted
                logger.warning(
                    f"Mirror of stream '{route.name}' skipped: the stream was not reported complete "
                    "(no STREAM_STATUS COMPLETE received), so no list member is removed."
                )
        for target in sorted(wanted_by_target - blocked):
            list_id = resolver.resolve(target, create=False).list_id
            if list_id is None:
                continue  # absent, or a dry run's list-to-be: no members to remove
            running = sinks.unfinished_imports(list_id, MAX_WAIT_SECONDS)
            if running:
                line = (
                    f"Mirror of target '{target}' (list {list_id}) skipped: {len(running)} bulk import job(s) of this sync "
                    f"into it were still running at Klaviyo after {MAX_WAIT_SECONDS:.0f}s ({', '.join(running[:5])}), "
                    "so no member is removed; the next sync mirrors it."
                )
                logger.warning(line)
                report.mirrored(line)
                continue
            mirror_list(client, report, list_id, target, sinks.members_added(list_id), dry_run=dry_run)


def mirror_list(
    client: Optional[KlaviyoClient],
    report: SyncReport,
    list_id: str,
    target: str,
    keep: Identities,
    *,
    dry_run: bool,
) -> int:
    """Remove the members of `list_id` not in `keep`; return how many were (or would be) removed."""
    assert client is not None
    if keep.only_profile_ids():
        members = client.list_member_ids(list_id)
        absent = sorted(profile_id for profile_id in set(members) if not keep.includes({"id": profile_id}))
    else:
        read = list(client.get_profiles_for_list(list_id))
        members = [str(member["id"]) for member in read]
        absent = sorted({str(member["id"]) for member in read if not keep.includes(member)})
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
