"""What the two consent surfaces (`subscriptions`, `suppressions`) share: batching by kind of
request, and keeping one person's opposite actions in row order.

Both surfaces send opposite kinds of request (subscribe / unsubscribe, suppress / unsuppress),
each batched in its own lane. For most people only one kind ever arrives; when a later row of the
same person asks for the opposite action, the earlier one must reach Klaviyo first, or the person
ends in the wrong state: an unsubscribe checked before the subscribe that put the person on the
list finds a non-member, and a suppress sent after a later unsuppress sticks. So the open batch
holding the earlier row is sent at once, and the later row waits until Klaviyo accepted it.
(Klaviyo runs these jobs asynchronously after its 202; "accepted first" is the most a client can
make sure of.)

A person is known by each of their identifiers (email, lower-cased; phone number; profile id); two
rows are the same person when they share one.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from destination_klaviyo.batching import BodyBatch, Entry
from destination_klaviyo.sinks import Request, Sink

PersonKey = tuple[str, str]  # ("email", "ada@example.com"), ("phone_number", "+15005550006"), ("id", ...)


def person_keys(
    email: Optional[str] = None, phone_number: Optional[str] = None, profile_id: Optional[str] = None
) -> frozenset[PersonKey]:
    keys = []
    if email:
        keys.append(("email", email.lower()))  # Klaviyo treats addresses case-insensitively
    if phone_number:
        keys.append(("phone_number", phone_number))
    if profile_id:
        keys.append(("id", profile_id))
    return frozenset(keys)


@dataclass(frozen=True)
class ConsentItem:
    """A rendered row: its JSON item, the person it is about, and whether it is a historical import."""

    item: bytes
    keys: frozenset[PersonKey]
    historical: bool = False


class Lane:
    """One kind of request of a consent sink: its open batch, who is in it, and who was sent."""

    def __init__(self, request: Request, new_batch: Callable[[], BodyBatch]) -> None:
        self.request = request
        self.new_batch = new_batch
        self.batch = new_batch()
        self.open_keys: set[PersonKey] = set()
        self.sent: list[tuple[frozenset[PersonKey], "Future[None]"]] = []

    def holds(self, keys: Iterable[PersonKey]) -> bool:
        """Whether the open batch has a row of this person."""
        return not self.open_keys.isdisjoint(keys)

    def add(self, row: Entry, item: bytes, keys: frozenset[PersonKey]) -> None:
        self.batch.add(row, item)
        self.open_keys |= keys

    def take(self) -> Optional[tuple[BodyBatch, frozenset[PersonKey]]]:
        """The open batch and its people, leaving an empty one; None when there is nothing."""
        if not len(self.batch):
            return None
        batch, keys = self.batch, frozenset(self.open_keys)
        self.batch, self.open_keys = self.new_batch(), set()
        return batch, keys

    def sent_as(self, keys: frozenset[PersonKey], future: "Future[None]") -> None:
        """Remember who a request holds until Klaviyo accepted it."""
        self.sent = [(k, f) for k, f in self.sent if not f.done() or f.exception() is not None]
        self.sent.append((keys, future))

    def wait_for(self, keys: frozenset[PersonKey]) -> None:
        """Block until every sent request holding this person was accepted (raises its failure)."""
        for sent_keys, future in self.sent:
            if not future.done() and not sent_keys.isdisjoint(keys):
                future.result()


class LaneSink(Sink):
    """A consent sink: one lane per kind of request, a person's rows reaching Klaviyo in row order."""

    lanes: tuple[Lane, ...] = ()  # set by the subclass, in the order `flush` sends them

    def queue(self, row: Entry, item: bytes, keys: frozenset[PersonKey], lane: Lane, earlier: Iterable[Lane]) -> None:
        """Put a rendered row in `lane` once the person's rows in the `earlier` (opposite) lanes were
        sent and accepted: their open batch goes now, and this row waits for Klaviyo's answer."""
        for other in earlier:
            if other.holds(keys):
                self._flush(other)
        for other in earlier:
            other.wait_for(keys)
        if not lane.batch.fits(item):
            self._flush(lane)
        lane.add(row, item, keys)

    def _flush(self, lane: Lane) -> None:
        taken = lane.take()
        if taken is not None:
            batch, keys = taken
            lane.sent_as(keys, self.submit(batch, lane.request))

    def flush(self) -> None:
        for lane in self.lanes:
            self._flush(lane)

    def open_batches(self) -> tuple[BodyBatch, ...]:
        return tuple(lane.batch for lane in self.lanes)
