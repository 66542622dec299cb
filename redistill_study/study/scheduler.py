"""The phase scheduler: a ``final`` or ``transfer`` unit is queued as soon as the searches it
depends on have finished, with the setting those searches chose (validation numbers only)."""

from __future__ import annotations

from optuna.trial import TrialState

from .attrs import Choice, TrialRecord
from .phases import Phase
from .plan import Plan, Unit
from .queue import TrialQueue
from .transfer import Trial, transferred_setting

SKIP = "skip"


class PhaseScheduler:
    def __init__(self, plan: Plan, queue: TrialQueue) -> None:
        self.plan, self.queue = plan, queue
        self._skipped: set[str] = set()

    def _search_trials(self, unit: Unit) -> list[Trial]:
        """Completed search trials as (full hyper-parameters, validation top-1); a diverged
        trial is complete at chance, so a setting that blows up is never preferred."""
        out = []
        for t in map(TrialRecord.from_trial, self.queue.trials(unit, (TrialState.COMPLETE,))):
            assert t.value is not None  # a completed trial has its value
            out.append((t.hparams or {**unit.method.hparams(), **t.params}, t.value))
        return out

    def choice(self, unit: Unit) -> Choice | str | None:
        """The setting a dependent unit evaluates; None while its searches run; SKIP when they
        ended without a completed trial."""
        searches: dict[str, list[Trial]] = {}
        for source in self.plan.sources(unit):
            if not self.queue.is_finished(source):
                return None
            if unit.phase is Phase.TRANSFER:
                searches[source.cell.pair.label] = self._search_trials(source)
        if unit.phase is Phase.FINAL:
            (source,) = self.plan.sources(unit)
            done = self.queue.trials(source, (TrialState.COMPLETE,))
            if not done:
                return SKIP
            best = TrialRecord.from_trial(max(done, key=lambda t: (t.value, -t.number)))
            setting = best.hparams or {**unit.method.hparams(), **best.params}
            return Choice(setting, unit.cell.pair.label, best.number, best.value)
        space = unit.method.space
        chosen = transferred_setting(
            {
                p: [({k: h[k] for k in space}, v) for h, v in trials]
                for p, trials in searches.items()
            },
            space,
        )
        if chosen is None:
            return SKIP
        return Choice({**unit.method.hparams(), **chosen}, ",".join(sorted(searches)))

    def advance(self) -> bool:
        """Queue every dependent unit whose searches are done; True when the whole study is
        (every unit finished, or skipped because its searches completed nothing). One query
        reads every unit's state; only units whose searches just finished read their trials."""
        states = self.queue.states()

        def finished(unit: Unit) -> bool:
            state = states.get(unit.name)
            return state is not None and state.finished

        for unit in self.plan.dependent_units():
            state = states.get(unit.name)
            if unit.name in self._skipped or (state is not None and state.planned):
                continue
            if not all(finished(source) for source in self.plan.sources(unit)):
                continue
            choice = self.choice(unit)
            if choice == SKIP:
                self._skipped.add(unit.name)
            elif isinstance(choice, Choice):
                self.queue.plan_unit(unit, choice)  # absent from states: not finished
        return all(finished(u) or u.name in self._skipped for u in self.plan.all_units())
