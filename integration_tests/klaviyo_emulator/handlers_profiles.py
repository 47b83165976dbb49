"""Profile reads: ``GET /api/profiles`` (get_profiles) and ``GET /api/lists/{id}/profiles``
(get_profiles_for_list). Mixed into :class:`server.KlaviyoHandler`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from . import filters
from .consent_view import (
    ADDITIONAL_FIELDS,
    LIST_MEMBER_SPARSE_FIELDS,
    PROFILE_SPARSE_FIELDS,
    apply_sparse_fields,
    parse_list_param,
    render_attributes,
    render_subscriptions,
)
from .errors import ApiError
from .filters import AnyOf

if TYPE_CHECKING:  # pragma: no cover
    from .server import Response

# get_profiles' sort enum.
_PROFILE_SORTS = {
    "created",
    "-created",
    "email",
    "-email",
    "id",
    "-id",
    "subscriptions.email.marketing.list_suppressions.timestamp",
    "-subscriptions.email.marketing.list_suppressions.timestamp",
    "subscriptions.email.marketing.suppression.timestamp",
    "-subscriptions.email.marketing.suppression.timestamp",
    "updated",
    "-updated",
}


def _filter_record(view: dict[str, Any]) -> dict[str, Any]:
    attrs = view["record"]["attributes"]
    supp = view["suppressions"]
    lsupp = view["list_suppressions"]
    prefix = "subscriptions.email.marketing."
    return {
        "id": view["id"],
        "email": attrs.get("email"),
        "phone_number": attrs.get("phone_number"),
        "external_id": attrs.get("external_id"),
        "_kx": attrs.get("_kx"),
        "created": view["record"]["created"],
        "updated": view["record"]["updated"],
        prefix + "suppression.reason": AnyOf(s["reason"] for s in supp),
        prefix + "suppression.timestamp": AnyOf(s["timestamp"] for s in supp),
        prefix + "list_suppressions.reason": AnyOf(s["reason"] for s in lsupp),
        prefix + "list_suppressions.timestamp": AnyOf(s["timestamp"] for s in lsupp),
        prefix + "list_suppressions.list_id": AnyOf(s["list_id"] for s in lsupp),
    }


def _sort_views(views: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    key = sort.lstrip("-")
    reverse = sort.startswith("-")

    def value(v: dict[str, Any]) -> Any:
        if key in ("created", "updated"):
            return v["record"][key]
        if key == "id":
            return v["id"]
        if key == "email":
            return v["record"]["attributes"].get("email")
        stamps = [s["timestamp"] for s in (v["suppressions"] if "suppression." in key else v["list_suppressions"])]
        return min(stamps) if stamps else None

    present = [v for v in views if value(v) is not None]
    missing = [v for v in views if value(v) is None]
    present.sort(key=value, reverse=reverse)
    return present + missing  # profiles without a value come last either way


class ProfileReadsMixin:
    """GET handlers that return full profile resources."""

    def _profile_resource(
        self,
        view: dict[str, Any],
        *,
        additional: Optional[list[str]],
        fields: Optional[list[str]],
        joined_group_at: Optional[datetime] = None,
    ) -> dict[str, Any]:
        additional = additional or []
        subs = None
        if "subscriptions" in additional:
            subs = render_subscriptions(view["consent"], view["suppressions"], view["list_suppressions"])
        attrs = render_attributes(
            view["record"],
            last_event_date=view["last_event_date"],
            subscriptions=subs,
            predictive="predictive_analytics" in additional,
            joined_group_at=joined_group_at,
        )
        url = f"{self._base_url()}/api/profiles/{view['id']}"  # type: ignore[attr-defined]
        relationships = {
            name: {"links": {"self": f"{url}/relationships/{name}/", "related": f"{url}/{name}/"}}
            for name in ("lists", "segments", "push-tokens", "conversations")
        }
        return {
            "type": "profile",
            "id": view["id"],
            "attributes": apply_sparse_fields(attrs, fields),
            "relationships": relationships,
            "links": {"self": f"{url}/"},
        }

    def _get_profiles(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        predicate = filters.compile_filter(
            params.get("filter"),
            filters.PROFILE_FILTER_FIELDS,
            max_list_values=filters.MAX_PROFILE_FILTER_LIST_VALUES,
        )
        sort = params.get("sort")
        if sort is not None and sort not in _PROFILE_SORTS:
            raise ApiError(400, f"'{sort}' is not a valid sort option.", parameter="sort")
        additional = parse_list_param(params, "additional-fields[profile]", ADDITIONAL_FIELDS)
        fields = parse_list_param(params, "fields[profile]", PROFILE_SPARSE_FIELDS)
        views = [v for v in self.store.profile_views() if predicate(_filter_record(v))]  # type: ignore[attr-defined]
        if sort:
            views = _sort_views(views, sort)
        page, links = self._paginate(views, params, 20, 100, "/api/profiles", query)  # type: ignore[attr-defined]
        data = [self._profile_resource(v, additional=additional, fields=fields) for v in page]
        return 200, {"data": data, "links": links}, {}

    def _get_list_member_profiles(
        self, list_id: str, *, params: dict[str, str], body: bytes, query: str
    ) -> "Response":
        store = self.store  # type: ignore[attr-defined]
        store.require_list(list_id)
        predicate = filters.compile_filter(
            params.get("filter"),
            filters.LIST_PROFILE_FILTER_FIELDS,
            max_list_values=filters.MAX_PROFILE_FILTER_LIST_VALUES,
        )
        sort = params.get("sort")
        if sort is not None and sort not in ("joined_group_at", "-joined_group_at"):
            raise ApiError(400, f"'{sort}' is not a valid sort option.", parameter="sort")
        additional = parse_list_param(params, "additional-fields[profile]", ADDITIONAL_FIELDS)
        fields = parse_list_param(params, "fields[profile]", LIST_MEMBER_SPARSE_FIELDS)
        entries = store.member_entries(list_id)
        joined = dict(entries)
        # Ids added through the relationships endpoint that name no stored profile are skipped:
        # there is no profile to render (README: "Get Profiles for List").
        views = store.profile_views(pid for pid, _ in entries)
        matched = []
        for v in views:
            attrs = v["record"]["attributes"]
            record = {
                "email": attrs.get("email"),
                "phone_number": attrs.get("phone_number"),
                "push_token": None,
                "_kx": attrs.get("_kx"),
                "joined_group_at": joined[v["id"]],
            }
            if predicate(record):
                matched.append(v)
        if sort == "-joined_group_at":
            matched.reverse()
        page, links = self._paginate(matched, params, 20, 100, f"/api/lists/{list_id}/profiles", query)  # type: ignore[attr-defined]
        data = [
            self._profile_resource(v, additional=additional, fields=fields, joined_group_at=joined[v["id"]])
            for v in page
        ]
        return 200, {"data": data, "links": links}, {}
