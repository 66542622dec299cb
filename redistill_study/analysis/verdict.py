"""The verdict: does one fixed λ generalise? Statistics over the evaluation trials (scipy).

Inputs are plain records, so every function here can be checked on constructed data:
- evaluation records: ``{"pair", "noise", "method", "phase", "seed", "test/top1"}`` where phase
  is ``seeds`` (fixed methods), ``final`` (per-pair tuned) or ``transfer`` (tuned on other pairs);
- search records: ``{"pair", "noise", "method", "lam", "val_top1"}`` from the tuning trials.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

FIXED, TUNED, KD = "redistill", "redistill_tuned", "kd"
FIXED_LAMBDA = 2.0 / 3.0
SHARE_TO_HOLD = 0.8  # the fixed λ must be within one seed-std of the optimum in ≥ 80 % of cells
ALPHA = 0.05


def bootstrap_ci(
    values: Sequence[float], stat=np.mean, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` (seeded: the same data give the same interval)."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (math.nan, math.nan)
    if len(data) == 1 or np.all(data == data[0]):
        return (float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    draws = rng.choice(data, size=(resamples, len(data)), replace=True)
    stats = np.apply_along_axis(stat, 1, draws)
    tail = (1 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank test of a − b; all-equal pairs give p = 1."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    out = {"n": len(diffs), "median_diff": float(np.median(diffs)) if len(diffs) else math.nan}
    if len(diffs) == 0:
        return {**out, "statistic": math.nan, "p": math.nan}
    if np.all(diffs == 0):
        return {**out, "statistic": 0.0, "p": 1.0}
    result = scipy.stats.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided")
    return {**out, "statistic": float(result.statistic), "p": float(result.pvalue)}


def method_label(record: dict[str, Any]) -> str:
    """A method's name, marked when its setting was tuned on the other pairs."""
    return (
        f"{record['method']} (transferred)" if record["phase"] == "transfer" else record["method"]
    )


@dataclass
class Verdict:
    cells: list[dict[str, Any]] = field(default_factory=list)
    regrets: list[dict[str, Any]] = field(default_factory=list)
    transfer: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)
    optimal_lambdas: list[dict[str, Any]] = field(default_factory=list)
    lambda_curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    by_noise: list[dict[str, Any]] = field(default_factory=list)
    holds: bool | None = None
    text: str = ""
    criterion: str = ""


