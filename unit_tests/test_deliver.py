"""`Sink.deliver`'s rules, driven by a fake `send`: drop rows a 400 points at, halve on a 413 or an
unspecific 400, fail on anything else, count only what Klaviyo accepted."""

import pytest

from destination_klaviyo.batching import Entry
from destination_klaviyo.client import ApiErrorItem, KlaviyoApiError
from destination_klaviyo.errors import MissingList
from destination_klaviyo.report import SyncReport
from destination_klaviyo.sinks import Request, SinkContext
from destination_klaviyo.surfaces.profiles import BulkImportSink, render_profile

PATH = "/api/profile-bulk-import-jobs"


def error(status, *pointers, detail="Invalid."):
    items = [ApiErrorItem(None, str(status), "invalid", "Invalid", detail, p) for p in pointers]
    return KlaviyoApiError("POST", PATH, status, items)


class FakeSend:
    """Answers each call with the next scripted outcome (an exception or a receipt)."""

    def __init__(self, *outcomes, refuse_emails=()):
        self.outcomes = list(outcomes)
        self.refuse_emails = set(refuse_emails)
        self.bodies = []

    def __call__(self, body):
        self.bodies.append(body)
        if any(email.encode() in body for email in self.refuse_emails):
            raise error(413)
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def batch_of(sink, count):
    for i in range(count):
        sink.add(Entry(i, "s", i + 1, (None, "s")), {"email": f"u{i}@example.com"})
    return sink.batch


def sink(dry_run=False, list_id=None, target=None):
    report = SyncReport()
    return BulkImportSink(SinkContext(None, report, dry_run=dry_run), target, list_id), report


def test_a_400_pointing_at_rows_drops_exactly_them_and_resends_the_rest():
    s, report = sink()
    send = FakeSend(error(400, "/data/attributes/profiles/data/1/attributes/email", "/data/attributes/profiles/data/3"))
    s.deliver(batch_of(s, 5), Request("bulk import jobs", "upsert", send))
    assert len(send.bodies) == 2
    assert b"u1@example.com" not in send.bodies[1] and b"u3@example.com" not in send.bodies[1]
    assert report.streams["s"].delivered == 3
    assert report.streams["s"].rejected == {"klaviyo_rejected": 2}


def test_a_413_halves_until_the_one_bad_row_is_alone():
    s, report = sink()
    send = FakeSend(refuse_emails=["u6@example.com"])
    s.deliver(batch_of(s, 8), Request("bulk import jobs", "upsert", send))
    assert report.streams["s"].delivered == 7
    assert report.streams["s"].rejected == {"klaviyo_rejected": 1}
    assert len(send.bodies) == 1 + 2 + 2 + 2  # 8 -> 4+4 -> (2+2) of the bad half -> (1+1)


def test_an_unspecific_400_about_the_rows_halves_too():
    s, report = sink()
    send = FakeSend(error(400, "/data/attributes/profiles/data"))
    s.deliver(batch_of(s, 4), Request("bulk import jobs", "upsert", send))
    assert report.streams["s"].delivered == 4 and len(send.bodies) == 3


@pytest.mark.parametrize("exc", [error(400, "/data/type"), error(500), error(403)])
def test_any_other_error_fails_and_counts_nothing(exc):
    s, report = sink()
    with pytest.raises(KlaviyoApiError):
        s.deliver(batch_of(s, 3), Request("bulk import jobs", "upsert", FakeSend(exc)))
    assert report.streams["s"].delivered == 0


def test_a_404_on_the_sinks_list_names_the_target_and_the_list():
    s, _ = sink(list_id="L1", target="VIP")
    exc = error(404, "/data/relationships/lists/data/0/id")
    with pytest.raises(MissingList) as info:
        s.deliver(batch_of(s, 1), Request("bulk import jobs", "upsert", FakeSend(exc)))
    assert (info.value.list_id, info.value.target) == ("L1", "VIP")


def test_dry_run_sends_nothing_and_counts_the_plan():
    s, report = sink(dry_run=True)
    send = FakeSend()
    s.deliver(batch_of(s, 3), Request("bulk import jobs", "upsert", send))
    assert send.bodies == [] and report.requests == {"bulk import jobs planned (dry run)": 1}
    assert report.streams["s"].delivered == 3


def test_the_rendered_bodies_are_what_is_sent():
    s, _ = sink()
    send = FakeSend()
    s.deliver(batch_of(s, 2), Request("bulk import jobs", "upsert", send))
    assert render_profile({"email": "u0@example.com"}) in send.bodies[0]
