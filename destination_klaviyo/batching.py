"""Request bodies sized by the exact bytes that will be sent.

A body is built by concatenating pre-serialized items (profiles, events, profile references)
between a fixed prefix and suffix, the surface's envelope, so the size known while filling a batch
is the size of the bytes on the wire, not an estimate. Each surface module gives its envelope and
limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(slots=True)
class Entry:
    """One row of the sync: where it came from, for state, count and rejection bookkeeping."""

    seq: int  # the record's number across the sync
    stream: str  # its stream's name, for logs and per-stream counts
    ordinal: int  # position of the row in its stream, for rejection logs that carry no row data
    key: tuple[Optional[str], str]  # (namespace, name): the scope of the states it belongs to


class BodyBatch:
    """Rows that will go out in one request whose body is prefix + comma-joined items + suffix.

    Items are appended to one growing buffer as they arrive instead of being kept as separate
    bytes objects: orjson's small results each pin a 4 KiB allocation, which made batches in
    flight cost ten times their size. `spans` remembers where each item sits, for rebuilding the
    batch without the rows Klaviyo refused.
    """

    __slots__ = ("prefix", "suffix", "max_items", "max_bytes", "entries", "spans", "buffer", "size")

    def __init__(self, prefix: bytes, suffix: bytes, max_items: int, max_bytes: int) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.entries: list[Entry] = []
        self.spans: list[int] = []  # start offset of each item in `buffer`
        self.buffer = bytearray()
        self.size = len(prefix) + len(suffix)

    def __len__(self) -> int:
        return len(self.entries)

    def fits(self, item: bytes) -> bool:
        separator = 1 if self.entries else 0
        return len(self.entries) < self.max_items and self.size + separator + len(item) <= self.max_bytes

    def add(self, entry: Entry, item: bytes) -> None:
        if not self.offer(entry, item):
            raise ValueError("the item does not fit this batch: check `fits` first")

    def offer(self, entry: Entry, item: bytes) -> bool:
        """Add the item if it fits the batch's count and byte limits; else add nothing and say so.

        One call per row on the hot path instead of `fits` then `add`."""
        entries = self.entries
        size = self.size + len(item) + (1 if entries else 0)
        if size > self.max_bytes or len(entries) >= self.max_items:
            return False
        if entries:
            self.buffer += b","
        self.spans.append(len(self.buffer))
        self.buffer += item
        entries.append(entry)
        self.size = size
        return True

    def item(self, index: int) -> bytes:
        start = self.spans[index]
        end = self.spans[index + 1] - 1 if index + 1 < len(self.spans) else len(self.buffer)
        return bytes(self.buffer[start:end])

    def body(self) -> bytes:
        return b"".join((self.prefix, self.buffer, self.suffix))

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
                rest.add(entry, self.item(i))
        return rest
