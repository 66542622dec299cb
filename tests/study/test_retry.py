"""Retrying a trial exactly once, on every storage backend (SQLite and a real PostgreSQL).

Stale trials are leased by exactly one of many racing processes; a retried trial's copy is
queued before the original fails (its unit never looks finished in between); a second retry
of the same trial finds the copy; a trial that finished after all withdraws its copy; the
results count one attempt per slot.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from redistill_study.study.retry import Retried, fail_trial, lease_stale, retry_trial
from redistill_study.study.storage import open_storage
from redistill_study.study.waiting import claim_trial, unit_states


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'retry.db'}"
    cluster = request.getfixturevalue("postgres")
    name = f"retry_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    cluster.create_database(name)
    return cluster.url(name)


def _running(url: str, n: int, name: str = "s/unit") -> tuple[optuna.Study, list[int]]:
    """A study of ``n`` slots, every trial claimed and heartbeating."""
    storage = open_storage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for slot in range(n):
        study.enqueue_trial({}, user_attrs={"seed": 1, "slot": slot})
    study.set_user_attr("planned", n)
    study_id = storage.get_study_id_from_name(name)
    ids = [storage.get_trial_id_from_study_id_trial_number(study_id, k) for k in range(n)]
    for trial_id in ids:
        assert claim_trial(storage, trial_id)
        storage.record_heartbeat(trial_id)
    return study, ids


def _lease(url: str, seed: int, out) -> None:
    storage = open_storage(url)
    time.sleep(0.01 * seed)
    out.put(lease_stale(storage, "s/", {"s/unit"}, grace=1))


def test_a_stale_trial_is_leased_to_exactly_one_of_many_processes(url: str) -> None:
    _, ids = _running(url, 12)
    beaten = time.monotonic()
    storage = open_storage(url)
    assert lease_stale(storage, "s/", {"s/unit"}, grace=60) == []  # fresh: nothing is stale
    time.sleep(2.5)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_lease, args=(url, seed, out)) for seed in range(5)]
    for p in procs:
        p.start()
    won = [trial_id for _ in procs for _, trial_id in out.get(timeout=120)]
    for p in procs:
        p.join()
    assert sorted(won) == sorted(ids)  # each stale trial to one process: none twice
    # The lease is a heartbeat: at a grace the old heartbeats have outlived by a second, the
    # leased ones (1.5 s younger at least, after the store's whole-second stamps) are fresh,
    # however slow the machine.
    assert lease_stale(storage, "s/", {"s/unit"}, grace=time.monotonic() - beaten - 1) == []


def _copies(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if "failed_trial" in t.system_attrs]


def test_the_copy_is_queued_before_the_original_fails_and_only_once(url: str) -> None:
    study, ids = _running(url, 2)
    storage = open_storage(url)
    done = retry_trial(storage, study, ids[0], "worker stopped heartbeating", max_retries=3)
    assert done.failed and done.copy_number is not None
    (copy,) = _copies(study)
    assert copy.state is TrialState.WAITING and copy.system_attrs["failed_trial"] == 0
    assert copy.user_attrs == {"seed": 1, "slot": 0}  # the slot, none of the attempt's keys
    assert copy.system_attrs["retry_history"] == [0]
    assert storage.get_trial(ids[0]).state is TrialState.FAIL
    # A second retry of the same (already failed) trial changes nothing.
    assert retry_trial(storage, study, ids[0], "again", max_retries=3) == Retried(False, None)
    assert len(_copies(study)) == 1


def test_a_worker_that_died_between_queueing_and_failing_is_completed_not_repeated(
    url: str,
) -> None:
    study, ids = _running(url, 1)
    storage = open_storage(url)
    # The state a worker leaves if it dies right after queueing the copy: original RUNNING.
    frozen = storage.get_trial(ids[0])
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            user_attrs={"seed": 1, "slot": 0},
            system_attrs={"failed_trial": frozen.number, "retry_history": [frozen.number]},
        )
    )
    states = unit_states(storage, "s/")["s/unit"]
    assert not states.finished and states.waiting == 1 and states.running == 1
    done = retry_trial(storage, study, ids[0], "worker stopped heartbeating", max_retries=3)
    assert done.failed
    assert len(_copies(study)) == 1  # found the copy: no second one


@pytest.mark.parametrize("when", ["before the reason", "after the reason"])
def test_a_trial_that_finished_after_all_withdraws_its_copy(url: str, when: str) -> None:
    study, ids = _running(url, 1)
    storage = open_storage(url)
    # The owner completes the trial while a sweeper is between queueing the copy and failing
    # the original: the sweeper's conditional failure changes nothing, and the copy must not
    # run as well.
    real = storage.inner.set_trial_user_attr

    def owner_finishes_now(trial_id, key, value):
        if key == "fail_reason":
            storage.inner.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.9])
            if when == "after the reason":
                return None
        return real(trial_id, key, value)

    storage.inner.set_trial_user_attr = owner_finishes_now
    try:
        done = retry_trial(storage, study, ids[0], "worker stopped heartbeating", max_retries=3)
    finally:
        storage.inner.set_trial_user_attr = real
    assert not done.failed
    (copy,) = _copies(study)
    assert copy.state is TrialState.FAIL and copy.system_attrs["withdrawn"] is True
    assert storage.get_trial(ids[0]).state is TrialState.COMPLETE


def test_a_claimed_trial_without_a_heartbeat_still_goes_stale(url: str) -> None:
    storage = open_storage(url)
    study = optuna.create_study(study_name="s/unit", storage=storage)
    study.enqueue_trial({}, user_attrs={"seed": 1, "slot": 0})
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("s/unit"), 0
    )
    # Claimed the way Optuna's API does it: no heartbeat row (a worker that died at once).
    assert storage.inner.set_trial_state_values(trial_id, TrialState.RUNNING)
    assert lease_stale(storage, "s/", {"s/unit"}, grace=60) == []
    time.sleep(2.2)
    assert lease_stale(storage, "s/", {"s/unit"}, grace=1) == [("s/unit", trial_id)]
    assert lease_stale(storage, "s/", {"s/unit"}, grace=1) == []  # leased: a heartbeat now
    # A unit outside the plan is never leased (nobody would retry it).
    time.sleep(2.2)
    assert lease_stale(storage, "s/", {"s/other"}, grace=1) == []


def test_on_sqlite_a_state_change_takes_the_write_lock_before_it_reads(tmp_path: Path) -> None:
    import sqlalchemy

    storage = open_storage(f"sqlite:///{tmp_path / 'lock.db'}")
    study = optuna.create_study(study_name="s/unit", storage=storage)
    study.enqueue_trial({})
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("s/unit"), 0
    )
    assert claim_trial(storage, trial_id)
    seen: list[str] = []
    sqlalchemy.event.listen(
        storage.engine, "before_cursor_execute", lambda *a: seen.append(a[2].strip())
    )
    storage.get_trial(trial_id)
    assert "BEGIN IMMEDIATE" not in seen  # reads do not queue behind writers
    storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.0])
    begins = [s for s in seen if s.startswith("BEGIN")]
    assert begins[-1] == "BEGIN IMMEDIATE", seen


def test_crash_retries_stop_at_the_cap_and_interruptions_do_not_count(url: str) -> None:
    study, ids = _running(url, 1)
    storage = open_storage(url)
    trial_id = ids[0]
    for expected_history in ([0], [0, 1]):
        assert retry_trial(storage, study, trial_id, "crash", max_retries=2).failed
        copy = _copies(study)[-1]
        assert copy.system_attrs["retry_history"] == expected_history
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name("s/unit"), copy.number
        )
        assert claim_trial(storage, trial_id)
    # Two crashes used up the slot's retries: the third failure is final …
    assert retry_trial(storage, study, trial_id, "crash", max_retries=2) == Retried(True, None)
    assert len(_copies(study)) == 2
    # … while an interruption is retried whatever the history, without adding to it.
    study2, ids2 = _running(url, 1, name="s/other")
    assert retry_trial(storage, study2, ids2[0], "interrupted", None, counts=False).failed
    assert _copies(study2)[0].system_attrs["retry_history"] == []


def test_failing_without_a_retry_happens_once(url: str) -> None:
    _, ids = _running(url, 1)
    storage = open_storage(url)
    assert fail_trial(storage, ids[0], "stopped")
    assert not fail_trial(storage, ids[0], "stopped")
    assert storage.get_trial(ids[0]).user_attrs["fail_reason"] == "stopped"


def _plan(url: str, study_id: int, out) -> None:
    from redistill_study.study.waiting import claim_planning

    out.put(claim_planning(open_storage(url), study_id, stale_after=60))


def test_a_unit_is_planned_by_exactly_one_of_many_processes(url: str) -> None:
    from redistill_study.study.waiting import claim_planning

    storage = open_storage(url)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s/unit")
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_plan, args=(url, study_id, out)) for _ in range(5)]
    for p in procs:
        p.start()
    won = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert won.count(True) == 1  # two schedulers finding a unit ready never both queue it
    # A planner that died before it finished is taken over once its claim is stale.
    assert not claim_planning(storage, study_id, stale_after=60)
    time.sleep(0.05)
    assert claim_planning(storage, study_id, stale_after=0.01)
