"""The soft-target loss of K students in one pass, with one closed-form backward.

A vectorised cohort (``training/stacked.py``) computes K members' logits as one (K, B, C)
block; most methods then share one loss shape (:mod:`.soft_target`), which this module
evaluates for all K at once instead of as some thirty small operations per member:

    ce_k = w_ce,k · mean_i CE(y_i, z_k,i)
    kd_k = w_kd,k · mean_i [ s_k,i · D_λk(p_k,i ‖ softmax(z_k,i / τ_k)) + h_k,i · CE(y_i, z_k,i) ]

with the teacher distribution p, the per-sample weights s (T², times a method's own weights)
and h (the share of CE inside the soft term: ``ckd``'s wrongly-taught samples) supplied per
member. A method takes part by returning a :class:`SoftTargetForm` (its constants) and, per
batch, a :class:`SoftTargetBatch`; ``None`` keeps it on its own ``terms``. Slots with zero
weights (spare or departed members) compute and contribute nothing.

D_λ is evaluated termwise as in :mod:`.divergence` (expm1 form, the λ < −1/2 side through the
identity D_λ(p‖q) = D_{−1−λ}(q‖p)), so it is accurate at and near λ = 0 and λ = −1 with no
branch per member; the gradient is docs/method.md §3 ("the shared soft-target form").

>>> import torch
>>> from redistill_study.losses import create_method
>>> kd, rd = create_method("kd"), create_method("redistill")
>>> z = torch.randn(2, 5, 10, requires_grad=True)
>>> t, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
>>> terms = soft_target_terms_of([kd, rd], z, [t, t], y)
>>> ref = rd(z[1], t, y)
>>> bool(torch.allclose(terms[1], torch.stack([ref["ce"], ref["kd"]]), atol=1e-5))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import torch
import torch.nn.functional as F

from .divergence import at_least_float32, full_precision

if TYPE_CHECKING:
    from .base import Context, Method


@dataclass(frozen=True)
class SoftTargetForm:
    """A member's constants in the shared loss shape."""

    temperature: float  # τ: the student's softmax temperature
    ce_weight: float  # w_ce
    kd_weight: float  # w_kd
    lam: float  # λ of D_λ(p‖q), teacher first
    soft_scale: float  # the constant part of s (T² for KD)
    has_kd: bool = True  # False: the member reports only its "ce" term (the `ce` method)


@dataclass(frozen=True)
class SoftTargetBatch:
    """A member's per-batch inputs: its teacher distribution and per-sample weights."""

    teacher_log_probs: torch.Tensor | None  # (B, C); None where the member has no soft term
    sample_weights: torch.Tensor | None = None  # (B,), multiplies soft_scale
    ce_share: torch.Tensor | None = None  # (B,), h: CE inside the soft term


class StackedBatches(TypedDict):
    """The slots' batches as :func:`soft_target_terms` takes them (:func:`stack_batches`)."""

    teacher_log_probs: torch.Tensor  # (C, K, B)
    sample_weights: torch.Tensor | None  # (K, B)
    ce_share: torch.Tensor | None  # (K, B)


def loss_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision the fused pass works in for logits of ``dtype``: float64 stays, the rest
    (float32, and half precision under autocast) is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@dataclass(frozen=True)
