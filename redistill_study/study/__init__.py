"""The study runner: the plan (cells, units, phases), the trial queue over the Optuna storage,
the worker loop, and the read-only results seam."""

from .phases import EVALUATION_PHASES, Phase
from .plan import Arms, Cell, Plan, Unit, build_plan
from .results import Results, read_results
from .runner import Interrupted, RunOptions, StudyRunner

__all__ = [
    "EVALUATION_PHASES",
    "Arms",
    "Cell",
    "Interrupted",
    "Phase",
    "Plan",
    "Results",
    "RunOptions",
    "StudyRunner",
    "Unit",
    "build_plan",
    "read_results",
]
