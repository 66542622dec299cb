"""How a cohort's optimiser steps run: one member after another, or all at once.

``SequentialEngine`` steps each member's own model and optimiser in turn (any architecture,
exact per-member RNG streams). ``VectorisedEngine`` trains the members as one wide model
(:mod:`.stacked`): one forward; the members whose methods share the soft-target shape get
their losses from one fused pass over all slots (``losses/fused.py``), the others from their
own slice and method; one backward and one optimiser step over the stacked weights. The two
agree up to float round-off (grouped convolutions, batched matrix products and the fused loss
sum in another order); the test suite pins the tolerance. A cohort falls back to the
sequential engine when the members differ in architecture or learning rate, when a layer draws
random numbers (dropout), or when the wide model does not reproduce the members' forward pass.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Protocol

import torch

from ..config import TrainConfig
from ..data import DataBundle, iterate_batches
from ..losses import Context
from ..losses.fused import (
    SlotConstants,
    SoftTargetForm,
    loss_dtype,
    soft_target_terms,
    stack_batches,
)
from .gradients import clip_, clip_slots_, slot_norms
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
    ) -> None: ...
    def epoch_terms(self, m: Member) -> dict[str, float]: ...
    def grad_norms(self, m: Member) -> list[torch.Tensor]: ...
    def terms_at(self, m: Member, step: int) -> dict[str, float]: ...
    def weights_problem(self, m: Member) -> str: ...
    def validate(self, members: Sequence[Member]) -> list[float]: ...
    def finish(self, members: Sequence[Member]) -> None: ...


class _TermSums:
    """Each member's loss terms, kept per step and summed once per epoch (no tensor op per
    term and step)."""

    def __init__(self) -> None:
        self.steps = 0
        self.terms: dict[int, dict[str, list[torch.Tensor]]] = {}

    def add(self, m: Member, terms: dict[str, torch.Tensor]) -> None:
        own = self.terms.setdefault(id(m), {})
        for name, value in terms.items():
            own.setdefault(f"train/{name}", []).append(value.detach())

    def at(self, m: Member, step: int) -> dict[str, float]:
        own = self.terms.get(id(m), {})
        return {k: float(v[step]) for k, v in own.items() if step < len(v)}

    def means(self, m: Member) -> dict[str, float]:
        steps = max(self.steps, 1)
        return {
            k: float(torch.stack(v).float().sum()) / steps
            for k, v in self.terms.get(id(m), {}).items()
        }


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).double().mean())


class SequentialEngine:
    name = "sequential"

    def __init__(self, bundle: DataBundle, runtime: Runtime) -> None:
        self.bundle, self.runtime = bundle, runtime

    def begin_epoch(self, active: Sequence[Member], recipe: TrainConfig, epoch: int) -> None:
        self.sums = _TermSums()
        self.norms: dict[int, list[torch.Tensor]] = {id(m): [] for m in active}
        for m in active:
            lr = learning_rate(recipe, m.base_lr, epoch)
            for group in m.optimizer.param_groups:
                group["lr"] = lr
            m.model.train()

    def step(self, active, x, y, teacher_logits, context) -> None:
        rt = self.runtime
        self.sums.steps += 1
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
            self.norms[id(m)].append(clip_(list(m.model.parameters()), m.grad_clip))
            m.optimizer.step()
            self.sums.add(m, terms)
            m.rng_state = torch.get_rng_state()
            if m.cuda_rng_state is not None:
                m.cuda_rng_state = torch.cuda.get_rng_state(rt.device)

    def epoch_terms(self, m: Member) -> dict[str, float]:
        return self.sums.means(m)

    def grad_norms(self, m: Member) -> list[torch.Tensor]:
        return self.norms.get(id(m), [])

    def terms_at(self, m: Member, step: int) -> dict[str, float]:
        return self.sums.at(m, step)

    def weights_problem(self, m: Member) -> str:
        for name, p in m.model.named_parameters():
            if not torch.isfinite(p).all():
                return f"non-finite weights in {name}"
        return ""

    def validate(self, members: Sequence[Member]) -> list[float]:
        out = []
        for m in members:
            logits, labels = predict(m.model, self.bundle, self.bundle.val, self.runtime)
            out.append(top1(logits, labels))
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
        self.forms = {id(m): m.method.soft_target_form() for m in members}
        self.base_lr = members[0].base_lr
        self.optimizer = _wide_optimizer(self.wide, members[0])
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.k = wide.k  # slots (the prepared model may be a wrapper)
        # Each member clips its own gradient; a slot without a clip (or spare) has none.
        clips = [math.inf] * self.k
        for m in members:
            if m.grad_clip is not None:
                clips[self.slot[id(m)]] = m.grad_clip
        self.max_norms = torch.tensor(clips, device=runtime.device)
        self.clips = any(math.isfinite(c) for c in clips)

    def begin_epoch(self, active: Sequence[Member], recipe: TrainConfig, epoch: int) -> None:
        lr = learning_rate(recipe, self.base_lr, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.norms: list[torch.Tensor] = []  # per step: every slot's norm before clipping
        self.stacked_norms: torch.Tensor | None = None
        self.wide.train()
        # The fused pass always covers every slot (zero weights where a slot is spare, has
        # left, or trains through its own terms): a member's numbers never depend on the others.
        self.fused = [m for m in active if self.forms[id(m)] is not None]
        self.own = [m for m in active if self.forms[id(m)] is None]
        forms = [None] * self.wide.k
        for m in self.fused:
            forms[self.slot[id(m)]] = self.forms[id(m)]
        dtype = loss_dtype(next(self.wide.parameters()).dtype)
        self.constants = SlotConstants.of(forms, self.runtime.device, dtype)
        self.sums = _TermSums()
        self.all_finite: bool | None = None
        self.fused_terms: list[torch.Tensor] = []
        self.fused_means: list[list[float]] | None = None

    def step(self, active, x, y, teacher_logits, context) -> None:
        with self.runtime.autocast():
            logits = self.forward(x)  # (K, B, C)
        losses = []
        if self.fused:
            batches = [None] * self.wide.k
            detached = logits.detach().unbind(0)
            memo: dict = {}  # what members share for this batch (the softened teacher)
            for m in self.fused:
                k = self.slot[id(m)]
                batches[k] = m.method.soft_target_batch(
                    detached[k], teacher_logits[id(m)], y, context, memo
                )
            terms = soft_target_terms(
                logits, labels=y, constants=self.constants, **stack_batches(batches, logits)
            )
            losses.append(terms.sum())
            self.fused_terms.append(terms.detach())
        if self.own:
            per_member = logits.unbind(0)  # one backward node for all
            for m in self.own:
                terms = m.method(per_member[self.slot[id(m)]], teacher_logits[id(m)], y, context)
                losses.append(sum(terms.values()))
                self.sums.add(m, terms)
        self.sums.steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        sum(losses).backward()  # each member's loss reaches only its own slice of the weights
        params = self.params
        norms = slot_norms(params, self.k)
        if self.clips:
            clip_slots_(params, self.k, norms, self.max_norms)
        self.norms.append(norms)
        self.optimizer.step()

    def epoch_terms(self, m: Member) -> dict[str, float]:
        form = self.forms[id(m)]
        if form is None:
            return self.sums.means(m)
        if self.fused_means is None:
            total = torch.stack(self.fused_terms).float().sum(0) if self.fused_terms else None
            steps = max(self.sums.steps, 1)
            self.fused_means = (total / steps).tolist() if total is not None else []
        if not self.fused_means:
            return {}
        return _named(form, *self.fused_means[self.slot[id(m)]])

    def terms_at(self, m: Member, step: int) -> dict[str, float]:
        form = self.forms[id(m)]
        if form is None:
            return self.sums.at(m, step)
        if step >= len(self.fused_terms):
            return {}
        return _named(form, *self.fused_terms[step][self.slot[id(m)]].tolist())

    def grad_norms(self, m: Member) -> list[torch.Tensor]:
        if self.stacked_norms is None:  # once per epoch: (steps, K)
            self.stacked_norms = torch.stack(self.norms) if self.norms else torch.zeros(0, 1)
        return list(self.stacked_norms[:, self.slot[id(m)]]) if self.norms else []

    def weights_problem(self, m: Member) -> str:
        if self.all_finite is None:  # once per epoch for the whole model, then per member
            tensors = [*self.wide.parameters(), *self.wide.buffers()]
            self.all_finite = all(bool(torch.isfinite(t).all()) for t in tensors)
        if self.all_finite:
            return ""
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
        hits = (logits.argmax(-1) == y_all).double().mean(-1).tolist()
        return [hits[self.slot[id(m)]] for m in members]

    def finish(self, members: Sequence[Member]) -> None:
        for m in members:
            self.wide.unstack_into(self.slot[id(m)], m.model)


def _named(form: SoftTargetForm, ce: float, kd: float) -> dict[str, float]:
    """A fused slot's two terms under their names (the KD term only where the method has one)."""
    return {"train/ce": ce, "train/kd": kd} if form.has_kd else {"train/ce": ce}


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
