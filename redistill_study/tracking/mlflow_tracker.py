"""MLflow tracking through the explicit client API (several runs are open at once in a cohort).

One experiment per study, one parent run per invocation, one child run per trial.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from .._util import first_line
from ..errors import UserError, redact_url

MAX_PARAM_LENGTH = 6000
# MLflow 3's UI opens an experiment without this tag on its GenAI traces view; with it, on the
# table of training runs.
EXPERIMENT_KIND, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"

# Stable names other code and users rely on.
PARAM_KEYS = (
    "pair",
    "teacher",
    "student",
    "dataset",
    "method",
    "noise.kind",
    "noise.level",
    "seed",
)


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # Fail fast on an unreachable tracking server instead of minutes of back-off.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Tracker:
    """A thin, explicit wrapper over ``mlflow.MlflowClient`` for one study's experiment."""

    def __init__(
        self, tracking_uri: str, experiment: str, artifact_root: Path | None = None
    ) -> None:
        from mlflow import MlflowClient

        _quiet_mlflow()  # after the import: mlflow sets its own log levels when imported

        self.tracking_uri = tracking_uri
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri)
            self.experiment_id = self._experiment(experiment, artifact_root)
        except Exception as exc:  # any store failure: the message must not leak credentials
            first = first_line(exc)
            raise UserError(
                f"MLflow tracking store {redact_url(tracking_uri)} is not usable: "
                f"{redact_url(first)[:300]}"
            ) from None

    def _experiment(self, name: str, artifact_root: Path | None) -> str:
        # Workers starting together race to create the store and the experiment: retry.
        for attempt in range(5):
            try:
                found = self.client.get_experiment_by_name(name)
                if found is not None:
                    if found.tags.get(EXPERIMENT_KIND) != TRAINING_KIND:
                        self.client.set_experiment_tag(
                            found.experiment_id, EXPERIMENT_KIND, TRAINING_KIND
                        )
                    return found.experiment_id
                location = artifact_root.resolve().as_uri() if artifact_root else None
                return self.client.create_experiment(
                    name, artifact_location=location, tags={EXPERIMENT_KIND: TRAINING_KIND}
                )
            except Exception:
                if attempt == 4:
                    raise
                time.sleep(0.5 + attempt)
        raise AssertionError("unreachable")

    def start_run(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> str:
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(k, float(v), stamp, step) for k, v in metrics.items()]
        if items:
            self.client.log_batch(run_id, metrics=items)

    def log_metric_steps(self, run_id: str, steps: list[tuple[int, dict[str, float]]]) -> None:
        """Many steps' metrics in as few writes as MLflow allows (1,000 metrics a batch)."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(k, float(v), stamp, step) for step, ms in steps for k, v in ms.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i : i + 1000])

    def log_dataset(self, run_id: str, name: str, digest: str, source: str, context: str) -> None:
        """Attach the data set to the run as an MLflow dataset input (shown in the UI)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest, source_type="local", source=source)
        tag = InputTag(key="mlflow.data.context", value=context)
        self.client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset, tags=[tag])])

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def runs(self, filter_string: str = "") -> list[Any]:
        return self.client.search_runs(
            [self.experiment_id], filter_string=filter_string, max_results=50_000
        )

    def ui_command(self) -> str:
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"open {redact_url(self.tracking_uri)}  (experiment id {self.experiment_id})"
        return f"mlflow ui --backend-store-uri {redact_url(self.tracking_uri)} --host 127.0.0.1"


def _param_value(value: Any) -> str:
    text = f"{value:.10g}" if isinstance(value, float) else str(value)
    return text[:MAX_PARAM_LENGTH]
