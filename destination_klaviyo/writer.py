"""The `write` command's message loop: rows to sinks, states out once their rows are in, mirror last.

Batches keep filling across state messages (a state does not force a tiny job); a state is echoed
as soon as every row before it has been accepted, whatever else is still in flight: the loop never
waits for requests inside a sink, but in its own waits, one completion at a time, echoing the
states each completion frees (while reading, when the input is quiet, at the end of input, and
while a failing request is still being retried). States also force a flush when they have waited
longer than STATE_MAX_WAIT_SECONDS, so a slow trickle of rows cannot hold the source's progress
back for the whole sync. On failure, rows already accepted keep their states; nothing after the
failure point is acknowledged, and no mirror removal runs. On SIGTERM (stopping.py) the loop stops
reading, echoes what is safe within a few seconds, and stops.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from airbyte_cdk.models import ConfiguredAirbyteCatalog

from destination_klaviyo.client import KlaviyoApiError, KlaviyoClient, KlaviyoUnreachable
from destination_klaviyo.config import KlaviyoConfig
from destination_klaviyo.dispatch import Dispatcher
from destination_klaviyo.errors import ImportsPending, MissingList, StopRequested, as_traced, config_error
from destination_klaviyo.intake import RecordIntake
from destination_klaviyo.mirror import MirrorPlan
from destination_klaviyo.progress import Progress, ProgressSample
from destination_klaviyo.report import SyncReport
from destination_klaviyo.routing import Routes
from destination_klaviyo.sinks import SinkContext, SinkPool
from destination_klaviyo.state import StateLedger
from destination_klaviyo.stopping import STOP_WAIT_SECONDS
from destination_klaviyo.targets import TargetResolver

logger = logging.getLogger("airbyte")

STATE_MAX_WAIT_SECONDS = 60.0  # with no request in flight; see _flush_for_waiting_states


class KlaviyoWriter:
    """Reads the sync's messages once, in order, and turns them into Klaviyo requests and echoed states."""

    def __init__(
        self,
        config: KlaviyoConfig,
        catalog: ConfiguredAirbyteCatalog,
        client_factory: Callable[[], KlaviyoClient],
        raw_config: Mapping[str, Any],
        wakeup: Optional[threading.Event] = None,
    ) -> None:
        """`wakeup` is the event the main thread sleeps on; pass the input's (inbox.py) so that a
        line arriving, a request finishing and SIGTERM all wake the same loop."""
        # Routing first: an unmapped stream or unsupported mode fails before any client exists.
        routes = Routes(config, catalog)
        self.config = config
        client = client_factory()
        self.ledger = StateLedger()
        self.report = SyncReport(dry_run=config.dry_run, on_rejected=self.ledger.count_rejected)
        self.targets = TargetResolver(config, raw_config, client, self.report)
        dispatcher = Dispatcher(config.max_requests_in_flight, wakeup)
        self.sinks = SinkPool(SinkContext.for_sync(config, routes, client, self.report, dispatcher))
        self.mirror = MirrorPlan(routes)
        self.intake = RecordIntake(routes, self.ledger, self.report, self.targets, self.sinks, self.mirror)
        self.progress = Progress(self.report, self._progress_sample)
        routes.log_choices()

    def close(self) -> None:
        stop = self.sinks.dispatcher.stop
        stop.uninstall()
        # After SIGTERM, requests still retrying are left to the process's exit, not waited for.
        self.sinks.dispatcher.close(wait=not stop.requested)
        if self.sinks.context.client is not None:
            self.sinks.context.client.close()

    # -- states -----------------------------------------------------------------------------------
    def _released_states(self, *, every_time: bool = False) -> Iterator[dict[str, Any]]:
        """States whose rows are all in. Checked only when something changed, unless `every_time`
        (at the end of input, where a missed change would hold the last states back for good).
        A request that failed is raised here, on the main thread."""
        dispatcher = self.sinks.dispatcher
        if not self.ledger.may_release(dispatcher.finished_count) and not every_time:
            return
        dispatcher.raise_errors()
        yield from self._safe_states()

    def _safe_states(self) -> Iterator[dict[str, Any]]:
        """The states whose rows are all accepted, without raising (a failed request stays pending)."""
        if not self.config.dry_run and self.ledger.pending_count():
            announced = False
            for state in self.ledger.release(self.sinks.lowest_pending_seq()):
                if not announced:  # the lists found so far are persisted before the states after them
                    yield from self.targets.take_messages()
                    announced = True
                yield state

    def _waiting(
        self, busy: Callable[[], bool], release: Callable[[], Iterator[dict[str, Any]]], *, stoppable: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Wait while `busy()`, echoing the states each completion frees: a slow or retrying request
        holds back only the states that need its rows."""
        for _ in self.sinks.dispatcher.completions(busy, stoppable=stoppable):
            yield from release()

    def _after_failure(self, flush: bool) -> Iterator[dict[str, Any]]:
        """Let requests in flight finish, echoing the states whose rows all got in as they do."""
        try:
            if flush:
                self.sinks.flush()
        except Exception as flush_exc:  # the original error is the one to report
            logger.error(f"Could not deliver buffered rows after the failure: {type(flush_exc).__name__}")
        yield from self._waiting(self.sinks.dispatcher.in_flight, self._safe_states, stoppable=False)
        yield from self._safe_states()
        yield from self.targets.take_messages()  # lists made before the failure: the next attempt uses them

    # -- the loop ---------------------------------------------------------------------------------
    def write(self, messages: Iterable[Optional[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        """Process `messages`; a None in them means "no message, but look around" (inbox.py)."""
        self.progress.start()
        self.sinks.dispatcher.stop.install()
        try:
            yield from self._write_and_report(messages)
        finally:
            self.progress.stop()

    def _write_and_report(self, messages: Iterable[Optional[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        prefix = "Dry run plan" if self.config.dry_run else "Sync summary"
        try:
            yield from self._write(messages)
        except StopRequested:
            # Read no further; requests in flight get a few seconds, echoing the states they free.
            logger.warning(
                f"Received SIGTERM: stopping. Requests in flight get {STOP_WAIT_SECONDS:.0f} s to finish; the states "
                "of rows Klaviyo accepted are echoed, the rest is resent by the next attempt."
            )
            yield from self._after_failure(flush=False)
            self._log_summary(f"{prefix} (stopped by SIGTERM)", failed=True)
            raise
        except (KlaviyoApiError, KlaviyoUnreachable, MissingList, ImportsPending) as exc:
            # Klaviyo refused or is unreachable: send nothing more, but commit what is already in.
            yield from self._after_failure(flush=False)
            self._log_summary(f"{prefix} (failed)", failed=True)
            raise as_traced(exc) from None
        except BaseException:
            # Bad input or a bug: deliver what was read before it so its states can be committed.
            yield from self._after_failure(flush=True)
            self._log_summary(f"{prefix} (failed)", failed=True)
            raise
        if self.config.dry_run:
            dropped = self.ledger.discard()
            logger.info(
                f"Dry run: {dropped} state message(s) were not emitted, so a later real sync re-reads these rows."
            )
        else:
            self.sinks.finish()
        self.sinks.dispatcher.stop.check()  # a SIGTERM during the last steps: all is in, but stop was asked
        # Good rows are in and their states emitted; now fail loudly if something needs a look.
        failure = self.mirror.refusal or self.report.too_many_rejected(self.config.max_rejected_share)
        self._log_summary(f"{prefix} (failed)" if failure else prefix, failed=failure is not None)
        if failure is not None:
            raise config_error(failure)

    def _log_summary(self, prefix: str, *, failed: bool) -> None:
        self.report.log_summary(
            prefix, elapsed=self.progress.elapsed(), states_echoed=self.ledger.states_released, failed=failed
        )

    def _write(self, messages: Iterable[Optional[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        dispatcher, ledger, accept = self.sinks.dispatcher, self.ledger, self.intake.accept
        stop = dispatcher.stop
        for message in messages:
            if message is None or stop.requested:
                # Woken with no message (a request finished, SIGTERM, a quiet second), or stopping.
                stop.check()
                self._flush_for_waiting_states()
                yield from self._released_states()
                continue
            kind = message["type"]
            if kind == "RECORD":
                accept(message.get("record") or {})
                if ledger.may_release(dispatcher.finished_count):  # checked here: no generator per row
                    yield from self._released_states(every_time=True)
                if dispatcher.backlogged():  # a batch waits for a worker: wait here, not in the sink
                    yield from self._waiting(dispatcher.backlogged, self._released_states)
            elif kind == "STATE":
                self.ledger.add_state(message)
                self._flush_for_waiting_states()
                yield from self._released_states()
                if dispatcher.backlogged():
                    yield from self._waiting(dispatcher.backlogged, self._released_states)
            elif kind == "TRACE" and (message.get("trace") or {}).get("type") == "STREAM_STATUS":
                self.intake.stream_status(message["trace"])
            # LOG, other TRACE and CONTROL messages from the source need no action here.
        self.progress.input_finished = True
        self.sinks.flush()
        # Wait for the first completion, release, repeat: a request still retrying holds back only
        # the states after its rows.
        yield from self._waiting(dispatcher.in_flight, self._released_states)
        yield from self._released_states(every_time=True)
        self.mirror.run(
            self.sinks.context.client,
            self.targets,
            self.sinks,
            self.report,
            dry_run=self.config.dry_run,
            max_removal_share=self.config.mirror_max_removal_share,
        )
        yield from self.targets.take_messages()

    def _flush_for_waiting_states(self) -> None:
        """A slow trickle of rows: send the partial batches holding a state back once it has waited
        STATE_MAX_WAIT_SECONDS. While requests are in flight the state waits for Klaviyo's pace, and
        flushing would only spend the 150-jobs-a-minute budget on partial jobs."""
        if self.ledger.oldest_wait_seconds() > STATE_MAX_WAIT_SECONDS and not self.sinks.dispatcher.running():
            self.sinks.flush()

    def _progress_sample(self) -> ProgressSample:
        """Called from the progress thread: reads, never changes."""
        dispatcher = self.sinks.dispatcher
        return ProgressSample(
            self.ledger.records_seen,
            dispatcher.in_flight_count(),
            dispatcher.max_in_flight,
            self.ledger.states_released,
            self.progress.input_finished,
        )
