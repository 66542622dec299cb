"""The power calculator: a study's own design pushed through the verdict's rule by simulation.

The model (the one the rule is calibrated against, docs/method.md §6): for fixed arm k, unit u,
noise setting n and evaluation seed s, test top-1 is a shared per-seed effect (common to every arm
of the pair, so it cancels in paired differences) plus run noise of sd σ; the searched arm is
better than arm k by ρ_n + τ·z_{k,u,n} and the reference by d_n + τ·z'_{k,u,n}, with z ~ N(0, 1)
(τ: how much the regret varies between units). Pairs that share a teacher are one unit: their
effects are taken to be equal (the conservative extreme), and only the run noise averages.

>>> d = Design(units=10, noises=("none", "noisy"), seeds=3, fixed_arms=1, margin=0.01)
>>> r = simulate(d, regret=0.0, deficit=0.0, seed_sd=0.005, pair_sd=0.005, sims=400)
>>> r["holds"] > 0.8
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .statistics import t_bounds
from .verdict import CODES, QUANTITIES, _Index, _unit_values, apply_rule


@dataclass(frozen=True)
class Design:
    """What the simulation needs of a study: its units, noise settings, seeds and declaration."""

    units: int
    noises: tuple[str, ...]
    seeds: int
    fixed_arms: int = 2
    margin: float = 0.01
    alpha: float = 0.05
    pairs_per_unit: float = 1.0

    def with_units(self, units: int) -> Design:
        return Design(
            units,
            self.noises,
            self.seeds,
            self.fixed_arms,
            self.margin,
            self.alpha,
            self.pairs_per_unit,
        )


def _per_noise(value: float | Sequence[float], noises: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    return np.full(noises, float(arr)) if arr.ndim == 0 else arr


def simulate(
    design: Design,
    *,
    regret: float | Sequence[float],
    deficit: float | Sequence[float],
    seed_sd: float,
    pair_sd: float,
    sims: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Shares of simulated studies whose primary arm ends in each outcome.

    ``regret`` and ``deficit`` are the true means (per noise setting, or one for all)."""
    rng = np.random.default_rng(seed)
    n_noise, k, u, s = len(design.noises), design.fixed_arms, design.units, design.seeds
    rho = _per_noise(regret, n_noise)[None, None, :, None]
    dd = _per_noise(deficit, n_noise)[None, None, :, None]
    run_sd = seed_sd / math.sqrt(design.pairs_per_unit)
    shape = (sims, k, n_noise, u)
    # Run noise per seed: fixed arm k, the searched arm and the reference (shared by the arms).
    e_fixed = rng.standard_normal((*shape, s))
    e_searched = rng.standard_normal((sims, 1, n_noise, u, s))
    e_reference = rng.standard_normal((sims, 1, n_noise, u, s))
    regret_unit = rho + pair_sd * rng.standard_normal(shape)
    deficit_unit = dd + pair_sd * rng.standard_normal(shape)
    regret_vals = regret_unit + run_sd * (e_searched - e_fixed).mean(-1)
    deficit_vals = deficit_unit + run_sd * (e_reference - e_fixed).mean(-1)
    level = design.alpha / max(k, 1)
    p_below = np.empty((sims, k, n_noise, len(QUANTITIES)))
    p_above = np.empty_like(p_below)
    for q, vals in enumerate((regret_vals, deficit_vals)):
        b = t_bounds(vals, design.margin, level)
        p_below[..., q], p_above[..., q] = b.p_below, b.p_above
    overall, _, _ = apply_rule(p_below, p_above, design.alpha)
    primary = overall[:, 0]
    return {CODES[c]: float(np.mean(primary == c)) for c in CODES}


def power_report(
    design: Design,
    *,
    seed_sd: float,
    pair_sd: float,
    sims: int = 2000,
    seed: int = 0,
    target: float = 0.8,
    max_units: int = 2048,
) -> dict[str, Any]:
    """P(holds) when the claim is exactly true, the size (P(holds) with the regret at the
    margin in one noise setting and every other quantity far inside it), P(does not hold) at
    three margins, and the units needed for ``target`` power."""
    m, n = design.margin, len(design.noises)
    common = dict(seed_sd=seed_sd, pair_sd=pair_sd, sims=sims, seed=seed)
    power = simulate(design, regret=0.0, deficit=0.0, **common)["holds"]
    at_margin = [m] + [-10 * m] * (n - 1)
    size = simulate(design, regret=at_margin, deficit=-10 * m, **common)["holds"]
    fails = simulate(design, regret=3 * m, deficit=0.0, **common)["does not hold"]
    return {
        "power": power,
        "size": size,
        "fails_at_3x": fails,
        "pairs_for_80": units_for_power(design, **common, target=target, max_units=max_units),
        "units": design.units,
        "seeds": design.seeds,
        "noise_settings": n,
        "fixed_arms": design.fixed_arms,
        "margin": m,
        "alpha": design.alpha,
        "seed_sd": seed_sd,
        "pair_sd": pair_sd,
        "sims": sims,
    }


def units_for_power(
    design: Design,
    *,
    seed_sd: float,
    pair_sd: float,
    sims: int = 2000,
    seed: int = 0,
    target: float = 0.8,
    max_units: int = 2048,
) -> int | None:
    """The fewest units (with the same seeds and noise settings) whose P(holds) under the
    exactly-true claim reaches ``target``; None beyond ``max_units``."""

    def power(units: int) -> float:
        return simulate(
            design.with_units(units),
            regret=0.0,
            deficit=0.0,
            seed_sd=seed_sd,
            pair_sd=pair_sd,
            sims=sims,
            seed=seed,
        )["holds"]

    low, high = 1, 2
    while power(high) < target:
        low, high = high, high * 2
        if high > max_units:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        if power(mid) >= target:
            high = mid
        else:
            low = mid
    return high


def estimate_spreads(
    evaluations: Iterable[Mapping[str, Any]],
    *,
    fixed: str,
    searched: str | None,
    reference: str | None,
    seeds: Sequence[int] | None = None,
) -> dict[str, float] | None:
    """Run-to-run sd σ and between-unit sd τ of the regret and deficit, from a finished study:
    σ² from the within-pair variance of paired differences (= 2σ²), τ² from the variance of
    unit means minus the run noise they carry. None when there is nothing to estimate from."""
    index = _Index(evaluations)
    seed_list = sorted(seeds) if seeds is not None else sorted(index.seen_seeds)
    within, between = [], []
    for noise in index.noises:
        for other, phases in ((searched, ("final",)), (reference, ("seeds", "final"))):
            if other is None or other not in index.methods:
                continue
            for pair in index.pairs_in[noise]:
                f = index.arm(noise, pair, fixed, ("seeds", "final"))
                o = index.arm(noise, pair, other, phases)
                if all(x in f and x in o for x in seed_list) and len(seed_list) > 1:
                    diffs = [o[x][0] - f[x][0] for x in seed_list]
                    within.append(float(np.var(diffs, ddof=1)) / 2.0)
            units = _unit_values(index, noise, fixed, other, phases, seed_list, 0.05, [], "")
            if len(units) > 1:
                between.append(float(np.var([x.mean for x in units], ddof=1)))
    if not within:
        return None
    sigma2 = float(np.mean(within))
    tau2 = (
        max(0.0, float(np.mean(between)) - 2 * sigma2 / max(len(seed_list), 1)) if between else 0.0
    )
    return {"seed_sd": math.sqrt(sigma2), "pair_sd": math.sqrt(tau2)}
