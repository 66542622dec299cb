"""The study runner: the plan (cells, units, phases), the trial queue over the Optuna storage,
the worker loop, and the read-only results seam."""

from .phases import EVALUATION_PHASES, Phase, Status
from .plan import Arms, Cell, Plan, Unit, build_plan
from .records import Evaluation, Search
from .results import Results, read_results
from .runner import Interrupted, RunOptions, StudyRunner
from .session import Session

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
