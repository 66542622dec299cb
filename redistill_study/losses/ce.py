"""`ce`: the student trained on labels alone (the no-teacher baseline)."""

from __future__ import annotations

import torch

from .base import Context, Method, cross_entropy
from .fused import SoftTargetBatch, SoftTargetForm
from .registry import register_method


@register_method
class CrossEntropy(Method):
    name = "ce"
    summary = "student alone, labels only"
    uses_teacher = False

    def terms(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context,
    ) -> dict[str, torch.Tensor]:
        return {"ce": cross_entropy(student_logits, labels)}

    def soft_target_form(self) -> SoftTargetForm:
        return SoftTargetForm(
            1.0, ce_weight=1.0, kd_weight=0.0, lam=0.0, soft_scale=0.0, has_kd=False
        )

    def soft_target_batch(
        self, student_logits, teacher_logits, labels, context, memo=None
    ) -> SoftTargetBatch:
        return SoftTargetBatch(None)
