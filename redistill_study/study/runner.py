"""The study runner: the protocol as a loop over claimed cohorts.

Data flows one way: config → plan → queue (Optuna) → claimed cohort → data + teacher (cached)
→ noisy teacher outputs → cohort training → both stores (recorder). Analysis reads the stores
afterwards through :mod:`.results`; the runner never calls it.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from optuna.trial import FrozenTrial

from .._patience import DEFAULT_LIMIT
from ..config import StudyConfig
from ..data import DataBundle, build_dataset, data_root
from ..errors import StoreUnreachable, UserError, redact_url
from ..tracking import Tracker
from ..training import Runtime, make_runtime
from .cell import CellTeacher, prepare_cell
from .cohort import train_claimed
from .liveness import WORKER_TAG, Heartbeat, InvocationPulse, StopSignals
from .plan import Cell, Plan, build_plan
from .progress import Progress
from .protocol import lock_protocol
from .queue import Claimed, TrialQueue
from .recorder import Recorder, close_stale_run
from .results import Results, read_results
from .scheduler import PhaseScheduler
from .storage import (
    GRACE_PERIOD,
    SLOW_AFTER,
    open_storage,
    sqlite_url,
    store_init_lock,
    use_write_ahead_log,
)


@dataclass
class RunOptions:
    output: Path
    config_path: Path
    storage_url: str | None = None
    tracking_uri: str | None = None
    cache_dir: Path | None = None
    cohort_size: int | None = None
    device: str | None = None
    quiet: bool = False
    poll_seconds: float = 2.0
    worker_label: str = ""
    patience: float = DEFAULT_LIMIT  # seconds an unreachable store is waited for

    def resolved_storage(self) -> str:
        return self.storage_url or sqlite_url(self.output / "optuna.db")

    def resolved_tracking(self) -> str:
        return self.tracking_uri or sqlite_url(self.output / "mlflow.db")


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived: in-flight trials were re-queued and their runs closed."""


