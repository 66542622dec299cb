"""The Cressie–Read power divergence D_λ(p‖q) between two softmax distributions.

    D_λ(p‖q) = 1/(λ(λ+1)) · Σ_c p_c · [(p_c/q_c)^λ − 1]

is evaluated as a sum of non-negative per-class terms (the f-divergence integrand
q·f(p/q) with f(u) = (u^{1+λ} − (1+λ)u + λ)/(λ(λ+1)), which adds the zero Σ(λq − λp)),
so nothing cancels across classes and the result is never negative:

    term_c = [p_c·expm1(λ r_c)/λ + q_c − p_c] / (1 + λ),     r_c = log p_c − log q_c.

expm1(λr)/λ → r as λ → 0 gives KL exactly at λ = 0 with no jump nearby. For λ < −1/2 the
termwise identity p·h_λ(r) = q·h_{−1−λ}(−r) (i.e. D_λ(p‖q) = D_{−1−λ}(q‖p)) moves the
evaluation to μ = −1−λ ∈ (−1/2, ∞), so λ = −1 (reverse KL) is the μ = 0 case of the same code.
Everything is computed from log-probabilities in at least float32, also under autocast.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["mean", "sum", "none"]

# Below this |λ| the expm1(λr)/λ quotient is replaced by its limit r (exactly KL / reverse KL).
_EXACT_LIMIT = 0.0


def _one_sided_terms(log_a: torch.Tensor, log_b: torch.Tensor, lam: float) -> torch.Tensor:
    """Per-class terms of D_lam(a‖b) for lam ≥ −1/2 (so 1 + lam ≥ 1/2 never divides by ~0)."""
    a = log_a.exp()
    b = log_b.exp()
    r = log_a - log_b
    if lam == _EXACT_LIMIT:
        # a·r with a == 0 contributes 0 even where log a = −inf.
        lead = torch.where(a > 0, a * r, torch.zeros_like(r))
    else:
        x = lam * r
        small = x <= 1.0
        # a·expm1(x) is accurate for small x; for large x, a·e^x = exp(log a + x) avoids inf·0.
        near = a * torch.expm1(x.clamp(max=1.0))
        far = torch.exp(torch.where(small, log_a, log_a + x)) - a
        lead = torch.where(small, near, far) / lam
    return (lead + b - a) / (1.0 + lam)


def power_divergence_terms(
    teacher_log_probs: torch.Tensor, student_log_probs: torch.Tensor, lam: float
) -> torch.Tensor:
    """Per-class, per-sample terms whose sum over the last dim is D_λ(p‖q); all terms ≥ 0."""
    lam = float(lam)
    if lam >= -0.5:
        return _one_sided_terms(teacher_log_probs, student_log_probs, lam)
    return _one_sided_terms(student_log_probs, teacher_log_probs, -1.0 - lam)


def power_divergence_from_log_probs(
    teacher_log_probs: torch.Tensor,
    student_log_probs: torch.Tensor,
    lam: float = 2.0 / 3.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """D_λ(p‖q) from log-probabilities over the last dimension."""
    per_sample = power_divergence_terms(teacher_log_probs, student_log_probs, lam).sum(-1)
    return _reduce(per_sample, reduction)


def power_divergence(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    lam: float = 2.0 / 3.0,
    temperature: float = 1.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Batch mean of D_λ(softmax(t/T) ‖ softmax(s/T)), exactly as METHOD.md §2 defines it.

    No T² factor is applied here (the KD-style loss applies it). Finite for every real λ,
    including the limits λ = 0 (KL) and λ = −1 (reverse KL). ``reduction="none"`` returns one
    value per sample. Half-precision inputs are promoted to float32 and autocast is disabled
    inside, so the result is float32 (or float64 for float64 inputs).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    device_type = student_logits.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        t = at_least_float32(teacher_logits) / temperature
        s = at_least_float32(student_logits) / temperature
        return power_divergence_from_log_probs(
            F.log_softmax(t, dim=-1), F.log_softmax(s, dim=-1), lam, reduction
        )


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Promote half precision to float32; keep float32 and float64 as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _reduce(per_sample: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
