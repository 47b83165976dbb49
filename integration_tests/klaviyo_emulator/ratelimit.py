"""Opt-in emulation of Klaviyo's per-endpoint rate limits and of network latency.

Klaviyo documents (``docs/rate_limits_and_error_handling``) a *fixed-window* algorithm per account
and endpoint with two windows: **burst** (1 second) and **steady** (1 minute). A request that would
exceed either gets **429** with a ``Retry-After`` header; every other answer of a rate-limited
endpoint carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` describing
the steady window. The per-endpoint numbers below are the ``x-klaviyo-ratelimit`` values of the
OpenAPI spec (``klaviyo/openapi``, ``openapi/stable.json``) for the operations the emulator serves.

**Time scale.** With ``time_scale = X`` simulated time runs X times faster than real time: the
burst window lasts ``1/X`` real seconds, the steady window ``60/X`` real seconds, and the latency
``latency_ms / X`` real milliseconds; the counts per window are unchanged. So every real-time
rate ceiling is multiplied by X, and a rate measured in real time is divided by X to compare it
with Klaviyo's limits. Windows are aligned to the limiter's epoch (emulator start, or the last
``/__emulator__/reset``). ``Retry-After`` is in *real* seconds, rounded up to a whole second
(HTTP's delta-seconds is an integer, and urllib3 rejects fractions), never below 1.

Only accepted requests count against a window; a throttled request consumes nothing.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

BURST_WINDOW_SECONDS = 1.0
STEADY_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Limit:
    """One operation's limits: at most `burst` per 1-s window and `steady` per 60-s window."""

    operation: str
    burst: int
    steady: int


# (method, path pattern with "*" for one segment) -> the spec's x-klaviyo-ratelimit.
KLAVIYO_RATE_LIMITS: tuple[tuple[str, str, Limit], ...] = (
    ("GET", "/api/accounts", Limit("get_accounts", 1, 15)),
    ("POST", "/api/profile-bulk-import-jobs", Limit("bulk_import_profiles", 10, 150)),
    ("GET", "/api/profile-bulk-import-jobs", Limit("get_bulk_import_profiles_jobs", 10, 150)),
    ("GET", "/api/profile-bulk-import-jobs/*", Limit("get_bulk_import_profiles_job", 10, 150)),
    (
        "GET",
        "/api/profile-bulk-import-jobs/*/import-errors",
        Limit("get_errors_for_bulk_import_profiles_job", 10, 150),
    ),
    ("GET", "/api/lists", Limit("get_lists", 75, 750)),
    ("POST", "/api/lists", Limit("create_list", 10, 150)),
    ("GET", "/api/lists/*", Limit("get_list", 75, 750)),
    ("GET", "/api/lists/*/relationships/profiles", Limit("get_profile_ids_for_list", 75, 750)),
    ("GET", "/api/lists/*/profiles", Limit("get_profiles_for_list", 75, 750)),
    ("GET", "/api/profiles", Limit("get_profiles", 75, 750)),
    ("POST", "/api/event-bulk-create-jobs", Limit("bulk_create_events", 10, 150)),
    ("POST", "/api/profile-subscription-bulk-create-jobs", Limit("bulk_subscribe_profiles", 75, 750)),
    ("POST", "/api/profile-subscription-bulk-delete-jobs", Limit("bulk_unsubscribe_profiles", 75, 750)),
    ("POST", "/api/profile-suppression-bulk-create-jobs", Limit("bulk_suppress_profiles", 75, 750)),
    ("GET", "/api/profile-suppression-bulk-create-jobs", Limit("get_bulk_suppress_profiles_jobs", 75, 750)),
    ("GET", "/api/profile-suppression-bulk-create-jobs/*", Limit("get_bulk_suppress_profiles_job", 75, 750)),
    ("POST", "/api/profile-suppression-bulk-delete-jobs", Limit("bulk_unsuppress_profiles", 75, 750)),
    ("GET", "/api/profile-suppression-bulk-delete-jobs", Limit("get_bulk_unsuppress_profiles_jobs", 75, 750)),
    ("GET", "/api/profile-suppression-bulk-delete-jobs/*", Limit("get_bulk_unsuppress_profiles_job", 75, 750)),
    ("POST", "/api/data-privacy-deletion-jobs", Limit("request_profile_deletion", 3, 60)),
    # "Rate limits when using the `additional-fields[profile]=predictive_analytics` parameter":
    # separate, smaller windows (method suffixed with the variant, see limit_for).
    ("GET+predictive_analytics", "/api/profiles", Limit("get_profiles+predictive_analytics", 10, 150)),
    (
        "GET+predictive_analytics",
        "/api/lists/*/profiles",
        Limit("get_profiles_for_list+predictive_analytics", 10, 150),
    ),
    ("POST", "/api/lists/*/relationships/profiles", Limit("add_profiles_to_list", 10, 150)),
    ("DELETE", "/api/lists/*/relationships/profiles", Limit("remove_profiles_from_list", 10, 150)),
)


