import orjson
import pytest
from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.client import _next_page, quote_filter_string
from destination_klaviyo.registry import SECRET_MASK, registry_update_message
from destination_klaviyo.surfaces import SUPPORTED_MODES, Surface


@pytest.mark.parametrize(
    "name,quoted",
    [
        ("VIP", '"VIP"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("a, b", '"a, b"'),
        ("Ünïcødé ✓", '"Ünïcødé ✓"'),
    ],
)
def test_filter_string_quoting(name, quoted):
    assert quote_filter_string(name) == quoted


def test_next_page_stays_on_our_origin():
    payload = {"links": {"next": "https://evil.example.com/api/lists?page%5Bcursor%5D=abc&filter=x"}}
    assert _next_page(payload) == "/api/lists?page%5Bcursor%5D=abc&filter=x"
    assert _next_page({"links": {"next": None}}) is None
    assert _next_page({}) is None


def test_registry_update_masks_the_key_and_keeps_the_rest():
    config = {
        "private_api_key": "pk_live_secret",
        "streams": [{"stream": "a", "surface": "list_memberships"}],
        "target_registry": [{"target": "Old", "list_id": "L0"}, {"target": "Moved", "list_id": "L1"}],
        "extra_platform_key": 1,
    }
    message = registry_update_message(config, {"New": "L2", "Moved": "L9"})
    assert message["type"] == "CONTROL" and message["control"]["type"] == "CONNECTOR_CONFIG"
    updated = message["control"]["connectorConfig"]["config"]
    assert updated["private_api_key"] == SECRET_MASK
    assert b"pk_live_secret" not in orjson.dumps(message)
    assert updated["target_registry"] == [
        {"target": "Moved", "list_id": "L9"},
        {"target": "New", "list_id": "L2"},
        {"target": "Old", "list_id": "L0"},
    ]
    assert updated["streams"] == config["streams"] and updated["extra_platform_key"] == 1
    assert config["private_api_key"] == "pk_live_secret"  # the caller's config is untouched


def test_both_list_surfaces_remove_and_mirror_and_profiles_never_does():
    assert DestinationSyncMode.overwrite not in SUPPORTED_MODES[Surface.PROFILES]
    assert DestinationSyncMode.soft_delete not in SUPPORTED_MODES[Surface.PROFILES]
    for surface in (Surface.LIST_MEMBERSHIPS, Surface.LIST_MEMBERSHIPS_BY_PROFILE_ID):
        assert {DestinationSyncMode.soft_delete, DestinationSyncMode.overwrite} <= set(SUPPORTED_MODES[surface])
