"""The cohort trainer: K students trained in lockstep on one data stream, each taught by its
cell's teacher (one teacher pass per distinct teacher and batch).

Every member owns its model, optimiser, loss method and RNG state; the batch order and the
augmentation are a function of (data seed, epoch) only. With the one-by-one engine a member's
result is identical to training it alone with the same seeds; the vectorised engine agrees up to
float round-off (:mod:`.engines`). Members can leave early (pruned, or diverged to NaN/inf)
without disturbing the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..config import TrainConfig
from ..data import DataBundle, iterate_batches
from ..losses import Context
from .engines import Engine, make_engine
from .gradients import epoch_stats, first_blow_up
from .members import Member, Outcome, TeacherFn
from .runtime import Runtime

# Called after every epoch with the member, the 0-based epoch and its stats (mean loss terms,
# "train/loss", "val/top1"); returns False to stop that member (e.g. pruned).
EpochCallback = Callable[[Member, int, dict[str, float]], bool]


def train_cohort(
    members: Sequence[Member],
    bundle: DataBundle,
    recipe: TrainConfig,
    *,
    data_seed: int,
    runtime: Runtime,
    teacher: TeacherFn | None = None,
    on_epoch_end: EpochCallback | None = None,
    train_labels: torch.Tensor | None = None,
    stop_after: int | None = None,
    evaluate_val: bool = True,
    should_stop: Callable[[], bool] | None = None,
    vectorize: bool = True,
    width: int | None = None,
) -> str:
    """Train ``members`` together for ``recipe.epochs`` epochs (or ``stop_after``); return
    the engine used: ``vectorised`` (one wide model of ``width`` slots, default one per
    member) or ``sequential`` (see :mod:`.engines`).

    ``should_stop`` is polled before every batch; when it returns True the cohort stops with
    KeyboardInterrupt, between two optimiser steps.
    """
    engine = make_engine(members, bundle, runtime, vectorize, width)
    epochs = recipe.epochs if stop_after is None else min(stop_after, recipe.epochs)
    subset = bundle.train_subset(recipe.subset)
    labels_override = train_labels.to(runtime.device) if train_labels is not None else None
    steps_done = steps_in_epoch = 0  # optimiser steps before this epoch, and in it
    for epoch in range(epochs):
        active = [m for m in members if m.active]
        if not active:
            break
        engine.begin_epoch(active, recipe, epoch)
        steps_done += steps_in_epoch
        steps_in_epoch = 0
        context = Context(epoch=epoch, total_epochs=recipe.epochs, num_classes=bundle.num_classes)
        for idx, x, y in iterate_batches(
            bundle,
            bundle.train,
            batch_size=recipe.batch_size,
            device=runtime.device,
            seed=data_seed,
            epoch=epoch,
            augment=True,
            subset=subset,
        ):
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt  # a stop was requested: the caller re-queues the trials
            if labels_override is not None:
                y = labels_override[idx]
            x = runtime.prepare_input(x)
            engine.step(active, x, y, _teacher_logits(active, teacher, idx, x, y), context)
            steps_in_epoch += 1
        due = (epoch + 1) % recipe.val_every == 0 or epoch + 1 == recipe.epochs
        finite = []
        for m in active:
            stats = engine.epoch_terms(m)
            stats["train/loss"] = sum(stats.values())
            m.epochs_done = epoch + 1
            problem = _loss_problem(stats) or engine.weights_problem(m)
            norms = engine.grad_norms(m)
            stats.update(epoch_stats(norms))
            if problem:
                before = m.history[-1].get("train/grad_norm_last") if m.history else None
                m.divergence = _divergence(engine, m, norms, epoch, steps_done, before)
                m.history.append(stats)  # the blown-up losses, for the record
                m.active, m.outcome = False, Outcome.DIVERGED
                m.reason = f"epoch {epoch + 1}: {problem}"
                continue
            m.history.append(stats)
            finite.append(m)
        if evaluate_val and due and finite:
            for m, accuracy in zip(finite, engine.validate(finite)):
                m.history[-1]["val/top1"] = accuracy
        for m in finite:
            if on_epoch_end is not None and not on_epoch_end(m, epoch, m.history[-1]):
                m.active, m.outcome = False, Outcome.PRUNED
    engine.finish(members)
    for m in members:
        if m.active:
            m.active, m.outcome = False, Outcome.COMPLETE
    return engine.name


def _teacher_logits(
    active: Sequence[Member], shared: TeacherFn | None, idx, x, y
) -> dict[int, torch.Tensor | None]:
    """Each member's teacher logits for the batch; one pass per distinct teacher."""
    computed: dict[int, torch.Tensor | None] = {}
    out = {}
    for m in active:
        fn = m.teacher or shared
        if id(fn) not in computed:
            computed[id(fn)] = fn(idx, x, y) if fn is not None else None
        out[id(m)] = computed[id(fn)]
    return out


def _divergence(
    engine: Engine,
    m: Member,
    norms: list[torch.Tensor],
    epoch: int,
    steps_before: int,
    last_before: float | None,
) -> dict[str, float | int | str]:
    """Where a diverged member blew up: the optimiser step (counted from the start, 1-based)
    whose gradient was first non-finite, its epoch, the last finite gradient norm before it
    (the previous epoch's last when it was this epoch's first step), and the loss terms that
    were non-finite at that step ("gradient" when only the gradient was)."""
    found = first_blow_up(norms)
    step, last = found if found is not None else (len(norms) - 1, float("nan"))
    if step == 0 and last_before is not None:
        last = last_before
    at = engine.terms_at(m, step)
    terms = [k.removeprefix("train/") for k, v in at.items() if not math.isfinite(v)]
    return {
        "step": steps_before + step + 1,
        "epoch": epoch + 1,
        "last_finite_grad_norm": last,
        "overflowed": ",".join(terms) or ("gradient" if found is not None else "weights"),
    }


def _loss_problem(stats: dict[str, float]) -> str:
    bad = [k for k, v in stats.items() if not math.isfinite(v)]
    return f"non-finite loss ({', '.join(f'{k}={stats[k]}' for k in bad)})" if bad else ""
