"""Request-body validation for the write endpoints.

Pure functions (no store access): they turn a parsed JSON body into the
values the store needs, or raise :class:`ApiError` with a JSON pointer to the
offending member, the way Klaviyo reports JSON:API validation errors.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from .errors import ApiError
from .store import MAX_BULK_PROFILES, MAX_LIST_RELATIONSHIP_ITEMS, MAX_PROFILE_BYTES

# Attribute names the spec defines for bulk-import profiles.
_PROFILE_STRING_ATTRS = (
    "email",
    "phone_number",
    "external_id",
    "_kx",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
)
_PROFILE_ATTRS = frozenset(_PROFILE_STRING_ATTRS + ("location", "properties"))
_LOCATION_STRING_ATTRS = frozenset({"address1", "address2", "city", "country", "region", "zip", "timezone", "ip"})
_LOCATION_ATTRS = _LOCATION_STRING_ATTRS | {"latitude", "longitude"}
_PROFILE_KEYS = frozenset({"type", "id", "attributes", "meta"})
_OPT_IN = ("double_opt_in", "single_opt_in")


def _escape(token: str) -> str:
    """Escape one JSON-pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _contains_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(item is None or (isinstance(item, (dict, list)) and _contains_null(item)) for item in value.values())
    if isinstance(value, list):
        return any(item is None or (isinstance(item, (dict, list)) and _contains_null(item)) for item in value)
    return False


def find_null(value: Any, pointer: str) -> Optional[str]:
    """Return the JSON pointer of the first ``null`` inside ``value``, if any."""
    if not _contains_null(value):  # the common case, without building a pointer per member
        return None
    return _find_null(value, pointer)


def _find_null(value: Any, pointer: str) -> Optional[str]:
    if value is None:
        return pointer
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_null(item, f"{pointer}/{_escape(str(key))}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _find_null(item, f"{pointer}/{i}")
            if found:
                return found
    return None


def parse_json_body(body: bytes) -> Any:
    """Decode a request body or raise a 400 pointing at the document root."""
    if not body:
        raise ApiError(400, "A request body is required.", pointer="/data")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"Malformed JSON in request body: {exc}", pointer="/data") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "The request body must be a JSON object with a 'data' member.", pointer="/data")
    return doc


def _require_object(value: Any, pointer: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, f"'{what}' must be an object.", pointer=pointer)
    return value


def _require_type(data: dict[str, Any], expected: str, pointer: str) -> None:
    actual = data.get("type")
    if actual != expected:
        raise ApiError(
            400,
            f"The resource type must be '{expected}' (got {json.dumps(actual)}).",
            pointer=f"{pointer}/type",
        )


