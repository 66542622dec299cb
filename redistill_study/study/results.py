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
from dataclasses import dataclass, field
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ..config import RecipeConfig
from ..data import dataset_info
from .phases import Phase
from .plan import Plan, Unit

METRIC_PREFIXES = ("val/", "test/", "teacher/", "train/")


@dataclass
class Results:
    evaluations: list[dict[str, Any]]
    searches: list[dict[str, Any]]
    pending: int  # planned evaluation slots not finished yet
    study: dict[str, Any] = field(default_factory=dict)
    pending_by_recipe: dict[str, int] = field(default_factory=dict)  # the same, per recipe


def _latest_per_slot(trials: list[FrozenTrial]) -> dict[int, FrozenTrial]:
    latest: dict[int, FrozenTrial] = {}
    for t in trials:
        slot = t.user_attrs.get("slot")
        if slot is None or t.system_attrs.get("withdrawn"):
            continue  # a withdrawn copy never ran: its original stands
        if slot not in latest or t.number > latest[slot].number:
            latest[slot] = t
    return latest


def _status(t: FrozenTrial) -> str | None:
    if t.state == TrialState.COMPLETE:
        return str(t.user_attrs.get("status", "complete"))
    if t.state == TrialState.FAIL:
        return "failed"
    if t.state == TrialState.PRUNED:
        return "pruned"
    return None  # waiting or running


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
    }


def _recipe_text(recipe: RecipeConfig) -> str:
    """A recipe in words: what it changes ("as declared" for none)."""
    changes = [f"{k} {v}" for k, v in recipe.overrides.items()]
    if recipe.lr_scale != 1:
        changes.append(f"lr × {recipe.lr_scale:g}")
    return ", ".join(changes) or "as declared"


def _unit_fields(plan: Plan, unit: Unit) -> dict[str, Any]:
    cell = unit.cell
    return {
        "pair": cell.pair.label,
        "teacher": plan.teacher_label(cell.pair),
        "student": plan.student_label(cell.pair),
        "noise": cell.noise.label,
        "noise.kind": cell.noise.kind,
        "noise.level": cell.noise.level,
        "recipe": cell.recipe.name,
        "method": unit.method.name,
        "phase": unit.phase.value,
    }


def read_results(storage: BaseStorage, plan: Plan) -> Results:
    names = {s.study_name for s in storage.get_all_studies()}
    evaluations: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []
    pending: dict[str, int] = defaultdict(int)
    default_classes = dataset_info(plan.config.dataset.name).num_classes
    for unit in plan.all_units():
        study_id = storage.get_study_id_from_name(unit.name) if unit.name in names else None
        trials = storage.get_all_trials(study_id, deepcopy=False) if study_id is not None else []
        latest = _latest_per_slot(trials)
        if unit.phase is Phase.SEARCH:
            for t in sorted(latest.values(), key=lambda t: t.number):
                status = _status(t)
                if status is None or status == "failed":
                    continue
                searches.append(
                    {
                        **_unit_fields(plan, unit),
                        "trial": t.number,
                        "params": dict(t.params),
                        "lam": t.params.get("lam"),
                        "value": t.value if t.state == TrialState.COMPLETE else None,
                        "status": status,
                    }
                )
            continue
        if study_id is None or not trials:
            # Not queued yet (a later phase, or not started).
            pending[unit.cell.recipe.name] += len(plan.slots(unit))
            continue
        for slot, t in sorted(latest.items()):
            status = _status(t)
            if status is None:
                pending[unit.cell.recipe.name] += 1
                continue
            classes = int(t.user_attrs.get("classes") or default_classes or 0) or None
            chance = 1.0 / classes if classes else None
            record = {
                **_unit_fields(plan, unit),
                "slot": slot,
                "seed": int(t.user_attrs["seed"]),
                "status": status,
                "classes": classes,
                "chance": chance,
                "reason": t.user_attrs.get("fail_reason", ""),
                "hparams": t.user_attrs.get("hparams"),
                "source_pair": t.user_attrs.get("source_pair"),
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
                "divergence_step": t.user_attrs.get("divergence.step"),
                "divergence_grad_norm": t.user_attrs.get("divergence.last_finite_grad_norm"),
                **{k: v for k, v in t.user_attrs.items() if k.startswith(METRIC_PREFIXES)},
            }
            if status != "complete":
                record["test/top1"] = chance
            evaluations.append(record)
    evaluations += _shared_copies(plan, evaluations)
    return Results(evaluations, searches, sum(pending.values()), study_summary(plan), dict(pending))


def _shared_copies(plan: Plan, evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A teacher-free method's runs, repeated for the pair's other noise settings, with the
    teacher metrics of the cell they stand in."""
    teacher_metrics: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for r in evaluations:
        metrics = {k: v for k, v in r.items() if k.startswith("teacher/")}
        if metrics:
            teacher_metrics[(r["pair"], r["noise"])].update(metrics)
    copies = []
    for method in plan.methods:
        if method.uses_teacher:
            continue
        for cell in plan.cells:
            if plan.trains_in(method, cell) or not plan.recipe_trains(cell.recipe, method.name):
                continue
            home = plan.home_cell(cell)
            for r in evaluations:
                if (r["method"], r["pair"], r["noise"], r["recipe"]) == (
                    method.name,
                    home.pair.label,
                    home.noise.label,
                    home.recipe.name,
                ):
                    copy = {k: v for k, v in r.items() if not k.startswith("teacher/")}
                    copy.update(teacher_metrics.get((cell.pair.label, cell.noise.label), {}))
                    copy.update(
                        noise=cell.noise.label,
                        **{"noise.kind": cell.noise.kind, "noise.level": cell.noise.level},
                        shared_from=home.label,
                    )
                    copies.append(copy)
    return copies
