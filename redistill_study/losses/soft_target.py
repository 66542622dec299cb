"""The KD template shared by the soft-target methods: CE on labels plus a weighted divergence.

    L = w_ce · CE(y, s) + w_kd · T² · mean_i[ weight_i · D_λ(p_i ‖ q_i) ]

Subclasses change only what they change: the teacher distribution p, the student distribution
q, or the per-sample weight. ``lam`` = 0 is KL (classic KD); any other λ puts the power
divergence in its place, so every method here combines with REDistill's loss.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .base import (
    LAM_DOMAIN,
    TEMPERATURE_DOMAIN,
    WEIGHT_DOMAIN,
    Context,
    Method,
    SearchDimension,
    cross_entropy,
    log_softmax_t,
    require_teacher,
    soft_divergence,
)

KD_DOMAINS: dict[str, SearchDimension] = {
    "T": TEMPERATURE_DOMAIN,
    "w_ce": WEIGHT_DOMAIN,
    "w_kd": WEIGHT_DOMAIN,
    "lam": LAM_DOMAIN,
}


class SoftTargetMethod(Method):
    defaults: ClassVar[dict[str, Any]] = {"T": 4.0, "w_ce": 0.1, "w_kd": 0.9, "lam": 0.0}
    domains: ClassVar[dict[str, SearchDimension]] = KD_DOMAINS

    @property
    def temperature(self) -> float:
        return float(self.hparams["T"])

    def teacher_log_probs(
        self, teacher_logits: torch.Tensor, labels: torch.Tensor, context: Context
    ) -> torch.Tensor:
        return log_softmax_t(teacher_logits, self.temperature)

    def student_log_probs(self, student_logits: torch.Tensor, context: Context) -> torch.Tensor:
        return log_softmax_t(student_logits, self.temperature)

    def sample_weights(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor | None:
        return None

    def soft_scale(self) -> float:
        return self.temperature**2

    def terms(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context,
    ) -> dict[str, torch.Tensor]:
        teacher_logits = require_teacher(self, teacher_logits)
        divergence = soft_divergence(
            self.teacher_log_probs(teacher_logits, labels, context),
            self.student_log_probs(student_logits, context),
            float(self.hparams["lam"]),
        )
        weights = self.sample_weights(student_logits, teacher_logits, labels)
        if weights is not None:
            divergence = divergence * weights
        return {
            "ce": self.hparams["w_ce"] * cross_entropy(student_logits, labels),
            "kd": self.hparams["w_kd"] * self.soft_scale() * divergence.mean(),
        }