def limit_for(
    method: str,
    path: str,
    table: tuple[tuple[str, str, Limit], ...] = KLAVIYO_RATE_LIMITS,
    variant: Optional[str] = None,
) -> Optional[Limit]:
    """The limit of the operation `method path` serves, or None (unknown routes are not limited).

    `variant` (e.g. ``"predictive_analytics"``) selects a row whose method is ``METHOD+variant``
    when the table has one for that path, else the plain row."""
    if variant:
        found = limit_for(f"{method}+{variant}", path, table)
        if found is not None:
            return found
    parts = path.rstrip("/").split("/")
    for m, pattern, limit in table:
        if m != method:
            continue
        pattern_parts = pattern.split("/")
        if len(pattern_parts) == len(parts) and all(p in ("*", q) for p, q in zip(pattern_parts, parts)):
            return limit
    return None


@dataclass
class Decision:
    """The limiter's answer for one request."""

    allowed: bool
    limit: Optional[Limit]
    headers: dict[str, str]
    window: Optional[str] = None  # "burst" or "steady" when throttled


class RateLimiter:
    """Fixed burst and steady windows per operation, in simulated time (see the module docstring)."""

    def __init__(
        self,
        table: tuple[tuple[str, str, Limit], ...] = KLAVIYO_RATE_LIMITS,
        *,
        time_scale: float = 1.0,
        latency_ms: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self.table = table
        self.time_scale = float(time_scale)
        self.latency_ms = float(latency_ms)
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self.reset()

    @property
    def enabled(self) -> bool:
        return bool(self.table)

    @property
    def latency_seconds(self) -> float:
        """Real seconds every /api answer takes at least (the simulated latency, scaled)."""
        return self.latency_ms / 1000.0 / self.time_scale

    def reset(self) -> None:
        """New epoch (windows realigned), counters cleared."""
        with self._lock:
            self.epoch = self._clock()
            self.epoch_unix = self._wall_clock()
            # operation -> [burst window index, count in it, steady window index, count in it]
            self._windows: dict[str, list[int]] = {}
            self.accepted: dict[str, int] = {}
            self.throttled: dict[str, int] = {}
            self.throttled_by_window: dict[str, int] = {"burst": 0, "steady": 0}

    def simulated_now(self, at: Optional[float] = None) -> float:
        """Simulated seconds since the epoch, now or at the clock reading `at`."""
        return ((self._clock() if at is None else at) - self.epoch) * self.time_scale

    def _real_seconds_until(self, sim_now: float, window: float) -> float:
        end = (math.floor(sim_now / window) + 1) * window
        return (end - sim_now) / self.time_scale

    def acquire(self, method: str, path: str, at: Optional[float] = None, variant: Optional[str] = None) -> Decision:
        """Count the request against its operation's windows, or refuse it (429) when either is full.

        `at` is when the request arrived (a reading of the limiter's clock, by default now): the
        server passes the time it started reading the request, so the time spent receiving a 5 MB
        body does not shift a request into a later window.
        """
        limit = limit_for(method, path, self.table, variant) if self.table else None
        if limit is None:
            return Decision(True, None, {})
        with self._lock:
            now = self.simulated_now(at)
            burst_index = math.floor(now / BURST_WINDOW_SECONDS)
            steady_index = math.floor(now / STEADY_WINDOW_SECONDS)
            window = self._windows.setdefault(limit.operation, [burst_index, 0, steady_index, 0])
            # Threads may get here slightly out of arrival order: never move a window backwards.
            burst_index, steady_index = max(burst_index, window[0]), max(steady_index, window[2])
            if window[0] != burst_index:
                window[0], window[1] = burst_index, 0
            if window[2] != steady_index:
                window[2], window[3] = steady_index, 0
            blocked: Optional[str] = None
            if window[3] >= limit.steady:
                blocked = "steady"
            elif window[1] >= limit.burst:
                blocked = "burst"
            if blocked is not None:
                length = STEADY_WINDOW_SECONDS if blocked == "steady" else BURST_WINDOW_SECONDS
                retry = max(1, math.ceil(self._real_seconds_until(now, length)))
                self.throttled[limit.operation] = self.throttled.get(limit.operation, 0) + 1
                self.throttled_by_window[blocked] += 1
                return Decision(False, limit, {"Retry-After": str(retry)}, blocked)
            window[1] += 1
            window[3] += 1
            self.accepted[limit.operation] = self.accepted.get(limit.operation, 0) + 1
            reset = math.ceil(self._real_seconds_until(now, STEADY_WINDOW_SECONDS))
            headers = {
                "RateLimit-Limit": str(limit.steady),
                "RateLimit-Remaining": str(limit.steady - window[3]),
                "RateLimit-Reset": str(reset),
            }
            return Decision(True, limit, headers)

    def throttled_total(self) -> int:
        with self._lock:
            return sum(self.throttled.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "time_scale": self.time_scale,
                "latency_ms": self.latency_ms,
                "epoch_unix": self.epoch_unix,
                "simulated_seconds": self.simulated_now(),
                "limits": {
                    limit.operation: {"method": m, "path": p, "burst_per_s": limit.burst, "steady_per_m": limit.steady}
                    for m, p, limit in self.table
                },
                "accepted": dict(self.accepted),
                "throttled": dict(self.throttled),
                "throttled_total": sum(self.throttled.values()),
                "throttled_by_window": dict(self.throttled_by_window),
            }
