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

from contextlib import AbstractContextManager, nullcontext
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


# Away from the limits, (w − p)/λ with w = p·e^{λr} is as accurate as p·expm1(λr)/λ and cheaper.
_FAST_MIN_ABS_LAMBDA = 0.25


class _PowerDivergence(torch.autograd.Function):
    """Per-sample D_λ(p‖q) with a closed-form backward (one fused pass instead of autograd's).

    The gradient with respect to the student's log-probabilities is (q − w)/(1+λ) with
    w = p·(p/q)^λ for λ ≥ −1/2, and (v − q)/μ with v = q·(q/p)^μ, μ = −1−λ otherwise;
    log_softmax's own backward then gives docs/method.md §2's −(w − qΣw)/(1+λ). Away from the
    limits λ = 0 and λ = −1 both sides take a fused path of a few in-place operations.
    """

    @staticmethod
    def forward(ctx, student_log_probs, teacher_log_probs, lam):
        ls, lt = student_log_probs.detach(), teacher_log_probs.detach()
        ctx.lam = lam
        mu = -1.0 - lam
        if lam < -0.5 and mu >= _FAST_MIN_ABS_LAMBDA:
            # D_λ(p‖q) = D_μ(q‖p), μ = −1−λ: Σ_c [(v − q)/μ + p − q]/(1+μ) with v = q·(q/p)^μ;
            # the p − q part sums to zero. The student-first reading of λ = 2/3 lands here.
            v = torch.sub(ls, lt).mul_(mu).add_(ls).exp_()  # q·(q/p)^μ
            diff = ls.exp().neg_().add_(v)  # v − q
            per_sample = diff.sum(-1).div_(mu * (1.0 + mu)).clamp_(min=0.0)
            ctx.save_for_backward(ls, v)
            return per_sample
        if lam >= -0.5 and abs(lam) >= _FAST_MIN_ABS_LAMBDA:
            # Σ_c [(w − p)/λ + q − p]/(1+λ) with Σq = Σp = 1: the q − p part is zero, and
            # w − p is differenced per class (exactly 0 where p = q). Clamp the rounding at 0.
            w = torch.sub(lt, ls).mul_(lam).add_(lt).exp_()  # p·(p/q)^λ
            diff = lt.exp().neg_().add_(w)  # w − p, in place: big temporaries cost page faults
            per_sample = diff.sum(-1).div_(lam * (1.0 + lam)).clamp_(min=0.0)
            ctx.save_for_backward(ls, w)
            return per_sample
        ctx.save_for_backward(ls, lt)
        return power_divergence_terms(lt, ls, lam).sum(-1)

    @staticmethod
    def backward(ctx, grad_output):
        lam = ctx.lam
        g = grad_output.unsqueeze(-1)
        mu = -1.0 - lam
        if lam < -0.5 and mu >= _FAST_MIN_ABS_LAMBDA:
            # ∂/∂log q of Σ(v − q)/(μ(1+μ)) is ((1+μ)v − q)/(μ(1+μ)); it differs from (v − q)/μ
            # by a multiple of q, which log_softmax's backward removes. (v − q)/μ it is.
            ls, v = ctx.saved_tensors
            return v.sub(ls.exp()).mul_(g / mu), None, None
        if lam >= -0.5 and abs(lam) >= _FAST_MIN_ABS_LAMBDA:
            ls, w = ctx.saved_tensors
            return ls.exp().sub_(w).mul_(g / (1.0 + lam)), None, None
        ls, lt = ctx.saved_tensors
        q = ls.exp()
        if lam >= -0.5:
            w = lt.exp() if lam == 0.0 else torch.exp(lt + lam * (lt - ls))
            return (q - w) * (g / (1.0 + lam)), None, None
        mu = -1.0 - lam
        r = ls - lt
        e = r if mu == 0.0 else torch.expm1(mu * r) / mu
        return torch.where(q > 0, q * e, torch.zeros_like(q)) * g, None, None


def power_divergence_from_log_probs(
    teacher_log_probs: torch.Tensor,
    student_log_probs: torch.Tensor,
    lam: float = 2.0 / 3.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """D_λ(p‖q) from log-probabilities over the last dimension (gradient to the student only)."""
    if teacher_log_probs.requires_grad:  # rare: differentiate through both, the plain way
        per_sample = power_divergence_terms(teacher_log_probs, student_log_probs, lam).sum(-1)
    else:
        per_sample = _PowerDivergence.apply(student_log_probs, teacher_log_probs, float(lam))
    return _reduce(per_sample, reduction)


def power_divergence(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    lam: float = 2.0 / 3.0,
    temperature: float = 1.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Batch mean of D_λ(softmax(t/T) ‖ softmax(s/T)), exactly as docs/method.md §2 defines it.

    No T² factor is applied here (the KD-style loss applies it). Finite for every real λ,
    including the limits λ = 0 (KL) and λ = −1 (reverse KL). ``reduction="none"`` returns one
    value per sample. Half-precision inputs are promoted to float32 and autocast is disabled
    inside, so the result is float32 (or float64 for float64 inputs).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    with full_precision(student_logits):
        t = at_least_float32(teacher_logits) / temperature
        s = at_least_float32(student_logits) / temperature
        return power_divergence_from_log_probs(
            F.log_softmax(t, dim=-1), F.log_softmax(s, dim=-1), lam, reduction
        )


def full_precision(x: torch.Tensor) -> AbstractContextManager:
    """Autocast off for a loss computation (a no-op context where autocast is not on: entering
    one costs more than the small operations it guards)."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return nullcontext()


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
