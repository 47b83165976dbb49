"""`subscriptions`: give consent (subscribe) into a list, and take it back (unsubscribe) from it.

Klaviyo's spec:
- Bulk Subscribe Profiles (`POST /api/profile-subscription-bulk-create-jobs`): at most 1,000
  profiles, each by `email` and/or `phone_number` (E.164), optionally a profile `id` "used to
  perform the lookup" (the request still needs "either email or phone number"); channels email
  marketing, SMS marketing and SMS transactional (WhatsApp and push exist; we do not send them).
  The optional list is always sent: it is the row's target. On a list with double opt-in the person
  gets a confirmation message and stays unsubscribed until they confirm. `historical_import` (one
  flag per request) with a past `consented_at` per channel records consent collected earlier, skips
  double opt-in and "Added to list" flows; `consented_at` without the flag is an error. It also
  "will remove any UNSUBSCRIBE, SPAM_REPORT or USER_SUPPRESSED suppressions".
- Bulk Unsubscribe Profiles (`POST /api/profile-subscription-bulk-delete-jobs`): at most 100
  profiles, by email / phone number only (no id). "Profiles not in the specified list will be
  globally unsubscribed."
Both answer 202 with no body and nothing to poll.

What a row does: its channels are the stream's `channels` option, overridden per channel by the
boolean columns `email_marketing`, `sms_marketing`, `sms_transactional` (true adds, false removes;
false never unsubscribes). A row subscribes to them; a deletion row (`_ab_cdc_deleted_at`, or the
stream in `soft_delete`) unsubscribes from them. Each channel needs its identifier: email for email
marketing, a phone number for SMS; only the identifiers the channels need are sent.

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
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Union

import orjson
from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.client import MAX_FILTER_VALUES, KlaviyoApiError, KlaviyoUnreachable, any_filter
from destination_klaviyo.errors import MissingList, is_missing_list
from destination_klaviyo.identifiers import DEFAULT_PHONE_RULES, PROFILE_ID_COLUMN, PhoneRules, identifiers
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.sinks import Pointers, Request, SinkContext
from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, ConsentChannel, Surface, SurfaceSpec
from destination_klaviyo.surfaces.consent import ConsentItem, Lane, LaneSink, PersonKey, person_keys
from destination_klaviyo.totality import render_row

if TYPE_CHECKING:
    from destination_klaviyo.routing import StreamRoute

logger = logging.getLogger("airbyte")

MAX_PROFILES_PER_SUBSCRIBE = 1_000  # "Maximum number of profiles can be submitted for subscription: 1000"
MAX_PROFILES_PER_UNSUBSCRIBE = 100  # "Maximum number of profiles per call: 100"
# The spec states no payload limit for these; the bulk endpoints' 5 MB, read strictly, is our cap.
MAX_CONSENT_BODY_BYTES = 5 * 1000 * 1000
CONSENTED_AT_COLUMN = "consented_at"
BIRTH_DATE_COLUMN = "age_gated_date_of_birth"
BIRTH_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# After a lost answer (timeout, dropped connection, 5xx) or a 429, an unsubscribe is looked over and
# sent again at most this many times.
UNSUBSCRIBE_ATTEMPTS = 8
# After a failure that may have taken effect, the pause before the list is looked at again.
LOST_ANSWER_PAUSE_SECONDS = 5.0
GLOBAL_UNSUBSCRIBE = "unsubscribe globally (not on the list)"
ALREADY_UNSUBSCRIBED = "already unsubscribed (nothing sent)"


@dataclass(frozen=True)
class ChannelSpec:
    """Where a channel sits in Klaviyo's `subscriptions` object, and the identifier it needs."""

    path: tuple[str, str]
    identifier: str  # "email" or "phone_number"
    identifier_columns: str  # for messages


CHANNELS: dict[ConsentChannel, ChannelSpec] = {
    ConsentChannel.EMAIL_MARKETING: ChannelSpec(("email", "marketing"), "email", "email"),
    ConsentChannel.SMS_MARKETING: ChannelSpec(("sms", "marketing"), "phone_number", "phone_e164 or phone_number"),
    ConsentChannel.SMS_TRANSACTIONAL: ChannelSpec(
        ("sms", "transactional"), "phone_number", "phone_e164 or phone_number"
    ),
}


@dataclass(frozen=True)
class SubscriptionPlan:
    """A stream's options: its default channels, and whether non-members may be unsubscribed."""

    channels: frozenset[ConsentChannel] = frozenset()
    allow_global_unsubscribe: bool = False


