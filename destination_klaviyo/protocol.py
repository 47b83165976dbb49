"""Reading Airbyte messages from stdin and writing them to stdout, as raw JSON.

Records and states are kept as the dicts that arrived: a state must go back to the platform
exactly as received (plus `destinationStats`), including fields newer than our protocol models.
Unlike the CDK's reader, a line that is not a JSON object stops the sync instead of being skipped
with an INFO log, so a row can never vanish silently.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import orjson
from airbyte_cdk.models import AirbyteMessage, AirbyteMessageSerializer

from destination_klaviyo.errors import system_error


def read_messages(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise system_error(
                f"Input line {number} is not an Airbyte message (a JSON object with a 'type'). The sync stops "
                "here so that no row is silently dropped; states of rows accepted before it were emitted."
            )
        yield message


def message_to_dict(message: AirbyteMessage) -> dict[str, Any]:
    return AirbyteMessageSerializer.dump(message)  # type: ignore[no-any-return]


def dumps(message: dict[str, Any] | AirbyteMessage) -> str:
    if isinstance(message, AirbyteMessage):
        message = message_to_dict(message)
    return orjson.dumps(message).decode()

