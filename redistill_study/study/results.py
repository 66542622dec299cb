"""The read-only results seam: plain evaluation and search records from the Optuna storage.

Everything downstream — the summary, the verdict, the dashboard, the power calculator — takes
these records and nothing else. Reading never writes: no table is created, no trial touched.

Per slot (a seed of a unit) the latest trial counts: a trial failed by a dead or interrupted
worker is superseded by its re-queued copy (:mod:`.retry`; a withdrawn copy never counts).
An evaluation run that diverged or failed is a record with ``status`` ``diverged`` /
``failed`` and ``test/top1`` at chance (1 / classes). A teacher-free method (``ce``) trains
once per pair and recipe; its records stand for every noise setting of that pair
(``shared_from`` names the cell they were trained in). Every record names its ``recipe``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ..config import RecipeConfig
from ..data import dataset_info
from .attrs import TrialRecord
from .phases import Phase, Status
from .plan import Plan, Unit
from .records import Evaluation, Search


@dataclass
class Results:
    evaluations: list[dict[str, Any]]
    searches: list[dict[str, Any]]
    pending: int  # planned evaluation slots not finished yet
    study: dict[str, Any] = field(default_factory=dict)
    pending_by_recipe: dict[str, int] = field(default_factory=dict)  # the same, per recipe


def _latest_per_slot(trials: list[FrozenTrial]) -> dict[int, TrialRecord]:
    latest: dict[int, TrialRecord] = {}
    for t in map(TrialRecord.from_trial, trials):
        if t.slot is None or t.withdrawn:
            continue  # a withdrawn copy never ran: its original stands
        if t.slot.slot not in latest or t.number > latest[t.slot.slot].number:
            latest[t.slot.slot] = t
    return latest


def study_summary(plan: Plan) -> dict[str, Any]:
    """What the analysis needs to know about the study besides its records."""
    c = plan.config
    return {
        "name": c.name,
        "description": c.description,
        "dataset": c.dataset.name,
        "classes": dataset_info(c.dataset.name).num_classes,
        "pairs": [p.label for p in c.pairs],
        "teachers": {p.label: plan.teacher_label(p) for p in c.pairs},
        "students": {p.label: plan.student_label(p) for p in c.pairs},
        "units": plan.units_of_generalisation(),
        "noise_order": plan.noise_labels,
        "recipes": {r.name: _recipe_text(r) for r in plan.recipes},
        "primary_recipe": plan.primary_recipe,
        "recipe_methods": {
            r.name: [m.name for m in plan.methods if plan.recipe_trains(r, m.name)]
            for r in plan.recipes
        },
        "methods": [m.name for m in plan.methods],
        "tuned": [m.name for m in plan.methods if m.tune],
        "seeds": plan.seeds,
        "tuning_seed": plan.tuning_seed,
        "margin": plan.margin,
        "alpha": c.verdict.alpha,
        "failure_margin": plan.failure_margin,
        "min_pairs": c.verdict.min_pairs,
        "min_students": c.verdict.min_students,
        "min_teachers": c.verdict.min_teachers,
        **plan.arms.as_dict(),
        "claims": [claim.as_dict() for claim in plan.claims],
    }


def _recipe_text(recipe: RecipeConfig) -> str:
    """A recipe in words: what it changes ("as declared" for none)."""
    changes = [f"{k} {v}" for k, v in recipe.overrides.items()]
    if recipe.lr_scale != 1:
        changes.append(f"lr × {recipe.lr_scale:g}")
    return ", ".join(changes) or "as declared"


@dataclass(frozen=True)
class _Where:
    """The unit's coordinates, as every record of it names them."""

    pair: str
    teacher: str
    student: str
    noise: str
    noise_kind: str
    noise_level: float
    recipe: str
    method: str

    @classmethod
    def of(cls, plan: Plan, unit: Unit) -> _Where:
        cell = unit.cell
        return cls(
            cell.pair.label,
            plan.teacher_label(cell.pair),
            plan.student_label(cell.pair),
            cell.noise.label,
            cell.noise.kind,
            cell.noise.level,
            cell.recipe.name,
            unit.method.name,
        )


