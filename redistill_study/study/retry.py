"""Retrying a trial exactly once: a released or stale trial is replaced by one fresh copy.

The copy stands in the same slot and carries ``failed_trial`` (the number it repeats), so a
slot always ends with exactly one attempt that counts and a search with exactly its budget.

The order, for a trial whose worker gave it up (:func:`retry_trial`):

1. the copy is queued (WAITING) — unless one for this trial exists already;
2. the original moves RUNNING → FAIL in one conditional ``UPDATE``.

Queued first, the unit never looks finished in between (no waiting or running trial), so no
later phase starts early. A worker that dies between 1 and 2 leaves the original RUNNING: it
goes stale, and whoever retries it finds the copy and only fails it. Should the original have
finished after all (its worker was alive), step 2 changes nothing and the copy is withdrawn
(failed and marked ``withdrawn`` in one transaction, only while nobody has claimed it). The
owner's own finishing write cannot overwrite step 2: on PostgreSQL Optuna locks the row, on
SQLite the storage takes the write lock first (:class:`.storage.PatientStorage`), so whichever
comes second sees the first's state.

A stale trial (its worker stopped heartbeating) is first *leased*: its heartbeat is moved to
now by a conditional ``UPDATE … WHERE heartbeat < cutoff``, which exactly one sweeper wins, on
SQLite and PostgreSQL alike. Optuna's own ``fail_stale_trials`` reads the state and then writes
it, so two sweepers on SQLite can both fail the trial and both queue a retry (a search that
ran past its budget after a crash). The lease holds for a grace period, long enough for the
winner to queue the copy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from .attrs import of_the_slot
from .waiting import change_once, patiently


def _engine(storage: BaseStorage) -> Any:
    return getattr(storage, "engine", None)


def _db_now(conn: Any) -> dt.datetime:
    now = conn.execute(sa.select(sa.func.now())).scalar()
    return now.replace(tzinfo=None)  # as Optuna compares heartbeats


_STALE = """
SELECT s.study_name, t.trial_id, h.heartbeat FROM trials t
JOIN studies s ON s.study_id = t.study_id
LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id
WHERE t.state = 'RUNNING' AND substr(s.study_name, 1, :n) = :prefix
  AND (h.heartbeat < :cutoff OR (h.heartbeat IS NULL AND t.datetime_start < :started))