def cell_table(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell and method: n, mean ± std and a 95 % bootstrap interval of test top-1."""
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in records:
        groups[(r["pair"], r["noise"], method_label(r))].append(r["test/top1"])
    rows = []
    for (pair, noise, method), values in sorted(groups.items()):
        lo, hi = bootstrap_ci(values)
        rows.append(
            {
                "pair": pair,
                "noise": noise,
                "method": method,
                "n": len(values),
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return rows


def _by_seed(records: Iterable[dict[str, Any]], label: str) -> dict[tuple, float]:
    return {
        (r["pair"], r["noise"], r["seed"]): r["test/top1"]
        for r in records
        if method_label(r) == label
    }


def fixed_lambda_regrets(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell: tuned-λ − fixed-λ mean test top-1, against the pooled seed-to-seed std."""
    fixed, tuned = defaultdict(list), defaultdict(list)
    for r in records:
        if method_label(r) == FIXED:
            fixed[(r["pair"], r["noise"])].append(r["test/top1"])
        elif method_label(r) == TUNED:
            tuned[(r["pair"], r["noise"])].append(r["test/top1"])
    rows = []
    for cell in sorted(set(fixed) & set(tuned)):
        f, t = fixed[cell], tuned[cell]
        spread = [statistics.stdev(x) for x in (f, t) if len(x) > 1]
        seed_std = math.sqrt(statistics.fmean(s * s for s in spread)) if spread else 0.0
        regret = statistics.fmean(t) - statistics.fmean(f)
        rows.append(
            {
                "pair": cell[0],
                "noise": cell[1],
                "regret": regret,
                "seed_std": seed_std,
                "within_one_std": regret <= seed_std,
            }
        )
    return rows


def transfer_regrets(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per tuned method, held-out pair and noise: per-pair-tuned − transferred mean test top-1."""
    final, moved = defaultdict(list), defaultdict(list)
    for r in records:
        key = (r["method"], r["pair"], r["noise"])
        if r["phase"] == "final":
            final[key].append(r["test/top1"])
        elif r["phase"] == "transfer":
            moved[key].append(r["test/top1"])
    return [
        {
            "method": k[0],
            "pair": k[1],
            "noise": k[2],
            "regret": statistics.fmean(final[k]) - statistics.fmean(moved[k]),
        }
        for k in sorted(set(final) & set(moved))
    ]


def comparisons(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired Wilcoxon tests of fixed-λ REDistill against KD and every tuned / transferred method,
    paired by (pair, noise, seed): the same seeds give the same initialisation and batches."""
    fixed = _by_seed(records, FIXED)
    labels = sorted({method_label(r) for r in records} - {FIXED, "ce"})
    out = []
    for label in labels:
        other = _by_seed(records, label)
        keys = sorted(set(fixed) & set(other))
        if not keys:
            continue
        test = paired_wilcoxon([fixed[k] for k in keys], [other[k] for k in keys])
        out.append({"against": label, **test})
    out.sort(key=lambda row: (row["against"] != KD, row["against"]))
    return out


def build_verdict(
    evaluations: Sequence[dict[str, Any]], searches: Sequence[dict[str, Any]]
) -> Verdict:
    v = Verdict()
    v.cells = cell_table(evaluations)
    v.regrets = fixed_lambda_regrets(evaluations)
    v.transfer = transfer_regrets(evaluations)
    v.tests = comparisons(evaluations)
    tuned_searches = [s for s in searches if s["method"] == TUNED and s.get("lam") is not None]
    curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for s in tuned_searches:
        key = (s["pair"], s["noise"])
        curves[f"{s['pair']} / {s['noise']}"].append((s["lam"], s["val_top1"]))
        if key not in best or s["val_top1"] > best[key][1]:
            best[key] = (s["lam"], s["val_top1"])
    v.lambda_curves = {k: sorted(pts) for k, pts in sorted(curves.items())}
    v.optimal_lambdas = [
        {"pair": k[0], "noise": k[1], "lam": lam, "val_top1": val}
        for k, (lam, val) in sorted(best.items())
    ]
    noises = list(dict.fromkeys(r["noise"] for r in v.regrets))
    for noise in noises:
        rows = [r for r in v.regrets if r["noise"] == noise]
        v.by_noise.append(
            {
                "noise": noise,
                "cells": len(rows),
                "within": sum(r["within_one_std"] for r in rows),
                "median_regret": statistics.median(r["regret"] for r in rows),
            }
        )
    v.criterion = (
        f"fixed λ = 2/3 holds if it is within one seed-to-seed std of the per-pair-tuned λ in at "
        f"least {SHARE_TO_HOLD:.0%} of cells and is not significantly worse than KD "
        f"(paired Wilcoxon, two-sided, α = {ALPHA})"
    )
    if not v.regrets:
        v.text = "No verdict yet: the study has no cell with both fixed-λ and tuned-λ results."
        return v
    n = len(v.regrets)
    k = sum(r["within_one_std"] for r in v.regrets)
    regrets = [r["regret"] for r in v.regrets]
    median = statistics.median(regrets)
    lo, hi = bootstrap_ci(regrets, stat=np.median)
    kd = next((t for t in v.tests if t["against"] == KD), None)
    worse_than_kd = kd is not None and kd["p"] < ALPHA and kd["median_diff"] < 0
    v.holds = k >= SHARE_TO_HOLD * n and not worse_than_kd
    kd_text = (
        f"Wilcoxon p against KD = {kd['p']:.3g} (median paired difference "
        f"{100 * kd['median_diff']:+.2f} points, n = {kd['n']})"
        if kd
        else "no KD comparison"
    )
    v.text = (
        f"{'HOLDS' if v.holds else 'DOES NOT HOLD'}: fixed λ within one seed-std of the per-pair "
        f"optimum in {k} of {n} cells; median regret {100 * median:+.2f} points "
        f"[95 % CI {100 * lo:+.2f}, {100 * hi:+.2f}]; {kd_text}."
    )
    return v
