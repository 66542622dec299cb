"""Training one claimed cohort: build a member per trial (each taught by its own cell's
teacher), train them together on one data stream, score each, and record each outcome in both
stores."""

from __future__ import annotations

from collections.abc import Callable

from ..data import DataBundle
from ..metrics import classification_metrics
from ..training import Member, Runtime, make_member, predict, train_cohort
from ..training.members import Outcome
from .cell import CellTeacher
from .plan import Cell, Plan
from .queue import Claimed
from .recorder import Recorder


def train_claimed(
    cohort: list[Claimed],
    teachers: Callable[[Cell], CellTeacher],
    plan: Plan,
    bundle: DataBundle,
    runtime: Runtime,
    recorder: Recorder,
    should_stop: Callable[[], bool],
) -> str:
    """Train, score and record ``cohort``; return the engine that trained it."""
    # The same for the whole cohort but the gradient clip, which each member applies itself.
    recipe = plan.cell_recipe(cohort[0].unit.cell)
    members: list[Member] = []
    for c in cohort:
        cell = c.unit.cell
        teacher = teachers(cell)
        members.append(
            make_member(
                c,
                model_name=cell.pair.student.model,
                model_args=cell.pair.student.args,
                num_classes=bundle.num_classes,
                seed=c.seed,
                method=c.unit.method.cls(**c.hparams),
                recipe=plan.cell_recipe(cell),
                runtime=runtime,
                teacher=teacher.teacher_fn(),
            )
        )
        seed = None if cell.pair.teacher.checkpoint else plan.teacher_seed(cell.pair)
        recorder.start(c, plan.teacher_label(cell.pair), teacher.metrics, seed)

    def on_epoch_end(member: Member, epoch: int, stats: dict[str, float]) -> bool:
        return recorder.epoch(member.key, epoch, stats)

    engine = train_cohort(
        members,
        bundle,
        recipe,
        data_seed=cohort[0].seed,
        runtime=runtime,
        on_epoch_end=on_epoch_end,
        should_stop=should_stop,
        vectorize=plan.config.vectorize,
    )
    recorder.engine = engine
    for member in members:
        c = member.key
        if member.outcome is Outcome.DIVERGED:
            last = member.history[-1] if member.history else None
            recorder.diverged(c, member.reason, last, member.epochs_done, member.divergence)
        elif member.outcome is Outcome.PRUNED:
            recorder.pruned(c, member.epochs_done)
        else:
            metrics = {"val/top1": member.history[-1]["val/top1"]}
            peaks = [h["train/grad_norm_max"] for h in member.history if "train/grad_norm_max" in h]
            if peaks:  # the largest gradient norm of any step (before clipping)
                metrics["train/grad_norm_peak"] = max(peaks)
            if c.unit.evaluates_test:
                logits, labels = predict(member.model, bundle, bundle.test, runtime)
                scores = classification_metrics(logits, labels)
                metrics.update({f"test/{k}": v for k, v in scores.items()})
            metrics.update(teachers(c.unit.cell).metrics)
            recorder.complete(c, metrics, member.epochs_done)
    return engine
