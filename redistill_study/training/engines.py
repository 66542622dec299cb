"""How a cohort's optimiser steps run: one member after another, or all at once.

``SequentialEngine`` steps each member's own model and optimiser in turn (any architecture,
exact per-member RNG streams). ``VectorisedEngine`` trains the members as one wide model
(:mod:`.stacked`): one forward, each member's loss from its own slice with its own method, one
backward and one optimiser step over the stacked weights. The two agree up to float round-off
(grouped convolutions and batched matrix products sum in another order); the test suite pins
the tolerance. A cohort falls back to the sequential engine when the members differ in
architecture or learning rate, when a layer draws random numbers (dropout), or when the wide
model does not reproduce the members' forward pass.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol

import torch

from ..config import TrainConfig
from ..data import DataBundle, iterate_batches
from ..losses import Context
from ..metrics import classification_metrics
from .members import Member, learning_rate, predict
from .runtime import Runtime
from .stacked import StackedModel, stack_models


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
        sums: dict[int, dict[str, list[torch.Tensor]]],
    ) -> None: ...
    def weights_problem(self, m: Member) -> str: ...
    def validate(self, members: Sequence[Member]) -> list[float]: ...
    def finish(self, members: Sequence[Member]) -> None: ...


def _accumulate(sums: dict[str, list[torch.Tensor]], terms: dict[str, torch.Tensor]) -> None:
    # Kept per step and summed once per epoch: no tensor op per term per step.
    for name, value in terms.items():
        sums.setdefault(f"train/{name}", []).append(value.detach())


class SequentialEngine:
    name = "sequential"

    def __init__(self, bundle: DataBundle, runtime: Runtime) -> None:
        self.bundle, self.runtime = bundle, runtime

    def begin_epoch(self, active: Sequence[Member], recipe: TrainConfig, epoch: int) -> None:
        for m in active:
            lr = learning_rate(recipe, m.base_lr, epoch)
            for group in m.optimizer.param_groups:
                group["lr"] = lr
            m.model.train()

    def step(self, active, x, y, teacher_logits, context, sums) -> None:
        rt = self.runtime
        for m in active:
            torch.set_rng_state(m.rng_state)
            if m.cuda_rng_state is not None:
                torch.cuda.set_rng_state(m.cuda_rng_state, rt.device)
            with rt.autocast():
                student_logits = (m.forward or m.model)(x)
            terms = m.method(student_logits, teacher_logits[id(m)], y, context)
            loss = sum(terms.values())
            m.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            m.optimizer.step()
            _accumulate(sums[id(m)], terms)
            m.rng_state = torch.get_rng_state()
            if m.cuda_rng_state is not None:
                m.cuda_rng_state = torch.cuda.get_rng_state(rt.device)

    def weights_problem(self, m: Member) -> str:
        for name, p in m.model.named_parameters():
            if not torch.isfinite(p).all():
                return f"non-finite weights in {name}"
        return ""

    def validate(self, members: Sequence[Member]) -> list[float]:
        out = []
        for m in members:
            logits, labels = predict(m.model, self.bundle, self.bundle.val, self.runtime)
            out.append(classification_metrics(logits, labels)["top1"])
        return out

    def finish(self, members: Sequence[Member]) -> None:
        pass


class VectorisedEngine:
    name = "vectorised"

    def __init__(
        self, members: Sequence[Member], wide: StackedModel, bundle: DataBundle, runtime: Runtime
    ) -> None:
        self.members, self.bundle, self.runtime = list(members), bundle, runtime
        self.wide = runtime.prepare_model(wide)
        self.forward = runtime.maybe_compile(self.wide)
        self.slot = {id(m): k for k, m in enumerate(members)}
        self.base_lr = members[0].base_lr
        self.optimizer = _wide_optimizer(self.wide, members[0])

    def begin_epoch(self, active: Sequence[Member], recipe: TrainConfig, epoch: int) -> None:
        lr = learning_rate(recipe, self.base_lr, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.wide.train()

    def step(self, active, x, y, teacher_logits, context, sums) -> None:
        with self.runtime.autocast():
            logits = self.forward(x).unbind(0)  # K × (B, C); one backward node for all
        total = None
        for m in active:
            terms = m.method(logits[self.slot[id(m)]], teacher_logits[id(m)], y, context)
            loss = sum(terms.values())
            total = loss if total is None else total + loss
            _accumulate(sums[id(m)], terms)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()  # each member's loss reaches only its own slice of the weights
        self.optimizer.step()

    def weights_problem(self, m: Member) -> str:
        name = self.wide.parameters_finite(self.slot[id(m)])
        return f"non-finite weights in {name}" if name else ""

    @torch.inference_mode()
    def validate(self, members: Sequence[Member]) -> list[float]:
        self.wide.eval()
        outs, labels = [], []
        for _, x, y in iterate_batches(
            self.bundle, self.bundle.val, batch_size=512, device=self.runtime.device
        ):
            with self.runtime.autocast():
                outs.append(self.wide(self.runtime.prepare_input(x)).float().cpu())
            labels.append(y.cpu())
        self.wide.train()
        logits, y_all = torch.cat(outs, dim=1), torch.cat(labels)
        return [classification_metrics(logits[self.slot[id(m)]], y_all)["top1"] for m in members]

    def finish(self, members: Sequence[Member]) -> None:
        for m in members:
            self.wide.unstack_into(self.slot[id(m)], m.model)


def _wide_optimizer(wide: StackedModel, template: Member) -> torch.optim.Optimizer:
    """The members' optimiser over the stacked weights, with each group's settings (weight
    decay only where the member's own parameter has it)."""
    decayed = {
        name
        for name, p in template.model.named_parameters()
        if any(p is q for q in template.optimizer.param_groups[0]["params"])
    }
    first = template.optimizer.param_groups[0]
    rest = template.optimizer.param_groups[1] if len(template.optimizer.param_groups) > 1 else first
    params = dict(wide.body.named_parameters())
    groups = [
        {
            **{k: v for k, v in first.items() if k != "params"},
            "params": [p for n, p in params.items() if n in decayed],
        },
        {
            **{k: v for k, v in rest.items() if k != "params"},
            "params": [p for n, p in params.items() if n not in decayed],
        },
    ]
    groups = [g for g in groups if g["params"]]
    return type(template.optimizer)(groups)


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
