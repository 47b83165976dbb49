"""Mirror: a replace on a mirroring surface makes each target list hold exactly this sync's rows.

A replace is a literal `overwrite` or the platform's truncate marker (routing.py, `is_replace`).

A mirror removes people from lists, so it runs only when it is safe: after the last row, once
every add was accepted, and only for a stream the platform reported complete (a `STREAM_STATUS`
`COMPLETE` trace). A stream reported incomplete, or never reported, removes nothing, and the
summary says so. The list's current members are read (every page), and those that no stream of
this sync put there are removed. A target that got no rows is looked up but never created just to
be emptied.

Who "this sync put there" is comes from every sink that wrote to the list (`SinkPool.members_added`,
an `Identities`): profile ids from `list_memberships_by_profile_id`, and emails, phone numbers,
external ids (and profile ids) from `list_memberships`, so one list can be fed by both. When only
profile ids are involved the members' ids are enough (`GET .../relationships/profiles`); otherwise
the members are read with their identifiers (`GET /api/lists/{id}/profiles`, 100 a page) and a
member is kept when any of its identifiers was named by a row. Before reading, the mirror waits
until Klaviyo finished this sync's own bulk import jobs into the list (`jobs.wait_for_jobs`): the
list is read as the sync left it. If they are not finished within MAX_WAIT_SECONDS, that list is
not mirrored, and the summary says so.

A mirror that would remove more than `mirror_max_removal_share` of a list of at least
MIRROR_SAFETY_MIN_MEMBERS members is taken for an accident (an empty or half-loaded source table)
rather than an intent. Every mirror of the sync is planned before anything is removed, and if any
one of them goes over the share, none runs: a mirror is one decision about the sync's source, and
removing from some lists but not others would leave them inconsistent with each other. The sync
then fails with a config_error that says how many members would have gone and how to allow it. A
dry run plans the same way and fails the same way, so it tells whether the real sync would.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
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

# Lists smaller than this are mirrored whatever share goes: emptying a 12-person test list is normal,
# and a share of a handful of members says little about an accident.
MIRROR_SAFETY_MIN_MEMBERS = 100


@dataclass(frozen=True)
class ListMirror:
    """One list's mirror as planned: its members now, and those absent from this sync."""

    target: str
    list_id: str
    members: int
    absent: list[str]

    def removes_too_much(self, max_share: float) -> bool:
        return self.members >= MIRROR_SAFETY_MIN_MEMBERS and len(self.absent) > max_share * self.members

    def describe(self) -> str:
        share = len(self.absent) / self.members if self.members else 0.0
        return (
            f"{len(self.absent)} of its {self.members} members ({share:.0%}) of list '{self.target}' ({self.list_id})"
        )


class MirrorPlan:
    """Which targets this sync mirrors, which streams the platform reported complete, and the run."""

    def __init__(self, routes: Iterable[StreamRoute]) -> None:
        self.routes = [r for r in routes if r.mirrors]
        self.keys = {r.key for r in self.routes}
        self.targets: dict[StreamKey, set[str]] = defaultdict(set)  # stream -> targets its rows named
        self.complete: set[StreamKey] = set()
        self.incomplete: set[StreamKey] = set()
        self.refusal: Optional[str] = None  # why no mirror ran (too many removals), for the writer to raise

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
        max_removal_share: float,
    ) -> None:
        """Plan every mirror, then run them all, or none when one would remove too much (`refusal`)."""
        blocked: set[str] = set()
        wanted_by_target: set[str] = set()
        for route in self.routes:
            wanted = self.targets[route.key] or {route.default_target or route.name}
            wanted_by_target |= wanted
            if route.key not in self.complete or route.key in self.incomplete:
                blocked |= wanted
                line = (
                    f"Mirror of stream '{route.name}' skipped: the stream was not reported complete "
                    "(no STREAM_STATUS COMPLETE received), so no list member is removed."
                )
                logger.warning(line)
                report.mirrored(line, warning=True)
        planned = []
        for target in sorted(wanted_by_target - blocked):
            list_id = resolver.resolve(target, create=False).list_id
            if list_id is None:
                continue  # absent, or a dry run's list-to-be: no members to remove
            running = sinks.unfinished_imports(list_id, MAX_WAIT_SECONDS)
            if running:
                line = (
                    f"Mirror of target '{target}' (list {list_id}) skipped: {len(running)} bulk import job(s) of this "
                    f"sync into it were still running at Klaviyo after {MAX_WAIT_SECONDS:.0f}s "
                    f"({', '.join(running[:5])}), so no member is removed; the next sync mirrors it."
                )
                logger.warning(line)
                report.mirrored(line, warning=True)
                continue
            planned.append(plan_list_mirror(client, list_id, target, sinks.members_added(list_id)))
        excessive = [mirror for mirror in planned if mirror.removes_too_much(max_removal_share)]
        if excessive:
            self.refusal = _refusal(excessive, max_removal_share, dry_run)
            for mirror in planned:
                report.mirrored(
                    f"Mirror of target '{mirror.target}' (list {mirror.list_id}): not run, nothing removed "
                    f"(it would have removed {mirror.describe()})",
                    warning=True,
                )
            return
        for mirror in planned:
            remove_absent(client, report, mirror, dry_run=dry_run)


