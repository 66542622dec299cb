"""The study runner: the plan (cells, units, phases), the trial queue over the Optuna storage,
the worker loop, and the read-only results seam.

The names below load on first use, so that reading a plan's phases or arms (as the analysis
does) does not import the runner, Optuna's storages and the trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arms import Arms
    from .phases import EVALUATION_PHASES, Phase, Status
    from .plan import Cell, Plan, Unit, build_plan
    from .records import Evaluation, Search
    from .results import Results, read_results
    from .runner import Interrupted, RunOptions, StudyRunner
    from .session import Session

_HOMES = {
    "Arms": ".arms",
    "EVALUATION_PHASES": ".phases",
    "Phase": ".phases",
    "Status": ".phases",
    "Cell": ".plan",
    "Plan": ".plan",
    "Unit": ".plan",
    "build_plan": ".plan",
    "Evaluation": ".records",
    "Search": ".records",
    "Results": ".results",
    "read_results": ".results",
    "Interrupted": ".runner",
    "RunOptions": ".runner",
    "StudyRunner": ".runner",
    "Session": ".session",
}

__all__ = [
    "EVALUATION_PHASES",
    "Arms",
    "Cell",
    "Evaluation",
    "Interrupted",
    "Phase",
    "Plan",
    "Results",
    "RunOptions",
    "Search",
    "Session",
    "Status",
    "StudyRunner",
    "Unit",
    "build_plan",
    "read_results",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value
