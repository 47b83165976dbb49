"""The Airbyte destination: spec, check, write, and discover (data activation).

Extends the CDK's `Destination` in two places. `discover` is added to the command line because the
Python CDK only knows spec/check/write. `write` reads stdin itself (see protocol.py) so that states
are echoed byte-for-byte and a malformed line stops the sync instead of vanishing.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional

from airbyte_cdk.destinations import Destination
from airbyte_cdk.exception_handler import init_uncaught_exception_handler
from airbyte_cdk.logger import PRINT_BUFFER, init_logger
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    ConnectorSpecification,
    Status,
    Type,
)
from airbyte_cdk.sources.utils.schema_helpers import check_config_against_spec_or_exit
from airbyte_cdk.utils.airbyte_secrets_utils import get_secrets, update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient, KlaviyoUnreachable, api_origin
from destination_klaviyo.config import KlaviyoConfig, parse_config
from destination_klaviyo.discover import discover_message
from destination_klaviyo.errors import config_error, explain
from destination_klaviyo.inbox import Inbox
from destination_klaviyo.protocol import dumps, message_to_dict, read_messages
from destination_klaviyo.surfaces import (
    SURFACES,
    SurfaceSpec,
    all_supported_modes,
    default_surface_names,
    surface_names,
)
from destination_klaviyo.writer import KlaviyoWriter

logger = logging.getLogger("airbyte")

SPEC_PATH = Path(__file__).with_name("spec.json")
DOCUMENTATION_URL = "https://docs.airbyte.com/integrations/destinations/klaviyo"
# `check` answers a person waiting in the UI: one retry, and no wait past this, whatever Retry-After says.
CHECK_RETRY_BUDGET_SECONDS = 10.0

# Read scopes `check` can test with a read of one item. A write scope cannot be tested without
# writing, so those are only named.
READ_SCOPE_PROBES: dict[str, Callable[[KlaviyoClient], Any]] = {
    "lists:read": KlaviyoClient.get_lists_page,
    "profiles:read": KlaviyoClient.get_profiles_page,
}


def configured_surfaces(config: KlaviyoConfig) -> list[SurfaceSpec]:
    """The surfaces the config maps streams to (`streams`, `default_surface`). `check` has no catalog,
    so a surface picked only as a destination object in the connection is not known here."""
    named = {mapping.surface for mapping in config.streams} | {config.default_surface}
    return [spec for surface, spec in SURFACES.items() if surface in named]


def missing_scope(client: KlaviyoClient, config: KlaviyoConfig) -> Optional[str]:
    """What to grant when the key lacks a read scope a configured surface needs; None otherwise.

    The write scopes of those surfaces are logged: Klaviyo can only confirm one by writing.
    """
    surfaces = configured_surfaces(config)
    needed = sorted({scope for spec in surfaces for scope in spec.scopes})
    for scope in needed:
        probe = READ_SCOPE_PROBES.get(scope)
        if probe is None:
            continue
        try:
            probe(client)
        except KlaviyoApiError as exc:
            if exc.status != 403:
                raise
            users = [spec for spec in surfaces if scope in spec.scopes]
            grant = sorted({s for spec in users for s in spec.scopes})
            return (
                f"The private API key lacks the scope {scope}, which the "
                f"{', '.join(spec.surface.value for spec in users)} surface(s) mapped in `streams` / `default_surface` "
                f"need. Edit the key in Klaviyo > Settings > API keys and grant: {', '.join(grant)}."
            )
    for spec in surfaces:
        untested = [scope for scope in spec.scopes if scope not in READ_SCOPE_PROBES]
        if untested and spec.probe is None:
            logger.info(
                f"The '{spec.surface.value}' surface needs the scopes {', '.join(spec.scopes)}. Check cannot test "
                f"{', '.join(untested)} without writing; if the key lacks one, the first sync fails naming it."
            )
    return None


class DestinationKlaviyo(Destination):
    VALID_CMDS = {"spec", "check", "write", "discover"}

    # -- spec -----------------------------------------------------------------------------------
    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        """spec.json, with the surface choices filled in from the surface registry."""
        specification = json.loads(SPEC_PATH.read_text())
        properties = specification["properties"]
        properties["streams"]["items"]["properties"]["surface"]["enum"] = surface_names()
        properties["default_surface"]["enum"] = default_surface_names()  # never an explicit-only surface
        return ConnectorSpecification(
            documentationUrl=DOCUMENTATION_URL,
            connectionSpecification=specification,
            supportsIncremental=True,
            supported_destination_sync_modes=all_supported_modes(),
        )

    # -- check ----------------------------------------------------------------------------------
    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        try:
            parsed = parse_config(config)
            client = KlaviyoClient(
                parsed.private_api_key.get_secret_value(),
                parsed.api_revision,
                retries=1,
                backoff_factor=0.5,
                timeout=(10.0, 30.0),
                retry_budget_seconds=CHECK_RETRY_BUDGET_SECONDS,
            )
        except AirbyteTracedException as exc:
            return AirbyteConnectionStatus(status=Status.FAILED, message=exc.message)
        except ValueError as exc:  # a malformed KLAVIYO_API_ORIGIN
            return AirbyteConnectionStatus(status=Status.FAILED, message=str(exc))
        try:
            client.get_accounts()
            missing = missing_scope(client, parsed)
            if missing is None:
                # A read cannot prove a write scope: a surface the config maps streams to may send a
                # request that changes nothing, which Klaviyo refuses with 403 when the scope is missing.
                for spec in configured_surfaces(parsed):
                    if spec.probe is not None:
                        spec.probe(client)
        except (KlaviyoApiError, KlaviyoUnreachable) as exc:
            return AirbyteConnectionStatus(status=Status.FAILED, message=explain(exc))
        finally:
            client.close()
        if missing is not None:
            return AirbyteConnectionStatus(status=Status.FAILED, message=missing)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED)

    # -- write ----------------------------------------------------------------------------------
    def write(
        self,
        config: Mapping[str, Any],
        configured_catalog: ConfiguredAirbyteCatalog,
        input_messages: Iterable[AirbyteMessage],
    ) -> Iterable[AirbyteMessage]:
        """The CDK's interface, for embedding; the command line uses `write_raw`."""
        for message in self.write_raw(config, configured_catalog, (message_to_dict(m) for m in input_messages)):
            yield AirbyteMessageSerializer.load(message)

    def write_raw(
        self,
        config: Mapping[str, Any],
        configured_catalog: ConfiguredAirbyteCatalog,
        messages: Iterable[Optional[dict[str, Any]]],
        wakeup: Optional[threading.Event] = None,
    ) -> Iterator[dict[str, Any]]:
        parsed = parse_config(config)
        writer = KlaviyoWriter(
            parsed, configured_catalog, client_factory=lambda: self._client(parsed), raw_config=config, wakeup=wakeup
        )
        try:
            yield from writer.write(messages)
        finally:
            writer.close()

    @staticmethod
    def _client(config: KlaviyoConfig) -> KlaviyoClient:
        return KlaviyoClient(
            config.private_api_key.get_secret_value(),
            config.api_revision,
            timeout=(10.0, float(config.request_timeout_seconds)),
            retry_budget_seconds=float(config.retry_budget_seconds),
        )

    # -- command line ---------------------------------------------------------------------------
    def parse_args(self, args: List[str]) -> argparse.Namespace:
        if args and args[0] == "discover":
            parser = argparse.ArgumentParser(prog="destination-klaviyo discover")
            parser.add_argument("--config", type=str, required=True, help="path to the JSON configuration file")
            parsed = parser.parse_args(args[1:])
            parsed.command = "discover"
            return parsed
        return super().parse_args(args)

    def run_cmd_lines(self, parsed_args: argparse.Namespace) -> Iterator[str]:
        """Like `Destination.run_cmd`, but yields serialized lines so states pass through untouched.

        Each input file is read once, here, and the parsed objects are passed on: `--config` may be a
        pipe (`--config <(echo '{...}')`), which can be read only once.
        """
        command = parsed_args.command
        if command == "spec":
            yield dumps(AirbyteMessage(type=Type.SPEC, spec=self.spec(logger)))
            return
        spec = self.spec(logger)
        try:
            config = read_config_file(parsed_args.config)
            update_secrets(get_secrets(spec.connectionSpecification, config))
            # Our own validation first: its messages name the field and never quote a value.
            parsed = parse_config(config)
        except AirbyteTracedException as exc:
            if command != "check":
                raise
            yield dumps(_connection_failed(exc.message or ""))
            return
        if command == "check":
            try:
                check_config_against_spec_or_exit(config, spec)
            except AirbyteTracedException as exc:
                yield dumps(_connection_failed(exc.message or ""))
                return
            yield dumps(AirbyteMessage(type=Type.CONNECTION_STATUS, connectionStatus=self.check(logger, config)))
            return
        check_config_against_spec_or_exit(config, spec)
        if command == "discover":
            yield dumps(discover_message(parsed.target_field))
            return
        api_origin()  # a malformed KLAVIYO_API_ORIGIN fails here, before stdin is read
        catalog = read_catalog_file(parsed_args.catalog)
        # Bytes straight to orjson (which checks UTF-8 itself): no decoding into a str per line. A
        # thread reads stdin (inbox.py) so that states go out while the input is quiet.
        inbox = Inbox(sys.stdin.buffer)
        try:
            for message in self.write_raw(config, catalog, read_messages(inbox), wakeup=inbox.wakeup):
                yield dumps(message)
        finally:
            inbox.close()

    def run(self, args: List[str]) -> None:
        # Everything allocated by start-up (the CDK's models, serializers) lives for the whole run:
        # keep the cyclic collector from rescanning it, and let it run less often on row garbage.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        init_logger("airbyte")
        init_uncaught_exception_handler(logger)
        parsed_args = self.parse_args(args)
        with PRINT_BUFFER:
            for line in self.run_cmd_lines(parsed_args):
                # One write per line: worker threads log through the same buffer, and a line written
                # in two parts (`print`'s text, then its newline) could have a log line land in between.
                # Flushed at once: the buffer only flushes on a later write, and a state must not wait.
                sys.stdout.write(line + "\n")
                sys.stdout.flush()


