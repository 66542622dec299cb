"""The records the analysis reads: one evaluation run, one search trial.

:mod:`.results` builds them from the storage; the tests build theirs through the same
constructors, so the shape the analysis takes is written once. The analysis reads a record as
a flat mapping (:meth:`Evaluation.row`), keyed as the MLflow metrics and params are
(``test/top1``, ``noise.kind``).

>>> run = Evaluation(pair="p0", teacher="t0", student="s0", noise="none", method="kd",
...                  phase=Phase.SEEDS, seed=0, status=Status.COMPLETE, test_top1=0.9, classes=10)
>>> row = run.row()
>>> row["test/top1"], row["phase"], row["chance"]
(0.9, 'seeds', 0.1)
>>> Evaluation(pair="p0", teacher="t0", student="s0", noise="none", method="kd",
...            phase=Phase.SEEDS, seed=1, status=Status.DIVERGED, classes=10).row()["test/top1"]
0.1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .phases import Phase, Status


@dataclass(frozen=True)
class Evaluation:
    """One evaluation run (a slot of a ``seeds``, ``final`` or ``transfer`` unit). A run that
    did not complete reads at chance (1 / classes); ``metrics`` are the other metrics by their
    MLflow names (``test/top5``, ``teacher/test/top1``, ``train/grad_norm_peak``)."""

    pair: str
    teacher: str
    student: str
    noise: str
    method: str
    phase: Phase
    seed: int
    status: Status
    test_top1: float | None = None
    classes: int | None = None
    recipe: str = "plain"
    slot: int | None = None
    noise_kind: str = "none"
    noise_level: float = 0.0
    reason: str = ""
    hparams: Mapping[str, Any] | None = None
    source_pair: str | None = None
    mlflow_run_id: str | None = None
    divergence_step: int | None = None
    divergence_grad_norm: float | None = None
    shared_from: str | None = None  # a teacher-free run standing in for this noise setting
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def chance(self) -> float | None:
        return 1.0 / self.classes if self.classes else None

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            **_coordinates(self),
            "phase": self.phase.value,
            "slot": self.slot if self.slot is not None else self.seed,
            "seed": self.seed,
            "status": self.status.value,
            "classes": self.classes,
            "chance": self.chance,
            "reason": self.reason,
            "hparams": dict(self.hparams) if self.hparams is not None else None,
            "source_pair": self.source_pair,
            "mlflow_run_id": self.mlflow_run_id,
            "divergence_step": self.divergence_step,
            "divergence_grad_norm": self.divergence_grad_norm,
            **self.metrics,
        }
        if self.test_top1 is not None:
            row["test/top1"] = self.test_top1
        if self.status is not Status.COMPLETE:
            row["test/top1"] = self.chance
        if self.shared_from is not None:
            row["shared_from"] = self.shared_from
        return row


@dataclass(frozen=True)
class Search:
    """One search trial (validation only): its suggested ``params`` and validation top-1."""

    pair: str
    teacher: str
    student: str
    noise: str
    method: str
    trial: int
    params: Mapping[str, Any]
    value: float | None
    status: Status
    recipe: str = "plain"
    noise_kind: str = "none"
    noise_level: float = 0.0

    def row(self) -> dict[str, Any]:
        return {
            **_coordinates(self),
            "phase": Phase.SEARCH.value,
            "trial": self.trial,
            "params": dict(self.params),
            "lam": self.params.get("lam"),
            "value": self.value,
            "status": self.status.value,
        }


def _coordinates(record: Evaluation | Search) -> dict[str, Any]:
    """Where a record was trained, keyed as the MLflow params are."""
    return {
        "pair": record.pair,
        "teacher": record.teacher,
        "student": record.student,
        "noise": record.noise,
        "noise.kind": record.noise_kind,
        "noise.level": record.noise_level,
        "recipe": record.recipe,
        "method": record.method,
    }
