"""Typed connector configuration.

`spec.json` is what Airbyte shows users; this model is what the code reads. A unit test keeps their
field names, defaults and enums identical. Validation errors become Airbyte `config_error` traces
whose text names the field but never quotes a value: the config holds the private API key.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from destination_klaviyo.errors import config_error
from destination_klaviyo.surfaces.base import ConsentChannel, Surface

DEFAULT_API_REVISION = "2026-04-15"
API_REVISION_PATTERN = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(\.pre)?$")


def trimmed_target(value: Optional[str]) -> Optional[str]:
    """Targets (list names) are compared without leading and trailing whitespace, everywhere: `'VIP '`
    in a row, a mapping or a stream's default is the list `VIP`, not a second list beside it."""
    if value is None:
        return None
    target = value.strip()
    if not target:
        raise ValueError("must be a list name, not blank")
    return target


# Per-stream options that only the `events` surface reads.
EVENT_OPTIONS = ("metric", "metric_field", "time_field", "unique_id_field", "value_field", "value_currency", "backfill")


class StreamMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: str = Field(min_length=1)
    surface: Surface
    target: Optional[str] = Field(default=None, min_length=1)
    # events surface (surfaces/events.py says what each does)
    metric: Optional[str] = Field(default=None, min_length=1, max_length=127)  # = events.MAX_METRIC_NAME_CHARS
    metric_field: Optional[str] = Field(default=None, min_length=1)
    time_field: Optional[str] = Field(default=None, min_length=1)
    unique_id_field: Optional[str] = Field(default=None, min_length=1)
    value_field: Optional[str] = Field(default=None, min_length=1)
    value_currency: Optional[str] = Field(default=None, pattern=r"^[A-Z]{3}$")
    backfill: bool = False
    # subscriptions surface (surfaces/subscriptions.py says what each does)
    channels: Optional[list[ConsentChannel]] = Field(default=None, min_length=1)
    allow_global_unsubscribe: bool = False

    @field_validator("metric")
    @classmethod
    def _metric_not_blank(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _event_options(self) -> "StreamMapping":
        given = [name for name in EVENT_OPTIONS if getattr(self, name) not in (None, False)]
        if given and self.surface is not Surface.EVENTS:
            raise ValueError(
                f"{', '.join(given)} apply only to surface 'events' "
                f"(stream '{self.stream}' maps to '{self.surface.value}')"
            )
        if self.metric is not None and self.metric_field is not None:
            raise ValueError(f"stream '{self.stream}': set either metric or metric_field, not both")
        if self.value_currency is not None and self.value_field is None:
            raise ValueError(f"stream '{self.stream}': value_currency needs value_field (the column holding the value)")
        return self

    _trim_target = field_validator("target")(trimmed_target)

    @model_validator(mode="after")
    def _subscription_options(self) -> "StreamMapping":
        given = [n for n in ("channels", "allow_global_unsubscribe") if getattr(self, n) not in (None, False)]
        if given and self.surface is not Surface.SUBSCRIPTIONS:
            raise ValueError(
                f"{', '.join(given)} apply only to surface 'subscriptions' "
                f"(stream '{self.stream}' maps to '{self.surface.value}')"
            )
        return self


class ListMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(min_length=1)
    list_id: str = Field(min_length=1)

    _trim_target = field_validator("target")(trimmed_target)


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
    max_requests_in_flight: int = Field(default=8, ge=1, le=16)
    target_registry: list[ListMapping] = Field(default_factory=list)
    default_phone_region: Optional[str] = None
    strict_phone: bool = False
    max_new_lists_per_sync: int = Field(default=20, ge=0, le=150)
    mirror_max_removal_share: float = Field(default=0.5, ge=0, le=1)

    @field_validator("api_revision")
    @classmethod
    def _revision_format(cls, value: str) -> str:
        if not API_REVISION_PATTERN.match(value):
            raise ValueError("must be a date YYYY-MM-DD, optionally followed by .pre (e.g. 2026-04-15)")
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _phone_region(cls, value: Optional[str]) -> Optional[str]:
        if value is None or not value.strip():
            return None
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                "must be an ISO 3166 alpha-2 country code, such as US, FR or DE (the United Kingdom is GB)"
            )
        return region

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
