"""Per-stream and per-target counts of a sync, and the end-of-sync summary (also the dry-run plan).

Rejected rows are logged with their stream, their ordinal in the stream and a reason that names
columns, never values: a row is personal data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from typing import Callable, Optional

from destination_klaviyo.batching import Entry
from destination_klaviyo.rendering import Rejection

logger = logging.getLogger("airbyte")

# Per-record rejection logs stop after this many per stream; the summary still counts them all.
MAX_LOGGED_REJECTIONS_PER_STREAM = 100


@dataclass
class StreamCounts:
    received: int = 0
    delivered: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class SyncReport:
    """What happened to every row, target and request of a sync; written from worker threads too."""

    def __init__(self, dry_run: bool = False, on_rejected: Optional[Callable[[Entry], None]] = None) -> None:
        self.dry_run = dry_run
        self.on_rejected = on_rejected  # the state ledger, which counts rejections per state
        self.lock = threading.Lock()  # deliveries report from worker threads
        self.streams: dict[str, StreamCounts] = defaultdict(StreamCounts)
        self.targets: dict[str, Counter[str]] = defaultdict(Counter)  # target -> action -> rows
        self.target_lists: dict[str, str] = {}  # target -> how it resolved, for the summary
        self.requests: Counter[str] = Counter()
        self.mirrors: list[str] = []
        # Rows carried out on no list target (suppressions): subject -> action -> rows
        self.untargeted: dict[str, Counter[str]] = defaultdict(Counter)
        self.notes: list[str] = []  # facts a sink wants in the summary (a list using double opt-in)
        self.verifications: list[str] = []
        self.import_failures = 0

    def received(self, stream: str) -> int:
        counts = self.streams[stream]
        counts.received += 1
        return counts.received

    def delivered(self, stream: str, action: str, target: str | None = None, count: int = 1) -> None:
        with self.lock:
            self.streams[stream].delivered += count
            if target is not None:
                self.targets[target][action] += count

    def rejected(self, row: Entry, rejection: Rejection) -> None:
        with self.lock:
            counts = self.streams[row.stream]
            counts.rejected[rejection.code] += 1
            total = sum(counts.rejected.values())
        if self.on_rejected is not None:
            self.on_rejected(row)
        if total <= MAX_LOGGED_REJECTIONS_PER_STREAM:
            logger.warning(
                f"Rejected record #{row.ordinal} of stream '{row.stream}' ({rejection.code}): {rejection.detail}"
            )
        elif total == MAX_LOGGED_REJECTIONS_PER_STREAM + 1:
            logger.warning(f"Stream '{row.stream}': more rejections follow; only their counts are reported from now on.")

    def acted(self, subject: str, action: str, count: int) -> None:
        """Rows a surface without list targets carried out (suppress, unsuppress), for the summary."""
        with self.lock:
            self.untargeted[subject][action] += count

    def note(self, line: str) -> None:
        with self.lock:
            if line not in self.notes:
                self.notes.append(line)

    def resolved(self, target: str, description: str) -> None:
        self.target_lists[target] = description

    def request_sent(self, kind: str) -> None:
        with self.lock:
            self.requests[kind] += 1

    def mirrored(self, line: str) -> None:
        self.mirrors.append(line)

    def verified(self, line: str, failed: int) -> None:
        self.verifications.append(line)
        self.import_failures += failed

    def total_received(self) -> int:
        return sum(c.received for c in self.streams.values())

    def total_rejected(self) -> int:
        return sum(sum(c.rejected.values()) for c in self.streams.values())

    def summary_lines(self) -> list[str]:
        verb = "would deliver" if self.dry_run else "delivered"
        lines = []
        for stream, counts in sorted(self.streams.items()):
            reasons = ", ".join(f"{code}: {n}" for code, n in sorted(counts.rejected.items())) or "none"
            lines.append(
                f"Stream '{stream}': received {counts.received}, {verb} {counts.delivered}, "
                f"rejected {sum(counts.rejected.values())} ({reasons})"
            )
        for target in sorted(set(self.targets) | set(self.target_lists)):
            actions = ", ".join(f"{action} {n}" for action, n in sorted(self.targets[target].items())) or "no rows"
            lines.append(f"Target '{target}' -> {self.target_lists.get(target, '?')}: {actions}")
        for subject, actions in sorted(self.untargeted.items()):
            lines.append(f"{subject}: " + ", ".join(f"{action} {n}" for action, n in sorted(actions.items())))
        lines += self.notes
        lines += self.mirrors
        lines += self.verifications
        if self.requests:
            lines.append("Requests: " + ", ".join(f"{kind}: {n}" for kind, n in sorted(self.requests.items())))
        return lines

    def log_summary(self, prefix: str = "Sync summary") -> None:
        level = logging.WARNING if self.total_rejected() or self.import_failures else logging.INFO
        for line in self.summary_lines():
            logger.log(level, f"{prefix}: {line}")


class Progress:
    """A log line every few seconds, so a long sync shows it is moving and how fast."""

    EVERY_SECONDS = 5.0

    def __init__(self, report: SyncReport) -> None:
        self.report = report
        self.started = self.last = time.monotonic()
        self.rows_at_last = 0

    def log(self, read: int, in_flight: int, states_echoed: int) -> None:
        now = time.monotonic()
        if now - self.last < self.EVERY_SECONDS:
            return
        rate = (read - self.rows_at_last) / (now - self.last)
        delivered = sum(c.delivered for c in self.report.streams.values())
        logger.info(
            f"Progress: read {read} rows ({rate:,.0f} rows/s now, {read / (now - self.started):,.0f} on average), "
            f"{'would deliver' if self.report.dry_run else 'delivered'} {delivered}, "
            f"rejected {self.report.total_rejected()}, {in_flight} request(s) in flight, {states_echoed} state(s) echoed"
        )
        self.last, self.rows_at_last = now, read
