"""What no row may break: the values JSON or Klaviyo cannot carry, and the net under every renderer.

Rendering is total: no row can raise out of it, because a row that raised would fail every retry
of the sync the same way, forever. Nesting is bounded (MAX_DEPTH, checked while nulls are
stripped, so no value can exhaust the stack); what JSON or Klaviyo cannot carry (NaN, Infinity,
lone UTF-16 surrogates, integers beyond 64 bits) is found after the one serialization, only when
it failed or wrote a null, so clean rows pay nothing for it; and `render_row` turns anything else
a surface's renderer raises into a rejection of that row (`unrenderable`).

The checks a surface makes of one column before using it belong here too, for the same reason: a
target name that could not be looked up (`target_problem`), a string over Klaviyo's size limit
(`longest_string_column`).
"""

from __future__ import annotations

import math
import os
import traceback
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping, Optional, Union

import orjson

from destination_klaviyo.identifiers import PROFILE_ID_COLUMN
from destination_klaviyo.rejections import Rejection, Rendered

# Klaviyo documents no nesting limit for profile properties. 32 levels hold any real document (a
# Shopify order is 5 or 6 deep) and stay far from orjson's 255 and Python's recursion limit.
MAX_DEPTH = 32

# What strip_nulls walks into: a value of any other class (most values) is kept without a call.
CONTAINERS = (dict, list)


class TooDeep(Exception):
    """A value nests objects and arrays deeper than MAX_DEPTH."""


def strip_nulls(value: Any, levels: int = MAX_DEPTH) -> Any:
    """Drop nulls at every depth: members of objects and items of arrays.

    Raises TooDeep for a value nested more than `levels` deep, before the stack could run out.
    Written for the hot path: scalars (most values) are not passed through a call.
    """
    if isinstance(value, dict):
        if levels <= 0:
            raise TooDeep
        levels -= 1
        return {
            k: strip_nulls(v, levels) if isinstance(v, CONTAINERS) else v for k, v in value.items() if v is not None
        }
    if isinstance(value, list):
        if levels <= 0:
            raise TooDeep
        levels -= 1
        return [strip_nulls(v, levels) if isinstance(v, CONTAINERS) else v for v in value if v is not None]
    return value


def invalid_text(column: str, value: str) -> Optional[Rejection]:
    """The rejection of text that is not valid Unicode (a lone UTF-16 surrogate, which JSON
    parsers accept from `\\ud800` escapes but no UTF-8 encoder can write), else None."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return Rejection(
            "invalid_text", f"column '{column}' holds text that is not valid Unicode (a lone UTF-16 surrogate)"
        )
    return None


def _json_default(value: Any) -> Any:
    """Values a Python caller of `write()` may hand us that JSON has no type for."""
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None  # None is caught as non-finite below
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1  # the integers orjson (and most JSON readers) carry exactly


# A target is looked up by name in a request URL (`filter=equals(name,"...")`); percent-encoded, a
# longer name could pass the 8 KB request line most servers and proxies accept.
MAX_TARGET_CHARS = 500


def target_problem(column: str, target: str) -> Optional[Rejection]:
    """Why a row's target (a list name) cannot be looked up or created, else None."""
    if len(target) > MAX_TARGET_CHARS:
        return Rejection("invalid_target", f"column '{column}' is longer than {MAX_TARGET_CHARS} characters")
    return invalid_text(column, target)


