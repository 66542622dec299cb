"""The trial queue: one Optuna study per unit, its slots enqueued once, claimed atomically.

Every trial of a unit is enqueued up front (WAITING, with its slot in the user attributes);
a worker claims a cohort — trials of one student architecture and seed — by moving each from
WAITING to RUNNING in the storage, which succeeds for exactly one worker. Reads and claims that
Optuna's API would make per unit go through :mod:`.waiting` (one SQL statement on the
relational storages, Optuna's API elsewhere); everything else is Optuna's public API.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..config import TuningConfig
from .attrs import Choice, decode_setting
from .phases import Phase
from .plan import Plan, Unit
from .retry import fail_trial, lease_stale, retry_trial
from .storage import GRACE_PERIOD, PatientStorage
from .waiting import (
    UnitState,
    Waiting,
    claim_planning,
    claim_trial,
    unit_states,
    waiting_trials,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

OPEN_STATES = (TrialState.WAITING, TrialState.RUNNING)
MAX_RETRIES = 2  # a slot whose training crashed is tried again this many times, then counted
STALE_RETRIES = 3  # a slot whose worker died (killed, out of memory) likewise


@dataclass
class Claimed:
    """A trial this worker owns until it is told (finished) or released."""

    unit: Unit
    study: optuna.Study
    trial: optuna.Trial
    trial_id: int
    hparams: dict[str, Any]
    seed: int
    run_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    retry_of: int | None = None  # the number of the failed trial this one repeats

    @property
    def number(self) -> int:
        return self.trial.number


def sampler_for(unit: Unit, study_seed: int, tuning: TuningConfig) -> optuna.samplers.BaseSampler:
    seed = zlib.crc32(f"{study_seed}/{unit.name}".encode()) % (2**31)
    if unit.phase is not Phase.SEARCH or tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)  # evaluation phases never sample
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=tuning.startup_trials, constant_liar=True
    )


def pruner_for(unit: Unit, tuning: TuningConfig) -> optuna.pruners.BasePruner:
    if unit.phase is not Phase.SEARCH or tuning.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=tuning.startup_trials, n_warmup_steps=tuning.warmup_epochs
    )


class TrialQueue:
    """The plan's units as Optuna studies in one storage."""

    def __init__(self, storage: PatientStorage, plan: Plan) -> None:
        self.storage, self.plan = storage, plan
        self._studies: dict[str, optuna.Study] = {}
        self._finished: set[str] = set()  # a finished unit never reopens

    # --- studies ---------------------------------------------------------------------------

    def study(self, unit: Unit, create: bool = False) -> optuna.Study | None:
        if unit.name in self._studies:
            return self._studies[unit.name]
        config = self.plan.config
        sampler = sampler_for(unit, config.seed, config.tuning)
        pruner = pruner_for(unit, config.tuning)

        def load() -> optuna.Study:
            return optuna.load_study(
                study_name=unit.name, storage=self.storage, sampler=sampler, pruner=pruner
            )

        try:
            study = load()
        except KeyError:
            if not create:
                return None
            try:
                study = optuna.create_study(
                    study_name=unit.name,
                    storage=self.storage,
                    sampler=sampler,
                    pruner=pruner,
                    direction="maximize",
                )
                study.set_metric_names(["val/top1"])
            except DuplicatedStudyError:
                study = load()
        self._studies[unit.name] = study
        return study

    def plan_unit(self, unit: Unit, choice: Choice | None = None) -> optuna.Study:
        """Create the unit's study and enqueue its slots, once, whichever worker gets there."""
        study = self.study(unit, create=True)
        assert study is not None
        if study.user_attrs.get("planned"):
            return study
        study_id = self.storage.get_study_id_from_name(unit.name)
        # A live planner waits out an outage for at most the storage's patience: only a claim
        # older than that (and a grace period) is a dead planner's.
        patience = getattr(self.storage, "patience", None)
        stale_after = (patience.limit if patience else 0) + GRACE_PERIOD
        if not claim_planning(self.storage, study_id, stale_after=stale_after):
            return study  # another worker is enqueueing them: not finished until it has
        slots = self.plan.slots(unit)
        existing = {t.user_attrs.get("slot") for t in study.get_trials(deepcopy=False)}
        for slot in slots:
            if slot.slot not in existing:
                chosen = slot.chosen(choice) if choice is not None else slot
                study.enqueue_trial({}, user_attrs=chosen.to_user_attrs())
        study.set_user_attr("phase", unit.phase.value)
        study.set_user_attr("planned", len(slots))
        return study

    def is_planned(self, unit: Unit) -> bool:
        study = self.study(unit)
        return study is not None and bool(study.user_attrs.get("planned"))

    def states(self) -> dict[str, UnitState]:
        """Every unit's state in one query (units not yet created are absent)."""
        return unit_states(self.storage, f"{self.plan.config.name}/")

    def is_finished(self, unit: Unit) -> bool:
        """Planned, and no trial waiting or running."""
        if unit.name in self._finished:
            return True
        study = self.study(unit)
        if study is None or not study.user_attrs.get("planned"):
            return False
        if study.get_trials(deepcopy=False, states=OPEN_STATES):
            return False
        self._finished.add(unit.name)
        return True

    def trials(self, unit: Unit, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        study = self.study(unit)
        return [] if study is None else study.get_trials(deepcopy=False, states=states)

    def count_done(self) -> int:
        done = (TrialState.COMPLETE, TrialState.PRUNED)
        return sum(len(self.trials(u, done)) for u in self.plan.all_units())

    def retry_stale(self, grace: float) -> list[FrozenTrial]:
        """Fail the trials whose worker stopped heartbeating for ``grace`` seconds and queue
        one copy of each (:mod:`.retry`); the trials this worker failed, as they were."""
        units = {u.name: u for u in self.plan.all_units()}
        failed = []
        prefix = f"{self.plan.config.name}/"
        for name, trial_id in lease_stale(self.storage, prefix, set(units), grace):
            frozen = self.storage.get_trial(trial_id)
            study = self.study(units[name]) if name in units else None
            if study is None:
                continue
            done = retry_trial(
                self.storage, study, trial_id, "worker stopped heartbeating", STALE_RETRIES
            )
            if done.failed:
                failed.append(frozen)
        return failed

    # --- claiming --------------------------------------------------------------------------

    def claim_cohort(self, cohort_size: int, worker: str) -> list[Claimed]:
        """Up to ``cohort_size`` waiting trials that can share one data stream: the same
        student architecture, recipe and seed, from any cell (each keeps its own teacher).
        Searches go first, since the phases after them wait on them; then the lowest seed.
        One query finds every waiting trial (:mod:`.waiting`)."""
        units = {u.name: u for u in self.plan.all_units() if u.name not in self._finished}
        groups: dict[tuple[str, int], list[tuple[Unit, Waiting]]] = {}
        for w in waiting_trials(self.storage, f"{self.plan.config.name}/", units):
            unit = units[w.unit]
            groups.setdefault((self.plan.student_key(unit.cell), w.seed), []).append((unit, w))
        ranked = sorted(
            groups.items(),
            key=lambda kv: (
                not any(u.phase is Phase.SEARCH for u, _ in kv[1]),
                kv[0][1],
                kv[0][0],
            ),
        )
        order = {name: i for i, name in enumerate(units)}
        for _, waiting in ranked:
            claimed: list[Claimed] = []
            for unit, w in sorted(waiting, key=lambda uw: (order[uw[0].name], uw[1].number)):
                if len(claimed) >= cohort_size:
                    break
                c = self._claim(unit, w, worker)
                if c is not None:
                    claimed.append(c)
            if claimed:
                return claimed
        return []

    def _claim(self, unit: Unit, w: Waiting, worker: str) -> Claimed | None:
        if not claim_trial(self.storage, w.trial_id):
            return None  # another worker took it
        self.storage.record_heartbeat(w.trial_id)
        study = self.study(unit)
        assert study is not None
        trial = optuna.Trial(study, w.trial_id)
        trial.set_user_attr("worker", worker)
        hparams = unit.method.hparams()
        if unit.phase is Phase.SEARCH:  # a search trial's run is named by its own number
            hparams.update(unit.method.suggest(trial))
            return Claimed(unit, study, trial, w.trial_id, hparams, w.seed)
        if unit.phase.depends_on_search:
            attrs = self.storage.get_trial_user_attrs(w.trial_id)
            hparams.update(decode_setting(attrs.get("hparams")) or {})
        retry_of = self.storage.get_trial_system_attrs(w.trial_id).get("failed_trial")
        return Claimed(unit, study, trial, w.trial_id, hparams, w.seed, retry_of=retry_of)

    def release(
        self, cohort: list[Claimed], reason: str, requeue: bool, force: bool = False
    ) -> list[Claimed]:
        """Fail the unfinished trials of ``cohort`` with ``reason``; with ``requeue`` queue one
        fresh copy of each first (:mod:`.retry`) — at most ``MAX_RETRIES`` times for the same
        slot unless ``force`` (an interruption is not the trial's fault). Returns those
        released."""
        released = []
        for c in cohort:
            if requeue:
                limit = None if force else MAX_RETRIES
                done = retry_trial(self.storage, c.study, c.trial_id, reason, limit, not force)
                failed = done.failed
            else:
                failed = fail_trial(self.storage, c.trial_id, reason)
            if failed:
                released.append(c)
        return released


def create_named_study(storage: BaseStorage, name: str) -> int:
    """A study id for ``name``, created if missing (safe when workers race)."""
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        try:
            return storage.create_new_study([StudyDirection.MAXIMIZE], name)
        except DuplicatedStudyError:
            return storage.get_study_id_from_name(name)
