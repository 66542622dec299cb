"""The verdict's rule on arrays: pair-level and mean-level evidence, for one study or thousands
of simulated ones (the power calculator pushes its simulations through this very function).

Axes: (batch, arms, noise settings, quantities, pairs, seeds). ``diffs`` holds comparator −
fixed per seed where both trained; ``fixed_diverged`` marks seeds where the fixed arm diverged
while the comparator trained. Per fixed arm, at level α (docs/method.md §6):

- **does not hold** if it diverged in some pair, or a per-pair test rejects "the pair's
  regret (deficit) ≤ δ_f" (Holm over noise settings × quantities × pairs, within α·share), or a
  mean test rejects "mean ≤ δ" (Holm over noise settings × quantities, within α·(1 − share));
- **holds** if not, every one-sided (1 − α) upper bound of a mean is below δ, the arm never
  diverged, no cell is incomplete and the study has enough pairs, students and teachers;
- **inconclusive** otherwise.

Arms are tested in their declared order at full α each (fixed-sequence gatekeeping): an arm
can be declared to hold (or, by a test, not to hold) only when every arm before it was; a
divergence refutes an arm whatever came before, since under a true claim it cannot happen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .statistics import CrossedMean, PairTests, crossed_mean, holm_adjusted, pair_tests, t_tests

OPEN, HOLDS, FAILS = 0, 1, 2
OUTCOMES = {OPEN: "inconclusive", HOLDS: "holds", FAILS: "does not hold"}
PAIR_SHARE = 0.5  # of α, for the per-pair tests; the mean tests take the rest


@dataclass(frozen=True)
class Thresholds:
    """The declared question: margins, level and the smallest study that may say "holds"."""

    margin: float
    failure_margin: float
    alpha: float = 0.05
    min_pairs: int = 10
    min_students: int = 4
    min_teachers: int = 4


@dataclass(frozen=True)
class RuleResult:
    """Everything the rule computed; arrays keep the input's leading axes."""

    outcome: np.ndarray  # (B, A) after gatekeeping
    own: np.ndarray  # (B, A) each arm on its own evidence
    means: CrossedMean  # (B, A, N, Q)
    p_below: np.ndarray  # (B, A, N, Q) H1: mean < δ
    p_above_adj: np.ndarray  # (B, A, N, Q) Holm-adjusted, on the α scale
    pairs: PairTests  # (B, A, N, Q, P)
    pair_p_adj: np.ndarray  # (B, A, N, Q, P) Holm-adjusted, on the α scale
    pair_diverged: np.ndarray  # (B, A, N, Q, P) the fixed arm diverged where the other trained
    pair_failed: np.ndarray  # (B, A, N, Q, P) diverged or rejected
    mean_rejected: np.ndarray  # (B, A, N, Q)
    enough: np.ndarray  # (B, A) enough pairs, students and teachers
    counts: np.ndarray  # (B, A, 3) the fewest pairs, students, teachers over (N, Q)


def holm_on_alpha_scale(p: np.ndarray, axes: int, share: float) -> np.ndarray:
    """Holm-adjusted p-values over the last ``axes`` axes, divided by the α share the family
    gets, so that each is compared with α itself."""
    shape = p.shape
    if p.size == 0:
        return p.copy()
    flat = p.reshape(*shape[: len(shape) - axes], -1)
    return np.minimum(1.0, holm_adjusted(flat) / share).reshape(shape)


def apply_rule(
    diffs: np.ndarray,
    fixed_diverged: np.ndarray,
    teacher_of: np.ndarray,
    student_of: np.ndarray,
    thresholds: Thresholds,
    *,
    diverged_anywhere: np.ndarray | None = None,
    incomplete: np.ndarray | None = None,
) -> RuleResult:
    """The rule. ``diverged_anywhere`` (B, A): the arm diverged somewhere, even where the
    comparator did too (it then cannot hold); ``incomplete`` (B, A): a declared cell misses
    runs (it cannot hold either). Quantities without any compared seed are NaN and keep the
    arm from holding."""
    th = thresholds
    diffs = np.asarray(diffs, dtype=float)
    fixed_diverged = np.asarray(fixed_diverged, dtype=bool)
    batch, arms = diffs.shape[:2]
    pairs = pair_tests(diffs, th.failure_margin)
    pair_p_adj = holm_on_alpha_scale(pairs.p_above, 3, PAIR_SHARE)
    pair_rejected = np.where(np.isnan(pair_p_adj), False, pair_p_adj <= th.alpha)
    pair_diverged: np.ndarray = np.asarray(fixed_diverged.any(-1))
    pair_failed = pair_rejected | pair_diverged

    means = crossed_mean(pairs.mean, teacher_of, student_of)
    p_below, p_above = t_tests(means.mean, means.se, means.df, th.margin)
    p_above = np.where(means.n >= 2, p_above, np.nan)
    p_above_adj = holm_on_alpha_scale(p_above, 2, 1 - PAIR_SHARE)
    mean_rejected = np.where(np.isnan(p_above_adj), False, p_above_adj <= th.alpha)

    fails = np.asarray(pair_failed.any(axis=(-1, -2, -3)) | mean_rejected.any(axis=(-1, -2)))
    bounded = np.where(np.isnan(means.mean), False, p_below < th.alpha).all((-1, -2))
    counts = np.stack([means.n, means.students, means.teachers], -1).min((-2, -3))
    enough = (
        (counts[..., 0] >= th.min_pairs)
        & (counts[..., 1] >= th.min_students)
        & (counts[..., 2] >= th.min_teachers)
    )
    clean = ~pair_diverged.any(axis=(-1, -2, -3))
    if diverged_anywhere is not None:
        clean &= ~np.asarray(diverged_anywhere, dtype=bool)
    if incomplete is not None:
        clean &= ~np.asarray(incomplete, dtype=bool)
    holds = ~fails & bounded & enough & clean & (diffs.shape[2] > 0)
    own = np.where(fails, FAILS, np.where(holds, HOLDS, OPEN))
    # Fixed sequence: a test spends α only after the arms before it were decided the same way.
    # A divergence is observed, not inferred (under a true claim it cannot happen), so it
    # refutes an arm whatever came before.
    diverged: np.ndarray = np.asarray(pair_diverged.any(axis=(-1, -2, -3)))
    outcome = own.copy()
    for a in range(1, arms):
        gate_fails = (outcome[:, :a] == FAILS).all(-1)
        gate_holds = (outcome[:, :a] == HOLDS).all(-1)
        outcome[:, a] = np.where(
            (own[:, a] == FAILS) & ~gate_fails & ~diverged[:, a], OPEN, outcome[:, a]
        )
        outcome[:, a] = np.where((own[:, a] == HOLDS) & ~gate_holds, OPEN, outcome[:, a])
    assert outcome.shape == (batch, arms)
    return RuleResult(
        outcome=outcome,
        own=own,
        means=means,
        p_below=p_below,
        p_above_adj=p_above_adj,
        pairs=pairs,
        pair_p_adj=pair_p_adj,
        pair_diverged=pair_diverged,
        pair_failed=pair_failed,
        mean_rejected=mean_rejected,
        enough=enough,
        counts=counts,
    )