def _search(where: _Where, t: TrialRecord) -> Search:
    assert t.status is not None
    value = t.value if t.state == TrialState.COMPLETE else None
    return Search(trial=t.number, params=t.params, value=value, status=t.status, **vars(where))


def _evaluation(
    where: _Where, unit: Unit, t: TrialRecord, default_classes: int | None
) -> Evaluation:
    assert t.slot is not None and t.status is not None
    setting = t.slot.choice
    return Evaluation(
        **vars(where),
        phase=unit.phase,
        slot=t.slot.slot,
        seed=t.slot.seed,
        status=t.status,
        classes=t.classes or default_classes or None,
        reason=t.reason,
        hparams=t.hparams,
        source_pair=setting.source_pair if setting else None,
        mlflow_run_id=t.mlflow_run_id,
        divergence_step=t.divergence.get("step"),
        divergence_grad_norm=t.divergence.get("last_finite_grad_norm"),
        metrics=t.metrics,
    )


def read_results(storage: BaseStorage, plan: Plan) -> Results:
    names = {s.study_name for s in storage.get_all_studies()}
    evaluations: list[Evaluation] = []
    searches: list[dict[str, Any]] = []
    pending: dict[str, int] = defaultdict(int)
    default_classes = dataset_info(plan.config.dataset.name).num_classes
    for unit in plan.all_units():
        study_id = storage.get_study_id_from_name(unit.name) if unit.name in names else None
        trials = storage.get_all_trials(study_id, deepcopy=False) if study_id is not None else []
        latest = _latest_per_slot(trials)
        where = _Where.of(plan, unit)
        if unit.phase is Phase.SEARCH:
            for t in sorted(latest.values(), key=lambda t: t.number):
                if t.status is not None and t.status is not Status.FAILED:
                    searches.append(_search(where, t).row())
            continue
        if study_id is None or not trials:
            # Not queued yet (a later phase, or not started).
            pending[unit.cell.recipe.name] += len(plan.slots(unit))
            continue
        for _, t in sorted(latest.items()):
            if t.status is None:
                pending[unit.cell.recipe.name] += 1
            else:
                evaluations.append(_evaluation(where, unit, t, default_classes))
    evaluations += _shared_copies(plan, evaluations)
    rows = [e.row() for e in evaluations]
    return Results(rows, searches, sum(pending.values()), study_summary(plan), dict(pending))


def _shared_copies(plan: Plan, evaluations: list[Evaluation]) -> list[Evaluation]:
    """A teacher-free method's runs, repeated for the pair's other noise settings, with the
    teacher metrics of the cell they stand in."""
    teacher_metrics: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for r in evaluations:
        metrics = {k: v for k, v in r.metrics.items() if k.startswith("teacher/")}
        if metrics:
            teacher_metrics[(r.pair, r.noise)].update(metrics)
    copies = []
    for method in plan.methods:
        if method.uses_teacher:
            continue
        for cell in plan.cells:
            if plan.trains_in(method, cell) or not plan.recipe_trains(cell.recipe, method.name):
                continue
            home = plan.home_cell(cell)
            for r in evaluations:
                if (r.method, r.pair, r.noise, r.recipe) == (
                    method.name,
                    home.pair.label,
                    home.noise.label,
                    home.recipe.name,
                ):
                    metrics = {k: v for k, v in r.metrics.items() if not k.startswith("teacher/")}
                    metrics.update(teacher_metrics.get((cell.pair.label, cell.noise.label), {}))
                    copies.append(
                        replace(
                            r,
                            noise=cell.noise.label,
                            noise_kind=cell.noise.kind,
                            noise_level=cell.noise.level,
                            shared_from=home.label,
                            metrics=metrics,
                        )
                    )
    return copies
