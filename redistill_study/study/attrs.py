"""The attributes an Optuna trial carries, written and read here only.

A trial's user attributes come in three groups, each a frozen record:

- :class:`Slot`, written when the slot is queued: which unit and seed it is and, for a
  ``final`` or ``transfer`` slot, the setting its searches chose (:class:`Choice`);
- :class:`Attempt`, written by the worker that starts it: its MLflow run, the full
  hyper-parameters it trains, the teacher and the number of classes;
- :class:`Ending`, written when it ends: the :class:`~.phases.Status`, engine, worker and time,
  why it diverged (``divergence.*``) and its metrics (names with a slash). A trial that
  crashed or was interrupted is failed by :mod:`.retry`, which notes ``fail_reason``.

:class:`TrialRecord` reads all three back from a stored trial. A retry keeps the slot and the
setting it trains (``hparams``, with the teacher and the class count) and none of the attempt's
outcome (:func:`of_the_slot`). The claim's ``worker`` and the slot's ``seed`` are also read by
name in :mod:`.waiting`'s SQL, which must stay one query.

>>> slot = Slot(slot=0, seed=3, phase=Phase.FINAL, cell="c", recipe="plain", method="m")
>>> chosen = slot.chosen(Choice({"lam": 0.5}, source_pair="p", source_trial=4))
>>> attrs = chosen.to_user_attrs()
>>> attrs["hparams"], attrs["phase"]
('{"lam": 0.5}', 'final')
>>> Slot.from_user_attrs(attrs) == chosen
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from .phases import Phase, Status

METRIC_PREFIXES = ("val/", "test/", "teacher/", "train/")
DIVERGENCE_PREFIX = "divergence."
# Keys of one attempt, not of the slot: a retry starts without them (nor any metric or
# divergence detail). ``hparams`` stays: a final slot's setting is stored under it.
ATTEMPT_KEYS = frozenset(
    {"fail_reason", "worker", "mlflow_run_id", "status", "engine", "seconds", "chance"}
)


def of_the_slot(key: str) -> bool:
    """Does a retry of the trial keep this attribute?"""
    return key not in ATTEMPT_KEYS and "/" not in key and not key.startswith(DIVERGENCE_PREFIX)


def decode_setting(value: Any) -> dict[str, Any] | None:
    """``hparams`` as stored: JSON text when the slot was queued, a mapping once a worker
    has started it (the same setting, with the method's defaults)."""
    if value is None:
        return None
    if isinstance(value, str):
        return dict(json.loads(value))
    return dict(value)


@dataclass(frozen=True)
class Choice:
    """The setting a ``final`` or ``transfer`` slot evaluates, and where it came from."""

    setting: dict[str, Any]
    source_pair: str
    source_trial: int | None = None
    source_val_top1: float | None = None


@dataclass(frozen=True)
class Slot:
    slot: int
    seed: int
    phase: Phase
    cell: str
    recipe: str
    method: str
    choice: Choice | None = None

    def chosen(self, choice: Choice) -> Slot:
        return replace(self, choice=choice)

    def to_user_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "slot": self.slot,
            "seed": self.seed,
            "phase": self.phase.value,
            "cell": self.cell,
            "recipe": self.recipe,
            "method": self.method,
        }
        if self.choice is not None:
            attrs["hparams"] = json.dumps(self.choice.setting, sort_keys=True)
            attrs["source_pair"] = self.choice.source_pair
            for key in ("source_trial", "source_val_top1"):
                if getattr(self.choice, key) is not None:
                    attrs[key] = getattr(self.choice, key)
        return attrs

    @classmethod
    def from_user_attrs(cls, attrs: Mapping[str, Any]) -> Slot:
        setting = decode_setting(attrs.get("hparams"))
        choice = None
        if setting is not None and attrs.get("source_pair") is not None:
            choice = Choice(
                setting,
                str(attrs["source_pair"]),
                attrs.get("source_trial"),
                attrs.get("source_val_top1"),
            )
        return cls(
            slot=int(attrs["slot"]),
            seed=int(attrs["seed"]),
            phase=Phase(attrs["phase"]),
            cell=str(attrs.get("cell", "")),
            recipe=str(attrs.get("recipe", "")),
            method=str(attrs.get("method", "")),
            choice=choice,
        )


