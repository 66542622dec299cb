"""`ckd` (Meng et al. 2019, conditional teacher–student): trust the teacher only where it is right.

Per sample: T²·D(p_t‖q) when the teacher's argmax is the label, CE(y, s) otherwise. With a
teacher that is always right this is exactly `kd`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Context, FloatRange, at_least_float32, require_teacher, soft_divergence
from .fused import SoftTargetBatch
from .registry import register_method
from .soft_target import SoftTargetMethod


@register_method
class ConditionalKD(SoftTargetMethod):
    name = "ckd"
    summary = "teacher posterior where the teacher is right, the label where it is wrong"
    search_space = {"T": FloatRange(1.0, 8.0), "w_kd": FloatRange(0.1, 10.0, log=True)}
    tuned_by_default = True

    def terms(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context,
    ) -> dict[str, torch.Tensor]:
        teacher_logits = require_teacher(self, teacher_logits)
        right = (teacher_logits.argmax(-1) == labels).float()
        divergence = soft_divergence(
            self.teacher_log_probs(teacher_logits, labels, context),
            self.student_log_probs(student_logits, context),
            float(self.hparams["lam"]),
        )
        ce_each = F.cross_entropy(at_least_float32(student_logits), labels, reduction="none")
        soft = right * self.soft_scale() * divergence + (1.0 - right) * ce_each
        return {
            "ce": self.hparams["w_ce"] * ce_each.mean(),
            "kd": self.hparams["w_kd"] * soft.mean(),
        }

    def soft_target_batch(
        self, student_logits, teacher_logits, labels, context, memo=None
    ) -> SoftTargetBatch:
        # Its terms are the shared shape with s = T²·right, h = 1 − right.
        log_p = self.shared_teacher_log_probs(teacher_logits, labels, context, memo)
        right = (require_teacher(self, teacher_logits).argmax(-1) == labels).float()
        return SoftTargetBatch(log_p, right, 1.0 - right)
