"""`subscriptions`: give consent (subscribe) into a list, and take it back (unsubscribe) from it.

The surface: its sink (one lane each for subscribes, historical subscribes and unsubscribes, a
person's rows reaching Klaviyo in row order), its discover schema and SPEC. What a row asks of
Klaviyo (channels, `consented_at`) and the request bodies, with what Klaviyo's spec says of them:
subscription_items.py. Whom an unsubscribe may name, and what follows a lost answer:
unsubscribe_guard.py.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Mapping, Optional

from airbyte_cdk.models import DestinationSyncMode

from destination_klaviyo.batching import Entry
from destination_klaviyo.client import KlaviyoApiError
from destination_klaviyo.errors import MissingList, is_missing_list
from destination_klaviyo.identifiers import PROFILE_ID_COLUMN
from destination_klaviyo.rejections import Rejection
from destination_klaviyo.sinks import Pointers, Request, SinkContext
from destination_klaviyo.surfaces.base import STRING, UPSERT_MODES, ConsentChannel, Surface, SurfaceSpec
from destination_klaviyo.surfaces.consent import Lane
from destination_klaviyo.surfaces.subscription_items import (
    BIRTH_DATE_COLUMN,
    CONSENTED_AT_COLUMN,
    DEFAULT_PLAN,
    SubscriptionPlan,
    new_subscribe_batch,
    new_unsubscribe_batch,
    render_subscription,
)
from destination_klaviyo.surfaces.unsubscribe_guard import UnsubscribeGuard
from destination_klaviyo.totality import render_row

if TYPE_CHECKING:
    from destination_klaviyo.routing import StreamRoute

logger = logging.getLogger("airbyte")


def prepare(route: "StreamRoute") -> SubscriptionPlan:
    options = route.options
    if options is None:
        return DEFAULT_PLAN
    return SubscriptionPlan(frozenset(options.channels or ()), options.allow_global_unsubscribe)


class SubscriptionSink(UnsubscribeGuard):
    """Subscribes into, and guardedly unsubscribes from, one list; a person's rows keep their order."""

    pointers = Pointers(
        re.compile(r"^/data/attributes/profiles/data/(\d+)(/.*)?$"),
        re.compile(r"^/data/attributes/profiles(/data)?/?$"),
    )

    def __init__(self, context: SinkContext, target: Optional[str], list_id: Optional[str]) -> None:
        super().__init__(context, target, list_id)
        self.subscribes = Lane(
            Request("subscribe jobs", "subscribe", self._subscribe), lambda: new_subscribe_batch(list_id)
        )
        self.historical = Lane(
            Request("subscribe jobs (historical import)", "subscribe (historical import)", self._subscribe),
            lambda: new_subscribe_batch(list_id, historical=True),
        )
        self.unsubscribes = Lane(
            Request("unsubscribe jobs", "unsubscribe", self._unsubscribe), lambda: new_unsubscribe_batch(list_id)
        )
        self.lanes = (self.subscribes, self.historical, self.unsubscribes)
        self._note_opt_in_process()

    def _note_opt_in_process(self) -> None:
        """Say when the target list uses double opt-in: subscribing then sends a confirmation email."""
        if self.context.client is None or self.target is None:
            return
        if self.list_id is None:
            self.report.note(
                f"Target '{self.target}' would be a new list, with the account's default opt-in process "
                "(with double opt-in, email subscribers get a confirmation email and stay pending until they confirm)"
            )
            return
        try:
            found = self.context.client.get_list(self.list_id)
        except KlaviyoApiError as exc:
            if is_missing_list(exc):
                raise MissingList(self.list_id, self.target) from None
            raise
        if (found.get("attributes") or {}).get("opt_in_process") == "double_opt_in":
            line = (
                f"Target '{self.target}' (list {self.list_id}) uses double opt-in: each email subscription into it "
                "sends a confirmation email, and the person stays unsubscribed (and off the list) until they confirm; "
                "rows with consented_at (historical import) are subscribed at once, without that email"
            )
            logger.warning(line)
            self.report.note(line)

    # -- rows -------------------------------------------------------------------------------------
    def add(self, row: Entry, data: Mapping[str, Any], *, remove: bool = False) -> None:
        plan = self.context.plans.get(row.key, DEFAULT_PLAN)
        rendered = render_row(render_subscription, data, plan=plan, remove=remove, phones=self.context.phones)
        if isinstance(rendered, Rejection):
            self.report.rejected(row, rendered)
            return
        keys = rendered.keys
        if remove:
            lane = self.unsubscribes
            # A second unsubscribe of the same person goes in a later request, checked once the
            # first is in: two in one request would leave the second a non-member (global).
            earlier = (self.subscribes, self.historical, self.unsubscribes)
        else:
            lane = self.historical if rendered.historical else self.subscribes
            earlier = (self.unsubscribes,)
        self.queue(row, rendered.item, keys, lane, earlier)

    # -- requests ---------------------------------------------------------------------------------
    def _subscribe(self, body: bytes) -> str:
        assert self.context.client is not None and self.list_id is not None
        self.context.client.bulk_subscribe_profiles(body)
        return f"a subscribe job into list {self.list_id}"

    def _unsubscribe(self, body: bytes) -> str:
        assert self.context.client is not None and self.list_id is not None, "never unsubscribe without a list"
        self.context.client.bulk_unsubscribe_profiles(body)
        return f"an unsubscribe job from list {self.list_id}"


