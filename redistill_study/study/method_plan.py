"""One arm of a study as the plan runs it: its config, its registered method class, whether it
is searched and with how many trials, and what a search samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import MethodConfig
from ..losses import Method, SearchDimension
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
        """What a search samples: the method's space, or the declared part of it."""
        full = self.cls.search_space
        return {k: full[k] for k in self.config.search or full}

    def suggest(self, trial: TrialLike) -> dict[str, Any]:
        """Sample :attr:`space` on an Optuna trial (params named after the keys)."""
        return {key: dim.suggest(trial, key) for key, dim in self.space.items()}

    def hparams(self) -> dict[str, Any]:
        """The method's defaults with the config's fixed parameters."""
        return {**self.cls.defaults, **self.config.params}
