"""`lr` (Lan et al. 2024, label revision): blend the teacher with the one-hot label, then KD.

    target = β·p_t + (1 − β)·onehot(y),   β = η / (p_max − p_y + 1)

with p_t the softened teacher distribution, so the blend leans on the label more the more the
teacher's top class beats the true one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .base import Context, FloatRange, log_softmax_t
from .registry import register_method
from .soft_target import KD_DOMAINS, SoftTargetMethod


@register_method
class LabelRevision(SoftTargetMethod):
    name = "lr"
    summary = "teacher blended with the label, β = η/(p_max − p_y + 1), then KD"
    defaults: ClassVar[dict[str, Any]] = {**SoftTargetMethod.defaults, "eta": 0.8}
    search_space = {
        "eta": FloatRange(0.1, 1.0),
        "T": FloatRange(1.0, 8.0),
        "w_kd": FloatRange(0.1, 10.0, log=True),
    }
    domains = {**KD_DOMAINS, "eta": FloatRange(1e-6, 1.0)}
    tuned_by_default = True

    def teacher_log_probs(
        self, teacher_logits: torch.Tensor, labels: torch.Tensor, context: Context
    ) -> torch.Tensor:
        log_p = log_softmax_t(teacher_logits, self.temperature)
        p = log_p.exp()
        p_y = p.gather(-1, labels[:, None])
        beta = self.hparams["eta"] / (p.max(-1, keepdim=True).values - p_y + 1.0)
        log_target_class = torch.log(beta * p_y + (1.0 - beta))
        revised = log_p + torch.log(beta)
        return revised.scatter(-1, labels[:, None], log_target_class)
