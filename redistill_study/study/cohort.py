"""Training one claimed cohort: build a member per trial, train them together on one data
stream and one teacher pass, score each, and record each outcome in both stores."""

from __future__ import annotations

from collections.abc import Callable

from ..data import DataBundle
from ..training import Member, Runtime, make_member, predict, train_cohort
from ..training.metrics import classification_metrics
from .cell import CellTeacher
from .plan import Plan
from .queue import Claimed
from .recorder import Recorder


def train_claimed(
    cohort: list[Claimed],
    teacher: CellTeacher,
    plan: Plan,
    bundle: DataBundle,
    runtime: Runtime,
    recorder: Recorder,
    should_stop: Callable[[], bool],
) -> None:
    cell = cohort[0].unit.cell
    recipe = plan.student_recipe(cell.pair)
    label = plan.teacher_label(cell.pair)
    members: list[Member] = []
    for c in cohort:
        members.append(
            make_member(
                c,
                model_name=cell.pair.student.model,
                model_args=cell.pair.student.args,
                num_classes=bundle.num_classes,
                seed=c.seed,
                method=c.unit.method.cls(**c.hparams),
                recipe=recipe,
                runtime=runtime,
            )
        )
        recorder.start(c, label, teacher.metrics)

    def on_epoch_end(member: Member, epoch: int, stats: dict[str, float]) -> bool:
        return recorder.epoch(member.key, epoch, stats)

    train_cohort(
        members,
        bundle,
        recipe,
        data_seed=cohort[0].seed,
        runtime=runtime,
        teacher=teacher.teacher_fn(),
        on_epoch_end=on_epoch_end,
        should_stop=should_stop,
    )
    for member in members:
        c: Claimed = member.key
        if member.outcome == "diverged":
            last = member.history[-1] if member.history else None
            recorder.diverged(c, member.reason, last, member.epochs_done)
        elif member.outcome == "stopped":
            recorder.pruned(c, member.epochs_done)
        else:
            metrics = {"val/top1": member.history[-1]["val/top1"]}
            if c.unit.evaluates_test:
                logits, labels = predict(member.model, bundle, bundle.test, runtime)
                scores = classification_metrics(logits, labels)
                metrics.update({f"test/{k}": v for k, v in scores.items()})
            metrics.update(teacher.metrics)
            recorder.complete(c, metrics, member.epochs_done)
