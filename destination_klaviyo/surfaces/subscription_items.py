"""A `subscriptions` row as the profile item of a subscribe or unsubscribe request, and their bodies.

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Union

import orjson

from destination_klaviyo.batching import BodyBatch
from destination_klaviyo.identifiers import DEFAULT_PHONE_RULES, PROFILE_ID_COLUMN, PhoneRules, identifiers
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.surfaces.base import ConsentChannel
from destination_klaviyo.surfaces.consent import ConsentItem, person_keys

MAX_PROFILES_PER_SUBSCRIBE = 1_000  # "Maximum number of profiles can be submitted for subscription: 1000"
MAX_PROFILES_PER_UNSUBSCRIBE = 100  # "Maximum number of profiles per call: 100"
# The spec states no payload limit for these; the bulk endpoints' 5 MB, read strictly, is our cap.
MAX_CONSENT_BODY_BYTES = 5 * 1000 * 1000
CONSENTED_AT_COLUMN = "consented_at"
BIRTH_DATE_COLUMN = "age_gated_date_of_birth"
BIRTH_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
