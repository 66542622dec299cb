"""The read-only results seam over a real storage: the latest attempt per slot, at chance when
it diverged, and what is still pending."""

from __future__ import annotations

import pytest
from helpers import claim_all, finish_trial, one_pair_plan
from optuna.trial import TrialState

from redistill_study.study.phases import Status
from redistill_study.study.queue import TrialQueue
from redistill_study.study.results import read_results
from redistill_study.study.storage import open_storage


def test_results_read_the_latest_attempt_per_slot_and_count_what_is_pending(
    storage_url: str,
) -> None:
    plan = one_pair_plan(methods=[{"name": "kd"}, {"name": "redistill"}])
    kd, redistill = plan.first_units()
    storage = open_storage(storage_url)
    queue = TrialQueue(storage, plan)
    queue.plan_unit(kd)
    queue.plan_unit(redistill)
    first_kd = claim_all(queue, kd)
    # seed 0 crashes and is retried; its retry completes; seed 1 diverges
    crashed = next(c for c in first_kd if c.seed == plan.seeds[0])
    queue.release([crashed], "RuntimeError: boom", requeue=True)
    finish_trial(next(c for c in first_kd if c.seed == plan.seeds[1]), 0.1, Status.DIVERGED)
    (retry,) = claim_all(queue, kd)
    finish_trial(retry, 0.88)
    results = read_results(storage, plan)
    rows = {(r["method"], r["seed"]): r for r in results.evaluations}
    assert set(rows) == {("kd", plan.seeds[0]), ("kd", plan.seeds[1])}
    assert rows[("kd", plan.seeds[0])]["status"] == "complete"
    assert rows[("kd", plan.seeds[0])]["test/top1"] == pytest.approx(0.87)
    assert rows[("kd", plan.seeds[1])]["status"] == "diverged"
    assert rows[("kd", plan.seeds[1])]["test/top1"] == pytest.approx(0.1)  # at chance
    assert results.pending == len(plan.seeds)  # redistill's slots are claimed, not finished
    assert {t.state for t in queue.trials(kd)} == {TrialState.COMPLETE, TrialState.FAIL}
