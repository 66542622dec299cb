"""`lskd` (Sun et al. 2024, logit standardisation): z-score both logit vectors, then KD.

Each logit vector becomes (z − mean)/(std + 1e-7) before the temperature softmax, so the loss
ignores a shift or a positive scaling of either network's logits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .base import Context, FloatRange, at_least_float32, log_softmax_t
from .registry import register_method
from .soft_target import SoftTargetMethod


def standardize(logits: torch.Tensor) -> torch.Tensor:
    logits = at_least_float32(logits)
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (std + 1e-7)


@register_method
class LSKD(SoftTargetMethod):
    name = "lskd"
    summary = "KD on z-scored logits (logit standardisation)"
    defaults: ClassVar[dict[str, Any]] = {"T": 2.0, "w_ce": 0.1, "w_kd": 9.0, "lam": 0.0}
    search_space = {"T": FloatRange(1.0, 6.0), "w_kd": FloatRange(1.0, 20.0, log=True)}
    tuned_by_default = True

    def teacher_log_probs(
        self, teacher_logits: torch.Tensor, labels: torch.Tensor, context: Context
    ) -> torch.Tensor:
        return log_softmax_t(standardize(teacher_logits), self.temperature)

    def student_log_probs(self, student_logits: torch.Tensor, context: Context) -> torch.Tensor:
        return log_softmax_t(standardize(student_logits), self.temperature)
