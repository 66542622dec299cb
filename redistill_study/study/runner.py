"""The study runner: a worker's options and set-up, and the session it opens (:mod:`.session`
runs the protocol)."""

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

from .._patience import DEFAULT_LIMIT
from ..config import StudyConfig
from ..data import DataBundle, build_dataset
from ..errors import StoreUnreachable, UserError, redact_url
from ..tracking import Tracker
from ..training import Runtime, make_runtime
from .arms import Arms
from .liveness import WORKER_TAG, Interrupted, StopSignals
from .plan import Plan, build_plan
from .protocol import lock_protocol
from .queue import TrialQueue
from .results import Results
from .scheduler import PhaseScheduler
from .session import Session, Stores
from .storage import (
    SLOW_AFTER,
    open_storage,
    sqlite_url,
    store_init_lock,
    use_write_ahead_log,
)

__all__ = ["Interrupted", "RunOptions", "StudyRunner", "prepare_output"]


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

    def resolved_cache(self) -> Path:
        return self.cache_dir or self.output / "cache"


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
    """A worker's set-up: the plan, the data, the devices and the stores.

    ``session()`` opens the stores and this invocation's MLflow run and returns a
    :class:`~.session.Session`, complete from the start, that trains until the study is done::

        runner = StudyRunner(config, options)
        runner.load_data()  # a study that cannot read its data creates no stores
        with runner.session() as session:
            session.work()
            results = session.results()
    """

    def __init__(
        self, config: StudyConfig, options: RunOptions, echo: Callable[[str], None] = print
    ) -> None:
        self.config, self.options, self.echo = config, options, echo
        self.plan: Plan = build_plan(config)
        self.cohort_size = options.cohort_size or config.cohort_size
        self._bundle: DataBundle | None = None
        self._runtime: Runtime | None = None

    @property
    def worker_label(self) -> str:
        return self.options.worker_label or f"{socket.gethostname()}:{os.getpid()}"

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            c = self.config
            self._runtime = make_runtime(
                self.options.device or c.device, c.precision, c.channels_last, c.compile
            )
        return self._runtime

    def load_data(self) -> DataBundle:
        """The study's data set (read once)."""
        if self._bundle is None:
            self._bundle = build_dataset(self.config.dataset, self.options.config_path.parent)
        return self._bundle

    def open_stores(self) -> Stores:
        """Both stores, created if missing, and the protocol locked (or checked)."""
        options = self.options
        prepare_output(options.output, options.config_path)
        storage_url, tracking_uri = options.resolved_storage(), options.resolved_tracking()
        # Workers starting together must not race to create the stores' tables.
        with store_init_lock(storage_url, tracking_uri):
            storage = open_storage(storage_url, limit=options.patience)
            tracker = Tracker(
                tracking_uri,
                self.config.name,
                artifact_root=options.output / "mlartifacts",
                limit=options.patience,
                slow_after=SLOW_AFTER,
            )
            lock_protocol(storage, self.plan, str(options.config_path))
            for url in (storage_url, tracking_uri):
                use_write_ahead_log(url)
        queue = TrialQueue(storage, self.plan)
        return Stores(storage, tracker, queue, PhaseScheduler(self.plan, queue))

    def init(self) -> None:
        """Create the stores and queue the first phases once, before many workers start."""
        queue = self.open_stores().queue
        for unit in self.plan.first_units():
            queue.plan_unit(unit)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open the stores and this invocation's MLflow run; close the run with its status."""
        stores = self.open_stores()
        started = time.perf_counter()
        parent_run_id = stores.tracker.start_run(
            f"{self.config.name} {dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}",
            params=self._invocation_params(),
            tags={
                "redistill.role": "invocation",
                "redistill.host": socket.gethostname(),
                WORKER_TAG: self.worker_label,
            },
        )
        signals = StopSignals()
        status = "FAILED"
        session: Session | None = None
        try:
            with signals.installed():
                session = Session(self, stores, parent_run_id, signals, started)
                yield session
            status = "FINISHED"
        except Interrupted:
            status = "KILLED"
            raise
        finally:
            if session is not None:
                session.close()
            try:
                stores.tracker.end_run(parent_run_id, status)
            except StoreUnreachable:
                pass  # a survivor closes it: its pulse stops

    def run(self) -> Results:
        """Work until every trial is done; return the results (the convenience entry point)."""
        with self.session() as session:
            session.work()
            return session.results()

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
            **{
                f"verdict.claim.{claim.name}": _claim_text(claim.arms, claim.noises)
                + (f" ({claim.control} control)" if claim.control else "")
                for claim in (plan.claims if c.verdict.claims else ())
            },
            "verdict.failure_margin": plan.failure_margin,
            "verdict.min_pairs": c.verdict.min_pairs,
            "verdict.min_students": c.verdict.min_students,
            "verdict.min_teachers": c.verdict.min_teachers,
            "optuna_storage": redact_url(self.options.resolved_storage()),
            "config_path": str(self.options.config_path),
        }


def _claim_text(arms: Arms, noises: tuple[str, ...] | None = None) -> str:
    """A claim's arms (and conditions) in one MLflow parameter: ``dkd vs dkd_tuned, ref kd``."""
    text = f"{','.join(arms.fixed)} vs {arms.searched}"
    text += f", ref {arms.reference}" if arms.reference else ""
    return text + (f", under {','.join(noises)}" if noises else "")
