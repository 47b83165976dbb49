"""Persisting the target registry (target -> Klaviyo list id) between syncs.

Airbyte never hands a destination its previous state: the states a destination echoes go back to
the *source* on the next sync. What the platform does hand back is the destination's config, and a
connector may update its own config with a CONNECTOR_CONFIG control message (the platform then
calls its updateDestination API). So the registry lives in the hidden config field
`target_registry`, and newly resolved targets are announced with a control message carrying the
whole config: one before the states that follow them, and one at the end (targets.take_messages).

The private key is sent as Airbyte's secret mask `**********`: the platform's JsonSecretsProcessor
copies the stored secret back in place of the mask, so the key is never printed.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

SECRET_MASK = "**********"


def merged_registry(config: Mapping[str, Any], new_entries: Mapping[str, str]) -> list[dict[str, str]]:
    registry = {e["target"]: e["list_id"] for e in config.get("target_registry") or [] if isinstance(e, dict)}
    registry.update(new_entries)
    return [{"target": target, "list_id": list_id} for target, list_id in sorted(registry.items())]


def registry_update_message(config: Mapping[str, Any], new_entries: Mapping[str, str]) -> dict[str, Any]:
    updated = {**config, "private_api_key": SECRET_MASK, "target_registry": merged_registry(config, new_entries)}
    return {
        "type": "CONTROL",
        "control": {
            "type": "CONNECTOR_CONFIG",
            "emitted_at": time.time() * 1000,
            "connectorConfig": {"config": updated},
        },
    }
