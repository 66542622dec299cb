"""The world simulated studies are drawn from (:class:`World`: run-to-run, pair, teacher and
student spreads, their correlations, the failing pairs), and the world a finished study shows
(:func:`estimate_world`, from the verdict's :func:`~redistill_study.analysis.verdict.estimate`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .evidence import Evidence
from .rule import RuleResult
from .statistics import crossed_mean

DIVERGE = math.inf


@dataclass(frozen=True)
class World:
    """What the simulated studies are drawn from (fractions of accuracy)."""

    seed_sd: float = 0.005
    pair_sd: float = 0.005
    teacher_sd: float = 0.0
    student_sd: float = 0.0
    quantity_correlation: float = 0.5
    noise_correlation: float = 0.5
    failure_share: float = 0.0
    failure_size: float = DIVERGE  # how much worse a failing pair is; DIVERGE: every seed diverges
    failure_settings: int = 1


def estimate_world(evidence: Evidence, result: RuleResult, seeds: int) -> World | None:
    """The world a finished study shows, from the primary arm's evidence and the rule's
    statistics (``verdict.estimate``): σ from the pooled within-pair spread of paired
    differences (a difference of two runs: 2σ²), the components from the crossed moment
    estimates net of the run noise each pair mean carries, the correlations from pair means,
    and the failing share and size from the pairs the rule found failing. Runs of a diverged
    arm are not in it (never at chance). None when nothing can be estimated."""
    pairs = result.pairs
    df = float(np.nansum(pairs.df[0, 0]))
    if not df > 0:
        return None
    within = float(np.nansum(pairs.sd[0, 0] ** 2 * pairs.df[0, 0]) / df)
    sigma2 = within / 2
    failed = result.pair_failed[0, 0].any((0, 1))  # per pair
    means = np.where(failed[None, None, :], np.nan, pairs.mean[0, 0])  # (N, Q, P)
    teacher_of, student_of = evidence.layout.indices()
    crossed = crossed_mean(means, teacher_of, student_of)
    comp = np.nanmean(crossed.components.reshape(-1, 3), axis=0)
    n_pairs = len(evidence.layout.pairs)
    levels_t, levels_s = len(set(teacher_of)), len(set(student_of))
    pair_var, teacher_var, student_var = (float(c) if np.isfinite(c) else 0.0 for c in comp)
    if levels_t >= n_pairs:  # each pair its own teacher: the teacher is the pair
        pair_var, teacher_var = pair_var + teacher_var, 0.0
    if levels_s >= n_pairs:
        pair_var, student_var = pair_var + student_var, 0.0
    pair_var = max(0.0, pair_var - 2 * sigma2 / max(seeds, 1))
    return World(
        seed_sd=math.sqrt(sigma2),
        pair_sd=math.sqrt(pair_var),
        teacher_sd=math.sqrt(teacher_var),
        student_sd=math.sqrt(student_var),
        quantity_correlation=_quantity_corr(means, sigma2 / max(seeds, 1)),
        noise_correlation=_noise_corr(means[:, 0], 0.5),
        failure_share=float(failed.sum()) / max(n_pairs, 1),
        failure_size=_failure_size(result, failed),
        failure_settings=max(1, int(result.pair_failed[0, 0].any((1, 2)).sum())),
    )


def _failure_size(result: RuleResult, failed: np.ndarray) -> float:
    if not failed.any() or result.pair_diverged[0, 0][..., failed].any():
        return DIVERGE
    shown = np.where(result.pair_failed[0, 0], result.pairs.mean[0, 0], -np.inf)[..., failed]
    return float(np.mean(shown.max((0, 1))))  # each failing pair's worst shown failure


def _corr(x: np.ndarray, y: np.ndarray, default: float) -> float:
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3 or np.std(x[keep]) == 0 or np.std(y[keep]) == 0:
        return default
    return float(np.clip(np.corrcoef(x[keep], y[keep])[0, 1], 0.0, 0.99))


def _quantity_corr(means: np.ndarray, run_var: float, default: float = 0.5) -> float:
    """Correlation of a pair's regret and deficit effects, (N, Q, P) pair means → a number:
    centred within each setting, net of the fixed arm's run noise that both share (a pair mean
    of either quantity carries 2σ²/S of run noise, and they share σ²/S of it)."""
    with warnings.catch_warnings():  # a setting where every pair failed has no mean
        warnings.simplefilter("ignore", RuntimeWarning)
        centred = means - np.nanmean(means, axis=-1, keepdims=True)
    r, d = centred[:, 0].ravel(), centred[:, 1].ravel()
    keep = ~(np.isnan(r) | np.isnan(d))
    if keep.sum() < 3:
        return default
    r, d = r[keep], d[keep]
    var_r, var_d = float(np.mean(r**2)) - 2 * run_var, float(np.mean(d**2)) - 2 * run_var
    if var_r <= 0 or var_d <= 0:
        return default
    cov = float(np.mean(r * d)) - run_var
    return float(np.clip(cov / np.sqrt(var_r * var_d), 0.0, 0.99))


def _noise_corr(regret: np.ndarray, default: float) -> float:
    """Mean correlation of pair regrets between every two settings, (N, P) → a number."""
    values = [
        _corr(regret[i], regret[j], math.nan)
        for i in range(len(regret))
        for j in range(i + 1, len(regret))
    ]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else default


def world_text(world: World) -> str:
    failing = (
        "none"
        if world.failure_share <= 0
        else f"{100 * world.failure_share:.0f} % of pairs, "
        + (
            "diverging"
            if world.failure_size == DIVERGE
            else f"{100 * world.failure_size:+.1f} points"
        )
        + f" in {world.failure_settings} setting(s)"
    )
    return (
        f"run-to-run sd {100 * world.seed_sd:.2f} points; between pairs {100 * world.pair_sd:.2f}, "
        f"teachers {100 * world.teacher_sd:.2f}, students {100 * world.student_sd:.2f} points; "
        f"correlation regret–deficit {world.quantity_correlation:.2f}, between settings "
        f"{world.noise_correlation:.2f}; failing pairs: {failing}"
    )


def from_mapping(values: Mapping[str, Any], base: World) -> World:
    """A world with the given fields replaced (the command line's --pair-sd and friends)."""
    return replace(base, **{k: v for k, v in values.items() if v is not None})
