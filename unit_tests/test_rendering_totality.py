"""Rendering is total: whatever a row holds, it comes out as bytes or as a rejection naming a column."""

import orjson
import pytest

from destination_klaviyo.protocol import dumps, read_messages
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.surfaces.list_memberships_by_profile_id import render_profile_reference
from destination_klaviyo.surfaces.profiles import MAX_PROFILE_BYTES, render_profile
from destination_klaviyo.totality import MAX_DEPTH, MAX_TARGET_CHARS, render_row, target_problem


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize("column", ["prefs", "properties"])
def test_a_value_nested_past_the_limit_is_rejected_naming_the_column_and_the_limit(column):
    assert isinstance(render_profile({"email": "a@b.co", column: nested(MAX_DEPTH)}), bytes)
    for depth in (MAX_DEPTH + 1, 500, 1000):
        out = render_profile({"email": "a@b.co", column: nested(depth)})
        assert isinstance(out, Rejection) and out.code == "too_deep", depth
        assert f"'{column}'" in out.detail and str(MAX_DEPTH) in out.detail


def test_nested_arrays_count_as_levels_too():
    value = 1
    for _ in range(600):
        value = [value, None]
    out = render_profile({"email": "a@b.co", "deep": value})
    assert isinstance(out, Rejection) and out.code == "too_deep"


@pytest.mark.parametrize(
    "value, code",
    [
        (float("nan"), "invalid_value"),
        (float("-inf"), "invalid_value"),
        ({"inner": [1, float("inf")]}, "invalid_value"),
        ("caf\ud800", "invalid_text"),
        (["ok", {"x": "\udfff"}], "invalid_text"),
        ({"bad\ud83d": 1}, "invalid_text"),
        (2**70, "invalid_value"),
    ],
)
def test_values_json_cannot_carry_are_rejected_naming_the_column(value, code):
    out = render_profile({"email": "a@b.co", "score": value})
    assert isinstance(out, Rejection) and out.code == code, out
    assert "'score'" in out.detail


def test_a_surrogate_in_an_identifier_or_an_attribute_is_named():
    out = render_profile({"email": "a\ud800@b.co"})
    assert isinstance(out, Rejection) and out.code == "invalid_text" and "'email'" in out.detail
    out = render_profile({"email": "a@b.co", "first_name": "\udc00"})
    assert isinstance(out, Rejection) and out.code == "invalid_text" and "'first_name'" in out.detail


def test_a_column_name_with_a_surrogate_is_rejected_and_the_detail_stays_writable():
    out = render_profile({"email": "a@b.co", "na\ud800me": 1})
    assert isinstance(out, Rejection) and out.code == "invalid_text"
    out.detail.encode("utf-8")  # the log line naming the column can be written


def test_a_huge_string_is_rejected_by_size():
    out = render_profile({"email": "a@b.co", "blob": "x" * 50_000_000})
    assert isinstance(out, Rejection) and out.code == "profile_too_large"
    assert str(MAX_PROFILE_BYTES) in out.detail


def test_profile_references_reject_surrogates_and_ids_no_request_could_carry():
    out = render_profile_reference({"klaviyo_profile_id": "01H\ud800"})
    assert isinstance(out, Rejection) and out.code == "invalid_text" and "klaviyo_profile_id" in out.detail
    out = render_profile_reference({"klaviyo_profile_id": "x" * 6_000_000})
    assert isinstance(out, Rejection) and out.code == "invalid_value"


def test_targets_that_cannot_be_looked_up_are_rejected():
    assert target_problem("list", "VIP") is None
    assert target_problem("list", "x" * MAX_TARGET_CHARS) is None
    assert target_problem("list", "x" * (MAX_TARGET_CHARS + 1)).code == "invalid_target"
    assert target_problem("list", "VIP\ud800").code == "invalid_text"


def test_anything_a_renderer_raises_becomes_a_rejection_of_that_row():
    def broken(data):
        raise KeyError("some-secret-value")

    out = render_row(broken, {"email": "a@b.co"})
    assert isinstance(out, Rejection) and out.code == "unrenderable"
    assert "KeyError" in out.detail and "some-secret-value" not in out.detail
    assert render_row(render_profile, {"email": "a@b.co"}) == render_profile({"email": "a@b.co"})


def test_the_profile_sink_rejects_a_row_its_renderer_raises_on_and_keeps_the_rest(monkeypatch):
    from destination_klaviyo.batching import Entry
    from destination_klaviyo.report import SyncReport
    from destination_klaviyo.sinks import SinkContext
    from destination_klaviyo.surfaces import profiles

    real = profiles.render_profile

    def sometimes_broken(data, *args):
        if data.get("boom"):
            raise KeyError("some-secret-value")
        return real(data, *args)

    monkeypatch.setattr(profiles, "render_profile", sometimes_broken)
    report = SyncReport()
    sink = profiles.BulkImportSink(SinkContext(None, report, dry_run=True))
    sink.add(Entry(0, "s", 1, (None, "s")), {"email": "a@b.co", "boom": True})
    sink.add(Entry(1, "s", 2, (None, "s")), {"email": "c@d.co"})
    assert report.streams["s"].rejected == {"unrenderable": 1}
    assert len(sink.batch) == 1


def test_nan_infinity_and_surrogates_on_stdin_are_read_leniently():
    line = b'{"type":"RECORD","record":{"stream":"s","data":{"a":NaN,"b":-Infinity,"c":"\\ud800","n":123456789012345678901234}}}'
    (message,) = read_messages([line])
    data = message["record"]["data"]
    assert data["a"] != data["a"] and data["b"] == float("-inf") and data["c"] == "\ud800"
    assert data["n"] == pytest.approx(1.2345678901234568e23)  # as orjson reads it: a float beyond 64 bits
    out = render_profile({"email": "a@b.co", **data})
    assert isinstance(out, Rejection) and out.code in ("invalid_value", "invalid_text")


def test_bytes_that_are_not_utf8_become_a_rejected_row_not_a_stopped_sync():
    (message,) = read_messages([b'{"type":"RECORD","record":{"stream":"s","data":{"email":"a@b.co","x":"\xff"}}}'])
    out = render_profile(message["record"]["data"])
    assert isinstance(out, Rejection) and out.code == "invalid_text" and "'x'" in out.detail


def test_a_state_read_leniently_is_echoed_with_its_surrogate_escaped():
    (state,) = read_messages([b'{"type":"STATE","state":{"type":"LEGACY","data":{"cursor":"\\ud800"}}}'])
    assert orjson.loads(dumps(state).replace("\\ud800", "?"))["state"]["data"]["cursor"] == "?"


@pytest.mark.parametrize("line", [b"not json", b"[1, 2]", b'{"no_type": 1}', b"{" * 2000 + b"}" * 2000])
def test_lines_no_reader_can_read_still_stop_the_sync(line):
    with pytest.raises(Exception, match="is not an Airbyte message"):
        list(read_messages([line]))
