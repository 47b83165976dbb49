"""Who a row is at Klaviyo: the profiles its identifiers name, and sets of people to keep.

A warehouse row rarely knows Klaviyo's profile id; it knows an email, a phone number or its own
external id. Removing such a person from a list, or deleting them, needs their profile id first:
`resolve` looks the rows' identifiers up with `GET /api/profiles?filter=any(field,[...])`, at most
100 values a request, every page followed.

A row can carry several identifiers. Its profile is the one a bulk import of that row would have
matched: by profile id, else email, else phone number, else external id (`MATCH_ORDER`). Each
field is looked up only for the rows the earlier fields did not resolve, so a typical row costs one
lookup. A row none of whose identifiers names a profile resolves to no id: the person is not in
Klaviyo, which is counted, not an error.

`Identities` is the set of people a sync put in a list, for a mirror: a list member is kept when any
one of its identifiers is in the set (keeping too many is the safe side of a mirror). Emails are
compared case-insensitively, because Klaviyo may store an address in another case than the
warehouse sends it; the other identifiers exactly (phone numbers are E.164 on both sides).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from destination_klaviyo.client import MAX_FILTER_VALUES, KlaviyoClient, any_filter

# The keys `identifiers.identifiers` produces, most specific first: the order a bulk import matches by.
MATCH_ORDER = ("id", "email", "phone_number", "external_id")

IdentityKey = tuple[str, str]  # (field, normalized value)


def normalized(field_name: str, value: str) -> str:
    return value.lower() if field_name == "email" else value


def identity_keys(found: Mapping[str, Any]) -> list[IdentityKey]:
    """The identity keys of a row's rendered identifiers (`{"email": ..., "id": ...}`)."""
    return [(name, normalized(name, str(found[name]))) for name in MATCH_ORDER if found.get(name) is not None]


def profile_identities(profile: Mapping[str, Any]) -> list[IdentityKey]:
    """The identity keys of a profile resource read from Klaviyo (`id` plus its identifier attributes)."""
    attributes = profile.get("attributes") or {}
    return identity_keys({"id": profile.get("id"), **{k: attributes.get(k) for k in MATCH_ORDER[1:]}})


@dataclass
class Identities:
    """People named by any of their identifiers: profile ids, emails, phone numbers, external ids."""

    keys: set[IdentityKey] = field(default_factory=set)

    def add(self, found: Mapping[str, Any]) -> None:
        self.keys.update(identity_keys(found))

    def discard(self, found: Mapping[str, Any]) -> None:
        self.keys.difference_update(identity_keys(found))

    def __ior__(self, other: "Identities") -> "Identities":
        self.keys |= other.keys
        return self

    def __len__(self) -> int:
        return len(self.keys)

    def only_profile_ids(self) -> bool:
        """True when every person is named by profile id (a mirror then needs no member identifiers)."""
        return all(name == "id" for name, _ in self.keys)

    def includes(self, profile: Mapping[str, Any]) -> bool:
        """Whether a profile resource read from Klaviyo is one of these people (any identifier matches)."""
        return any(key in self.keys for key in profile_identities(profile))


def find_profiles(client: KlaviyoClient, field_name: str, values: Iterable[str]) -> dict[str, list[str]]:
    """Profile ids per (normalized) value of `field_name`, 100 values a request, every page."""
    unique = sorted(set(values))
    found: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(unique), MAX_FILTER_VALUES):
        for profile in client.get_profiles(any_filter(field_name, unique[start : start + MAX_FILTER_VALUES])):
            if field_name == "id":
                value = profile.get("id")
            else:
                value = (profile.get("attributes") or {}).get(field_name)
            if value is not None and profile.get("id") not in found[normalized(field_name, str(value))]:
                found[normalized(field_name, str(value))].append(str(profile["id"]))
    return found


def resolve(client: KlaviyoClient, rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The profile ids of each row (rendered identifiers), by MATCH_ORDER; [] for a person not in Klaviyo."""
    resolved: list[list[str]] = [[] for _ in rows]
    unresolved = list(range(len(rows)))
    for name in MATCH_ORDER:
        asking = [i for i in unresolved if rows[i].get(name) is not None]
        if not asking:
            continue
        found = find_profiles(client, name, (str(rows[i][name]) for i in asking))
        for i in asking:
            resolved[i] = list(found.get(normalized(name, str(rows[i][name])), ()))
        unresolved = [i for i in unresolved if not resolved[i]]
    return resolved
