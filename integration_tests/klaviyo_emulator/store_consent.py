"""Consent, suppressions and data-privacy deletions in the emulator's store.

A mixin of :class:`store.EmulatorStore` (it uses the store's ``lock``, ``profiles``, ``lists``,
``memberships``, ``consent``, ``suppressions``, ``list_suppressions``, ``upsert_profile`` ...).
See README.md, "Consent" and "Data privacy", for the rules and for what the spec leaves open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from .errors import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from .validation_consent import (
        ConsentProfile,
        DeletionRequest,
        SubscribeRequest,
        SuppressionRequest,
        UnsubscribeRequest,
    )

SUBSCRIBED = "SUBSCRIBED"
UNSUBSCRIBED = "UNSUBSCRIBED"
NEVER_SUBSCRIBED = "NEVER_SUBSCRIBED"
USER_SUPPRESSED = "USER_SUPPRESSED"
# Spec (bulk_subscribe_profiles): "This API will remove any `UNSUBSCRIBE`, `SPAM_REPORT` or
# `USER_SUPPRESSED` suppressions"; the suppression reason enum spells the spam one SPAM_COMPLAINT.
SUBSCRIBE_CLEARS = frozenset({"UNSUBSCRIBE", "SPAM_REPORT", "SPAM_COMPLAINT", USER_SUPPRESSED})
API_METHOD = "API"


def _iso(dt: Optional[datetime]) -> Optional[str]:
    from .store import iso

    return iso(dt) if dt else None


@dataclass
class ConsentJobRecord:
    """A subscribe, unsubscribe, suppress or unsuppress request (``type`` is its resource type)."""

    id: str
    type: str
    status: str
    created_at: datetime
    completed_at: Optional[datetime]
    total_count: int
    completed_count: int = 0
    skipped_count: int = 0
    list_id: Optional[str] = None
    segment_id: Optional[str] = None
    profile_ids: list[str] = field(default_factory=list)
    historical_import: Optional[bool] = None
    body_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "created_at": _iso(self.created_at),
            "completed_at": _iso(self.completed_at),
            "total_count": self.total_count,
            "completed_count": self.completed_count,
            "skipped_count": self.skipped_count,
            "list_id": self.list_id,
            "segment_id": self.segment_id,
            "profile_ids": list(self.profile_ids),
            "historical_import": self.historical_import,
            "body_size": self.body_size,
        }


def _json(value: Any) -> Any:
    """Datetimes to ISO strings, recursively (for snapshots and helpers)."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value


