"""Every waiting trial of a study in one query, every unit's state in another, and an atomic
claim of one trial.

Optuna's storage API asks per study; a study of hundreds of units would cost hundreds of
queries per claim. For the relational storages this reads Optuna's tables directly — one
``SELECT`` over ``trials``, ``studies`` and the ``seed`` user attribute, prefixed by the
study's name — and uses the per-study API on a storage that is not relational. A statement that
fails is not "retried" through the API (its claim is the racy one below): it waits through the
storage's patience, or raises.

A claim moves a trial from WAITING to RUNNING with one conditional ``UPDATE … WHERE state =
'WAITING'``: exactly one worker sees a row change. (Optuna's own transition reads, then writes;
on SQLite, which has no ``SELECT … FOR UPDATE``, two processes can both read WAITING and both
win — `bench claims` found trials claimed twice that way.)
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

T = TypeVar("T")

_QUERY = """
SELECT s.study_name, t.trial_id, t.number, a.value_json
FROM trials t
JOIN studies s ON s.study_id = t.study_id
LEFT JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'seed'
WHERE t.state = 'WAITING' AND substr(s.study_name, 1, :n) = :prefix
"""


# False: ask Optuna's API study by study (what a claim did before; `bench claims` compares).
ONE_QUERY = True


@dataclass(frozen=True)
class Waiting:
    unit: str  # the unit's study name
    trial_id: int
    number: int
    seed: int


_CLAIM = """
UPDATE trials SET state = 'RUNNING', datetime_start = :now
WHERE trial_id = :trial_id AND state = 'WAITING'
"""


def patiently(storage: BaseStorage, fn: Callable[[], T]) -> T:
    """``fn()`` (a statement on the storage's engine) through the storage's patience, if any."""
    patience = getattr(storage, "patience", None)
    return patience.call(fn) if patience is not None else fn()


_CLAIM_HEARTBEAT = """
INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (:trial_id, CURRENT_TIMESTAMP)
"""
_RENEW_HEARTBEAT = """
UPDATE trial_heartbeats SET heartbeat = CURRENT_TIMESTAMP WHERE trial_id = :trial_id
"""


def claim_trial(storage: BaseStorage, trial_id: int) -> bool:
    """Move a WAITING trial to RUNNING, with its first heartbeat in the same transaction (a
    worker that dies at once leaves a trial that goes stale, not one that runs forever); True
    for exactly one caller."""
    engine = getattr(storage, "engine", None)
    if engine is None or not ONE_QUERY:
        try:
            return storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        except UpdateFinishedTrialError:
            return False

    def first_heartbeat(conn: Any) -> None:
        params = {"trial_id": trial_id}
        if not conn.execute(sqlalchemy.text(_RENEW_HEARTBEAT), params).rowcount:
            conn.execute(sqlalchemy.text(_CLAIM_HEARTBEAT), params)

    return change_once(storage, _CLAIM, trial_id, "RUNNING", "datetime_start", first_heartbeat)


def change_once(
    storage: BaseStorage,
    sql: str,
    trial_id: int,
    state: str,
    stamped: str,
    then: Callable[[Any], None] | None = None,
) -> bool:
    """One conditional ``UPDATE`` of a trial (``sql``, which sets ``state`` and the column
    ``stamped`` to ``:now``), and ``then(connection)`` in the same transaction when it changed
    the row; True for exactly one caller — also when the answer to its commit was lost and the
    retry finds the row in ``state`` with its own ``:now``."""
    engine = storage.engine  # type: ignore[attr-defined]
    stamp = sqlalchemy.DateTime
    statement = sqlalchemy.text(sql).bindparams(sqlalchemy.bindparam("now", type_=stamp))
    own = sqlalchemy.text(f"SELECT state, {stamped} FROM trials WHERE trial_id = :trial_id")
    now = datetime.datetime.now()
    tried = False

    def change() -> bool:
        nonlocal tried
        with engine.begin() as conn:
            if tried:
                row = conn.execute(own.columns(**{stamped: stamp}), {"trial_id": trial_id}).one()
                if row[0] == state and row[1] == now:
                    return True
            tried = True
            changed = conn.execute(statement, {"now": now, "trial_id": trial_id}).rowcount == 1
            if changed and then is not None:
                then(conn)
        return bool(changed)

    return patiently(storage, change)


def _select(storage: BaseStorage, sql: str, prefix: str) -> list | None:
    """The rows of one SELECT over Optuna's tables for the studies named ``prefix…``; None
    where the storage is not relational: ask the API then."""
    engine = getattr(storage, "engine", None)
    if engine is None or not ONE_QUERY:
        return None

    def select() -> list:
        with engine.connect() as conn:
            return list(
                conn.execute(sqlalchemy.text(sql), {"n": len(prefix), "prefix": prefix}).fetchall()
            )

    return patiently(storage, select)


def waiting_trials(storage: BaseStorage, prefix: str, units: Iterable[str]) -> list[Waiting]:
    """WAITING trials of the studies named in ``units`` (all sharing ``prefix``)."""
    wanted = set(units)
    rows = _select(storage, _QUERY, prefix)
    if rows is not None:
        return sorted(
            (
                Waiting(name, trial_id, number, int(json.loads(seed)) if seed else 0)
                for name, trial_id, number, seed in rows
                if name in wanted
            ),
            key=lambda w: (w.unit, w.number),
        )
    out = []
    for name in sorted(wanted):
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            continue
        for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            out.append(Waiting(name, trial_id, t.number, int(t.user_attrs.get("seed", 0))))
    return out


_STATES = """
SELECT s.study_name,
       (SELECT a.value_json FROM study_user_attributes a
        WHERE a.study_id = s.study_id AND a.key = 'planned') AS planned,
       SUM(CASE WHEN t.state = 'WAITING' THEN 1 ELSE 0 END) AS waiting,
       SUM(CASE WHEN t.state = 'RUNNING' THEN 1 ELSE 0 END) AS running
FROM studies s
LEFT JOIN trials t ON t.study_id = s.study_id
WHERE substr(s.study_name, 1, :n) = :prefix
GROUP BY s.study_id, s.study_name
"""


@dataclass(frozen=True)
class UnitState:
    planned: bool  # its slots are queued
    waiting: int
    running: int

    @property
    def finished(self) -> bool:
        """Planned, and no trial waiting or running."""
        return self.planned and self.waiting == 0 and self.running == 0


def unit_states(storage: BaseStorage, prefix: str) -> dict[str, UnitState]:
    """The state of every unit (study) whose name starts with ``prefix``: one query on the
    relational storages, Optuna's per-study API elsewhere. Units not yet created are absent."""
    rows = _select(storage, _STATES, prefix)
    if rows is not None:
        return {
            name: UnitState(bool(planned and json.loads(planned)), int(w or 0), int(r or 0))
            for name, planned, w, r in rows
        }
    out = {}
    for summary in storage.get_all_studies():
        if not summary.study_name.startswith(prefix):
            continue
        study_id = storage.get_study_id_from_name(summary.study_name)
        trials = storage.get_all_trials(
            study_id, deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)
        )
        out[summary.study_name] = UnitState(
            bool(storage.get_study_user_attrs(study_id).get("planned")),
            sum(t.state is TrialState.WAITING for t in trials),
            sum(t.state is TrialState.RUNNING for t in trials),
        )
    return out


