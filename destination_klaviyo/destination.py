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
from typing import Any, Iterable, Iterator, List, Mapping, Optional

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
from destination_klaviyo.errors import explain
from destination_klaviyo.inbox import Inbox
from destination_klaviyo.protocol import dumps, message_to_dict, read_messages
from destination_klaviyo.surfaces import all_supported_modes, surface_names
from destination_klaviyo.writer import KlaviyoWriter

logger = logging.getLogger("airbyte")

SPEC_PATH = Path(__file__).with_name("spec.json")
DOCUMENTATION_URL = "https://docs.airbyte.com/integrations/destinations/klaviyo"
# `check` answers a person waiting in the UI: one retry, and no wait past this, whatever Retry-After says.
CHECK_RETRY_BUDGET_SECONDS = 10.0


class DestinationKlaviyo(Destination):
    VALID_CMDS = {"spec", "check", "write", "discover"}

    # -- spec -----------------------------------------------------------------------------------
    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        """spec.json, with the surface choices filled in from the surface registry."""
        specification = json.loads(SPEC_PATH.read_text())
        properties = specification["properties"]
        for field in (properties["default_surface"], properties["streams"]["items"]["properties"]["surface"]):
            field["enum"] = surface_names()
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
        except (KlaviyoApiError, KlaviyoUnreachable) as exc:
            return AirbyteConnectionStatus(status=Status.FAILED, message=explain(exc))
        finally:
            client.close()
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
        """Like `Destination.run_cmd`, but yields serialized lines so states pass through untouched."""
        command = parsed_args.command
        if command == "spec":
            yield dumps(AirbyteMessage(type=Type.SPEC, spec=self.spec(logger)))
            return
        config = self.read_config(config_path=parsed_args.config)
        spec = self.spec(logger)
        update_secrets(get_secrets(spec.connectionSpecification, config))
        # Our own validation first: its messages name the field and never quote a value.
        try:
            parsed = parse_config(config)
        except AirbyteTracedException as exc:
            if command != "check":
                raise
            yield dumps(
                AirbyteMessage(
                    type=Type.CONNECTION_STATUS,
                    connectionStatus=AirbyteConnectionStatus(status=Status.FAILED, message=exc.message),
                )
            )
            return
        if command == "check":
            for message in super().run_cmd(parsed_args):
                yield dumps(message)
            return
        check_config_against_spec_or_exit(config, spec)
        if command == "discover":
            yield dumps(discover_message(parsed.target_field))
            return
        api_origin()  # a malformed KLAVIYO_API_ORIGIN fails here, before stdin is read
        catalog = ConfiguredAirbyteCatalogSerializer.load(json.loads(Path(parsed_args.catalog).read_text()))
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
                # The buffer only flushes on a later write: a state must not wait in it for one.
                print(line, flush=True)