@dataclass(frozen=True)
class Attempt:
    """What the worker that starts a trial records first."""

    mlflow_run_id: str
    hparams: dict[str, Any]
    teacher: str
    classes: int

    def to_user_attrs(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Ending:
    """How a trial ended. ``chance`` is the score a diverged run gets (1 / classes)."""

    status: Status
    engine: str
    worker: str
    seconds: float
    reason: str = ""
    chance: float | None = None
    divergence: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    def to_user_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "status": self.status.value,
            "engine": self.engine,
            "worker": self.worker,
            "seconds": self.seconds,
        }
        if self.reason:
            attrs["fail_reason"] = self.reason
        if self.chance is not None:
            attrs["chance"] = self.chance
        attrs.update({DIVERGENCE_PREFIX + k: v for k, v in self.divergence.items()})
        attrs.update(self.metrics)
        return attrs


@dataclass(frozen=True)
class TrialRecord:
    """A stored trial, read back: its slot (None for a trial not queued by the runner), its
    status (None while it waits or runs) and what its attempt recorded."""

    number: int
    state: TrialState
    value: float | None
    slot: Slot | None
    status: Status | None
    hparams: dict[str, Any] | None  # the full setting it trained (or will)
    params: dict[str, Any]  # what the sampler suggested (search trials)
    classes: int | None
    reason: str
    worker: str | None
    mlflow_run_id: str | None
    divergence: dict[str, Any]
    metrics: dict[str, Any]
    withdrawn: bool
    retry_of: int | None

    @classmethod
    def from_trial(cls, t: FrozenTrial) -> TrialRecord:
        attrs = t.user_attrs
        return cls(
            number=t.number,
            state=t.state,
            value=t.value,
            slot=_slot_of(attrs),
            status=status_of_trial(t),
            hparams=decode_setting(attrs.get("hparams")),
            params=dict(t.params),
            classes=int(attrs["classes"]) if attrs.get("classes") else None,
            reason=str(attrs.get("fail_reason", "")),
            worker=str(attrs["worker"]) if attrs.get("worker") else None,
            mlflow_run_id=attrs.get("mlflow_run_id") or None,
            divergence={
                k.removeprefix(DIVERGENCE_PREFIX): v
                for k, v in attrs.items()
                if k.startswith(DIVERGENCE_PREFIX)
            },
            metrics={k: v for k, v in attrs.items() if k.startswith(METRIC_PREFIXES)},
            withdrawn=bool(t.system_attrs.get("withdrawn")),
            retry_of=t.system_attrs.get("failed_trial"),
        )


def _slot_of(attrs: Mapping[str, Any]) -> Slot | None:
    """The runner's slot; None for a trial it did not queue (no slot, or a foreign phase)."""
    if "slot" not in attrs or attrs.get("phase") not in _PHASES:
        return None
    return Slot.from_user_attrs(attrs)


_PHASES = frozenset(p.value for p in Phase)
_KNOWN = frozenset(s.value for s in Status)


def status_of_trial(t: FrozenTrial) -> Status | None:
    """A finished trial's status; None while it waits or runs."""
    if t.state == TrialState.COMPLETE:
        written = t.user_attrs.get("status", Status.COMPLETE.value)
        # A status this version does not know (a trial added by hand) is missing data.
        return Status(written) if written in _KNOWN else Status.FAILED
    if t.state == TrialState.FAIL:
        return Status.FAILED
    if t.state == TrialState.PRUNED:
        return Status.PRUNED
    return None
