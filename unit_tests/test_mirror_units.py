"""The mirror's decisions with fakes: wait for the sync's own imports, keep by any identifier."""

import logging
from types import SimpleNamespace

import orjson
from airbyte_cdk.models import AirbyteStream, ConfiguredAirbyteStream, DestinationSyncMode, SyncMode

from destination_klaviyo.config import parse_config
from destination_klaviyo.identity import Identities
from destination_klaviyo.mirror import MirrorPlan, plan_list_mirror, remove_absent
from destination_klaviyo.report import SyncReport
from destination_klaviyo.routing import route_stream


class FakeClient:
    def __init__(self, members):
        self.members = members  # profile resources
        self.removed = []
        self.reads = []

    def list_member_ids(self, list_id):
        self.reads.append("ids")
        return [m["id"] for m in self.members]

    def get_profiles_for_list(self, list_id):
        self.reads.append("profiles")
        return iter(self.members)

    def edit_list_members(self, list_id, body, *, remove):
        self.removed += [item["id"] for item in orjson.loads(body)["data"]]


def member(pid, **attributes):
    return {"type": "profile", "id": pid, "attributes": {"email": None, "phone_number": None, **attributes}}


def test_members_are_kept_when_any_identifier_was_named_and_ids_alone_need_no_identifiers():
    client = FakeClient([member("A", email="a@example.com"), member("B", external_id="7"), member("C")])
    keep = Identities()
    keep.add({"email": "A@example.com"})
    keep.add({"external_id": "7"})
    mirror = plan_list_mirror(client, "L", "T", keep)
    assert (mirror.members, mirror.absent) == (3, ["C"])
    remove_absent(client, SyncReport(), mirror, dry_run=False)
    assert client.removed == ["C"] and client.reads == ["profiles"]

    client = FakeClient([member("A"), member("B")])
    keep = Identities()
    keep.add({"id": "A"})
    remove_absent(client, SyncReport(), plan_list_mirror(client, "L", "T", keep), dry_run=False)
    assert client.removed == ["B"] and client.reads == ["ids"]


def test_a_list_whose_imports_are_still_running_is_not_mirrored_and_the_summary_says_so():
    config = parse_config({"private_api_key": "pk", "streams": [{"stream": "a", "surface": "list_memberships"}]})
    configured = ConfiguredAirbyteStream(
        stream=AirbyteStream(name="a", json_schema={}, supported_sync_modes=[SyncMode.full_refresh]),
        sync_mode=SyncMode.full_refresh,
        destination_sync_mode=DestinationSyncMode.overwrite,
    )
    route = route_stream(config, configured)
    plan = MirrorPlan([route])
    plan.note_target(route, "T")
    plan.stream_status(route, "COMPLETE")
    client = FakeClient([member("A", email="old@example.com")])
    resolver = SimpleNamespace(resolve=lambda target, create: SimpleNamespace(list_id="L"))
    sinks = SimpleNamespace(
        unfinished_imports=lambda list_id, max_wait: ["JOB1"], members_added=lambda list_id: Identities()
    )
    report = SyncReport()
    plan.run(client, resolver, sinks, report, dry_run=False, max_removal_share=0.5)
    assert client.removed == [] and client.reads == []
    (level, line) = report.mirrors[0]
    assert "skipped" in line and "JOB1" in line and level == logging.WARNING
