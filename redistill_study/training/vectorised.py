"""The vectorised engine: a cohort's members trained as one wide model (:mod:`.stacked`).

One forward; the members whose methods share the soft-target shape get their losses from one
fused pass over all slots (``losses/fused.py``), the others from their own slice and method;
one backward and one optimiser step over the stacked weights (see :mod:`.engines`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch

from ..config import TrainConfig
from ..data import DataBundle, iterate_batches
from ..losses import Context
from ..losses.base import sum_terms
from ..losses.fused import (
    SlotConstants,
    SoftTargetBatch,
    SoftTargetForm,
    loss_dtype,
    soft_target_terms,
    stack_batches,
)
from ._term_sums import TermSums
from .gradients import clip_slots_, slot_norms
from .members import Member, learning_rate
from .runtime import Runtime
from .stacked import StackedModel


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
        forms: list[SoftTargetForm | None] = [None] * self.wide.k
        for m in self.fused:
            forms[self.slot[id(m)]] = self.forms[id(m)]
        dtype = loss_dtype(next(self.wide.parameters()).dtype)
        self.constants = SlotConstants.of(forms, self.runtime.device, dtype)
        self.sums = TermSums()
        self.all_finite: bool | None = None
        self.fused_terms: list[torch.Tensor] = []
        self.fused_means: list[list[float]] | None = None

    def step(
        self,
        active: Sequence[Member],
        x: torch.Tensor,
        y: torch.Tensor,
        teacher_logits: dict[int, torch.Tensor | None],
        context: Context,
    ) -> None:
        with self.runtime.autocast():
            logits = self.forward(x)  # (K, B, C)
        losses = []
        if self.fused:
            batches: list[SoftTargetBatch | None] = [None] * self.wide.k
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
                student_logits = per_member[self.slot[id(m)]]
                own_terms = m.method(student_logits, teacher_logits[id(m)], y, context)
                losses.append(sum_terms(own_terms.values()))
                self.sums.add(m, own_terms)
        self.sums.steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        sum_terms(losses).backward()  # each member's loss reaches only its own slice of the weights
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
    # The member's own optimiser class (SGD, Adam, …), whose settings all have defaults; the
    # base class's constructor would also want ``defaults``.
    optimizer_class = cast(Callable[..., torch.optim.Optimizer], type(template.optimizer))
    return optimizer_class(groups)
