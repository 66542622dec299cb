"""`ka` (Wen et al. 2021, knowledge adjustment): fix the teacher where it is wrong, then KD.

On samples whose teacher argmax is not the label:
- ``shift``: swap the teacher's probability of the true class with its maximum (done on the
  logits, which swaps the softened probabilities exactly);
- ``smooth``: replace the teacher by a smoothed one-hot (``smoothing`` on the label, the rest
  spread evenly).
Samples the teacher gets right are untouched.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from .base import Choice, Context, FloatRange, log_softmax_t
from .registry import register_method
from .soft_target import KD_DOMAINS, SoftTargetMethod


@register_method
class KnowledgeAdjustment(SoftTargetMethod):
    name = "ka"
    summary = "correct wrong teacher predictions (probability shift or smoothed label), then KD"
    defaults: ClassVar[dict[str, Any]] = {
        **SoftTargetMethod.defaults,
        "variant": "shift",
        "smoothing": 0.9,
    }
    search_space = {
        "variant": Choice(("shift", "smooth")),
        "smoothing": FloatRange(0.7, 0.99),
        "T": FloatRange(1.0, 8.0),
        "w_kd": FloatRange(0.1, 10.0, log=True),
    }
    domains = {
        **KD_DOMAINS,
        "variant": Choice(("shift", "smooth")),
        "smoothing": FloatRange(0.0, 1.0),
    }
    tuned_by_default = True

    def teacher_log_probs(
        self, teacher_logits: torch.Tensor, labels: torch.Tensor, context: Context
    ) -> torch.Tensor:
        wrong = teacher_logits.argmax(-1) != labels
        if self.hparams["variant"] == "shift":
            return log_softmax_t(swap_with_max(teacher_logits, labels, wrong), self.temperature)
        log_p = log_softmax_t(teacher_logits, self.temperature)
        num_classes = log_p.shape[-1]
        s = float(self.hparams["smoothing"])
        # No mass is the most negative finite log, not −inf: KL's 0·log 0 then stays 0.
        none = torch.finfo(log_p.dtype).min
        smooth = torch.full_like(log_p, math.log((1.0 - s) / (num_classes - 1)) if s < 1 else none)
        smooth.scatter_(-1, labels[:, None], math.log(s) if s > 0 else none)
        return torch.where(wrong[:, None], smooth, log_p)


def swap_with_max(logits: torch.Tensor, labels: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Swap the label's logit with the largest logit on the rows selected by ``where``."""
    top = logits.argmax(-1)
    rows = torch.arange(logits.shape[0], device=logits.device)
    out = logits.clone()
    label_value = logits[rows, labels]
    top_value = logits[rows, top]
    out[rows, labels] = torch.where(where, top_value, label_value)
    out[rows, top] = torch.where(where, label_value, top_value)
    return out
