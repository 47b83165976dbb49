"""The summary's wording and levels, the progress line's "waiting for", and the mirror's safety rule."""

import logging

from destination_klaviyo.batching import Entry
from destination_klaviyo.mirror import MIRROR_SAFETY_MIN_MEMBERS, ListMirror
from destination_klaviyo.progress import ProgressSample, _waiting_for
from destination_klaviyo.rejections import Omission, Rejection
from destination_klaviyo.report import SyncReport, duration, plural


def test_a_mirror_is_refused_only_over_the_share_of_a_list_of_at_least_the_floor():
    def mirror(members, absent):
        return ListMirror("T", "L", members, [f"P{i}" for i in range(absent)])

    assert MIRROR_SAFETY_MIN_MEMBERS == 100
    assert not mirror(100, 50).removes_too_much(0.5)  # exactly the share is allowed
    assert mirror(100, 51).removes_too_much(0.5)
    assert not mirror(99, 99).removes_too_much(0.5)  # under the floor: any share
    assert not mirror(10_000, 10_000).removes_too_much(1.0)  # 1 turns the check off
    assert mirror(200, 1).removes_too_much(0.0)
    assert mirror(200, 180).describe() == "180 of its 200 members (90%) of list 'T' (L)"


def test_the_progress_line_says_what_the_sync_waits_for():
    def sample(in_flight=0, finished=False):
        return ProgressSample(10, in_flight, 4, 0, finished)

    assert _waiting_for(sample(), no_new_rows=False) is None
    assert _waiting_for(sample(in_flight=2), no_new_rows=True) == "no new rows: waiting for the source"
    assert "waiting on Klaviyo" in _waiting_for(sample(in_flight=4), no_new_rows=True)
    assert "waiting for Klaviyo to accept the last requests" in _waiting_for(sample(2, True), no_new_rows=True)
    assert "finishing" in _waiting_for(sample(0, True), no_new_rows=False)


def test_summary_levels_info_unless_something_needs_a_look_and_warn_when_failed():
    report = SyncReport()
    report.received("s")
    report.delivered("s", "upsert", "VIP")
    report.resolved("VIP", "Klaviyo list L1, created by this sync")
    lines = report.summary_lines(elapsed=2.0, states_echoed=1)
    assert lines[0] == (
        logging.INFO,
        "1 row read in 2.0 s (0 rows/s): 1 delivered to Klaviyo, 0 rejected; 1 state passed back to Airbyte.",
    )
    assert all(level == logging.INFO for level, _ in lines)
    assert (
        logging.INFO,
        "Target 'VIP' (Klaviyo list L1, created by this sync): 1 profile upserted and added to the list.",
    ) in lines

    row = Entry(1, "s", 2, (None, "s"))
    report.received("s")
    report.rejected(row, Rejection("missing_identifier", "no identifier"))
    report.omitted(row, Omission("invalid_phone_dropped", "phone"))
    for name in [f"T{i}" for i in range(25)]:
        report.refused_target(name)
    warned = [line for level, line in report.summary_lines(2.0, 1) if level == logging.WARNING]
    assert warned[0].startswith("Stream 's': 1 row rejected (missing_identifier: 1).")
    assert warned[1].startswith("Stream 's': phones dropped: 1 row was sent without its phone number")
    assert warned[2].startswith("25 new lists were not created") and "'T19' and 5 more" in warned[2]
    assert "'T20'" not in warned[2]


def test_plain_numbers_and_durations():
    assert plural(1, "row") == "1 row" and plural(12_000, "row") == "12,000 rows" and plural(0, "state") == "0 states"
    assert duration(4.24) == "4.2 s" and duration(725) == "12 min 5 s"
