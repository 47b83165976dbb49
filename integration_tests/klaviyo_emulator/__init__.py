"""Local, standard-library-only emulator of the Klaviyo API endpoints the
destination connector uses (accounts, profile bulk import jobs, lists and
list/profile relationships).

Start it in-process for tests::

    from integration_tests.klaviyo_emulator import EmulatorServer
    with EmulatorServer(api_keys=["k"]) as emu:
        ...  # emu.url, emu.store

or as a process: ``python -m integration_tests.klaviyo_emulator --port 0``.
See README.md in this directory.
"""

from .errors import ApiError
from .filters import FilterError, compile_filter, parse_filter, quote_filter_string
from .ratelimit import KLAVIYO_RATE_LIMITS, Limit, RateLimiter, limit_for
from .server import DEFAULT_API_KEY, DEFAULT_REVISION, EmulatorServer
from .store import (
    DEFAULT_LIST_CREATE_DAILY_LIMIT,
    MAX_BULK_BODY_BYTES,
    MAX_BULK_PROFILES,
    MAX_LIST_RELATIONSHIP_ITEMS,
    MAX_PROFILE_BYTES,
    EmulatorStore,
    Fault,
    JobRecord,
    RequestRecord,
)

__all__ = [
    "ApiError",
    "DEFAULT_API_KEY",
    "DEFAULT_LIST_CREATE_DAILY_LIMIT",
    "DEFAULT_REVISION",
    "EmulatorServer",
    "EmulatorStore",
    "Fault",
    "FilterError",
    "JobRecord",
    "KLAVIYO_RATE_LIMITS",
    "Limit",
    "MAX_BULK_BODY_BYTES",
    "MAX_BULK_PROFILES",
    "MAX_LIST_RELATIONSHIP_ITEMS",
    "MAX_PROFILE_BYTES",
    "RateLimiter",
    "RequestRecord",
    "compile_filter",
    "limit_for",
    "parse_filter",
    "quote_filter_string",
]
