"""The one small interface every distillation method implements, and its search-space types.

A method is a callable object built from hyper-parameters. Given student logits, teacher
logits, labels and a :class:`Context`, it returns a dict of *named loss terms*; the trainer sums
them for the backward pass and logs each one separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

import torch
import torch.nn.functional as F

from .._util import did_you_mean
from .divergence import at_least_float32, full_precision, power_divergence_from_log_probs
from .fused import SoftTargetBatch, SoftTargetForm


@dataclass(frozen=True)
class Context:
    """Where training stands when a loss is evaluated (used by warm-ups and schedules)."""

    epoch: int = 0
    total_epochs: int = 1
    num_classes: int | None = None


def sum_terms(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """Loss terms added up for the backward pass (Python's ``sum``, in the terms' order)."""
    # A tensor for one term or more (every method returns some); the stub of ``sum`` adds its
    # start value, the int 0, to the type.
    return cast(torch.Tensor, sum(terms))


class TrialLike(Protocol):  # the part of optuna.Trial that search spaces use
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False

    def suggest(self, trial: TrialLike, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False

    def suggest(self, trial: TrialLike, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{{{self.low}..{self.high}}}" + (" log" if self.log else "")


@dataclass(frozen=True)
class Choice:
    choices: tuple[Any, ...]

    def suggest(self, trial: TrialLike, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def __str__(self) -> str:
        return "{" + ", ".join(map(str, self.choices)) + "}"


SearchDimension = FloatRange | IntRange | Choice


class Method:
    """Base class: declare ``name``, ``defaults`` and ``search_space``; implement ``terms``.

    ``domains`` lists the values each hyper-parameter may take at all (wider than the search
    space), so a config is rejected before training when a value is out of range.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    search_space: ClassVar[dict[str, SearchDimension]] = {}
    domains: ClassVar[dict[str, SearchDimension]] = {}
    tuned_by_default: ClassVar[bool] = False
    uses_teacher: ClassVar[bool] = True

    def __init__(self, **hparams: Any) -> None:
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(
                f"method {self.name!r} has no hyper-parameter {unknown[0]!r} (known: {known})"
                + did_you_mean(unknown[0], self.defaults, n=1)
            )
        self.hparams: dict[str, Any] = {**self.defaults, **hparams}
        for key, value in self.hparams.items():
            domain = self.domains.get(key)
            if domain is not None and not domain.contains(value):
                raise ValueError(
                    f"method {self.name!r}: {key}={value!r} is outside its domain {domain}"
                )

    def __call__(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context | None = None,
    ) -> dict[str, torch.Tensor]:
        return self.terms(student_logits, teacher_logits, labels, context or Context())

    def terms(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context,
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def soft_target_form(self) -> SoftTargetForm | None:
        """This method's constants in the shared soft-target shape (:mod:`.fused`), or None
        where its loss has another shape (then a vectorised cohort calls :meth:`terms`)."""
        return None

    def soft_target_batch(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        context: Context,
        memo: dict | None = None,
    ) -> SoftTargetBatch:
        """Per-batch inputs of the shared shape (only called where a form exists);
        ``student_logits`` come detached; ``memo`` is shared by a cohort's members for one
        batch (for results that do not depend on the member, such as a softened teacher)."""
        raise NotImplementedError

    @classmethod
    def suggest(cls, trial: TrialLike) -> dict[str, Any]:
        """Sample this method's search space on an Optuna trial (params named after the keys)."""
        return {key: dim.suggest(trial, key) for key, dim in cls.search_space.items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


# --- helpers shared by the soft-target methods ------------------------------------------------

LAM_DOMAIN = FloatRange(-1e6, 1e6)
TEMPERATURE_DOMAIN = FloatRange(1e-3, 1e3)
WEIGHT_DOMAIN = FloatRange(0.0, 1e6)


def soft_divergence(
    teacher_log_probs: torch.Tensor, student_log_probs: torch.Tensor, lam: float
) -> torch.Tensor:
    """Per-sample D_λ(p‖q); λ = 0 takes PyTorch's KL kernel so `kd` is the familiar baseline."""
    with full_precision(student_log_probs):
        t = at_least_float32(teacher_log_probs)
        s = at_least_float32(student_log_probs)
        if lam == 0.0:
            return F.kl_div(s, t, reduction="none", log_target=True).sum(-1)
        return power_divergence_from_log_probs(t, s, lam, reduction="none")


def log_softmax_t(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log_softmax(z / T) in at least float32 (autocast-safe)."""
    with full_precision(logits):
        return F.log_softmax(at_least_float32(logits) / temperature, dim=-1)


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with full_precision(student_logits):
        return F.cross_entropy(at_least_float32(student_logits), labels)


def require_teacher(method: Method, teacher_logits: torch.Tensor | None) -> torch.Tensor:
    if teacher_logits is None:
        raise ValueError(f"method {method.name!r} needs teacher logits")
    return teacher_logits.detach()
