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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import explain
from .evidence import QUANTITIES, Evidence, Layout, RunIndex, gather
from .rule import FAILS, HOLDS, OPEN, PAIR_SHARE, RuleResult, Thresholds, apply_rule
from .statistics import clopper_pearson_upper, t_quantile

DEFAULT_FIXED = ("redistill", "redistill_student_first")
DEFAULT_SEARCHED = "redistill_tuned"
DEFAULT_REFERENCE = "kd"
CODES = {OPEN: "inconclusive", HOLDS: "holds", FAILS: "does not hold"}
OUTCOME_HOLDS, OUTCOME_FAILS, OUTCOME_OPEN = CODES[HOLDS], CODES[FAILS], CODES[OPEN]
ARM_READINGS = {
    "redistill": "λ = 2/3, teacher first: D_{2/3}(p‖q)",
    "redistill_student_first": "λ = 2/3, student first: D_{2/3}(q‖p) = D_{−5/3}(p‖q)",
}


@dataclass
class PairValue:
    """One pair's seed-paired mean difference, with the interval its own test uses."""

    pair: str
    teacher: str
    student: str
    mean: float  # over the seeds both arms trained (NaN: none)
    lower: float
    upper: float
    seeds: int
    diverged: int  # seeds where the fixed arm diverged and the comparator trained
    excluded: int  # seeds left out: the comparator diverged
    at_chance: float  # the mean with divergences read at chance, for reading only
    p_adjusted: float  # Holm, on the α scale
    failed: bool


@dataclass
class Estimate:
    """Mean regret or deficit of one fixed arm in one noise setting, across pairs."""

    arm: str
    quantity: str
    against: str
    noise: str
    pairs: int
    teachers: int
    students: int
    df: float
    mean: float
    se: float
    lower: float  # at the level that rejects on its own (α·share / family), so L > δ ⇒ reject
    upper: float  # one-sided (1 − α): "holds" needs it below δ
    p_below: float
    p_above_adjusted: float
    predict_low: float  # 95 % prediction interval for a new pair
    predict_high: float
    per_pair: list[PairValue] = field(default_factory=list)

    @property
    def units(self) -> int:
        return self.pairs


@dataclass
class NoiseDecision:
    noise: str
    outcome: str  # this setting's evidence alone
    estimates: dict[str, Estimate]


@dataclass
class ArmDecision:
    arm: str
    outcome: str
    own: str  # on its own evidence, before gatekeeping
    level: float
    per_noise: list[NoiseDecision]
    failing_pairs: list[str]
    pairs: int
    failing_share_upper: float  # one-sided (1 − α) Clopper–Pearson bound
    summary: str = ""
    would_change: str = ""
    units_needed: int | None = None


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
    min_pairs: int = 10,
    min_students: int = 4,
    min_teachers: int = 4,
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
    min_pairs: int = 10,
    min_students: int = 4,
    min_teachers: int = 4,
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
        arm: _arm_decision(evidence, result, th, a)
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


def _arm_decision(evidence: Evidence, result: RuleResult, th: Thresholds, a: int) -> ArmDecision:
    layout = evidence.layout
    family = max(int(np.isfinite(result.pairs.p_above[0, a]).sum()), 1)
    pair_q = t_quantile(th.alpha * PAIR_SHARE / family, result.pairs.df[0, a])
    mean_family = max(int(np.isfinite(result.p_above_adj[0, a]).sum()), 1)
    mean_q = t_quantile(th.alpha * (1 - PAIR_SHARE) / mean_family, result.means.df[0, a])
    upper_q = t_quantile(th.alpha, result.means.df[0, a])
    predict_q = t_quantile(0.025, result.means.df[0, a])
    per_noise = []
    for n, noise in enumerate(evidence.noises):
        estimates: dict[str, Estimate] = {}
        for q, quantity in enumerate(QUANTITIES):
            against = evidence.against[q]
            if against is None:
                continue
            m = result.means
            mean, se = float(m.mean[0, a, n, q]), float(m.se[0, a, n, q])
            half_spread = math.sqrt(float(m.spread[0, a, n, q]) ** 2 + se**2)
            pt = result.pairs
            rows = []
            for p, pair in enumerate(layout.pairs):
                seeds = int(pt.n[0, a, n, q, p])
                diverged = int(evidence.fixed_diverged[0, a, n, q, p].sum())
                if not seeds and not diverged:
                    continue
                half = float(pair_q[n, q] * pt.sd[0, a, n, q] / math.sqrt(max(seeds, 1)))
                value = float(pt.mean[0, a, n, q, p])
                rows.append(
                    PairValue(
                        pair=pair,
                        teacher=layout.teachers[p],
                        student=layout.students[p],
                        mean=value,
                        lower=value - half if seeds else math.nan,
                        upper=value + half if seeds else math.nan,
                        seeds=seeds,
                        diverged=diverged,
                        excluded=_excluded(evidence, a, noise, quantity, pair),
                        at_chance=float(evidence.read_at_chance[0, a, n, q, p]),
                        p_adjusted=float(result.pair_p_adj[0, a, n, q, p]),
                        failed=bool(result.pair_failed[0, a, n, q, p]),
                    )
                )
            estimates[quantity] = Estimate(
                arm=evidence.arms[a],
                quantity=quantity,
                against=against,
                noise=noise,
                pairs=int(m.n[0, a, n, q]),
                teachers=int(m.teachers[0, a, n, q]),
                students=int(m.students[0, a, n, q]),
                df=float(m.df[0, a, n, q]),
                mean=mean,
                se=se,
                lower=mean - float(mean_q[n, q]) * se,
                upper=mean + float(upper_q[n, q]) * se,
                p_below=float(result.p_below[0, a, n, q]),
                p_above_adjusted=float(result.p_above_adj[0, a, n, q]),
                predict_low=mean - float(predict_q[n, q]) * half_spread,
                predict_high=mean + float(predict_q[n, q]) * half_spread,
                per_pair=rows,
            )
        per_noise.append(NoiseDecision(noise, _noise_outcome(estimates, th), estimates))
    failing = sorted(
        {layout.pairs[p] for p in np.argwhere(result.pair_failed[0, a].any((0, 1))).ravel()}
    )
    seen = (result.pairs.n[0, a] > 0) | result.pair_diverged[0, a]
    total = int(seen.any((0, 1)).sum())
    return ArmDecision(
        arm=evidence.arms[a],
        outcome=CODES[int(result.outcome[0, a])],
        own=CODES[int(result.own[0, a])],
        level=th.alpha,
        per_noise=per_noise,
        failing_pairs=failing,
        pairs=total,
        failing_share_upper=clopper_pearson_upper(len(failing), total, th.alpha),
    )


def _excluded(evidence: Evidence, a: int, noise: str, quantity: str, pair: str) -> int:
    arm = evidence.arms[a]
    return sum(
        len(x["seeds"])
        for x in evidence.excluded
        if (x["arm"], x["noise"], x["quantity"], x["pair"]) == (arm, noise, quantity, pair)
    )


def _noise_outcome(estimates: dict[str, Estimate], th: Thresholds) -> str:
    """One noise setting's evidence alone, for the dashboard's titles."""
    if any(p.failed for e in estimates.values() for p in e.per_pair) or any(
        e.p_above_adjusted <= th.alpha for e in estimates.values()
    ):
        return OUTCOME_FAILS
    if estimates and all(e.upper < th.margin for e in estimates.values()):
        return OUTCOME_HOLDS
    return OUTCOME_OPEN
