"""Which tuned setting a dependent phase evaluates.

``final`` takes the best validation trial of the pair's own search. ``transfer`` (leave one pair
out) takes, among the other pairs' search trials, the one with the best validation rank within
its own pair's search (as a fraction, 0 = best); ties — every pair has a best trial — go to the
largest margin over that pair's median validation accuracy. Only validation numbers are used.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from optuna.trial import FrozenTrial, TrialState


def best_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def pick_transferred(
    trials_by_pair: Mapping[str, Sequence[FrozenTrial]],
) -> tuple[str, FrozenTrial] | None:
    candidates = []
    for pair, trials in sorted(trials_by_pair.items()):
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        if not done:
            continue
        median = statistics.median(t.value for t in done)
        for t in done:
            rank = sum(other.value > t.value for other in done) / len(done)
            candidates.append((rank, -(t.value - median), pair, t.number, t))
    if not candidates:
        return None
    chosen = min(candidates, key=lambda c: c[:4])
    return chosen[2], chosen[4]