def _validate_profile(prof: Any, i: int) -> dict[str, Any]:
    base = f"/data/attributes/profiles/data/{i}"
    if not isinstance(prof, dict):
        raise ApiError(400, "Each profile must be an object.", pointer=base)
    size = len(json.dumps(prof, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_PROFILE_BYTES:
        raise ApiError(
            400,
            f"Profile is {size} bytes; the maximum allowed payload size per profile is 100KB "
            f"({MAX_PROFILE_BYTES} bytes).",
            pointer=base,
        )
    null_at = find_null(prof, base)
    if null_at:
        raise ApiError(
            400,
            "Null values are not allowed in bulk import profiles (emulator strictness: omit the "
            "key instead of sending null, so existing Klaviyo data is not blanked).",
            pointer=null_at,
        )
    for key in prof:
        if key not in _PROFILE_KEYS:
            raise ApiError(
                400, f"'{key}' is not a valid member of a profile resource.", pointer=f"{base}/{_escape(key)}"
            )
    _require_type(prof, "profile", base)
    pid = prof.get("id")
    if pid is not None and (not isinstance(pid, str) or not pid):
        raise ApiError(400, "A profile id must be a non-empty string.", pointer=f"{base}/id")
    attrs = _require_object(prof.get("attributes"), f"{base}/attributes", "attributes")
    for key, value in attrs.items():
        ptr = f"{base}/attributes/{_escape(key)}"
        if key not in _PROFILE_ATTRS:
            raise ApiError(
                400,
                f"'{key}' is not a valid attribute for a profile; put custom fields under 'properties'.",
                pointer=ptr,
            )
        if key in _PROFILE_STRING_ATTRS and not isinstance(value, str):
            raise ApiError(400, f"'{key}' must be a string.", pointer=ptr)
        if key == "properties":
            _require_object(value, ptr, "properties")
        if key == "location":
            _require_object(value, ptr, "location")
            for lkey, lval in value.items():
                lptr = f"{ptr}/{_escape(lkey)}"
                if lkey not in _LOCATION_ATTRS:
                    raise ApiError(400, f"'{lkey}' is not a valid location attribute.", pointer=lptr)
                if lkey in _LOCATION_STRING_ATTRS and not isinstance(lval, str):
                    raise ApiError(400, f"location '{lkey}' must be a string.", pointer=lptr)
                if lkey in ("latitude", "longitude") and (
                    isinstance(lval, bool) or not isinstance(lval, (str, int, float))
                ):
                    raise ApiError(400, f"location '{lkey}' must be a string or number.", pointer=lptr)
    if not pid and not any(
        isinstance(attrs.get(k), str) and attrs.get(k) for k in ("email", "phone_number", "external_id")
    ):
        raise ApiError(
            400,
            "A profile needs at least one identifier: email, phone_number or external_id (or a profile id).",
            pointer=f"{base}/attributes",
        )
    if "meta" in prof:
        _require_object(prof["meta"], f"{base}/meta", "meta")
    return prof


def validate_bulk_import(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Validate a Bulk Import Profiles body; return ``(profiles, list_ids)``."""
    data = _require_object(doc.get("data"), "/data", "data")
    _require_type(data, "profile-bulk-import-job", "/data")
    attrs = _require_object(data.get("attributes"), "/data/attributes", "attributes")
    profiles_obj = _require_object(attrs.get("profiles"), "/data/attributes/profiles", "profiles")
    profiles = profiles_obj.get("data")
    if not isinstance(profiles, list):
        raise ApiError(
            400, "'profiles.data' must be an array of profile resources.", pointer="/data/attributes/profiles/data"
        )
    if not profiles:
        raise ApiError(400, "At least one profile is required.", pointer="/data/attributes/profiles/data")
    if len(profiles) > MAX_BULK_PROFILES:
        raise ApiError(
            400,
            f"{len(profiles)} profiles were provided; a bulk import job accepts up to "
            f"{MAX_BULK_PROFILES:,} profiles per request.",
            pointer="/data/attributes/profiles/data",
        )
    for i, prof in enumerate(profiles):
        _validate_profile(prof, i)
    list_ids: list[str] = []
    rels = data.get("relationships")
    if rels is not None:
        rels = _require_object(rels, "/data/relationships", "relationships")
        lists = rels.get("lists")
        if lists is not None:
            lists = _require_object(lists, "/data/relationships/lists", "lists")
            items = lists.get("data")
            if not isinstance(items, list):
                raise ApiError(400, "'lists.data' must be an array.", pointer="/data/relationships/lists/data")
            for j, item in enumerate(items):
                ptr = f"/data/relationships/lists/data/{j}"
                item = _require_object(item, ptr, "list relationship")
                _require_type(item, "list", ptr)
                lid = item.get("id")
                if not isinstance(lid, str) or not lid:
                    raise ApiError(400, "A list id must be a non-empty string.", pointer=f"{ptr}/id")
                list_ids.append(lid)
    return profiles, list_ids


def validate_create_list(doc: dict[str, Any]) -> tuple[str, Optional[str]]:
    """Validate a Create List body; return ``(name, opt_in_process)``."""
    data = _require_object(doc.get("data"), "/data", "data")
    _require_type(data, "list", "/data")
    attrs = _require_object(data.get("attributes"), "/data/attributes", "attributes")
    for key in attrs:
        if key not in ("name", "opt_in_process"):
            raise ApiError(
                400, f"'{key}' is not a valid attribute for a list.", pointer=f"/data/attributes/{_escape(key)}"
            )
    name = attrs.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "'name' is required and must be a non-empty string.", pointer="/data/attributes/name")
    opt_in = attrs.get("opt_in_process")
    if opt_in is not None and opt_in not in _OPT_IN:
        raise ApiError(
            400,
            f"'opt_in_process' must be one of {', '.join(_OPT_IN)}.",
            pointer="/data/attributes/opt_in_process",
        )
    return name, opt_in


def validate_profile_relationships(doc: dict[str, Any]) -> list[str]:
    """Validate an Add/Remove Profiles to/from List body; return profile ids."""
    items = doc.get("data")
    if not isinstance(items, list):
        raise ApiError(400, "'data' must be an array of profile identifiers.", pointer="/data")
    if len(items) > MAX_LIST_RELATIONSHIP_ITEMS:
        raise ApiError(
            400,
            f"{len(items)} profiles were provided; this endpoint accepts a maximum of "
            f"{MAX_LIST_RELATIONSHIP_ITEMS} profiles per call.",
            pointer="/data",
        )
    ids: list[str] = []
    for i, item in enumerate(items):
        ptr = f"/data/{i}"
        item = _require_object(item, ptr, "profile identifier")
        _require_type(item, "profile", ptr)
        pid = item.get("id")
        if not isinstance(pid, str) or not pid:
            raise ApiError(400, "A profile id must be a non-empty string.", pointer=f"{ptr}/id")
        ids.append(pid)
    return ids
