"""The verdict's numbers as typed records: per fixed arm, noise setting and quantity, the
estimate over pairs and every pair's own value, each with the bounds the rule used."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .evidence import QUANTITIES, Evidence
from .rerun import is_clear
from .rule import FAILS, OPEN, OUTCOMES, RuleResult, Thresholds, per_test
from .statistics import clopper_pearson_upper, t_quantile


@dataclass
class PairValue:
    """One pair's seed-paired mean difference, with the interval its own test uses."""

    pair: str
    teacher: str
    student: str
    mean: float  # over the seeds both arms trained (NaN: none)
    lower: float
    upper: float
    seeds: int
    diverged: int  # seeds where the fixed arm diverged and the comparator trained
    excluded: int  # seeds left out: the comparator diverged
    at_chance: float  # the mean with divergences read at chance, for reading only
    p_adjusted: float  # Holm, on the α scale
    failed: bool


@dataclass
class Estimate:
    """Mean regret or deficit of one fixed arm in one noise setting, across pairs."""

    arm: str
    quantity: str
    against: str
    noise: str
    pairs: int
    teachers: int
    students: int
    df: float
    mean: float
    se: float
    lower: float  # at the level that rejects on its own (α·share / family), so L > δ ⇒ reject
    upper: float  # one-sided (1 − α): "holds" needs it below δ
    p_below: float
    p_above_adjusted: float
    predict_low: float  # 95 % prediction interval for a new pair
    predict_high: float
    per_pair: list[PairValue] = field(default_factory=list)


@dataclass
class NoiseDecision:
    noise: str
    outcome: str  # this setting's evidence alone
    estimates: dict[str, Estimate]


@dataclass
class ArmDecision:
    arm: str
    outcome: str
    own: str  # on its own evidence, before gatekeeping
    level: float
    per_noise: list[NoiseDecision]
    failing_pairs: list[str]
    pairs: int
    failing_share_upper: float  # one-sided (1 − α) Clopper–Pearson bound on flagged pairs
    diverged_anywhere: bool = False  # also where the comparator diverged too
    summary: str = ""
    would_change: str = ""
    units_needed: int | None = None
    rerun_agreement: float = math.nan  # share of simulated reruns reaching the same outcome
    deciding: str = ""  # the evidence nearest its threshold, in words

    @property
    def marginal(self) -> bool:
        """Another machine or seed could move it (:mod:`~redistill_study.analysis.rerun`)."""
        return not is_clear(self.rerun_agreement)

    @property
    def closeness(self) -> str:
        """``marginal: adjusted p 0.031, α 0.05; 64 % of simulated reruns reach it``."""
        if math.isnan(self.rerun_agreement):
            reruns = "rerun agreement not estimated (it needs two seeds per pair)"
        else:
            reruns = f"{100 * self.rerun_agreement:.0f} % of simulated reruns reach it"
        label = "marginal" if self.marginal else "clear"
        return f"{label}: {self.deciding}; {reruns}" if self.deciding else f"{label}: {reruns}"


@dataclass(frozen=True)
class _Quantiles:
    """The t quantiles of one arm's bounds, per (noise setting, quantity)."""

    pair: np.ndarray  # a pair's interval, at its test's Bonferroni level
    lower: np.ndarray  # the mean's rejecting bound
    upper: np.ndarray  # the mean's (1 − α) upper bound
    predict: np.ndarray  # a new pair's 95 % prediction

    @classmethod
    def of(cls, result: RuleResult, th: Thresholds, a: int) -> _Quantiles:
        pair_family = int(np.isfinite(result.pairs.p_above[0, a]).sum())
        mean_family = int(np.isfinite(result.p_above_adj[0, a]).sum())
        df = result.means.df[0, a]
        return cls(
            pair=t_quantile(per_test(th.pair_alpha, pair_family), result.pairs.df[0, a]),
            lower=t_quantile(per_test(th.mean_alpha, mean_family), df),
            upper=t_quantile(th.alpha, df),
            predict=t_quantile(0.025, df),
        )


