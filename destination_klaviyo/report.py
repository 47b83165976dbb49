"""Per-stream and per-target counts of a sync, and the end-of-sync summary (also the dry-run plan).

Rejected rows are logged with their stream, their ordinal in the stream and a reason that names
columns, never values: a row is personal data. The summary is written for the person who set up
the sync, in plain words: a headline (rows, time, rate, states), a line per stream and per target,
mirrors and requests, at INFO; whatever needs a look (rejections, dropped phone numbers, targets
refused a new list, skipped or refused mirrors, failed imports) on WARN lines of their own. When
the sync failed, every line is a WARN.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

from destination_klaviyo.batching import Entry
from destination_klaviyo.rejections import Omission, Rejection

logger = logging.getLogger("airbyte")

# Per-record rejection (and omission) logs stop after this many per stream; the summary still
# counts them all.
MAX_LOGGED_REJECTIONS_PER_STREAM = 100


@dataclass
class StreamCounts:
    received: int = 0
    delivered: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    omitted: Counter[str] = field(default_factory=Counter)  # delivered rows sent without a value


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
        self.mirrors: list[tuple[int, str]] = []  # (log level, line)
        self.verifications: list[tuple[int, str]] = []
        self.notes: list[tuple[int, str]] = []  # facts a sink wants in the summary (a list using double opt-in)
        self.import_failures = 0
        self.hints_given: set[tuple[str, str]] = set()  # (stream, hint) already logged
        self.refused_targets: list[str] = []  # new targets over max_new_lists_per_sync, in order
        self.tallies: dict[str, Counter[str]] = defaultdict(Counter)  # heading -> what -> count
        self.backlogs: dict[str, tuple[int, float]] = {}  # work queued behind a slow endpoint: (pending, per second)

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
        if rejection.hint is not None:
            self._advise(row.stream, rejection.hint)
        if total <= MAX_LOGGED_REJECTIONS_PER_STREAM:
            logger.warning(
                f"Rejected record #{row.ordinal} of stream '{row.stream}' ({rejection.code}): {rejection.detail}"
            )
        elif total == MAX_LOGGED_REJECTIONS_PER_STREAM + 1:
            logger.warning(
                f"Stream '{row.stream}': more rejections follow; only their counts are reported from now on."
            )

    def _advise(self, stream: str, hint: str) -> None:
        """A hint about a stream's columns, once per stream and hint (rows repeat it)."""
        with self.lock:
            if (stream, hint) in self.hints_given:
                return
            self.hints_given.add((stream, hint))
        logger.warning(
            f"Stream '{stream}': rows without an identifier are rejected ({hint}). Columns are never renamed "
            "automatically: rename the column in the source, or map it in the connection, to use it as an identifier."
        )

    def omitted(self, row: Entry, omission: Omission) -> None:
        """A row is sent without one of its values (an unusable phone number): count it, log it."""
        counts = self.streams[row.stream]  # rendering runs on the main thread only
        counts.omitted[omission.code] += 1
        total = sum(counts.omitted.values())
        if total <= MAX_LOGGED_REJECTIONS_PER_STREAM:
            logger.warning(f"Record #{row.ordinal} of stream '{row.stream}' ({omission.code}): {omission.detail}")
        elif total == MAX_LOGGED_REJECTIONS_PER_STREAM + 1:
            logger.warning(
                f"Stream '{row.stream}': more rows are sent without a value; only their counts are reported from now on."
            )

    def note(self, line: str) -> None:
        """A fact a sink wants in the summary (a target list that uses double opt-in), once."""
        with self.lock:
            if (logging.INFO, line) not in self.notes:
                self.notes.append((logging.INFO, line))

    def resolved(self, target: str, description: str) -> None:
        self.target_lists[target] = description

    def refused_target(self, target: str) -> None:
        """A new target over `max_new_lists_per_sync`: no list is made, its rows are rejected."""
        self.refused_targets.append(target)
        if len(self.refused_targets) == 1:
            logger.warning(
                "This sync reached `max_new_lists_per_sync`: rows of further targets that have no Klaviyo list are "
                "rejected (too_many_new_lists), and the summary names those targets."
            )

    def request_sent(self, kind: str) -> None:
        with self.lock:
            self.requests[kind] += 1

    def tally(self, heading: str, what: str, count: int = 1) -> None:
        """Count something a surface wants in the summary, e.g. deletions per identifier kind."""
        with self.lock:
            self.tallies[heading][what] += count

    def backlog(self, name: str, pending: int, per_second: float) -> None:
        """How much work waits behind an endpoint's rate limit, for the progress line's ETA."""
        self.backlogs[name] = (pending, per_second)

    def mirrored(self, line: str, *, warning: bool = False) -> None:
        self.mirrors.append((logging.WARNING if warning else logging.INFO, line))

    def verified(self, line: str, failed: int) -> None:
        self.verifications.append((logging.WARNING if failed else logging.INFO, line))
        self.import_failures += failed

    def total_received(self) -> int:
        return sum(c.received for c in list(self.streams.values()))

    def total_delivered(self) -> int:
        return sum(c.delivered for c in list(self.streams.values()))

    def too_many_rejected(self, max_share: float) -> Optional[str]:
        """Why the sync must fail when more than `max_share` of its rows were rejected, else None."""
        received, rejected = self.total_received(), self.total_rejected()
        if not received or rejected / received <= max_share:
            return None
        return (
            f"{rejected} of {received} rows ({rejected / received:.0%}) were rejected, more than "
            f"`max_rejected_share` ({max_share:.0%}). The other rows were delivered. "
            "The 'Rejected record' log lines say why (no row data is logged): fix the source data or the "
            "stream mapping, or raise `max_rejected_share`."
        )

    def total_rejected(self) -> int:
        # list(): the progress thread reads while the main thread may add a stream; copying a dict's
        # values is one C call, which another Python thread cannot interleave with.
        return sum(sum(c.rejected.values()) for c in list(self.streams.values()))

    # -- the summary -------------------------------------------------------------------------------
    def summary_lines(self, elapsed: float, states_echoed: int) -> list[tuple[int, str]]:
        """(log level, line) pairs: the headline, then streams, targets, mirrors, checks and requests."""
        info, warn = logging.INFO, logging.WARNING
        dry = self.dry_run
        received, delivered, rejected = self.total_received(), self.total_delivered(), self.total_rejected()
        rate = f"{received / elapsed:,.0f} rows/s" if elapsed > 0 else "-"
        if dry:
            headline = (
                f"Nothing was sent to Klaviyo. {plural(received, 'row')} read in {duration(elapsed)} ({rate}): a real "
                f"sync would deliver {delivered:,} and reject {rejected:,}. No state was passed back to Airbyte "
                "(a dry run never passes one back)."
            )
        else:
            headline = (
                f"{plural(received, 'row')} read in {duration(elapsed)} ({rate}): {delivered:,} delivered to Klaviyo, "
                f"{rejected:,} rejected; {plural(states_echoed, 'state')} passed back to Airbyte."
            )
        lines = [(info, headline)]
        be = "would be " if dry else ""
        for stream, counts in sorted(self.streams.items()):
            n_rejected = sum(counts.rejected.values())
            if dry:
                line = (
                    f"Stream '{stream}': {plural(counts.received, 'row')} read; {counts.delivered:,} would be delivered"
                )
                line += f", {n_rejected:,} would be rejected." if n_rejected else "."
            else:
                line = (
                    f"Stream '{stream}': received {counts.received:,}, delivered {counts.delivered:,}, "
                    f"rejected {n_rejected:,}."
                )
            lines.append((info, line))
            if n_rejected:
                lines.append(
                    (
                        warn,
                        (
                            f"Stream '{stream}': {plural(n_rejected, 'row')} {be}rejected ({_counts(counts.rejected)}). "
                            "The 'Rejected record' lines above say why, row by row (column names, no values)."
                        ),
                    )
                )
            n_omitted = sum(counts.omitted.values())
            if n_omitted:
                lines.append(
                    (
                        warn,
                        (
                            f"Stream '{stream}': phones dropped: {plural(n_omitted, 'row')} "
                            f"{be or ('was ' if n_omitted == 1 else 'were ')}sent without {'its' if n_omitted == 1 else 'their'} "
                            f"phone number, which was not usable ({_counts(counts.omitted)})."
                        ),
                    )
                )
        for target in sorted(set(self.targets) | set(self.target_lists)):
            lines.append(
                (info, f"Target '{target}' ({self.target_lists.get(target, 'list unknown')}): {self._actions(target)}.")
            )
        if self.refused_targets:
            shown = ", ".join(f"'{t}'" for t in self.refused_targets[:MAX_NAMED_REFUSED_TARGETS])
            more = len(self.refused_targets) - MAX_NAMED_REFUSED_TARGETS
            lines.append(
                (
                    warn,
                    (
                        f"{plural(len(self.refused_targets), 'new list')} {'would not be' if dry else 'were not'} created: the "
                        f"sync reached `max_new_lists_per_sync`: {shown}{f' and {more:,} more' if more > 0 else ''}. Their rows "
                        "were rejected (too_many_new_lists). If these lists are wanted, raise `max_new_lists_per_sync`; if not, "
                        "check the target column."
                    ),
                )
            )
        for heading, counts in sorted(self.tallies.items()):
            lines.append((info, f"{heading}: " + ", ".join(f"{what} {n:,}" for what, n in sorted(counts.items()))))
        lines += self.notes
        lines += self.mirrors
        lines += self.verifications
        if self.requests:
            requests = ", ".join(f"{kind}: {n:,}" for kind, n in sorted(self.requests.items()))
            lines.append(
                (
                    info,
                    f"Requests a real sync would send: {requests}."
                    if dry
                    else f"Requests sent to Klaviyo: {requests}.",
                )
            )
        return lines

    def _actions(self, target: str) -> str:
        actions = self.targets[target]
        if not actions:
            return "no rows"
        described = []
        for action, n in sorted(actions.items()):
            noun, done, would = ACTIONS.get(action, ("row", action, action))
            described.append(f"{plural(n, noun)} {would if self.dry_run else done}")
        return ", ".join(described)

    def log_summary(self, prefix: str, *, elapsed: float, states_echoed: int, failed: bool) -> None:
        for level, line in self.summary_lines(elapsed, states_echoed):
            logger.log(logging.WARNING if failed else level, f"{prefix}: {line}")


