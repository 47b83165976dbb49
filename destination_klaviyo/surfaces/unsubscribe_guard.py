"""Whom an unsubscribe request may name: the list's members, since Klaviyo unsubscribes anyone else
from everything; and what is done when its answer is lost.

The unsubscribe guard: before an unsubscribe request goes out, the people in it are looked up among
the list's members (`GET /api/lists/{id}/profiles`, filtered by up to 100 emails or phone numbers
at a time: the only identifiers that endpoint filters on). Only confirmed members are sent. For a
non-member, the person's consent is read (`GET /api/profiles` with `subscriptions`): when every
channel of the row is already unsubscribed, or email marketing was unsubscribed from this very
list, the row is done and nothing is sent (a full refresh of an opt-out table sends the same rows
every day). Any other non-member is rejected (`not_a_list_member`), because Klaviyo would
unsubscribe them from everything, unless the stream sets `allow_global_unsubscribe`; then it is sent
and counted as a global unsubscribe. The lookups are reads: a dry run makes them, so its plan shows
what the guard would do.

An unsubscribe is never resent blindly. A 429 was refused before anything happened: looked over
and sent again. After a 5xx, a timeout or a dropped connection the request may have taken effect,
or may still (Klaviyo runs these jobs asynchronously): the list is looked at again, people no
longer on it are done, and if anyone confirmed before is still on it the sync stops rather than
send them twice (the second time would find a non-member: a global unsubscribe). Airbyte retries
the sync, whose guard looks again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import orjson

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.client import MAX_FILTER_VALUES, KlaviyoApiError, KlaviyoUnreachable, any_filter
from destination_klaviyo.errors import MissingList, is_missing_list
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.sinks import Request, SinkContext
from destination_klaviyo.surfaces.consent import Lane, LaneSink, person_keys
from destination_klaviyo.surfaces.subscription_items import DEFAULT_PLAN

logger = logging.getLogger("airbyte")

# After a lost answer (timeout, dropped connection, 5xx) or a 429, an unsubscribe is looked over and
# sent again at most this many times.
UNSUBSCRIBE_ATTEMPTS = 8
# After a failure that may have taken effect, the pause before the list is looked at again.
LOST_ANSWER_PAUSE_SECONDS = 5.0
GLOBAL_UNSUBSCRIBE = "unsubscribe globally (not on the list)"
ALREADY_UNSUBSCRIBED = "already unsubscribed (nothing sent)"


class UnsubscribeGuard(LaneSink):
    """A consent sink whose unsubscribe lane sends only the list's members, and never resends blindly."""

    unsubscribes: Lane  # the lane guarded here: the subclass makes it with its other lanes

    def __init__(self, context: SinkContext, target: Optional[str], list_id: Optional[str]) -> None:
        super().__init__(context, target, list_id)
        self.lock = threading.Lock()  # what follows is written by worker threads
        # People this sync unsubscribed, and from what: hash((person key, channel)), 8 bytes of a
        # set slot and a small int each, not a dict of sets (about 450 bytes a person: 110 MB for
        # 250,000 unsubscribes). A collision could only count a non-member's row as already done
        # (nothing sent), never unsubscribe anyone.
        self.unsubscribed_here: set[int] = set()
        self.global_seqs: set[int] = set()  # unsubscribe rows sent for non-members (allow_global_unsubscribe)
        self.counted_seqs: set[int] = set()  # unsubscribe rows counted delivered (a retry never counts twice)

    def deliver(self, batch: BodyBatch, request: Request) -> None:
        if request is not self.unsubscribes.request:
            super().deliver(batch, request)
            return
        confirmed: set[int] = set()  # rows whose person a look found on the list
        lost: Optional[Exception] = None  # a failure after which the request may have taken effect
        for attempt in range(1, UNSUBSCRIBE_ATTEMPTS + 1):
            batch = self._guard(batch, confirmed)
            if not len(batch):
                return
            if lost is not None and any(entry.seq in confirmed for entry in batch.entries):
                # Still on the list after a failure that may have taken effect: Klaviyo runs these
                # jobs asynchronously, so the lost request may yet be carried out, and a second one
                # would then find non-members and unsubscribe them from everything. Stop instead;
                # the retried sync looks at the list again.
                logger.warning(
                    f"An unsubscribe request for target '{self.target}' (list {self.list_id}) failed in a way that may "
                    f"still take effect ({type(lost).__name__}); {len(batch)} of its rows are not sent again in this "
                    "sync, so nobody can be unsubscribed twice (the second time from everything). The sync stops; its "
                    "retry checks the list again."
                )
                raise lost
            try:
                super().deliver(batch, request)
            except KlaviyoApiError as exc:
                if (exc.status != 429 and exc.status < 500) or attempt == UNSUBSCRIBE_ATTEMPTS:
                    raise
                if exc.status == 429:  # refused before anything happened: look again, send again
                    time.sleep(min(max(_seconds(exc.retry_after), 2.0 ** (attempt - 1)), 60.0))
                else:
                    lost = exc
                    time.sleep(LOST_ANSWER_PAUSE_SECONDS)
                continue
            except KlaviyoUnreachable as exc:  # timeout or dropped connection: it may have arrived
                if attempt == UNSUBSCRIBE_ATTEMPTS:
                    raise
                lost = exc
                time.sleep(LOST_ANSWER_PAUSE_SECONDS)
                continue
            self._remember_unsubscribed(batch)
            return

    def _guard(self, batch: BodyBatch, confirmed: set[int]) -> BodyBatch:
        """The rows of `batch` that may be sent: the people on the list, and (where the stream allows
        it) the others. Rows already carried out are counted as such; other non-members are rejected."""
        items = [orjson.loads(batch.item(i))["attributes"] for i in range(len(batch))]
        members = self._members(items)
        dropped: set[int] = set()
        done: list[Entry] = []
        outside: list[int] = []  # not on the list, and not through anything this sync did
        for index, (entry, attributes, member) in enumerate(zip(batch.entries, items, members)):
            with self.lock:
                counted = entry.seq in self.counted_seqs
            if counted:  # delivered by an earlier try of this request (a half of it, after a split)
                dropped.add(index)
            elif member:
                confirmed.add(entry.seq)
            elif entry.seq in confirmed or self._unsubscribed_here(attributes):
                # On the list at an earlier look and gone now: the attempt whose answer was lost
                # took effect (or an earlier row of this sync did it). Sending again would be global.
                dropped.add(index)
                done.append(entry)
            else:
                outside.append(index)
        if done:
            logger.info(
                f"{len(done)} unsubscribe row(s) of target '{self.target}' were already carried out by this sync "
                "(no longer on the list); not sent again"
            )
            self._count_delivered(done, self.unsubscribes.request.action)
        already = self._unsubscribed_in_klaviyo([items[i] for i in outside])
        before: list[Entry] = []
        for index, unsubscribed in zip(outside, already):
            entry = batch.entries[index]
            if unsubscribed:
                dropped.add(index)
                before.append(entry)
            elif self.context.plans.get(entry.key, DEFAULT_PLAN).allow_global_unsubscribe:
                with self.lock:
                    self.global_seqs.add(entry.seq)
            else:
                dropped.add(index)
                self.report.rejected(entry, self._not_a_member())
        if before:
            self._count_delivered(before, ALREADY_UNSUBSCRIBED)
        return batch.without(dropped) if dropped else batch

    def _unsubscribed_in_klaviyo(self, items: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Whether each non-member already has what the row asks: every channel of it unsubscribed,
        or (email marketing) unsubscribed from this very list. A row synced again (a full refresh of
        an opt-out table, the retry of a failed sync) is then done, not a non-member."""
        if not items or self.list_id is None:
            return [False] * len(items)
        assert self.context.client is not None
        client = self.context.client

        def consent(field: str, values: list[str]) -> list[dict[str, Any]]:
            return list(client.get_profiles(any_filter(field, values), with_consent=True))

        found = self._lookup(items, consent, "profile consent lookups (unsubscribe guard)")
        done = []
        for attributes in items:
            profile = _one_profile(found, attributes)
            subscriptions = ((profile or {}).get("attributes") or {}).get("subscriptions") or {}
            done.append(
                profile is not None and all(self._channel_done(subscriptions, c) for c in _channels_of(attributes))
            )
        return done

    def _channel_done(self, subscriptions: Mapping[str, Any], channel: str) -> bool:
        kind, detail = channel.split(".")
        state = (subscriptions.get(kind) or {}).get(detail) or {}
        if state.get("consent") == "UNSUBSCRIBED":
            return True
        return channel == "email.marketing" and any(
            s.get("list_id") == self.list_id for s in state.get("list_suppressions") or ()
        )

    def _not_a_member(self) -> Rejection:
        where = f"list {self.list_id}" if self.list_id else "the list this dry run would create"
        return Rejection(
            "not_a_list_member",
            f"the person is not on {where} (target '{self.target}'), and Klaviyo would unsubscribe them from "
            "everything, not just this list: not sent (allow_global_unsubscribe on the stream sends such rows). "
            "If this sync subscribed them just before, the list uses double opt-in and they have not confirmed "
            "yet, or Klaviyo had not applied that subscribe yet",
        )

    def _members(self, items: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Whether each item's person is on the list: every identifier it sends is a member's, and
        (with both) the same member's."""
        if self.list_id is None:
            return [False] * len(items)  # a list this dry run would create has no members
        assert self.context.client is not None
        list_id = self.list_id

        def members(field: str, values: list[str]) -> list[dict[str, Any]]:
            return list(self.context.client.get_profiles_for_list(list_id, any_filter(field, values)))  # type: ignore[union-attr]

        found = self._lookup(items, members, "list member lookups (unsubscribe guard)")
        return [_one_profile(found, attributes) is not None for attributes in items]

    def _lookup(
        self, items: Sequence[Mapping[str, Any]], read: Callable[[str, list[str]], list[dict[str, Any]]], kind: str
    ) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Profiles by email and by phone number for `items`, read 100 values per request: the most
        the emulator takes in one filter (the spec states no limit)."""
        found: dict[str, dict[str, list[dict[str, Any]]]] = {"email": {}, "phone_number": {}}
        for field, index in found.items():
            values = sorted({a[field] for a in items if field in a})
            for start in range(0, len(values), MAX_FILTER_VALUES):
                try:
                    profiles = read(field, values[start : start + MAX_FILTER_VALUES])
                except KlaviyoApiError as exc:
                    if is_missing_list(exc):
                        raise MissingList(self.list_id, self.target) from None
                    raise
                self.report.request_sent(kind)
                for profile in profiles:
                    value = (profile.get("attributes") or {}).get(field)
                    if value:
                        index.setdefault(_normal(field, value), []).append(profile)
        return found

    def _unsubscribed_here(self, attributes: Mapping[str, Any]) -> bool:
        keys = person_keys(attributes.get("email"), attributes.get("phone_number"))
        channels = _channels_of(attributes)
        with self.lock:
            return any(all(hash((key, channel)) in self.unsubscribed_here for channel in channels) for key in keys)

    def _remember_unsubscribed(self, batch: BodyBatch) -> None:
        with self.lock:
            for index in range(len(batch)):
                attributes = orjson.loads(batch.item(index))["attributes"]
                for key in person_keys(attributes.get("email"), attributes.get("phone_number")):
                    self.unsubscribed_here.update(hash((key, channel)) for channel in _channels_of(attributes))

    def _count_delivered(self, entries: Sequence[Entry], action: str) -> None:
        if action != self.unsubscribes.request.action:
            super()._count_delivered(entries, action)
            return
        with self.lock:
            self.counted_seqs.update(e.seq for e in entries)
            global_seqs = {e.seq for e in entries if e.seq in self.global_seqs}
        global_rows = [e for e in entries if e.seq in global_seqs]
        members = [e for e in entries if e.seq not in global_seqs]
        if members:
            super()._count_delivered(members, action)
        if global_rows:
            super()._count_delivered(global_rows, GLOBAL_UNSUBSCRIBE)
            verb = "would unsubscribe" if self.dry_run else "asked Klaviyo to unsubscribe"
            logger.warning(
                f"Target '{self.target}': {verb} {len(global_rows)} person(s) who are not on list "
                f"{self.list_id or '(new)'}; Klaviyo unsubscribes them globally (allow_global_unsubscribe is on)"
            )


def _one_profile(
    found: Mapping[str, Mapping[str, list[dict[str, Any]]]], attributes: Mapping[str, Any]
) -> Optional[dict[str, Any]]:
    """The one profile that every identifier of the item leads to, or None."""
    chosen: Optional[dict[str, Any]] = None
    for field, index in found.items():
        if field not in attributes:
            continue
        profiles = index.get(_normal(field, attributes[field]), [])
        if chosen is not None:
            profiles = [p for p in profiles if p.get("id") == chosen.get("id")]
        if not profiles:
            return None
        chosen = profiles[0]
    return chosen


def _channels_of(attributes: Mapping[str, Any]) -> set[str]:
    return {f"{kind}.{detail}" for kind, details in attributes["subscriptions"].items() for detail in details}


def _normal(field: str, value: str) -> str:
    return value.lower() if field == "email" else value


def _seconds(value: Optional[str]) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0
