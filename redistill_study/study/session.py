"""A worker's session: the protocol as a loop over claimed cohorts.

Data flows one way: config → plan → queue (Optuna) → claimed cohort → data + teacher (cached)
→ noisy teacher outputs → cohort training → both stores (recorder). Analysis reads the stores
afterwards through :mod:`.results`; the session never calls it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..data import data_root
from ..errors import StoreUnreachable
from ..tracking import Tracker
from .attrs import TrialRecord
from .cell import CellTeacher, prepare_cell
from .cohort import train_claimed
from .liveness import Heartbeat, Interrupted, InvocationPulse, StopSignals
from .plan import Cell
from .progress import Progress
from .queue import Claimed, TrialQueue
from .recorder import Recorder, close_stale_run
from .results import Results, read_results
from .scheduler import PhaseScheduler
from .storage import GRACE_PERIOD, PatientStorage

if TYPE_CHECKING:  # the runner builds sessions; a session only reads its settings
    from .runner import StudyRunner


@dataclass(frozen=True)
class Stores:
    """The two stores of a study, opened, and the queue and scheduler over the first."""

    storage: PatientStorage
    tracker: Tracker
    queue: TrialQueue
    scheduler: PhaseScheduler


class Session:
    """One invocation: its MLflow run (``parent_run_id``) is open for the session's life."""

    def __init__(
        self,
        runner: StudyRunner,
        stores: Stores,
        parent_run_id: str,
        signals: StopSignals,
        started: float,
    ) -> None:
        self.runner, self.stores, self.parent_run_id = runner, stores, parent_run_id
        self.signals, self.started = signals, started
        self.plan, self.options = runner.plan, runner.options
        self.pulse = InvocationPulse(stores.tracker, parent_run_id)
        self._cells: dict[str, CellTeacher] = {}
        for unit in self.plan.first_units():
            stores.queue.plan_unit(unit)
        config, bundle = runner.config, runner.load_data()
        total = sum(len(self.plan.slots(u)) for u in self.plan.all_units())
        self.progress = Progress(
            total, stores.queue.count_done(), config.name, self.options.quiet, runner.echo
        )
        source = data_root(config.dataset, self.options.config_path.parent)
        self.recorder = Recorder(
            stores.tracker,
            parent_run_id,
            runner.worker_label,
            config.dataset.name,
            bundle.num_classes,
            self.progress.say,
            data_digest=bundle.fingerprint,
            data_source=str(source or config.dataset.name),
        )

    def close(self) -> None:
        """Close the progress bar (``work()`` does; so does the runner's ``session()``)."""
        self.progress.close()

    @property
    def trained(self) -> int:
        return self.recorder.trained

    def results(self) -> Results:
        return read_results(self.stores.storage, self.plan)

    def attach(self, metrics: dict[str, float], files: list[Path], folder: Path | None) -> None:
        """Log the summary's numbers and files to this invocation's MLflow run."""
        tracker = self.stores.tracker
        tracker.log_metrics(self.parent_run_id, metrics)
        for path in files:
            tracker.log_artifact(self.parent_run_id, path)
        if folder is not None:
            tracker.log_artifacts(self.parent_run_id, folder, folder.name)

    def work(self) -> None:
        """Claim cohorts and train them until every unit of every phase is finished."""
        queue, scheduler = self.stores.queue, self.stores.scheduler
        last_sweep = 0.0
        try:
            while True:
                if self.signals.requested is not None:
                    raise Interrupted
                if time.monotonic() - last_sweep > min(5.0, GRACE_PERIOD / 3):
                    self._sweep()
                    last_sweep = time.monotonic()
                done = scheduler.advance()
                size = self.runner.cohort_size
                cohort = [] if done else queue.claim_cohort(size, self.runner.worker_label)
                if cohort:
                    self._train(cohort)
                elif done:
                    return
                else:
                    time.sleep(min(self.options.poll_seconds, GRACE_PERIOD / 3))
        finally:
            self.close()

    def _sweep(self) -> None:
        # After an outage (or at start) live workers get one grace period to heartbeat again
        # before anything is judged stale (see liveness).
        if self.stores.storage.patience.steady_for() >= GRACE_PERIOD:
            dead: set[str] = set()
            for frozen in self.stores.queue.retry_stale(GRACE_PERIOD):
                stale = TrialRecord.from_trial(frozen)
                close_stale_run(self.stores.tracker, stale.mlflow_run_id)
                if stale.worker:
                    dead.add(stale.worker)
            # Their workers are dead: close their invocation runs now, not a grace period
            # later (the study may be over by then, with nobody left to close them).
            self.pulse.close_invocations_of(dead)
        self.pulse.beat()
        self.pulse.close_dead_invocations()

    def _cell(self, cell: Cell) -> CellTeacher:
        if cell.pair_noise not in self._cells:  # recipes share their cells' teacher
            runner = self.runner
            self._cells[cell.pair_noise] = prepare_cell(
                self.plan,
                cell,
                runner.load_data(),
                runner.runtime,
                self.options.resolved_cache(),
                self.options.config_path.parent,
                self.progress.say,
            )
        return self._cells[cell.pair_noise]

    def _train(self, cohort: list[Claimed]) -> None:
        beat = [c.trial_id for c in cohort]
        storage = self.stores.storage
        with Heartbeat(storage, beat, on_beat=lambda: self.pulse.beat(wait=False)):
            try:
                train_claimed(
                    cohort,
                    self._cell,
                    self.plan,
                    self.runner.load_data(),
                    self.runner.runtime,
                    self.recorder,
                    lambda: self.signals.requested is not None,
                )
            except BaseException as exc:
                self._release(cohort, exc)
                raise

    def _release(self, cohort: list[Claimed], exc: BaseException) -> None:
        # Interrupted trials go back to the queue; so do crashed ones (the next invocation
        # retries them, up to MAX_RETRIES) — a crash loses nothing. A store given up on
        # counts as a crash that is not the trials' fault.
        interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
        reason = "interrupted" if interrupted else f"{type(exc).__name__}: {exc}"[:500]
        force = interrupted or isinstance(exc, StoreUnreachable)
        try:
            for c in self.stores.queue.release(cohort, reason, requeue=True, force=force):
                self.recorder.released(c, reason, interrupted)
        except StoreUnreachable:
            pass  # still unreachable: the trials go stale and any worker retries them
