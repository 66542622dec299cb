"""The study runner: claims trials from the Optuna storage in cohorts, trains them, records
each as an Optuna trial and an MLflow run, and finally writes the summary.

Data flows one way: config → plan → data + teacher (cached) → noisy teacher outputs →
cohort training with each trial's loss → metrics → Optuna trial + MLflow run → summary.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from ..config import StudyConfig
from ..data import DataBundle, build_dataset
from ..errors import UserError, redact_url
from ..tracking import Tracker
from ..training import Member, Runtime, make_member, make_runtime, predict
from ..training.metrics import classification_metrics
from .cell import CellTeacher, prepare_cell
from .plan import Cell, Plan, Unit, build_plan
from .storage import GRACE_PERIOD, open_storage, sqlite_url, store_init_lock
from .transfer import best_trial, pick_transferred

optuna.logging.set_verbosity(optuna.logging.WARNING)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


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
    summary: bool = True

    def resolved_storage(self) -> str:
        return self.storage_url or sqlite_url(self.output / "optuna.db")

    def resolved_tracking(self) -> str:
        return self.tracking_uri or sqlite_url(self.output / "mlflow.db")


@dataclass
class Claimed:
    unit: Unit
    study: optuna.Study
    trial: optuna.Trial
    hparams: dict[str, Any]
    seed: int
    run_id: str = ""
    started: float = field(default_factory=time.perf_counter)


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived: in-flight trials were re-queued and their runs closed."""


