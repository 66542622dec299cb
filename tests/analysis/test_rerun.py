"""The rerun agreement is calibrated: over studies drawn from a truth the test sets, the share of
simulated reruns that reach a decision predicts how often an independent rerun (a fresh draw of
every seed from the same truth, as another processor's round-off gives) reaches it; decisions
labelled clear are reproduced; the marginal ones are the ones that move."""

from __future__ import annotations

import numpy as np
import pytest

from redistill_study.analysis.rerun import CLEAR, agreement
from redistill_study.analysis.rule import FAILS, Observed, Thresholds, apply_rule

TH = Thresholds(margin=0.01, failure_margin=0.03)
TEACHERS, STUDENTS, SEEDS = np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4), 3


def _truth(rng: np.random.Generator, studies: int) -> np.ndarray:
    """(B, arms 2, noise 1, quantities 2, pairs 12) true pair means: teacher and student effects
    and, in half the studies, one pair placed anywhere from well inside to well beyond δ_f."""
    shape = (studies, 2, 1, 2, 12)
    mu = 0.003 * rng.standard_normal(shape)
    mu += 0.004 * rng.standard_normal((studies, 2, 1, 1, 4))[..., TEACHERS]
    mu += 0.004 * rng.standard_normal((studies, 2, 1, 1, 3))[..., STUDENTS]
    shifted = rng.random(studies) < 0.5
    mu[shifted, :, :, :, 0] += rng.uniform(0.01, 0.08, (shifted.sum(), 1, 1, 1))
    mu[:, 1] += 0.01  # the second arm trails the first: gatekeeping matters
    return mu


def _spread(rng: np.random.Generator, studies: int) -> np.ndarray:
    """Per study and pair, a skewed seed spread (gamma), larger for one student."""
    sd = 0.008 * rng.gamma(2.0, 0.5, (studies, 1, 1, 1, 12))
    return sd * np.where(STUDENTS == 2, 2.0, 1.0)


def _draw(rng: np.random.Generator, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Seed-level differences: the fixed arm's noise shared by both quantities of an arm."""
    shape = (*mu.shape, SEEDS)
    shared = rng.standard_normal((*mu.shape[:3], 1, mu.shape[-1], SEEDS))
    own = rng.standard_normal(shape)
    return mu[..., None] + sd[..., None] * (0.8 * shared + 0.6 * own)


def _observed(diffs: np.ndarray) -> Observed:
    return Observed(diffs, np.zeros(diffs.shape, bool), TEACHERS, STUDENTS)


@pytest.fixture(scope="module")
def simulated() -> tuple[np.ndarray, np.ndarray]:
    """(predicted agreement, reproduced by an independent rerun) per study and arm."""
    rng = np.random.default_rng(7)
    studies = 300
    mu, sd = _truth(rng, studies), _spread(rng, studies)
    first, second = _draw(rng, mu, sd), _draw(rng, mu, sd)
    decided = apply_rule(_observed(first), TH)
    again = apply_rule(_observed(second), TH)
    predicted = np.stack(
        [
            agreement(_observed(first[b : b + 1]), _one(decided, b), TH, reruns=400)
            for b in range(studies)
        ]
    )
    return predicted, decided.outcome == again.outcome


def _one(result, b: int):
    from dataclasses import replace

    return replace(result, outcome=result.outcome[b : b + 1])


def test_the_predicted_agreement_matches_how_often_a_rerun_agrees(simulated) -> None:
    predicted, reproduced = simulated
    assert abs(predicted.mean() - reproduced.mean()) < 0.05
    low = predicted < 0.8
    assert low.sum() >= 20  # the simulation has decisions near their thresholds
    assert reproduced[low].mean() < 0.85
    assert reproduced[low].mean() == pytest.approx(predicted[low].mean(), abs=0.12)


def test_clear_decisions_are_reproduced(simulated) -> None:
    predicted, reproduced = simulated
    clear = predicted >= CLEAR
    assert clear.sum() >= 200
    assert reproduced[clear].mean() >= 0.97


def test_a_divergence_is_taken_as_observed_and_one_seed_per_pair_is_not_estimable() -> None:
    rng = np.random.default_rng(0)
    diffs = 0.002 * rng.standard_normal((1, 1, 1, 1, 12, 3))
    diverged = np.zeros(diffs.shape, bool)
    diverged[..., 3, 0] = True
    diffs[diverged] = np.nan
    observed = Observed(diffs, diverged, TEACHERS, STUDENTS)
    result = apply_rule(observed, TH)
    assert result.outcome[0, 0] == FAILS
    assert agreement(observed, result, TH)[0] == 1.0
    single = _observed(diffs[..., :1])
    assert np.isnan(agreement(single, apply_rule(single, TH), TH)[0])


def test_the_same_records_give_the_same_agreement() -> None:
    rng = np.random.default_rng(3)
    diffs = 0.01 * rng.standard_normal((1, 2, 1, 2, 12, 3)) + 0.02
    observed = _observed(diffs)
    result = apply_rule(observed, TH)
    np.testing.assert_array_equal(agreement(observed, result, TH), agreement(observed, result, TH))