def schema(target_field: str) -> dict[str, Any]:
    boolean = {"type": ["null", "boolean"]}
    properties: dict[str, Any] = {
        "email": {**STRING, "description": "Email address: needed for email_marketing"},
        "phone_number": {**STRING, "description": "Phone number in E.164 format: needed for the SMS channels"},
        "phone_e164": {**STRING, "description": "Alias of phone_number"},
        PROFILE_ID_COLUMN: {
            **STRING,
            "description": "Klaviyo profile id: which profile to subscribe (not for unsubscribing)",
        },
        ConsentChannel.EMAIL_MARKETING.value: {
            **boolean,
            "description": "true: consent to email marketing; null: the stream's channels",
        },
        ConsentChannel.SMS_MARKETING.value: {
            **boolean,
            "description": "true: consent to SMS marketing; null: the stream's channels",
        },
        ConsentChannel.SMS_TRANSACTIONAL.value: {
            **boolean,
            "description": "true: consent to transactional SMS; null: the stream's channels",
        },
        CONSENTED_AT_COLUMN: {
            "type": ["null", "string"],
            "format": "date-time",
            "description": "When consent was collected, in the past: the row is a historical import (no double opt-in email, no 'Added to list' flows)",
        },
        BIRTH_DATE_COLUMN: {
            "type": ["null", "string"],
            "format": "date",
            "description": "Date of birth, for accounts that age-gate SMS consent",
        },
        target_field: {**STRING, "description": "Target list name (the `target_field` column)"},
    }
    return {
        "type": "object",
        "additionalProperties": True,
        "description": (
            "A row subscribes the person to its channels into its target list; a deletion row unsubscribes them from "
            "that list, only if they are on it (unless allow_global_unsubscribe). Other columns are ignored."
        ),
        "properties": properties,
    }


SPEC = SurfaceSpec(
    surface=Surface.SUBSCRIPTIONS,
    summary="subscribes people to email/SMS consent into a list; deletion rows unsubscribe list members",
    modes=UPSERT_MODES + (DestinationSyncMode.soft_delete,),
    matching_keys=("email", "phone_number"),
    scopes=("lists:read", "lists:write", "profiles:read", "profiles:write", "subscriptions:write"),
    needs_target=True,
    removes=True,
    mirrors=False,
    schema=schema,
    make_sink=SubscriptionSink,
    changes_consent=True,
    replace_note=(
        "A replace (a full refresh overwrite, or a Refresh or Clear of the stream in Airbyte) writes its rows, and "
        "nobody absent from this sync is unsubscribed or unsuppressed: consent changes only for the rows the stream sends."
    ),
    prepare=prepare,
)
