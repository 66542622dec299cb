"""Exploratory comparisons, each family Holm-corrected within itself and reported with its
estimate and 95 % interval; none of them changes the verdict.

- ``vs fixed``: every other method (and each transferred setting) minus the fixed arm;
- ``transfer regret``: per-pair-tuned − transferred, per tuned method;
- ``claim transfer``: per claim of a study with several, its searched arm at the setting
  transferred from the other pairs (leave one pair out) − the fixed arm: what a setting chosen
  elsewhere gains over the fixed one;
- ``noise slope``: change of test top-1 per unit of noise level, per method and noise kind.

All are paired by evaluation seed inside a pair and take the unit (pair, or shared teacher)
as the independent observation; diverged runs read at chance, crashed runs are missing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..study.arms import Arms
from ..study.phases import EVALUATION_PHASES, Status
from .records import accuracy, status_of
from .statistics import holm_adjusted, t_interval
from .tables import method_label


@dataclass
class Comparison:
    family: str
    label: str
    noise: str
    units: int
    mean: float
    low: float
    high: float
    p: float
    p_holm: float = math.nan

    def as_row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _runs(records: Iterable[Mapping[str, Any]]):
    """(noise, pair, label) → {seed: accuracy}, and pair → unit."""
    runs: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    unit: dict[str, str] = {}
    for r in records:
        if r["phase"] not in EVALUATION_PHASES or status_of(r) == Status.FAILED:
            continue  # a crash is missing data
        runs[(r["noise"], r["pair"], method_label(r))][int(r["seed"])] = accuracy(r)[0]
        unit.setdefault(r["pair"], str(r.get("teacher") or r["pair"]))
    return runs, unit


def _paired_unit_means(runs, unit, noise: str, a: str, b: str) -> list[float]:
    """Per unit: mean over its pairs and common seeds of a − b."""
    per_unit: dict[str, list[float]] = defaultdict(list)
    for (n, pair, label), ra in runs.items():
        if n != noise or label != a:
            continue
        rb = runs.get((noise, pair, b))
        if not rb:
            continue
        seeds = sorted(set(ra) & set(rb))
        if seeds:
            per_unit[unit[pair]].append(float(np.mean([ra[s] - rb[s] for s in seeds])))
    return [float(np.mean(v)) for _, v in sorted(per_unit.items())]


def _compare(family: str, label: str, noise: str, values: list[float]) -> Comparison:
    mean, low, high, p = t_interval(values)
    return Comparison(family, label, noise, len(values), mean, low, high, p)


def _finish(rows: list[Comparison]) -> list[Comparison]:
    adjusted = holm_adjusted(np.array([c.p for c in rows], dtype=float))
    for c, p in zip(rows, adjusted):
        c.p_holm = float(p)
    return rows


def against_fixed(
    records: Sequence[Mapping[str, Any]], fixed: str, noise_order: Sequence[str] = ()
) -> list[Comparison]:
    runs, unit = _runs(records)
    labels = sorted({k[2] for k in runs} - {fixed})
    noises = list(noise_order) or list(dict.fromkeys(k[0] for k in runs))
    rows = []
    for noise in noises:
        for label in labels:
            values = _paired_unit_means(runs, unit, noise, label, fixed)
            if values:
                rows.append(_compare("vs fixed", f"{label} − {fixed}", noise, values))
    return _finish(rows)


def transfer_regrets(
    records: Sequence[Mapping[str, Any]], noise_order: Sequence[str] = ()
) -> list[Comparison]:
    runs, unit = _runs(records)
    tuned = sorted({k[2].removesuffix(" (transferred)") for k in runs if "(transferred)" in k[2]})
    noises = list(noise_order) or list(dict.fromkeys(k[0] for k in runs))
    rows = []
    for noise in noises:
        for method in tuned:
            values = _paired_unit_means(runs, unit, noise, method, f"{method} (transferred)")
            if values:
                label = f"{method}: per-pair − transferred"
                rows.append(_compare("transfer regret", label, noise, values))
    return _finish(rows)


def claim_transfer_regrets(
    records: Sequence[Mapping[str, Any]], claims: Sequence[Arms], noise_order: Sequence[str] = ()
) -> list[Comparison]:
    """Per claim, fixed arm and noise setting: the searched arm transferred − the fixed arm."""
    runs, unit = _runs(records)
    noises = list(noise_order) or list(dict.fromkeys(k[0] for k in runs))
    rows = []
    for arms in claims:
        if arms.searched is None:
            continue
        moved = f"{arms.searched} (transferred)"
        for fixed in arms.fixed:
            for noise in noises:
                values = _paired_unit_means(runs, unit, noise, moved, fixed)
                if values:
                    rows.append(_compare("claim transfer", f"{moved} − {fixed}", noise, values))
    return _finish(rows)


def noise_slopes(records: Sequence[Mapping[str, Any]]) -> list[Comparison]:
    """Per method and noise kind: the least-squares slope of a unit's mean test top-1 against
    the noise level (the clean setting at level 0), averaged over units."""
    level_of: dict[str, tuple[str, float]] = {}
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (label, noise, pair)
    unit: dict[str, str] = {}
    for r in records:
        if r["phase"] not in EVALUATION_PHASES or "noise.kind" not in r:
            continue
        if status_of(r) == Status.FAILED:
            continue
        level_of[r["noise"]] = (str(r["noise.kind"]), float(r["noise.level"]))
        acc[(method_label(r), r["noise"], r["pair"])].append(accuracy(r)[0])
        unit.setdefault(r["pair"], str(r.get("teacher") or r["pair"]))
    clean = [n for n, (kind, level) in level_of.items() if kind == "none" or level == 0]
    kinds = sorted({kind for kind, level in level_of.values() if kind != "none" and level > 0})
    labels = sorted({k[0] for k in acc})
    rows = []
    for kind in kinds:
        noises = clean + [n for n, (k, lv) in level_of.items() if k == kind and lv > 0]
        for label in labels:
            per_unit: dict[str, list[float]] = defaultdict(list)
            for pair in sorted(unit):
                points = [
                    (
                        level_of[n][1] if n not in clean else 0.0,
                        float(np.mean(acc[(label, n, pair)])),
                    )
                    for n in noises
                    if acc.get((label, n, pair))
                ]
                if len({x for x, _ in points}) >= 2:
                    x, y = np.array(points).T
                    per_unit[unit[pair]].append(float(np.polyfit(x, y, 1)[0]))
            values = [float(np.mean(v)) for _, v in sorted(per_unit.items())]
            if values:
                rows.append(
                    _compare("noise slope", f"{label}: top-1 per unit of {kind}", kind, values)
                )
    return _finish(rows)
