"""Every waiting trial of a study in one query, every unit's state in another, and an atomic
claim of one trial.

Optuna's storage API asks per study; a study of hundreds of units would cost hundreds of
queries per claim. For the relational storages this reads Optuna's tables directly — one
``SELECT`` over ``trials``, ``studies`` and the ``seed`` user attribute, prefixed by the
study's name — and falls back to the per-study API anywhere else (or if the tables ever change).

A claim moves a trial from WAITING to RUNNING with one conditional ``UPDATE … WHERE state =
'WAITING'``: exactly one worker sees a row change. (Optuna's own transition reads, then writes;
on SQLite, which has no ``SELECT … FOR UPDATE``, two processes can both read WAITING and both
win — `bench claims` found trials claimed twice that way.)
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

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


def claim_trial(storage: BaseStorage, trial_id: int) -> bool:
    """Move a WAITING trial to RUNNING; True for exactly one caller."""
    engine = getattr(storage, "engine", None)
    if engine is not None and ONE_QUERY:
        try:
            import sqlalchemy

            statement = sqlalchemy.text(_CLAIM).bindparams(
                sqlalchemy.bindparam("now", type_=sqlalchemy.DateTime)
            )
            with engine.begin() as conn:
                result = conn.execute(
                    statement, {"now": datetime.datetime.now(), "trial_id": trial_id}
                )
            return result.rowcount == 1
        except Exception:  # not Optuna's relational schema after all
            pass
    try:
        return storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    except UpdateFinishedTrialError:
        return False


def _select(storage: BaseStorage, sql: str, prefix: str) -> list | None:
    """The rows of one SELECT over Optuna's tables for the studies named ``prefix…``; None
    where the storage is not relational (or its tables are not Optuna's): ask the API then."""
    engine = getattr(storage, "engine", None)
    if engine is None or not ONE_QUERY:
        return None
    try:
        import sqlalchemy

        with engine.connect() as conn:
            return list(
                conn.execute(sqlalchemy.text(sql), {"n": len(prefix), "prefix": prefix}).fetchall()
            )
    except Exception:  # not Optuna's relational schema after all
        return None


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
