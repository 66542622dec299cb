"""One place that writes a trial to both stores: its MLflow run and its Optuna trial.

Outcomes, the same in both stores:
- complete: Optuna COMPLETE (value val/top1), MLflow FINISHED, test metrics for evaluations;
- diverged: the loss or the weights became NaN/inf. Optuna COMPLETE at chance accuracy (1/C)
  with ``status: diverged`` and the reason, so the sampler learns to avoid the region and the
  verdict counts the run at chance; MLflow FAILED with ``fail_reason``;
- pruned: Optuna PRUNED, MLflow KILLED;
- released (interrupted, crashed): Optuna FAIL with the reason (re-queued when interrupted),
  MLflow KILLED or FAILED.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from ..tracking import Tracker
from .attrs import Attempt, Ending
from .phases import Phase, Status
from .queue import Claimed


def run_name(c: Claimed) -> str:
    """Unique and readable: ``pair / method / noise / recipe / seed N / phase`` (+ trial in a
    search)."""
    cell = c.unit.cell
    name = (
        f"{cell.pair.label} / {c.unit.method.name} / {cell.noise.label} / {cell.recipe.name} / "
        f"seed {c.seed} / {c.unit.phase.value}"
    )
    if c.unit.phase is Phase.SEARCH:
        return f"{name} t{c.number}"
    return name + (f" (retry of t{c.retry_of})" if c.retry_of is not None else "")


class Recorder:
    def __init__(
        self,
        tracker: Tracker,
        parent_run_id: str,
        worker: str,
        dataset: str,
        num_classes: int,
        say: Callable[..., None],
        data_digest: str = "",
        data_source: str = "",
    ) -> None:
        self.tracker, self.parent_run_id, self.worker = tracker, parent_run_id, worker
        self.dataset, self.num_classes, self.say = dataset, num_classes, say
        self.data_digest, self.data_source = data_digest, data_source
        self.trained = 0
        self.engine = ""  # how the current cohort was trained: vectorised or sequential
        # Per-epoch metrics wait here and reach MLflow in one write when the run ends: one
        # round-trip per run instead of one per epoch. A run whose worker dies loses its
        # curves, not its result: the trial is re-queued and trained again.
        self._epochs: dict[str, list[tuple[int, dict[str, float]]]] = {}

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes

    def start(
        self,
        c: Claimed,
        teacher_label: str,
        teacher_metrics: dict[str, float],
        teacher_seed: int | None = None,
    ) -> None:
        """Open the trial's MLflow run; ``teacher_seed`` is None for a teacher from a file."""
        params = self._params(c, teacher_label)
        if teacher_seed is not None:
            params["teacher.seed"] = teacher_seed
        c.run_id = self.tracker.start_run(
            run_name(c),
            params=params,
            parent_run_id=self.parent_run_id,
            tags={
                "optuna.study": c.unit.name,
                "optuna.trial_number": str(c.number),
                "phase": c.unit.phase.value,
                "redistill.role": "trial",
            },
        )
        attempt = Attempt(c.run_id, c.hparams, teacher_label, self.num_classes)
        try:
            for key, value in attempt.to_user_attrs().items():
                c.trial.set_user_attr(key, value)
        except UpdateFinishedTrialError:
            pass  # failed as stale meanwhile: its outcome is refused at the end (_settle)
        self._epochs[c.run_id] = [(0, dict(teacher_metrics))]
        if self.data_digest:
            self.tracker.log_dataset(
                c.run_id, self.dataset, self.data_digest, self.data_source, "training"
            )

    def _params(self, c: Claimed, teacher_label: str) -> dict[str, Any]:
        cell = c.unit.cell
        params: dict[str, Any] = {
            "pair": cell.pair.label,
            "teacher": cell.pair.teacher.model,
            "teacher.id": teacher_label,
            "student": cell.pair.student.model,
            "dataset": self.dataset,
            "method": c.unit.method.name,
            "method.registered": c.unit.method.cls.name,
            "seed": c.seed,
            "phase": c.unit.phase.value,
            "cell": cell.label,
            "recipe": cell.recipe.name,
            **{f"recipe.{k}": v for k, v in cell.recipe.overrides.items()},
            **cell.noise.params(),
        }
        if cell.recipe.lr_scale != 1:
            params["recipe.lr_scale"] = cell.recipe.lr_scale
        if "lam" in c.hparams:
            params["lam"] = c.hparams["lam"]
        params.update({f"hp.{k}": v for k, v in c.hparams.items()})
        return params

    def epoch(self, c: Claimed, epoch: int, stats: dict[str, float]) -> bool:
        """Log an epoch; in a search, report to the pruner. False: prune this trial."""
        self._epochs.setdefault(c.run_id, []).append((epoch, dict(stats)))
        if c.unit.phase is not Phase.SEARCH or "val/top1" not in stats:
            return True
        try:
            c.trial.report(stats["val/top1"], epoch)
        except UpdateFinishedTrialError:
            return False  # superseded (see _settle): stop training it
        return not c.trial.should_prune()

    def _ending(self, c: Claimed, status: Status, **details: Any) -> Ending:
        seconds = round(time.perf_counter() - c.started, 2)
        return Ending(status, self.engine, self.worker, seconds, **details)

    def _flush(self, c: Claimed, final: dict[str, float] | None = None, step: int = 0) -> None:
        steps = self._epochs.pop(c.run_id, [])
        if final:
            steps.append((step, final))
        if steps:
            self.tracker.log_metric_steps(c.run_id, steps)

    def _settle(
        self,
        c: Claimed,
        ending: Ending,
        value: float | None = None,
        state: TrialState = TrialState.COMPLETE,
    ) -> bool:
        """Write the outcome to the trial; False if it was no longer this worker's: another
        worker failed it as stale (this one was silent for a grace period) and queued its
        copy, which stands. Its MLflow run is closed as superseded."""
        try:
            for key, value_ in ending.to_user_attrs().items():
                c.trial.set_user_attr(key, value_)
            if state is TrialState.COMPLETE:
                c.study.tell(c.trial, value)
            else:
                c.study.tell(c.trial, state=state)
        except (UpdateFinishedTrialError, ValueError) as exc:
            # Optuna says "Cannot tell a FAIL trial" when the failure landed between the
            # attributes and the tell; any other ValueError is a real one.
            if isinstance(exc, ValueError) and "Cannot tell" not in str(exc):
                raise
            reason = "superseded: failed as stale by another worker, which queued a retry"
            self.tracker.set_tags(c.run_id, {"fail_reason": reason})
            self.tracker.end_run(c.run_id, "KILLED")
            self._line(c, reason)
            return False
        return True

    def complete(self, c: Claimed, metrics: dict[str, float], epochs: int) -> None:
        self._flush(c, metrics, epochs)
        ending = self._ending(c, Status.COMPLETE, metrics=metrics)
        if not self._settle(c, ending, metrics["val/top1"]):
            return
        self.tracker.set_tags(c.run_id, {"optuna.state": "COMPLETE", "status": "complete"})
        self.tracker.end_run(c.run_id, "FINISHED")
        self.trained += 1
        test = f" test={metrics['test/top1']:.4f}" if "test/top1" in metrics else ""
        self._line(c, f"val={metrics['val/top1']:.4f}{test}")

    def diverged(
        self,
        c: Claimed,
        reason: str,
        last: dict[str, float] | None,
        epochs: int,
        where: dict[str, float | int | str] | None = None,
    ):
        """``where``: the step, epoch, last finite gradient norm and the loss terms that
        overflowed (as ``divergence.*`` in both stores)."""
        self._flush(c, last, max(epochs - 1, 0))
        ending = self._ending(
            c, Status.DIVERGED, reason=reason, chance=self.chance, divergence=where or {}
        )
        if not self._settle(c, ending, self.chance):
            return
        located = {f"divergence.{k}": v for k, v in (where or {}).items()}
        self.tracker.set_tags(
            c.run_id,
            {
                "fail_reason": reason,
                "optuna.state": "COMPLETE",
                "status": "diverged",
                **located,
            },
        )
        self.tracker.end_run(c.run_id, "FAILED")
        self.trained += 1
        self._line(c, f"DIVERGED, scored at chance: {reason}")

    def pruned(self, c: Claimed, epochs: int) -> None:
        self._flush(c)
        if not self._settle(c, self._ending(c, Status.PRUNED), state=TrialState.PRUNED):
            return
        self.tracker.set_tags(c.run_id, {"optuna.state": "PRUNED", "status": "pruned"})
        self.tracker.end_run(c.run_id, "KILLED")
        self._line(c, f"pruned after epoch {epochs}")

    def released(self, c: Claimed, reason: str, interrupted: bool) -> None:
        if c.run_id:
            self._flush(c)
            self.tracker.set_tags(c.run_id, {"fail_reason": reason})
            self.tracker.end_run(c.run_id, "KILLED" if interrupted else "FAILED")

    def _line(self, c: Claimed, outcome: str) -> None:
        self.say(f"{run_name(c)}: {outcome} ({time.perf_counter() - c.started:.1f}s)", done=1)


def close_stale_run(tracker: Tracker, run_id: str | None) -> None:
    """A worker died holding this run: close it (the trial itself is re-queued)."""
    if not run_id:
        return
    try:
        tracker.set_tags(run_id, {"fail_reason": "worker stopped heartbeating"})
        tracker.end_run(run_id, "KILLED")
    except Exception:  # the run may be gone or already closed; the retry matters more
        pass