_PLANNING_KEY = "redistill:planning"
_TAKE_PLANNING = """
INSERT INTO study_system_attributes (study_id, key, value_json) VALUES (:study_id, :key, :stamp)
"""
_READ_PLANNING = """
SELECT value_json FROM study_system_attributes WHERE study_id = :study_id AND key = :key
"""
_RENEW_PLANNING = """
UPDATE study_system_attributes SET value_json = :stamp
WHERE study_id = :study_id AND key = :key AND value_json = :old
"""


def claim_planning(storage: BaseStorage, study_id: int, stale_after: float) -> bool:
    """True for exactly one caller: the one that enqueues a unit's slots. (Two workers whose
    scheduler finds a unit's searches finished at the same moment would otherwise both enqueue
    them: the unit would run twice.) A plain ``INSERT`` of a study attribute, which the table's
    unique key lets only one caller make; a planner that died before it finished is taken over
    after ``stale_after`` seconds by a conditional ``UPDATE``."""
    engine = getattr(storage, "engine", None)
    if engine is None or not ONE_QUERY:
        return True  # one process (or Optuna's API only): nobody to race
    now = f"{time.time():.3f}"
    params = {"study_id": study_id, "key": _PLANNING_KEY, "stamp": json.dumps(now)}

    def take() -> bool:
        try:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(_TAKE_PLANNING), params)
            return True
        except sqlalchemy.exc.IntegrityError:
            pass
        with engine.begin() as conn:
            old = conn.execute(sqlalchemy.text(_READ_PLANNING), params).scalar()
            if old is None or time.time() - float(json.loads(old)) < stale_after:
                return False
            renewed = conn.execute(sqlalchemy.text(_RENEW_PLANNING), {**params, "old": old})
            return bool(renewed.rowcount == 1)

    return patiently(storage, take)
