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
# α is split between the two families, here and nowhere else: the per-pair tests take α·PAIR_SHARE
# and the mean tests the rest, each shared within its family by Holm (or Bonferroni, for bounds).
PAIR_SHARE = 0.5
MEAN_SHARE = 1 - PAIR_SHARE


@dataclass(frozen=True)
class Thresholds:
    """The declared question: margins, level and the smallest study that may say "holds"."""

    margin: float
    failure_margin: float
    alpha: float = 0.05
    min_pairs: int = 10
    min_students: int = 4
    min_teachers: int = 4

    @property
    def pair_alpha(self) -> float:
        """The per-pair tests' share of α."""
        return self.alpha * PAIR_SHARE

    @property
    def mean_alpha(self) -> float:
        """The mean tests' share of α."""
        return self.alpha * MEAN_SHARE


def per_test(level: float, family: int) -> float:
    """One test's level when ``level`` is shared by ``family`` tests (Bonferroni; at least one)."""
    return level / max(family, 1)


@dataclass(frozen=True)
class Observed:
    """The rule's input, axes (batch, arms, noise settings, quantities, pairs, seeds):
    ``diffs`` comparator − fixed per seed where both trained (NaN: not compared),
    ``fixed_diverged`` the seeds where the fixed arm diverged while the comparator trained, and
    the pairs' teachers and students (integer labels per pair). ``diverged_anywhere`` (B, A): the
    arm diverged somewhere, even where the comparator did too (it then cannot hold);
    ``incomplete`` (B, A): a declared cell misses runs (it cannot hold either)."""

    diffs: np.ndarray
    fixed_diverged: np.ndarray
    teacher_of: np.ndarray
    student_of: np.ndarray
    diverged_anywhere: np.ndarray | None = None
    incomplete: np.ndarray | None = None


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


def _rejected(p_adjusted: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(np.isnan(p_adjusted), False, p_adjusted <= alpha)


@dataclass(frozen=True)
class _PairLevel:
    tests: PairTests
    p_adj: np.ndarray
    diverged: np.ndarray
    failed: np.ndarray

    @classmethod
    def of(cls, diffs: np.ndarray, fixed_diverged: np.ndarray, th: Thresholds) -> _PairLevel:
        tests = pair_tests(diffs, th.failure_margin)
        p_adj = holm_on_alpha_scale(tests.p_above, 3, PAIR_SHARE)
        diverged: np.ndarray = np.asarray(fixed_diverged.any(-1))
        return cls(tests, p_adj, diverged, _rejected(p_adj, th.alpha) | diverged)


@dataclass(frozen=True)
class _MeanLevel:
    means: CrossedMean
    p_below: np.ndarray
    p_above_adj: np.ndarray
    rejected: np.ndarray

    @classmethod
    def of(cls, pairs: PairTests, observed: Observed, th: Thresholds) -> _MeanLevel:
        means = crossed_mean(pairs.mean, observed.teacher_of, observed.student_of)
        p_below, p_above = t_tests(means.mean, means.se, means.df, th.margin)
        p_above = np.where(means.n >= 2, p_above, np.nan)
        p_above_adj = holm_on_alpha_scale(p_above, 2, MEAN_SHARE)
        return cls(means, p_below, p_above_adj, _rejected(p_above_adj, th.alpha))


def _counts(means: CrossedMean, th: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """The fewest pairs, students and teachers over (N, Q), and whether they are enough."""
    counts = np.stack([means.n, means.students, means.teachers], -1).min((-2, -3))
    enough = (
        (counts[..., 0] >= th.min_pairs)
        & (counts[..., 1] >= th.min_students)
        & (counts[..., 2] >= th.min_teachers)
    )
    return counts, enough


def _clean(pair: _PairLevel, observed: Observed) -> np.ndarray:
    """Never diverged (where compared, or anywhere) and no cell incomplete."""
    clean = ~pair.diverged.any(axis=(-1, -2, -3))
    if observed.diverged_anywhere is not None:
        clean &= ~np.asarray(observed.diverged_anywhere, dtype=bool)
    if observed.incomplete is not None:
        clean &= ~np.asarray(observed.incomplete, dtype=bool)
    return np.asarray(clean)


def _fixed_sequence(own: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """Fixed sequence: a test spends α only after the arms before it were decided the same way.
    A divergence is observed, not inferred (under a true claim it cannot happen), so it refutes
    an arm whatever came before."""
    outcome = own.copy()
    for a in range(1, own.shape[1]):
        gate_fails = (outcome[:, :a] == FAILS).all(-1)
        gate_holds = (outcome[:, :a] == HOLDS).all(-1)
        outcome[:, a] = np.where(
            (own[:, a] == FAILS) & ~gate_fails & ~diverged[:, a], OPEN, outcome[:, a]
        )
        outcome[:, a] = np.where((own[:, a] == HOLDS) & ~gate_holds, OPEN, outcome[:, a])
    return outcome


def apply_rule(observed: Observed, thresholds: Thresholds) -> RuleResult:
    """The rule. Quantities without any compared seed are NaN and keep the arm from holding."""
    th = thresholds
    diffs = np.asarray(observed.diffs, dtype=float)
    fixed_diverged = np.asarray(observed.fixed_diverged, dtype=bool)
    batch, arms = diffs.shape[:2]
    pair = _PairLevel.of(diffs, fixed_diverged, th)
    mean = _MeanLevel.of(pair.tests, observed, th)
    fails = np.asarray(pair.failed.any(axis=(-1, -2, -3)) | mean.rejected.any(axis=(-1, -2)))
    bounded = np.where(np.isnan(mean.means.mean), False, mean.p_below < th.alpha).all((-1, -2))
    counts, enough = _counts(mean.means, th)
    holds = ~fails & bounded & enough & _clean(pair, observed) & (diffs.shape[2] > 0)
    own = np.where(fails, FAILS, np.where(holds, HOLDS, OPEN))
    outcome = _fixed_sequence(own, np.asarray(pair.diverged.any(axis=(-1, -2, -3))))
    assert outcome.shape == (batch, arms)
    return RuleResult(
        outcome=outcome,
        own=own,
        means=mean.means,
        p_below=mean.p_below,
        p_above_adj=mean.p_above_adj,
        pairs=pair.tests,
        pair_p_adj=pair.p_adj,
        pair_diverged=pair.diverged,
        pair_failed=pair.failed,
        mean_rejected=mean.rejected,
        enough=enough,
        counts=counts,
    )
