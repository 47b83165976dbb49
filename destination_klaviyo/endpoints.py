"""The Klaviyo endpoints the connector calls, with their rate limits and scopes.

Copied from Klaviyo's OpenAPI spec (klaviyo/openapi, openapi/stable.json, `x-klaviyo-ratelimit`
and `x-klaviyo-scopes` of each operation). They drive the client-side rate limiter, so that 429s
stay rare, and the scope named when Klaviyo answers 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Endpoint:
    name: str
    burst_per_second: int
    steady_per_minute: int
    scopes: tuple[str, ...]


ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    ("GET", "/api/accounts"): Endpoint("get_accounts", 1, 15, ("accounts:read",)),
    ("POST", "/api/profile-bulk-import-jobs"): Endpoint(
        "bulk_import_profiles", 10, 150, ("lists:write", "profiles:write")
    ),
    ("GET", "/api/profile-bulk-import-jobs/{id}"): Endpoint(
        "get_bulk_import_job", 10, 150, ("lists:read", "profiles:read")
    ),
    ("GET", "/api/profile-bulk-import-jobs/{id}/import-errors"): Endpoint(
        "get_bulk_import_job_errors", 10, 150, ("profiles:read",)
    ),
    ("POST", "/api/event-bulk-create-jobs"): Endpoint("bulk_create_events", 10, 150, ("events:write",)),
    ("GET", "/api/lists"): Endpoint("get_lists", 75, 750, ("lists:read",)),
    # Also 150 a day; targets.py explains that limit when Klaviyo enforces it.
    ("POST", "/api/lists"): Endpoint("create_list", 10, 150, ("lists:write",)),
    ("GET", "/api/lists/{id}/relationships/profiles"): Endpoint(
        "get_list_profile_ids", 75, 750, ("lists:read", "profiles:read")
    ),
    ("POST", "/api/lists/{id}/relationships/profiles"): Endpoint(
        "add_profiles_to_list", 10, 150, ("lists:write", "profiles:write")
    ),
    ("DELETE", "/api/lists/{id}/relationships/profiles"): Endpoint(
        "remove_profiles_from_list", 10, 150, ("lists:write", "profiles:write")
    ),
    # 10/s and 150/min with `additional-fields[profile]=predictive_analytics`, which we never ask for.
    ("GET", "/api/profiles"): Endpoint("get_profiles", 75, 750, ("profiles:read",)),
    ("GET", "/api/lists/{id}/profiles"): Endpoint("get_profiles_for_list", 75, 750, ("lists:read", "profiles:read")),
    # One profile per request: at most one deletion a second, steadily (60/min).
    ("POST", "/api/data-privacy-deletion-jobs"): Endpoint("request_profile_deletion", 3, 60, ("data-privacy:write",)),
    # Consent (subscriptions and suppressions surfaces) and the reads that guard it.
    ("GET", "/api/lists/{id}"): Endpoint("get_list", 75, 750, ("lists:read",)),
    ("POST", "/api/profile-subscription-bulk-create-jobs"): Endpoint(
        "bulk_subscribe_profiles", 75, 750, ("lists:write", "profiles:write", "subscriptions:write")
    ),
    ("POST", "/api/profile-subscription-bulk-delete-jobs"): Endpoint(
        "bulk_unsubscribe_profiles", 75, 750, ("lists:write", "profiles:write", "subscriptions:write")
    ),
    ("POST", "/api/profile-suppression-bulk-create-jobs"): Endpoint(
        "bulk_suppress_profiles", 75, 750, ("profiles:write", "subscriptions:write")
    ),
    ("POST", "/api/profile-suppression-bulk-delete-jobs"): Endpoint(
        "bulk_unsuppress_profiles", 75, 750, ("subscriptions:write",)
    ),
}

ALL_SCOPES = sorted({scope for endpoint in ENDPOINTS.values() for scope in endpoint.scopes})
_ID_SEGMENT = re.compile(r"^(/api/(?:lists|profile-bulk-import-jobs))/[^/]+")


def endpoint_for(method: str, path: str) -> Optional[Endpoint]:
    """The endpoint of a concrete request path such as /api/lists/AbC123/relationships/profiles."""
    template = _ID_SEGMENT.sub(r"\1/{id}", path.split("?", 1)[0])
    return ENDPOINTS.get((method.upper(), template))