ORDER BY t.trial_id
"""
_LEASE = """
UPDATE trial_heartbeats SET heartbeat = :now
WHERE trial_id = :trial_id AND heartbeat < :cutoff
"""
# A trial claimed without a heartbeat row (its worker died at once): the row's unique key lets
# exactly one caller insert it.
_LEASE_SILENT = """
INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (:trial_id, :now)
"""


def lease_stale(
    storage: BaseStorage, prefix: str, names: set[str], grace: float
) -> list[tuple[str, int]]:
    """Running trials of the studies in ``names`` (all named ``prefix…``) silent for over
    ``grace`` seconds, as (study name, trial id), each leased to this caller: no other caller
    gets the same trial for the next ``grace``. Each lease is its own short transaction, in
    trial order (two sweepers never wait on each other's locks)."""
    engine = _engine(storage)
    if engine is None:  # not relational: no atomic lease to take
        return []
    stamp = sa.DateTime

    def stale() -> tuple[dt.datetime, list[Any]]:
        with engine.begin() as conn:
            now = _db_now(conn)
            rows = conn.execute(
                sa.text(_STALE).bindparams(
                    sa.bindparam("cutoff", type_=stamp), sa.bindparam("started", type_=stamp)
                ),
                {
                    "n": len(prefix),
                    "prefix": prefix,
                    "cutoff": now - dt.timedelta(seconds=grace),
                    # datetime_start is the worker's local time, as Optuna writes it
                    "started": dt.datetime.now() - dt.timedelta(seconds=grace),
                },
            ).fetchall()
        return now, [r for r in rows if r[0] in names]

    def lease(trial_id: int, silent: bool, now: dt.datetime) -> bool:
        cutoff = now - dt.timedelta(seconds=grace)
        params = {"now": now, "cutoff": cutoff, "trial_id": trial_id}
        try:
            with engine.begin() as conn:
                statement = sa.text(_LEASE_SILENT if silent else _LEASE).bindparams(
                    sa.bindparam("now", type_=stamp),
                    *([] if silent else [sa.bindparam("cutoff", type_=stamp)]),
                )
                return bool(conn.execute(statement, params).rowcount == 1)
        except sa.exc.IntegrityError:
            return False  # another caller inserted it first

    now, rows = patiently(storage, stale)
    return [
        (str(name), int(trial_id))
        for name, trial_id, heartbeat in rows
        if patiently(storage, partial(lease, int(trial_id), heartbeat is None, now))
    ]


_FAIL_RUNNING = """
UPDATE trials SET state = 'FAIL', datetime_complete = :now
WHERE trial_id = :trial_id AND state = 'RUNNING'
"""
_WITHDRAW = """
UPDATE trials SET state = 'FAIL', datetime_start = :now, datetime_complete = :now
WHERE trial_id = :trial_id AND state = 'WAITING'
"""
_MARK_WITHDRAWN = """
INSERT INTO trial_system_attributes (trial_id, key, value_json)
VALUES (:trial_id, 'withdrawn', 'true')
"""


def _transition(storage: BaseStorage, sql: str, trial_id: int, mark: str | None = None) -> bool:
    """One conditional move to FAIL (and, with ``mark``, a statement in the same transaction
    when it happened); True for exactly one caller (:func:`.waiting.change_once`)."""
    if _engine(storage) is None:
        try:
            return storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def then(conn: Any) -> None:
        if mark:
            conn.execute(sa.text(mark), {"trial_id": trial_id})

    return change_once(storage, sql, trial_id, "FAIL", "datetime_complete", then)


@dataclass(frozen=True)
class Retried:
    """What :func:`retry_trial` did to one trial."""

    failed: bool  # this caller moved it RUNNING → FAIL
    copy_number: int | None  # the number of its copy, queued now or before


def _copy_of(study: optuna.Study, number: int) -> FrozenTrial | None:
    for t in study.get_trials(deepcopy=False):
        if t.system_attrs.get("failed_trial") == number:
            return t
    return None


def retry_trial(
    storage: BaseStorage,
    study: optuna.Study,
    trial_id: int,
    reason: str,
    max_retries: int | None,
    counts: bool = True,
) -> Retried:
    """Queue one copy of a RUNNING trial (if its slot has retries left) and fail it.

    ``max_retries`` None: always retried (an interruption is not the trial's fault); ``counts``
    False: this retry does not use up one of the slot's."""
    frozen = storage.get_trial(trial_id)
    if frozen.state is not TrialState.RUNNING:
        return Retried(False, None)
    history = list(frozen.system_attrs.get("retry_history", []))
    copy = _copy_of(study, frozen.number)
    if copy is None and (max_retries is None or len(history) < max_retries):
        system_attrs = {
            **{k: v for k, v in frozen.system_attrs.items() if k != "withdrawn"},
            "failed_trial": frozen.number,
            "retry_history": [*history, frozen.number] if counts else history,
        }
        user_attrs = {k: v for k, v in frozen.user_attrs.items() if of_the_slot(k)}
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING, user_attrs=user_attrs, system_attrs=system_attrs
            )
        )
        copy = _copy_of(study, frozen.number)
    if _note_reason(storage, trial_id, reason) and _transition(storage, _FAIL_RUNNING, trial_id):
        return Retried(True, copy.number if copy else None)
    if copy is not None and copy.state is TrialState.WAITING:
        # The original finished after all: its copy must not run too (unless it already does).
        copy_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study.study_name), copy.number
        )
        _transition(storage, _WITHDRAW, copy_id, mark=_MARK_WITHDRAWN)
    return Retried(False, None)


def _note_reason(storage: BaseStorage, trial_id: int, reason: str) -> bool:
    """Record why the trial is about to fail; False if it has finished meanwhile."""
    try:
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def fail_trial(storage: BaseStorage, trial_id: int, reason: str) -> bool:
    """Fail a RUNNING trial without a retry; True if this call did it."""
    if storage.get_trial(trial_id).state is not TrialState.RUNNING:
        return False
    return _note_reason(storage, trial_id, reason) and _transition(storage, _FAIL_RUNNING, trial_id)
