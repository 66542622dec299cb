"""Experiment tracking (MLflow): one experiment per study, a parent run per invocation,
a child run per trial."""

from .links import experiment_id, open_lines, runs_url
from .mlflow_tracker import PARAM_KEYS, Tracker

__all__ = ["PARAM_KEYS", "Tracker", "experiment_id", "open_lines", "runs_url"]