def _connection_failed(message: str) -> AirbyteMessage:
    return AirbyteMessage(
        type=Type.CONNECTION_STATUS, connectionStatus=AirbyteConnectionStatus(status=Status.FAILED, message=message)
    )


def read_json_file(flag: str, path: str) -> Any:
    """The JSON in the file given as `flag`, read once (it may be a pipe). A file that cannot be read
    or parsed is a config_error naming the flag, the path and why, never the contents (the config
    holds the API key)."""
    where = f"The {flag} file '{path}'"
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise config_error(f"{where} was not found.") from None
    except PermissionError:
        raise config_error(f"{where} cannot be read: permission denied.") from None
    except IsADirectoryError:
        raise config_error(f"{where} is a directory, not a JSON file.") from None
    except OSError as exc:
        raise config_error(f"{where} cannot be read: {exc.strerror or type(exc).__name__}.") from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise config_error(f"{where} is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        # The position, not the message's context: the contents are never quoted.
        raise config_error(f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}).") from None


def read_config_file(path: str) -> dict[str, Any]:
    config = read_json_file("--config", path)
    if not isinstance(config, dict):
        raise config_error(f"The --config file '{path}' holds JSON that is not an object: a config is a JSON object.")
    return config


def read_catalog_file(path: str) -> ConfiguredAirbyteCatalog:
    raw = read_json_file("--catalog", path)
    try:
        return ConfiguredAirbyteCatalogSerializer.load(raw)
    except Exception as exc:  # the serializer's errors name the offending field of the platform's file
        problem = " ".join(str(exc).split())  # one line: the validator lists each problem on its own
        raise config_error(f"The --catalog file '{path}' is not a configured catalog: {problem}") from None
