"""The cohort trainer: K students trained in lockstep on one data stream, each taught by its
cell's teacher (one teacher pass per distinct teacher and batch).

Every member owns its model, optimiser, loss method and RNG state; the batch order and the
augmentation are a function of (data seed, epoch) only. A member's result is therefore identical
to training it alone with the same seeds, and a cohort of one is the ordinary case. Members can
leave early (pruned, or diverged to NaN/inf) without disturbing the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..data import DataBundle, iterate_batches
from ..data.base import Split
from ..losses import Context, Method
from ..models import create_model
from .runtime import Runtime

# Called after every epoch with the member, the 0-based epoch and its stats (mean loss terms,
# "train/loss", "val/top1"); returns False to stop that member (e.g. pruned).
EpochCallback = Callable[["Member", int, dict[str, float]], bool]
# The teacher's (noisy) logits for a training batch: (indices, inputs, labels) → logits.
TeacherFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Member:
    key: Any
    model: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    base_lr: float
    rng_state: torch.Tensor
    cuda_rng_state: torch.Tensor | None = None
    forward: nn.Module | None = None  # the compiled model, if any
    teacher: TeacherFn | None = None  # this member's own teacher (else the cohort's)
    active: bool = True
    outcome: str = "running"  # running → complete | stopped | diverged
    reason: str = ""
    epochs_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def seeded_model(
    name: str, num_classes: int, seed: int, args: dict[str, Any] | None = None
) -> nn.Module:
    """A model whose initial weights depend on ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_model(name, num_classes=num_classes, **(args or {}))


def make_optimizer(model: nn.Module, recipe: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and norm parameters (one-dimensional tensors).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov
        )
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    return torch.optim.AdamW(groups, lr=recipe.lr)


def learning_rate(recipe: TrainConfig, base_lr: float, epoch: int) -> float:
    """The learning rate of 0-based ``epoch`` under the recipe's schedule and warm-up."""
    if recipe.schedule == "step":
        lr = base_lr * recipe.gamma ** sum(1 for m in recipe.milestones if epoch >= m)
    elif recipe.schedule == "cosine":
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / recipe.epochs))
    else:
        lr = base_lr
    if recipe.warmup_epochs and epoch < recipe.warmup_epochs:
        lr *= (epoch + 1) / (recipe.warmup_epochs + 1)
    return lr


def make_member(
    key: Any,
    *,
    model_name: str,
    model_args: dict[str, Any] | None,
    num_classes: int,
    seed: int,
    method: Method,
    recipe: TrainConfig,
    runtime: Runtime,
    teacher: TeacherFn | None = None,
) -> Member:
    model = runtime.prepare_model(seeded_model(model_name, num_classes, seed, model_args))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 104_729)
        rng_state = torch.get_rng_state()
    cuda_state = None
    if runtime.device.type == "cuda":
        gen = torch.Generator(device=runtime.device).manual_seed(seed + 104_729)
        cuda_state = gen.get_state()
    return Member(
        key=key,
        model=model,
        method=method,
        optimizer=make_optimizer(model, recipe),
        base_lr=recipe.lr,
        rng_state=rng_state,
        cuda_rng_state=cuda_state,
        forward=runtime.maybe_compile(model),
        teacher=teacher,
    )


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
    from .engines import make_engine

    engine = make_engine(members, bundle, runtime, vectorize, width)
    epochs = recipe.epochs if stop_after is None else min(stop_after, recipe.epochs)
    subset = bundle.train_subset(recipe.subset)
    labels_override = train_labels.to(runtime.device) if train_labels is not None else None
    for epoch in range(epochs):
        active = [m for m in members if m.active]
        if not active:
            break
        engine.begin_epoch(active, recipe, epoch)
        sums: dict[int, dict[str, torch.Tensor]] = {id(m): {} for m in active}
        batches = 0
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
            engine.step(active, x, y, _teacher_logits(active, teacher, idx, x, y), context, sums)
            batches += 1
        due = (epoch + 1) % recipe.val_every == 0 or epoch + 1 == recipe.epochs
        finite = []
        for m in active:
            stats = {k: float(v) / max(batches, 1) for k, v in sums[id(m)].items()}
            stats["train/loss"] = sum(stats.values())
            m.epochs_done = epoch + 1
            problem = _loss_problem(stats) or engine.weights_problem(m)
            if problem:
                m.history.append(stats)  # the blown-up losses, for the record
                m.active, m.outcome, m.reason = False, "diverged", f"epoch {epoch + 1}: {problem}"
                continue
            m.history.append(stats)
            finite.append(m)
        if evaluate_val and due and finite:
            for m, accuracy in zip(finite, engine.validate(finite)):
                m.history[-1]["val/top1"] = accuracy
        for m in finite:
            if on_epoch_end is not None and not on_epoch_end(m, epoch, m.history[-1]):
                m.active, m.outcome = False, "stopped"
    engine.finish(members)
    for m in members:
        if m.active:
            m.active, m.outcome = False, "complete"
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


def _loss_problem(stats: dict[str, float]) -> str:
    bad = [k for k, v in stats.items() if not math.isfinite(v)]
    return f"non-finite loss ({', '.join(f'{k}={stats[k]}' for k in bad)})" if bad else ""


@torch.inference_mode()
def predict(
    model: nn.Module, bundle: DataBundle, split: Split, runtime: Runtime, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32, CPU) and labels of ``split`` in index order, no augmentation."""
    was_training = model.training
    model.eval()
    outs, labels = [], []
    for _, x, y in iterate_batches(bundle, split, batch_size=batch_size, device=runtime.device):
        with runtime.autocast():
            outs.append(model(runtime.prepare_input(x)).float().cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(outs), torch.cat(labels)
