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
from .fused import SoftTargetBatch, SoftTargetForm

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

    @property
    def student_temperature(self) -> float:
        return self.temperature

    def student_log_probs(self, student_logits: torch.Tensor, context: Context) -> torch.Tensor:
        return log_softmax_t(student_logits, self.student_temperature)

    def sample_weights(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor | None:
        """Per-sample weights of the soft term, or None; constants to the gradient (the fused
        pass of a vectorised cohort hands them detached logits)."""
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

    def soft_target_form(self) -> SoftTargetForm | None:
        # The form describes the terms of the class that also says how to batch them: a
        # subclass that reshapes terms() (or the student's distribution) without doing the
        # same for soft_target_batch() trains through its own terms.
        cls = type(self)
        if (
            _defined_in(cls, "terms") is not _defined_in(cls, "soft_target_batch")
            or cls.student_log_probs is not SoftTargetMethod.student_log_probs
        ):
            return None
        return SoftTargetForm(
            temperature=self.student_temperature,
            ce_weight=float(self.hparams["w_ce"]),
            kd_weight=float(self.hparams["w_kd"]),
            lam=float(self.hparams["lam"]),
            soft_scale=self.soft_scale(),
        )

    def soft_target_batch(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context,
        memo: dict | None = None,
    ) -> SoftTargetBatch:
        log_p = self.shared_teacher_log_probs(teacher_logits, labels, context, memo)
        weights = self.sample_weights(student_logits, require_teacher(self, teacher_logits), labels)
        return SoftTargetBatch(log_p, weights)

    def shared_teacher_log_probs(
        self,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context,
        memo: dict | None,
    ) -> torch.Tensor:
        """:meth:`teacher_log_probs`, computed once per batch and temperature for the members
        that keep the plain softened teacher."""
        detached = require_teacher(self, teacher_logits)
        if memo is None or type(self).teacher_log_probs is not SoftTargetMethod.teacher_log_probs:
            return self.teacher_log_probs(detached, labels, context)
        key = (id(teacher_logits), self.temperature)
        if key not in memo:
            memo[key] = self.teacher_log_probs(detached, labels, context)
        return memo[key]


def _defined_in(cls: type, name: str) -> type:
    """The class in ``cls``'s MRO whose own body defines ``name``."""
    return next(k for k in cls.__mro__ if name in vars(k))
