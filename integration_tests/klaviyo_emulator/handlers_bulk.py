"""Bulk write endpoints beyond profile imports: events, consent and data-privacy deletion.
Mixed into :class:`server.KlaviyoHandler`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import filters
from .errors import ApiError
from .store import iso
from .validation import parse_json_body
from .validation_consent import validate_deletion, validate_subscribe, validate_suppression, validate_unsubscribe
from .validation_events import validate_bulk_events

SUPPRESS_PATH = "/api/profile-suppression-bulk-create-jobs"
UNSUPPRESS_PATH = "/api/profile-suppression-bulk-delete-jobs"
SUPPRESS_JOB = "profile-suppression-bulk-create-job"
UNSUPPRESS_JOB = "profile-suppression-bulk-delete-job"

if TYPE_CHECKING:  # pragma: no cover
    from .server import Response


class BulkWritesMixin:
    """POST handlers for the event, consent and deletion jobs."""

    def _json_doc(self, body: bytes) -> dict[str, Any]:
        parsed = getattr(self, "_parsed_body", None)
        return parsed if isinstance(parsed, dict) else parse_json_body(body)

    # ---------------------------------------------------------------- events
    def _post_event_bulk_create(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        store = self.store  # type: ignore[attr-defined]
        entries = validate_bulk_events(self._json_doc(body), store.now())
        store.bulk_create_events(entries, len(body))
        self._items = sum(len(e.events) for e in entries)  # type: ignore[attr-defined]
        # Spec: 202 "Success" with no response body.
        return 202, None, {}

    # --------------------------------------------------------------- consent
    def _post_subscribe(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        store = self.store  # type: ignore[attr-defined]
        req = validate_subscribe(self._json_doc(body), store.now())
        store.bulk_subscribe(req, len(body))
        self._items = len(req.profiles)  # type: ignore[attr-defined]
        return 202, None, {}  # spec: 202 "Success", no body

    def _post_unsubscribe(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        store = self.store  # type: ignore[attr-defined]
        req = validate_unsubscribe(self._json_doc(body), store.now())
        store.bulk_unsubscribe(req, len(body))
        self._items = len(req.profiles)  # type: ignore[attr-defined]
        return 202, None, {}  # spec: 202 "Success", no body

    def _suppression_job_resource(self, job: Any, path: str) -> dict[str, Any]:
        url = f"{self._base_url()}{path}/{job.id}"  # type: ignore[attr-defined]
        lists = [{"type": "list", "id": job.list_id}] if job.list_id else []
        segments = [{"type": "segment", "id": job.segment_id}] if job.segment_id else []
        return {
            "type": job.type,
            "id": job.id,
            "attributes": {
                "status": job.status,
                "created_at": iso(job.created_at),
                "total_count": job.total_count,
                "completed_count": job.completed_count,
                "completed_at": iso(job.completed_at) if job.completed_at else None,
                "skipped_count": job.skipped_count,
            },
            "relationships": {
                "lists": {
                    "data": lists,
                    "links": {"self": f"{url}/relationships/lists/", "related": f"{url}/lists/"},
                },
                "segments": {
                    "data": segments,
                    "links": {"self": f"{url}/relationships/segments/", "related": f"{url}/segments/"},
                },
            },
            "links": {"self": f"{url}/"},
        }

    def _post_suppression(self, path: str, job_type: str, body: bytes) -> "Response":
        store = self.store  # type: ignore[attr-defined]
        req = validate_suppression(self._json_doc(body), job_type)
        if job_type == SUPPRESS_JOB:
            job = store.bulk_suppress(req, len(body))
        else:
            job = store.bulk_unsuppress(req, len(body))
        self._items = job.total_count  # type: ignore[attr-defined]
        resource = self._suppression_job_resource(job, path)
        # Applied before the answer; the 202 shows the job as queued, like bulk import jobs do.
        resource["attributes"].update(status="queued", completed_count=0, completed_at=None, skipped_count=0)
        return 202, {"data": resource, "links": {"self": f"{self._base_url()}{path}/"}}, {}  # type: ignore[attr-defined]

    def _post_suppress(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        return self._post_suppression(SUPPRESS_PATH, SUPPRESS_JOB, body)

    def _post_unsuppress(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        return self._post_suppression(UNSUPPRESS_PATH, UNSUPPRESS_JOB, body)

    def _list_suppression_jobs(self, path: str, job_type: str, params: dict[str, str], query: str) -> "Response":
        predicate = filters.compile_filter(params.get("filter"), filters.SUPPRESSION_JOB_FILTER_FIELDS)
        sort = params.get("sort")
        if sort is not None and sort not in ("created", "-created"):
            raise ApiError(400, f"'{sort}' is not a valid sort option.", parameter="sort")
        store = self.store  # type: ignore[attr-defined]
        with store.lock:
            jobs = [j for j in store.consent_jobs.values() if j.type == job_type]
        jobs = [j for j in jobs if predicate({"status": j.status, "list_id": j.list_id, "segment_id": j.segment_id})]
        if sort == "-created":
            jobs.reverse()
        # The spec gives these operations no page[size]; the emulator pages by 20.
        page, links = self._paginate(jobs, {k: v for k, v in params.items() if k != "page[size]"}, 20, 20, path, query)  # type: ignore[attr-defined]
        return 200, {"data": [self._suppression_job_resource(j, path) for j in page], "links": links}, {}

    def _get_suppress_jobs(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        return self._list_suppression_jobs(SUPPRESS_PATH, SUPPRESS_JOB, params, query)

    def _get_unsuppress_jobs(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        return self._list_suppression_jobs(UNSUPPRESS_PATH, UNSUPPRESS_JOB, params, query)

    def _get_suppression_job(self, path: str, job_type: str, job_id: str) -> "Response":
        job = self.store.get_consent_job(job_id, job_type)  # type: ignore[attr-defined]
        if job is None:
            raise ApiError(404, f"A {job_type} with id '{job_id}' does not exist.")
        url = f"{self._base_url()}{path}/{job_id}/"  # type: ignore[attr-defined]
        return 200, {"data": self._suppression_job_resource(job, path), "links": {"self": url}}, {}

    def _get_suppress_job(self, job_id: str, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        return self._get_suppression_job(SUPPRESS_PATH, SUPPRESS_JOB, job_id)

    def _get_unsuppress_job(self, job_id: str, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        return self._get_suppression_job(UNSUPPRESS_PATH, UNSUPPRESS_JOB, job_id)

    # ---------------------------------------------------------- data privacy
    def _post_deletion(self, *, params: dict[str, str], body: bytes, query: str) -> "Response":
        req = validate_deletion(self._json_doc(body))
        record = self.store.request_deletion(req)  # type: ignore[attr-defined]
        self._items = len(record["profile_ids"])  # type: ignore[attr-defined]
        return 202, None, {}  # spec: 202 "Success", no body
