"""Classification metrics: top-1, negative log-likelihood, expected calibration error."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017)."""
    probs = torch.softmax(logits.double(), -1)
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64, device=logits.device)
    which = torch.bucketize(confidence, edges[1:-1], right=True)
    n = labels.numel()
    ece = torch.zeros((), dtype=torch.float64, device=logits.device)
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.sum() / n * (confidence[mask].mean() - correct[mask].mean()).abs()
    return float(ece)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    logits = logits.double()
    return {
        "top1": float((logits.argmax(-1) == labels).double().mean()),
        "nll": float(F.cross_entropy(logits, labels)),
        "ece": expected_calibration_error(logits, labels),
    }
