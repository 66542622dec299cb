"""Each cohort member's loss terms, kept per optimiser step and summed once per epoch."""

from __future__ import annotations

import torch

from .members import Member


class TermSums:
    """Each member's loss terms, kept per step and summed once per epoch (no tensor op per
    term and step)."""

    def __init__(self) -> None:
        self.steps = 0
        self.terms: dict[int, dict[str, list[torch.Tensor]]] = {}

    def add(self, m: Member, terms: dict[str, torch.Tensor]) -> None:
        own = self.terms.setdefault(id(m), {})
        for name, value in terms.items():
            own.setdefault(f"train/{name}", []).append(value.detach())

    def at(self, m: Member, step: int) -> dict[str, float]:
        own = self.terms.get(id(m), {})
        return {k: float(v[step]) for k, v in own.items() if step < len(v)}

    def means(self, m: Member) -> dict[str, float]:
        steps = max(self.steps, 1)
        return {
            k: float(torch.stack(v).float().sum()) / steps
            for k, v in self.terms.get(id(m), {}).items()
        }
