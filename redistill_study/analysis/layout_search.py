"""The cheapest layout that can decide a study's claims both ways: teachers, students, how they
pair and seeds, searched through the verdict's own rule (:func:`~.design.power_report`).

A layout is S students, each with k of T teachers (round robin, so every teacher gets the same
number of students within one): k = 1 with T = S is *disjoint* pairs, k = T is *crossed*. Its
cost is the student trainings the verdict needs: per pair and covered teacher condition, each arm
a claim uses trains once per seed, and a searched arm its search trials besides.

>>> from .design import World
>>> from .rule import Thresholds
>>> th = Thresholds(margin=0.01, failure_margin=0.03, alpha=0.05)
>>> claim = ClaimNeed("lambda", ("none",), th)
>>> need = Need(claims=(claim,), per_seed={"none": 3}, fixed={"none": 4})
>>> world = World(seed_sd=0.003, pair_sd=0.0, teacher_sd=0.005, student_sd=0.007)
>>> found = find_layout(need, world, sims=300)
>>> found.layout.pairing, found.meets
('disjoint', True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config.population import pair_cells
from .design import Design, World, power_report
from .rule import Thresholds

__all__ = ["ClaimNeed", "Found", "Need", "PairLayout", "Targets", "figures", "find_layout"]


@dataclass(frozen=True)
class PairLayout:
    """S students, each paired with k of T teachers (round robin), and the seeds per arm."""

    teachers: int
    students: int
    per_student: int
    seeds: int

    def __post_init__(self) -> None:
        if not 1 <= self.per_student <= self.teachers:
            raise ValueError("each student needs between 1 and T teachers")

    @property
    def pairing(self) -> str:
        if self.per_student == 1 and self.teachers == self.students:
            return "disjoint"
        return "crossed" if self.per_student == self.teachers else "per_student"

    def cells(self) -> list[tuple[int, int]]:
        """(teacher, student) of every pair, as a study's ``population.layout`` pairs them."""
        return pair_cells(self.teachers, self.students, self.per_student)

    @property
    def pairs(self) -> int:
        return self.students * self.per_student

    def design(self, noises: tuple[str, ...], thresholds: Thresholds) -> Design:
        cells = self.cells()
        return Design(
            tuple(t for t, _ in cells), tuple(s for _, s in cells), noises, self.seeds, thresholds
        )

    def text(self) -> str:
        shape = {
            "disjoint": "disjoint pairs (each teacher and student once)",
            "crossed": "crossed (every teacher with every student)",
            "per_student": f"each student with {self.per_student} teachers",
        }[self.pairing]
        return (
            f"{self.teachers} teachers × {self.students} students, {shape}: {self.pairs} pairs, "
            f"{self.seeds} seeds"
        )

    def spec(self) -> str:
        """The text :meth:`parse` reads back.

        >>> PairLayout(8, 8, 2, 4).spec()
        'per_student:8:2@4'
        """
        body = {
            "disjoint": f"disjoint:{self.teachers}",
            "crossed": f"crossed:{self.teachers}:{self.students}",
            "per_student": f"per_student:{self.teachers}:{self.per_student}",
        }[self.pairing]
        return f"{body}@{self.seeds}"

    @classmethod
    def parse(cls, text: str) -> PairLayout:
        """``disjoint:N``, ``crossed:T:S`` or ``per_student:N:K`` (N teachers and N students),
        each optionally followed by ``@seeds`` (default 3).

        >>> PairLayout.parse("per_student:8:2@4")
        PairLayout(teachers=8, students=8, per_student=2, seeds=4)
        """
        body, _, seeds = text.partition("@")
        kind, *numbers = body.split(":")
        try:
            n = [int(x) for x in numbers]
            s = int(seeds) if seeds else 3
            if kind == "disjoint" and len(n) == 1:
                return cls(n[0], n[0], 1, s)
            if kind == "crossed" and len(n) == 2:
                return cls(n[0], n[1], n[0], s)
            if kind == "per_student" and len(n) == 2:
                return cls(n[0], n[0], n[1], s)
        except ValueError:
            pass
        raise ValueError(
            f"expected disjoint:N, crossed:T:S or per_student:N:K (optionally @seeds), got {text!r}"
        )


@dataclass(frozen=True)
class ClaimNeed:
    """One claim as the search sees it: the conditions it covers and the level it is decided at."""

    name: str
    noises: tuple[str, ...]
    thresholds: Thresholds
    world: World | None = None  # None: the search's world


@dataclass(frozen=True)
class Need:
    """What the verdict trains per pair: per covered condition, the trainings that scale with
    seeds (arms × seeds) and the fixed ones (search trials)."""

    claims: tuple[ClaimNeed, ...]
    per_seed: Mapping[str, int]
    fixed: Mapping[str, int]

    def cost(self, layout: PairLayout) -> int:
        return self.trainings(layout.pairs, layout.seeds)

    def trainings(self, pairs: int, seeds: int) -> int:
        """Student trainings for ``pairs`` pairs with ``seeds`` seeds."""
        return pairs * sum(self.per_seed[n] * seeds + self.fixed.get(n, 0) for n in self.per_seed)


