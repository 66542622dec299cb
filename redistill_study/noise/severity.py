"""Measured severity of a noisy teacher: what the student is actually taught."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics import expected_calibration_error


def measure_severity(
    clean_logits: torch.Tensor, noisy_logits: torch.Tensor, labels: torch.Tensor
) -> dict[str, float]:
    """Top-1 of the noisy teacher, its ECE, mean KL(noisy‖clean) and its error rate."""
    clean_logits, noisy_logits = clean_logits.double(), noisy_logits.double()
    noisy_log_p = F.log_softmax(noisy_logits, -1)
    clean_log_p = F.log_softmax(clean_logits, -1)
    kl = (noisy_log_p.exp() * (noisy_log_p - clean_log_p)).sum(-1).clamp(min=0).mean()
    wrong = (noisy_logits.argmax(-1) != labels).double().mean()
    return {
        "top1": float(1.0 - wrong),
        "ece": expected_calibration_error(noisy_logits, labels),
        "kl_noisy_clean": float(kl),
        "wrong_fraction": float(wrong),
    }
