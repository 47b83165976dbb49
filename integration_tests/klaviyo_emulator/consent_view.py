"""Profile resources as Klaviyo renders them: attributes, the ``subscriptions`` object, sparse
fieldsets (``fields[profile]``) and ``additional-fields[profile]``.

Pure functions over plain data taken from the store under its lock; the shapes follow the spec's
``ProfileResponsePluralConversationsObjectResource`` (Get Profiles) and
``ListMemberResponseObjectResource`` (Get Profiles for List) schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

from .errors import ApiError
from .store import copy_json, iso

# Consent channels the emulator keeps, keyed "<channel>.<kind>" as in the response's
# ``subscriptions`` object (the request bodies call mobile push "push").
CONSENT_CHANNELS = (
    "email.marketing",
    "email.open_tracking",
    "sms.marketing",
    "sms.transactional",
    "mobile_push.marketing",
    "whatsapp.marketing",
    "whatsapp.transactional",
    "whatsapp.conversational",
)
NEVER_SUBSCRIBED = "NEVER_SUBSCRIBED"
SUBSCRIBED = "SUBSCRIBED"
UNSUBSCRIBED = "UNSUBSCRIBED"

_PROFILE_STRING_ATTRS = (
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
)
LOCATION_KEYS = ("address1", "address2", "city", "country", "latitude", "longitude", "region", "zip", "timezone", "ip")
_PREDICTIVE_KEYS = (
    "historic_clv",
    "predicted_clv",
    "total_clv",
    "historic_number_of_orders",
    "predicted_number_of_orders",
    "average_days_between_orders",
    "average_order_value",
    "churn_probability",
    "expected_date_of_next_order",
    "ranked_channel_affinity",
)
_CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email.marketing": (
        "can_receive_email_marketing",
        "consent",
        "consent_timestamp",
        "custom_method_detail",
        "double_optin",
        "last_updated",
        "list_suppressions",
        "method",
        "method_detail",
        "suppression",
    ),
    "email.open_tracking": (
        "can_receive",
        "consent",
        "consent_timestamp",
        "created_timestamp",
        "last_updated",
        "metadata",
        "valid_until",
    ),
    "mobile_push.marketing": ("can_receive_push_marketing", "consent", "consent_timestamp"),
    "sms.marketing": (
        "can_receive_sms_marketing",
        "consent",
        "consent_timestamp",
        "last_updated",
        "method",
        "method_detail",
    ),
    "sms.transactional": (
        "can_receive_sms_transactional",
        "consent",
        "consent_timestamp",
        "last_updated",
        "method",
        "method_detail",
    ),
}
for _kind in ("conversational", "marketing", "transactional"):
    _CHANNEL_FIELDS[f"whatsapp.{_kind}"] = (
        "can_receive",
        "consent",
        "consent_timestamp",
        "created_timestamp",
        "last_updated",
        "metadata",
        "phone_number",
        "valid_until",
    )


def _sparse_field_names() -> frozenset[str]:
    """The ``fields[profile]`` enum of get_profiles (105 values; get_profiles_for_list adds joined_group_at)."""
    names = set(_PROFILE_STRING_ATTRS) | {
        "id",
        "created",
        "updated",
        "last_event_date",
        "properties",
        "location",
        "predictive_analytics",
        "subscriptions",
    }
    names |= {f"location.{k}" for k in LOCATION_KEYS}
    names |= {f"predictive_analytics.{k}" for k in _PREDICTIVE_KEYS}
    for key, fields in _CHANNEL_FIELDS.items():
        channel = key.split(".")[0]
        names |= {f"subscriptions.{channel}", f"subscriptions.{key}"}
        names |= {f"subscriptions.{key}.{f}" for f in fields}
    return frozenset(names)


PROFILE_SPARSE_FIELDS = _sparse_field_names()
LIST_MEMBER_SPARSE_FIELDS = PROFILE_SPARSE_FIELDS | {"joined_group_at"}
ADDITIONAL_FIELDS = ("subscriptions", "predictive_analytics")


def _ts(value: Optional[datetime]) -> Optional[str]:
    return iso(value) if value else None


def channel_state(consent: Mapping[str, Any], key: str) -> dict[str, Any]:
    """One channel's stored consent record, or the NEVER_SUBSCRIBED default."""
    rec = consent.get(key)
    if rec is None:
        return {
            "consent": NEVER_SUBSCRIBED,
            "consent_timestamp": None,
            "last_updated": None,
            "created_timestamp": None,
            "method": None,
            "method_detail": None,
            "custom_method_detail": None,
            "double_optin": None,
            "phone_number": None,
        }
    return dict(rec)


