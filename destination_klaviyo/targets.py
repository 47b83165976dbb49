"""Logical targets (list names) to Klaviyo list ids, resolved once per target per sync.

Order: the user's `list_mappings`, then the connector's target registry (`target_registry`, which
the connector persists in its own config through Airbyte's CONNECTOR_CONFIG control message), then
a Klaviyo list named exactly like the target, then, with `manage_lists`, a new list.

Creating a list is the one non-idempotent call, and Klaviyo allows only 150 a day. A create that
failed in a way that may still have succeeded (timeout, dropped connection, 5xx) is followed by a
fresh lookup before any new attempt, so a retry never makes a second list.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Optional

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient, KlaviyoUnreachable
from destination_klaviyo.config import KlaviyoConfig, config_error

logger = logging.getLogger("airbyte")

CREATE_ATTEMPTS = 4
# A 429 on list creation whose Retry-After is longer than this is the daily cap, not a burst limit.
DAILY_LIMIT_RETRY_AFTER_SECONDS = 300.0


@dataclass(frozen=True)
class Resolution:
    target: str
    list_id: Optional[str]  # None only in a dry run, for a list that would be created
    how: str  # list_mappings | registry | lookup | created | would create (dry run)

    @property
    def is_new_registry_entry(self) -> bool:
        return self.how in ("lookup", "created")


class TargetResolver:
    def __init__(self, config: KlaviyoConfig, client: Optional[KlaviyoClient]) -> None:
        self.config = config
        self.client = client
        self.mappings = {m.target: m.list_id for m in config.list_mappings}
        self.registry = {m.target: m.list_id for m in config.target_registry}
        self.resolved: dict[str, Resolution] = {}

    def resolve(self, target: str, *, create: bool = True) -> Resolution:
        if target not in self.resolved:
            resolution = self._resolve(target, create)
            if resolution.list_id is None and not create:
                return resolution  # not cached: a later row may still create it
            self.resolved[target] = resolution
            logger.info(f"Target '{target}' -> Klaviyo list {resolution.list_id or '(new)'} ({resolution.how})")
        return self.resolved[target]

    def _resolve(self, target: str, create: bool) -> Resolution:
        if target in self.mappings:
            return Resolution(target, self.mappings[target], "list_mappings")
        if target in self.registry:
            return Resolution(target, self.registry[target], "registry")
        existing = self._lookup(target)
        if existing is not None:
            return Resolution(target, existing, "lookup")
        if not create:
            return Resolution(target, None, "absent")
        if not self.config.manage_lists:
            raise config_error(
                f"No Klaviyo list is named exactly '{target}', and `manage_lists` is off. Create the list in "
                f'Klaviyo, add {{"target": "{target}", "list_id": "..."}} to `list_mappings`, or turn on `manage_lists`.'
            )
        if self.config.dry_run:
            return Resolution(target, None, "would create (dry run)")
        return Resolution(target, self._create(target), "created")

    def _lookup(self, target: str) -> Optional[str]:
        assert self.client is not None
        lists = self.client.find_lists_named(target)
        if not lists:
            return None
        lists.sort(key=lambda item: ((item.get("attributes") or {}).get("created") or "", item["id"]))
        if len(lists) > 1:
            ids = ", ".join(item["id"] for item in lists)
            logger.warning(
                f"{len(lists)} Klaviyo lists are named exactly '{target}' ({ids}); using {lists[0]['id']}, the oldest. "
                "Add the one you want to `list_mappings` to choose."
            )
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
                        text = (
                            f"Klaviyo refused to create the list '{target}': the account reached Klaviyo's limit of 150 "
                            "list creations per day. Map existing lists with `list_mappings`, or retry the sync tomorrow."
                        )
                        raise AirbyteTracedException(
                            message=text, internal_message=text, failure_type=FailureType.transient_error
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
        text = f"Could not create the Klaviyo list '{target}' after {CREATE_ATTEMPTS} attempts."
        raise AirbyteTracedException(message=text, internal_message=text, failure_type=FailureType.transient_error)

    def new_registry_entries(self) -> dict[str, str]:
        return {t: r.list_id for t, r in self.resolved.items() if r.is_new_registry_entry and r.list_id}


def _seconds(value: Optional[str]) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0
