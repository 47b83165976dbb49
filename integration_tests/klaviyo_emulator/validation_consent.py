"""Request-body validation for the consent and data-privacy endpoints:

- ``POST /api/profile-subscription-bulk-create-jobs`` (bulk_subscribe_profiles)
- ``POST /api/profile-subscription-bulk-delete-jobs`` (bulk_unsubscribe_profiles)
- ``POST /api/profile-suppression-bulk-create-jobs`` (bulk_suppress_profiles)
- ``POST /api/profile-suppression-bulk-delete-jobs`` (bulk_unsuppress_profiles)
- ``POST /api/data-privacy-deletion-jobs`` (request_profile_deletion)

Schemas: ``SubscriptionCreateJobCreateQuery``, ``SubscriptionDeleteJobCreateQuery``,
``SuppressionCreateJobCreateQuery``, ``SuppressionDeleteJobCreateQuery``,
``DataPrivacyCreateDeletionJobQuery``. Pure functions returning plain data or raising
:class:`ApiError` with a JSON pointer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Optional

from .errors import ApiError
from .validation import _escape, _require_object, _require_type
from .validation_events import parse_datetime_value

MAX_SUBSCRIBE_PROFILES = 1_000  # "Maximum number of profiles can be submitted for subscription: 1000"
MAX_UNSUBSCRIBE_PROFILES = 100  # "Maximum number of profiles per call: 100"
MAX_SUPPRESSION_EMAILS = 100  # "Email address per request limit: 100"
E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")

PROFILES_PTR = "/data/attributes/profiles/data"

# Request channel name -> kinds it accepts; consent records are keyed "<channel>.<kind>" with the
# response's channel names ("push" in requests is "mobile_push" in the subscriptions object).
_SUBSCRIBE_KINDS = {
    "email": ("marketing", "open_tracking"),
    "sms": ("marketing", "transactional"),
    "whatsapp": ("marketing", "transactional"),
    "push": ("marketing",),
}
_UNSUBSCRIBE_KINDS = {
    "email": ("marketing", "open_tracking"),
    "sms": ("marketing", "transactional"),
    "whatsapp": ("marketing", "transactional", "conversational"),
    "push": ("marketing",),
}
_PUSH_TOKEN_ENUMS = {
    "platform": ("android", "ios"),
    "vendor": ("apns", "fcm"),
    "enablement_status": ("AUTHORIZED", "DENIED", "NOT_DETERMINED", "PROVISIONAL", "UNAUTHORIZED"),
    "background": ("AVAILABLE", "DENIED", "RESTRICTED"),
}
_DEVICE_METADATA_ENUMS = {
    "klaviyo_sdk": ("android", "flutter", "flutter_community", "react_native", "swift"),
    "os_name": ("android", "ios", "ipados", "macos", "tvos"),
    "environment": ("debug", "release"),
}
_DEVICE_METADATA_STRINGS = (
    "device_id",
    "sdk_version",
    "device_model",
    "os_version",
    "manufacturer",
    "app_name",
    "app_version",
    "app_build",
    "app_id",
)


def consent_key(channel: str, kind: str) -> str:
    return f"{'mobile_push' if channel == 'push' else channel}.{kind}"


@dataclass
class ChannelRequest:
    key: str  # "email.marketing", "sms.transactional", "mobile_push.marketing", ...
    consented_at: Optional[datetime]
    pointer: str


@dataclass
class ConsentProfile:
    """One profile of a subscribe or unsubscribe request."""

    index: int
    pointer: str
    profile_id: Optional[str]
    email: Optional[str]
    phone_number: Optional[str]
    channels: list[ChannelRequest]
    push_tokens: list[dict[str, Any]] = field(default_factory=list)
    anonymous_id: Optional[str] = None
    age_gated_date_of_birth: Optional[str] = None

    def channel_keys(self) -> list[str]:
        return [c.key for c in self.channels]


@dataclass
class SubscribeRequest:
    profiles: list[ConsentProfile]
    list_id: Optional[str]
    historical_import: bool
    custom_source: Optional[str]


@dataclass
class UnsubscribeRequest:
    profiles: list[ConsentProfile]
    list_id: Optional[str]


@dataclass
class SuppressionRequest:
    emails: list[str]
    list_id: Optional[str]
    segment_id: Optional[str]
    profiles_given: bool


@dataclass
class DeletionRequest:
    field: str  # "id", "email" or "phone_number"
    value: str


def _only(obj: dict[str, Any], allowed: tuple[str, ...], pointer: str, what: str) -> None:
    for key in obj:
        if key not in allowed:
            raise ApiError(400, f"'{key}' is not a valid member of {what}.", pointer=f"{pointer}/{_escape(str(key))}")


def _opt_string(obj: dict[str, Any], key: str, pointer: str) -> Optional[str]:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"'{key}' must be a string.", pointer=f"{pointer}/{key}")
    return value


def _phone(obj: dict[str, Any], pointer: str) -> Optional[str]:
    phone = _opt_string(obj, "phone_number", pointer)
    if phone is not None and not E164_RE.match(phone):
        raise ApiError(
            400,
            f"'{phone}' is not a valid phone number; it must be in E.164 format (e.g. +15005550006).",
            pointer=f"{pointer}/phone_number",
        )
    return phone


def _list_relationship(data: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, str]:
    """``relationships.{list|segment}.data`` -> {"list": id, ...}."""
    rels = data.get("relationships")
    if rels is None:
        return {}
    rels = _require_object(rels, "/data/relationships", "relationships")
    _only(rels, allowed, "/data/relationships", "relationships")
    out: dict[str, str] = {}
    for name in allowed:
        if name not in rels:
            continue
        ptr = f"/data/relationships/{name}"
        rel = _require_object(rels[name], ptr, name)
        _only(rel, ("data",), ptr, name)
        item = _require_object(rel.get("data"), f"{ptr}/data", f"{name}.data")
        _only(item, ("type", "id"), f"{ptr}/data", f"{name}.data")
        _require_type(item, name, f"{ptr}/data")
        rid = item.get("id")
        if not isinstance(rid, str) or not rid:
            raise ApiError(400, f"A {name} id must be a non-empty string.", pointer=f"{ptr}/data/id")
        out[name] = rid
    return out


def _profiles_array(attrs: dict[str, Any], maximum: int, limit_text: str) -> list[Any]:
    profiles = _require_object(attrs.get("profiles"), "/data/attributes/profiles", "profiles")
    _only(profiles, ("data",), "/data/attributes/profiles", "profiles")
    items = profiles.get("data")
    if not isinstance(items, list):
        raise ApiError(400, "'profiles.data' must be an array of profiles.", pointer=PROFILES_PTR)
    if not items:
        raise ApiError(400, "At least one profile is required.", pointer=PROFILES_PTR)
    if len(items) > maximum:
        raise ApiError(400, f"{len(items)} profiles were provided; {limit_text}.", pointer=PROFILES_PTR)
    return items


def _push_tokens(value: Any, pointer: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ApiError(400, "'tokens' must be an array of push tokens.", pointer=pointer)
    out = []
    for k, tok in enumerate(value):
        tptr = f"{pointer}/{k}"
        tok = _require_object(tok, tptr, "push token")
        _only(
            tok,
            ("token", "platform", "vendor", "enablement_status", "background", "device_metadata"),
            tptr,
            "a push token",
        )
        if not isinstance(tok.get("token"), str) or not tok["token"]:
            raise ApiError(400, "'token' is required and must be a non-empty string.", pointer=f"{tptr}/token")
        for key, allowed in _PUSH_TOKEN_ENUMS.items():
            val = tok.get(key)
            required = key in ("platform", "vendor")
            if (val is None and required) or (val is not None and val not in allowed):
                raise ApiError(400, f"'{key}' must be one of {', '.join(allowed)}.", pointer=f"{tptr}/{key}")
        meta = tok.get("device_metadata")
        if meta is not None:
            mptr = f"{tptr}/device_metadata"
            meta = _require_object(meta, mptr, "device_metadata")
            _only(meta, tuple(_DEVICE_METADATA_ENUMS) + _DEVICE_METADATA_STRINGS, mptr, "device_metadata")
            for key, val in meta.items():
                if val is None:
                    continue
                if key in _DEVICE_METADATA_ENUMS and val not in _DEVICE_METADATA_ENUMS[key]:
                    raise ApiError(
                        400,
                        f"'{key}' must be one of {', '.join(_DEVICE_METADATA_ENUMS[key])}.",
                        pointer=f"{mptr}/{key}",
                    )
                if not isinstance(val, str):
                    raise ApiError(400, f"'{key}' must be a string.", pointer=f"{mptr}/{key}")
        out.append(dict(tok))
    return out


def _channels(
    subs: Any,
    pointer: str,
    kinds: dict[str, tuple[str, ...]],
    consent_value: str,
    *,
    historical_import: Optional[bool],
    now: Optional[datetime],
) -> tuple[list[ChannelRequest], list[dict[str, Any]], Optional[str]]:
    """Validate a ``subscriptions`` object; ``historical_import`` is None for unsubscribe."""
    subs = _require_object(subs, pointer, "subscriptions")
    _only(subs, tuple(kinds), pointer, "subscriptions")
    if not subs:
        raise ApiError(400, "'subscriptions' must name at least one channel.", pointer=pointer)
    channels: list[ChannelRequest] = []
    tokens: list[dict[str, Any]] = []
    anonymous_id: Optional[str] = None
    for channel, params in subs.items():
        cptr = f"{pointer}/{channel}"
        params = _require_object(params, cptr, channel)
        allowed = kinds[channel]
        extra: tuple[str, ...] = ()
        if channel == "push":
            extra = ("tokens", "anonymous_id") if historical_import is not None else ("tokens",)
            if "marketing" not in params:
                raise ApiError(400, "'push.marketing' is required.", pointer=f"{cptr}/marketing")
            if historical_import is None and "tokens" not in params:
                raise ApiError(400, "'push.tokens' is required to unsubscribe from push.", pointer=f"{cptr}/tokens")
        _only(params, allowed + extra, cptr, channel)
        if not any(k in params for k in allowed):
            raise ApiError(400, f"'{channel}' must name at least one of {', '.join(allowed)}.", pointer=cptr)
        for kind in allowed:
            if kind not in params:
                continue
            kptr = f"{cptr}/{kind}"
            sp = _require_object(params[kind], kptr, f"{channel}.{kind}")
            has_consented_at = historical_import is not None and kind != "open_tracking"
            _only(sp, ("consent", "consented_at") if has_consented_at else ("consent",), kptr, f"{channel}.{kind}")
            if sp.get("consent") != consent_value:
                raise ApiError(
                    400, f"'consent' is required and must be \"{consent_value}\".", pointer=f"{kptr}/consent"
                )
            consented_at = None
            if has_consented_at:
                raw = sp.get("consented_at")
                if historical_import:
                    if raw is None:
                        raise ApiError(
                            400,
                            "'consented_at' is required when historical_import is true.",
                            pointer=f"{kptr}/consented_at",
                        )
                    consented_at = parse_datetime_value(raw, f"{kptr}/consented_at", "consented_at")
                    if now is not None and consented_at >= now:
                        raise ApiError(400, "'consented_at' must be in the past.", pointer=f"{kptr}/consented_at")
                elif raw is not None:
                    raise ApiError(
                        400,
                        "'consented_at' may only be given when historical_import is true.",
                        pointer=f"{kptr}/consented_at",
                    )
            channels.append(ChannelRequest(consent_key(channel, kind), consented_at, kptr))
        if channel == "push":
            if params.get("tokens") is not None:
                tokens = _push_tokens(params["tokens"], f"{cptr}/tokens")
            if historical_import is not None:
                anonymous_id = _opt_string(params, "anonymous_id", cptr)
    return channels, tokens, anonymous_id


def _consent_profile(
    prof: Any,
    i: int,
    *,
    subscribe: bool,
    historical_import: bool,
    now: datetime,
) -> ConsentProfile:
    base = f"{PROFILES_PTR}/{i}"
    prof = _require_object(prof, base, "profile")
    _only(prof, ("type", "id", "attributes") if subscribe else ("type", "attributes"), base, "a profile")
    _require_type(prof, "profile", base)
    pid = prof.get("id") if subscribe else None
    if pid is not None and (not isinstance(pid, str) or not pid):
        raise ApiError(400, "A profile id must be a non-empty string.", pointer=f"{base}/id")
    aptr = f"{base}/attributes"
    attrs = _require_object(prof.get("attributes"), aptr, "attributes")
    allowed = ("email", "phone_number", "subscriptions") + (("age_gated_date_of_birth",) if subscribe else ())
    _only(attrs, allowed, aptr, "the profile attributes")
    email = _opt_string(attrs, "email", aptr)
    if email is not None and not email.strip():
        raise ApiError(400, "'email' must not be empty.", pointer=f"{aptr}/email")
    phone = _phone(attrs, aptr)
    dob = _opt_string(attrs, "age_gated_date_of_birth", aptr) if subscribe else None
    if dob is not None:
        try:
            date.fromisoformat(dob)
        except ValueError:
            raise ApiError(
                400, "'age_gated_date_of_birth' must be a date (YYYY-MM-DD).", pointer=f"{aptr}/age_gated_date_of_birth"
            ) from None
    if "subscriptions" not in attrs:
        raise ApiError(400, "'subscriptions' is required.", pointer=f"{aptr}/subscriptions")
    channels, tokens, anonymous_id = _channels(
        attrs["subscriptions"],
        f"{aptr}/subscriptions",
        _SUBSCRIBE_KINDS if subscribe else _UNSUBSCRIBE_KINDS,
        "SUBSCRIBED" if subscribe else "UNSUBSCRIBED",
        historical_import=historical_import if subscribe else None,
        now=now,
    )
    keys = [c.key for c in channels]
    # "Either email or phone number is required" (for email/SMS/WhatsApp): each channel needs its
    # own identifier; with a profile id the stored profile's one is used (checked in the store).
    if not pid:
        if any(k.startswith("email.") for k in keys) and not email:
            raise ApiError(400, "An email address is required for the email channel.", pointer=f"{aptr}/email")
        if any(k.startswith(("sms.", "whatsapp.")) for k in keys) and not phone:
            raise ApiError(
                400, "A phone number is required for the SMS and WhatsApp channels.", pointer=f"{aptr}/phone_number"
            )
        if subscribe and not (email or phone or anonymous_id):
            raise ApiError(
                400,
                "Either an email address or a phone number (or a push anonymous_id, or a profile id) is required.",
                pointer=aptr,
            )
    return ConsentProfile(
        index=i,
        pointer=base,
        profile_id=pid,
        email=email,
        phone_number=phone,
        channels=channels,
        push_tokens=tokens,
        anonymous_id=anonymous_id,
        age_gated_date_of_birth=dob,
    )


def validate_subscribe(doc: dict[str, Any], now: datetime) -> SubscribeRequest:
    """Validate a Bulk Subscribe Profiles body."""
    data = _require_object(doc.get("data"), "/data", "data")
    _only(data, ("type", "attributes", "relationships"), "/data", "this resource")
    _require_type(data, "profile-subscription-bulk-create-job", "/data")
    attrs = _require_object(data.get("attributes"), "/data/attributes", "attributes")
    _only(attrs, ("custom_source", "profiles", "historical_import"), "/data/attributes", "the attributes")
    custom_source = _opt_string(attrs, "custom_source", "/data/attributes")
    historical = attrs.get("historical_import")
    if historical is not None and not isinstance(historical, bool):
        raise ApiError(400, "'historical_import' must be a boolean.", pointer="/data/attributes/historical_import")
    items = _profiles_array(
        attrs, MAX_SUBSCRIBE_PROFILES, "the maximum number of profiles that can be submitted for subscription is 1000"
    )
    profiles = [
        _consent_profile(p, i, subscribe=True, historical_import=bool(historical), now=now) for i, p in enumerate(items)
    ]
    rels = _list_relationship(data, ("list",))
    return SubscribeRequest(profiles, rels.get("list"), bool(historical), custom_source)


def validate_unsubscribe(doc: dict[str, Any], now: datetime) -> UnsubscribeRequest:
    """Validate a Bulk Unsubscribe Profiles body."""
    data = _require_object(doc.get("data"), "/data", "data")
    _only(data, ("type", "attributes", "relationships"), "/data", "this resource")
    _require_type(data, "profile-subscription-bulk-delete-job", "/data")
    attrs = _require_object(data.get("attributes"), "/data/attributes", "attributes")
    _only(attrs, ("profiles",), "/data/attributes", "the attributes")
    items = _profiles_array(attrs, MAX_UNSUBSCRIBE_PROFILES, "the maximum number of profiles per call is 100")
    profiles = [_consent_profile(p, i, subscribe=False, historical_import=False, now=now) for i, p in enumerate(items)]
    rels = _list_relationship(data, ("list",))
    return UnsubscribeRequest(profiles, rels.get("list"))


def validate_suppression(doc: dict[str, Any], job_type: str) -> SuppressionRequest:
    """Validate a Bulk Suppress / Unsuppress Profiles body (``job_type`` is the data type)."""
    data = _require_object(doc.get("data"), "/data", "data")
    _only(data, ("type", "attributes", "relationships"), "/data", "this resource")
    _require_type(data, job_type, "/data")
    attrs = _require_object(data.get("attributes"), "/data/attributes", "attributes")
    _only(attrs, ("profiles",), "/data/attributes", "the attributes")
    emails: list[str] = []
    given = attrs.get("profiles") is not None
    if given:
        items = _profiles_array(attrs, MAX_SUPPRESSION_EMAILS, "the email address per request limit is 100")
        for i, prof in enumerate(items):
            base = f"{PROFILES_PTR}/{i}"
            prof = _require_object(prof, base, "profile")
            _only(prof, ("type", "attributes"), base, "a profile")
            _require_type(prof, "profile", base)
            pattrs = _require_object(prof.get("attributes"), f"{base}/attributes", "attributes")
            _only(pattrs, ("email",), f"{base}/attributes", "the profile attributes")
            email = pattrs.get("email")
            if not isinstance(email, str) or not email.strip():
                raise ApiError(
                    400, "'email' is required and must be a non-empty string.", pointer=f"{base}/attributes/email"
                )
            emails.append(email)
    rels = _list_relationship(data, ("list", "segment"))
    sources = int(given) + len(rels)
    if sources != 1:
        raise ApiError(
            400,
            "Give exactly one of: profiles (email addresses), a list, or a segment."
            + (" None was given." if sources == 0 else ""),
            pointer="/data",
        )
    return SuppressionRequest(emails, rels.get("list"), rels.get("segment"), given)


def validate_deletion(doc: dict[str, Any]) -> DeletionRequest:
    """Validate a Request Profile Deletion body: exactly one of id, email, phone_number."""
    data = _require_object(doc.get("data"), "/data", "data")
    _only(data, ("type", "attributes"), "/data", "this resource")
    _require_type(data, "data-privacy-deletion-job", "/data")
    attrs = _require_object(data.get("attributes"), "/data/attributes", "attributes")
    _only(attrs, ("profile",), "/data/attributes", "the attributes")
    profile = _require_object(attrs.get("profile"), "/data/attributes/profile", "profile")
    _only(profile, ("data",), "/data/attributes/profile", "profile")
    base = "/data/attributes/profile/data"
    pdata = _require_object(profile.get("data"), base, "profile.data")
    _only(pdata, ("type", "id", "attributes"), base, "a profile")
    _require_type(pdata, "profile", base)
    pattrs = _require_object(pdata.get("attributes"), f"{base}/attributes", "attributes")
    _only(pattrs, ("email", "phone_number"), f"{base}/attributes", "the profile attributes")
    given: list[tuple[str, str]] = []
    for key, value, ptr in (
        ("id", pdata.get("id"), f"{base}/id"),
        ("email", pattrs.get("email"), f"{base}/attributes/email"),
        ("phone_number", pattrs.get("phone_number"), f"{base}/attributes/phone_number"),
    ):
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ApiError(400, f"'{key}' must be a non-empty string.", pointer=ptr)
        given.append((key, value))
    if len(given) != 1:
        raise ApiError(
            400,
            "Exactly one profile identifier (id, email or phone_number) is required"
            + (f"; {len(given)} were provided." if given else "; none was provided."),
            pointer=base,
        )
    return DeletionRequest(*given[0])
