"""From a config to the grid: cells (pair × noise setting) and units (cell × method × phase).

Each unit is one Optuna study named ``<study>/<pair>/<noise>/<method>/<phase>``:
- ``seeds``  — a fixed method (no tuning) trained with every seed, scored on test;
- ``search`` — a tuned method's Optuna search on the validation split (never on test);
- ``final``  — the best ``search`` setting retrained with every seed, scored on test;
- ``transfer`` — leave-one-pair-out: the setting that did best on the *other* pairs' searches,
  retrained with every seed on this pair, scored on test.
Every trial is enqueued up front with its *slot* (user attributes: the seed and the phase),
so several workers claim trials atomically from the storage and nothing runs twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import MethodConfig, PairConfig, StudyConfig, TrainConfig
from ..losses import Method, get_method
from ..noise import NOISE_KINDS, NoiseSetting

EVALUATION_PHASES = ("seeds", "final", "transfer")


@dataclass(frozen=True)
class Cell:
    pair: PairConfig
    noise: NoiseSetting

    @property
    def label(self) -> str:
        return f"{self.pair.label}/{self.noise.label}"


@dataclass(frozen=True)
class MethodPlan:
    config: MethodConfig
    cls: type[Method]
    tune: bool
    trials: int

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class Unit:
    study: str
    cell: Cell
    method: MethodPlan
    phase: str

    @property
    def name(self) -> str:
        return f"{self.study}/{self.cell.label}/{self.method.name}/{self.phase}"

    @property
    def evaluates_test(self) -> bool:
        return self.phase in EVALUATION_PHASES


@dataclass(frozen=True)
class Plan:
    config: StudyConfig
    cells: tuple[Cell, ...]
    methods: tuple[MethodPlan, ...]

    @property
    def seeds(self) -> list[int]:
        return [self.config.seed + i for i in range(self.config.seeds)]

    @property
    def tuning_seed(self) -> int:
        return self.config.seed

    def first_units(self) -> list[Unit]:
        """The units that can start at once: fixed methods' seeds and tuned methods' searches."""
        return [
            Unit(self.config.name, cell, m, "search" if m.tune else "seeds")
            for cell in self.cells
            for m in self.methods
        ]

    def final_unit(self, search: Unit) -> Unit:
        return Unit(self.config.name, search.cell, search.method, "final")

    def transfer_unit(self, search: Unit) -> Unit:
        return Unit(self.config.name, search.cell, search.method, "transfer")

    def dependent_units(self) -> list[Unit]:
        """Units that start once the searches they need are finished: ``final`` (this pair's
        best setting) and, with two or more pairs, ``transfer`` (the setting that did best on
        the *other* pairs)."""
        out = []
        for unit in self.first_units():
            if unit.phase == "search":
                out.append(self.final_unit(unit))
                if len(self.config.pairs) > 1:
                    out.append(self.transfer_unit(unit))
        return out

    def sources(self, dependent: Unit) -> list[Unit]:
        """The search units whose trials decide a dependent unit's setting."""
        if dependent.phase == "final":
            return [Unit(dependent.study, dependent.cell, dependent.method, "search")]
        return [
            Unit(dependent.study, cell, dependent.method, "search")
            for cell in self.cells
            if cell.noise == dependent.cell.noise and cell.pair.label != dependent.cell.pair.label
        ]

    def all_units(self) -> list[Unit]:
        return self.first_units() + self.dependent_units()

    def slots(self, unit: Unit) -> list[dict[str, Any]]:
        """The user attributes of each trial to enqueue in ``unit``'s study."""
        if unit.phase == "search":
            seeds = [self.tuning_seed] * unit.method.trials
        else:
            seeds = self.seeds
        return [
            {
                "slot": i,
                "seed": seed,
                "phase": unit.phase,
                "cell": unit.cell.label,
                "method": unit.method.name,
            }
            for i, seed in enumerate(seeds)
        ]

    def student_recipe(self, pair: PairConfig) -> TrainConfig:
        return TrainConfig.model_validate({**self.config.train.model_dump(), **pair.train})

    def teacher_recipe(self, pair: PairConfig) -> TrainConfig:
        return pair.teacher.train or self.config.teacher_train


def noise_seed(config: StudyConfig, kind: str) -> int:
    """One seed per (study seed, noise kind): every method and seed of a cell sees the same
    corruption, and the levels of a kind are nested."""
    return config.seed * 1000 + NOISE_KINDS.index(kind)


def build_plan(config: StudyConfig) -> Plan:
    cells = []
    for pair in config.pairs:
        for noise in config.noise:
            for level in noise.levels:
                setting = NoiseSetting(
                    kind=noise.kind,
                    level=float(level),
                    seed=noise_seed(config, noise.kind),
                    mode=noise.mode,
                )
                cells.append(Cell(pair, setting))
    methods = []
    for m in config.methods:
        cls = get_method(m.name)
        tune = cls.tuned_by_default if m.tune is None else m.tune
        methods.append(MethodPlan(m, cls, tune, m.trials or config.tuning.trials))
    return Plan(config, tuple(cells), tuple(methods))
