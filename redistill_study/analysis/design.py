"""The power calculator: a study's own layout pushed through the verdict's rule by simulation,
in a world with the shapes real studies show.

For pair i (teacher t, student s), noise setting n and quantity q (regret, deficit), the true
mean difference is m_q(n) + a_t + b_s + e_i: teacher, student and pair effects, each a normal
vector over (n, q) with correlation ρ_q between the quantities and ρ_n between settings. A share
π of the pairs fails: the fixed arm is worse by a failure size (or diverges in every seed) in the
first ``failure_settings`` settings. Each run adds noise σ; regret and deficit share the fixed
arm's run, so they are correlated run by run too.

>>> d = Design.grid(teachers=4, students=4, noises=("none", "noisy"), seeds=3)
>>> simulate(d, World(seed_sd=0.005, pair_sd=0.005), sims=400)["holds"] > 0.8
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .rule import OUTCOMES, Observed, Thresholds, apply_rule
from .world import DIVERGE, World, estimate_world, from_mapping, world_text

__all__ = [
    "DIVERGE",
    "Design",
    "World",
    "estimate_world",
    "failing_pairs",
    "from_mapping",
    "grid_for_power",
    "power_report",
    "simulate",
    "world_text",
]


@dataclass(frozen=True)
class Design:
    """The layout of a study: who is in each pair, its settings, seeds and declared question."""

    teacher_of: tuple[int, ...]
    student_of: tuple[int, ...]
    noises: tuple[str, ...]
    seeds: int
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(0.01, 0.03))

    @classmethod
    def grid(
        cls,
        teachers: int,
        students: int,
        noises: Sequence[str],
        seeds: int,
        thresholds: Thresholds | None = None,
    ) -> Design:
        """Every teacher with every student."""
        cells = [(t, s) for t in range(teachers) for s in range(students)]
        return cls(
            tuple(t for t, _ in cells),
            tuple(s for _, s in cells),
            tuple(noises),
            seeds,
            thresholds or Thresholds(margin=0.01, failure_margin=0.03),
        )

    @property
    def pairs(self) -> int:
        return len(self.teacher_of)

    @property
    def teachers(self) -> int:
        return len(set(self.teacher_of))

    @property
    def students(self) -> int:
        return len(set(self.student_of))


def _correlated(
    rng: np.random.Generator, shape: tuple[int, ...], world: World, n: int
) -> np.ndarray:
    """Standard normal vectors over (noise settings, quantities) with the world's correlations."""
    rho_n, rho_q = world.noise_correlation, world.quantity_correlation
    r_n = np.full((n, n), rho_n) + (1 - rho_n) * np.eye(n)
    r_q = np.array([[1.0, rho_q], [rho_q, 1.0]])
    chol = np.linalg.cholesky(np.kron(r_n, r_q) + 1e-12 * np.eye(2 * n))
    z = rng.standard_normal((*shape, 2 * n)) @ chol.T
    return z.reshape(*shape, n, 2)


