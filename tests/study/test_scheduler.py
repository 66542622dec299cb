"""The phase scheduler over a real storage: a final setting from validation numbers only."""

from __future__ import annotations

import pytest
from helpers import claim_all, finish_trial, one_pair_plan

from redistill_study.study.phases import Phase
from redistill_study.study.queue import TrialQueue
from redistill_study.study.scheduler import SKIP, PhaseScheduler
from redistill_study.study.storage import open_storage


def test_the_final_setting_is_the_best_validation_trial_and_skip_without_one(
    storage_url: str,
) -> None:
    plan = one_pair_plan()
    search = next(u for u in plan.first_units() if u.phase is Phase.SEARCH)
    final = next(u for u in plan.dependent_units() if u.phase is Phase.FINAL)
    storage = open_storage(storage_url)
    queue = TrialQueue(storage, plan)
    scheduler = PhaseScheduler(plan, queue)
    queue.plan_unit(search)
    assert scheduler.choice(final) is None  # its search is still waiting
    claimed = claim_all(queue, search)
    values = [0.70, 0.91, 0.85][: len(claimed)]
    for c, v in zip(claimed, values):
        finish_trial(c, v)
    choice = scheduler.choice(final)
    best = claimed[values.index(max(values))]
    assert choice is not None and choice != SKIP
    assert choice.setting == best.hparams and choice.source_trial == best.number
    assert choice.source_val_top1 == pytest.approx(max(values))

    empty_plan = one_pair_plan(name="empty")
    empty_search = next(u for u in empty_plan.first_units() if u.phase is Phase.SEARCH)
    empty_final = next(u for u in empty_plan.dependent_units() if u.phase is Phase.FINAL)
    empty_queue = TrialQueue(storage, empty_plan)
    empty_queue.plan_unit(empty_search)
    for c in claim_all(empty_queue, empty_search):
        empty_queue.release([c], "RuntimeError: boom", requeue=False)
    assert PhaseScheduler(empty_plan, empty_queue).choice(empty_final) == SKIP
