"""Local, standard-library-only emulator of the Klaviyo API endpoints the
destination connector uses (accounts, profile bulk import jobs, lists and
list/profile relationships, profile reads, bulk events, consent and
data-privacy deletion).

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
from .store_consent import ConsentJobRecord
from .store_events import EventJobRecord, EventRecord
from .validation_consent import MAX_SUBSCRIBE_PROFILES, MAX_SUPPRESSION_EMAILS, MAX_UNSUBSCRIBE_PROFILES
from .validation_events import MAX_EVENT_PROPERTIES, MAX_EVENTS_PER_REQUEST, MAX_STRING_BYTES

__all__ = [
    "ApiError",
    "ConsentJobRecord",
    "DEFAULT_API_KEY",
    "DEFAULT_LIST_CREATE_DAILY_LIMIT",
    "DEFAULT_REVISION",
    "EmulatorServer",
    "EmulatorStore",
    "EventJobRecord",
    "EventRecord",
    "Fault",
    "FilterError",
    "JobRecord",
    "KLAVIYO_RATE_LIMITS",
    "Limit",
    "MAX_BULK_BODY_BYTES",
    "MAX_BULK_PROFILES",
    "MAX_EVENT_PROPERTIES",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_LIST_RELATIONSHIP_ITEMS",
    "MAX_PROFILE_BYTES",
    "MAX_STRING_BYTES",
    "MAX_SUBSCRIBE_PROFILES",
    "MAX_SUPPRESSION_EMAILS",
    "MAX_UNSUBSCRIBE_PROFILES",
    "RateLimiter",
    "RequestRecord",
    "compile_filter",
    "limit_for",
    "parse_filter",
    "quote_filter_string",
]