def _value_problem(value: Any) -> Optional[tuple[str, str]]:
    """(code, what is wrong) for the first thing in `value` that JSON or Klaviyo cannot carry, or None.

    Iterative, with its own bound: it also runs on values that failed to serialize."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if invalid_text("", item):
                return "invalid_text", "holds text that is not valid Unicode (a lone UTF-16 surrogate)"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not _INT64_MIN <= item <= _UINT64_MAX:
                return "invalid_value", "holds a whole number beyond 64 bits"
        elif isinstance(item, (float, Decimal)):
            if not (math.isfinite(item) if isinstance(item, float) else item.is_finite()):
                return "invalid_value", "holds a number JSON cannot carry (NaN or Infinity)"
        elif isinstance(item, (dict, list, tuple, set, frozenset)):
            if depth >= MAX_DEPTH:
                return "too_deep", f"nests objects or arrays deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        return "invalid_value", "has a member name that is not text"
                    if invalid_text("", key):
                        return "invalid_text", "has a member name that is not valid Unicode (a lone UTF-16 surrogate)"
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None


def _sent_columns(resource: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """A rendered resource's values, each under the name of the column (or `properties` key) it came from."""
    if "id" in resource:
        yield PROFILE_ID_COLUMN, resource["id"]
    attributes = resource.get("attributes")
    if isinstance(attributes, Mapping):
        for key, value in attributes.items():
            if key == "properties" and isinstance(value, Mapping):
                yield from value.items()
            else:
                yield key, value
    for key, value in resource.items():
        if key not in ("id", "attributes", "type"):
            yield key, value


def _unsendable(resource: Mapping[str, Any]) -> Optional[Rejection]:
    """The rejection naming the column that JSON or Klaviyo cannot carry, or None."""
    for column, value in _sent_columns(resource):
        if not isinstance(column, str) or invalid_text("", column):
            return Rejection("invalid_text", f"column '{column}' has a name that is not valid Unicode")
        problem = _value_problem(value)
        if problem is not None:
            return Rejection(problem[0], f"column '{column}' {problem[1]}")
    return None


def longest_string_column(data: Mapping[str, Any], max_bytes: int) -> Union[str, None]:
    """The first column whose name or value holds a string over `max_bytes` UTF-8 bytes, at any depth."""
    for column, value in data.items():
        if _has_long_string(column, max_bytes) or _has_long_string(value, max_bytes):
            return column
    return None


def _has_long_string(value: Any, max_bytes: int) -> bool:
    if isinstance(value, str):
        # A character is at most 4 bytes: most strings are cleared without encoding them.
        return len(value) > max_bytes // 4 and len(value.encode("utf-8", "surrogatepass")) > max_bytes
    if isinstance(value, dict):
        return any(_has_long_string(k, max_bytes) or _has_long_string(v, max_bytes) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_long_string(v, max_bytes) for v in value)
    return False


def serialize(resource: dict[str, Any], max_bytes: int, what: str) -> Rendered:
    """The resource as compact JSON, unless it is over `max_bytes` or holds something JSON or
    Klaviyo cannot carry (NaN, Infinity, a lone surrogate, an integer beyond 64 bits)."""
    try:
        body = orjson.dumps(resource, default=_json_default)
    except orjson.JSONEncodeError:
        return _unsendable(resource) or Rejection("invalid_value", f"the {what} could not be written as JSON")
    if len(body) > max_bytes:
        return Rejection(
            f"{what}_too_large",
            f"rendered {what} is {len(body)} bytes; Klaviyo accepts at most {max_bytes} bytes per {what}",
        )
    # orjson writes NaN and Infinity as null; nulls were stripped, so a null here is one of those
    # (or the word inside a string). Checked after the size, so a huge row is not walked for it.
    if b"null" in body:
        problem = _unsendable(resource)
        if problem is not None:
            return problem
    return body


def render_row(render: Callable[..., Rendered], data: Mapping[str, Any], **options: Any) -> Rendered:
    """`render(data, **options)`, with any exception it raises turned into a rejection of the row.

    The rendering rules give every known problem its own code; this is the net under them. A row that
    raised out of rendering would stop the sync, and every retry of it, at the same row. The
    detail names the exception type and where it was raised, never a value.
    """
    try:
        return render(data, **options)
    except Exception as exc:  # noqa: BLE001 - a bug or an input nobody foresaw: that row, not the sync
        return unrenderable(exc)


def unrenderable(exc: Exception) -> Rejection:
    """The rejection of a row whose rendering raised: the exception's type and line, never a value."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return Rejection("unrenderable", f"the row could not be rendered ({type(exc).__name__}{where})")
