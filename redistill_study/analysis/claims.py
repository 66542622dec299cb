"""Several claims, one decision each, with Bonferroni across them.

A study may declare several "no tuning needed" claims (λ = 2/3, DKD's (α, β) = (1, 8), KD's
T = 4 …). Each is decided by the full rule (:func:`~redistill_study.analysis.verdict.decide`) at
α/K, K the number of claims: where the rule's chance of a wrong decision about a claim at level a
is at most a (the wrong "holds" of a claim false in the mean, the wrong "does not hold" of a true
one; docs/method.md §6 gives its calibration), the chance of any wrong decision over the K
claims is at most α whatever their dependence — and they are dependent: they share pairs, seeds
and often the reference. Holm's step-down is not used: the rule decides in two directions, and a
share freed by a right decision in one direction would be spent on a test in the other, the
directional case for which Holm's control is not established under dependence.

>>> from redistill_study.study.arms import Arms, Claim
>>> recs = [
...     {"pair": f"t{t}-s{s}", "teacher": f"t{t}", "student": f"s{s}", "noise": "none",
...      "method": m, "phase": ph, "seed": seed, "test/top1": acc + 0.001 * seed,
...      "status": "complete"}
...     for t in range(4) for s in range(4)
...     for m, ph, acc in (("a", "seeds", 0.90), ("a_tuned", "final", 0.901),
...                        ("b", "seeds", 0.80), ("b_tuned", "final", 0.90), ("r", "seeds", 0.80))
...     for seed in (0, 1, 2)
... ]
>>> claims = (Claim("a", Arms(("a",), "a_tuned", "r")), Claim("b", Arms(("b",), "b_tuned", "r")))
>>> [(c.name, c.decision.outcome) for c in decide_claims(recs, thresholds_for(0.01), claims)]
[('a', 'holds'), ('b', 'does not hold')]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..study.arms import Claim
from .explain import listed
from .rerun import RERUNS
from .verdict import (
    AS_RECORDED,
    Decision,
    Declared,
    Thresholds,
    decide,
    thresholds_for,
)

__all__ = [
    "ClaimDecision",
    "by_condition",
    "controls_line",
    "decide_claims",
    "thresholds_for",
]

# What a control must be decided, to show the instrument can say each.
EXPECTED = {"positive": "holds", "negative": "does not hold"}


@dataclass(frozen=True)
class ClaimDecision:
    """One claim's decision and the level it was reached at (α itself for a lone claim)."""

    claim: Claim
    decision: Decision
    level: float

    @property
    def name(self) -> str:
        return self.claim.name

    @property
    def arms_text(self) -> str:
        """``dkd vs dkd_tuned, reference kd``."""
        arms = self.claim.arms
        text = f"{', then '.join(arms.fixed) or 'no fixed arm'} vs {arms.searched or 'nothing'}"
        text += f", reference {arms.reference}" if arms.reference else ""
        return text + (f", with {listed(self.claim.noises)}" if self.claim.noises else "")


def decide_claims(
    evaluations: Iterable[Mapping[str, Any]],
    thresholds: Thresholds,
    claims: Sequence[Claim],
    declared: Declared = AS_RECORDED,
    family: int | None = None,
    *,
    reruns: int = RERUNS,
) -> list[ClaimDecision]:
    """Decide every claim, in the declared order, each at α/K; K is ``family`` where given (a
    recipe that asks only some of the study's claims decides them at the study's level)."""
    records = list(evaluations)
    family = family or len(claims)
    level = thresholds.alpha / max(family, 1)
    at_level = replace(thresholds, alpha=level)
    out = []
    for claim in claims:
        covered, design = _scoped(records, declared, claim)
        decision = decide(covered, at_level, claim.arms, design, reruns=reruns)
        out.append(ClaimDecision(claim, decision, level))
    if family > 1:
        for c in out:
            c.decision.criterion += _bonferroni_sentence(family, thresholds.alpha)
    return out


def _scoped(
    records: list[Mapping[str, Any]], declared: Declared, claim: Claim
) -> tuple[list[Mapping[str, Any]], Declared]:
    """The records and declared design of the teacher conditions a claim covers."""
    if claim.noises is None:
        return records, declared
    covered = [r for r in records if claim.covers(r["noise"])]
    noises = [n for n in declared.noises if claim.covers(n)] or list(claim.noises)
    return covered, replace(declared, noises=noises)


def by_condition(decided: Sequence[ClaimDecision]) -> list[str]:
    """Claims of the same arms asked per teacher condition, said together: ``redistill (claims
    lambda_clean, lambda_wrong): holds with none and label_noise_teacher=0.3; does not hold
    with confident_wrong=0.3`` (one line per fixed arm; nothing where no claim is scoped)."""
    groups: dict[tuple[str, Any], list[ClaimDecision]] = {}
    for c in decided:
        if c.claim.noises is not None and not c.claim.control:  # controls: their own line
            for arm in c.decision.arms:
                groups.setdefault((arm, c.claim.arms), []).append(c)
    lines = []
    for (arm, _), members in groups.items():
        said: dict[str, list[str]] = {}
        for c in members:
            a = c.decision.arms[arm]
            word = a.outcome + (" (marginal)" if a.marginal else "")
            said.setdefault(word, []).extend(c.claim.noises or ())
        names = ", ".join(c.name for c in members)
        parts = [f"{word} with {listed(noises)}" for word, noises in said.items()]
        lines.append(f"{arm} (claim{'s' if len(members) > 1 else ''} {names}): {'; '.join(parts)}")
    return lines


def controls_line(decided: Sequence[ClaimDecision]) -> str | None:
    """Whether the study's controls came out as they must (None: it has none): a positive
    control must hold and a negative one must not. One decided the other way: the instrument
    failed, and no decision of the study is a finding; one left inconclusive: the study has not
    shown that it can decide that way."""
    controls = [c for c in decided if c.claim.control]
    if not controls:
        return None
    parts, wrong, open_ = [], False, False
    for c in controls:
        expected = EXPECTED[c.claim.control or ""]
        outcome = c.decision.outcome
        ok = outcome == expected
        wrong |= not ok and outcome != "inconclusive"
        open_ |= outcome == "inconclusive"
        parts.append(
            f"{c.claim.control} control {c.name} {outcome}"
            + (" as it must" if ok else f", where it must say {expected!r}")
        )
    if wrong:
        verdict = "the instrument FAILED its checks: read no decision of this study as a finding"
    elif open_:
        verdict = "the checks are not complete: the study has not shown it can decide both ways"
    else:
        verdict = "the instrument passed its checks"
    return f"{'; '.join(parts)} — {verdict}"


def _bonferroni_sentence(claims: int, alpha: float) -> str:
    return (
        f" The study declares {claims} claims: each is decided at α/{claims} = "
        f"{alpha / claims:.4g} (Bonferroni), so that the chance of any wrong decision over the "
        f"claims is at most α = {alpha:g} however they depend on each other."
    )
