"""The trial queue over a real storage (SQLite and PostgreSQL): a unit is planned once."""

from __future__ import annotations

from helpers import one_pair_plan

from redistill_study.study.queue import TrialQueue
from redistill_study.study.storage import open_storage


def test_a_unit_is_planned_once_whoever_plans_it(storage_url: str) -> None:
    plan = one_pair_plan()
    unit = plan.first_units()[0]
    storage = open_storage(storage_url)
    first, second = TrialQueue(storage, plan), TrialQueue(storage, plan)
    first.plan_unit(unit)
    second.plan_unit(unit)  # another worker, later: nothing is queued twice
    slots = [t.user_attrs["slot"] for t in first.trials(unit)]
    assert sorted(slots) == list(range(len(plan.slots(unit))))
    assert first.is_planned(unit) and not first.is_finished(unit)
