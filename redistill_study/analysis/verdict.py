"""The verdict: does one fixed setting generalise across teacher–student pairs?

For every declared fixed arm F (by default ``redistill``, D_{2/3}(p‖q), then
``redistill_student_first``, D_{2/3}(q‖p)), noise setting and pair, with test top-1 paired by
evaluation seed:

- regret  = the searched arm tuned per pair (its ``final`` phase) − F;
- deficit = the reference (KD) − F.

It is decided in three steps: :func:`estimate` (records → arrays → the rule's statistics, shared
with the power calculator's :func:`~redistill_study.analysis.world.estimate_world`),
:func:`~redistill_study.analysis.rule.apply_rule` (the rule on arrays, shared with the power
calculator's simulations) and :func:`~redistill_study.analysis.explain.explain` (the words).
The rule sees pairs: F diverging in a pair, or one pair's regret above the failure margin δ_f,
refutes the claim however well the other pairs do; the mean over pairs is bounded with teachers
*and* students as random effects.

The question is declared before the data, in three small records: the
:class:`~redistill_study.analysis.rule.Thresholds` (δ, δ_f, α and the smallest study that may
hold, see :func:`thresholds_for`), the arms' roles (:class:`~redistill_study.study.arms.Arms`,
by default :data:`DEFAULT_ARMS`) and the :class:`Declared` design (by default
:data:`AS_RECORDED`).

>>> recs = [
...     {"pair": f"t{t}-s{s}", "teacher": f"t{t}", "student": f"s{s}", "noise": "none",
...      "method": m, "phase": ph, "seed": seed, "test/top1": acc + 0.001 * seed,
...      "status": "complete"}
...     for t in range(4) for s in range(4)
...     for m, ph, acc in (("redistill", "seeds", 0.90), ("kd", "seeds", 0.899),
...                        ("redistill_tuned", "final", 0.901))
...     for seed in (0, 1, 2)
... ]
>>> decide(recs, thresholds_for(margin=0.01)).outcome
'holds'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..study.arms import DEFAULT_FIXED, DEFAULT_REFERENCE, DEFAULT_SEARCHED, Arms
from . import explain, rerun
from .estimates import ArmDecision, Estimate, NoiseDecision, PairValue, arm_decision
from .evidence import Evidence, Layout, RunIndex, gather
from .rule import FAILS, HOLDS, OPEN, OUTCOMES, RuleResult, Thresholds, apply_rule

DEFAULT_ARMS = Arms(DEFAULT_FIXED, DEFAULT_SEARCHED, DEFAULT_REFERENCE)
OUTCOME_HOLDS, OUTCOME_FAILS, OUTCOME_OPEN = OUTCOMES[HOLDS], OUTCOMES[FAILS], OUTCOMES[OPEN]
__all__ = [
    "AS_RECORDED",
    "DEFAULT_ARMS",
    "ArmDecision",
    "Arms",
    "Decision",
    "Declared",
    "Estimate",
    "NoiseDecision",
    "PairValue",
    "Thresholds",
    "decide",
    "estimate",
    "thresholds_for",
]


@dataclass(frozen=True)
class Declared:
    """The declared design: the evaluation seeds (None: those seen), the noise settings and the
    pairs (pair → teacher and student label). A declared seed, setting or pair without runs
    keeps the claim from holding."""

    seeds: Sequence[int] | None = None
    noises: Sequence[str] = ()
    teachers: Mapping[str, str] | None = None
    students: Mapping[str, str] | None = None


AS_RECORDED = Declared()  # nothing declared: the seeds, settings and pairs the records show


@dataclass
class Decision:
    outcome: str  # the primary arm's
    outcomes: dict[str, str]
    arms: dict[str, ArmDecision]
    primary: str | None
    thresholds: Thresholds
    fixed: tuple[str, ...]
    searched: str | None  # the declared searched arm, if it has evaluation runs
    reference: str | None  # the declared reference, if it has evaluation runs
    seeds: list[int]
    layout: Layout
    criterion: str
    text: str
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def margin(self) -> float:
        return self.thresholds.margin

    @property
    def alpha(self) -> float:
        return self.thresholds.alpha

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
    """The declared question, checked: δ and α in range, δ_f by default 3δ."""
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
    arms: Arms = DEFAULT_ARMS,
    declared: Declared = AS_RECORDED,
) -> tuple[Evidence, RuleResult]:
    """The evidence of a study and what the rule makes of it (arrays, batch of one). The arms
    compared are the declared ones with evaluation runs (each fixed arm once)."""
    index = RunIndex(evaluations)
    seeds = declared.seeds
    evidence = gather(
        index,
        Arms(
            tuple(dict.fromkeys(arms.fixed)),
            arms.searched if arms.searched in index.methods else None,
            arms.reference if arms.reference in index.methods else None,
        ),
        layout_of(index, declared.teachers, declared.students),
        noises=list(dict.fromkeys([*declared.noises, *index.noises])),
        seeds=sorted(int(s) for s in seeds) if seeds is not None else sorted(index.seeds),
    )
    return evidence, apply_rule(evidence.observed(), thresholds)


def decide(
    evaluations: Iterable[Mapping[str, Any]],
    thresholds: Thresholds,
    arms: Arms = DEFAULT_ARMS,
    declared: Declared = AS_RECORDED,
    *,
    reruns: int = rerun.RERUNS,
) -> Decision:
    """Decide, for each declared fixed arm, whether it holds.

    ``evaluations`` are plain dicts with ``pair``, ``teacher``, ``student``, ``noise``,
    ``method``, ``phase`` (``seeds``, ``final`` or ``transfer``), ``seed``, ``test/top1`` (a
    fraction) and ``status`` (``complete``, ``diverged`` or ``failed``); the decision reads
    evaluation runs only. ``thresholds`` (δ, the failure margin δ_f, α and the smallest study
    that may hold; :func:`thresholds_for` checks them), ``arms`` and the ``declared`` design
    are declared before the data. ``reruns``: how many reruns are simulated to say how close
    each decision is (:mod:`~redistill_study.analysis.rerun`; 0: not estimated, as a power
    simulation that reads only the outcomes wants)."""
    evidence, result = estimate(evaluations, thresholds, arms, declared)
    shares = rerun.agreement(evidence.observed(), result, thresholds, reruns=reruns)
    decided = {
        arm: arm_decision(evidence, result, thresholds, a)
        for a, arm in enumerate(evidence.arms)
        if evidence.present[a]
    }
    for a, arm in enumerate(evidence.arms):
        if arm in decided:
            decided[arm].rerun_agreement = float(shares[a])
    primary = evidence.arms[0] if evidence.arms else None
    decision = Decision(
        outcome=decided[primary].outcome if primary in decided else OUTCOME_OPEN,
        outcomes={arm: d.outcome for arm, d in decided.items()},
        arms=decided,
        primary=primary,
        thresholds=thresholds,
        fixed=tuple(arms.fixed),
        searched=evidence.against[0],
        reference=evidence.against[1],
        seeds=list(evidence.seeds),
        layout=evidence.layout,
        criterion="",
        text="",
        incomplete=evidence.incomplete,
        excluded=evidence.excluded,
    )
    explain.explain(decision, arms, evidence.failed_runs)
    return decision
