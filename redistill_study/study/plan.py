"""From a config to the grid: cells (pair × noise setting × recipe), units (cell × method ×
phase), the arms' roles in the verdict, and the seeds.

Each unit is one Optuna study named ``<study>/<pair>/<noise>/<recipe>/<method>/<phase>``.
Every trial is enqueued up front with its *slot* (user attributes: the seed and the phase), so
several workers claim trials atomically from the storage and nothing runs twice. A method that
ignores the teacher (``ce``) is trained once per pair and recipe, in the pair's first noise
setting, and its runs stand for every noise setting of that pair. A recipe is a named variation
of the student recipe; every arm trains under every recipe unless a secondary recipe names its
arms.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..config import PairConfig, RecipeConfig, StudyConfig, TrainConfig
from ..data import dataset_info
from ..losses import get_method
from ..noise import NoiseSetting, noise_seed
from .arms import Arms, Claim, resolve_claims
from .attrs import Slot
from .method_plan import MethodPlan
from .phases import Phase, transfer_runs

# Search seeds sit this far above the study seed: never one of the evaluation seeds (≤ 1000).
TUNING_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class Cell:
    pair: PairConfig
    noise: NoiseSetting
    recipe: RecipeConfig

    @property
    def label(self) -> str:
        return f"{self.pair.label}/{self.noise.label}/{self.recipe.name}"

    @property
    def pair_noise(self) -> str:
        """What the cell's students are taught: its cells under other recipes share it."""
        return f"{self.pair.label}/{self.noise.label}"


@dataclass(frozen=True)
class Unit:
    study: str
    cell: Cell
    method: MethodPlan
    phase: Phase

    @property
    def name(self) -> str:
        return f"{self.study}/{self.cell.label}/{self.method.name}/{self.phase.value}"

    @property
    def evaluates_test(self) -> bool:
        return self.phase.evaluates_test


