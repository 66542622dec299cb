"""One cell's teacher noise (:class:`NoiseSetting`), and the teacher-side corruptions: flipped
labels and an early stop. The kinds themselves live in :mod:`.kinds`.

Level 0 is exactly the clean teacher for every kind. One noise seed serves every level of a
kind, so the samples corrupted at ρ = 0.1 are among those corrupted at ρ = 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .kinds import noise_kind
from .random import stream


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
        return f"{self.kind}={self.level:g}{noise_kind(self.kind).label_suffix(self)}"

    @property
    def is_clean(self) -> bool:
        return self.kind == "none" or self.level == 0

    @property
    def changes_teacher(self) -> bool:
        return noise_kind(self.kind).changes_teacher and not self.is_clean

    def teacher_variant(self) -> dict[str, Any]:
        """What makes the noisy teacher differ from the clean one (part of its cache key)."""
        return noise_kind(self.kind).variant(self) if self.changes_teacher else {}

    def params(self) -> dict[str, Any]:
        return {
            "noise.kind": self.kind,
            "noise.level": self.level,
            **noise_kind(self.kind).params(self),
        }

    def apply(
        self,
        logits: torch.Tensor,
        indices: torch.Tensor,
        labels: torch.Tensor,
        split: str = "train",
        split_size: int | None = None,
    ) -> torch.Tensor:
        """The noisy teacher logits for samples ``indices`` of ``split`` (a new tensor)."""
        if self.is_clean:
            return logits
        return noise_kind(self.kind).corrupt(self, logits, indices, labels, split, split_size)


def flip_labels(
    labels: torch.Tensor, rate: float, num_classes: int, mode: str, seed: int
) -> torch.Tensor:
    """Exactly round(rate·N) labels flipped to another class (uniform, or c → c+1 if asymmetric)."""
    n = labels.shape[0]
    gen = torch.Generator().manual_seed(stream(seed, "train", 3) & (2**62 - 1))
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
