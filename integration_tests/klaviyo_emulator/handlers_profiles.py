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


_INDEXED = ("id", "email", "phone_number", "external_id")


def _filter_record(store: Any, pid: str) -> dict[str, Any]:
    """What get_profiles' filter fields see of one stored profile (read under the store's lock)."""
    rec = store.profiles[pid]
    attrs = rec["attributes"]
    supp = store.suppressions.get(pid, ())
    lsupp = store.list_suppressions.get(pid, ())
    prefix = "subscriptions.email.marketing."
    return {
        "id": pid,
        "email": attrs.get("email"),
        "phone_number": attrs.get("phone_number"),
        "external_id": attrs.get("external_id"),
        "_kx": attrs.get("_kx"),
        "created": rec["created"],
        "updated": rec["updated"],
        prefix + "suppression.reason": AnyOf(s["reason"] for s in supp),
        prefix + "suppression.timestamp": AnyOf(s["timestamp"] for s in supp),
        prefix + "list_suppressions.reason": AnyOf(s["reason"] for s in lsupp),
        prefix + "list_suppressions.timestamp": AnyOf(s["timestamp"] for s in lsupp),
        prefix + "list_suppressions.list_id": AnyOf(s["list_id"] for s in lsupp),
    }


def _index_lookup(text: Optional[str]) -> Optional[tuple[str, list[str]]]:
    """``(field, values)`` when the whole filter is one ``equals``/``any`` on an indexed identifier,
    so candidates come from the store's index instead of a scan (the common identity lookup)."""
    if text is None:
        return None
    nodes = filters.parse_filter(text)
    if len(nodes) != 1 or not isinstance(nodes[0], filters.Condition):
        return None
    node = nodes[0]
    if node.field not in _INDEXED or node.op not in ("equals", "any"):
        return None
    raw = node.value if isinstance(node.value, list) else [node.value]
    if not all(isinstance(v, filters.Quoted) for v in raw):
        return None
    return node.field, [v.value for v in raw]


def _sort_ids(store: Any, pids: list[str], sort: str) -> list[str]:
    key = sort.lstrip("-")
    reverse = sort.startswith("-")

    def value(pid: str) -> Any:
        rec = store.profiles[pid]
        if key in ("created", "updated"):
            return rec[key]
        if key == "id":
            return pid
        if key == "email":
            return rec["attributes"].get("email")
        table = store.suppressions if "suppression." in key else store.list_suppressions
        stamps = [s["timestamp"] for s in table.get(pid, ())]
        return min(stamps) if stamps else None

    present = [p for p in pids if value(p) is not None]
    missing = [p for p in pids if value(p) is None]
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
        store = self.store  # type: ignore[attr-defined]
        lookup = _index_lookup(params.get("filter"))
        with store.lock:
            candidates = store.profile_ids_by(*lookup) if lookup else list(store.profiles)
            matched = [pid for pid in candidates if predicate(_filter_record(store, pid))]
            if sort:
                matched = _sort_ids(store, matched, sort)
        page_ids, links = self._paginate(matched, params, 20, 100, "/api/profiles", query)  # type: ignore[attr-defined]
        page = store.profile_views(page_ids)
        data = [self._profile_resource(v, additional=additional, fields=fields) for v in page]
        return 200, {"data": data, "links": links}, {}

    def _get_list_member_profiles(self, list_id: str, *, params: dict[str, str], body: bytes, query: str) -> "Response":
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
        matched: list[str] = []
        joined: dict[str, Any] = {}
        with store.lock:
            for pid, joined_at in store.member_entries(list_id):
                rec = store.profiles.get(pid)
                if rec is None:
                    # An id added through the relationships endpoint that names no stored profile:
                    # there is no profile to render (README: "Get Profiles for List").
                    continue
                attrs = rec["attributes"]
                record = {
                    "email": attrs.get("email"),
                    "phone_number": attrs.get("phone_number"),
                    "push_token": None,
                    "_kx": attrs.get("_kx"),
                    "joined_group_at": joined_at,
                }
                if predicate(record):
                    matched.append(pid)
                    joined[pid] = joined_at
        if sort == "-joined_group_at":
            matched.reverse()
        page_ids, links = self._paginate(matched, params, 20, 100, f"/api/lists/{list_id}/profiles", query)  # type: ignore[attr-defined]
        page = store.profile_views(page_ids)
        data = [
            self._profile_resource(v, additional=additional, fields=fields, joined_group_at=joined[v["id"]])
            for v in page
        ]
        return 200, {"data": data, "links": links}, {}
