"""The verdict's statistics on constructed inputs with known answers, and the transfer choice."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from redistill_study.analysis.verdict import (
    bootstrap_ci,
    build_verdict,
    cell_table,
    comparisons,
    fixed_lambda_regrets,
    paired_wilcoxon,
    transfer_regrets,
)
from redistill_study.study.transfer import best_trial, pick_transferred


def _records(method: str, phase: str, accs: dict[tuple[str, str], list[float]]) -> list[dict]:
    return [
        {"pair": p, "noise": n, "method": method, "phase": phase, "seed": s, "test/top1": a}
        for (p, n), values in accs.items()
        for s, a in enumerate(values)
    ]


CELLS = [("A", "none"), ("B", "none"), ("A", "cw=0.3"), ("B", "cw=0.3")]


def test_bootstrap_interval_covers_the_mean_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(0.7, 0.02, size=40)
    lo, hi = bootstrap_ci(data)
    assert lo < data.mean() < hi and hi - lo < 0.03
    assert bootstrap_ci(data) == (lo, hi)
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_wilcoxon_planted_winner_and_ties() -> None:
    a = [0.80 + 0.001 * i for i in range(12)]
    b = [x - 0.02 - 0.0005 * i for i, x in enumerate(a)]  # a always wins
    test = paired_wilcoxon(a, b)
    assert test["p"] < 0.001 and test["median_diff"] > 0
    assert paired_wilcoxon(a, a) == {"n": 12, "median_diff": 0.0, "statistic": 0.0, "p": 1.0}


def test_planted_fixed_lambda_regret() -> None:
    fixed = _records("redistill", "seeds", {c: [0.70, 0.71, 0.72] for c in CELLS})
    # Tuned λ is 0.5 points better in three cells (within one std = 1 point) and 5 points in one.
    tuned_acc = {c: [0.705, 0.715, 0.725] for c in CELLS[:3]} | {CELLS[3]: [0.75, 0.76, 0.77]}
    tuned = _records("redistill_tuned", "final", tuned_acc)
    regrets = {(r["pair"], r["noise"]): r for r in fixed_lambda_regrets(fixed + tuned)}
    assert regrets[CELLS[0]]["regret"] == pytest.approx(0.005)
    assert regrets[CELLS[0]]["seed_std"] == pytest.approx(0.01)
    assert regrets[CELLS[3]]["regret"] == pytest.approx(0.05)
    assert [regrets[c]["within_one_std"] for c in CELLS] == [True, True, True, False]
    kd = _records("kd", "seeds", {c: [0.69, 0.70, 0.71] for c in CELLS})
    verdict = build_verdict(fixed + tuned + kd, [])
    assert verdict.holds is False  # 3 of 4 < 80 %
    assert "3 of 4 cells" in verdict.text and "DOES NOT HOLD" in verdict.text
    by_noise = {r["noise"]: r for r in verdict.by_noise}
    assert by_noise["none"]["within"] == 2 and by_noise["cw=0.3"]["within"] == 1


def test_verdict_holds_when_fixed_matches_tuned_and_beats_kd() -> None:
    fixed = _records("redistill", "seeds", {c: [0.70, 0.71, 0.72] for c in CELLS})
    tuned = _records("redistill_tuned", "final", {c: [0.70, 0.712, 0.72] for c in CELLS})
    kd = _records("kd", "seeds", {c: [0.68, 0.69, 0.70] for c in CELLS})
    verdict = build_verdict(fixed + tuned + kd, [])
    assert verdict.holds is True and verdict.text.startswith("HOLDS")
    kd_test = next(t for t in verdict.tests if t["against"] == "kd")
    assert kd_test["median_diff"] == pytest.approx(0.02) and kd_test["n"] == 12


def test_transfer_regret_and_comparisons_use_the_right_phases() -> None:
    final = _records("dkd", "final", {("A", "none"): [0.80, 0.82], ("B", "none"): [0.70, 0.72]})
    moved = _records("dkd", "transfer", {("A", "none"): [0.77, 0.79], ("B", "none"): [0.70, 0.72]})
    fixed = _records(
        "redistill", "seeds", {("A", "none"): [0.78, 0.80], ("B", "none"): [0.71, 0.73]}
    )
    rows = {(r["method"], r["pair"]): r["regret"] for r in transfer_regrets(final + moved + fixed)}
    assert rows == {("dkd", "A"): pytest.approx(0.03), ("dkd", "B"): pytest.approx(0.0)}
    against = {t["against"] for t in comparisons(final + moved + fixed)}
    assert against == {"dkd", "dkd (transferred)"}
    table = {(c["pair"], c["method"]): c for c in cell_table(final + moved)}
    assert table[("A", "dkd (transferred)")]["mean"] == pytest.approx(0.78)


def test_optimal_lambda_and_curves_from_search_records() -> None:
    searches = [
        {"pair": "A", "noise": "none", "method": "redistill_tuned", "lam": lam, "val_top1": acc}
        for lam, acc in [(-1.0, 0.6), (0.5, 0.72), (1.2, 0.65)]
    ] + [{"pair": "A", "noise": "none", "method": "dkd", "lam": None, "val_top1": 0.9}]
    verdict = build_verdict([], searches)
    assert verdict.optimal_lambdas == [{"pair": "A", "noise": "none", "lam": 0.5, "val_top1": 0.72}]
    assert verdict.lambda_curves == {"A / none": [(-1.0, 0.6), (0.5, 0.72), (1.2, 0.65)]}
    assert verdict.holds is None and "No verdict yet" in verdict.text


def _trial(number: int, value: float | None, state=TrialState.COMPLETE):
    return (
        optuna.trial.create_trial(
            state=state,
            value=value,
            params={"lam": number / 10},
            distributions={"lam": optuna.distributions.FloatDistribution(-2, 2)},
        )
        if state == TrialState.COMPLETE
        else optuna.trial.create_trial(state=state)
    )


def test_transfer_picks_the_best_ranked_setting_of_other_pairs_only() -> None:
    other_b = [_trial(1, 0.70), _trial(2, 0.80), _trial(3, 0.75)]  # best 0.80, median 0.75
    other_c = [_trial(4, 0.60), _trial(5, 0.90), _trial(6, 0.88)]  # best 0.90, median 0.88
    pair, chosen = pick_transferred({"B": other_b, "C": other_c})
    # Both are rank 0 in their pair; B's best beats its median by more (0.05 vs 0.02).
    assert pair == "B" and chosen.value == 0.80
    assert pick_transferred({"B": [_trial(0, None, TrialState.PRUNED)]}) is None
    assert best_trial(other_c).value == 0.90