class ConsentMixin:
    """Subscriptions, unsubscriptions, suppressions, double opt-in and deletions."""

    def _init_consent_state(self) -> None:
        # self.consent / suppressions / list_suppressions live in EmulatorStore._init_state.
        # profile id -> [{list_id, channels, timestamp, job_id}]: list-scoped unsubscribes
        self.list_unsubscribes: dict[str, list[dict[str, Any]]] = {}
        # Every global unsubscribe, with why: "no_list" (no list given) or "not_in_list" (the
        # spec's warning: "Profiles not in the specified list will be globally unsubscribed").
        self.global_unsubscribes: list[dict[str, Any]] = []
        # Double opt-in: confirmation messages that would be sent; status pending|confirmed.
        self.opt_in_confirmations: list[dict[str, Any]] = []
        self.push_tokens: dict[str, list[dict[str, Any]]] = {}
        self.consent_jobs: dict[str, ConsentJobRecord] = {}
        self.deletions: list[dict[str, Any]] = []

    # ------------------------------------------------------------- helpers
    def _set_channel(
        self,
        pid: str,
        key: str,
        consent: str,
        now: datetime,
        *,
        consented_at: Optional[datetime] = None,
        custom_source: Optional[str] = None,
        double_optin: Optional[bool] = None,
    ) -> None:
        channels = self.consent.setdefault(pid, {})  # type: ignore[attr-defined]
        rec = channels.get(key)
        if rec is None:
            rec = {"created_timestamp": now}
            channels[key] = rec
        phone = (self.profiles.get(pid) or {}).get("attributes", {}).get("phone_number")  # type: ignore[attr-defined]
        rec.update(
            {
                "consent": consent,
                "consent_timestamp": consented_at or now,
                "last_updated": now,
                "method": API_METHOD,
                "method_detail": None,
                "custom_method_detail": custom_source,
                "double_optin": double_optin,
                "phone_number": phone if key.startswith("whatsapp.") else None,
            }
        )

    def channel_consent(self, profile_id: str, channel: str = "email.marketing") -> str:
        """``SUBSCRIBED``, ``UNSUBSCRIBED`` or ``NEVER_SUBSCRIBED`` for one channel
        (``email.marketing``, ``email.open_tracking``, ``sms.marketing``, ``sms.transactional``,
        ``mobile_push.marketing``, ``whatsapp.marketing|transactional|conversational``)."""
        with self.lock:  # type: ignore[attr-defined]
            rec = self.consent.get(profile_id, {}).get(channel)  # type: ignore[attr-defined]
            return rec["consent"] if rec else NEVER_SUBSCRIBED

    def consent_of(self, profile_id: str) -> dict[str, Any]:
        """Everything consent-related about one profile, JSON-ready: ``channels`` (only those
        ever set), ``suppressions``, ``list_suppressions``, ``list_unsubscribes``,
        ``global_unsubscribes``, ``pending_opt_ins``, ``push_tokens``."""
        with self.lock:  # type: ignore[attr-defined]
            return _json(
                {
                    "channels": self.consent.get(profile_id, {}),  # type: ignore[attr-defined]
                    "suppressions": self.suppressions.get(profile_id, []),  # type: ignore[attr-defined]
                    "list_suppressions": self.list_suppressions.get(profile_id, []),  # type: ignore[attr-defined]
                    "list_unsubscribes": self.list_unsubscribes.get(profile_id, []),
                    "global_unsubscribes": [g for g in self.global_unsubscribes if g["profile_id"] == profile_id],
                    "pending_opt_ins": [
                        c
                        for c in self.opt_in_confirmations
                        if c["profile_id"] == profile_id and c["status"] == "pending"
                    ],
                    "push_tokens": self.push_tokens.get(profile_id, []),
                }
            )

    def consent_by_email(self, email: str) -> Optional[dict[str, Any]]:
        """:meth:`consent_of` for the profile with this email, or None."""
        prof = self.find_profile(email=email)  # type: ignore[attr-defined]
        return self.consent_of(prof["id"]) if prof else None

    def _remove_suppressions(self, pid: str, reasons: frozenset[str]) -> int:
        current = self.suppressions.get(pid, [])  # type: ignore[attr-defined]
        kept = [s for s in current if s["reason"] not in reasons]
        if kept:
            self.suppressions[pid] = kept  # type: ignore[attr-defined]
        else:
            self.suppressions.pop(pid, None)  # type: ignore[attr-defined]
        return len(current) - len(kept)

    def _add_suppression(self, pid: str, reason: str, now: datetime) -> bool:
        current = self.suppressions.setdefault(pid, [])  # type: ignore[attr-defined]
        if any(s["reason"] == reason for s in current):
            return False
        current.append({"reason": reason, "timestamp": now})
        return True

    def _new_job(self, job_type: str, now: datetime, total: int, body_size: int, **kwargs: Any) -> ConsentJobRecord:
        from .store import new_ulid

        job = ConsentJobRecord(
            id=new_ulid(now),
            type=job_type,
            status="complete",
            created_at=now,
            completed_at=now,
            total_count=total,
            body_size=body_size,
            **kwargs,
        )
        self.consent_jobs[job.id] = job
        return job

    def _resolve_consent_profile(self, prof: "ConsentProfile", create: bool, now: datetime) -> Optional[str]:
        attrs = {k: v for k, v in (("email", prof.email), ("phone_number", prof.phone_number)) if v}
        if prof.anonymous_id:
            attrs["anonymous_id"] = prof.anonymous_id
        pid = self._match(prof.profile_id, attrs, ("email", "phone_number", "anonymous_id"))  # type: ignore[attr-defined]
        if pid is None and not create:
            return None
        pid, _ = self.upsert_profile(attrs, pid, now=now, match_keys=("email", "phone_number", "anonymous_id"))  # type: ignore[attr-defined]
        return pid

    # ----------------------------------------------------------- subscribe
    def bulk_subscribe(self, req: "SubscribeRequest", body_size: int = 0) -> ConsentJobRecord:
        """Apply a validated Bulk Subscribe Profiles request (all referential checks first)."""
        with self.lock:  # type: ignore[attr-defined]
            list_rec = None
            if req.list_id is not None:
                list_rec = self.require_list(req.list_id, pointer="/data/relationships/list/data/id")  # type: ignore[attr-defined]
            for prof in req.profiles:
                if not prof.profile_id:
                    continue
                known = self._match(prof.profile_id, {}, ())  # type: ignore[attr-defined]
                stored = self.profiles.get(known, {}).get("attributes", {}) if known else {}  # type: ignore[attr-defined]
                if known is None and not (prof.email or prof.phone_number or prof.anonymous_id):
                    raise ApiError(
                        404,
                        f"A profile with id '{prof.profile_id}' does not exist and no email or phone number "
                        "was given to create it.",
                        pointer=f"{prof.pointer}/id",
                    )
                keys = prof.channel_keys()
                if any(k.startswith("email.") for k in keys) and not (prof.email or stored.get("email")):
                    raise ApiError(
                        400,
                        "An email address is required for the email channel.",
                        pointer=f"{prof.pointer}/attributes/email",
                    )
                if any(k.startswith(("sms.", "whatsapp.")) for k in keys) and not (
                    prof.phone_number or stored.get("phone_number")
                ):
                    raise ApiError(
                        400,
                        "A phone number is required for the SMS and WhatsApp channels.",
                        pointer=f"{prof.pointer}/attributes/phone_number",
                    )
            now = self.now()  # type: ignore[attr-defined]
            opt_in = list_rec["opt_in_process"] if list_rec else self.account_opt_in_process  # type: ignore[attr-defined]
            double = opt_in == "double_opt_in" and not req.historical_import
            job = self._new_job(
                "profile-subscription-bulk-create-job",
                now,
                len(req.profiles),
                body_size,
                list_id=req.list_id,
                historical_import=req.historical_import,
            )
            for prof in req.profiles:
                pid = self._resolve_consent_profile(prof, True, now)
                assert pid is not None
                job.profile_ids.append(pid)
                immediate = False
                for ch in prof.channels:
                    already = self.consent.get(pid, {}).get(ch.key, {}).get("consent") == SUBSCRIBED  # type: ignore[attr-defined]
                    if ch.key == "email.marketing" and double and not already:
                        # "If the provided list has double opt-in enabled, profiles will receive a
                        # message requiring their confirmation before subscribing."
                        self._request_confirmation(pid, req.list_id, now, job.id, req.custom_source)
                        continue
                    self._set_channel(
                        pid,
                        ch.key,
                        SUBSCRIBED,
                        now,
                        consented_at=ch.consented_at,
                        custom_source=req.custom_source,
                        double_optin=False if ch.key == "email.marketing" else None,
                    )
                    if ch.key == "email.marketing":
                        self._email_subscribed(pid, req.list_id)
                    immediate = True
                if prof.push_tokens and "mobile_push.marketing" in prof.channel_keys():
                    tokens = self.push_tokens.setdefault(pid, [])
                    known_tokens = {t["token"] for t in tokens}
                    tokens.extend(t for t in prof.push_tokens if t["token"] not in known_tokens)
                if list_rec is not None and immediate:
                    self._add_members(req.list_id, [pid], now)  # type: ignore[attr-defined]
                job.completed_count += 1
            return job

    def _email_subscribed(self, pid: str, list_id: Optional[str]) -> None:
        """Email marketing became SUBSCRIBED: lift the suppressions the spec says subscribe removes,
        and the list-scoped unsubscribe of that list."""
        self._remove_suppressions(pid, SUBSCRIBE_CLEARS)
        if list_id is not None and pid in self.list_suppressions:  # type: ignore[attr-defined]
            kept = [s for s in self.list_suppressions[pid] if s["list_id"] != list_id]  # type: ignore[attr-defined]
            if kept:
                self.list_suppressions[pid] = kept  # type: ignore[attr-defined]
            else:
                del self.list_suppressions[pid]  # type: ignore[attr-defined]

    def _request_confirmation(
        self, pid: str, list_id: Optional[str], now: datetime, job_id: str, custom_source: Optional[str]
    ) -> None:
        for c in self.opt_in_confirmations:
            if c["profile_id"] == pid and c["list_id"] == list_id and c["status"] == "pending":
                c["sent_count"] += 1
                c["last_sent_at"] = now
                return
        email = self.profiles[pid]["attributes"].get("email")  # type: ignore[attr-defined]
        self.opt_in_confirmations.append(
            {
                "profile_id": pid,
                "email": email,
                "list_id": list_id,
                "channel": "email.marketing",
                "status": "pending",
                "requested_at": now,
                "last_sent_at": now,
                "sent_count": 1,
                "job_id": job_id,
                "custom_source": custom_source,
                "confirmed_at": None,
            }
        )

    def confirm_opt_in(self, profile_id: Optional[str] = None, list_id: Optional[str] = None) -> int:
        """Simulate recipients clicking the double opt-in confirmation: every pending confirmation
        (of this profile / list when given) becomes SUBSCRIBED (``double_optin`` true) and the
        profile joins the list. Returns how many were confirmed."""
        with self.lock:  # type: ignore[attr-defined]
            now = self.now()  # type: ignore[attr-defined]
            done = 0
            for c in self.opt_in_confirmations:
                if c["status"] != "pending" or (profile_id and c["profile_id"] != profile_id):
                    continue
                if list_id and c["list_id"] != list_id:
                    continue
                pid = c["profile_id"]
                if pid not in self.profiles:  # type: ignore[attr-defined]
                    continue
                self._set_channel(
                    pid, "email.marketing", SUBSCRIBED, now, custom_source=c["custom_source"], double_optin=True
                )
                self._email_subscribed(pid, c["list_id"])
                if c["list_id"] is not None and c["list_id"] in self.lists:  # type: ignore[attr-defined]
                    self._add_members(c["list_id"], [pid], now)  # type: ignore[attr-defined]
                c["status"] = "confirmed"
                c["confirmed_at"] = now
                done += 1
            return done

    # --------------------------------------------------------- unsubscribe
    def bulk_unsubscribe(self, req: "UnsubscribeRequest", body_size: int = 0) -> ConsentJobRecord:
        """Apply a validated Bulk Unsubscribe Profiles request.

        With a list: a member of that list is removed from it and unsubscribed from that list
        only; any other profile is **globally** unsubscribed (the spec's warning). Without a list
        every profile is globally unsubscribed. Global unsubscribes are recorded in
        ``global_unsubscribes``.
        """
        with self.lock:  # type: ignore[attr-defined]
            if req.list_id is not None:
                self.require_list(req.list_id, pointer="/data/relationships/list/data/id")  # type: ignore[attr-defined]
            now = self.now()  # type: ignore[attr-defined]
            job = self._new_job(
                "profile-subscription-bulk-delete-job", now, len(req.profiles), body_size, list_id=req.list_id
            )
            for prof in req.profiles:
                keys = prof.channel_keys()
                tokens = {t["token"] for t in prof.push_tokens}
                if not (prof.email or prof.phone_number):
                    # Push tokens only: "Push tokens can be removed by providing token strings directly."
                    for pid, held in list(self.push_tokens.items()):
                        self.push_tokens[pid] = [t for t in held if t["token"] not in tokens]
                    job.skipped_count += 1
                    continue
                # "If a profile cannot be found matching the given identifier(s), a new profile
                # will be created and then unsubscribed."
                pid = self._resolve_consent_profile(prof, True, now)
                assert pid is not None
                job.profile_ids.append(pid)
                if pid in self.push_tokens and tokens:
                    self.push_tokens[pid] = [t for t in self.push_tokens[pid] if t["token"] not in tokens]
                members = self.memberships.get(req.list_id, {}) if req.list_id else {}  # type: ignore[attr-defined]
                if req.list_id is not None and pid in members:
                    members.pop(pid, None)
                    self.list_unsubscribes.setdefault(pid, []).append(
                        {"list_id": req.list_id, "channels": keys, "timestamp": now, "job_id": job.id}
                    )
                    if "email.marketing" in keys:
                        supp = self.list_suppressions.setdefault(pid, [])  # type: ignore[attr-defined]
                        if not any(s["list_id"] == req.list_id for s in supp):
                            supp.append({"list_id": req.list_id, "reason": "UNSUBSCRIBE", "timestamp": now})
                else:
                    for key in keys:
                        self._set_channel(pid, key, UNSUBSCRIBED, now)
                    if "email.marketing" in keys:
                        self._add_suppression(pid, "UNSUBSCRIBE", now)
                    attrs = self.profiles[pid]["attributes"]  # type: ignore[attr-defined]
                    self.global_unsubscribes.append(
                        {
                            "profile_id": pid,
                            "email": attrs.get("email"),
                            "phone_number": attrs.get("phone_number"),
                            "channels": keys,
                            "list_id": req.list_id,
                            "reason": "not_in_list" if req.list_id else "no_list",
                            "timestamp": now,
                            "job_id": job.id,
                        }
                    )
                job.completed_count += 1
            return job

    # -------------------------------------------------- suppress / unsuppress
    def _suppression_targets(self, req: "SuppressionRequest", create: bool, now: datetime) -> tuple[list[str], int]:
        if req.segment_id is not None:
            raise ApiError(
                404,
                f"A segment with id '{req.segment_id}' does not exist (the emulator has no segments).",
                pointer="/data/relationships/segment/data/id",
            )
        skipped = 0
        pids: list[str] = []
        if req.list_id is not None:
            self.require_list(req.list_id, pointer="/data/relationships/list/data/id")  # type: ignore[attr-defined]
            for pid in self.memberships.get(req.list_id, {}):  # type: ignore[attr-defined]
                prof = self.profiles.get(pid)  # type: ignore[attr-defined]
                if prof is None or not prof["attributes"].get("email"):
                    skipped += 1  # suppressions are email-only
                else:
                    pids.append(pid)
            return pids, skipped
        for email in req.emails:
            found = self.find_profile(email=email)  # type: ignore[attr-defined]
            if found is not None:
                pids.append(found["id"])
            elif create:
                # "If a profile is not found with the given email, one will be created and
                # immediately suppressed."
                pid, _ = self.upsert_profile({"email": email}, now=now)  # type: ignore[attr-defined]
                pids.append(pid)
            else:
                skipped += 1  # "If a profile is not found with the given email, no action will be taken."
        return pids, skipped

    def bulk_suppress(self, req: "SuppressionRequest", body_size: int = 0) -> ConsentJobRecord:
        """Apply Bulk Suppress Profiles: a USER_SUPPRESSED global email suppression per profile."""
        with self.lock:  # type: ignore[attr-defined]
            now = self.now()  # type: ignore[attr-defined]
            pids, skipped = self._suppression_targets(req, True, now)
            job = self._new_job(
                "profile-suppression-bulk-create-job",
                now,
                len(pids) + skipped,
                body_size,
                list_id=req.list_id,
                segment_id=req.segment_id,
                skipped_count=skipped,
            )
            for pid in pids:
                self._add_suppression(pid, USER_SUPPRESSED, now)
                job.profile_ids.append(pid)
                job.completed_count += 1
            return job

    def bulk_unsuppress(self, req: "SuppressionRequest", body_size: int = 0) -> ConsentJobRecord:
        """Apply Bulk Unsuppress Profiles: lift USER_SUPPRESSED suppressions only."""
        with self.lock:  # type: ignore[attr-defined]
            now = self.now()  # type: ignore[attr-defined]
            pids, skipped = self._suppression_targets(req, False, now)
            job = self._new_job(
                "profile-suppression-bulk-delete-job",
                now,
                len(pids) + skipped,
                body_size,
                list_id=req.list_id,
                segment_id=req.segment_id,
                skipped_count=skipped,
            )
            for pid in pids:
                # "This only removes suppressions with reason USER_SUPPRESSED; unsubscribed profiles
                # and suppressed profiles with reason INVALID_EMAIL or HARD_BOUNCE remain unchanged."
                self._remove_suppressions(pid, frozenset({USER_SUPPRESSED}))
                job.profile_ids.append(pid)
                job.completed_count += 1
            return job

    def get_consent_job(self, job_id: str, job_type: Optional[str] = None) -> Optional[ConsentJobRecord]:
        with self.lock:  # type: ignore[attr-defined]
            job = self.consent_jobs.get(job_id)
            if job is None or (job_type and job.type != job_type):
                return None
            return job

    # ------------------------------------------------------- data privacy
    def request_deletion(self, req: "DeletionRequest") -> dict[str, Any]:
        """Request Profile Deletion: delete every profile matching the one identifier, with its list
        memberships, consent, suppressions, push tokens and events. Returns the deletion record
        (also appended to ``deletions``)."""
        from .store import new_ulid

        with self.lock:  # type: ignore[attr-defined]
            now = self.now()  # type: ignore[attr-defined]
            if req.field == "id":
                known = req.value in self.profiles or any(  # type: ignore[attr-defined]
                    req.value in members
                    for members in self.memberships.values()  # type: ignore[attr-defined]
                )
                targets = [req.value] if known else []
            else:
                targets = [
                    pid
                    for pid, rec in self.profiles.items()  # type: ignore[attr-defined]
                    if rec["attributes"].get(req.field) == req.value
                ]
            for pid in targets:
                rec = self.profiles.pop(pid, None)  # type: ignore[attr-defined]
                if rec is not None:
                    self._reindex(pid, rec["attributes"], {})  # type: ignore[attr-defined]
                for members in self.memberships.values():  # type: ignore[attr-defined]
                    members.pop(pid, None)
                self._profile_seq.pop(pid, None)  # type: ignore[attr-defined]
                for table in (
                    self.consent,
                    self.suppressions,
                    self.list_suppressions,
                    self.list_unsubscribes,
                    self.push_tokens,
                    self._last_event,
                ):  # type: ignore[attr-defined]
                    table.pop(pid, None)
                for c in self.opt_in_confirmations:
                    if c["profile_id"] == pid and c["status"] == "pending":
                        c["status"] = "deleted"
            deleted_events = self._drop_events_of(set(targets))  # type: ignore[attr-defined]
            record = {
                "id": new_ulid(now),
                "identifier": {req.field: req.value},
                "profile_ids": targets,
                "deleted_events": deleted_events,
                "status": "complete",
                "requested_at": now,
                "completed_at": now,
            }
            self.deletions.append(record)
            return _json(record)

    # ------------------------------------------------------------ dumping
    def _consent_snapshot(self) -> dict[str, Any]:
        return {
            "consent": _json(self.consent),  # type: ignore[attr-defined]
            "suppressions": _json(self.suppressions),  # type: ignore[attr-defined]
            "list_suppressions": _json(self.list_suppressions),  # type: ignore[attr-defined]
            "list_unsubscribes": _json(self.list_unsubscribes),
            "global_unsubscribes": _json(self.global_unsubscribes),
            "opt_in_confirmations": _json(self.opt_in_confirmations),
            "push_tokens": _json(self.push_tokens),
            "consent_jobs": [j.to_dict() for j in self.consent_jobs.values()],
            "deletions": _json(self.deletions),
            "account_opt_in_process": self.account_opt_in_process,  # type: ignore[attr-defined]
        }
