"""Several claims, one decision each, with Holm across them: on synthetic records whose truth is
set, a true claim holds and a false one does not; the levels follow Holm's step-down; a study
with one claim decides exactly as :func:`decide` does; the family-wise error over claims at the
margin stays within α, by simulation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from redistill_study.analysis.claims import decide_claims
from redistill_study.analysis.verdict import Declared, decide, thresholds_for
from redistill_study.study.arms import Arms, Claim
from redistill_study.study.phases import Phase, Status
from redistill_study.study.records import Evaluation

LAMBDA = Claim("lambda", Arms(("redistill",), "redistill_tuned", "kd"))
DKD = Claim("dkd", Arms(("dkd",), "dkd_tuned", "kd"))
TH = thresholds_for(margin=0.01)


def _records(
    rng: np.random.Generator,
    regret: dict[str, float],
    *,
    teachers: int = 4,
    students: int = 4,
    seeds: int = 3,
    run_sd: float = 0.002,
    pair_sd: float = 0.001,
    failing: dict[str, int] | None = None,
) -> list[dict]:
    """A crossed teachers × students study, one clean setting: per fixed arm F its searched arm
    F_tuned is better by ``regret[F]`` (plus a pair effect), KD equals F; ``failing``: F_tuned is
    better by 5 points in this many pairs (they refute F)."""
    rows = []
    for t in range(teachers):
        for s in range(students):
            pair = t * students + s
            base = 0.85 + 0.02 * rng.standard_normal()
            effects = {f: r + pair_sd * rng.standard_normal() for f, r in regret.items()}
            for f, n in (failing or {}).items():
                if pair < n:
                    effects[f] += 0.05
            for seed in range(seeds):
                shared = 0.005 * rng.standard_normal()
                accs = {"kd": base + shared}
                for f, effect in effects.items():
                    accs[f] = base + shared
                    accs[f"{f}_tuned"] = base + shared + effect
                for method, acc in accs.items():
                    rows.append(
                        Evaluation(
                            pair=f"t{t}-s{s}",
                            teacher=f"t{t}",
                            student=f"s{s}",
                            noise="none",
                            noise_kind="none",
                            noise_level=0.0,
                            method=method,
                            phase=Phase.FINAL if method.endswith("_tuned") else Phase.SEEDS,
                            seed=seed,
                            status=Status.COMPLETE,
                            test_top1=acc + run_sd * rng.standard_normal(),
                            classes=10,
                        ).row()
                    )
    return rows


def test_two_claims_one_true_one_false_are_each_decided_so() -> None:
    records = _records(np.random.default_rng(0), {"redistill": 0.0, "dkd": 0.0}, failing={"dkd": 3})
    decided = decide_claims(records, TH, (LAMBDA, DKD))
    assert [c.name for c in decided] == ["lambda", "dkd"]
    lam, dkd = (c.decision for c in decided)
    assert lam.outcome == "holds" and lam.outcomes == {"redistill": "holds"}
    assert dkd.outcome == "does not hold"
    assert {p for p in dkd.arms["dkd"].failing_pairs} >= {"t0-s0", "t0-s1", "t0-s2"}
    # Each decision is about its own arms only.
    assert lam.searched == "redistill_tuned" and dkd.searched == "dkd_tuned"
    # Holm: both were decided at the first step, α/2; the criterion says so.
    assert [c.level for c in decided] == [TH.alpha / 2, TH.alpha / 2]
    assert "Holm" in lam.criterion and "α/2 = 0.025" in lam.criterion


def test_a_claim_left_open_is_decided_again_at_the_level_freed() -> None:
    # dkd fails outright at α/2; lambda's mean regret (0.6 points) is bounded below δ at α but
    # not at α/2: Holm decides it again at α once dkd's share is freed, and it holds there.
    records = _records(
        np.random.default_rng(0),
        {"redistill": 0.006, "dkd": 0.0},
        failing={"dkd": 4},
        run_sd=0.004,
        pair_sd=0.002,
    )
    half = replace(TH, alpha=TH.alpha / 2)
    assert decide(records, half, LAMBDA.arms).outcome == "inconclusive"  # the set-up itself
    assert decide(records, TH, LAMBDA.arms).outcome == "holds"
    lam, dkd = decide_claims(records, TH, (LAMBDA, DKD))
    assert dkd.decision.outcome == "does not hold" and dkd.level == TH.alpha / 2
    assert lam.decision.outcome == "holds" and lam.level == TH.alpha
    assert "this one was decided at α = 0.05" in lam.decision.criterion
    # Bonferroni would have left it open; the order of the claims does not matter to Holm.
    _, lam2 = decide_claims(records, TH, (DKD, LAMBDA))
    assert (lam2.decision.outcome, lam2.level) == ("holds", TH.alpha)


def test_one_claim_is_decided_exactly_as_decide_does() -> None:
    records = _records(np.random.default_rng(2), {"redistill": 0.004})
    declared = Declared(seeds=[0, 1, 2], noises=["none"])
    (only,) = decide_claims(records, TH, (LAMBDA,), declared)
    direct = decide(records, TH, LAMBDA.arms, declared)
    assert only.level == TH.alpha
    assert only.decision.outcome == direct.outcome
    assert only.decision.text == direct.text
    assert only.decision.criterion == direct.criterion  # no Holm sentence with one claim
    assert [e.upper for e in only.decision.estimates] == [e.upper for e in direct.estimates]


def test_familywise_error_over_claims_at_the_margin_stays_within_alpha() -> None:
    # Both claims false by exactly the margin (mean regret = δ): the chance that either is
    # declared to hold is the family-wise error, which Holm keeps ≤ α (Monte Carlo, 3 se).
    rng = np.random.default_rng(7)
    sims, wrong = 300, 0
    for _ in range(sims):
        records = _records(
            rng, {"redistill": TH.margin, "dkd": TH.margin}, run_sd=0.004, pair_sd=0.002
        )
        decided = decide_claims(records, TH, (LAMBDA, DKD))
        wrong += any(c.decision.outcome == "holds" for c in decided)
    rate = wrong / sims
    assert rate <= TH.alpha + 3 * np.sqrt(TH.alpha * (1 - TH.alpha) / sims)
