"""`dkd` (Zhao et al. 2022, decoupled KD).

KD splits into a target-class part and a non-target part:
    KL(p‖q) = TCKD + (1 − p_target)·NCKD,
with TCKD = KL(b^t‖b^s) on the binary (target, rest) distributions and NCKD the KL among the
non-target classes, renormalised. DKD weights them freely (α·TCKD + β·NCKD, times T²) and
ramps the distillation term in over ``warmup`` epochs: weight min(e / warmup, 1) with e the
1-based epoch, as mdistiller counts them (its first epoch already has weight 1 / warmup). The
non-target distributions are formed by gathering the other columns (no −1000 masking, no
boolean-mask indexing), and ``lam`` ≠ 0 replaces both KL terms by D_λ.
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
    IntRange,
    Method,
    cross_entropy,
    log_softmax_t,
    require_teacher,
    soft_divergence,
)
from .registry import register_method


def binary_and_rest_log_probs(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """log [p_target, 1 − p_target] (B×2) and log of the renormalised non-target part (B×(C−1)).

    The non-target columns are gathered (each row's C − 1 other classes, in order) rather than
    selected with a boolean mask: the same numbers, without the mask's slow indexing."""
    log_p = log_softmax_t(logits, temperature)
    classes = log_p.shape[-1]
    log_target = log_p.gather(-1, labels[:, None])
    others = torch.arange(classes - 1, device=log_p.device)[None, :]
    others = others + (others >= labels[:, None]).long()  # skip each row's target column
    log_rest_each = log_p.gather(-1, others)
    log_rest_total = torch.logsumexp(log_rest_each, dim=-1, keepdim=True)
    binary = torch.cat([log_target, log_rest_total], dim=-1)
    return binary, log_rest_each - log_rest_total


def _kl_parts(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, labels: torch.Tensor, T: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """TCKD and NCKD with KL (DKD's own loss), in place on the full C columns: the
    non-target masses are log-sum-exps with the target column at −∞, so a confident teacher's
    1 − p_target keeps its precision, and no column is gathered or dropped."""
    target = labels[:, None]
    lt = log_softmax_t(teacher_logits, T)
    ls = log_softmax_t(student_logits, T)
    lt_t, ls_t = lt.gather(-1, target), ls.gather(-1, target)
    minus_inf = torch.tensor(float("-inf"), dtype=lt.dtype, device=lt.device)
    lt_rest = lt.scatter(-1, target, minus_inf.expand_as(lt_t)).logsumexp(-1, keepdim=True)
    ls_rest = ls.scatter(-1, target, minus_inf.expand_as(ls_t)).logsumexp(-1, keepdim=True)
    tckd = lt_t.exp() * (lt_t - ls_t) + lt_rest.exp() * (lt_rest - ls_rest)
    weights = (lt - lt_rest).exp().scatter(-1, target, 0.0)  # p̂ over the non-target classes
    nckd = (weights * ((lt - ls) - (lt_rest - ls_rest))).sum(-1, keepdim=True)
    return tckd.mean(), nckd.mean()


@register_method
class DKD(Method):
    name = "dkd"
    summary = "decoupled KD: α·TCKD + β·NCKD with warm-up"
    defaults: ClassVar[dict[str, Any]] = {
        "alpha": 1.0,
        "beta": 8.0,
        "T": 4.0,
        "warmup": 20,
        "w_ce": 1.0,
        "lam": 0.0,
    }
    search_space = {
        "alpha": FloatRange(0.5, 2.0),
        "beta": FloatRange(0.5, 10.0),
        "T": FloatRange(1.0, 8.0),
    }
    domains = {
        "alpha": WEIGHT_DOMAIN,
        "beta": WEIGHT_DOMAIN,
        "T": TEMPERATURE_DOMAIN,
        "warmup": IntRange(0, 10**6),
        "w_ce": WEIGHT_DOMAIN,
        "lam": LAM_DOMAIN,
    }
    tuned_by_default = True

    def terms(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context,
    ) -> dict[str, torch.Tensor]:
        teacher_logits = require_teacher(self, teacher_logits)
        h = self.hparams
        temperature, lam = float(h["T"]), float(h["lam"])
        if lam == 0.0:
            tckd, nckd = _kl_parts(teacher_logits, student_logits, labels, temperature)
        else:
            t_bin, t_rest = binary_and_rest_log_probs(teacher_logits, labels, temperature)
            s_bin, s_rest = binary_and_rest_log_probs(student_logits, labels, temperature)
            tckd = soft_divergence(t_bin, s_bin, lam).mean()
            nckd = soft_divergence(t_rest, s_rest, lam).mean()
        tckd, nckd = tckd * temperature**2, nckd * temperature**2
        # Context.epoch is 0-based; mdistiller's schedule uses the 1-based epoch.
        ramp = min((context.epoch + 1) / h["warmup"], 1.0) if h["warmup"] > 0 else 1.0
        return {
            "ce": h["w_ce"] * cross_entropy(student_logits, labels),
            "tckd": ramp * h["alpha"] * tckd,
            "nckd": ramp * h["beta"] * nckd,
        }
