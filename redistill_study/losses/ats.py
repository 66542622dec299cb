"""`ats` (Li et al. 2022, asymmetric temperature scaling).

The teacher's softmax divides the true class's logit by τ_true and every other logit by
τ_rest; the student has its own temperature τ_s (1.0, as in the authors' grid, where it is
``s_tau``). Loss: w_ce·CE + w_kd·τ_s²·D(p_t^ATS ‖ softmax(z_s/τ_s)). The authors write the soft
term as a cross-entropy; it differs from the KL form by the teacher's entropy, a constant, so
the gradients are the same.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .base import (
    LAM_DOMAIN,
    TEMPERATURE_DOMAIN,
    WEIGHT_DOMAIN,
    Context,
    FloatRange,
    at_least_float32,
    log_softmax_t,
)
from .registry import register_method
from .soft_target import SoftTargetMethod


@register_method
class ATS(SoftTargetMethod):
    name = "ats"
    summary = "teacher softmax with one temperature on the true class, another on the rest"
    defaults: ClassVar[dict[str, Any]] = {
        "tau_true": 4.0,
        "tau_rest": 2.0,
        "tau_student": 1.0,
        "w_ce": 0.1,
        "w_kd": 0.9,
        "lam": 0.0,
    }
    search_space = {"tau_true": FloatRange(1.0, 6.0), "tau_rest": FloatRange(1.0, 5.0)}
    domains = {
        "tau_true": TEMPERATURE_DOMAIN,
        "tau_rest": TEMPERATURE_DOMAIN,
        "tau_student": TEMPERATURE_DOMAIN,
        "w_ce": WEIGHT_DOMAIN,
        "w_kd": WEIGHT_DOMAIN,
        "lam": LAM_DOMAIN,
    }
    tuned_by_default = True

    @property
    def temperature(self) -> float:
        return float(self.hparams["tau_student"])  # the student's softmax and the τ² factor

    def teacher_log_probs(
        self, teacher_logits: torch.Tensor, labels: torch.Tensor, context: Context
    ) -> torch.Tensor:
        z = at_least_float32(teacher_logits)
        temps = torch.full_like(z, float(self.hparams["tau_rest"]))
        temps.scatter_(-1, labels[:, None], float(self.hparams["tau_true"]))
        return log_softmax_t(z / temps, 1.0)
