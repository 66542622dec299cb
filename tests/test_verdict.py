"""The verdict's operating characteristics, checked by simulation on records whose truth we set.

The generator below is written for the tests, independently of the power calculator: a pair's
runs share a per-seed effect (same initialisation and batches for every arm), each run adds its
own noise σ, and the regret and deficit vary between pairs with sd τ. A rule that treats seeds
or cells as independent units is run through the same checks and must fail them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from helpers import study_records
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import DescrStatsW

from redistill_study.analysis.statistics import holm_adjusted, holm_reject, t_bounds
from redistill_study.analysis.verdict import FAILS, HOLDS, OPEN, decide

MARGIN = 0.01
ALPHA = 0.05


def outcome_shares(sims: int, seed: int = 0, **kwargs) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    outcomes = [
        decide(study_records(rng, **kwargs), margin=MARGIN, fixed=("redistill",)).outcome
        for _ in range(sims)
    ]
    return {o: outcomes.count(o) / sims for o in (HOLDS, FAILS, OPEN)}


def slack(p: float, sims: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / sims)


# --- calibration ------------------------------------------------------------------------------


@pytest.mark.parametrize("pair_sd", [0.0, MARGIN])
def test_size_at_the_margin_is_at_most_alpha(pair_sd: float) -> None:
    sims = 600
    shares = outcome_shares(
        sims,
        pairs=8,
        noises=("none",),
        regret=MARGIN,
        deficit=-20 * MARGIN,  # far inside: only the regret can stop "holds"
        pair_sd=pair_sd,
    )
    assert shares[HOLDS] <= ALPHA + slack(ALPHA, sims)
    # ...and it is not trivially conservative: close to α, as a calibrated test is.
    assert shares[HOLDS] >= ALPHA - slack(ALPHA, sims)


def test_power_with_ten_pairs_when_the_claim_is_exactly_true() -> None:
    shares = outcome_shares(200, pairs=10, regret=0.0, deficit=0.0)
    assert shares[HOLDS] >= 0.8


@pytest.mark.parametrize(
    "truth",
    [
        {"regret": 3 * MARGIN},
        {"deficit": 3 * MARGIN},
        {"regret": {"none": 0.0, "noisy": 3 * MARGIN}},  # fails under noise only
        {"diverge": 0.2},  # the fixed arm diverges in some seeds: scored at chance
    ],
    ids=["regret-3x", "deficit-3x", "noise-only", "diverges"],
)
def test_never_holds_when_the_claim_is_clearly_false(truth: dict) -> None:
    shares = outcome_shares(100, pairs=10, **truth)
    assert shares[HOLDS] == 0.0
    assert shares[FAILS] >= (0.5 if "diverge" in truth else 0.8)


def test_pairs_sharing_a_teacher_count_once() -> None:
    rng = np.random.default_rng(3)
    records = study_records(rng, pairs=8, pairs_per_teacher=2)
    decision = decide(records, margin=MARGIN)
    assert decision.unit_kind == "teachers"
    estimate = decision.arms["redistill"].per_noise[0].estimates["regret"]
    assert (estimate.units, estimate.pairs) == (4, 8)


def _naive_holds(records: list[dict]) -> bool:
    """Seeds as independent units: a t bound over every (pair, seed) difference."""
    by = {(r["noise"], r["pair"], r["seed"], r["method"]): r["test/top1"] for r in records}
    for noise in {r["noise"] for r in records}:
        for other in ("redistill_tuned", "kd"):
            diffs = [
                by[(n, p, s, other)] - by[(n, p, s, "redistill")]
                for (n, p, s, m) in by
                if n == noise and m == "redistill"
            ]
            if not t_bounds(np.array(diffs), MARGIN, ALPHA).upper < MARGIN:
                return False
    return True


def test_a_rule_treating_seeds_as_units_fails_the_size_check() -> None:
    rng = np.random.default_rng(7)
    sims = 300
    kwargs = dict(pairs=8, noises=("none",), regret=MARGIN, deficit=-20 * MARGIN, pair_sd=MARGIN)
    naive = np.mean([_naive_holds(study_records(rng, **kwargs)) for _ in range(sims)])
    assert naive > ALPHA + slack(ALPHA, sims)  # anti-conservative once pairs differ


def _pairs_as_units_holds(records: list[dict]) -> bool:
    """Cells as independent units: every pair counted once, though pairs share a teacher."""
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
            if not t_bounds(np.array(means), MARGIN, ALPHA).upper < MARGIN:
                return False
    return True


def test_a_rule_treating_pairs_of_one_teacher_as_units_fails_the_size_check() -> None:
    # Four teachers, two pairs each: the teacher's effect is shared by its pairs.
    sims = 300
    kwargs = dict(
        pairs=8,
        pairs_per_teacher=2,
        noises=("none",),
        regret=MARGIN,
        deficit=-20 * MARGIN,
        pair_sd=0.0,
        teacher_sd=MARGIN,
    )
    rng = np.random.default_rng(8)
    naive = np.mean([_pairs_as_units_holds(study_records(rng, **kwargs)) for _ in range(sims)])
    assert naive > ALPHA + slack(ALPHA, sims)  # anti-conservative: 8 "units" that are 4
    rng = np.random.default_rng(8)
    shares = [
        decide(study_records(rng, **kwargs), margin=MARGIN, fixed=("redistill",)).outcome
        for _ in range(sims)
    ]
    assert shares.count(HOLDS) / sims <= ALPHA + slack(ALPHA, sims)  # the teacher is the unit


# --- the record-level contract ---------------------------------------------------------------


def test_outcomes_per_fixed_arm_and_missing_arms_are_skipped() -> None:
    rng = np.random.default_rng(11)
    records = study_records(rng, fixed_arms=("redistill", "redistill_student_first"))
    decision = decide(records, margin=MARGIN)
    assert set(decision.outcomes) == {"redistill", "redistill_student_first"}
    assert decision.primary == "redistill" and decision.outcome == decision.outcomes["redistill"]
    # Two fixed arms: each bound at α/2.
    assert decision.arms["redistill"].level == pytest.approx(ALPHA / 2)
    only_one = [r for r in records if r["method"] != "redistill_student_first"]
    decided = decide(only_one, margin=MARGIN)
    assert set(decided.outcomes) == {"redistill"}
    # α is split over the *declared* arms: an arm without runs does not lend its share.
    assert decided.arms["redistill"].level == pytest.approx(ALPHA / 2)
    assert decide(only_one, margin=MARGIN, fixed=("redistill",)).arms["redistill"].level == ALPHA
    # The primary arm is the first declared; without runs it has no verdict yet.
    absent = decide(only_one, margin=MARGIN, fixed=("redistill_student_first", "redistill"))
    assert absent.primary == "redistill_student_first" and absent.outcome == OPEN


def test_a_declared_noise_setting_or_pair_without_runs_cannot_hold() -> None:
    rng = np.random.default_rng(12)
    records = study_records(rng, pairs=10, fixed_arms=("redistill",))
    teachers = {r["pair"]: r["teacher"] for r in records}
    full = decide(
        records, margin=MARGIN, fixed=("redistill",), noises=("none", "noisy"), teachers=teachers
    )
    assert full.outcome == HOLDS
    clean_only = [r for r in records if r["noise"] == "none"]
    missing = decide(
        clean_only, margin=MARGIN, fixed=("redistill",), noises=("none", "noisy"), teachers=teachers
    )
    assert missing.outcome == OPEN and any(c["noise"] == "noisy" for c in missing.incomplete)
    teachers["p99"] = "t99"  # a declared pair that never ran
    extra = decide(
        records, margin=MARGIN, fixed=("redistill",), noises=("none", "noisy"), teachers=teachers
    )
    assert {c["pair"] for c in extra.incomplete} == {"p99"}


def test_a_complete_run_without_a_finite_score_counts_at_chance() -> None:
    rng = np.random.default_rng(13)
    records = study_records(rng, pairs=6, fixed_arms=("redistill",))
    broken = next(r for r in records if r["method"] == "redistill")
    broken["test/top1"] = float("nan")
    decision = decide(records, margin=MARGIN, fixed=("redistill",))
    estimate = decision.arms["redistill"].per_noise[0].estimates["regret"]
    assert estimate.units == 6 and estimate.mean > 0.03  # kept, at chance, not dropped


def test_without_a_searched_arm_there_is_no_tuning_verdict() -> None:
    rng = np.random.default_rng(5)
    records = [r for r in study_records(rng) if r["method"] != "redistill_tuned"]
    decision = decide(records, margin=MARGIN)
    assert decision.outcome == OPEN
    assert any("no tuning verdict" in n for n in decision.notes)
    assert "no searched λ arm" in decision.arms["redistill"].summary


def test_arms_are_taken_by_role_not_by_name() -> None:
    # A second *fixed* arm that happens to be called redistill_tuned: nothing was searched.
    rng = np.random.default_rng(2)
    records = study_records(rng)
    for r in records:
        if r["method"] == "redistill_tuned":
            r["phase"] = "seeds"
    decision = decide(records, margin=MARGIN, searched=None)
    assert decision.searched is None and decision.outcome == OPEN
    # Declared as the searched arm, a method without a per-pair-tuned phase has nothing to offer.
    declared = decide(records, margin=MARGIN)
    assert declared.outcome == OPEN
    assert declared.incomplete and all(c["quantity"] == "regret" for c in declared.incomplete)


def test_incomplete_cells_are_reported_and_kept_out() -> None:
    rng = np.random.default_rng(9)
    records = study_records(rng, pairs=6)
    dropped = [
        r
        for r in records
        if not (
            r["pair"] == "p0" and r["noise"] == "noisy" and r["method"] == "kd" and r["seed"] == 2
        )
    ]
    decision = decide(dropped, margin=MARGIN)
    [cell] = decision.incomplete
    assert (cell["pair"], cell["noise"], cell["quantity"]) == ("p0", "noisy", "deficit")
    assert cell["missing"] == {"kd": [2]}
    noisy = next(nd for nd in decision.arms["redistill"].per_noise if nd.noise == "noisy")
    assert noisy.estimates["deficit"].units == 5 and noisy.estimates["regret"].units == 6
    assert "incomplete" in decision.text


def test_diverged_runs_count_at_chance() -> None:
    base = {"teacher": "t", "noise": "none", "phase": "seeds", "classes": 10}
    recs = []
    for pair in ("a", "b"):
        for s in (0, 1):
            recs.append(
                {
                    **base,
                    "pair": pair,
                    "method": "redistill",
                    "seed": s,
                    "test/top1": float("nan") if s == 1 else 0.9,
                    "status": "diverged" if s == 1 else "complete",
                }
            )
            recs.append(
                {
                    **base,
                    "pair": pair,
                    "method": "kd",
                    "seed": s,
                    "test/top1": 0.9,
                    "status": "complete",
                }
            )
    decision = decide(recs, margin=MARGIN, searched=None)
    est = decision.arms["redistill"].per_noise[0].estimates["deficit"]
    assert est.mean == pytest.approx((0.0 + (0.9 - 0.1)) / 2)
    assert [u.diverged for u in est.per_unit] == [2]  # one unit (shared teacher), two at chance


def test_bounds_match_statsmodels_and_holm_matches_multipletests() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.004, 0.006, size=9)
    ours = t_bounds(values, MARGIN, ALPHA)
    stats = DescrStatsW(values)
    low, high = stats.tconfint_mean(alpha=2 * ALPHA)  # its ends are the one-sided bounds
    assert float(ours.lower) == pytest.approx(low) and float(ours.upper) == pytest.approx(high)
    _, p_smaller = stats.ttest_mean(MARGIN, alternative="smaller")[:2]
    _, p_larger = stats.ttest_mean(MARGIN, alternative="larger")[:2]
    assert float(ours.p_below) == pytest.approx(p_smaller)
    assert float(ours.p_above) == pytest.approx(p_larger)
    family = rng.random((12, 6)) ** 3
    family[rng.random(family.shape) < 0.2] = np.nan
    for row, rejected, adjusted in zip(family, holm_reject(family, ALPHA), holm_adjusted(family)):
        keep = ~np.isnan(row)
        if keep.any():
            reject_ref, adjusted_ref = multipletests(row[keep], alpha=ALPHA, method="holm")[:2]
            assert np.array_equal(rejected[keep], reject_ref)
            np.testing.assert_allclose(adjusted[keep], adjusted_ref)
        assert not rejected[~keep].any()


def test_unit_means_agree_with_a_mixed_model_on_a_balanced_design() -> None:
    # docs/method.md §6: the t bound over unit means and a random-intercept model agree when the
    # design is balanced. statsmodels' MixedLM is the independent check of the estimate and SE.
    import pandas as pd
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(4)
    rows = []
    for unit in range(12):  # in points: the optimiser works on well-scaled numbers
        effect = 0.3 + 0.6 * rng.standard_normal()
        for _seed in range(4):
            rows.append({"unit": unit, "diff": effect + 0.5 * rng.standard_normal()})
    frame = pd.DataFrame(rows)
    fit = smf.mixedlm("diff ~ 1", frame, groups=frame["unit"]).fit(reml=True)
    means = frame.groupby("unit")["diff"].mean().to_numpy()
    ours = t_bounds(means, 100 * MARGIN, ALPHA)
    assert float(ours.mean) == pytest.approx(fit.fe_params["Intercept"], rel=1e-6)
    assert float(ours.se) == pytest.approx(fit.bse["Intercept"], rel=1e-3)
    q = scipy.stats.t.ppf(1 - ALPHA, len(means) - 1)
    assert float(ours.upper) == pytest.approx(
        fit.fe_params["Intercept"] + q * fit.bse["Intercept"], rel=1e-3
    )