class SlotConstants:
    """The per-slot constants of a cohort's fused loss, computed once (not per step), shaped
    to broadcast against the class-first (C, K, B) layout.

    Which side of the identity a slot takes (``flip``: student first, c = −1−λ, for λ < −1/2)
    and whether any slot sits at a limit (c = 0) are known per cohort, so the operations a
    cohort does not need are skipped; a slot's numbers are the same either way."""

    temperature: torch.Tensor  # (K, 1)
    weights: torch.Tensor  # (K, 2): [w_ce, w_kd]
    soft_scale: torch.Tensor  # (K, 1)
    c: torch.Tensor  # (K, 1): the exponent of the side evaluated, ≥ −1/2
    flip: torch.Tensor  # (K, 1) bool
    any_flip: bool
    all_flip: bool
    any_limit: bool

    @classmethod
    def of(
        cls,
        forms: Sequence[SoftTargetForm | None],
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SlotConstants:
        """The constants of ``forms``, one per slot; a ``None`` slot gets zero weights."""
        blank = SoftTargetForm(1.0, 0.0, 0.0, 0.0, 0.0)
        filled = [f or blank for f in forms]
        lam = [f.lam for f in filled]
        flips = [v < -0.5 for v in lam]
        c = [-1.0 - v if f else v for v, f in zip(lam, flips)]

        def column(values):
            return torch.tensor(values, dtype=dtype, device=device).reshape(len(filled), -1)

        return cls(
            temperature=column([f.temperature for f in filled]),
            weights=column([[f.ce_weight, f.kd_weight] for f in filled]),
            soft_scale=column([f.soft_scale for f in filled]),
            c=column(c),
            flip=torch.tensor(flips, device=device).reshape(len(filled), 1),
            any_flip=any(flips),
            all_flip=all(flips),
            any_limit=any(v == 0.0 for v in c),
        )

    def by_side(self, teacher_first: torch.Tensor, student_first: torch.Tensor) -> torch.Tensor:
        """Per slot, the tensor of the side it is evaluated on (no select where all agree)."""
        if not self.any_flip:
            return teacher_first
        if self.all_flip:
            return student_first
        return torch.where(self.flip, student_first, teacher_first)


class _SoftTargetTerms(torch.autograd.Function):
    # Class-first inside: softmax and sums over a leading axis of C vectorise over K × B,
    # where over a trailing axis of 10 classes the CPU kernels run several times slower.
    @staticmethod
    def forward(ctx, logits, teacher_log_probs, labels, slots, sample_weights, ce_share):
        z = at_least_float32(logits.detach()).permute(2, 0, 1).contiguous()  # (C, K, B)
        _, k, b = z.shape
        target = labels.view(1, 1, b).expand(1, k, b)
        log_q1 = F.log_softmax(z, 0)
        ce_each = log_q1.gather(0, target).squeeze_(0).neg_()  # (K, B)
        ls = F.log_softmax(z / slots.temperature, 0)  # not in place: z may be the caller's
        lt = teacher_log_probs
        # Teacher first (a = p, b = q) for λ ≥ −1/2, else student first with c = −1−λ.
        la, lb = slots.by_side(lt, ls), slots.by_side(ls, lt)
        a, bb = la.exp(), lb.exp()
        r = la - lb
        x = r * slots.c
        small = x <= 1.0
        # a·expm1(x) for small x; a·e^x = exp(log a + x) for large x (no inf·0).
        near = torch.expm1(x.clamp(max=1.0)).mul_(a)
        far = torch.where(small, la, la + x).exp_().sub_(a)
        lead = torch.where(small, near, far)
        if slots.any_limit:
            at_limit = slots.c == 0.0
            lead = torch.where(at_limit, a * r, lead / torch.where(at_limit, 1.0, slots.c))
        else:
            lead.div_(slots.c)
        lead.masked_fill_(a == 0, 0.0)  # a class with no mass contributes nothing
        divergence = (lead + bb).sub_(a).div_(1.0 + slots.c).sum(0)  # (K, B)
        s = slots.soft_scale if sample_weights is None else slots.soft_scale * sample_weights
        soft = s * divergence
        if ce_share is not None:
            soft.add_(ce_share * ce_each)
        out = torch.stack([ce_each, soft], dim=1).mean(-1).mul_(slots.weights)
        ctx.save_for_backward(log_q1, target, a, bb, lead, s, ce_share)
        ctx.constants = slots
        ctx.input_dtype = logits.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        log_q1, target, a, bb, lead, s, ce_share = ctx.saved_tensors
        slots = ctx.constants
        b = log_q1.shape[2]
        coef = grad_out.to(log_q1.dtype).mul(slots.weights).div_(b)  # (K, 2)
        g_ce, g_kd = coef[:, :1], coef[:, 1:]  # (K, 1) each
        # ∂D/∂log q: (q − w)/(1+c) with w = a·e^x = a + c·lead (teacher first), lead itself
        # (student first); log_softmax's backward then removes q·Σ.
        teacher_first = (bb - a).sub_(slots.c * lead).div_(1.0 + slots.c)
        q, g = slots.by_side(bb, a), slots.by_side(teacher_first, lead)
        g = g - q * g.sum(0)
        grad = g.mul_((g_kd * s).div_(slots.temperature))
        hard = g_ce if ce_share is None else g_kd * ce_share + g_ce
        probs = log_q1.exp()
        probs.scatter_add_(0, target, torch.full_like(target, -1, dtype=probs.dtype))
        grad.add_(probs.mul_(hard))
        return grad.permute(1, 2, 0).to(ctx.input_dtype), None, None, None, None, None


def soft_target_terms(
    logits: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    labels: torch.Tensor,
    constants: SlotConstants,
    sample_weights: torch.Tensor | None = None,
    ce_share: torch.Tensor | None = None,
) -> torch.Tensor:
    """The (K, 2) block of [ce_k, kd_k] for logits (K, B, C) and teacher log-probabilities in
    the class-first layout (C, K, B) that :func:`stack_batches` builds; ``sample_weights`` and
    ``ce_share`` (K, B) or None. Differentiable in ``logits`` only, in at least float32 (the
    teacher and weights must be in the logits' precision)."""
    with full_precision(logits):
        return _SoftTargetTerms.apply(
            logits, teacher_log_probs, labels, constants, sample_weights, ce_share
        )


def soft_target_terms_of(
    methods: Sequence[Method],
    logits: torch.Tensor,
    teacher_logits: Sequence[torch.Tensor | None],
    labels: torch.Tensor,
    context: Context | None = None,
) -> torch.Tensor:
    """:func:`soft_target_terms` for ``methods`` (one per slot, each with a form)."""
    from .base import Context  # here, not at the top: base imports this module

    context = context or Context()
    forms = [m.soft_target_form() for m in methods]
    if any(f is None for f in forms):
        raise ValueError("every method needs a soft-target form")
    batches = [
        m.soft_target_batch(z.detach(), t, labels, context)
        for m, z, t in zip(methods, logits.unbind(0), teacher_logits)
    ]
    constants = SlotConstants.of(forms, logits.device, loss_dtype(logits.dtype))
    return soft_target_terms(
        logits, labels=labels, constants=constants, **stack_batches(batches, logits)
    )


def stack_batches(
    batches: Sequence[SoftTargetBatch | None], logits: torch.Tensor
) -> StackedBatches:
    """Per-slot batches as the (K, …) tensors :func:`soft_target_terms` takes (teacher
    log-probabilities zero, weights one where a slot has none), in the logits' precision."""
    _, b, c = logits.shape
    dtype = loss_dtype(logits.dtype)
    none = torch.zeros((c, b), dtype=dtype, device=logits.device)
    teacher = torch.stack(
        [
            x.teacher_log_probs.to(dtype).t()
            if x is not None and x.teacher_log_probs is not None
            else none
            for x in batches
        ],
        dim=1,
    )  # (C, K, B)

    def column(name: str, fill: float) -> torch.Tensor | None:
        values = [getattr(x, name) if x is not None else None for x in batches]
        if all(v is None for v in values):
            return None
        blank = torch.full((b,), fill, dtype=dtype, device=logits.device)
        return torch.stack([v.to(dtype) if v is not None else blank for v in values])

    return StackedBatches(
        teacher_log_probs=teacher,
        sample_weights=column("sample_weights", 1.0),
        ce_share=column("ce_share", 0.0),
    )
