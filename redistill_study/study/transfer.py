"""Which tuned setting a dependent phase evaluates, from search results alone (validation only).

``final`` takes the best validation trial of the pair's own search (see the scheduler).

``transfer`` (leave one pair out): the setting that does best *across the other pairs*. Each
source pair's validation accuracy is smoothed over the search space (a Gaussian kernel
average of its trials, so one lucky trial does not decide), standardised within the pair (pairs
differ in how good they are, not only in where their optimum lies), averaged over the source
pairs, and maximised over the settings the searches tried (plus a fine grid when the space is
one number, e.g. λ, spanning the values tried).

>>> from redistill_study.losses import FloatRange
>>> space = {"lam": FloatRange(-2.0, 1.5)}
>>> b = [({"lam": x}, 0.9 - (x - 0.5) ** 2) for x in (-1.5, -0.5, 0.0, 0.5, 1.0)]
>>> c = [({"lam": x}, 0.7 - (x - 0.3) ** 2) for x in (-1.0, 0.0, 0.3, 0.8, 1.4)]
>>> chosen = transferred_setting({"B": b, "C": c}, space)["lam"]
>>> 0.2 < chosen < 0.5   # between the two pairs' optima, 0.3 and 0.5
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..losses import Choice, FloatRange, IntRange, SearchDimension

# Kernel width in the unit cube of the search space: wide enough that a neighbourhood of
# trials, not one trial, sets the smoothed value.
BANDWIDTH = 0.15
GRID_POINTS = 141

Setting = dict[str, Any]
Trial = tuple[Setting, float]  # (hyper-parameters, validation top-1)


def _coordinates(setting: Setting, space: Mapping[str, SearchDimension]) -> list[float]:
    out: list[float] = []
    for name, dim in space.items():
        value = setting.get(name)
        if isinstance(dim, Choice):
            out += [float(value == c) for c in dim.choices]
            continue
        low, high = float(dim.low), float(dim.high)
        x = float(setting[name])
        if dim.log:
            low, high, x = math.log(low), math.log(high), math.log(x)
        out.append((x - low) / (high - low) if high > low else 0.0)
    return out


def _candidates(
    by_pair: Mapping[str, Sequence[Trial]], space: Mapping[str, SearchDimension]
) -> list[Setting]:
    seen: dict[str, Setting] = {}
    for trials in by_pair.values():
        for setting, _ in trials:
            key = repr(sorted((k, setting[k]) for k in space))
            seen.setdefault(key, {k: setting[k] for k in space})
    out = [seen[k] for k in sorted(seen)]
    if len(space) == 1:
        ((name, dim),) = space.items()
        if isinstance(dim, FloatRange | IntRange):
            # Between the settings the searches tried, never beyond them: the smoother
            # extrapolates flat, and an untried edge of the range must not win by default.
            tried = [float(c[name]) for c in out]
            low, high = min(tried), max(tried)
            grid = np.linspace(0.0, 1.0, GRID_POINTS)
            if dim.log:
                values = np.exp(np.log(low) + grid * (np.log(high) - np.log(low)))
            else:
                values = low + grid * (high - low)
            if isinstance(dim, IntRange):
                values = np.unique(np.round(values).astype(int))
            out += [{name: v.item()} for v in values]
    return out


def smoothed_scores(
    by_pair: Mapping[str, Sequence[Trial]],
    space: Mapping[str, SearchDimension],
    candidates: Sequence[Setting],
    bandwidth: float = BANDWIDTH,
) -> np.ndarray:
    """The mean over pairs of each pair's standardised, kernel-smoothed validation accuracy at
    every candidate setting."""
    where = np.array([_coordinates(c, space) for c in candidates])
    per_pair = []
    for trials in by_pair.values():
        if not trials:
            continue
        x = np.array([_coordinates(s, space) for s, _ in trials])
        y = np.array([v for _, v in trials], dtype=float)
        d2 = ((where[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        w = np.exp(-0.5 * d2 / bandwidth**2) + 1e-300
        fitted = (w * y[None, :]).sum(-1) / w.sum(-1)
        spread = fitted.std()
        per_pair.append((fitted - fitted.mean()) / spread if spread > 0 else fitted * 0.0)
    return np.mean(per_pair, axis=0) if per_pair else np.zeros(len(candidates))


def transferred_setting(
    by_pair: Mapping[str, Sequence[Trial]], space: Mapping[str, SearchDimension]
) -> Setting | None:
    """The setting that does best across the source pairs (None if they have no trials)."""
    usable = {p: t for p, t in by_pair.items() if t}
    if not usable or not space:
        return None
    candidates = _candidates(usable, space)
    scores = smoothed_scores(usable, space, candidates)
    return dict(candidates[int(np.argmax(scores))])
