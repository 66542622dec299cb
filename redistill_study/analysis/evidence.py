"""From evaluation records to the rule's arrays: per fixed arm, noise setting, quantity, pair
and evaluation seed, the paired difference comparator − fixed where both trained.

A seed where the fixed arm diverged and the comparator trained is a failure of the pair; a seed
where the comparator diverged is left out of that pair's comparison (listed in ``excluded``); a
seed without a run, or whose run crashed, makes the cell incomplete (listed in ``incomplete``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .records import DIVERGED, EVALUATION_PHASES, FAILED, accuracy, status_of

QUANTITIES = ("regret", "deficit")
Run = tuple[str, float]  # (status, accuracy for reading)


@dataclass(frozen=True)
class Layout:
    """The pairs and who is in them: the units of generalisation are teachers and students."""

    pairs: tuple[str, ...]
    teachers: tuple[str, ...]  # per pair
    students: tuple[str, ...]  # per pair

    def indices(self) -> tuple[np.ndarray, np.ndarray]:
        def index(labels: tuple[str, ...]) -> np.ndarray:
            order = {label: i for i, label in enumerate(dict.fromkeys(labels))}
            return np.array([order[x] for x in labels], dtype=int)

        return index(self.teachers), index(self.students)


@dataclass
class Evidence:
    arms: tuple[str, ...]  # every declared fixed arm, in declared order
    noises: tuple[str, ...]
    against: tuple[str | None, str | None]  # the searched and the reference arm
    layout: Layout
    seeds: tuple[int, ...]
    diffs: np.ndarray  # (1, A, N, Q, P, S)
    fixed_diverged: np.ndarray  # (1, A, N, Q, P, S)
    read_at_chance: np.ndarray  # (1, A, N, Q, P) pair means with divergences at chance
    diverged_anywhere: np.ndarray  # (1, A)
    incomplete_arm: np.ndarray  # (1, A)
    present: tuple[bool, ...]  # per arm: has evaluation runs
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    failed_runs: int = 0


class RunIndex:
    """Evaluation records by (noise, pair, method, phase) → {seed: (status, accuracy)}."""

    def __init__(self, evaluations: Iterable[Mapping[str, Any]]) -> None:
        self.runs: dict[tuple[str, str, str, str], dict[int, Run]] = defaultdict(dict)
        self.teacher: dict[str, str] = {}
        self.student: dict[str, str] = {}
        self.noises: list[str] = []
        self.seeds: set[int] = set()
        self.methods: set[str] = set()
        self.failed = 0
        for r in evaluations:
            if r["phase"] not in EVALUATION_PHASES:
                continue
            key = (r["noise"], r["pair"], r["method"], r["phase"])
            seed = int(r["seed"])
            if seed in self.runs[key]:
                raise ValueError(f"two evaluation records for {key} seed {seed}")
            status = status_of(r)
            self.runs[key][seed] = (status, accuracy(r)[0] if status != FAILED else np.nan)
            self.failed += status == FAILED
            self.teacher.setdefault(r["pair"], str(r.get("teacher") or r["pair"]))
            self.student.setdefault(r["pair"], str(r.get("student") or r["pair"]))
            if r["noise"] not in self.noises:
                self.noises.append(r["noise"])
            if r["phase"] != "transfer":
                self.seeds.add(seed)
            self.methods.add(r["method"])

    def arm(self, noise: str, pair: str, method: str, phases: Sequence[str]) -> dict[int, Run]:
        for phase in phases:
            found = self.runs.get((noise, pair, method, phase))
            if found:
                return found
        return {}


def _missing(runs: Mapping[str, dict[int, Run]], seeds: Sequence[int]) -> dict[str, list[int]]:
    """Per arm, the declared seeds without a run or whose run crashed."""
    missing = {
        name: [s for s in seeds if s not in arm_runs or arm_runs[s][0] == FAILED]
        for name, arm_runs in runs.items()
    }
    return {name: m for name, m in missing.items() if m}


def _compare(
    fixed: dict[int, Run],
    other: dict[int, Run],
    seeds: Sequence[int],
    diffs: np.ndarray,
    fixed_diverged: np.ndarray,
    at_chance: np.ndarray,
) -> tuple[list[int], bool]:
    """One pair's seeds, written into its rows: comparator − fixed where both trained, the
    fixed arm's divergences where the comparator trained, and the difference read at chance.
    Returns the seeds left out (the comparator diverged) and whether the fixed arm diverged."""
    left_out: list[int] = []
    diverged = False
    for s, seed in enumerate(seeds):
        if seed not in fixed or seed not in other:
            continue
        (fs, fa), (os_, oa) = fixed[seed], other[seed]
        if FAILED in (fs, os_):
            continue
        diverged |= fs == DIVERGED
        if os_ == DIVERGED:
            left_out.append(seed)
            continue
        at_chance[s] = oa - fa
        if fs == DIVERGED:
            fixed_diverged[s] = True
        else:
            diffs[s] = oa - fa
    return left_out, diverged


def gather(
    index: RunIndex,
    *,
    fixed: Sequence[str],
    searched: str | None,
    reference: str | None,
    seeds: Sequence[int],
    noises: Sequence[str],
    layout: Layout,
) -> Evidence:
    arms, seeds = tuple(fixed), tuple(seeds)
    shape = (1, len(arms), len(noises), len(QUANTITIES), len(layout.pairs), len(seeds))
    diffs = np.full(shape, np.nan)
    fixed_diverged = np.zeros(shape, dtype=bool)
    at_chance = np.full(shape, np.nan)
    diverged_anywhere = np.zeros((1, len(arms)), dtype=bool)
    incomplete_arm = np.zeros((1, len(arms)), dtype=bool)
    incomplete: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    comparators = ((searched, ("final",)), (reference, ("seeds", "final")))
    for a, arm in enumerate(arms):
        if arm not in index.methods:
            continue  # declared, no runs yet: no evidence, and it cannot hold
        for n, noise in enumerate(noises):
            for q, (other, phases) in enumerate(comparators):
                if other is None:
                    continue
                for p, pair in enumerate(layout.pairs):
                    f = index.arm(noise, pair, arm, ("seeds", "final"))
                    o = index.arm(noise, pair, other, phases)
                    cell = {"arm": arm, "quantity": QUANTITIES[q], "noise": noise, "pair": pair}
                    missing = _missing({arm: f, other: o}, seeds)
                    if missing:
                        incomplete_arm[0, a] = True
                        incomplete.append({**cell, "missing": missing})
                    at = (0, a, n, q, p)
                    left_out, diverged = _compare(
                        f, o, seeds, diffs[at], fixed_diverged[at], at_chance[at]
                    )
                    diverged_anywhere[0, a] |= diverged
                    if left_out:
                        excluded.append({**cell, "against": other, "seeds": left_out})
    with np.errstate(invalid="ignore"):
        counted = (~np.isnan(at_chance)).sum(-1)
        read = np.where(counted > 0, np.nansum(at_chance, -1) / np.maximum(counted, 1), np.nan)
    present = tuple(arm in index.methods for arm in arms)
    return Evidence(
        arms=arms,
        noises=tuple(noises),
        against=(searched, reference),
        layout=layout,
        seeds=seeds,
        diffs=diffs,
        fixed_diverged=fixed_diverged,
        read_at_chance=read,
        diverged_anywhere=diverged_anywhere,
        incomplete_arm=incomplete_arm,
        present=present,
        incomplete=incomplete,
        excluded=excluded,
        failed_runs=index.failed,
    )
