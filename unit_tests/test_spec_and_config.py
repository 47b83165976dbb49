import json
import logging

import pytest
from airbyte_cdk.models import DestinationSyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo import DestinationKlaviyo
from destination_klaviyo.config import KlaviyoConfig, StreamMapping, parse_config
from destination_klaviyo.surfaces import SUPPORTED_MODES
from destination_klaviyo.surfaces.events import MAX_METRIC_NAME_CHARS

SPEC = DestinationKlaviyo().spec(logging.getLogger("test"))
PROPS = SPEC.connectionSpecification["properties"]


def test_spec_fields_match_the_config_model():
    assert set(PROPS) == set(KlaviyoConfig.model_fields)
    assert SPEC.connectionSpecification["required"] == ["private_api_key"]
    assert PROPS["private_api_key"]["airbyte_secret"] is True
    for name, field in KlaviyoConfig.model_fields.items():
        if "default" in PROPS[name]:
            assert PROPS[name]["default"] == field.default, name
    assert PROPS["api_revision"]["default"] == "2026-04-15"
    assert PROPS["target_field"]["default"] == "list"
    assert PROPS["manage_lists"]["default"] is True and PROPS["dry_run"]["default"] is False
    surfaces = [
        "profiles",
        "list_memberships",
        "list_memberships_by_profile_id",
        "events",
        "subscriptions",
        "suppressions",
    ]
    # profile_deletions is explicit-only: a `streams` entry may name it, `default_surface` never.
    assert PROPS["default_surface"]["enum"] == surfaces
    assert PROPS["streams"]["items"]["properties"]["surface"]["enum"] == surfaces + ["profile_deletions"]
    items = PROPS["streams"]["items"]["properties"]
    assert set(items) == {
        "stream",
        "surface",
        "target",
        "metric",
        "metric_field",
        "time_field",
        "unique_id_field",
        "value_field",
        "value_currency",
        "backfill",
        "channels",
        "allow_global_unsubscribe",
    }
    assert set(items) == set(StreamMapping.model_fields)
    for name, field in StreamMapping.model_fields.items():
        if "default" in items[name]:
            assert items[name]["default"] == field.default, name
    assert items["backfill"]["default"] is False
    assert items["metric"]["maxLength"] == MAX_METRIC_NAME_CHARS == 127
    assert set(PROPS["list_mappings"]["items"]["properties"]) == {"target", "list_id"}


def test_spec_sync_modes_are_exactly_what_write_accepts():
    advertised = set(SPEC.supported_destination_sync_modes)
    assert advertised == {m for modes in SUPPORTED_MODES.values() for m in modes}
    assert DestinationSyncMode.overwrite not in SUPPORTED_MODES.get(next(iter(SUPPORTED_MODES)), ())


@pytest.mark.parametrize("revision", ["2026-04-15", "2024-10-15.pre"])
def test_valid_revisions(revision):
    assert parse_config({"private_api_key": "pk", "api_revision": revision}).api_revision == revision


@pytest.mark.parametrize("revision", ["2026-4-15", "2026-13-01", "latest", "2026-04-15.beta", ""])
def test_invalid_revision_is_a_config_error_that_names_the_field(revision):
    with pytest.raises(AirbyteTracedException) as info:
        parse_config({"private_api_key": "pk_secret_value", "api_revision": revision})
    assert info.value.failure_type.value == "config_error"
    assert "api_revision" in info.value.message
    assert "pk_secret_value" not in info.value.message


def test_config_errors_never_quote_the_key():
    with pytest.raises(AirbyteTracedException) as info:
        parse_config({"private_api_key": "pk_secret_value", "streams": [{"stream": "s", "surface": "nope"}]})
    assert "pk_secret_value" not in str(info.value.message) and "streams.0.surface" in info.value.message


def test_duplicate_stream_mapping_is_rejected():
    with pytest.raises(AirbyteTracedException):
        parse_config({"private_api_key": "pk", "streams": [{"stream": "s", "surface": "profiles"}] * 2})


