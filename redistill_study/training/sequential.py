"""The one-by-one engine: each member's own model and optimiser stepped in turn (any
architecture, exact per-member RNG streams; see :mod:`.engines`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..config import TrainConfig
from ..data import DataBundle
from ..losses import Context
from ..losses.base import sum_terms
from ._term_sums import TermSums
from .gradients import clip_
from .members import Member, learning_rate, predict
from .runtime import Runtime


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).double().mean())


class SequentialEngine:
    name = "sequential"

    def __init__(self, bundle: DataBundle, runtime: Runtime) -> None:
        self.bundle, self.runtime = bundle, runtime

    def begin_epoch(self, active: Sequence[Member], recipe: TrainConfig, epoch: int) -> None:
        self.sums = TermSums()
        self.norms: dict[int, list[torch.Tensor]] = {id(m): [] for m in active}
        for m in active:
            lr = learning_rate(recipe, m.base_lr, epoch)
            for group in m.optimizer.param_groups:
                group["lr"] = lr
            m.model.train()

    def step(
        self,
        active: Sequence[Member],
        x: torch.Tensor,
        y: torch.Tensor,
        teacher_logits: dict[int, torch.Tensor | None],
        context: Context,
    ) -> None:
        rt = self.runtime
        self.sums.steps += 1
        for m in active:
            torch.set_rng_state(m.rng_state)
            if m.cuda_rng_state is not None:
                torch.cuda.set_rng_state(m.cuda_rng_state, rt.device)
            with rt.autocast():
                student_logits = (m.forward or m.model)(x)
            terms = m.method(student_logits, teacher_logits[id(m)], y, context)
            loss = sum_terms(terms.values())
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