def arm_decision(evidence: Evidence, result: RuleResult, th: Thresholds, a: int) -> ArmDecision:
    """One arm's outcome with its estimates (the words come later, from ``explain``)."""
    quantiles = _Quantiles.of(result, th, a)
    per_noise = []
    for n, noise in enumerate(evidence.noises):
        estimates = {
            quantity: _estimate(evidence, result, quantiles, a, n, q)
            for q, quantity in enumerate(QUANTITIES)
            if evidence.against[q] is not None
        }
        per_noise.append(NoiseDecision(noise, _noise_outcome(estimates, th), estimates))
    pairs = evidence.layout.pairs
    failing = sorted({pairs[p] for p in np.argwhere(result.pair_failed[0, a].any((0, 1))).ravel()})
    seen = (result.pairs.n[0, a] > 0) | result.pair_diverged[0, a]
    total = int(seen.any((0, 1)).sum())
    return ArmDecision(
        arm=evidence.arms[a],
        outcome=OUTCOMES[int(result.outcome[0, a])],
        own=OUTCOMES[int(result.own[0, a])],
        level=th.alpha,
        per_noise=per_noise,
        failing_pairs=failing,
        pairs=total,
        failing_share_upper=clopper_pearson_upper(len(failing), total, th.alpha),
        diverged_anywhere=bool(evidence.diverged_anywhere[0, a]),
    )


def _estimate(
    evidence: Evidence, result: RuleResult, quantiles: _Quantiles, a: int, n: int, q: int
) -> Estimate:
    m, at = result.means, (0, a, n, q)
    mean, se = float(m.mean[at]), float(m.se[at])
    spread = math.sqrt(float(m.spread[at]) ** 2 + se**2)
    return Estimate(
        arm=evidence.arms[a],
        quantity=QUANTITIES[q],
        against=str(evidence.against[q]),
        noise=evidence.noises[n],
        pairs=int(m.n[at]),
        teachers=int(m.teachers[at]),
        students=int(m.students[at]),
        df=float(m.df[at]),
        mean=mean,
        se=se,
        lower=mean - float(quantiles.lower[n, q]) * se,
        upper=mean + float(quantiles.upper[n, q]) * se,
        p_below=float(result.p_below[at]),
        p_above_adjusted=float(result.p_above_adj[at]),
        predict_low=mean - float(quantiles.predict[n, q]) * spread,
        predict_high=mean + float(quantiles.predict[n, q]) * spread,
        per_pair=_pair_values(evidence, result, float(quantiles.pair[n, q]), a, n, q),
    )


def _pair_values(
    evidence: Evidence, result: RuleResult, quantile: float, a: int, n: int, q: int
) -> list[PairValue]:
    layout, pt = evidence.layout, result.pairs
    rows = []
    for p, pair in enumerate(layout.pairs):
        at = (0, a, n, q, p)
        seeds = int(pt.n[at])
        diverged = int(evidence.fixed_diverged[at].sum())
        if not seeds and not diverged:
            continue
        sd, df = float(pt.sd[0, a, n, q]), float(pt.df[0, a, n, q])
        if df < 1:
            half = math.inf  # one seed per pair: no within-pair spread, no pair test
        else:
            half = quantile * sd / math.sqrt(max(seeds, 1)) if sd > 0 else 0.0
        value = float(pt.mean[at])
        rows.append(
            PairValue(
                pair=pair,
                teacher=layout.teachers[p],
                student=layout.students[p],
                mean=value,
                lower=value - half if seeds else math.nan,
                upper=value + half if seeds else math.nan,
                seeds=seeds,
                diverged=diverged,
                excluded=_excluded(evidence, a, n, q, pair),
                at_chance=float(evidence.read_at_chance[at]),
                p_adjusted=float(result.pair_p_adj[at]),
                failed=bool(result.pair_failed[at]),
            )
        )
    return rows


def _excluded(evidence: Evidence, a: int, n: int, q: int, pair: str) -> int:
    key = (evidence.arms[a], evidence.noises[n], QUANTITIES[q], pair)
    return sum(
        len(x["seeds"])
        for x in evidence.excluded
        if (x["arm"], x["noise"], x["quantity"], x["pair"]) == key
    )


def _noise_outcome(estimates: dict[str, Estimate], th: Thresholds) -> str:
    """One noise setting's evidence alone, for the dashboard's titles (not a verdict: the
    minimum numbers of pairs, students and teachers apply to the arm, not to a setting)."""
    if any(p.failed for e in estimates.values() for p in e.per_pair) or any(
        e.p_above_adjusted <= th.alpha for e in estimates.values()
    ):
        return OUTCOMES[FAILS]
    if estimates and all(e.upper < th.margin for e in estimates.values()):
        return "bounds within δ"
    return OUTCOMES[OPEN]
