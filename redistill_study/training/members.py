"""A cohort member: one student with its own model, optimiser, loss method and RNG state; how
members are made, the learning-rate schedule, and prediction on a split."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..data import DataBundle, iterate_batches
from ..data.base import Split
from ..losses import Method
from ..models import create_model
from .runtime import Runtime

# The teacher's (noisy) logits for a training batch: (indices, inputs, labels) → logits.
TeacherFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Outcome(str, Enum):
    """How a member's training ended (``RUNNING`` until it has): a ``str``, so it compares
    equal to, and prints as, its value."""

    RUNNING = "running"
    COMPLETE = "complete"
    DIVERGED = "diverged"  # non-finite losses or weights
    PRUNED = "pruned"  # stopped by the epoch callback (the pruner): recorded as pruned

    def __str__(self) -> str:
        return self.value


@dataclass
class Member:
    key: Any
    model: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    base_lr: float
    rng_state: torch.Tensor
    grad_clip: float | None = None  # this member's maximum gradient norm (None: no clipping)
    cuda_rng_state: torch.Tensor | None = None
    forward: nn.Module | None = None  # the compiled model, if any
    teacher: TeacherFn | None = None  # this member's own teacher (else the cohort's)
    active: bool = True
    outcome: Outcome = Outcome.RUNNING  # running → complete | pruned | diverged
    reason: str = ""
    epochs_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    # Where a diverged member blew up (see trainer._divergence); empty otherwise.
    divergence: dict[str, float | int | str] = field(default_factory=dict)


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
        grad_clip=recipe.grad_clip,
        cuda_rng_state=cuda_state,
        forward=runtime.maybe_compile(model),
        teacher=teacher,
    )


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