def test_spec_json_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft7Validator.check_schema(SPEC.connectionSpecification)
    jsonschema.validate({"private_api_key": "pk"}, SPEC.connectionSpecification)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"private_api_key": "pk", "api_revision": "x"}, SPEC.connectionSpecification)
    assert json.dumps(SPEC.connectionSpecification)


def test_a_target_mapped_twice_is_rejected():
    with pytest.raises(AirbyteTracedException) as info:
        parse_config(
            {
                "private_api_key": "pk",
                "list_mappings": [{"target": "VIP", "list_id": "A"}, {"target": "VIP", "list_id": "B"}],
            }
        )
    assert "VIP" in info.value.message and "list_mappings" in info.value.message


def test_the_canary_check_itself_catches_a_leak():
    from integration_tests.harness import leaked

    assert leaked("pk_canary_123", "log line", "oops pk_canary_123 printed")
    assert not leaked("pk_canary_123", "clean", "output")
    assert not leaked("**********", "masked **********")


def test_default_phone_region_is_an_iso_code_libphonenumber_knows():
    assert parse_config({"private_api_key": "pk"}).default_phone_region is None
    assert parse_config({"private_api_key": "pk", "default_phone_region": "fr"}).default_phone_region == "FR"
    for bad in ("UK", "XX", "USA"):
        with pytest.raises(AirbyteTracedException) as info:
            parse_config({"private_api_key": "pk_secret_value", "default_phone_region": bad})
        assert "default_phone_region" in info.value.message and "GB" in info.value.message
        assert "pk_secret_value" not in info.value.message


def _config_table(path, heading):
    """{field: default cell} of the first markdown table after `heading` (its field and default columns)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / path).read_text()
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.lower().startswith("| field"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    header, rows = lines[start], [line for line in lines[start:end] if line.startswith("| `")]
    column = [cell.strip().lower() for cell in header.strip("|").split("|")].index("default")
    table = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        table[cells[0].split("`")[1]] = cells[column]
    return table


@pytest.mark.parametrize(
    "path,heading", [("README.md", "## Configuration"), ("docs/klaviyo.md", "### Configuration reference")]
)
def test_the_documented_defaults_are_the_specs(path, heading):
    documented = _config_table(path, heading)
    assert set(documented) == set(PROPS)
    for name, prop in PROPS.items():
        if "default" not in prop:
            assert documented[name] in ("", "none"), (path, name, documented[name])
            continue
        default = prop["default"]
        shown = default if isinstance(default, str) else json.dumps(default)
        assert documented[name] == f"`{shown}`", (path, name, documented[name])


def test_the_metric_length_limit_is_enforced_by_config():
    assert parse_config(
        {"private_api_key": "pk", "streams": [{"stream": "o", "surface": "events", "metric": "m" * 127}]}
    )
    with pytest.raises(AirbyteTracedException) as info:
        parse_config({"private_api_key": "pk", "streams": [{"stream": "o", "surface": "events", "metric": "m" * 128}]})
    assert "streams.0.metric" in info.value.message


@pytest.mark.parametrize(
    "entry,named",
    [
        ({"metric": "Placed Order", "metric_field": "kind"}, "metric_field"),
        ({"metric": "   "}, "streams.0.metric"),
        ({"metric": "Placed Order", "value_currency": "USD"}, "value_field"),
        ({"metric": "Placed Order", "value_field": "total", "value_currency": "usd"}, "streams.0.value_currency"),
    ],
)
def test_event_options_are_checked_and_the_error_names_the_field(entry, named):
    with pytest.raises(AirbyteTracedException) as info:
        parse_config(
            {"private_api_key": "pk_secret_value", "streams": [{"stream": "orders", "surface": "events", **entry}]}
        )
    assert info.value.failure_type.value == "config_error"
    assert named in info.value.message and "pk_secret_value" not in info.value.message


def test_event_options_on_another_surface_are_refused():
    with pytest.raises(AirbyteTracedException) as info:
        parse_config(
            {
                "private_api_key": "pk",
                "streams": [{"stream": "c", "surface": "profiles", "time_field": "at", "backfill": True}],
            }
        )
    assert "time_field, backfill apply only to surface 'events'" in info.value.message
