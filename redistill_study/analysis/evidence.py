"""From evaluation records to the rule's arrays: per fixed arm, noise setting, quantity, pair
and evaluation seed, the paired difference comparator − fixed where both trained.

A seed where the fixed arm diverged and the comparator trained is a failure of the pair; a seed
where the comparator diverged is left out of that pair's comparison (listed in ``excluded``); a
seed without a run, or whose run crashed, makes the cell incomplete (listed in ``incomplete``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..study.arms import Arms
from ..study.phases import EVALUATION_PHASES, Phase, Status
from .records import accuracy, status_of
from .rule import Observed

QUANTITIES = ("regret", "deficit")
# Where each side of a comparison reads its runs: the fixed arm and the reference from their
# seeds (or, tuned, their final) phase, the searched arm from its per-pair-tuned final phase.
FIXED_PHASES = (Phase.SEEDS, Phase.FINAL)
COMPARATOR_PHASES = ((Phase.FINAL,), (Phase.SEEDS, Phase.FINAL))  # per quantity
Run = tuple[Status, float]  # (status, accuracy for reading)


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

    def observed(self) -> Observed:
        """The rule's input (a batch of one)."""
        teacher_of, student_of = self.layout.indices()
        return Observed(
            self.diffs,
            self.fixed_diverged,
            teacher_of,
            student_of,
            diverged_anywhere=self.diverged_anywhere,
            incomplete=self.incomplete_arm,
        )


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
            self.runs[key][seed] = (status, accuracy(r)[0] if status != Status.FAILED else np.nan)
            self.failed += status == Status.FAILED
            self.teacher.setdefault(r["pair"], str(r.get("teacher") or r["pair"]))
            self.student.setdefault(r["pair"], str(r.get("student") or r["pair"]))
            if r["noise"] not in self.noises:
                self.noises.append(r["noise"])
            if r["phase"] != Phase.TRANSFER:
                self.seeds.add(seed)
            self.methods.add(r["method"])

    def arm(self, noise: str, pair: str, method: str, phases: Sequence[Phase]) -> dict[int, Run]:
        for phase in phases:
            found = self.runs.get((noise, pair, method, phase))
            if found:
                return found
        return {}


def _missing(runs: Mapping[str, dict[int, Run]], seeds: Sequence[int]) -> dict[str, list[int]]:
    """Per arm, the declared seeds without a run or whose run crashed."""
    missing = {
        name: [s for s in seeds if s not in arm_runs or arm_runs[s][0] == Status.FAILED]
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
        if Status.FAILED in (fs, os_):
            continue
        diverged |= fs == Status.DIVERGED
        if os_ == Status.DIVERGED:
            left_out.append(seed)
            continue
        at_chance[s] = oa - fa
        if fs == Status.DIVERGED:
            fixed_diverged[s] = True
        else:
            diffs[s] = oa - fa
    return left_out, diverged


class _Cell(NamedTuple):
    at: tuple[int, int, int, int, int]  # (0, arm, noise, quantity, pair)
    labels: dict[str, Any]
    other: str  # the comparator
    runs: tuple[dict[int, Run], dict[int, Run]]  # (fixed, comparator)


def _cells(index: RunIndex, arms: Arms, layout: Layout, noises: Sequence[str]) -> Iterator[_Cell]:
    """Every compared cell: its place (0, arm, noise, quantity, pair), its labels, the
    comparator and the (fixed, comparator) runs. A declared arm without runs has none: no
    evidence, and it cannot hold."""
    comparators = tuple(zip((arms.searched, arms.reference), COMPARATOR_PHASES))
    for a, arm in enumerate(arms.fixed):
        if arm not in index.methods:
            continue
        for n, noise in enumerate(noises):
            for q, (other, phases) in enumerate(comparators):
                if other is None:
                    continue
                for p, pair in enumerate(layout.pairs):
                    cell = {"arm": arm, "quantity": QUANTITIES[q], "noise": noise, "pair": pair}
                    runs = (
                        index.arm(noise, pair, arm, FIXED_PHASES),
                        index.arm(noise, pair, other, phases),
                    )
                    yield _Cell((0, a, n, q, p), cell, other, runs)


@dataclass
class _Arrays:
    """What ``gather`` fills in, cell by cell."""

    diffs: np.ndarray
    fixed_diverged: np.ndarray
    at_chance: np.ndarray
    diverged_anywhere: np.ndarray
    incomplete_arm: np.ndarray
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> _Arrays:
        return cls(
            diffs=np.full(shape, np.nan),
            fixed_diverged=np.zeros(shape, dtype=bool),
            at_chance=np.full(shape, np.nan),
            diverged_anywhere=np.zeros(shape[:2], dtype=bool),
            incomplete_arm=np.zeros(shape[:2], dtype=bool),
        )

    def add(self, cell: _Cell, seeds: Sequence[int]) -> None:
        at, labels, other, (fixed, compared) = cell
        missing = _missing({labels["arm"]: fixed, other: compared}, seeds)
        if missing:
            self.incomplete_arm[at[:2]] = True
            self.incomplete.append({**labels, "missing": missing})
        left_out, diverged = _compare(
            fixed, compared, seeds, self.diffs[at], self.fixed_diverged[at], self.at_chance[at]
        )
        self.diverged_anywhere[at[:2]] |= diverged
        if left_out:
            self.excluded.append({**labels, "against": other, "seeds": left_out})

    def read_at_chance(self) -> np.ndarray:
        """Pair means with divergences read at chance (NaN: no seed compared)."""
        with np.errstate(invalid="ignore"):
            counted = (~np.isnan(self.at_chance)).sum(-1)
            total = np.nansum(self.at_chance, -1)
            return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


def gather(
    index: RunIndex, arms: Arms, layout: Layout, noises: Sequence[str], seeds: Sequence[int]
) -> Evidence:
    """The evidence of the arms present in ``index`` (``arms.searched`` or ``arms.reference``
    None: that quantity is not compared) over the layout's pairs, noise settings and seeds."""
    fixed, seeds = tuple(arms.fixed), tuple(seeds)
    shape = (1, len(fixed), len(noises), len(QUANTITIES), len(layout.pairs), len(seeds))
    arrays = _Arrays.empty(shape)
    for cell in _cells(index, arms, layout, noises):
        arrays.add(cell, seeds)
    return Evidence(
        arms=fixed,
        noises=tuple(noises),
        against=(arms.searched, arms.reference),
        layout=layout,
        seeds=seeds,
        diffs=arrays.diffs,
        fixed_diverged=arrays.fixed_diverged,
        read_at_chance=arrays.read_at_chance(),
        diverged_anywhere=arrays.diverged_anywhere,
        incomplete_arm=arrays.incomplete_arm,
        present=tuple(arm in index.methods for arm in fixed),
        incomplete=arrays.incomplete,
        excluded=arrays.excluded,
        failed_runs=index.failed,
    )