@dataclass(frozen=True)
class Plan:
    config: StudyConfig
    cells: tuple[Cell, ...]
    methods: tuple[MethodPlan, ...]
    claims: tuple[Claim, ...]
    margin: float

    @property
    def arms(self) -> Arms:
        """The first claim's arms (the headline)."""
        return self.claims[0].arms

    @property
    def seeds(self) -> list[int]:
        """The evaluation seeds: the same for every arm, so comparisons are paired."""
        return [self.config.seed + i for i in range(self.config.seeds)]

    @property
    def tuning_seed(self) -> int:
        t = self.config.tuning.seed
        return self.config.seed + TUNING_SEED_OFFSET if t is None else t

    @property
    def noise_labels(self) -> list[str]:
        return list(dict.fromkeys(c.noise.label for c in self.cells))

    @property
    def recipes(self) -> tuple[RecipeConfig, ...]:
        return tuple(self.config.recipes)

    @property
    def primary_recipe(self) -> str:
        return self.config.primary_recipe.name

    def method(self, name: str) -> MethodPlan:
        return next(m for m in self.methods if m.name == name)

    def trains_in(self, method: MethodPlan, cell: Cell) -> bool:
        """Whether the method has units in the cell: under the recipes that train it, and for
        a teacher-free method in the pair's first cell of each recipe only."""
        if not self.recipe_trains(cell.recipe, method.name):
            return False
        return method.uses_teacher or cell == self.home_cell(cell)

    def home_cell(self, cell: Cell) -> Cell:
        """The pair's first cell under the cell's recipe (where teacher-free methods train)."""
        return next(
            c
            for c in self.cells
            if c.pair.label == cell.pair.label and c.recipe.name == cell.recipe.name
        )

    @staticmethod
    def recipe_trains(recipe: RecipeConfig, method: str) -> bool:
        return recipe.methods is None or method in recipe.methods

    def first_units(self) -> list[Unit]:
        """The units that can start at once: fixed methods' seeds and tuned methods' searches."""
        return [
            Unit(self.config.name, cell, m, Phase.SEARCH if m.tune else Phase.SEEDS)
            for cell in self.cells
            for m in self.methods
            if self.trains_in(m, cell)
        ]

    def dependent_units(self) -> list[Unit]:
        """Units that start once the searches they need are finished: ``final`` (this pair's
        best setting) and, with two or more pairs, ``transfer`` (chosen on the other pairs)."""
        out = []
        for unit in self.first_units():
            if unit.phase is Phase.SEARCH:
                out.append(Unit(unit.study, unit.cell, unit.method, Phase.FINAL))
                if self.units_of_generalisation() > 1 and self.runs_transfer():
                    out.append(Unit(unit.study, unit.cell, unit.method, Phase.TRANSFER))
        return out

    def runs_transfer(self) -> bool:
        return transfer_runs(self.config.transfer, self.methods, len(self.seeds))

    def sources(self, dependent: Unit) -> list[Unit]:
        """The search units whose trials decide a dependent unit's setting."""
        if dependent.phase is Phase.FINAL:
            return [Unit(dependent.study, dependent.cell, dependent.method, Phase.SEARCH)]
        # Leave the unit out, not only the pair: pairs that share the held-out pair's teacher
        # are not independent of it.
        held_out = self.teacher_label(dependent.cell.pair)
        return [
            Unit(dependent.study, cell, dependent.method, Phase.SEARCH)
            for cell in self.cells
            if cell.noise == dependent.cell.noise
            and cell.recipe.name == dependent.cell.recipe.name
            and self.teacher_label(cell.pair) != held_out
        ]

    def all_units(self) -> list[Unit]:
        return self.first_units() + self.dependent_units()

    def slots(self, unit: Unit) -> list[Slot]:
        """The slots to enqueue in ``unit``'s study: one per seed (per trial in a search)."""
        if unit.phase is Phase.SEARCH:
            seeds = [self.tuning_seed] * unit.method.trials
        else:
            seeds = self.seeds
        return [
            Slot(
                slot=i,
                seed=seed,
                phase=unit.phase,
                cell=unit.cell.label,
                recipe=unit.cell.recipe.name,
                method=unit.method.name,
            )
            for i, seed in enumerate(seeds)
        ]

    def student_recipe(self, pair: PairConfig, recipe: RecipeConfig | None = None) -> TrainConfig:
        """The study's ``train``, then the pair's overrides, then the recipe's (default: the
        primary recipe); ``lr_scale`` multiplies the learning rate last."""
        recipe = recipe or self.config.primary_recipe
        return TrainConfig.model_validate(
            recipe.applied_to({**self.config.train.model_dump(), **pair.train})
        )

    def cell_recipe(self, cell: Cell) -> TrainConfig:
        return self.student_recipe(cell.pair, cell.recipe)

    def student_key(self, cell: Cell) -> str:
        """Cells with the same key train their students together: same architecture, same
        arguments, same recipe up to the gradient clip (each member clips its own gradient)."""
        shared = self.cell_recipe(cell).model_dump(exclude={"grad_clip"})
        return json.dumps(
            [cell.pair.student.model, cell.pair.student.args, shared], sort_keys=True, default=str
        )

    def teacher_recipe(self, pair: PairConfig) -> TrainConfig:
        return pair.teacher.train or self.config.teacher_train

    def teacher_seed(self, pair: PairConfig) -> int:
        return self.config.seed if pair.teacher.seed is None else pair.teacher.seed

    def teacher_label(self, pair: PairConfig) -> str:
        """The teacher's identity: pairs with the same label share one teacher, and the verdict
        then counts them as one unit."""
        t = pair.teacher
        label = t.model
        if t.args:
            label += json.dumps(t.args, sort_keys=True, separators=(",", ":"))
        if t.checkpoint:
            return f"{label}@{t.checkpoint}"
        recipe = self.teacher_recipe(pair)
        if recipe != self.config.teacher_train:
            blob = json.dumps(recipe.model_dump(), sort_keys=True).encode()
            label += "~" + hashlib.sha256(blob).hexdigest()[:6]
        if t.normalization is not None:
            label += "~renorm"
        return f"{label}#{self.teacher_seed(pair)}"

    def student_label(self, pair: PairConfig) -> str:
        """The student's identity: model and arguments (its seeds are the evaluation seeds)."""
        s = pair.student
        if not s.args:
            return s.model
        return s.model + json.dumps(s.args, sort_keys=True, separators=(",", ":"))

    def units_of_generalisation(self) -> int:
        return len({self.teacher_label(p) for p in self.config.pairs})

    def distinct_students(self) -> int:
        return len({self.student_label(p) for p in self.config.pairs})

    @property
    def failure_margin(self) -> float:
        return self.config.verdict.failure_margin or 3 * self.margin

    def protocol(self) -> dict[str, Any]:
        """What may not change once the study has started (checked on every resume)."""
        return {
            "seeds": self.seeds,
            "tuning_seed": self.tuning_seed,
            # A recipe's settings are locked once declared; a recipe can be added later (to
            # rerun the arms under a stabilised recipe), not changed.
            "recipes": {
                r.name: {"train": r.overrides, "lr_scale": r.lr_scale, "methods": r.methods}
                for r in self.recipes
            },
            "verdict": {
                "margin": self.margin,
                "alpha": self.config.verdict.alpha,
                **self.arms.as_dict(),
                # Absent where the study declares no claims, so that a study from before claims
                # resumes with the protocol it recorded.
                **(
                    {"claims": [c.as_dict() for c in self.claims]}
                    if self.config.verdict.claims
                    else {}
                ),
                # Likewise the declared searches: a changed space would mix two in one search.
                **self._declared_spaces(),
                "primary_recipe": self.primary_recipe,
                "failure_margin": self.failure_margin,
                "min_pairs": self.config.verdict.min_pairs,
                "min_students": self.config.verdict.min_students,
                "min_teachers": self.config.verdict.min_teachers,
            },
        }

    def _declared_spaces(self) -> dict[str, Any]:
        tuned = [m for m in self.methods if m.tune]
        searches = {m.name: list(m.config.search) for m in tuned if m.config.search}
        ranges = {m.name: m.config.ranges for m in tuned if m.config.ranges}
        out: dict[str, Any] = {"searches": searches} if searches else {}
        return out | ({"ranges": ranges} if ranges else {})


def build_plan(config: StudyConfig) -> Plan:
    cells = []
    for recipe in config.recipes:
        for pair in config.pairs:
            for noise in config.noise:
                for level in noise.levels:
                    setting = NoiseSetting(
                        kind=noise.kind,
                        level=float(level),
                        seed=noise_seed(config.seed, noise.kind),
                        mode=noise.mode,
                    )
                    cells.append(Cell(pair, setting, recipe))
    methods_t = tuple(
        MethodPlan(m, get_method(m.registered), m.is_tuned(), m.trials or config.tuning.trials)
        for m in config.methods
    )
    margin = config.verdict.margin
    if margin is None:
        margin = dataset_info(config.dataset.name).default_margin
    return Plan(config, tuple(cells), methods_t, resolve_claims(config, methods_t), margin)
