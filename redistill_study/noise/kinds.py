"""Noise kinds by name: each a class that says how it corrupts a teacher.

Two families:
- *logit* noise (``logit_gaussian``, ``confident_wrong``, ``overconfident``) transforms the
  teacher's logits for given sample indices, as a pure function of the noise seed, the split
  and the sample index — the same from a cache or from a fresh forward pass;
- *teacher* noise (``label_noise_teacher``, ``undertrained``) changes which teacher is trained
  (and cached); its logits then pass through unchanged.

A kind's seed comes from its *name* (:func:`redistill_study.noise.noise_seed`), so adding a kind
changes no existing corruption. Third parties add kinds with :func:`register_noise_kind`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .._util import did_you_mean
from .random import hashed_normal, stream

if TYPE_CHECKING:
    from .base import NoiseSetting


class NoiseKind:
    """Base class: a kind's name, whether it retrains the teacher, and how it corrupts."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    changes_teacher: ClassVar[bool] = False
    fraction: ClassVar[bool] = False  # levels are fractions in [0, 1]

    def corrupt(
        self,
        s: NoiseSetting,
        logits: torch.Tensor,
        indices: torch.Tensor,
        labels: torch.Tensor,
        split: str,
        split_size: int | None,
    ) -> torch.Tensor:
        return logits

    def variant(self, s: NoiseSetting) -> dict[str, Any]:
        """What makes the noisy teacher differ from the clean one (part of its cache key)."""
        return {}

    def params(self, s: NoiseSetting) -> dict[str, Any]:
        return {}

    def label_suffix(self, s: NoiseSetting) -> str:
        return ""

    def level_problem(self, levels: list[float]) -> str | None:
        if self.fraction and any(v > 1 for v in levels):
            return f"{self.name} levels are fractions in [0, 1]"
        return None


_KINDS: dict[str, NoiseKind] = {}


def register_noise_kind(cls: type[NoiseKind]) -> type[NoiseKind]:
    if cls.name in _KINDS and type(_KINDS[cls.name]) is not cls:
        raise ValueError(f"noise kind {cls.name!r} is already registered")
    _KINDS[cls.name] = cls()
    return cls


def noise_kind(name: str) -> NoiseKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(
            f"unknown noise kind {name!r}{did_you_mean(name, _KINDS)} (known: {', '.join(_KINDS)})"
        ) from None


def noise_kind_names() -> list[str]:
    return list(_KINDS)


@register_noise_kind
class NoNoise(NoiseKind):
    name = "none"
    summary = "the clean teacher"

    def level_problem(self, levels: list[float]) -> str | None:
        return None if levels == [0.0] else "kind 'none' takes no levels (or [0])"


@register_noise_kind
class LogitGaussian(NoiseKind):
    name = "logit_gaussian"
    summary = "Gaussian noise of sd σ (the level) added to the teacher's logits"

    def corrupt(self, s, logits, indices, labels, split, split_size):
        _n, c = logits.shape
        keys = (
            stream(s.seed, split, 1)
            + indices.to(torch.int64)[:, None] * c
            + torch.arange(c, device=logits.device)
        )
        return logits + (s.level * hashed_normal(keys)).to(logits.dtype)


@register_noise_kind
class ConfidentWrong(NoiseKind):
    name = "confident_wrong"
    summary = "on round(ρ·N) samples the top probability moves to a wrong class"
    fraction = True

    def corrupt(self, s, logits, indices, labels, split, split_size):
        if split_size is None:
            raise ValueError("confident_wrong needs split_size (the number of samples)")
        rank, offsets = self._plan(s, split, split_size, logits.device)
        chosen = (rank < round(s.level * split_size))[indices]
        num_classes = logits.shape[1]
        wrong = (labels + 1 + offsets[indices] % (num_classes - 1)) % num_classes
        return _swap_top(logits, wrong, chosen)

    @staticmethod
    def _plan(s: NoiseSetting, split: str, n: int, device: torch.device):
        key = ("confident_wrong", split, n, str(device))
        if key not in s._plans:
            gen = torch.Generator().manual_seed(stream(s.seed, split, 2) & (2**62 - 1))
            order = torch.randperm(n, generator=gen)
            rank = torch.empty(n, dtype=torch.int64)
            rank[order] = torch.arange(n)
            offsets = torch.randint(0, 2**31 - 1, (n,), generator=gen)
            s._plans[key] = (rank.to(device), offsets.to(device))
        return s._plans[key]


@register_noise_kind
class Overconfident(NoiseKind):
    name = "overconfident"
    summary = "logits multiplied by κ = 1 + level"

    def corrupt(self, s, logits, indices, labels, split, split_size):
        return logits * (1.0 + s.level)

    def params(self, s: NoiseSetting) -> dict[str, Any]:
        return {"noise.kappa": 1.0 + s.level}


@register_noise_kind
class LabelNoiseTeacher(NoiseKind):
    name = "label_noise_teacher"
    summary = "the teacher is trained on round(rate·N) flipped labels"
    changes_teacher = True
    fraction = True

    def variant(self, s: NoiseSetting) -> dict[str, Any]:
        return {"label_noise": {"rate": s.level, "mode": s.mode, "seed": s.seed}}

    def params(self, s: NoiseSetting) -> dict[str, Any]:
        return {"noise.mode": s.mode}

    def label_suffix(self, s: NoiseSetting) -> str:
        return "-asym" if s.mode == "asymmetric" else ""


@register_noise_kind
class Undertrained(NoiseKind):
    name = "undertrained"
    summary = "the teacher stopped after round((1 − level)·epochs) epochs"
    changes_teacher = True

    def variant(self, s: NoiseSetting) -> dict[str, Any]:
        return {"undertrained": {"fraction_removed": s.level}}

    def level_problem(self, levels: list[float]) -> str | None:
        if any(v >= 1 for v in levels):
            return "undertrained levels are the fraction of the teacher's epochs removed, in [0, 1)"
        return None


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
