"""One query for every waiting trial and every unit's state, and an atomic claim, on every
storage backend (SQLite and a real PostgreSQL): what many workers sharing one study rely on."""

from __future__ import annotations

import optuna
from helpers import REPO
from optuna.trial import TrialState


def test_one_query_finds_the_same_waiting_trials_as_the_api(storage_url: str) -> None:
    from redistill_study.study.waiting import waiting_trials

    storage = optuna.storages.RDBStorage(storage_url)
    names = []
    for i in range(3):
        study = optuna.create_study(study_name=f"s/unit{i}", storage=storage)
        names.append(study.study_name)
        for seed in range(4):
            study.enqueue_trial({}, user_attrs={"seed": seed, "slot": seed})
        study.ask()  # one trial leaves the queue
    optuna.create_study(study_name="other/unit", storage=storage).enqueue_trial({})
    fast = waiting_trials(storage, "s/", names)

    class NoEngine:  # the same storage seen through Optuna's API only
        def __getattr__(self, name):
            if name == "engine":
                raise AttributeError(name)
            return getattr(storage, name)

    slow = waiting_trials(NoEngine(), "s/", names)
    assert fast == slow and len(fast) == 9
    assert {w.seed for w in fast} == {1, 2, 3} and {w.unit for w in fast} == set(names)


def _race(url: str, ids: list[int], seed: int, out) -> None:
    import random

    from redistill_study.study.storage import open_storage
    from redistill_study.study.waiting import claim_trial

    storage = open_storage(url)
    order = list(ids)
    random.Random(seed).shuffle(order)
    out.put([i for i in order if claim_trial(storage, i)])


def test_a_waiting_trial_is_claimed_by_exactly_one_process(storage_url: str) -> None:
    import multiprocessing as mp

    url = storage_url
    study = optuna.create_study(study_name="race/unit", storage=url)
    for i in range(60):
        study.enqueue_trial({}, user_attrs={"seed": 0, "slot": i})
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.get_study_id_from_name("race/unit")
    ids = [storage.get_trial_id_from_study_id_trial_number(study_id, n) for n in range(60)]
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(url, ids, seed, out)) for seed in range(6)]
    for p in procs:
        p.start()
    won = [i for _ in procs for i in out.get(timeout=120)]
    for p in procs:
        p.join()
    assert sorted(won) == sorted(ids)  # every trial once: none lost, none twice
    states = {t.state for t in optuna.load_study(study_name="race/unit", storage=url).trials}
    assert states == {TrialState.RUNNING}


def test_one_loop_of_a_worker_reads_the_unit_states_in_one_query(storage_url: str) -> None:
    """The scheduler's check costs the same few statements whatever the plan's size, and the
    one query agrees with Optuna's per-study API."""
    import sqlalchemy

    from redistill_study.config import load_study
    from redistill_study.study import build_plan
    from redistill_study.study.queue import TrialQueue
    from redistill_study.study.scheduler import PhaseScheduler
    from redistill_study.study.waiting import unit_states

    plan = build_plan(load_study(REPO / "studies" / "cifar100_classic.yaml", check_files=False))
    storage = optuna.storages.RDBStorage(storage_url)
    queue = TrialQueue(storage, plan)
    first = plan.first_units()[:6]  # queued; the rest not yet created
    for unit in first:
        queue.plan_unit(unit)
    statements = []
    sqlalchemy.event.listen(
        storage.engine, "before_cursor_execute", lambda *a: statements.append(a[2])
    )
    scheduler = PhaseScheduler(plan, queue)
    assert scheduler.advance() is False  # the searches are waiting: nothing else is ready
    assert len(statements) <= 2, statements
    assert len(plan.dependent_units()) > 100  # …of a plan with hundreds of units waiting on them

    class NoEngine:  # the same storage seen through Optuna's API only
        def __getattr__(self, name):
            if name == "engine":
                raise AttributeError(name)
            return getattr(storage, name)

    prefix = f"{plan.config.name}/"
    fast, slow = unit_states(storage, prefix), unit_states(NoEngine(), prefix)
    assert fast == slow and set(fast) == {u.name for u in first}
    assert all(s.planned and s.waiting > 0 and s.running == 0 for s in fast.values())
