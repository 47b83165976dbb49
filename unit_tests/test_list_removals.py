"""list_memberships removals with a synchronous fake Klaviyo: resolve, remove, count, order."""

import orjson

from destination_klaviyo.batching import Entry
from destination_klaviyo.report import SyncReport
from destination_klaviyo.sinks import SinkContext
from destination_klaviyo.surfaces.list_memberships import ListMembershipSink
from integration_tests.klaviyo_emulator.filters import parse_filter


class FakeKlaviyo:
    """Imports apply at once (status complete); removals and lookups over the same profiles."""

    def __init__(self, profiles):
        self.profiles = profiles  # id -> attributes
        self.calls = []
        self.members = set()

    def create_bulk_import_job(self, body):
        self.calls.append("import")
        for item in orjson.loads(body)["data"]["attributes"]["profiles"]["data"]:
            pid = item.get("id") or next(
                (p for p, a in self.profiles.items() if a.get("email") == item["attributes"].get("email")), None
            )
            if pid is None:
                pid = f"NEW{len(self.profiles)}"
                self.profiles[pid] = dict(item["attributes"])
            self.members.add(pid)
        return f"job{len(self.calls)}"

    def get_bulk_import_job(self, job_id):
        self.calls.append("poll")
        return {"attributes": {"status": "complete"}}

    def get_profiles(self, filter):
        (node,) = parse_filter(filter)
        self.calls.append(f"lookup {node.field}")
        wanted = {v.value for v in node.value}
        for pid, attributes in self.profiles.items():
            value = pid if node.field == "id" else attributes.get(node.field)
            if value in wanted:
                yield {"type": "profile", "id": pid, "attributes": attributes}

    def edit_list_members(self, list_id, body, *, remove):
        ids = [item["id"] for item in orjson.loads(body)["data"]]
        self.calls.append(f"remove {','.join(ids)}")
        self.members -= set(ids)


def sink_for(client, dry_run=False):
    report = SyncReport(dry_run=dry_run)
    return ListMembershipSink(SinkContext(client, report, dispatcher=None, dry_run=dry_run), "VIP", "L1"), report


def entry(seq):
    return Entry(seq, "vip", seq + 1, (None, "vip"))


PEOPLE = {
    "P1": {"email": "ada@example.com"},
    "P2": {"phone_number": "+14155550100"},
    "P3": {"external_id": "crm-3"},
    "P4": {"email": "bob@example.com"},
}


def test_removal_rows_are_resolved_by_identifier_and_removed_in_one_request():
    client = FakeKlaviyo(dict(PEOPLE))
    client.members = {"P1", "P2", "P3", "P4"}
    sink, report = sink_for(client)
    rows = [
        {"email": "ada@example.com"},
        {"phone_number": "+1 (415) 555-0100"},
        {"external_id": "crm-3"},
        {"email": "ghost@example.com"},
        {"first_name": "no identifier"},
    ]
    for seq, row in enumerate(rows):
        sink.add(entry(seq), row, remove=True)
    assert client.calls == []  # nothing sent before the batch is flushed
    sink.flush()
    assert client.members == {"P4"}
    assert [c for c in client.calls if c.startswith("remove")] == ["remove P1,P2,P3"]
    assert report.targets["VIP"] == {"remove": 3, "not in Klaviyo": 1}
    assert report.streams["vip"].delivered == 4 and report.streams["vip"].rejected == {"missing_identifier": 1}
    assert sink.lowest_pending_seq() is None


def test_a_removal_follows_the_earlier_import_of_the_same_person_and_a_later_add_follows_the_removal():
    client = FakeKlaviyo({})
    sink, report = sink_for(client)
    sink.add(entry(0), {"email": "new@example.com", "first_name": "New"})
    sink.add(entry(1), {"email": "new@example.com"}, remove=True)  # the import is flushed, the removal waits for it
    assert client.calls == ["import"]
    sink.add(entry(2), {"email": "new@example.com", "first_name": "Back"})  # the removal goes first
    assert client.calls == ["import", "poll", "lookup email", "remove NEW0"]
    sink.flush()
    assert client.calls[-1] == "import" and client.members == {"NEW0"}
    assert report.targets["VIP"] == {"upsert": 2, "remove": 1}


def test_a_stream_of_adds_alone_tracks_no_one():
    client = FakeKlaviyo({})
    sink, _ = sink_for(client)
    for seq in range(3):
        sink.add(entry(seq), {"email": f"u{seq}@example.com"})
    assert not sink.removing and sink.import_keys == set()
    sink.flush()
    assert client.calls == ["import"]


def test_a_dry_run_plans_removals_without_lookups():
    client = FakeKlaviyo(dict(PEOPLE))
    sink, report = sink_for(client, dry_run=True)
    sink.add(entry(0), {"email": "ada@example.com"}, remove=True)
    sink.add(entry(1), {"external_id": "nobody"}, remove=True)
    sink.flush()
    assert client.calls == []
    assert report.targets["VIP"] == {"remove": 2}
    assert report.requests == {"list removals": 1}
