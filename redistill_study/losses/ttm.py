"""`ttm` / `wttm` (Zheng & Yang 2024, transformed teacher matching).

The student (no temperature) matches the power-transformed teacher p_t^γ / Σ p_t^γ, which is
softmax(γ·z_t). `wttm` also weights each sample by U_γ = Σ_c p_t,c^γ (detached).
Loss: CE + w_kd·mean(weight·D).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .base import LAM_DOMAIN, WEIGHT_DOMAIN, Context, FloatRange, log_softmax_t
from .registry import register_method
from .soft_target import SoftTargetMethod


@register_method
class TTM(SoftTargetMethod):
    name = "ttm"
    summary = "student matches the power-transformed teacher p^γ/Σp^γ"
    defaults: ClassVar[dict[str, Any]] = {"gamma": 0.3, "w_kd": 15.0, "w_ce": 1.0, "lam": 0.0}
    search_space = {"gamma": FloatRange(0.1, 0.5), "w_kd": FloatRange(1.0, 50.0, log=True)}
    domains = {
        "gamma": FloatRange(1e-3, 10.0),
        "w_kd": WEIGHT_DOMAIN,
        "w_ce": WEIGHT_DOMAIN,
        "lam": LAM_DOMAIN,
    }
    tuned_by_default = True

    def teacher_log_probs(
        self, teacher_logits: torch.Tensor, labels: torch.Tensor, context: Context
    ) -> torch.Tensor:
        return log_softmax_t(teacher_logits, 1.0 / float(self.hparams["gamma"]))

    @property
    def student_temperature(self) -> float:
        return 1.0

    def soft_scale(self) -> float:
        return 1.0


@register_method
class WTTM(TTM):
    name = "wttm"
    summary = "TTM with each sample weighted by Σ p_t^γ"

    def sample_weights(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        gamma = float(self.hparams["gamma"])
        return torch.exp(gamma * log_softmax_t(teacher_logits, 1.0)).sum(-1)
