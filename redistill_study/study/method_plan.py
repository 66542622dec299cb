"""One arm of a study as the plan runs it: its config, its registered method class, whether it
is searched and with how many trials, and what a search samples."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..config import MethodConfig
from ..losses import FloatRange, Method, SearchDimension
from ..losses.base import TrialLike


@dataclass(frozen=True)
class MethodPlan:
    config: MethodConfig
    cls: type[Method]
    tune: bool
    trials: int

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def uses_teacher(self) -> bool:
        return self.cls.uses_teacher

    @property
    def space(self) -> dict[str, SearchDimension]:
        """What a search samples: the method's space, or the declared part of it, with any
        declared narrower ranges."""
        full = self.cls.search_space
        ranges = self.config.ranges or {}
        out: dict[str, SearchDimension] = {}
        for k in self.config.search or full:
            dim = full[k]
            if k in ranges and isinstance(dim, FloatRange):  # validated: floats only
                dim = replace(dim, low=ranges[k][0], high=ranges[k][1])
            out[k] = dim
        return out

    def suggest(self, trial: TrialLike) -> dict[str, Any]:
        """Sample :attr:`space` on an Optuna trial (params named after the keys)."""
        return {key: dim.suggest(trial, key) for key, dim in self.space.items()}

    def hparams(self) -> dict[str, Any]:
        """The method's defaults with the config's fixed parameters."""
        return {**self.cls.defaults, **self.config.params}
