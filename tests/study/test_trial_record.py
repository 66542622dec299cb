"""The trial record: written when a slot is queued, when a worker starts it and when it ends,
read back in one place — on every storage backend."""

from __future__ import annotations

import optuna
from helpers import tiny_study
from optuna.trial import TrialState

from redistill_study.config import StudyConfig
from redistill_study.study.attrs import (
    Attempt,
    Choice,
    Ending,
    Slot,
    TrialRecord,
    decode_setting,
    of_the_slot,
)
from redistill_study.study.phases import Phase, Status
from redistill_study.study.plan import build_plan
from redistill_study.study.queue import TrialQueue
from redistill_study.study.storage import open_storage


def test_a_slot_survives_the_round_trip_with_and_without_a_choice() -> None:
    slot = Slot(
        slot=2, seed=7, phase=Phase.TRANSFER, cell="p/none/plain", recipe="plain", method="m"
    )
    assert Slot.from_user_attrs(slot.to_user_attrs()) == slot
    chosen = slot.chosen(Choice({"lam": 0.25, "temperature": 4.0}, "a,b"))
    attrs = chosen.to_user_attrs()
    assert attrs["hparams"] == '{"lam": 0.25, "temperature": 4.0}'  # JSON text, keys sorted
    assert "source_trial" not in attrs  # a transfer has no single source trial
    assert Slot.from_user_attrs(attrs) == chosen


def test_the_setting_reads_the_same_before_and_after_a_worker_starts_the_trial() -> None:
    queued = decode_setting('{"lam": 0.5}')
    started = decode_setting(Attempt("run", {"lam": 0.5}, "t", 10).to_user_attrs()["hparams"])
    assert queued == started == {"lam": 0.5}
    assert decode_setting(None) is None


def test_an_ending_keeps_its_reason_divergence_and_metrics_and_a_retry_drops_them() -> None:
    ending = Ending(
        Status.DIVERGED,
        "vectorised",
        "host:1",
        1.5,
        reason="epoch 1: loss is nan",
        chance=0.1,
        divergence={"step": 11, "last_finite_grad_norm": 6400.0},
        metrics={"val/top1": 0.1},
    )
    attrs = ending.to_user_attrs()
    assert attrs["status"] == "diverged" and attrs["divergence.step"] == 11
    kept = {k for k in attrs if of_the_slot(k)}
    assert kept == set()  # nothing of an attempt travels to its retry


def test_a_started_final_trial_that_crashed_is_retried_with_its_chosen_setting(
    storage_url: str,
) -> None:
    """A worker overwrites ``hparams`` with the full setting as a mapping when it starts a
    trial; the retry's copy keeps that mapping, and the next claim must read it."""
    plan = build_plan(StudyConfig.model_validate(tiny_study(noise=[{"kind": "none"}])))
    final = next(u for u in plan.dependent_units() if u.phase is Phase.FINAL)
    storage = open_storage(storage_url)
    queue = TrialQueue(storage, plan)
    setting = {**final.method.hparams(), "lam": 0.3}
    queue.plan_unit(final, Choice(setting, final.cell.pair.label, 1, 0.9))
    (claimed, *_) = [c for c in queue.claim_cohort(8, "w1") if c.unit.name == final.name]
    assert claimed.hparams == setting
    for key, value in Attempt("run-1", claimed.hparams, "t", 10).to_user_attrs().items():
        claimed.trial.set_user_attr(key, value)
    assert queue.release([claimed], "RuntimeError: boom", requeue=True) == [claimed]
    again = [c for c in queue.claim_cohort(8, "w2") if c.unit.name == final.name]
    retry = next(c for c in again if c.seed == claimed.seed)
    assert retry.hparams == setting and retry.retry_of == claimed.number
    records = [TrialRecord.from_trial(t) for t in queue.study(final).get_trials()]
    first = next(r for r in records if r.number == claimed.number)
    assert first.status is Status.FAILED and first.reason == "RuntimeError: boom"
    assert first.slot is not None and first.slot.choice is not None
    assert first.slot.choice.setting == setting
    copy = next(r for r in records if r.retry_of == claimed.number)
    assert copy.state is TrialState.RUNNING and copy.mlflow_run_id is None


def test_a_record_reads_a_search_trial_an_optuna_user_might_have_added(tmp_path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'o.db'}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    (record,) = map(TrialRecord.from_trial, study.get_trials())
    assert record.slot is None and record.status is Status.COMPLETE and "x" in record.params