def plan_list_mirror(client: Optional[KlaviyoClient], list_id: str, target: str, keep: Identities) -> ListMirror:
    """Read the list's members; those `keep` does not name are absent from this sync."""
    assert client is not None
    if keep.only_profile_ids():
        members = client.list_member_ids(list_id)
        absent = sorted(profile_id for profile_id in set(members) if not keep.includes({"id": profile_id}))
    else:
        read = list(client.get_profiles_for_list(list_id))
        members = [str(member["id"]) for member in read]
        absent = sorted({str(member["id"]) for member in read if not keep.includes(member)})
    return ListMirror(target, list_id, len(members), absent)


def _refusal(excessive: list[ListMirror], max_share: float, dry_run: bool) -> str:
    if dry_run:
        would = "A real sync would not mirror: it would remove"
    else:
        would = "No mirror ran, and no list member was removed: it would have removed"
    return (
        f"{would} {'; '.join(m.describe() for m in excessive)}, more than `mirror_max_removal_share` "
        f"({max_share:.0%}) of a list of {MIRROR_SAFETY_MIN_MEMBERS} members or more. An empty or partly loaded source "
        "table looks like this. If the removals are intended, raise `mirror_max_removal_share` (1 turns the check off) "
        "and sync again; the rows' additions were delivered either way."
    )


def remove_absent(client: Optional[KlaviyoClient], report: SyncReport, mirror: ListMirror, *, dry_run: bool) -> None:
    """Remove the members the mirror found absent from this sync (dry run: count the requests)."""
    for start in range(0, len(mirror.absent), MAX_PROFILES_PER_RELATIONSHIP_REQUEST):
        chunk = mirror.absent[start : start + MAX_PROFILES_PER_RELATIONSHIP_REQUEST]
        if dry_run:
            report.request_sent("mirror removals")
            continue
        assert client is not None
        body = orjson.dumps({"data": [{"type": "profile", "id": profile_id} for profile_id in chunk]})
        client.edit_list_members(mirror.list_id, body, remove=True)
        report.request_sent("mirror removals")
    kept = mirror.members - len(mirror.absent)
    if dry_run:
        line = (
            f"List '{mirror.target}' ({mirror.list_id}) would be mirrored: of its {mirror.members:,} members, "
            f"{kept:,} {'is' if kept == 1 else 'are'} in this sync and would stay, {len(mirror.absent):,} "
            f"{'is' if len(mirror.absent) == 1 else 'are'} not and would be removed."
        )
    else:
        line = (
            f"Mirror of list '{mirror.target}' ({mirror.list_id}): {mirror.members:,} members before, {kept:,} kept, "
            f"{len(mirror.absent):,} removed (absent from this sync)."
        )
    report.mirrored(line)
