"""Several claims, one decision each, with Holm across them.

A study may declare several "no tuning needed" claims (λ = 2/3, DKD's (α, β) = (1, 8), KD's
T = 4 …). Each is decided by the full rule (:func:`~redistill_study.analysis.verdict.decide`);
the family-wise error over the claims is held at α by Holm's step-down: every claim is decided at
α/K; each claim decided there (every fixed arm holds or does not hold) frees its share, and the
claims still open are decided again at α/(K − d); a decision, once reached, stands. The argument
is Holm's: the first wrong decision about a claim happens at a level ≤ α/K₀ (K₀ the claims for
which it is wrong), and both of the rule's decisions are contained in events monotone in the
level ("holds" needs every upper bound below δ at that level, hence at α/K₀; "does not hold"
needs a rejection at that level, hence at α/K₀), each of probability ≤ α/K₀ (docs/method.md §6).

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
from .verdict import (
    AS_RECORDED,
    OUTCOME_OPEN,
    Decision,
    Declared,
    Thresholds,
    decide,
    thresholds_for,
)

__all__ = ["ClaimDecision", "decide_claims", "thresholds_for"]


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
        return text + (f", reference {arms.reference}" if arms.reference else "")


def decide_claims(
    evaluations: Iterable[Mapping[str, Any]],
    thresholds: Thresholds,
    claims: Sequence[Claim],
    declared: Declared = AS_RECORDED,
) -> list[ClaimDecision]:
    """Decide every claim, in the declared order, with Holm across them."""
    records = list(evaluations)
    reached: dict[str, ClaimDecision] = {}
    latest: dict[str, ClaimDecision] = {}
    open_claims = list(claims)
    while open_claims:
        level = thresholds.alpha / len(open_claims)
        at_level = replace(thresholds, alpha=level)
        for claim in open_claims:
            latest[claim.name] = ClaimDecision(
                claim, decide(records, at_level, claim.arms, declared), level
            )
        newly = [c for c in open_claims if _decided(latest[c.name].decision)]
        if not newly:
            break
        reached.update((c.name, latest[c.name]) for c in newly)
        open_claims = [c for c in open_claims if c not in newly]
    out = [reached.get(c.name) or latest[c.name] for c in claims]
    if len(claims) > 1:
        for c in out:
            c.decision.criterion += _holm_sentence(len(claims), thresholds.alpha, c.level)
    return out


def _decided(decision: Decision) -> bool:
    return bool(decision.outcomes) and OUTCOME_OPEN not in decision.outcomes.values()


def _holm_sentence(claims: int, alpha: float, level: float) -> str:
    return (
        f" Across the study's {claims} claims, Holm's step-down holds the family-wise error at "
        f"α = {alpha:g}: each claim is decided at α/{claims} = {alpha / claims:.4g}, and each "
        f"claim decided frees its share for those still open; this one was decided at "
        f"α = {level:.4g}."
    )
