"""The verdict: does one fixed setting generalise across teacher–student pairs?

For every declared fixed arm F (by default ``redistill``, D_{2/3}(p‖q), then
``redistill_student_first``, D_{2/3}(q‖p)), noise setting and pair, with test top-1 paired by
evaluation seed:

- regret  = the searched arm tuned per pair (its ``final`` phase) − F;
- deficit = the reference (KD) − F.

It is decided in three steps: :func:`estimate` (records → arrays → the rule's statistics),
:func:`~redistill_study.analysis.rule.apply_rule` (the rule, shared with the power calculator)
and :mod:`~redistill_study.analysis.explain` (the words). The rule sees pairs: F diverging in a
pair, or one pair's regret above the failure margin δ_f, refutes the claim however well the
other pairs do; the mean over pairs is bounded with teachers *and* students as random effects.

>>> recs = [
...     {"pair": f"t{t}-s{s}", "teacher": f"t{t}", "student": f"s{s}", "noise": "none",
...      "method": m, "phase": ph, "seed": seed, "test/top1": acc + 0.001 * seed,
...      "status": "complete"}
...     for t in range(4) for s in range(4)
...     for m, ph, acc in (("redistill", "seeds", 0.90), ("kd", "seeds", 0.899),
...                        ("redistill_tuned", "final", 0.901))
...     for seed in (0, 1, 2)
... ]
>>> decide(recs, margin=0.01).outcome
'holds'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import explain
from .estimates import ArmDecision, Estimate, NoiseDecision, PairValue, arm_decision
from .evidence import Evidence, Layout, RunIndex, gather
from .rule import FAILS, HOLDS, OPEN, OUTCOMES, RuleResult, Thresholds, apply_rule

DEFAULT_FIXED = ("redistill", "redistill_student_first")
DEFAULT_SEARCHED = "redistill_tuned"
DEFAULT_REFERENCE = "kd"
OUTCOME_HOLDS, OUTCOME_FAILS, OUTCOME_OPEN = OUTCOMES[HOLDS], OUTCOMES[FAILS], OUTCOMES[OPEN]
__all__ = [
    "ArmDecision",
    "Decision",
    "Estimate",
    "NoiseDecision",
    "PairValue",
    "decide",
    "estimate",
]
ARM_READINGS = {
    "redistill": "λ = 2/3, teacher first: D_{2/3}(p‖q)",
    "redistill_student_first": "λ = 2/3, student first: D_{2/3}(q‖p) = D_{−5/3}(p‖q)",
}


@dataclass
class Decision:
    outcome: str  # the primary arm's
    outcomes: dict[str, str]
    arms: dict[str, ArmDecision]
    primary: str | None
    margin: float
    alpha: float
    thresholds: Thresholds
    fixed: tuple[str, ...]
    searched: str | None
    reference: str | None
    seeds: list[int]
    layout: Layout
    criterion: str
    text: str
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unit_kind(self) -> str:
        return explain.unit_kind(self.layout)

    @property
    def estimates(self) -> list[Estimate]:
        return [e for a in self.arms.values() for nd in a.per_noise for e in nd.estimates.values()]


def thresholds_for(
    margin: float,
    alpha: float = 0.05,
    failure_margin: float | None = None,
    min_pairs: int = Thresholds.min_pairs,
    min_students: int = Thresholds.min_students,
    min_teachers: int = Thresholds.min_teachers,
) -> Thresholds:
    if not 0 < margin < 1:
        raise ValueError(f"margin is a fraction of accuracy in (0, 1), got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    return Thresholds(
        margin, failure_margin or 3 * margin, alpha, min_pairs, min_students, min_teachers
    )


def layout_of(
    index: RunIndex, teachers: Mapping[str, str] | None, students: Mapping[str, str] | None
) -> Layout:
    """Declared pairs first (a declared pair without runs is part of the design), then seen."""
    pairs = list(dict.fromkeys([*(teachers or {}), *index.teacher]))
    return Layout(
        tuple(pairs),
        tuple((teachers or {}).get(p) or index.teacher.get(p, p) for p in pairs),
        tuple((students or {}).get(p) or index.student.get(p, p) for p in pairs),
    )


def estimate(
    evaluations: Iterable[Mapping[str, Any]],
    thresholds: Thresholds,
    *,
    fixed: Sequence[str] = DEFAULT_FIXED,
    searched: str | None = DEFAULT_SEARCHED,
    reference: str | None = DEFAULT_REFERENCE,
    seeds: Sequence[int] | None = None,
    noises: Sequence[str] = (),
    teachers: Mapping[str, str] | None = None,
    students: Mapping[str, str] | None = None,
) -> tuple[Evidence, RuleResult]:
    """The evidence of a study and what the rule makes of it (arrays, batch of one)."""
    index = RunIndex(evaluations)
    layout = layout_of(index, teachers, students)
    noise_list = list(dict.fromkeys([*noises, *index.noises]))
    seed_list = sorted(int(s) for s in seeds) if seeds is not None else sorted(index.seeds)
    searched = searched if searched in index.methods else None
    reference = reference if reference in index.methods else None
    evidence = gather(
        index,
        fixed=list(dict.fromkeys(fixed)),
        searched=searched,
        reference=reference,
        seeds=seed_list,
        noises=noise_list,
        layout=layout,
    )
    teacher_of, student_of = layout.indices()
    result = apply_rule(
        evidence.diffs,
        evidence.fixed_diverged,
        teacher_of,
        student_of,
        thresholds,
        diverged_anywhere=evidence.diverged_anywhere,
        incomplete=evidence.incomplete_arm,
    )
    return evidence, result


def decide(
    evaluations: Iterable[Mapping[str, Any]],
    searches: Iterable[Mapping[str, Any]] = (),
    *,
    margin: float,
    alpha: float = 0.05,
    failure_margin: float | None = None,
    min_pairs: int = Thresholds.min_pairs,
    min_students: int = Thresholds.min_students,
    min_teachers: int = Thresholds.min_teachers,
    fixed: Sequence[str] = DEFAULT_FIXED,
    searched: str | None = DEFAULT_SEARCHED,
    reference: str | None = DEFAULT_REFERENCE,
    seeds: Sequence[int] | None = None,
    noises: Sequence[str] = (),
    teachers: Mapping[str, str] | None = None,
    students: Mapping[str, str] | None = None,
) -> Decision:
    """Decide, for each declared fixed arm, whether it holds.

    ``evaluations`` are plain dicts with ``pair``, ``teacher``, ``student``, ``noise``,
    ``method``, ``phase`` (``seeds``, ``final`` or ``transfer``), ``seed``, ``test/top1`` (a
    fraction) and ``status`` (``complete``, ``diverged`` or ``failed``). ``margin`` δ, the
    failure margin δ_f (default 3δ), ``alpha`` and the smallest study that may hold are declared
    before the data. ``seeds``, ``noises`` and ``teachers``/``students`` (pair → label) are the
    declared design: a declared setting or pair without runs keeps the claim from holding.
    ``searches`` are accepted so every caller passes the same records; the decision reads
    evaluation runs only."""
    del searches
    th = thresholds_for(margin, alpha, failure_margin, min_pairs, min_students, min_teachers)
    evidence, result = estimate(
        evaluations,
        th,
        fixed=fixed,
        searched=searched,
        reference=reference,
        seeds=seeds,
        noises=noises,
        teachers=teachers,
        students=students,
    )
    arms = {
        arm: arm_decision(evidence, result, th, a)
        for a, arm in enumerate(evidence.arms)
        if evidence.present[a]
    }
    primary = evidence.arms[0] if evidence.arms else None
    decision = Decision(
        outcome=arms[primary].outcome if primary in arms else OUTCOME_OPEN,
        outcomes={arm: d.outcome for arm, d in arms.items()},
        arms=arms,
        primary=primary,
        margin=margin,
        alpha=alpha,
        thresholds=th,
        fixed=tuple(fixed),
        searched=evidence.against[0],
        reference=evidence.against[1],
        seeds=list(evidence.seeds),
        layout=evidence.layout,
        criterion="",
        text="",
        incomplete=evidence.incomplete,
        excluded=evidence.excluded,
    )
    explain.explain(decision, searched, reference, evidence.failed_runs)
    return decision
