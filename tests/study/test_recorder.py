"""The recorder writes each outcome to both stores, the same in both: a real Optuna storage and
a real MLflow tracking store (SQLite files), no training."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import one_pair_plan
from optuna.trial import TrialState

from redistill_study.study.attrs import TrialRecord
from redistill_study.study.phases import Phase, Status
from redistill_study.study.queue import Claimed, TrialQueue
from redistill_study.study.recorder import Recorder
from redistill_study.study.storage import open_storage
from redistill_study.tracking import Tracker


@pytest.fixture
def claimed(tmp_path: Path) -> tuple[Recorder, Tracker, TrialQueue, list[Claimed]]:
    plan = one_pair_plan(methods=[{"name": "kd"}, {"name": "redistill_tuned", "trials": 3}])
    queue = TrialQueue(open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"), plan)
    for unit in plan.first_units():
        queue.plan_unit(unit)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "rec", tmp_path / "artifacts")
    parent = tracker.start_run("invocation")
    lines: list[str] = []
    recorder = Recorder(tracker, parent, "w1", "digits", 10, lambda s, **_: lines.append(s))
    cohort: list[Claimed] = []
    while batch := queue.claim_cohort(64, "w1"):
        cohort += batch
    for c in cohort:
        recorder.start(c, "teacher-a", {"teacher/test/top1": 0.95}, teacher_seed=3)
    return recorder, tracker, queue, cohort


def _stored(c: Claimed) -> TrialRecord:
    return TrialRecord.from_trial(c.study.get_trials(deepcopy=False)[c.number])


def test_a_completed_run_is_complete_in_both_stores_with_its_metrics(claimed) -> None:
    recorder, tracker, _, cohort = claimed
    c = next(c for c in cohort if c.unit.phase is Phase.SEEDS)
    recorder.complete(c, {"val/top1": 0.9, "test/top1": 0.89}, epochs=3)
    record = _stored(c)
    assert record.state is TrialState.COMPLETE and record.value == pytest.approx(0.9)
    assert record.status is Status.COMPLETE and record.metrics["test/top1"] == 0.89
    assert record.mlflow_run_id == c.run_id and record.worker == "w1"
    run = tracker.client.get_run(c.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "complete"
    assert run.data.metrics["test/top1"] == pytest.approx(0.89)
    assert run.data.params["teacher.seed"] == "3" and run.data.params["phase"] == "seeds"


def test_a_diverged_run_scores_at_chance_and_says_where_in_both_stores(claimed) -> None:
    recorder, tracker, _, cohort = claimed
    c = next(c for c in cohort if c.unit.phase is Phase.SEARCH)
    where = {"step": 11, "epoch": 1, "last_finite_grad_norm": 6400.0}
    recorder.diverged(c, "epoch 1: loss is nan", {"val/top1": 0.1}, epochs=1, where=where)
    record = _stored(c)
    assert record.state is TrialState.COMPLETE and record.value == pytest.approx(0.1)
    assert record.status is Status.DIVERGED and record.reason == "epoch 1: loss is nan"
    assert record.divergence == where
    run = tracker.client.get_run(c.run_id)
    assert run.info.status == "FAILED" and run.data.tags["fail_reason"] == "epoch 1: loss is nan"
    assert run.data.tags["divergence.step"] == "11"


def test_a_pruned_run_is_pruned_and_killed_and_a_superseded_one_is_not_overwritten(
    claimed,
) -> None:
    recorder, tracker, queue, cohort = claimed
    searches = [c for c in cohort if c.unit.phase is Phase.SEARCH]
    recorder.pruned(searches[0], epochs=1)
    assert _stored(searches[0]).state is TrialState.PRUNED
    assert tracker.client.get_run(searches[0].run_id).info.status == "KILLED"
    # Failed as stale by another worker meanwhile: this worker's late outcome is refused.
    late = searches[1]
    queue.release([late], "worker stopped heartbeating", requeue=True, force=True)
    recorder.complete(late, {"val/top1": 0.99}, epochs=3)
    assert _stored(late).state is TrialState.FAIL
    run = tracker.client.get_run(late.run_id)
    assert run.info.status == "KILLED" and "superseded" in run.data.tags["fail_reason"]
