"""Several claims, one decision each, at α/K: on synthetic records whose truth is set, a true
claim holds and a false one does not; a claim that would hold at α alone but not at α/2 stays
open beside a second claim; a study with one claim decides exactly as :func:`decide` does; and,
by simulation, a claim at the margin beside a true one holds at most α/2 of the time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

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
    # Bonferroni: both were decided at α/2; the criterion says so.
    assert [c.level for c in decided] == [TH.alpha / 2, TH.alpha / 2]
    assert "Bonferroni" in lam.criterion and "α/2 = 0.025" in lam.criterion


def test_a_claim_that_holds_at_alpha_alone_stays_open_at_alpha_over_two() -> None:
    # lambda's mean regret (0.6 points) is bounded below δ at α but not at α/2; beside a second
    # claim it is decided at α/2, whatever the other claim's outcome (dkd fails outright).
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
    assert lam.decision.outcome == "inconclusive" and lam.level == TH.alpha / 2
    (alone,) = decide_claims(records, TH, (LAMBDA,))
    assert alone.decision.outcome == "holds" and alone.level == TH.alpha


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


@pytest.mark.slow
def test_a_claim_at_the_margin_beside_a_true_one_holds_at_most_half_alpha() -> None:
    # dkd's mean regret is exactly δ (the claim is false), lambda's is 0 (true and decided
    # "holds" nearly always). Sixteen teachers and one student, so that the mean's t test is
    # near exact: alone at α, dkd would hold 5 % of the time; beside lambda it must hold at most
    # α/2 (Monte Carlo, 3 se) — a rule that spent lambda's share on dkd would not pass.
    th = thresholds_for(margin=0.01, min_students=1)
    rng = np.random.default_rng(7)
    sims, wrong, right = 2000, 0, 0
    for _ in range(sims):
        records = _records(
            rng,
            {"redistill": 0.0, "dkd": th.margin},
            teachers=16,
            students=1,
            run_sd=0.004,
            pair_sd=0.002,
        )
        lam, dkd = decide_claims(records, th, (LAMBDA, DKD), reruns=0)
        wrong += dkd.decision.outcome == "holds"
        right += lam.decision.outcome == "holds"
    half = th.alpha / 2
    assert wrong / sims <= half + 3 * np.sqrt(half * (1 - half) / sims)
    assert wrong > 0 and right / sims > 0.9  # the simulation can see both


# --- claims scoped to teacher conditions --------------------------------------------------

CLEAN = Claim("lambda_clean", LAMBDA.arms, ("none",))
NOISY = Claim("lambda_noisy", LAMBDA.arms, ("noisy",))


def _conditions(rng: np.random.Generator, **kwargs) -> list[dict]:
    from helpers import study_records

    return study_records(
        rng, teachers=4, students=4, run_sd=0.001, pair_sd=0.0005, seeds=3, **kwargs
    )


def test_a_claim_per_teacher_condition_is_decided_on_that_condition_alone() -> None:
    from redistill_study.analysis.claims import by_condition

    records = _conditions(np.random.default_rng(0), regret={"none": 0.0, "noisy": 0.08})
    clean, noisy = decide_claims(records, TH, (CLEAN, NOISY))
    assert (clean.decision.outcome, noisy.decision.outcome) == ("holds", "does not hold")
    assert [nd.noise for nd in clean.decision.arms["redistill"].per_noise] == ["none"]
    assert clean.level == noisy.level == TH.alpha / 2
    # Asked over both conditions at once, the claim cannot say where it holds.
    (whole,) = decide_claims(records, TH, (LAMBDA,))
    assert whole.decision.outcome == "does not hold"
    assert by_condition([clean, noisy]) == [
        "redistill (claims lambda_clean, lambda_noisy): holds with none; does not hold with noisy"
    ]
    assert by_condition([whole]) == []  # no claim scoped: nothing to say by condition


def test_a_divergence_refutes_only_the_conditions_it_happened_in() -> None:
    failing = {"pairs": [0], "noises": ["noisy"], "size": "diverge"}
    records = _conditions(np.random.default_rng(1), failing=failing)
    clean, noisy = decide_claims(records, TH, (CLEAN, NOISY))
    assert clean.decision.outcome == "holds"
    assert noisy.decision.outcome == "does not hold"


def test_the_comparator_failing_alone_never_refutes_a_condition() -> None:
    records = _conditions(np.random.default_rng(2), reference_diverges=(0, 1))
    for c in decide_claims(records, TH, (CLEAN, NOISY)):
        assert c.decision.outcome != "does not hold", c.decision.text


def _per_condition_errors(rng: np.random.Generator, sims: int, alpha: float) -> float:
    """Two conditions, each its own claim at α/2, on 4 × 4 crossed pairs: the first exactly at
    the margin (its "holds" is wrong), the second exactly true (its "does not hold" is wrong),
    teacher and student effects shared by the two conditions. The share of studies with any
    wrong decision."""
    from redistill_study.analysis.rule import FAILS, HOLDS, Observed, Thresholds, apply_rule

    teacher_of, student_of = np.repeat(np.arange(4), 4), np.tile(np.arange(4), 4)
    th = Thresholds(margin=0.01, failure_margin=0.03, alpha=alpha / 2)
    shared = 0.004 * rng.standard_normal((sims, 1, 1, 2, 4))[..., teacher_of]
    shared += 0.004 * rng.standard_normal((sims, 1, 1, 2, 4))[..., student_of]
    outcomes = []
    for truth in (0.01, 0.0):
        pairs = truth + shared + 0.002 * rng.standard_normal((sims, 1, 1, 2, 16))
        seeds = 0.004 * rng.standard_normal((sims, 1, 1, 1, 16, 3))
        diffs = pairs[..., None] + seeds + 0.002 * rng.standard_normal((sims, 1, 1, 2, 16, 3))
        observed = Observed(diffs, np.zeros(diffs.shape, bool), teacher_of, student_of)
        outcomes.append(apply_rule(observed, th).outcome[:, 0])
    wrong = (outcomes[0] == HOLDS) | (outcomes[1] == FAILS)
    return float(wrong.mean())


def test_the_error_over_every_per_condition_decision_stays_within_alpha() -> None:
    sims = 4000
    error = _per_condition_errors(np.random.default_rng(5), sims, alpha=0.05)
    slack = 3 * np.sqrt(0.05 * 0.95 / sims)
    assert error <= 0.05 + slack, error


def test_a_per_condition_holds_is_reachable_on_ten_disjoint_pairs() -> None:
    # The spreads the Fashion-MNIST run showed: run-to-run 0.27, teachers 0.5, students 0.7
    # points; two conditions, each its own claim at α/2; each teacher and student used once.
    from redistill_study.analysis.design import Design, World, simulate
    from redistill_study.analysis.rule import Thresholds

    design = Design(
        tuple(range(10)), tuple(range(10)), ("none",), 3, Thresholds(0.01, 0.03, alpha=0.025)
    )
    world = World(seed_sd=0.0027, pair_sd=0.0, teacher_sd=0.005, student_sd=0.007)
    assert simulate(design, world, sims=2000)["holds"] >= 0.8
    assert simulate(design, world, regret=0.01, sims=2000)["holds"] <= 0.025 + 0.01


def test_controls_say_whether_the_instrument_passed_its_checks() -> None:
    from redistill_study.analysis.claims import controls_line

    # "a": the fixed arm equals its searched arm (an A/A control); "b": 8 points worse.
    records = _records(np.random.default_rng(6), {"a": 0.0, "b": 0.08})
    positive = Claim("aa", Arms(("a",), "a_tuned", "kd"), control="positive")
    negative = Claim("starved", Arms(("b",), "b_tuned", "kd"), control="negative")
    decided = decide_claims(records, TH, (positive, negative))
    line = controls_line(decided)
    assert line is not None and "the instrument passed its checks" in line
    assert "positive control aa holds as it must" in line
    assert "negative control starved does not hold as it must" in line
    # The same decisions with the roles swapped: both controls fail, and it says so.
    swapped = [
        replace(c, claim=replace(c.claim, control=r))
        for c, r in zip(decided, ("negative", "positive"))
    ]
    failed = controls_line(swapped)
    assert failed is not None and "FAILED" in failed and "where it must say 'holds'" in failed
    assert controls_line(decided[:0]) is None
    # A control left inconclusive is not a failure, but not a pass either.
    undecided = [replace(c, decision=replace(c.decision, outcome="inconclusive")) for c in decided]
    incomplete = controls_line(undecided)
    assert incomplete is not None and "FAILED" not in incomplete
    assert "the checks are not complete" in incomplete
