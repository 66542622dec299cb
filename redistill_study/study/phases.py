"""The phases of a study, in the order the protocol runs them.

- ``seeds``    a fixed method trained with every evaluation seed, scored on test;
- ``search``   a tuned method's Optuna search on the validation split, with the search seed;
- ``final``    the pair's best search setting retrained with every evaluation seed;
- ``transfer`` leave one pair out: the setting that does best across the *other* pairs'
               searches, retrained with every evaluation seed on this pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Protocol


class Phase(str, Enum):
    SEEDS = "seeds"
    SEARCH = "search"
    FINAL = "final"
    TRANSFER = "transfer"

    def __str__(self) -> str:
        return self.value

    @property
    def evaluates_test(self) -> bool:
        """Only evaluation phases read the test split; the search never does."""
        return self is not Phase.SEARCH

    @property
    def depends_on_search(self) -> bool:
        return self in (Phase.FINAL, Phase.TRANSFER)


EVALUATION_PHASES = tuple(p for p in Phase if p.evaluates_test)


class _Arm(Protocol):
    @property
    def tune(self) -> bool: ...
    @property
    def trials(self) -> int: ...


def transfer_runs(declared: str, arms: Sequence[_Arm], seeds: int) -> bool:
    """Whether the exploratory ``transfer`` phase runs: as declared (``on``, ``off``), or
    (``auto``) where it adds at most a fifth to the trainings of a cell — its seeds for each
    searched arm, beside every arm's seeds and the searches' trials.

    >>> class A:
    ...     def __init__(self, tune, trials=0): self.tune, self.trials = tune, trials
    >>> transfer_runs("auto", [A(False)] * 6 + [A(True, 6)], seeds=3)  # 3 beside 27
    True
    >>> transfer_runs("auto", [A(False)] * 2 + [A(True, 4)] * 2, seeds=3)  # 6 beside 20
    False
    """
    if declared != "auto":
        return declared == "on"
    cell = sum(a.trials + seeds if a.tune else seeds for a in arms)
    return 5 * seeds * sum(a.tune for a in arms) <= cell


class Status(str, Enum):
    """How an evaluation or search trial ended, as its record says (see
    :mod:`redistill_study.analysis.records` for how the verdict reads each)."""

    COMPLETE = "complete"  # trained and scored
    DIVERGED = "diverged"  # its numbers blew up: scored at chance
    PRUNED = "pruned"  # stopped by the pruner before its end
    FAILED = "failed"  # crashed: missing data, retried

    def __str__(self) -> str:
        return self.value