@dataclass(frozen=True)
class Targets:
    power: float = 0.8
    fails_at_eighth: float = 0.9

    def slack(self, alpha: float, sims: int) -> float:
        """How far above α a simulated size may be before it counts against the layout
        (three Monte-Carlo standard errors)."""
        return 3 * math.sqrt(alpha * (1 - alpha) / sims)


@dataclass(frozen=True)
class Found:
    layout: PairLayout
    cost: int
    meets: bool
    claims: dict[str, dict[str, Any]]  # each claim's power report on the layout
    tried: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "layout": {
                **self.layout.__dict__,
                "pairing": self.layout.pairing,
                "pairs": self.layout.pairs,
            },
            "student_trainings": self.cost,
            "meets_targets": self.meets,
            "claims": self.claims,
            "layouts_tried": self.tried,
        }


def figures(
    layout: PairLayout, need: Need, world: World, *, sims: int, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Each claim's power report on ``layout`` (no grid search; claims alike in the number of
    conditions, thresholds and world share one)."""
    out: dict[str, dict[str, Any]] = {}
    done: dict[tuple[int, Thresholds, World], dict[str, Any]] = {}
    for claim in need.claims:
        key = (len(claim.noises), claim.thresholds, claim.world or world)
        if key not in done:
            design = layout.design(claim.noises, claim.thresholds)
            done[key] = power_report(design, key[2], sims=sims, seed=seed, grid=False)
        out[claim.name] = done[key]
    return out


def meets(report: Mapping[str, Any], targets: Targets, sims: int) -> bool:
    alpha = report["alpha"]
    return (
        report["power"] >= targets.power
        and report["size"] <= alpha + targets.slack(alpha, sims)
        and report["fails_at_eighth"] >= targets.fails_at_eighth
    )


def _allowed(layout: PairLayout, thresholds: Thresholds) -> bool:
    return (
        layout.pairs >= thresholds.min_pairs
        and layout.students >= thresholds.min_students
        and layout.teachers >= thresholds.min_teachers
    )


def find_layout(
    need: Need,
    world: World,
    *,
    sims: int = 1000,
    seed: int = 0,
    targets: Targets | None = None,
    seeds: tuple[int, ...] = (2, 3, 4, 5),
    per_student: tuple[int, ...] = (1, 2, 3),
    largest: int = 32,
) -> Found:
    """The cheapest layout (student trainings) meeting the targets for every claim: for each
    pairing and number of seeds, the fewest teachers and students (as many of each) that do,
    found by bisection (power and failure detection grow with them), then the cheapest of
    those; a shape whose smallest layout already costs more than the best found is skipped.
    ``meets`` is False (with the largest layout's figures) when none does."""
    targets = targets or Targets()
    tried = 0
    cache: dict[PairLayout, dict[str, dict[str, Any]]] = {}

    def ok(layout: PairLayout) -> bool:
        nonlocal tried
        if layout not in cache:
            tried += 1
            cache[layout] = figures(layout, need, world, sims=sims, seed=seed)
        return all(meets(r, targets, sims) for r in cache[layout].values())

    floor = max(max(c.thresholds.min_teachers, c.thresholds.min_students) for c in need.claims)
    best: tuple[int, PairLayout] | None = None
    shapes = [(k, False) for k in per_student] + [(0, True)]  # (k, crossed)
    for k, crossed in shapes:
        for s in seeds:

            def make(n: int, k: int = k, crossed: bool = crossed, s: int = s) -> PairLayout:
                return PairLayout(n, n, n if crossed else k, s)

            low = max(floor, k, 2)
            if not all(_allowed(make(largest), c.thresholds) for c in need.claims):
                continue
            while not all(_allowed(make(low), c.thresholds) for c in need.claims):
                low += 1
            if best and need.cost(make(low)) >= best[0]:
                continue
            high = min(largest, 12) if crossed else largest  # 144 crossed pairs at most
            if low > high or not ok(make(high)):
                continue
            if ok(make(low)):
                high = low
            else:
                while high - low > 1:
                    mid = (low + high) // 2
                    low, high = (mid, high) if not ok(make(mid)) else (low, mid)
            layout = make(high)
            cost = need.cost(layout)
            if best is None or (cost, layout.pairs) < (best[0], best[1].pairs):
                best = (cost, layout)
    if best is None:
        fallback = PairLayout(largest, largest, 1, max(seeds))
        return Found(
            fallback,
            need.cost(fallback),
            False,
            figures(fallback, need, world, sims=sims, seed=seed),
            tried,
        )
    _, layout = best
    return Found(layout, need.cost(layout), True, cache[layout], tried)
