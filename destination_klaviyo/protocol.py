"""Reading Airbyte messages from stdin and writing them to stdout, as raw JSON.

Records and states are kept as the dicts that arrived: a state must go back to the platform
exactly as received (plus `destinationStats`), including fields newer than our protocol models.
Unlike the CDK's reader, a line that is not a JSON object stops the sync instead of being skipped
with an INFO log, so a row can never vanish silently.

orjson reads strict JSON. Sources written in Python often serialize with `json.dumps`, which
writes bare `NaN` and `Infinity`, and some sources write lone UTF-16 surrogates (`"\\ud800"`) or
bytes that are not UTF-8. A line orjson refuses is therefore read again with the standard library,
which accepts all of these; the record then reaches rendering, which rejects the row that holds
such a value with a code (one bad value must cost one row, not the sync).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

import orjson
from airbyte_cdk.models import AirbyteMessage, AirbyteMessageSerializer

from destination_klaviyo.errors import system_error

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _lenient_int(text: str) -> int | float:
    """An integer as orjson reads it: exact within 64 bits, a float beyond (as a float it can be sent)."""
    if len(text) <= 20:
        value = int(text)
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
    return float(text)


def _parse(line: bytes | str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    # Bytes that are not UTF-8 become lone surrogates ("surrogateescape"), which rendering rejects.
    text = line.decode("utf-8", "surrogateescape") if isinstance(line, bytes) else line
    try:
        return json.loads(text, parse_int=_lenient_int)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; deeper than ~1,000 levels
        return None


def read_messages(lines: Iterable[bytes | str | None]) -> Iterator[dict[str, Any] | None]:
    """The messages of `lines`; a None (the inbox woke with no line) is passed on as None."""
    number = 0
    for line in lines:
        if line is None:
            yield None
            continue
        number += 1
        if not line.strip():
            continue
        message = _parse(line)
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise system_error(
                f"Input line {number} is not an Airbyte message (a JSON object with a 'type'; neither a strict "
                "nor a lenient JSON reader could read it, or it nests deeper than 1,024 levels). The sync stops "
                "here so that no row is silently dropped; states of rows accepted before it were emitted."
            )
        yield message


def message_to_dict(message: AirbyteMessage) -> dict[str, Any]:
    return AirbyteMessageSerializer.dump(message)  # type: ignore[no-any-return]


def dumps(message: dict[str, Any] | AirbyteMessage) -> str:
    if isinstance(message, AirbyteMessage):
        message = message_to_dict(message)
    try:
        return orjson.dumps(message).decode()
    except orjson.JSONEncodeError:
        # A state read by the lenient reader can hold a lone surrogate: echo it escaped, as it came.
        return json.dumps(message, separators=(",", ":"))
