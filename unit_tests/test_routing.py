import pytest
from airbyte_cdk.models import (
    AirbyteStream,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    DestinationSyncMode,
    SyncMode,
)
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.config import parse_config
from destination_klaviyo.routing import route_catalog, route_stream
from destination_klaviyo.surfaces import Surface


def configured(name, mode=DestinationSyncMode.append, object_name=None):
    return ConfiguredAirbyteStream(
        stream=AirbyteStream(name=name, json_schema={}, supported_sync_modes=[SyncMode.full_refresh]),
        sync_mode=SyncMode.full_refresh,
        destination_sync_mode=mode,
        destination_object_name=object_name,
    )


def config(**extra):
    return parse_config({"private_api_key": "pk", **extra})


def test_destination_object_name_wins():
    cfg = config(streams=[{"stream": "customers", "surface": "list_memberships"}])
    route = route_stream(cfg, configured("customers", object_name="profiles"))
    assert route.surface is Surface.PROFILES and route.how == "destination object"


def test_then_streams_entry_then_stream_name_then_default():
    cfg = config(streams=[{"stream": "customers", "surface": "profiles"}], default_surface="profiles")
    assert route_stream(cfg, configured("customers")).how == "streams mapping"
    assert route_stream(cfg, configured("profiles")).how == "stream name"
    assert route_stream(cfg, configured("other")).how == "default_surface"


def test_unmapped_stream_is_a_config_error_naming_it_and_the_fix():
    with pytest.raises(AirbyteTracedException) as info:
        route_catalog(config(), ConfiguredAirbyteCatalog(streams=[configured("profiles"), configured("customers")]))
    assert info.value.failure_type.value == "config_error"
    assert "'customers'" in info.value.message and "default_surface" in info.value.message


def test_unknown_destination_object_is_a_config_error():
    with pytest.raises(AirbyteTracedException) as info:
        route_stream(config(), configured("customers", object_name="contacts"))
    assert "'contacts'" in info.value.message


@pytest.mark.parametrize("mode", [DestinationSyncMode.overwrite, DestinationSyncMode.soft_delete])
def test_profiles_refuse_modes_they_cannot_honour(mode):
    with pytest.raises(AirbyteTracedException) as info:
        route_stream(config(), configured("profiles", mode=mode))
    assert mode.value in info.value.message and "append" in info.value.message


@pytest.mark.parametrize(
    "mode", [DestinationSyncMode.append, DestinationSyncMode.append_dedup, DestinationSyncMode.update]
)
def test_profiles_accept_upsert_modes(mode):
    assert route_stream(config(), configured("profiles", mode=mode)).sync_mode is mode
