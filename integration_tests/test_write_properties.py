"""Property: whatever a source's rows hold, `write` never crashes, every row is either delivered or
rejected with a code, and the last state comes out.

Through the whole path (stdin, the lenient reader, routing, targets, rendering, batching, the
emulator's answers) of every surface in the registry: the real console script, one process per
example with many rows, so a handful of processes per surface. Rows mix identifiers that work with
arbitrary JSON: deep nesting, huge strings, NaN and Infinity (as bare tokens, the way Python's
`json.dumps` writes them), lone surrogates, integers beyond 64 bits, odd column names and targets.

A new surface is covered as soon as it is in SURFACES; `IDENTIFIER_VALUES` says what a working
value of each matching key looks like (a key it does not list gets arbitrary text, and its rows
may then all be rejected, which the property allows).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destination_klaviyo.surfaces import SURFACES, Surface
from destination_klaviyo.surfaces.base import UPSERT_MODES
from integration_tests.harness import EMULATOR_KEY, catalog, configured_stream, run_connector

STREAM = "props"
TARGET_FIELD = "list"

# What a stream mapped to a surface needs besides rows: its per-stream options (a surface that has
# required ones fails routing without them), and, where Klaviyo paces requests to about one a
# second (deletions, one profile per request), fewer rows per run.
STREAM_OPTIONS: dict[Surface, dict[str, Any]] = {
    Surface.EVENTS: {"metric": "Property test"},
    Surface.SUBSCRIPTIONS: {"channels": ["email_marketing"]},
}
MAX_ROWS: dict[Surface, int] = {Surface.PROFILE_DELETIONS: 6}

IDENTIFIER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "email": st.from_regex(r"[a-z0-9]{1,10}@[a-z]{1,8}\.(com|org|co)", fullmatch=True),
    "phone_number": st.integers(min_value=2_000_000_000, max_value=9_999_999_999).map(lambda n: f"+1{n}"),
    "external_id": st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12),
    "klaviyo_profile_id": st.integers(min_value=0, max_value=10**6).map(lambda n: f"01PROP{n:020d}"),
}

# Placeholders swapped for raw JSON text once a line is written: values no Python encoder would
# write within its recursion limit, or that would bloat every shrink step.
RAW = {
    "__DEEP_40__": '{"d":' * 40 + "1" + "}" * 40,
    "__DEEP_600__": '{"d":' * 600 + "[]" + "}" * 600,
    "__HUGE_TEXT__": '"' + "x" * 300_000 + '"',
    "__BIG_INT__": "123456789012345678901234567890",
}


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, drawn in proportion to its weight (so most rows can still be delivered)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(min_value=0, max_value=len(pool) - 1).flatmap(lambda i: pool[i])


plain = st.one_of(st.text(max_size=20), st.integers(min_value=-(2**53), max_value=2**53), st.booleans(), st.none())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(st.characters(categories=["Cs", "Lo", "So", "Nd"]), max_size=8),  # lone surrogates among others
    st.sampled_from(list(RAW)),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
column_names = weighted(
    (6, st.sampled_from(["first_name", "title", "plan", "score", "tags", "_airbyte_raw_id"])),
    (3, st.text(max_size=8)),
    (1, st.sampled_from(["location", "properties", "phone_e164", "caf\ud800", "", "_ab_cdc_deleted_at"])),
)
targets = weighted(
    (6, st.sampled_from(["Property list A", "Property list B", None])),
    (1, st.sampled_from(["", "   ", 7, ["x"], "caf\ud800", "x" * 600])),
    (1, json_values),
)


def rows_for(spec: Any, max_rows: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    first, *others = [
        (key, weighted((5, IDENTIFIER_VALUES.get(key, st.text(max_size=12))), (1, json_values)))
        for key in spec.matching_keys
    ]
    identifiers = st.fixed_dictionaries(dict([first]), optional=dict(others))
    extra = st.dictionaries(column_names, weighted((4, plain), (1, json_values)), max_size=5)
    row = st.builds(lambda ids, more: {**more, **ids}, identifiers, extra)
    if spec.needs_target:
        row = st.builds(lambda r, t: {**r, TARGET_FIELD: t}, row, targets)
    return st.lists(row, min_size=min(5, max_rows), max_size=max_rows)


def line(message: dict[str, Any]) -> str:
    text = json.dumps(message)  # NaN -> NaN, inf -> Infinity, "\ud800" -> "\\ud800", as a Python source writes
    for placeholder, raw in RAW.items():
        text = text.replace(json.dumps(placeholder), raw)
    return text + "\n"


def state(cursor: int) -> dict[str, Any]:
    stream = {"stream_descriptor": {"name": STREAM}, "stream_state": {"cursor": cursor}}
    return {"type": "STATE", "state": {"type": "STREAM", "stream": stream}}


def messages(rows: list[dict[str, Any]]) -> str:
    out = []
    for i, data in enumerate(rows, start=1):
        out.append(line({"type": "RECORD", "record": {"stream": STREAM, "data": data, "emitted_at": 0}}))
        if i % 7 == 0:
            out.append(line(state(i)))
    out.append(line(state(len(rows))))
    return "".join(out)


SUMMARY = re.compile(r"Stream 'props': received ([\d,]+), delivered ([\d,]+), rejected ([\d,]+)")
REJECTED = re.compile(r"^Rejected record #\d+ of stream 'props' \((\w+)\): .+")


@pytest.mark.parametrize("surface", list(SURFACES), ids=[s.value for s in SURFACES])
def test_no_row_can_crash_a_sync_and_every_row_is_accounted_for(emulator_process, surface):
    spec = SURFACES[surface]
    config = {
        "private_api_key": EMULATOR_KEY,
        # A `streams` entry, the one way every surface can be reached (profile_deletions only so).
        "streams": [{"stream": STREAM, "surface": surface.value, **STREAM_OPTIONS.get(surface, {})}],
        "target_field": TARGET_FIELD,
        "max_rejected_share": 1,
        "request_timeout_seconds": 30,
    }
    mode = UPSERT_MODES[0].value if UPSERT_MODES[0] in spec.modes else spec.modes[0].value

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(rows_for(spec, MAX_ROWS.get(surface, 40)))
    def check(rows: list[dict[str, Any]]) -> None:
        emulator_process.reset()
        run = run_connector(
            "write",
            config=config,
            catalog=catalog(configured_stream(STREAM, mode)),
            stdin=messages(rows),
            origin=emulator_process.url,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert not run.traces, run.traces
        (summary,) = [m for log in run.logs if (m := SUMMARY.search(log))]
        received, delivered, rejected = (int(n.replace(",", "")) for n in summary.groups())
        assert received == len(rows) == delivered + rejected
        codes = [m.group(1) for log in run.logs if (m := REJECTED.match(log))]
        assert len(codes) == rejected  # every rejected row was logged with a code and a reason
        states = run.states
        assert states and states[-1]["stream"]["stream_state"]["cursor"] == len(rows)  # the last state came out
        stats = [s["destinationStats"] for s in states]
        assert sum(s["recordCount"] for s in stats) == delivered
        assert sum(s["rejectedRecordCount"] for s in stats) == rejected

    check()
