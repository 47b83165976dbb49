"""Typed connector configuration.

`spec.json` is what Airbyte shows users; this model is what the code reads. A unit test keeps their
field names, defaults and enums identical. Validation errors become Airbyte `config_error` traces
whose text names the field but never quotes a value: the config holds the private API key.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from destination_klaviyo.errors import config_error
from destination_klaviyo.surfaces.base import Surface

DEFAULT_API_REVISION = "2026-04-15"
API_REVISION_PATTERN = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(\.pre)?$")


class StreamMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: str = Field(min_length=1)
    surface: Surface
    target: Optional[str] = Field(default=None, min_length=1)


class ListMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(min_length=1)
    list_id: str = Field(min_length=1)


class KlaviyoConfig(BaseModel):
    # Unknown keys are tolerated: Airbyte may add bookkeeping keys to a stored config.
    model_config = ConfigDict(extra="ignore", frozen=True)

    private_api_key: SecretStr = Field(min_length=1)
    api_revision: str = DEFAULT_API_REVISION
    streams: list[StreamMapping] = Field(default_factory=list)
    default_surface: Optional[Surface] = None
    target_field: str = Field(default="list", min_length=1)
    list_mappings: list[ListMapping] = Field(default_factory=list)
    manage_lists: bool = True
    dry_run: bool = False
    max_rejected_share: float = Field(default=0.5, ge=0, le=1)
    verify_bulk_jobs: bool = False
    request_timeout_seconds: int = Field(default=120, ge=1, le=600)
    retry_budget_seconds: int = Field(default=600, ge=1, le=3600)
    max_requests_in_flight: int = Field(default=4, ge=1, le=16)
    target_registry: list[ListMapping] = Field(default_factory=list)

    @field_validator("api_revision")
    @classmethod
    def _revision_format(cls, value: str) -> str:
        if not API_REVISION_PATTERN.match(value):
            raise ValueError("must be a date YYYY-MM-DD, optionally followed by .pre (e.g. 2026-04-15)")
        return value

    @field_validator("streams")
    @classmethod
    def _unique_streams(cls, value: list[StreamMapping]) -> list[StreamMapping]:
        seen: set[str] = set()
        for mapping in value:
            if mapping.stream in seen:
                raise ValueError(f"stream '{mapping.stream}' is mapped more than once")
            seen.add(mapping.stream)
        return value

    @field_validator("list_mappings")
    @classmethod
    def _unique_targets(cls, value: list[ListMapping]) -> list[ListMapping]:
        targets = [m.target for m in value]
        repeated = sorted({t for t in targets if targets.count(t) > 1})
        if repeated:
            raise ValueError(f"target(s) mapped more than once: {', '.join(repeated)}")
        return value

    def stream_mapping(self, stream: str) -> Optional[StreamMapping]:
        return next((m for m in self.streams if m.stream == stream), None)


def parse_config(raw: Mapping[str, Any]) -> KlaviyoConfig:
    try:
        return KlaviyoConfig.model_validate(dict(raw))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False, include_context=False):
            where = ".".join(str(part) for part in err["loc"]) or "config"
            problems.append(f"{where}: {err['msg']}")
        raise config_error("Invalid Klaviyo destination config: " + "; ".join(problems)) from None