DEFAULT_PLAN = SubscriptionPlan()


def prepare(route: "StreamRoute") -> SubscriptionPlan:
    options = route.options
    if options is None:
        return DEFAULT_PLAN
    return SubscriptionPlan(frozenset(options.channels or ()), options.allow_global_unsubscribe)


# -- rendering -------------------------------------------------------------------------------------
def row_channels(
    data: Mapping[str, Any], defaults: frozenset[ConsentChannel]
) -> Union[frozenset[ConsentChannel], Rejection]:
    """The stream's channels, each overridden by its column when that is true or false."""
    chosen = set(defaults)
    for channel in CHANNELS:
        value = data.get(channel.value)
        if value.__class__ is str:
            value = {"true": True, "false": False, "": None}.get(value.strip().lower(), value)
        if value is None:
            continue
        if not isinstance(value, bool):
            return Rejection("invalid_value", f"column '{channel.value}' must be true, false or null")
        if value:
            chosen.add(channel)
        else:
            chosen.discard(channel)
    if not chosen:
        names = ", ".join(c.value for c in CHANNELS)
        return Rejection(
            "missing_channel",
            f"row names no consent channel: set one of {names} to true, or give the stream `channels` in `streams`",
        )
    return frozenset(chosen)


def parse_consented_at(value: Any, now: Optional[datetime] = None) -> Union[str, Rejection, None]:
    """`consented_at` as an ISO 8601 UTC date-time in the past; None when absent or blank."""
    if value is None or (value.__class__ is str and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return Rejection(
                "invalid_consented_at",
                f"column '{CONSENTED_AT_COLUMN}' is not an ISO 8601 date-time (e.g. 2024-05-01T09:30:00Z)",
            )
    else:
        return Rejection("invalid_consented_at", f"column '{CONSENTED_AT_COLUMN}' must be a date-time string")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # documented: a time without a zone is UTC
    moment = moment.astimezone(timezone.utc)
    if moment >= (now or datetime.now(timezone.utc)):
        return Rejection(
            "invalid_consented_at",
            f"column '{CONSENTED_AT_COLUMN}' is not in the past: Klaviyo records only consent already collected",
        )
    return moment.isoformat()


def render_subscription(
    data: Mapping[str, Any],
    plan: SubscriptionPlan = DEFAULT_PLAN,
    *,
    remove: bool = False,
    now: Optional[datetime] = None,
    phones: PhoneRules = DEFAULT_PHONE_RULES,
) -> Union[ConsentItem, Rejection]:
    """One row as a `profile` item of a subscribe (or, with `remove`, unsubscribe) request.

    A phone number follows `default_phone_region` like everywhere; an unusable one is left out, so
    a row asking for SMS consent without a usable phone is rejected for its missing identifier."""
    found = identifiers(data, accept_profile_id=not remove, phones=phones)
    if isinstance(found, Rejection):
        return found
    channels = row_channels(data, plan.channels)
    if isinstance(channels, Rejection):
        return channels
    if "email" not in found and "phone_number" not in found:
        if remove and data.get(PROFILE_ID_COLUMN) is not None:
            detail = (
                f"Klaviyo unsubscribes by email or phone number only; '{PROFILE_ID_COLUMN}' alone cannot unsubscribe"
            )
        else:
            detail = "consent is given to an email address or a phone number: set email, phone_e164 or phone_number"
        return Rejection("missing_identifier", detail)
    attributes: dict[str, Any] = {}
    for channel in sorted(channels):
        spec = CHANNELS[channel]
        if spec.identifier not in found:
            return Rejection(
                "missing_identifier", f"channel {channel.value} needs {spec.identifier_columns}, which the row lacks"
            )
        attributes[spec.identifier] = found[spec.identifier]
    consented_at = None
    if not remove:
        consented_at = parse_consented_at(data.get(CONSENTED_AT_COLUMN), now)
        if isinstance(consented_at, Rejection):
            return consented_at
    subscriptions: dict[str, dict[str, Any]] = {}
    for channel in sorted(channels):
        kind, detail = CHANNELS[channel].path
        parameters: dict[str, Any] = {"consent": "UNSUBSCRIBED" if remove else "SUBSCRIBED"}
        if consented_at is not None:
            parameters["consented_at"] = consented_at
        subscriptions.setdefault(kind, {})[detail] = parameters
    attributes["subscriptions"] = subscriptions
    if not remove:
        birth = data.get(BIRTH_DATE_COLUMN)
        if birth is not None and not (birth.__class__ is str and not birth.strip()):
            if not (isinstance(birth, str) and BIRTH_DATE.match(birth.strip())):
                return Rejection("invalid_value", f"column '{BIRTH_DATE_COLUMN}' must be a date YYYY-MM-DD")
            attributes[BIRTH_DATE_COLUMN] = birth.strip()
    resource: dict[str, Any] = {"type": "profile"}
    if "id" in found:
        resource["id"] = found["id"]
    resource["attributes"] = attributes
    keys = person_keys(attributes.get("email"), attributes.get("phone_number"), found.get("id"))
    return ConsentItem(orjson.dumps(resource), keys, consented_at is not None)


def _list_relationship(list_id: Optional[str]) -> bytes:
    # A dry run's list-to-be has no id yet; such a batch is never sent.
    return b',"relationships":' + orjson.dumps({"list": {"data": {"type": "list", "id": list_id or ""}}})


def new_subscribe_batch(list_id: Optional[str], historical: bool = False) -> BodyBatch:
    prefix = b'{"data":{"type":"profile-subscription-bulk-create-job","attributes":{"profiles":{"data":['
    suffix = b"]}" + (b',"historical_import":true' if historical else b"") + b"}" + _list_relationship(list_id) + b"}}"
    return BodyBatch(prefix, suffix, MAX_PROFILES_PER_SUBSCRIBE, MAX_CONSENT_BODY_BYTES)


def new_unsubscribe_batch(list_id: Optional[str]) -> BodyBatch:
    """Always with the list: without one, Klaviyo would unsubscribe every profile globally."""
    prefix = b'{"data":{"type":"profile-subscription-bulk-delete-job","attributes":{"profiles":{"data":['
    suffix = b"]}}" + _list_relationship(list_id) + b"}}"
    return BodyBatch(prefix, suffix, MAX_PROFILES_PER_UNSUBSCRIBE, MAX_CONSENT_BODY_BYTES)


# -- the sink --------------------------------------------------------------------------------------
class SubscriptionSink(LaneSink):
    """Subscribes into, and guardedly unsubscribes from, one list; a person's rows keep their order."""

    pointers = Pointers(
        re.compile(r"^/data/attributes/profiles/data/(\d+)(/.*)?$"),
        re.compile(r"^/data/attributes/profiles(/data)?/?$"),
    )

    def __init__(self, context: SinkContext, target: Optional[str], list_id: Optional[str]) -> None:
        super().__init__(context, target, list_id)
        self.subscribes = Lane(
            Request("subscribe jobs", "subscribe", self._subscribe), lambda: new_subscribe_batch(list_id)
        )
        self.historical = Lane(
            Request("subscribe jobs (historical import)", "subscribe (historical import)", self._subscribe),
            lambda: new_subscribe_batch(list_id, historical=True),
        )
        self.unsubscribes = Lane(
            Request("unsubscribe jobs", "unsubscribe", self._unsubscribe), lambda: new_unsubscribe_batch(list_id)
        )
        self.lanes = (self.subscribes, self.historical, self.unsubscribes)
        self.lock = threading.Lock()  # what follows is written by worker threads
        self.unsubscribed_here: dict[PersonKey, set[str]] = {}  # people this sync unsubscribed, and from what
        self.global_seqs: set[int] = set()  # unsubscribe rows sent for non-members (allow_global_unsubscribe)
        self.counted_seqs: set[int] = set()  # unsubscribe rows counted delivered (a retry never counts twice)
        self._note_opt_in_process()

    def _note_opt_in_process(self) -> None:
        """Say when the target list uses double opt-in: subscribing then sends a confirmation email."""
        if self.context.client is None or self.target is None:
            return
        if self.list_id is None:
            self.report.note(
                f"Target '{self.target}' would be a new list, with the account's default opt-in process "
                "(with double opt-in, email subscribers get a confirmation email and stay pending until they confirm)"
            )
            return
        try:
            found = self.context.client.get_list(self.list_id)
        except KlaviyoApiError as exc:
            if is_missing_list(exc):
                raise MissingList(self.list_id, self.target) from None
            raise
        if (found.get("attributes") or {}).get("opt_in_process") == "double_opt_in":
            line = (
                f"Target '{self.target}' (list {self.list_id}) uses double opt-in: each email subscription into it "
                "sends a confirmation email, and the person stays unsubscribed (and off the list) until they confirm; "
                "rows with consented_at (historical import) are subscribed at once, without that email"
            )
            logger.warning(line)
            self.report.note(line)

    # -- rows -------------------------------------------------------------------------------------
    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        plan = self.context.plans.get(row.key, DEFAULT_PLAN)
        rendered = render_row(render_subscription, data, plan=plan, remove=remove, phones=self.context.phones)
        if isinstance(rendered, Rejection):
            self.report.rejected(row, rendered)
            return
        keys = rendered.keys
        if remove:
            lane = self.unsubscribes
            # A second unsubscribe of the same person goes in a later request, checked once the
            # first is in: two in one request would leave the second a non-member (global).
            earlier = (self.subscribes, self.historical, self.unsubscribes)
        else:
            lane = self.historical if rendered.historical else self.subscribes
            earlier = (self.unsubscribes,)
        self.queue(row, rendered.item, keys, lane, earlier)

    # -- requests ---------------------------------------------------------------------------------
    def _subscribe(self, body: bytes) -> str:
        assert self.context.client is not None and self.list_id is not None
        self.context.client.bulk_subscribe_profiles(body)
        return f"a subscribe job into list {self.list_id}"

    def _unsubscribe(self, body: bytes) -> str:
        assert self.context.client is not None and self.list_id is not None, "never unsubscribe without a list"
        self.context.client.bulk_unsubscribe_profiles(body)
        return f"an unsubscribe job from list {self.list_id}"

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
            return any(channels <= self.unsubscribed_here.get(key, set()) for key in keys)

    def _remember_unsubscribed(self, batch: BodyBatch) -> None:
        with self.lock:
            for index in range(len(batch)):
                attributes = orjson.loads(batch.item(index))["attributes"]
                for key in person_keys(attributes.get("email"), attributes.get("phone_number")):
                    self.unsubscribed_here.setdefault(key, set()).update(_channels_of(attributes))

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


def schema(target_field: str) -> dict[str, Any]:
    boolean = {"type": ["null", "boolean"]}
    properties: dict[str, Any] = {
        "email": {**STRING, "description": "Email address: needed for email_marketing"},
        "phone_number": {**STRING, "description": "Phone number in E.164 format: needed for the SMS channels"},
        "phone_e164": {**STRING, "description": "Alias of phone_number"},
        PROFILE_ID_COLUMN: {
            **STRING,
            "description": "Klaviyo profile id: which profile to subscribe (not for unsubscribing)",
        },
        ConsentChannel.EMAIL_MARKETING.value: {
            **boolean,
            "description": "true: consent to email marketing; null: the stream's channels",
        },
        ConsentChannel.SMS_MARKETING.value: {
            **boolean,
            "description": "true: consent to SMS marketing; null: the stream's channels",
        },
        ConsentChannel.SMS_TRANSACTIONAL.value: {
            **boolean,
            "description": "true: consent to transactional SMS; null: the stream's channels",
        },
        CONSENTED_AT_COLUMN: {
            "type": ["null", "string"],
            "format": "date-time",
            "description": "When consent was collected, in the past: the row is a historical import (no double opt-in email, no 'Added to list' flows)",
        },
        BIRTH_DATE_COLUMN: {
            "type": ["null", "string"],
            "format": "date",
            "description": "Date of birth, for accounts that age-gate SMS consent",
        },
        target_field: {**STRING, "description": "Target list name (the `target_field` column)"},
    }
    return {
        "type": "object",
        "additionalProperties": True,
        "description": (
            "A row subscribes the person to its channels into its target list; a deletion row unsubscribes them from "
            "that list, only if they are on it (unless allow_global_unsubscribe). Other columns are ignored."
        ),
        "properties": properties,
    }


SPEC = SurfaceSpec(
    surface=Surface.SUBSCRIPTIONS,
    summary="subscribes people to email/SMS consent into a list; deletion rows unsubscribe list members",
    modes=UPSERT_MODES + (DestinationSyncMode.soft_delete,),
    matching_keys=("email", "phone_number"),
    scopes=("lists:read", "lists:write", "profiles:read", "profiles:write", "subscriptions:write"),
    needs_target=True,
    removes=True,
    mirrors=False,
    schema=schema,
    make_sink=SubscriptionSink,
    changes_consent=True,
    replace_note=(
        "A replace (a full refresh overwrite, or a Refresh or Clear of the stream in Airbyte) writes its rows, and "
        "nobody absent from this sync is unsubscribed or unsuppressed: consent changes only for the rows the stream sends."
    ),
    prepare=prepare,
)