def render_subscriptions(
    consent: Mapping[str, Any],
    suppressions: Iterable[Mapping[str, Any]],
    list_suppressions: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The profile's ``subscriptions`` object (``additional-fields[profile]=subscriptions``)."""
    suppression = [{"reason": s["reason"], "timestamp": iso(s["timestamp"])} for s in suppressions]
    list_supp = [
        {"list_id": s["list_id"], "reason": s["reason"], "timestamp": iso(s["timestamp"])} for s in list_suppressions
    ]
    out: dict[str, Any] = {}
    for key in CONSENT_CHANNELS:
        st = channel_state(consent, key)
        subscribed = st["consent"] == SUBSCRIBED
        base = {"consent": st["consent"], "consent_timestamp": _ts(st["consent_timestamp"])}
        if key == "email.marketing":
            # Spec: "True if it does profile does not have any global suppressions."
            body = {
                "can_receive_email_marketing": not suppression,
                **base,
                "last_updated": _ts(st["last_updated"]),
                "method": st["method"],
                "method_detail": st["method_detail"],
                "custom_method_detail": st["custom_method_detail"],
                "double_optin": st["double_optin"],
                "suppression": suppression,
                "list_suppressions": list_supp,
            }
        elif key == "email.open_tracking":
            body = {
                **base,
                "last_updated": _ts(st["last_updated"]),
                "created_timestamp": _ts(st["created_timestamp"]),
                "metadata": None,
                "can_receive": st["consent"] != UNSUBSCRIBED,
                "valid_until": None,
            }
        elif key == "mobile_push.marketing":
            body = {"can_receive_push_marketing": subscribed, **base}
        elif key.startswith("sms."):
            flag = "can_receive_sms_marketing" if key == "sms.marketing" else "can_receive_sms_transactional"
            body = {
                flag: subscribed,
                **base,
                "method": st["method"],
                "method_detail": st["method_detail"],
                "last_updated": _ts(st["last_updated"]),
            }
        else:  # whatsapp.*
            body = {
                **base,
                "last_updated": _ts(st["last_updated"]),
                "created_timestamp": _ts(st["created_timestamp"]),
                "metadata": None,
                "can_receive": subscribed,
                "valid_until": None,
                "phone_number": st["phone_number"],
            }
        channel, kind = key.split(".")
        out.setdefault(channel, {})[kind] = body
    return out


def render_attributes(
    record: Mapping[str, Any],
    *,
    last_event_date: Optional[datetime] = None,
    subscriptions: Optional[dict[str, Any]] = None,
    predictive: bool = False,
    joined_group_at: Optional[datetime] = None,
) -> dict[str, Any]:
    """A stored profile as the ``attributes`` of a profile resource (missing values are null)."""
    attrs = record["attributes"]
    out: dict[str, Any] = {k: attrs.get(k) for k in _PROFILE_STRING_ATTRS}
    out["created"] = iso(record["created"])
    out["updated"] = iso(record["updated"])
    out["last_event_date"] = _ts(last_event_date)
    location = attrs.get("location") or {}
    out["location"] = {k: location.get(k) for k in LOCATION_KEYS}
    out["properties"] = copy_json(attrs.get("properties") or {})
    if joined_group_at is not None:
        out["joined_group_at"] = iso(joined_group_at)
    if subscriptions is not None:
        out["subscriptions"] = subscriptions
    if predictive:
        # The emulator computes no predictions; every field is null (all are nullable in the spec).
        out["predictive_analytics"] = {k: None for k in _PREDICTIVE_KEYS}
    return out


def parse_list_param(params: Mapping[str, str], name: str, allowed: Iterable[str]) -> Optional[list[str]]:
    """A comma-separated array parameter (``explode: false``) checked against its enum."""
    raw = params.get(name)
    if raw is None:
        return None
    values = [v.strip() for v in raw.split(",")]
    allowed = set(allowed)
    for v in values:
        if v not in allowed:
            raise ApiError(400, f"'{v}' is not a valid value for {name}.", parameter=name)
    return values


def apply_sparse_fields(attributes: dict[str, Any], fields: Optional[list[str]]) -> dict[str, Any]:
    """Keep only the requested attribute paths (``location.city``, ``subscriptions.email.marketing``...)."""
    if fields is None:
        return attributes
    out: dict[str, Any] = {}
    for path in fields:
        if path == "id":
            continue
        parts = path.split(".")
        src: Any = attributes
        for part in parts:
            if not isinstance(src, dict) or part not in src:
                break
            src = src[part]
        else:
            dst = out
            for part in parts[:-1]:
                dst = dst.setdefault(part, {})
            dst[parts[-1]] = src
    return out
