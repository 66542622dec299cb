"""Liveness: heartbeats while a cohort trains, sweeps for workers that died, and stop signals.

A running trial records a heartbeat every few seconds; a trial silent for the grace period is
failed by any other worker and re-queued exactly once (:mod:`.retry`), its MLflow run closed
as KILLED. Invocation runs heartbeat through a tag, so a dead worker's invocation run is closed
too.

The order after an outage: a worker judges nothing stale until the store has answered it for
one full grace period. Every live worker's heartbeat thread tries once per interval (a few
seconds, well inside the grace period), so by then each live trial has a fresh heartbeat again
and only the trials of workers that really died look stale.

The first SIGINT/SIGTERM stops between two optimiser steps; a second one stops at once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..tracking import Tracker
from .storage import GRACE_PERIOD

HEARTBEAT_TAG = "redistill.heartbeat"
WORKER_TAG = "redistill.worker"


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived: in-flight trials were re-queued and their runs closed."""


class Heartbeat:
    """Records a heartbeat for each trial of a cohort while it trains."""

    def __init__(
        self, storage: Any, trial_ids: list[int], on_beat: Callable[[], None] | None = None
    ) -> None:
        self.storage, self.trial_ids, self.on_beat = storage, trial_ids, on_beat
        self.interval = storage.get_heartbeat_interval() or 5
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="trial-heartbeat")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        # Each beat is tried once: an unreachable database must neither kill training nor hold
        # this thread in a retry (the patience still learns that the store is down).
        patience = getattr(self.storage, "patience", None)
        record = getattr(self.storage, "inner", self.storage).record_heartbeat
        while not self._stop.wait(self.interval):
            try:
                for trial_id in self.trial_ids:
                    if patience is None:
                        record(trial_id)
                    else:
                        patience.call(lambda t=trial_id: record(t), wait=False)
            except Exception:
                pass
            try:
                if self.on_beat is not None:
                    self.on_beat()
            except Exception:
                pass


class InvocationPulse:
    """The invocation run's own heartbeat, and the closing of other invocations that died."""

    def __init__(self, tracker: Tracker, run_id: str) -> None:
        self.tracker, self.run_id = tracker, run_id

    def beat(self, wait: bool = True) -> None:
        self.tracker.set_tags(self.run_id, {HEARTBEAT_TAG: f"{time.time():.0f}"}, wait=wait)

    def close_invocations_of(self, workers: set[str]) -> None:
        """Close the running invocation runs of ``workers``, whose trials were found stale."""
        if workers:
            self._close_others(lambda run: run.data.tags.get(WORKER_TAG) in workers)

    def close_dead_invocations(self) -> None:
        """Close invocation runs silent for a grace period — only once this worker has seen the
        tracking store answer for a grace period itself: after an outage, every live worker's
        pulse lands first."""
        if self.tracker.patience.steady_for() < GRACE_PERIOD:
            return
        now = time.time()

        def silent(run: Any) -> bool:
            beat = float(run.data.tags.get(HEARTBEAT_TAG, run.info.start_time / 1000))
            return now - beat > GRACE_PERIOD

        self._close_others(silent)

    def _close_others(self, dead: Callable[[Any], bool]) -> None:
        """Close as KILLED every other running invocation run that ``dead`` picks."""
        running = self.tracker.runs(
            "tags.`redistill.role` = 'invocation' and attributes.status = 'RUNNING'"
        )
        for run in running:
            if run.info.run_id != self.run_id and dead(run):
                self.tracker.set_tags(
                    run.info.run_id, {"fail_reason": "worker stopped heartbeating"}
                )
                self.tracker.end_run(run.info.run_id, "KILLED")


class StopSignals:
    """SIGINT/SIGTERM handling: the first signal sets ``requested``; a second raises."""

    def __init__(self) -> None:
        self.requested: int | None = None

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum: int, frame: Any) -> None:
            if self.requested is not None:  # a second signal: stop right now
                raise KeyboardInterrupt
            self.requested = signum  # finish the current optimiser step, then re-queue

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
