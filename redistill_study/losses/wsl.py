"""`wsl` (Zhou et al. 2021, weighted soft labels).

Each sample's soft loss is weighted by w = 1 − exp(−CE_s/CE_t), computed at T = 1 and detached:
samples the teacher fits worse than the student count less. Loss: CE + α·T²·mean(w·D).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .base import FloatRange, at_least_float32
from .registry import register_method
from .soft_target import KD_DOMAINS, SoftTargetMethod


@register_method
class WSL(SoftTargetMethod):
    name = "wsl"
    summary = "soft loss weighted per sample by 1 − exp(−CE_s/CE_t)"
    defaults: ClassVar[dict[str, Any]] = {"T": 4.0, "alpha": 2.5, "w_ce": 1.0, "lam": 0.0}
    search_space = {"T": FloatRange(1.0, 8.0), "alpha": FloatRange(0.5, 5.0)}
    domains = {**KD_DOMAINS, "alpha": KD_DOMAINS["w_kd"]}
    tuned_by_default = True

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        self.hparams["w_kd"] = self.hparams["alpha"]  # the template's soft-loss weight

    def sample_weights(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad():
            ce_s = F.cross_entropy(
                at_least_float32(student_logits.detach()), labels, reduction="none"
            )
            ce_t = F.cross_entropy(at_least_float32(teacher_logits), labels, reduction="none")
            ratio = (ce_s / (ce_t + 1e-7)).clamp(min=0.0)
            return 1.0 - torch.exp(-ratio)
