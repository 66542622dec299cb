"""`ce`: the student trained on labels alone (the no-teacher baseline)."""

from __future__ import annotations

import torch

from .base import Context, Method, cross_entropy
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
