"""Gradient norms, measured before clipping, and clipping to a maximum norm — for one model, or
for every member of a wide model at once (each member's norm over its own slice).

Clipping is ``torch.nn.utils.clip_grad_norm_``'s: the gradient is scaled by
``min(1, max_norm / (norm + 1e-6))``. The norms of a step stay tensors until the epoch ends,
so measuring them costs no device synchronisation per step.

>>> import torch
>>> model = torch.nn.Linear(3, 1)
>>> model(torch.ones(2, 3)).sum().mul(10).backward()
>>> before = clip_([*model.parameters()], max_norm=1.0)
>>> float(before) > 1.0, round(float(total_norm([*model.parameters()])), 4)
(True, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_EPS = 1e-6  # as torch.nn.utils.clip_grad_norm_


def _grads(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.grad for p in params if p.grad is not None]


def total_norm(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all the gradients together."""
    grads = _grads(params)
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, 2.0)


def clip_(params: Sequence[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Clip the gradients to ``max_norm`` (None: leave them); the norm before clipping."""
    if max_norm is None:
        return total_norm(params).detach()
    return torch.nn.utils.clip_grad_norm_(params, max_norm).detach()


def slot_norms(params: Sequence[torch.Tensor], k: int) -> torch.Tensor:
    """Each of ``k`` members' gradient 2-norm, (k,): a wide parameter holds the members'
    slices one after another along its first axis (:mod:`.stacked`)."""
    squares = [g.detach().reshape(k, -1).float().pow(2).sum(1) for g in _grads(params)]
    return torch.stack(squares).sum(0).sqrt()


def clip_slots_(
    params: Sequence[torch.Tensor], k: int, norms: torch.Tensor, max_norm: float | torch.Tensor
) -> None:
    """Scale each member's slice of every gradient as ``clip_grad_norm_`` would alone;
    ``max_norm`` is one for all or one per member (inf: that member is not clipped)."""
    limit = torch.as_tensor(max_norm, dtype=norms.dtype, device=norms.device).expand_as(norms)
    scale = (limit / (norms + _EPS)).clamp(max=1.0)
    scale = torch.where(torch.isinf(limit), torch.ones_like(scale), scale)
    for g in _grads(params):
        # Split the first axis only: a view whatever the memory format (channels_last too).
        g.unflatten(0, (k, -1)).mul_(scale.to(g.dtype).view(k, *[1] * g.dim()))


def epoch_stats(norms: Sequence[torch.Tensor]) -> dict[str, float]:
    """An epoch's per-step norms of one member as ``train/grad_norm_max`` (over the steps,
    non-finite if any was) and ``train/grad_norm_last``."""
    if not norms:
        return {}
    stacked = torch.stack([n.float() for n in norms])
    finite = torch.isfinite(stacked)
    peak = stacked.max() if bool(finite.all()) else torch.tensor(float("inf"))
    return {"train/grad_norm_max": float(peak), "train/grad_norm_last": float(stacked[-1])}


def first_blow_up(norms: Sequence[torch.Tensor]) -> tuple[int, float] | None:
    """The 0-based step of the epoch whose gradient norm was first non-finite, with the last
    finite norm before it (nan if none); None if every step was finite."""
    if not norms:
        return None
    stacked = torch.stack([n.float() for n in norms])
    bad = (~torch.isfinite(stacked)).nonzero()
    if len(bad) == 0:
        return None
    step = int(bad[0])
    return step, float(stacked[step - 1]) if step > 0 else float("nan")
