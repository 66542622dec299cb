"""The verdict's operating characteristics, checked by simulation on records whose truth we set.

The generator (``helpers.study_records``) is written for the tests, independently of the power
calculator: teachers × students crossed, a per-seed effect shared by every arm of a pair, run
noise, teacher, student and pair effects (normal, or a skewed exponential), pairs that fail by a
set amount or diverge. Two rules a reviewer would reject — one that averages divergences scored
at chance, one that counts pairs sharing a student as independent units — run through the same
checks and must fail them.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import scipy.stats
from helpers import study_records

from redistill_study.analysis.statistics import holm_adjusted
from redistill_study.analysis.verdict import (
    DEFAULT_ARMS,
    OUTCOME_FAILS,
    OUTCOME_HOLDS,
    OUTCOME_OPEN,
    Declared,
    decide,
    thresholds_for,
)

MARGIN = 0.01
ALPHA = 0.05
TH = thresholds_for(MARGIN, ALPHA)
LOWERED = replace(TH, min_pairs=1, min_students=1, min_teachers=1)  # the mean test on its own
PRIMARY = replace(DEFAULT_ARMS, fixed=("redistill",))  # the primary arm alone


def outcome_shares(sims: int, seed: int = 0, rule=None, thresholds=TH, **truth) -> dict:
    rng = np.random.default_rng(seed)
    arms = replace(DEFAULT_ARMS, fixed=truth.get("fixed_arms", ("redistill",)))
    outcomes = []
    for _ in range(sims):
        records = study_records(rng, **truth)
        if rule is not None:
            outcomes.append(rule(records))
        else:
            outcomes.append(decide(records, thresholds, arms, reruns=0).outcome)
    return {o: outcomes.count(o) / sims for o in (OUTCOME_HOLDS, OUTCOME_FAILS, OUTCOME_OPEN)}


def slack(p: float, sims: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / sims)


def _plain_t(values: list[float]) -> tuple[float, float]:
    """A one-sample t test of "mean > δ" (scipy) and the one-sided (1 − α) upper bound: the
    naive rules' own statistics, not the verdict's."""
    x = np.asarray(values, dtype=float)
    test = scipy.stats.ttest_1samp(x, MARGIN, alternative="greater")
    upper = x.mean() + scipy.stats.t.ppf(1 - ALPHA, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(test.pvalue), float(upper)


# --- when the claim is true -------------------------------------------------------------------


def test_power_with_four_teachers_crossed_with_four_students() -> None:
    shares = outcome_shares(200, teachers=4, students=4, regret=0.0, deficit=0.0)
    assert shares[OUTCOME_HOLDS] >= 0.8


def test_power_with_twelve_pairs_of_four_teachers_and_three_students() -> None:
    # Small spreads (seed-averaged differences of 0.2–0.3 points, as the label-noise cells of the
    # Fashion-MNIST study show); three students are below the default minimum of four, so the
    # study declares min_students: 3.
    shares = outcome_shares(
        200,
        teachers=4,
        students=3,
        regret=0.0,
        deficit=0.0,
        run_sd=0.003,
        pair_sd=0.002,
        thresholds=replace(TH, min_students=3),
    )
    assert shares[OUTCOME_HOLDS] >= 0.8


def test_a_comparator_that_diverges_is_never_held_against_the_fixed_arm() -> None:
    shares = outcome_shares(200, teachers=4, students=4, reference_diverges=(3,))
    assert shares[OUTCOME_FAILS] == 0.0
    decision = decide(
        study_records(np.random.default_rng(1), teachers=4, students=4, reference_diverges=(3,)),
        TH,
        PRIMARY,
    )
    assert {x["pair"] for x in decision.excluded} == {"p3"}
    assert all(x["against"] == "kd" for x in decision.excluded)
    assert any("comparator diverged" in n for n in decision.notes)


# --- size: P(holds) with the mean regret at the margin ------------------------------------------


@pytest.mark.parametrize(
    "layout",
    [
        dict(teachers=4, students=4, pair_sd=MARGIN),
        dict(teachers=4, students=2, pair_sd=0.0, student_sd=MARGIN, thresholds=LOWERED),
        dict(teachers=4, students=4, pair_sd=MARGIN, spread="gamma"),
        dict(teachers=6, students=6, pair_sd=2 * MARGIN, spread="gamma"),
    ],
    ids=["4x4", "4x2-student-mean-test-alone", "gamma-4x4", "gamma-6x6"],
)
def test_size_at_the_margin_is_at_most_alpha(layout: dict) -> None:
    sims = 400
    shares = outcome_shares(sims, noises=("none",), regret=MARGIN, deficit=-20 * MARGIN, **layout)
    assert shares[OUTCOME_HOLDS] <= ALPHA + slack(ALPHA, sims)


def test_size_when_one_teacher_and_one_student_are_in_most_pairs() -> None:
    # An L-shaped layout: teacher 0 with students 0…7, students 0's other teachers 1…7 — 15
    # pairs, 8 teachers, 8 students, but the mean rests on about two draws of each shared effect.
    cells = [(0, s) for s in range(8)] + [(t, 0) for t in range(1, 8)]
    sims = 400
    shares = outcome_shares(
        sims,
        teachers=8,
        students=8,
        cells=cells,
        noises=("none",),
        regret=MARGIN,
        deficit=-20 * MARGIN,
        pair_sd=0.1 * MARGIN,
        teacher_sd=MARGIN,
        student_sd=MARGIN,
    )
    assert shares[OUTCOME_HOLDS] <= ALPHA + slack(ALPHA, sims)


def _pairs_as_independent_units(records: list[dict]) -> str:
    """Every pair an independent unit (t over pair means, pairs − 1 df), no minimum of students."""
    by = {(r["noise"], r["pair"], r["seed"], r["method"]): r["test/top1"] for r in records}
    for noise in {r["noise"] for r in records}:
        pairs = sorted({p for (n, p, _, _) in by if n == noise})
        for other in ("redistill_tuned", "kd"):
            means = [
                np.mean(
                    [
                        by[k] - by[(*k[:3], "redistill")]
                        for k in by
                        if k[:2] == (noise, p) and k[3] == other
                    ]
                )
                for p in pairs
            ]
            if not _plain_t(means)[1] < MARGIN:
                return OUTCOME_OPEN
    return OUTCOME_HOLDS


def test_a_rule_counting_pairs_of_one_student_as_independent_fails_the_size_check() -> None:
    # Four teachers × two students, the regret at the margin through a student effect of 1 point.
    truth = dict(
        teachers=4,
        students=2,
        noises=("none",),
        regret=MARGIN,
        deficit=-20 * MARGIN,
        pair_sd=0.0,
        student_sd=MARGIN,
    )
    sims = 400
    naive = outcome_shares(sims, rule=_pairs_as_independent_units, **truth)[OUTCOME_HOLDS]
    assert naive > ALPHA + slack(ALPHA, sims)
    ours = outcome_shares(sims, thresholds=LOWERED, **truth)[OUTCOME_HOLDS]
    assert ours <= ALPHA + slack(ALPHA, sims)


# --- refuting the claim -----------------------------------------------------------------------

FASHION_LAYOUT = dict(
    teachers=8,
    students=2,
    pairs=8,
    noises=("none", "confident_wrong", "label_noise"),
    fixed_arms=("redistill", "redistill_student_first"),
)


def _chance_averaging_rule(records: list[dict]) -> str:
    """Divergences scored at chance and averaged; the mean over pairs, Holm across settings."""
    acc = {
        (r["noise"], r["pair"], r["seed"], r["method"]): (
            r["test/top1"] if r["status"] == "complete" else 1 / r["classes"]
        )
        for r in records
    }
    p_above = []
    for noise in sorted({k[0] for k in acc}):
        pairs = sorted({k[1] for k in acc if k[0] == noise})
        for other in ("redistill_tuned", "kd"):
            means = [
                np.mean(
                    [
                        acc[k] - acc[(*k[:3], "redistill")]
                        for k in acc
                        if k[:2] == (noise, p) and k[3] == other
                    ]
                )
                for p in pairs
            ]
            p_above.append(_plain_t(means)[0])
    # Holm by the package's vectorised version (checked against statsmodels' multipletests in
    # test_statistics): multipletests runs gc.collect() on every call, seconds each in a big suite.
    rejected = (holm_adjusted(np.array(p_above)) <= ALPHA).any()
    return OUTCOME_FAILS if rejected else OUTCOME_OPEN


def test_divergence_in_half_the_pairs_refutes_the_claim() -> None:
    # The primary diverges in every seed of 4 of 8 pairs under two of three settings.
    truth = dict(
        **FASHION_LAYOUT,
        failing={"pairs": [1, 3, 5, 7], "noises": ["none", "confident_wrong"], "size": "diverge"},
    )
    sims = 100
    assert outcome_shares(sims, **truth)[OUTCOME_FAILS] >= 0.95
    assert outcome_shares(sims, rule=_chance_averaging_rule, **truth)[OUTCOME_FAILS] < 0.95
    decision = decide(study_records(np.random.default_rng(0), **truth), TH)
    summary = decision.arms["redistill"].summary
    assert "diverged in 4 of 8 pairs (all seeds) under none and confident_wrong" in summary
    assert decision.arms["redistill"].failing_pairs == ["p1", "p3", "p5", "p7"]


def test_two_pairs_ten_points_worse_refute_the_claim() -> None:
    truth = dict(**FASHION_LAYOUT, failing={"pairs": [0, 1], "noises": ["none"], "size": 0.10})
    sims = 100
    assert outcome_shares(sims, **truth)[OUTCOME_FAILS] >= 0.8
    assert outcome_shares(sims, rule=_chance_averaging_rule, **truth)[OUTCOME_FAILS] < 0.8


def test_one_diverging_pair_of_ten_never_holds() -> None:
    truth = dict(teachers=5, students=5, pairs=10, failing={"pairs": [4], "size": "diverge"})
    shares = outcome_shares(100, **truth)
    assert shares[OUTCOME_HOLDS] == 0.0 and shares[OUTCOME_FAILS] == 1.0
    # ...and without the failure the same layout holds: the failure decided it.
    assert outcome_shares(100, teachers=5, students=5, pairs=10)[OUTCOME_HOLDS] >= 0.8


def test_a_single_diverged_seed_is_a_failure_of_its_pair() -> None:
    records = study_records(np.random.default_rng(3), teachers=4, students=4)
    victim = next(r for r in records if r["method"] == "redistill" and r["pair"] == "p2")
    victim["status"] = "diverged"
    decision = decide(records, TH, PRIMARY)
    assert decision.outcome == OUTCOME_FAILS
    assert decision.arms["redistill"].failing_pairs == ["p2"]
    assert "some seeds" in decision.arms["redistill"].summary


# --- gatekeeping ------------------------------------------------------------------------------


def test_the_second_arm_is_decided_only_after_the_first() -> None:
    # Two pairs of the secondary 10 points worse: a test, so it waits for the primary.
    rng = np.random.default_rng(5)
    both = ("redistill", "redistill_student_first")
    worse = {"pairs": [0, 1], "size": 0.10, "arms": ["redistill_student_first"]}
    small = dict(run_sd=0.003, pair_sd=0.002)
    records = study_records(rng, teachers=4, students=4, fixed_arms=both, failing=worse, **small)
    tested = decide(records, TH, replace(DEFAULT_ARMS, fixed=both))
    assert tested.outcome == OUTCOME_HOLDS
    assert tested.arms["redistill_student_first"].outcome == OUTCOME_OPEN
    assert tested.arms["redistill_student_first"].own == OUTCOME_FAILS
    rng = np.random.default_rng(4)
    both = ("redistill", "redistill_student_first")
    # The secondary diverges in a pair; the primary is sound.
    failing = {"pairs": [0], "size": "diverge", "arms": ["redistill_student_first"]}
    records = study_records(
        rng, teachers=4, students=4, fixed_arms=both, failing=failing, run_sd=0.003, pair_sd=0.002
    )
    decision = decide(records, TH, replace(DEFAULT_ARMS, fixed=both))
    secondary = decision.arms["redistill_student_first"]
    assert decision.outcome == OUTCOME_HOLDS and secondary.outcome == OUTCOME_FAILS
    # Its divergence refutes it although it comes second (under a true claim it cannot happen).
    # Declared the other way round, the diverging arm goes first and the sound one cannot be
    # declared to hold after a primary that does not.
    swapped = decide(records, TH, replace(DEFAULT_ARMS, fixed=both[::-1]))
    assert swapped.outcome == OUTCOME_FAILS
    later = swapped.arms["redistill"]
    assert later.own == OUTCOME_HOLDS and later.outcome == OUTCOME_OPEN
    assert "fixed-sequence" in later.summary


# --- the shown numbers are the ones the rule used -----------------------------------------------


def test_shown_bounds_agree_with_the_decision() -> None:
    rng = np.random.default_rng(6)
    for _ in range(40):
        records = study_records(
            rng, **FASHION_LAYOUT, regret=rng.uniform(0, 3 * MARGIN), pair_sd=2 * MARGIN
        )
        decision = decide(records, TH)
        th = decision.thresholds
        for e in decision.estimates:
            if e.lower > th.margin:
                assert e.p_above_adjusted <= ALPHA
            assert (e.upper < th.margin) == (e.p_below < ALPHA)
            for p in e.per_pair:
                if p.lower > th.failure_margin:
                    assert p.failed and p.p_adjusted <= ALPHA


# --- the record-level contract ----------------------------------------------------------------


def test_outcomes_per_declared_arm_and_missing_arms_are_skipped() -> None:
    rng = np.random.default_rng(11)
    both = ("redistill", "redistill_student_first")
    records = study_records(rng, teachers=4, students=4, fixed_arms=both)
    decision = decide(records, TH)
    assert set(decision.outcomes) == set(both)
    assert decision.primary == "redistill" and decision.outcome == decision.outcomes["redistill"]
    assert all(a.level == ALPHA for a in decision.arms.values())  # fixed sequence: full α each
    only_one = [r for r in records if r["method"] != "redistill_student_first"]
    assert set(decide(only_one, TH).outcomes) == {"redistill"}
    absent = decide(only_one, TH, replace(DEFAULT_ARMS, fixed=both[::-1]))
    assert absent.primary == "redistill_student_first" and absent.outcome == OUTCOME_OPEN
    # An absent primary gates the arm after it.
    assert absent.arms["redistill"].own == OUTCOME_HOLDS
    assert absent.arms["redistill"].outcome == OUTCOME_OPEN


def test_too_few_students_or_teachers_cannot_hold_and_says_why() -> None:
    records = study_records(np.random.default_rng(12), teachers=8, students=2)
    decision = decide(records, TH, PRIMARY)
    assert decision.outcome == OUTCOME_OPEN
    assert "≥ 4 students" in decision.arms["redistill"].summary
    assert decision.unit_kind == "16 pairs (8 teachers × 2 students)"


def test_a_declared_noise_setting_or_pair_without_runs_cannot_hold() -> None:
    rng = np.random.default_rng(12)
    records = study_records(rng, teachers=4, students=4)
    teachers = {r["pair"]: r["teacher"] for r in records}
    students = {r["pair"]: r["student"] for r in records}
    design = Declared(noises=("none", "noisy"), teachers=teachers, students=students)
    assert decide(records, TH, PRIMARY, design).outcome == OUTCOME_HOLDS
    clean_only = [r for r in records if r["noise"] == "none"]
    missing = decide(clean_only, TH, PRIMARY, design)
    assert missing.outcome == OUTCOME_OPEN and any(
        c["noise"] == "noisy" for c in missing.incomplete
    )
    teachers["p99"], students["p99"] = "t99", "s99"  # a declared pair that never ran
    extra = decide(records, TH, PRIMARY, design)
    assert {c["pair"] for c in extra.incomplete} == {"p99"} and extra.outcome == OUTCOME_OPEN


def test_a_crash_is_missing_data_not_an_outcome() -> None:
    records = study_records(np.random.default_rng(13), teachers=4, students=4)
    crashed = next(r for r in records if r["method"] == "redistill" and r["pair"] == "p5")
    crashed.update(status="failed", **{"test/top1": 0.1})
    decision = decide(records, TH, PRIMARY)
    assert decision.outcome == OUTCOME_OPEN  # not a failure of the pair, not a hold either
    [*cells] = decision.incomplete
    assert {c["pair"] for c in cells} == {"p5"}
    assert all(c["missing"] == {"redistill": [crashed["seed"]]} for c in cells)
    assert any("crashed" in n for n in decision.notes)


def test_a_complete_run_without_a_finite_score_is_a_divergence() -> None:
    records = study_records(np.random.default_rng(13), teachers=4, students=4)
    broken = next(r for r in records if r["method"] == "redistill")
    broken["test/top1"] = float("nan")
    decision = decide(records, TH, PRIMARY)
    assert decision.outcome == OUTCOME_FAILS
    assert decision.arms["redistill"].failing_pairs == [broken["pair"]]


def test_without_a_searched_arm_there_is_no_tuning_verdict() -> None:
    rng = np.random.default_rng(5)
    records = [
        r for r in study_records(rng, teachers=4, students=4) if r["method"] != "redistill_tuned"
    ]
    decision = decide(records, TH)
    assert decision.outcome == OUTCOME_OPEN
    assert any("no tuning verdict" in n for n in decision.notes)
    assert "no searched arm" in decision.arms["redistill"].summary


def test_arms_are_taken_by_role_not_by_name() -> None:
    # A second *fixed* arm that happens to be called redistill_tuned: nothing was searched.
    records = study_records(np.random.default_rng(2), teachers=4, students=4)
    for r in records:
        if r["method"] == "redistill_tuned":
            r["phase"] = "seeds"
    assert decide(records, TH, replace(DEFAULT_ARMS, searched=None)).searched is None
    # Declared as the searched arm, a method without a per-pair-tuned phase has nothing to offer.
    declared = decide(records, TH)
    assert declared.outcome == OUTCOME_OPEN
    assert declared.incomplete and all(c["quantity"] == "regret" for c in declared.incomplete)


def test_a_table_reading_of_divergence_at_chance_is_kept_for_reading_only() -> None:
    base = {"noise": "none", "phase": "seeds", "classes": 10}
    recs = []
    for i, pair in enumerate(("a", "b")):
        for s in (0, 1):
            common = {**base, "pair": pair, "teacher": f"t{i}", "student": "s", "seed": s}
            diverged = pair == "a" and s == 1
            recs.append(
                {
                    **common,
                    "method": "redistill",
                    "test/top1": float("nan") if diverged else 0.9,
                    "status": "diverged" if diverged else "complete",
                }
            )
            recs.append({**common, "method": "kd", "test/top1": 0.9, "status": "complete"})
    decision = decide(recs, TH, replace(DEFAULT_ARMS, searched=None))
    est = decision.arms["redistill"].per_noise[0].estimates["deficit"]
    a = next(p for p in est.per_pair if p.pair == "a")
    assert (a.seeds, a.diverged, a.mean) == (1, 1, 0.0)  # the diverged seed is not averaged in
    assert a.at_chance == pytest.approx((0.0 + 0.8) / 2)  # ...except for reading
    assert decision.outcome == OUTCOME_FAILS


def test_a_run_stopped_before_its_end_is_missing_too() -> None:
    records = study_records(np.random.default_rng(14), teachers=4, students=4)
    for r in records:
        if r["method"] == "redistill" and r["pair"] == "p2":
            r.update(status="pruned", **{"test/top1": 0.1})
    decision = decide(records, TH, PRIMARY)
    assert decision.arms["redistill"].failing_pairs == []
    assert {c["pair"] for c in decision.incomplete} == {"p2"}


def test_with_one_seed_no_pair_can_be_shown_to_fail_and_the_intervals_say_so() -> None:
    records = study_records(
        np.random.default_rng(15),
        teachers=4,
        students=4,
        seeds=1,
        failing={"pairs": [0], "size": 0.10},
    )
    decision = decide(records, TH, PRIMARY)
    worst = max((p for e in decision.estimates for p in e.per_pair), key=lambda p: p.mean)
    assert worst.pair == "p0" and not worst.failed
    assert worst.lower == -math.inf and worst.upper == math.inf
