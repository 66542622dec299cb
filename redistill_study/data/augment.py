"""Batched, seeded augmentation as tensor ops on the training device (no per-sample Python).

``cifar``: random crop with 4-pixel zero padding + horizontal flip, the distribution of
torchvision's ``RandomCrop(32, padding=4)`` and ``RandomHorizontalFlip()``: each offset in
{0..8}² equally likely, each flip with probability 1/2. ``crop_flip`` is the same with 2-pixel
padding (28 × 28 Fashion-MNIST) and ``crop`` without the flip (digits are not mirror images).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(
    x: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    n, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding))
    off_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    off_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    flips = torch.rand(n, generator=generator, device=dev) < 0.5
    if not flip:
        flips = torch.zeros_like(flips)
    rows = off_y[:, None] + torch.arange(h, device=dev)[None, :]  # (n, h)
    cols = off_x[:, None] + torch.arange(w, device=dev)[None, :]  # (n, w)
    cols = torch.where(flips[:, None], cols.flip(-1), cols)
    batch = torch.arange(n, device=dev)[:, None, None]
    # Advanced indexing gathers every crop at once: (n, h, w, c) → (n, c, h, w).
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def augment_batch(x: torch.Tensor, preset: str, generator: torch.Generator) -> torch.Tensor:
    if preset == "cifar":
        return random_crop_flip(x, generator)
    if preset == "crop_flip":
        return random_crop_flip(x, generator, padding=2)
    if preset == "crop":
        return random_crop_flip(x, generator, padding=2, flip=False)
    if preset == "none":
        return x
    raise ValueError(f"no in-memory augmentation for preset {preset!r}")