class StudyRunner:
    def __init__(
        self, config: StudyConfig, options: RunOptions, echo: Callable[[str], None] = print
    ) -> None:
        self.config, self.options, self.echo = config, options, echo
        self.plan: Plan = build_plan(config)
        self.cohort_size = options.cohort_size or config.cohort_size
        self._studies: dict[str, optuna.Study] = {}
        self._cells: dict[str, CellTeacher] = {}
        self._bundle: DataBundle | None = None
        self._runtime: Runtime | None = None
        self.tracker: Tracker | None = None
        self.parent_run_id: str | None = None
        self.trained = 0
        self._progress: Any = None
        self._stop_signal: int | None = None
        self._skipped: set[str] = set()

    # --- set-up ------------------------------------------------------------------------

    @property
    def worker_label(self) -> str:
        return self.options.worker_label or f"{socket.gethostname()}:{os.getpid()}"

    def open_stores(self) -> None:
        output = self.options.output
        try:
            output.mkdir(parents=True, exist_ok=True)
            probe = output / f".write-test-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"output folder {output} is not writable ({exc.strerror})") from None
        # `report --output DIR` reads the config from here.
        copy = output / "study.yaml"
        source = self.options.config_path
        if source.is_file() and source.resolve() != copy.resolve():
            text = source.read_text()
            if not copy.is_file() or copy.read_text() != text:
                copy.write_text(text)
        # Workers starting together must not race to create the stores' tables.
        with store_init_lock(self.options.resolved_storage(), self.options.resolved_tracking()):
            self.storage = open_storage(
                self.options.resolved_storage(), on_stale=self._close_stale_run
            )
            self.tracker = Tracker(
                self.options.resolved_tracking(),
                self.config.name,
                artifact_root=output / "mlartifacts",
            )

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

    def _sampler(self, unit: Unit) -> optuna.samplers.BaseSampler:
        seed = zlib.crc32(f"{self.config.seed}/{unit.name}".encode()) % (2**31)
        if unit.phase != "search":
            return optuna.samplers.RandomSampler(seed=seed)  # never samples: all params fixed
        if self.config.tuning.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.config.tuning.startup_trials, constant_liar=True
        )

    def _pruner(self, unit: Unit) -> optuna.pruners.BasePruner:
        if unit.phase != "search" or self.config.tuning.pruner == "none":
            return optuna.pruners.NopPruner()
        return optuna.pruners.MedianPruner(
            n_startup_trials=self.config.tuning.startup_trials,
            n_warmup_steps=self.config.tuning.warmup_epochs,
        )

    def study_for(self, unit: Unit, create: bool = False) -> optuna.Study | None:
        if unit.name in self._studies:
            return self._studies[unit.name]
        kwargs = dict(
            study_name=unit.name,
            storage=self.storage,
            sampler=self._sampler(unit),
            pruner=self._pruner(unit),
        )
        try:
            study = optuna.load_study(**kwargs)
        except KeyError:
            if not create:
                return None
            try:
                study = optuna.create_study(direction="maximize", **kwargs)
            except DuplicatedStudyError:
                study = optuna.load_study(**kwargs)
        self._studies[unit.name] = study
        return study

    def ensure_planned(self, unit: Unit, extra: dict[str, Any] | None = None) -> optuna.Study:
        """Create the unit's study and enqueue its slots, once, whichever worker gets there."""
        study = self.study_for(unit, create=True)
        assert study is not None
        if study.user_attrs.get("planned"):
            return study
        existing = {t.user_attrs.get("slot") for t in study.get_trials(deepcopy=False)}
        for slot in self.plan.slots(unit):
            if slot["slot"] not in existing:
                study.enqueue_trial({}, user_attrs={**slot, **(extra or {})})
        study.set_user_attr("planned", len(self.plan.slots(unit)))
        study.set_user_attr("phase", unit.phase)
        return study

    # --- the work loop -----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from ..analysis.summary import summarize

        self.open_stores()
        assert self.tracker is not None
        started = time.perf_counter()
        self.parent_run_id = self.tracker.start_run(
            f"{self.config.name} {dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}",
            params=self._study_params(),
            tags={"redistill.role": "invocation", "redistill.host": socket.gethostname()},
        )
        status = "FAILED"
        previous = self._install_signal_handlers()
        try:
            for unit in self.plan.first_units():
                self.ensure_planned(unit)
            self._work_loop()
            summary: dict[str, Any] = {"trained": self.trained}
            if self.options.summary:
                summary = summarize(self, elapsed=time.perf_counter() - started)
            status = "FINISHED"
            return summary
        except Interrupted:
            status = "KILLED"
            raise
        finally:
            self._restore_signal_handlers(previous)
            if self._progress is not None:
                self._progress.close()
            self.tracker.end_run(self.parent_run_id, status)

    def _study_params(self) -> dict[str, Any]:
        c = self.config
        return {
            "study": c.name,
            "dataset": c.dataset.name,
            "seeds": c.seeds,
            "seed": c.seed,
            "pairs": ",".join(p.label for p in c.pairs),
            "methods": ",".join(m.name for m in c.methods),
            "noise": ",".join(dict.fromkeys(cell.noise.label for cell in self.plan.cells)),
            "cohort_size": self.cohort_size,
            "device": str(self.runtime.device),
            "optuna_storage": redact_url(self.options.resolved_storage()),
            "config_path": str(self.options.config_path),
        }

    def _total_slots(self) -> int:
        return sum(len(self.plan.slots(u)) for u in self.plan.all_units())

    def _work_loop(self) -> None:
        self._init_progress()
        last_stale_check = 0.0
        while True:
            if self._stop_signal is not None:
                raise Interrupted
            if time.monotonic() - last_stale_check > min(5.0, GRACE_PERIOD / 3):
                self._fail_stale_trials()
                last_stale_check = time.monotonic()
            self._advance_phases()
            cohort = self._claim_cohort()
            if cohort:
                self._run_cohort(cohort)
                continue
            if self._all_done():
                return
            time.sleep(min(self.options.poll_seconds, GRACE_PERIOD / 3))

    def _init_progress(self) -> None:
        done = 0
        for unit in self.plan.all_units():
            study = self.study_for(unit)
            if study is not None:
                done += sum(
                    1
                    for t in study.get_trials(
                        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
                    )
                )
        if self.options.quiet:
            return
        from tqdm import tqdm

        self._progress = tqdm(
            total=self._total_slots(),
            initial=done,
            unit="trial",
            dynamic_ncols=True,
            desc=self.config.name,
            leave=False,
        )

    def _say(self, line: str) -> None:
        if self.options.quiet:
            return
        if self._progress is not None:
            self._progress.write(line)
        else:
            self.echo(line)

    def _fail_stale_trials(self) -> None:
        for unit in self.plan.all_units():
            study = self.study_for(unit)
            if study is not None:
                optuna.storages.fail_stale_trials(study)
        self._beat_parent()
        self._close_stale_invocations()

    def _beat_parent(self) -> None:
        if self.tracker is not None and self.parent_run_id is not None:
            self.tracker.set_tags(self.parent_run_id, {"redistill.heartbeat": f"{time.time():.0f}"})

    def _close_stale_invocations(self) -> None:
        """An invocation run whose worker died stops heartbeating: close it as KILLED."""
        assert self.tracker is not None
        now = time.time()
        running = self.tracker.runs(
            "tags.`redistill.role` = 'invocation' and attributes.status = 'RUNNING'"
        )
        for run in running:
            beat = float(run.data.tags.get("redistill.heartbeat", run.info.start_time / 1000))
            if run.info.run_id != self.parent_run_id and now - beat > GRACE_PERIOD:
                self.tracker.set_tags(
                    run.info.run_id, {"fail_reason": "worker stopped heartbeating"}
                )
                self.tracker.end_run(run.info.run_id, "KILLED")

    def _advance_phases(self) -> None:
        for unit in self.plan.dependent_units():
            existing = self.study_for(unit)
            if (existing is not None and existing.user_attrs.get("planned")) or (
                unit.name in self._skipped
            ):
                continue
            choice = self._dependent_choice(unit)
            if choice is None:
                continue
            if choice == "skip":
                self._skipped.add(unit.name)
                continue
            self.ensure_planned(unit, extra=choice)

    def _dependent_choice(self, unit: Unit) -> dict[str, Any] | str | None:
        """The setting a final/transfer unit evaluates; None while its searches still run;
        "skip" when they ended without a single completed trial."""
        searches = {}
        for source in self.plan.sources(unit):
            study = self.study_for(source)
            if study is None or not _phase_finished(study):
                return None
            searches[source.cell.pair.label] = study.get_trials(deepcopy=False)
        if unit.phase == "final":
            best = best_trial(next(iter(searches.values())))
            if best is None:
                return "skip"
            source_pair = unit.cell.pair.label
        else:
            picked = pick_transferred(searches)
            if picked is None:
                return "skip"
            source_pair, best = picked
        return {
            "hparams": json.dumps(best.user_attrs.get("hparams", {})),
            "source_pair": source_pair,
            "source_trial": best.number,
            "source_val_top1": best.value,
        }

    def _all_done(self) -> bool:
        for unit in self.plan.all_units():
            study = self.study_for(unit)
            if study is None:
                if unit.phase in ("final", "transfer") and self._dependent_choice(unit) == "skip":
                    continue
                return False
            if not _phase_finished(study):
                return False
        return True

    # --- claiming ----------------------------------------------------------------------

    def _claim_cohort(self) -> list[Claimed]:
        units_by_cell: dict[str, list[Unit]] = {}
        for unit in self.plan.all_units():
            units_by_cell.setdefault(unit.cell.label, []).append(unit)
        for cell in self.plan.cells:
            waiting: list[tuple[int, Unit, optuna.Study, FrozenTrial]] = []
            for unit in units_by_cell[cell.label]:
                study = self.study_for(unit)
                if study is None:
                    continue
                for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                    waiting.append((int(t.user_attrs.get("seed", 0)), unit, study, t))
            if not waiting:
                continue
            seed = min(w[0] for w in waiting)
            claimed: list[Claimed] = []
            for s, unit, study, frozen in waiting:
                if s != seed or len(claimed) >= self.cohort_size:
                    continue
                try:
                    ok = self.storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING)
                except UpdateFinishedTrialError:
                    ok = False
                if not ok:
                    continue  # another worker took it
                self.storage.record_heartbeat(frozen._trial_id)
                trial = optuna.Trial(study, frozen._trial_id)
                trial.set_user_attr("worker", self.worker_label)
                claimed.append(
                    Claimed(unit, study, trial, self._hparams(unit, trial, frozen), seed)
                )
            if claimed:
                return claimed
        return []

    def _hparams(self, unit: Unit, trial: optuna.Trial, frozen: FrozenTrial) -> dict[str, Any]:
        method = unit.method
        hparams = {**method.cls.defaults, **method.config.params}
        if unit.phase == "search":
            hparams.update(method.cls.suggest(trial))
        elif unit.phase in ("final", "transfer"):
            hparams.update(json.loads(frozen.user_attrs.get("hparams", "{}")))
        return hparams

    # --- training a cohort -------------------------------------------------------------

    def _cell(self, cell: Cell) -> CellTeacher:
        if cell.label not in self._cells:
            self._cells[cell.label] = prepare_cell(
                self.plan,
                cell,
                self.bundle,
                self.runtime,
                self.cache_dir,
                self.options.config_path.parent,
                self._say,
            )
        return self._cells[cell.label]

    def _run_cohort(self, cohort: list[Claimed]) -> None:
        heartbeat = _Heartbeat(
            self.storage, [c.trial._trial_id for c in cohort], on_beat=self._beat_parent
        )
        heartbeat.start()
        try:
            self._train_claimed(cohort)
        except BaseException as exc:
            self._release(cohort, exc)
            raise
        finally:
            heartbeat.stop()

    def _train_claimed(self, cohort: list[Claimed]) -> None:
        assert self.tracker is not None
        cell = cohort[0].unit.cell
        teacher = self._cell(cell)
        recipe = self.plan.student_recipe(cell.pair)
        members: list[Member] = []
        for c in cohort:
            method = c.unit.method.cls(**c.hparams)
            members.append(
                make_member(
                    c,
                    model_name=cell.pair.student.model,
                    model_args=cell.pair.student.args,
                    num_classes=self.bundle.num_classes,
                    seed=c.seed,
                    method=method,
                    recipe=recipe,
                    runtime=self.runtime,
                )
            )
            c.run_id = self.tracker.start_run(
                _run_name(c),
                params=self._run_params(c),
                parent_run_id=self.parent_run_id,
                tags={
                    "optuna.study": c.unit.name,
                    "optuna.trial_number": str(c.trial.number),
                    "phase": c.unit.phase,
                    "redistill.role": "trial",
                },
            )
            c.trial.set_user_attr("mlflow_run_id", c.run_id)
            c.trial.set_user_attr("hparams", c.hparams)
            self.tracker.log_metrics(c.run_id, teacher.metrics)

        def on_epoch_end(member: Member, epoch: int, stats: dict[str, float]) -> bool:
            c: Claimed = member.key
            self.tracker.log_metrics(c.run_id, stats, step=epoch)
            if c.unit.phase != "search":
                return True
            c.trial.report(stats["val/top1"], epoch)
            return not c.trial.should_prune()

        from ..training import train_cohort

        train_cohort(
            members,
            self.bundle,
            recipe,
            data_seed=cohort[0].seed,
            runtime=self.runtime,
            teacher=teacher.teacher_fn(),
            on_epoch_end=on_epoch_end,
            should_stop=lambda: self._stop_signal is not None,
        )
        for member in members:
            self._record(member, teacher)

    def _record(self, member: Member, teacher: CellTeacher) -> None:
        assert self.tracker is not None
        c: Claimed = member.key
        seconds = time.perf_counter() - c.started
        attrs: dict[str, Any] = {"worker": self.worker_label, "seconds": round(seconds, 2)}
        if member.outcome == "diverged":
            if member.history:
                self.tracker.log_metrics(c.run_id, member.history[-1], step=member.epochs_done - 1)
            c.trial.set_user_attr("fail_reason", member.reason)
            for k, v in attrs.items():
                c.trial.set_user_attr(k, v)
            c.study.tell(c.trial, state=TrialState.FAIL)
            self.tracker.set_tags(c.run_id, {"fail_reason": member.reason, "optuna.state": "FAIL"})
            self.tracker.end_run(c.run_id, "FAILED")
            self._finished_line(c, f"FAILED: {member.reason}")
            return
        if member.outcome == "stopped":
            c.study.tell(c.trial, state=TrialState.PRUNED)
            self.tracker.set_tags(c.run_id, {"optuna.state": "PRUNED"})
            self.tracker.end_run(c.run_id, "KILLED")
            self._finished_line(c, f"pruned after epoch {member.epochs_done}")
            return
        final = {"val/top1": member.history[-1]["val/top1"]}
        if c.unit.evaluates_test:
            logits, labels = predict(member.model, self.bundle, self.bundle.test, self.runtime)
            final.update(
                {f"test/{k}": v for k, v in classification_metrics(logits, labels).items()}
            )
        final.update(teacher.metrics)
        for key, value in {**attrs, **final}.items():
            c.trial.set_user_attr(key, value)
        self.tracker.log_metrics(c.run_id, final, step=member.epochs_done)
        c.study.tell(c.trial, final["val/top1"])
        self.tracker.set_tags(c.run_id, {"optuna.state": "COMPLETE"})
        self.tracker.end_run(c.run_id, "FINISHED")
        self.trained += 1
        test = f" test={final['test/top1']:.4f}" if "test/top1" in final else ""
        self._finished_line(c, f"val={final['val/top1']:.4f}{test}")

    def _finished_line(self, c: Claimed, outcome: str) -> None:
        if self._progress is not None:
            self._progress.update(1)
        self._say(
            f"{_run_name(c)} [{c.unit.phase}] {outcome} ({time.perf_counter() - c.started:.1f}s)"
        )

    def _release(self, cohort: list[Claimed], exc: BaseException) -> None:
        """Hand unfinished trials back: FAIL them with the reason and re-queue a copy."""
        assert self.tracker is not None
        interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
        reason = "interrupted" if interrupted else f"{type(exc).__name__}: {exc}"[:500]
        for c in cohort:
            frozen = self.storage.get_trial(c.trial._trial_id)
            if frozen.state.is_finished():
                continue
            c.trial.set_user_attr("fail_reason", reason)
            try:
                c.study.tell(c.trial, state=TrialState.FAIL)
            except (UpdateFinishedTrialError, ValueError):
                continue
            if interrupted:
                c.study.add_trial(
                    optuna.trial.create_trial(
                        state=TrialState.WAITING,
                        user_attrs=frozen.user_attrs,
                        system_attrs={**frozen.system_attrs, "failed_trial": frozen.number},
                    )
                )
            if c.run_id:
                self.tracker.set_tags(c.run_id, {"fail_reason": reason})
                self.tracker.end_run(c.run_id, "KILLED" if interrupted else "FAILED")

    def _close_stale_run(self, trial: FrozenTrial) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id and self.tracker is not None:
            try:
                self.tracker.set_tags(run_id, {"fail_reason": "worker stopped heartbeating"})
                self.tracker.end_run(run_id, "KILLED")
            except Exception:  # the run may be gone or already closed; the retry matters more
                pass

    def _run_params(self, c: Claimed) -> dict[str, Any]:
        cell = c.unit.cell
        params: dict[str, Any] = {
            "pair": cell.pair.label,
            "teacher": cell.pair.teacher.model,
            "student": cell.pair.student.model,
            "dataset": self.config.dataset.name,
            "method": c.unit.method.name,
            "seed": c.seed,
            "phase": c.unit.phase,
            "cell": cell.label,
            **cell.noise.params(),
        }
        if "lam" in c.hparams:
            params["lam"] = c.hparams["lam"]
        params.update({f"hp.{k}": v for k, v in c.hparams.items()})
        return params

    # --- signals -----------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None:  # a second signal: stop right now
                raise KeyboardInterrupt
            # First signal: finish the current optimiser step, then re-queue and exit.
            self._stop_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    def _restore_signal_handlers(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _phase_finished(study: optuna.Study) -> bool:
    planned = study.user_attrs.get("planned")
    if not planned:
        return False
    trials = study.get_trials(deepcopy=False)
    if any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in trials):
        return False
    return True


def _run_name(c: Claimed) -> str:
    cell = c.unit.cell
    return f"{cell.pair.label} / {c.unit.method.name} / {cell.noise.label} / seed {c.seed}" + (
        f" / t{c.trial.number}" if c.unit.phase == "search" else ""
    )


class _Heartbeat:
    """Records a heartbeat for each trial of the cohort while it trains."""

    def __init__(
        self, storage: Any, trial_ids: list[int], on_beat: Callable[[], None] | None = None
    ) -> None:
        self.storage, self.trial_ids, self.on_beat = storage, trial_ids, on_beat
        self.interval = storage.get_heartbeat_interval() or 5
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="trial-heartbeat")

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:  # a transient database error must not kill training
                for trial_id in self.trial_ids:
                    self.storage.record_heartbeat(trial_id)
                if self.on_beat is not None:
                    self.on_beat()
            except Exception:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
