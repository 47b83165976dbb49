"""When an incoming state message may be echoed back to Airbyte.

Airbyte commits a source's state once the destination echoes it, so a state may go out only after
every record that arrived before it has been accepted by Klaviyo. Records get increasing sequence
numbers; a state remembers how many records preceded it; it is released once no record with a
smaller sequence number is still waiting in a batch or in flight.

Each released state carries `destinationStats` (airbyte-protocol 0.18.0): of the records of that
state's scope since the previous state of the same scope (the stream for STREAM states, everything
for GLOBAL/LEGACY states), `recordCount` is those Klaviyo accepted and `rejectedRecordCount` those
rejected. The platform checks their sum against the source's count for the same state
(`StateCheckSumCountEventHandler`). A rejection is counted against the first state still waiting
that covers its record; rejections can come from worker threads, hence the lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from destination_klaviyo.batching import Entry

StreamKey = tuple[Optional[str], str]  # (namespace, name)


def state_scope(state: dict[str, Any]) -> Optional[StreamKey]:
    """The stream a STREAM state belongs to, or None for GLOBAL and LEGACY states."""
    if state.get("type") == "STREAM":
        descriptor = (state.get("stream") or {}).get("stream_descriptor") or {}
        return (descriptor.get("namespace"), descriptor.get("name", ""))
    return None


@dataclass
class PendingState:
    position: int  # number of records received before this state
    message: dict[str, Any]  # the whole AirbyteMessage, as received; destinationStats added on release
    arrived: float  # time.monotonic() when it arrived
    scope: Optional[StreamKey]  # its stream, or None for GLOBAL / LEGACY
    received: int  # records of its scope since the previous state of that scope
    rejected: int  # of those, how many were rejected


class StateLedger:
    """Counts records, holds incoming states, and releases each once the records before it are in."""

    def __init__(self) -> None:
        self.records_seen = 0
        self._since_state: Counter[StreamKey] = Counter()
        self._since_global = 0
        self._rejected_since_state: Counter[StreamKey] = Counter()
        self._rejected_since_global = 0
        self._lock = threading.Lock()
        self._pending: deque[PendingState] = deque()
        self.states_seen = 0
        self.states_released = 0
        # Finished requests and states seen when release was last looked at (see may_release).
        self._released_at_finished = self._released_at_states = -1

    def next_record(self, stream: StreamKey) -> int:
        """Count a record and return its sequence number."""
        seq = self.records_seen
        self.records_seen += 1
        self._since_state[stream] += 1
        self._since_global += 1
        return seq

    def add_state(self, message: dict[str, Any]) -> None:
        self.states_seen += 1
        scope = state_scope(message.setdefault("state", {}))
        with self._lock:
            if scope is None:
                received, rejected = self._since_global, self._rejected_since_global
                self._since_global = self._rejected_since_global = 0
                self._since_state.clear()
                self._rejected_since_state.clear()
            else:
                received = self._since_state.pop(scope, 0)
                rejected = self._rejected_since_state.pop(scope, 0)
            self._pending.append(PendingState(self.records_seen, message, time.monotonic(), scope, received, rejected))

    def count_rejected(self, row: Entry) -> None:
        """A record was rejected: count it against the state that covers it (or the next one)."""
        with self._lock:
            for state in self._pending:
                if state.position > row.seq and (state.scope is None or state.scope == row.key):
                    state.rejected += 1
                    return
            self._rejected_since_state[row.key] += 1
            self._rejected_since_global += 1

    def pending_count(self) -> int:
        return len(self._pending)

    def oldest_wait_seconds(self) -> float:
        """How long the oldest state not yet released has waited (0 when none waits)."""
        return time.monotonic() - self._pending[0].arrived if self._pending else 0.0

    def may_release(self, finished_requests: int) -> bool:
        """Whether a state arrived or a request finished since the last call.

        Which states may go only changes on those events; between them the writer's per-row check
        is two attribute reads instead of a scan of every sink.
        """
        if finished_requests == self._released_at_finished and self.states_seen == self._released_at_states:
            return False
        self._released_at_finished, self._released_at_states = finished_requests, self.states_seen
        return True

    def release(self, lowest_unaccepted_seq: Optional[int]) -> Iterator[dict[str, Any]]:
        """Yield, in arrival order, the states all of whose preceding records are accepted.

        `lowest_unaccepted_seq` is the smallest sequence number still buffered or in flight, or None
        when nothing is.
        """
        while self._pending and (lowest_unaccepted_seq is None or self._pending[0].position <= lowest_unaccepted_seq):
            with self._lock:
                state = self._pending.popleft()
            self.states_released += 1
            state.message["state"]["destinationStats"] = {
                "recordCount": float(state.received - state.rejected),
                "rejectedRecordCount": float(state.rejected),
            }
            yield state.message

    def discard(self) -> int:
        """Drop the states that can no longer be released (dry run, failed sync); return how many."""
        with self._lock:
            dropped = len(self._pending)
            self._pending.clear()
        return dropped
