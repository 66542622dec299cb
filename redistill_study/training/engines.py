"""How a cohort's optimiser steps run: one member after another, or all at once.

``SequentialEngine`` (:mod:`.sequential`) steps each member's own model and optimiser in turn
(any architecture, exact per-member RNG streams). ``VectorisedEngine`` (:mod:`.vectorised`)
trains the members as one wide model (:mod:`.stacked`): one forward; the members whose methods
share the soft-target shape get their losses from one fused pass over all slots
(``losses/fused.py``), the others from their own slice and method; one backward and one
optimiser step over the stacked weights. The two agree up to float round-off (grouped
convolutions, batched matrix products and the fused loss sum in another order); the test suite
pins the tolerance. A cohort falls back to the sequential engine when the members differ in
architecture or learning rate, when a layer draws random numbers (dropout), or when the wide
model does not reproduce the members' forward pass.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol

import torch

from ..config import TrainConfig
from ..data import DataBundle
from ..losses import Context
from .members import Member
from .runtime import Runtime
from .sequential import SequentialEngine, top1
from .stacked import stack_models
from .vectorised import VectorisedEngine

__all__ = ["Engine", "SequentialEngine", "VectorisedEngine", "make_engine", "top1"]


class Engine(Protocol):
    name: str

    def begin_epoch(self, active: Sequence[Member], recipe: TrainConfig, epoch: int) -> None: ...
    def step(
        self,
        active: Sequence[Member],
        x: torch.Tensor,
        y: torch.Tensor,
        teacher_logits: dict[int, torch.Tensor | None],
        context: Context,
    ) -> None: ...
    def epoch_terms(self, m: Member) -> dict[str, float]: ...
    def grad_norms(self, m: Member) -> list[torch.Tensor]: ...
    def terms_at(self, m: Member, step: int) -> dict[str, float]: ...
    def weights_problem(self, m: Member) -> str: ...
    def validate(self, members: Sequence[Member]) -> list[float]: ...
    def finish(self, members: Sequence[Member]) -> None: ...


def make_engine(
    members: Sequence[Member],
    bundle: DataBundle,
    runtime: Runtime,
    vectorize: bool,
    width: int | None = None,
) -> Engine:
    """The vectorised engine where it applies, else the sequential one.

    ``width`` fixes the number of slots of the wide model (spare slots compute and are
    ignored): a member's numbers then depend on its own trial and the width only, not on which
    other trials shared its cohort, so results are the same whatever the cohort's make-up."""
    slots = max(width or len(members), len(members))
    if vectorize and slots > 1 and _compatible(members):
        models = [m.model for m in members]
        models += [copy.deepcopy(models[0]) for _ in range(slots - len(members))]
        wide = stack_models(models, bundle.input_shape)
        if wide is not None:
            return VectorisedEngine(members, wide, bundle, runtime)
    return SequentialEngine(bundle, runtime)


def _compatible(members: Sequence[Member]) -> bool:
    first = members[0]
    shapes = [tuple(p.shape) for p in first.model.parameters()]
    return all(
        type(m.model) is type(first.model)
        and m.base_lr == first.base_lr
        and type(m.optimizer) is type(first.optimizer)
        and [tuple(p.shape) for p in m.model.parameters()] == shapes
        for m in members
    )
