"""The study runner: the plan (cells, units, phases), the Optuna storage and the worker loop."""

from .plan import Cell, Plan, Unit, build_plan
from .runner import Interrupted, RunOptions, StudyRunner

__all__ = ["Cell", "Interrupted", "Plan", "RunOptions", "StudyRunner", "Unit", "build_plan"]