def simulate(
    design: Design,
    world: World,
    *,
    regret: float | Sequence[float] = 0.0,
    deficit: float | Sequence[float] = 0.0,
    sims: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Shares of simulated studies whose fixed arm ends in each outcome (the rule's own
    function, one arm: under fixed-sequence testing the primary arm's decision does not depend
    on the others)."""
    rng = np.random.default_rng(seed)
    n_noise, pairs, seeds = len(design.noises), design.pairs, design.seeds
    teacher_of, student_of = np.array(design.teacher_of), np.array(design.student_of)
    mean = np.stack(
        [
            np.broadcast_to(np.asarray(regret, float), n_noise),
            np.broadcast_to(np.asarray(deficit, float), n_noise),
        ],
        -1,
    )  # (N, Q)
    a = world.teacher_sd * _correlated(rng, (sims, design.teachers), world, n_noise)
    b = world.student_sd * _correlated(rng, (sims, design.students), world, n_noise)
    e = world.pair_sd * _correlated(rng, (sims, pairs), world, n_noise)
    effect = mean + a[:, teacher_of] + b[:, student_of] + e  # (sims, P, N, Q)
    failing = np.zeros((sims, pairs, n_noise), dtype=bool)
    k = failing_pairs(world.failure_share, pairs)
    if k:
        chosen = np.argsort(rng.random((sims, pairs)), axis=1)[:, :k]
        mask = np.zeros((sims, pairs), dtype=bool)
        np.put_along_axis(mask, chosen, True, axis=1)
        failing[..., : max(1, min(world.failure_settings, n_noise))] = mask[..., None]
    diverge = failing & (world.failure_size == DIVERGE)
    if world.failure_size != DIVERGE:
        effect = effect + np.where(failing, world.failure_size, 0.0)[..., None]
    runs = rng.standard_normal((sims, pairs, n_noise, 3, seeds))  # fixed, searched, reference
    diffs = effect[..., None] + world.seed_sd * (runs[:, :, :, 1:] - runs[:, :, :, :1])
    diverged = np.broadcast_to(diverge[..., None, None], diffs.shape)
    diffs = np.where(diverged, np.nan, diffs)
    # Axes for the rule: (sims, arms, noise, quantity, pairs, seeds).
    order = (0, 2, 3, 1, 4)
    observed = Observed(
        diffs.transpose(order)[:, None], diverged.transpose(order)[:, None], teacher_of, student_of
    )
    result = apply_rule(observed, design.thresholds)
    outcome = result.outcome[:, 0]
    return {name: float(np.mean(outcome == c)) for c, name in OUTCOMES.items()}


def failing_pairs(share: float, pairs: int) -> int:
    """How many of ``pairs`` fail at ``share``: the nearest whole number, at least one."""
    return 0 if share <= 0 else max(1, min(pairs, round(share * pairs)))


def power_report(
    design: Design,
    world: World,
    *,
    sims: int = 2000,
    seed: int = 0,
    target: float = 0.8,
    grid: bool = True,
) -> dict[str, Any]:
    """P(holds) when the claim is exactly true, the size (the mean regret at the margin in one
    setting, everything else far inside), P(does not hold) when a share π = 1/8 and 1/2 of the
    pairs fails, and (``grid``) the smallest teachers × students grid with ``target`` power."""
    th, n = design.thresholds, len(design.noises)
    clean = replace(world, failure_share=0.0)
    power = simulate(design, clean, sims=sims, seed=seed)["holds"]
    size = simulate(
        design,
        clean,
        regret=[th.margin] + [-10 * th.margin] * (n - 1),
        deficit=-10 * th.margin,
        sims=sims,
        seed=seed,
    )["holds"]
    failures = {}
    for label, share in (("eighth", 1 / 8), ("half", 1 / 2)):
        failing = replace(world, failure_share=share)
        failures[label] = simulate(design, failing, sims=sims, seed=seed)["does not hold"]
    found = grid_for_power(design, clean, sims=sims, seed=seed, target=target) if grid else None
    return {
        "power": power,
        "size": size,
        "fails_at_eighth": failures["eighth"],
        "fails_at_half": failures["half"],
        "failing_at_eighth": failing_pairs(1 / 8, design.pairs),
        "failing_at_half": failing_pairs(1 / 2, design.pairs),
        "grid_for_80": found,
        "pairs_for_80": found[0] * found[1] if found else None,
        "pairs": design.pairs,
        "teachers": design.teachers,
        "students": design.students,
        "seeds": design.seeds,
        "noise_settings": n,
        "margin": th.margin,
        "failure_margin": th.failure_margin,
        "alpha": th.alpha,
        "world": world.__dict__ | {"failure_size": _size(world.failure_size)},
        "sims": sims,
    }


def _size(size: float) -> float | str:
    return "diverge" if size == DIVERGE else size


def grid_for_power(
    design: Design, world: World, *, sims: int, seed: int, target: float, largest: int = 32
) -> tuple[int, int] | None:
    """The smallest k × k grid (k teachers, each with the same k students; k at least the
    study's minima) whose P(holds) under the exactly true claim reaches ``target``: doubling k
    until it does, then bisecting (power grows with k)."""
    th = design.thresholds
    start = max(th.min_teachers, th.min_students, math.ceil(math.sqrt(th.min_pairs)), 2)

    def enough(k: int) -> bool:
        grid = Design.grid(k, k, design.noises, design.seeds, th)
        return simulate(grid, world, sims=min(sims, 1000), seed=seed)["holds"] >= target

    low, high = start - 1, start
    while not enough(high):
        if high >= largest:
            return None
        low, high = high, min(2 * high, largest)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return (high, high)
