"""Which list a row goes to: its target (a list name), and the Klaviyo list id behind it.

A row's target is its `target_field` column when present and non-null, else the stream's `target`
in `streams`, else the stream name (a fallback logged once per stream). Targets are compared
without leading and trailing whitespace (config.py trims those of the config), so `'VIP '` is not a
second list beside `VIP`. Each target is resolved once per sync. Order: the user's `list_mappings`,
then the connector's target registry (`target_registry`, which the connector persists in its own
config through Airbyte's CONNECTOR_CONFIG control message), then a Klaviyo list named exactly like
the target, then, with `manage_lists`, a new list.

Creating a list is the one non-idempotent call, and Klaviyo allows only 150 a day. A create that
failed in a way that may still have succeeded (timeout, dropped connection, 5xx) is followed by a
fresh lookup before any new attempt, so a retry never makes a second list. A sync creates at most
`max_new_lists_per_sync` lists (a dry run counts those it would create): a data bug in the target
column (emails in it, say) must not make hundreds of lists. Rows of further new targets are rejected
(`too_many_new_lists`) and the report names those targets; finding an existing list costs nothing.

Looking a target up by name costs one request (`GET /api/lists`, equals(name)), made while the
rows wait: a first sync with 500 targets would spend two minutes reading nothing. So each lookup
that misses also reads one more page of the account's lists, oldest first (`ListDirectory`): after
as many misses as the account has pages of 10 lists, every later target is answered without a
request. At worst a sync makes twice the lookups it would have (a big account, few targets). A
list is still created only after a fresh lookup by its name finds none.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient, KlaviyoUnreachable
from destination_klaviyo.config import KlaviyoConfig
from destination_klaviyo.errors import config_error, transient_error
from destination_klaviyo.registry import registry_update_message
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.report import SyncReport
from destination_klaviyo.routing import StreamRoute
from destination_klaviyo.state import StreamKey
from destination_klaviyo.totality import target_problem

logger = logging.getLogger("airbyte")

CREATE_ATTEMPTS = 4
# A 429 on list creation whose Retry-After is longer than this is the daily cap, not a burst limit.
DAILY_LIMIT_RETRY_AFTER_SECONDS = 300.0


class ListDirectory:
    """The account's lists by name, read a page at a time as lookups miss (see the module docstring).

    Pages come oldest first, so the first id a name gets is the oldest list of that name: the one a
    lookup by name would choose."""

    def __init__(self, client: KlaviyoClient) -> None:
        self.client = client
        self.ids: dict[str, list[str]] = {}  # name -> ids, oldest first
        self.pages_read = 0
        self.complete = False
        self._next: Optional[str] = None

    def read_page(self) -> None:
        if self.complete:
            return
        items, self._next = self.client.lists_page(self._next)
        self.pages_read += 1
        self.complete = self._next is None
        for item in items:
            name = (item.get("attributes") or {}).get("name")
            if isinstance(name, str):
                self.ids.setdefault(name, []).append(str(item["id"]))


@dataclass(frozen=True)
class Resolution:
    """The list a target resolved to, how it was found, and whether its rows are refused."""

    target: str
    list_id: Optional[str]  # None in a dry run for a list that would be created, or when refused
    how: str  # list_mappings | registry | lookup | created | would create (dry run), for logs
    found_by_us: bool = False  # found by name or created: a new entry for the target registry
    refusal: Optional[Rejection] = None  # set: the target's rows are rejected with it

    def describe(self) -> str:
        """For the summary, in plain words."""
        if self.list_id is None:
            return "no such list yet: a real sync would create it"
        return f"Klaviyo list {self.list_id}, {_HOW.get(self.how, self.how)}"


_HOW = {
    "list_mappings": "mapped in list_mappings",
    "registry": "from the target registry",
    "lookup": "found by its name",
    "created": "created by this sync",
}


class TargetResolver:
    """Targets to Klaviyo list ids, once per sync, announcing new registry entries as config updates."""

    def __init__(
        self, config: KlaviyoConfig, raw_config: Mapping[str, Any], client: Optional[KlaviyoClient], report: SyncReport
    ) -> None:
        self.config = config
        self.raw_config = raw_config
        self.client = client
        self.report = report
        self.mappings = {m.target: m.list_id for m in config.list_mappings}
        self.registry = {m.target: m.list_id for m in config.target_registry}
        self.resolved: dict[str, Resolution] = {}
        self.registry_changed = False  # found or created lists not yet announced with CONNECTOR_CONFIG
        self.new_lists = 0  # lists this sync created (or, in a dry run, would create)
        self.defaulted: set[StreamKey] = set()  # streams whose default-target fallback was logged
        self.directory = ListDirectory(client) if client is not None else None

    def target_of(self, route: StreamRoute, data: Mapping[str, Any]) -> str | Rejection:
        """The target column when present and non-null, else the stream's `target`, else its name."""
        value = data.get(self.config.target_field)
        if value is None:
            if route.key not in self.defaulted:
                self._log_default(route)
            return route.default_target or route.name
        target = value.strip() if value.__class__ is str else ""
        if not target:
            return Rejection("invalid_target", f"column '{self.config.target_field}' must be a non-empty list name")
        if target in self.resolved:
            return target
        # A name that cannot be looked up or created (too long, lone surrogates) would fail the sync.
        return target_problem(self.config.target_field, target) or target

    def _log_default(self, route: StreamRoute) -> None:
        self.defaulted.add(route.key)
        source = (
            "its `target` in `streams`"
            if route.default_target
            else "the stream name; set a `target` in `streams` to choose another"
        )
        logger.info(
            f"Stream '{route.name}': rows with no value in the target column '{self.config.target_field}' go to the "
            f"stream's default target '{route.default_target or route.name}' ({source}). Logged once per stream."
        )

    def resolve(self, target: str, *, create: bool = True) -> Resolution:
        """The target's list; with `create` off, an absent list is reported as such, not created."""
        known = self.resolved.get(target)
        if known is not None:
            return known
        resolution = self._resolve(target, create)
        if resolution.list_id is None and not create:
            return resolution  # not cached: a later row may still create it
        self.resolved[target] = resolution
        if resolution.refusal is not None:
            self.report.refused_target(target)
            return resolution
        logger.info(f"Target '{target}' -> Klaviyo list {resolution.list_id or '(new)'} ({resolution.how})")
        self.report.resolved(target, resolution.describe())
        if resolution.found_by_us and not self.config.dry_run:
            self.registry_changed = True
        return resolution

    def take_messages(self) -> list[dict[str, Any]]:
        """One CONNECTOR_CONFIG with every list found or created so far, if any is new since the last
        call. The writer asks before it echoes states and at the end: one update per state at most,
        not one per target (each carries the whole config: 500 targets would be 500 configs)."""
        if not self.registry_changed:
            return []
        self.registry_changed = False
        return [registry_update_message(self.raw_config, self.new_registry_entries())]

    def _resolve(self, target: str, create: bool) -> Resolution:
        if target in self.mappings:
            return Resolution(target, self.mappings[target], "list_mappings")
        if target in self.registry:
            return Resolution(target, self.registry[target], "registry")
        existing = self._find(target)
        if existing is not None:
            return Resolution(target, existing, "lookup", found_by_us=True)
        if not create:
            return Resolution(target, None, "absent")
        if not self.config.manage_lists:
            raise config_error(
                f"No Klaviyo list is named exactly '{target}', and `manage_lists` is off. Create the list in "
                f'Klaviyo, add {{"target": "{target}", "list_id": "..."}} to `list_mappings`, or turn on `manage_lists`.'
            )
        if self.new_lists >= self.config.max_new_lists_per_sync:
            return Resolution(target, None, "refused", refusal=self._too_many_new_lists())
        if self.directory is not None and self.directory.complete:
            existing = self._lookup(target)  # the directory may be older than a list made since
            if existing is not None:
                return Resolution(target, existing, "lookup", found_by_us=True)
        self.new_lists += 1
        if self.config.dry_run:
            return Resolution(target, None, "would create (dry run)")
        return Resolution(target, self._create(target), "created", found_by_us=True)

    def _too_many_new_lists(self) -> Rejection:
        limit = self.config.max_new_lists_per_sync
        return Rejection(
            "too_many_new_lists",
            f"the row's target has no Klaviyo list, and this sync {'would already create' if self.config.dry_run else 'already created'} "
            f"{limit} new list(s), its `max_new_lists_per_sync`; check the column '{self.config.target_field}', "
            "or raise the limit if these lists are wanted",
        )

    def _find(self, target: str) -> Optional[str]:
        """The oldest list named `target`: from the directory when it has the name, else read one more
        directory page, else look the name up (not needed once the directory is complete)."""
        directory = self.directory
        assert directory is not None
        if target not in directory.ids and not directory.complete:
            directory.read_page()
        ids = directory.ids.get(target)
        if ids and len(ids) > 1 and not directory.complete:
            return self._lookup(target)  # rare: ask by name, so the warning counts every duplicate
        if ids:
            if len(ids) > 1:
                _warn_duplicates(target, ids)
            return ids[0]
        return None if directory.complete else self._lookup(target)

    def _lookup(self, target: str) -> Optional[str]:
        assert self.client is not None
        lists = self.client.find_lists_named(target)
        if not lists:
            return None
        lists.sort(key=lambda item: ((item.get("attributes") or {}).get("created") or "", item["id"]))
        if len(lists) > 1:
            _warn_duplicates(target, [str(item["id"]) for item in lists])
        return str(lists[0]["id"])

    def _create(self, target: str) -> str:
        assert self.client is not None
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                created = self.client.create_list(target)
                logger.info(f"Created Klaviyo list '{target}' ({created['id']})")
                return str(created["id"])
            except KlaviyoApiError as exc:
                if exc.status == 429:
                    wait = _seconds(exc.retry_after)
                    details = " ".join((e.detail or "") for e in exc.errors).lower()
                    if wait > DAILY_LIMIT_RETRY_AFTER_SECONDS or "day" in details:
                        raise transient_error(
                            f"Klaviyo refused to create the list '{target}': the account reached Klaviyo's limit of 150 "
                            "list creations per day. Map existing lists with `list_mappings`, or retry the sync tomorrow."
                        ) from None
                    time.sleep(min(wait or 1.0, 60.0))
                elif exc.status < 500:
                    raise
            except KlaviyoUnreachable:
                pass  # the list may exist anyway: look before trying again
            existing = self._lookup(target)
            if existing is not None:
                return existing
            time.sleep(min(2.0**attempt, 30.0))
        raise transient_error(f"Could not create the Klaviyo list '{target}' after {CREATE_ATTEMPTS} attempts.")

    def new_registry_entries(self) -> dict[str, str]:
        return {t: r.list_id for t, r in self.resolved.items() if r.found_by_us and r.list_id}


def _warn_duplicates(target: str, ids: list[str]) -> None:
    logger.warning(
        f"{len(ids)} Klaviyo lists are named exactly '{target}' ({', '.join(ids)}); using {ids[0]}, the oldest. "
        "Add the one you want to `list_mappings` to choose."
    )


def _seconds(value: Optional[str]) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0
