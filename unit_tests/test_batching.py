import orjson

from destination_klaviyo.batching import Entry
from destination_klaviyo.surfaces.profiles import (
    MAX_JOB_BODY_BYTES,
    MAX_PROFILES_PER_JOB,
    new_bulk_job_batch,
    render_profile,
)


def entry(i):
    return Entry(seq=i, stream="s", ordinal=i + 1, key=(None, "s"))


def fill(batch, bodies):
    """Add bodies until one does not fit; return how many went in."""
    for i, body in enumerate(bodies):
        if not batch.fits(body):
            return i
        batch.add(entry(i), body)
    return len(bodies)


def test_body_is_valid_json_and_size_is_exact():
    batch = new_bulk_job_batch()
    for i in range(3):
        batch.add(entry(i), render_profile({"email": f"u{i}@example.com"}))
    body = batch.body()
    assert len(body) == batch.size
    parsed = orjson.loads(body)
    assert parsed["data"]["type"] == "profile-bulk-import-job"
    assert [p["attributes"]["email"] for p in parsed["data"]["attributes"]["profiles"]["data"]] == [
        "u0@example.com",
        "u1@example.com",
        "u2@example.com",
    ]
    assert "relationships" not in parsed["data"]


def test_list_relationship_in_envelope():
    batch = new_bulk_job_batch("LIST1")
    batch.add(entry(0), render_profile({"email": "a@b.co"}))
    parsed = orjson.loads(batch.body())
    assert parsed["data"]["relationships"] == {"lists": {"data": [{"type": "list", "id": "LIST1"}]}}
    assert len(batch.body()) == batch.size


def test_at_most_10000_profiles():
    batch = new_bulk_job_batch()
    body = render_profile({"email": "a@b.co"})
    assert fill(batch, [body] * (MAX_PROFILES_PER_JOB + 5)) == MAX_PROFILES_PER_JOB


def test_at_most_5mb_of_body_measured_on_the_wire():
    batch = new_bulk_job_batch()
    body = render_profile({"email": "a@b.co", "pad": "x" * 90_000})
    taken = fill(batch, [body] * 100)
    assert len(batch.body()) <= MAX_JOB_BODY_BYTES
    assert len(batch.body()) + 1 + len(body) > MAX_JOB_BODY_BYTES  # the next one really would not fit
    assert taken == len(batch)


def test_without_drops_entries_and_keeps_size_exact():
    batch = new_bulk_job_batch()
    for i in range(4):
        batch.add(entry(i), render_profile({"email": f"u{i}@example.com"}))
    rest = batch.without({1, 2})
    assert [e.seq for e in rest.entries] == [0, 3]
    assert len(rest.body()) == rest.size


def test_items_can_be_read_back_exactly():
    batch = new_bulk_job_batch()
    bodies = [render_profile({"email": f"u{i}@example.com", "n": "x" * i}) for i in range(5)]
    for i, body in enumerate(bodies):
        batch.add(entry(i), body)
    assert [batch.item(i) for i in range(5)] == bodies
    first, second = batch.halves()
    assert [e.seq for e in first.entries] == [0, 1] and [e.seq for e in second.entries] == [2, 3, 4]
    assert first.item(1) == bodies[1] and second.item(2) == bodies[4]
