"""The bare Airbyte CDK message-reading loop: the CPU floor a Python destination is compared with.

It reads stdin exactly as `airbyte_cdk.destinations.Destination._parse_input_stream` does (a UTF-8
`io.TextIOWrapper` over `sys.stdin.buffer`, then `AirbyteMessageSerializer.load(orjson.loads(line))`
per line) and discards every message. It imports the CDK's destination module like a connector
would, so interpreter and import start-up are part of the floor too. Run as its own process on the
same input file as the connector: `python bench/baseline_loop.py < messages.jsonl`.
"""

from __future__ import annotations

import io
import sys

import orjson
from airbyte_cdk.destinations import Destination  # noqa: F401  (the import cost a destination pays)
from airbyte_cdk.models import AirbyteMessageSerializer


def main() -> int:
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    count = 0
    for line in stdin:
        try:
            AirbyteMessageSerializer.load(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
        count += 1
    sys.stderr.write(f"baseline: parsed {count} messages\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
