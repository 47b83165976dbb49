"""Following bulk import jobs: waiting until Klaviyo processed them, and `verify_bulk_jobs`.

Klaviyo's 202 means a job was accepted, not that every profile was imported: the import runs
asynchronously and can fail single profiles. With the flag on, after all rows are delivered, the
connector polls each job until it is complete and reports how many profiles failed and why
(codes and redacted details, never the profile data Klaviyo echoes back). Each poll is a request
against the 150/min bulk-import budget, which is why the flag is off by default.

List removals and mirrors by identifier wait for the sync's own imports into the list the same way
(`wait_for_jobs`): a removal that reached Klaviyo before an earlier import of the same person was
processed would be undone by that import.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from destination_klaviyo.client import KlaviyoClient
from destination_klaviyo.errors import redact_detail
from destination_klaviyo.report import SyncReport

logger = logging.getLogger("airbyte")

FINISHED = {"complete", "cancelled"}
MAX_WAIT_SECONDS = 900.0


def wait_for_jobs(
    client: KlaviyoClient, job_ids: list[str], finished: set[str], max_wait: float = MAX_WAIT_SECONDS
) -> list[str]:
    """Poll the jobs not in `finished` until Klaviyo finished them; return those still running after `max_wait`.

    List removals and mirrors must not run before the sync's own imports into that list are
    processed (an import still queued would add the person back). `finished` is the caller's cache
    of jobs already seen finished, shared between waits so that no job is polled twice once done.
    """
    pending = [job_id for job_id in dict.fromkeys(job_ids) if job_id and job_id not in finished]
    deadline = time.monotonic() + max_wait
    interval = 0.5
    while pending:
        still = []
        for job_id in pending:
            status = (client.get_bulk_import_job(job_id).get("attributes") or {}).get("status")
            if status in FINISHED:
                finished.add(job_id)
            else:
                still.append(job_id)
        pending = still
        if not pending or time.monotonic() + interval > deadline:
            break
        time.sleep(interval)
        interval = min(interval * 2, 10.0)
    return pending


def verify_jobs(
    client: KlaviyoClient, report: SyncReport, job_ids: list[str], max_wait: float = MAX_WAIT_SECONDS
) -> None:
    pending = list(job_ids)
    deadline = time.monotonic() + max_wait
    interval = 1.0
    while pending:
        still = []
        for job_id in pending:
            attributes = client.get_bulk_import_job(job_id).get("attributes") or {}
            status = attributes.get("status")
            if status not in FINISHED:
                still.append(job_id)
                continue
            failed = int(attributes.get("failed_count") or 0)
            line = (
                f"Bulk import job {job_id}: {status}, {attributes.get('completed_count') or 0} of "
                f"{attributes.get('total_count')} profiles imported, {failed} failed"
            )
            if failed:
                codes = Counter(
                    redact_detail(
                        str(
                            (e.get("attributes") or {}).get("code")
                            or (e.get("attributes") or {}).get("detail")
                            or "error"
                        )
                    )
                    for e in client.get_bulk_import_job_errors(job_id)
                )
                line += " (" + ", ".join(f"{code}: {n}" for code, n in sorted(codes.items())) + ")"
            report.verified(line, failed)
        pending = still
        if pending:
            if time.monotonic() + interval > deadline:
                logger.warning(
                    f"{len(pending)} bulk import job(s) still running after {max_wait:.0f}s: {', '.join(pending)}"
                )
                return
            time.sleep(interval)
            interval = min(interval * 2, 30.0)