def prepare_output(output: Path, config_path: Path) -> None:
    """A writable output folder holding a copy of the config (``report --output`` reads it)."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"output folder {output} is not writable ({exc.strerror})") from None
    copy = output / "study.yaml"
    if config_path.is_file() and config_path.resolve() != copy.resolve():
        text = config_path.read_text()
        if not copy.is_file() or copy.read_text() != text:
            copy.write_text(text)


class StudyRunner:
    def __init__(
        self, config: StudyConfig, options: RunOptions, echo: Callable[[str], None] = print
    ) -> None:
        self.config, self.options, self.echo = config, options, echo
        self.plan: Plan = build_plan(config)
        self.cohort_size = options.cohort_size or config.cohort_size
        self._cells: dict[str, CellTeacher] = {}
        self._bundle: DataBundle | None = None
        self._runtime: Runtime | None = None
        self.storage: Any = None
        self.tracker: Tracker | None = None
        self.parent_run_id: str | None = None
        self.recorder: Recorder | None = None
        self.signals = StopSignals()

    # --- set-up ------------------------------------------------------------------------

    @property
    def worker_label(self) -> str:
        return self.options.worker_label or f"{socket.gethostname()}:{os.getpid()}"

    @property
    def cache_dir(self) -> Path:
        return self.options.cache_dir or self.options.output / "cache"

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            c = self.config
            self._runtime = make_runtime(
                self.options.device or c.device, c.precision, c.channels_last, c.compile
            )
        return self._runtime

    @property
    def bundle(self) -> DataBundle:
        if self._bundle is None:
            self._bundle = build_dataset(self.config.dataset, self.options.config_path.parent)
        return self._bundle

    def open_stores(self) -> None:
        """Both stores, created if missing, and the protocol locked (or checked)."""
        prepare_output(self.options.output, self.options.config_path)
        # Workers starting together must not race to create the stores' tables.
        with store_init_lock(self.options.resolved_storage(), self.options.resolved_tracking()):
            storage_url, tracking_uri = (
                self.options.resolved_storage(),
                self.options.resolved_tracking(),
            )
            self.storage = open_storage(storage_url, limit=self.options.patience)
            self.tracker = Tracker(
                tracking_uri,
                self.config.name,
                artifact_root=self.options.output / "mlartifacts",
                limit=self.options.patience,
                slow_after=SLOW_AFTER,
            )
            lock_protocol(self.storage, self.plan, str(self.options.config_path))
            for url in (storage_url, tracking_uri):
                use_write_ahead_log(url)
        self.queue = TrialQueue(self.storage, self.plan)
        self.scheduler = PhaseScheduler(self.plan, self.queue)

    def init(self) -> None:
        """Create the stores and queue the first phases once, before many workers start."""
        self.open_stores()
        for unit in self.plan.first_units():
            self.queue.plan_unit(unit)

    def results(self) -> Results:
        return read_results(self.storage, self.plan)

    # --- an invocation -----------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[StudyRunner]:
        """Open the stores and this invocation's MLflow run; close the run with its status."""
        self.open_stores()
        assert self.tracker is not None
        self.started = time.perf_counter()
        self.parent_run_id = self.tracker.start_run(
            f"{self.config.name} {dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}",
            params=self._invocation_params(),
            tags={
                "redistill.role": "invocation",
                "redistill.host": socket.gethostname(),
                WORKER_TAG: self.worker_label,
            },
        )
        self.pulse = InvocationPulse(self.tracker, self.parent_run_id)
        status = "FAILED"
        try:
            with self.signals.installed():
                yield self
            status = "FINISHED"
        except Interrupted:
            status = "KILLED"
            raise
        except StoreUnreachable:
            status = "FAILED"
            raise
        finally:
            try:
                self.tracker.end_run(self.parent_run_id, status)
            except StoreUnreachable:
                pass  # a survivor closes it: its pulse stops

    def run(self) -> Results:
        """Work until every trial is done; return the results (the convenience entry point)."""
        with self.session():
            self.work()
            return self.results()

    def attach(self, metrics: dict[str, float], files: list[Path], folder: Path | None) -> None:
        """Log the summary's numbers and files to this invocation's MLflow run."""
        assert self.tracker is not None and self.parent_run_id is not None
        self.tracker.log_metrics(self.parent_run_id, metrics)
        for path in files:
            self.tracker.log_artifact(self.parent_run_id, path)
        if folder is not None:
            self.tracker.log_artifacts(self.parent_run_id, folder, folder.name)

    def _invocation_params(self) -> dict[str, Any]:
        c, plan = self.config, self.plan
        return {
            "study": c.name,
            "dataset": c.dataset.name,
            "seeds": ",".join(map(str, plan.seeds)),
            "tuning_seed": plan.tuning_seed,
            "seed": c.seed,
            "pairs": ",".join(p.label for p in c.pairs),
            "methods": ",".join(m.name for m in c.methods),
            "noise": ",".join(plan.noise_labels),
            "cohort_size": self.cohort_size,
            "device": str(self.runtime.device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "verdict.margin": plan.margin,
            "verdict.alpha": c.verdict.alpha,
            "verdict.fixed": ",".join(plan.arms.fixed) or "none",
            "verdict.searched": plan.arms.searched or "none",
            "verdict.reference": plan.arms.reference or "none",
            "verdict.failure_margin": plan.failure_margin,
            "verdict.min_pairs": c.verdict.min_pairs,
            "verdict.min_students": c.verdict.min_students,
            "verdict.min_teachers": c.verdict.min_teachers,
            "optuna_storage": redact_url(self.options.resolved_storage()),
            "config_path": str(self.options.config_path),
        }

    # --- the protocol --------------------------------------------------------------------

    def work(self) -> None:
        """Claim cohorts and train them until every unit of every phase is finished."""
        for unit in self.plan.first_units():
            self.queue.plan_unit(unit)
        total = sum(len(self.plan.slots(u)) for u in self.plan.all_units())
        self.progress = Progress(
            total, self.queue.count_done(), self.config.name, self.options.quiet, self.echo
        )
        self.recorder = Recorder(
            self.tracker,
            self.parent_run_id or "",
            self.worker_label,
            self.config.dataset.name,
            self.bundle.num_classes,
            self.progress.say,
            data_digest=self.bundle.fingerprint,
            data_source=str(
                data_root(self.config.dataset, self.options.config_path.parent)
                or self.config.dataset.name
            ),
        )
        last_sweep = 0.0
        try:
            while True:
                if self.signals.requested is not None:
                    raise Interrupted
                if time.monotonic() - last_sweep > min(5.0, GRACE_PERIOD / 3):
                    self._sweep()
                    last_sweep = time.monotonic()
                done = self.scheduler.advance()
                cohort = (
                    [] if done else self.queue.claim_cohort(self.cohort_size, self.worker_label)
                )
                if cohort:
                    self._train(cohort)
                elif done:
                    return
                else:
                    time.sleep(min(self.options.poll_seconds, GRACE_PERIOD / 3))
        finally:
            self.progress.close()

    @property
    def trained(self) -> int:
        return self.recorder.trained if self.recorder is not None else 0

    def _sweep(self) -> None:
        # After an outage (or at start) live workers get one grace period to heartbeat again
        # before anything is judged stale (see liveness).
        if self.storage.patience.steady_for() >= GRACE_PERIOD:
            dead: set[str] = set()
            for frozen in self.queue.retry_stale(GRACE_PERIOD):
                self._close_stale_run(frozen)
                if frozen.user_attrs.get("worker"):
                    dead.add(str(frozen.user_attrs["worker"]))
            # Their workers are dead: close their invocation runs now, not a grace period
            # later (the study may be over by then, with nobody left to close them).
            self.pulse.close_invocations_of(dead)
        self.pulse.beat()
        self.pulse.close_dead_invocations()

    def _cell(self, cell: Cell) -> CellTeacher:
        if cell.pair_noise not in self._cells:  # recipes share their cells' teacher
            self._cells[cell.pair_noise] = prepare_cell(
                self.plan,
                cell,
                self.bundle,
                self.runtime,
                self.cache_dir,
                self.options.config_path.parent,
                self.progress.say,
            )
        return self._cells[cell.pair_noise]

    def _train(self, cohort: list[Claimed]) -> None:
        assert self.recorder is not None
        beat = [c.trial_id for c in cohort]
        with Heartbeat(self.storage, beat, on_beat=lambda: self.pulse.beat(wait=False)):
            try:
                train_claimed(
                    cohort,
                    self._cell,
                    self.plan,
                    self.bundle,
                    self.runtime,
                    self.recorder,
                    lambda: self.signals.requested is not None,
                )
            except BaseException as exc:
                # Interrupted trials go back to the queue; so do crashed ones (the next
                # invocation retries them, up to MAX_RETRIES) — a crash loses nothing. A
                # store given up on counts as a crash that is not the trials' fault.
                interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
                reason = "interrupted" if interrupted else f"{type(exc).__name__}: {exc}"[:500]
                force = interrupted or isinstance(exc, StoreUnreachable)
                try:
                    for c in self.queue.release(cohort, reason, requeue=True, force=force):
                        self.recorder.released(c, reason, interrupted)
                except StoreUnreachable:
                    pass  # still unreachable: the trials go stale and any worker retries them
                raise

    def _close_stale_run(self, trial: FrozenTrial) -> None:
        if self.tracker is not None:
            close_stale_run(self.tracker, trial.user_attrs.get("mlflow_run_id"))
