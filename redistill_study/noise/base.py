"""Controlled teacher noise, reproducible per (noise seed, split, sample index).

Two families:
- *logit* noise (``logit_gaussian``, ``confident_wrong``, ``overconfident``) transforms the
  teacher's logits for given sample indices. Each corruption is a pure function of the noise
  seed, the split and the sample index (never of the batch, its order or the process), so it is
  the same whether the logits come from a cache or a fresh forward pass on an augmented image;
- *teacher* noise (``label_noise_teacher``, ``undertrained``) changes which teacher is used;
  its logits then pass through unchanged.

Level 0 is exactly the clean teacher for every kind. One noise seed serves every level of a
kind, so the samples corrupted at ρ = 0.1 are among those corrupted at ρ = 0.3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _srl(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift on int64 (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def splitmix64(keys: torch.Tensor) -> torch.Tensor:
    """SplitMix64 on int64 tensors (wrapping arithmetic): a counter-based RNG for any device."""
    z = keys + _GOLDEN
    z = (z ^ _srl(z, 30)) * _MIX1
    z = (z ^ _srl(z, 27)) * _MIX2
    return z ^ _srl(z, 31)


def hashed_uniform(keys: torch.Tensor) -> torch.Tensor:
    """Uniform floats in (0, 1), float64, one per int64 key."""
    bits = _srl(splitmix64(keys), 11).to(torch.float64)
    return (bits + 0.5) * 2.0**-53


def hashed_normal(keys: torch.Tensor) -> torch.Tensor:
    """Standard normal floats (Box–Muller), one per int64 key."""
    u1 = hashed_uniform(keys * 2)
    u2 = hashed_uniform(keys * 2 + 1)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


def _stream(seed: int, split: str, salt: int) -> int:
    base = torch.tensor([seed * 16 + SPLIT_IDS[split] * 4 + salt], dtype=torch.int64)
    return int(splitmix64(base)[0])


@dataclass(frozen=True)
class NoiseSetting:
    """One cell's teacher noise: a kind, a level, and the seed that fixes the corruption."""

    kind: str = "none"
    level: float = 0.0
    seed: int = 0
    mode: str = "symmetric"  # label_noise_teacher: symmetric or asymmetric flips
    _plans: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def label(self) -> str:
        if self.kind == "none" or self.level == 0:
            return "none" if self.kind == "none" else f"{self.kind}=0"
        suffix = "-asym" if self.kind == "label_noise_teacher" and self.mode == "asymmetric" else ""
        return f"{self.kind}={self.level:g}{suffix}"

    @property
    def is_clean(self) -> bool:
        return self.kind == "none" or self.level == 0

    @property
    def changes_teacher(self) -> bool:
        return self.kind in ("label_noise_teacher", "undertrained") and not self.is_clean

    def teacher_variant(self) -> dict[str, Any]:
        """What makes the noisy teacher differ from the clean one (part of its cache key)."""
        if not self.changes_teacher:
            return {}
        if self.kind == "label_noise_teacher":
            return {"label_noise": {"rate": self.level, "mode": self.mode, "seed": self.seed}}
        return {"undertrained": {"fraction_removed": self.level}}

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"noise.kind": self.kind, "noise.level": self.level}
        if self.kind == "overconfident":
            out["noise.kappa"] = 1.0 + self.level
        if self.kind == "label_noise_teacher":
            out["noise.mode"] = self.mode
        return out

    # --- logit noise --------------------------------------------------------------------

    def apply(
        self,
        logits: torch.Tensor,
        indices: torch.Tensor,
        labels: torch.Tensor,
        split: str = "train",
        split_size: int | None = None,
    ) -> torch.Tensor:
        """The noisy teacher logits for samples ``indices`` of ``split`` (a new tensor)."""
        if self.is_clean or self.kind in ("label_noise_teacher", "undertrained"):
            return logits
        if self.kind == "overconfident":
            return logits * (1.0 + self.level)
        if self.kind == "logit_gaussian":
            _n, c = logits.shape
            keys = (
                _stream(self.seed, split, 1)
                + indices.to(torch.int64)[:, None] * c
                + torch.arange(c, device=logits.device)
            )
            return logits + (self.level * hashed_normal(keys)).to(logits.dtype)
        if self.kind == "confident_wrong":
            if split_size is None:
                raise ValueError("confident_wrong needs split_size (the number of samples)")
            corrupt, offset = self._confident_wrong_plan(split, split_size, logits.device)
            chosen = corrupt[indices]
            num_classes = logits.shape[1]
            wrong = (labels + 1 + offset[indices] % (num_classes - 1)) % num_classes
            return _swap_top(logits, wrong, chosen)
        raise ValueError(f"unknown noise kind {self.kind!r}")

    def _confident_wrong_plan(
        self, split: str, n: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = ("confident_wrong", split, n, str(device))
        if key not in self._plans:
            gen = torch.Generator().manual_seed(_stream(self.seed, split, 2) & (2**62 - 1))
            order = torch.randperm(n, generator=gen)
            rank = torch.empty(n, dtype=torch.int64)
            rank[order] = torch.arange(n)
            offsets = torch.randint(0, 2**31 - 1, (n,), generator=gen)
            self._plans[key] = (rank.to(device), offsets.to(device))
        rank, offsets = self._plans[key]
        return rank < round(self.level * n), offsets


def _swap_top(logits: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """On rows ``where``, swap the top logit with ``target``'s: the teacher's confidence moves
    onto the target class unchanged."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    top = logits.argmax(-1)
    top_value = logits[rows, top]
    target_value = logits[rows, target]
    out = logits.clone()
    out[rows, top] = torch.where(where, target_value, top_value)
    out[rows, target] = torch.where(where, top_value, target_value)
    return out


def flip_labels(
    labels: torch.Tensor, rate: float, num_classes: int, mode: str, seed: int
) -> torch.Tensor:
    """Exactly round(rate·N) labels flipped to another class (uniform, or c → c+1 if asymmetric)."""
    n = labels.shape[0]
    gen = torch.Generator().manual_seed(_stream(seed, "train", 3) & (2**62 - 1))
    chosen = torch.randperm(n, generator=gen)[: round(rate * n)]
    flipped = labels.clone()
    if mode == "asymmetric":
        flipped[chosen] = (labels[chosen] + 1) % num_classes
    else:
        shift = torch.randint(1, num_classes, (chosen.numel(),), generator=gen)
        flipped[chosen] = (labels[chosen] + shift) % num_classes
    return flipped


def undertrained_epochs(total_epochs: int, fraction_removed: float) -> int:
    """The epoch at which the under-trained teacher's checkpoint is taken (at least 1)."""
    return max(1, round((1.0 - fraction_removed) * total_epochs))