# How a target's delivered rows are described, by the sink's action: (what is counted, what happened,
# what would happen in a dry run).
ACTIONS = {
    "upsert": ("profile", "upserted and added to the list", "would be upserted and added to the list"),
    "add": ("profile", "added to the list", "would be added to the list"),
    "remove": ("profile", "removed from the list", "would be removed from the list"),
    "superseded": (
        "row",
        "overtaken by a later row of the same profile",
        "would be overtaken by a later row of the same profile",
    ),
    "not in Klaviyo": ("row", "named someone not in Klaviyo (nothing to remove)", "would name someone not in Klaviyo"),
    "subscribe": ("profile", "subscribed into the list", "would be subscribed into the list"),
    "subscribe (historical import)": (
        "profile",
        "subscribed into the list as a historical import (consent collected earlier)",
        "would be subscribed into the list as a historical import (consent collected earlier)",
    ),
    "unsubscribe": ("profile", "unsubscribed from the list", "would be unsubscribed from the list"),
    "unsubscribe globally (not on the list)": (
        "profile",
        "unsubscribed from everything (not on the list; allow_global_unsubscribe)",
        "would be unsubscribed from everything (not on the list; allow_global_unsubscribe)",
    ),
    "already unsubscribed (nothing sent)": (
        "row",
        "already unsubscribed (nothing sent)",
        "already unsubscribed (nothing would be sent)",
    ),
}
# The summary names at most this many refused targets: a target column gone wrong may hold thousands.
MAX_NAMED_REFUSED_TARGETS = 20


def plural(n: int, noun: str) -> str:
    """`1 row`, `2 rows`, `12,000 rows`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """`4.2 s`, `12 min 5 s`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes:,} min {rest} s"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{code}: {n:,}" for code, n in sorted(counter.items()))


def backlog_text(name: str, pending: int, per_second: float) -> str:
    """`, 3,600 profile deletions pending (about 1h02m at 58/min)`; empty when nothing waits."""
    if not pending or per_second <= 0:
        return ""
    minutes = round(pending / per_second / 60)
    eta = f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{max(minutes, 1)} min"
    return f", {pending:,} {name} pending (about {eta} at {per_second * 60:.0f}/min)"
