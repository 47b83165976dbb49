"""Bulk Profile Import batches, sized by the exact bytes of the request body that will be sent.

A job body is built by concatenating pre-serialized profiles between a fixed prefix and suffix, so
the size known while filling the batch is the size of the bytes on the wire, not an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import orjson

MAX_PROFILES_PER_JOB = 10_000
# Klaviyo documents a "5MB" payload limit; we read it as 5,000,000 bytes, the stricter reading.
MAX_JOB_BODY_BYTES = 5 * 1000 * 1000


def job_envelope(list_id: Optional[str]) -> tuple[bytes, bytes]:
    """Prefix and suffix of a `profile-bulk-import-job` body around the comma-joined profiles."""
    prefix = b'{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":['
    suffix = b"]}}"
    if list_id is not None:
        relationships = orjson.dumps({"lists": {"data": [{"type": "list", "id": list_id}]}})
        suffix += b',"relationships":' + relationships
    suffix += b"}}"
    return prefix, suffix


@dataclass
class Entry:
    """One rendered row waiting in a batch: where it came from, for state and rejection bookkeeping."""

    seq: int
    stream: str
    ordinal: int  # position of the row in its stream, for rejection logs that carry no row data
    body: bytes


@dataclass
class BodyBatch:
    """Rows that will go out in one request whose body is prefix + comma-joined items + suffix."""

    prefix: bytes
    suffix: bytes
    max_items: int
    max_bytes: int
    entries: list[Entry] = field(default_factory=list)
    size: int = 0

    def __post_init__(self) -> None:
        self.size = len(self.prefix) + len(self.suffix)

    def __len__(self) -> int:
        return len(self.entries)

    def fits(self, item: bytes) -> bool:
        separator = 1 if self.entries else 0
        return len(self.entries) < self.max_items and self.size + separator + len(item) <= self.max_bytes

    def add(self, entry: Entry) -> None:
        self.size += len(entry.body) + (1 if self.entries else 0)
        self.entries.append(entry)

    def body(self) -> bytes:
        return self.prefix + b",".join(e.body for e in self.entries) + self.suffix

    def first_seq(self) -> Optional[int]:
        return self.entries[0].seq if self.entries else None

    def halves(self) -> tuple["BodyBatch", "BodyBatch"]:
        middle = len(self.entries) // 2
        return self.without(set(range(middle, len(self.entries)))), self.without(set(range(middle)))

    def without(self, indexes: set[int]) -> "BodyBatch":
        """A copy minus the entries at `indexes` (used after Klaviyo rejected single profiles)."""
        rest = BodyBatch(self.prefix, self.suffix, self.max_items, self.max_bytes)
        for i, entry in enumerate(self.entries):
            if i not in indexes:
                rest.add(entry)
        return rest


def new_bulk_job_batch(list_id: Optional[str] = None) -> BodyBatch:
    prefix, suffix = job_envelope(list_id)
    return BodyBatch(prefix, suffix, MAX_PROFILES_PER_JOB, MAX_JOB_BODY_BYTES)


MAX_PROFILES_PER_RELATIONSHIP_REQUEST = 1_000


def new_relationship_batch() -> BodyBatch:
    """Body of POST/DELETE /api/lists/{id}/relationships/profiles: `{"data": [profile refs]}`."""
    return BodyBatch(b'{"data":[', b"]}", MAX_PROFILES_PER_RELATIONSHIP_REQUEST, MAX_JOB_BODY_BYTES)
