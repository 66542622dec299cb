"""MLflow tracking through the explicit client API (several runs are open at once in a cohort).

One experiment per study, one parent run per invocation, one child run per trial. Every call to
the tracking store goes through a :class:`Patience`: a server that restarts is waited for.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .._patience import DEFAULT_LIMIT, Patience, is_transient, opening
from .._util import first_line
from ..errors import StoreUnreachable, UserError, redact_url
from .links import open_lines

T = TypeVar("T")
CREATE_KEY = "redistill.create_key"  # finds a run whose creation answer was lost

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
    # Fail fast on an unreachable tracking server: the Patience waits, with one line, instead
    # of minutes of silent back-off inside each request.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Its database layer logs every failed query with a traceback before raising it; the
    # exception is what counts (an outage is waited for, in one line, by the Patience).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


class Tracker:
    """A thin, explicit wrapper over ``mlflow.MlflowClient`` for one study's experiment."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_root: Path | None = None,
        limit: float = DEFAULT_LIMIT,
        slow_after: float | None = None,
    ) -> None:
        """Every call waits out an outage of up to ``limit`` seconds; ``slow_after``: see
        :class:`Patience`."""
        from mlflow import MlflowClient

        _quiet_mlflow()  # after the import: mlflow sets its own log levels when imported

        self.tracking_uri = tracking_uri
        what = f"MLflow tracking store {redact_url(tracking_uri)}"
        self.patience = Patience(what, limit, slow_after=slow_after)
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri)
            self.experiment_id = opening(what).call(
                lambda: self._experiment(experiment, artifact_root)
            )
        except StoreUnreachable as exc:
            raise UserError(f"{exc}; check the URI and that the server is up") from None
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
            except Exception as exc:
                if attempt == 4 or is_transient(exc):  # an outage is the patience's to wait
                    raise
                time.sleep(0.5 + attempt)
        raise AssertionError("unreachable")

    def _call(self, fn: Callable[[], T], wait: bool = True) -> T:
        return self.patience.call(fn, wait=wait)

    def start_run(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> str:
        key = uuid.uuid4().hex
        all_tags = {**(tags or {}), CREATE_KEY: key}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        tried = False

        def create() -> str:
            nonlocal tried
            if tried:  # the previous attempt may have created it before the line dropped
                found = self.client.search_runs(
                    [self.experiment_id], f"tags.`{CREATE_KEY}` = '{key}'", max_results=1
                )
                if found:
                    return str(found[0].info.run_id)
            tried = True
            run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
            return str(run.info.run_id)

        run_id = self._call(create)
        if params:
            self.log_params(run_id, params)
        return run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._batch(run_id, params=items[i : i + 100])

    def _batch(self, run_id: str, wait: bool = True, **items: Any) -> None:
        def log() -> None:
            try:
                self.client.log_batch(run_id, **items)
            except Exception as exc:
                # A retried batch of parameters the lost attempt already wrote: MLflow refuses
                # to log a parameter twice even with the same value.
                if "already logged" in str(exc) or "Changing param values" in str(exc):
                    return
                raise

        self._call(log, wait=wait)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(k, float(v), stamp, step) for k, v in metrics.items()]
        if items:
            self._batch(run_id, metrics=items)

    def log_metric_steps(self, run_id: str, steps: list[tuple[int, dict[str, float]]]) -> None:
        """Many steps' metrics in as few writes as MLflow allows (1,000 metrics a batch)."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(k, float(v), stamp, step) for step, ms in steps for k, v in ms.items()]
        for i in range(0, len(items), 1000):
            self._batch(run_id, metrics=items[i : i + 1000])

    def log_dataset(self, run_id: str, name: str, digest: str, source: str, context: str) -> None:
        """Attach the data set to the run as an MLflow dataset input (shown in the UI)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest, source_type="local", source=source)
        tag = InputTag(key="mlflow.data.context", value=context)
        inputs = [DatasetInput(dataset=dataset, tags=[tag])]

        def log() -> None:
            try:
                self.client.log_inputs(run_id, datasets=inputs)
            except Exception as exc:
                if not _lost_the_dataset_race(exc):
                    raise
                # Another worker's run created the same data set at the same moment (the
                # server's get-or-create is not atomic): it exists now, so link to it.
                self.client.log_inputs(run_id, datasets=inputs)

        self._call(log)

    def set_tags(self, run_id: str, tags: dict[str, Any], wait: bool = True) -> None:
        from mlflow.entities import RunTag

        self._batch(run_id, wait=wait, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._call(lambda: self.client.set_terminated(run_id, status=status))

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self._call(lambda: self.client.log_artifact(run_id, str(path), artifact_path))

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        self._call(lambda: self.client.log_artifacts(run_id, str(folder), artifact_path))

    def runs(self, filter_string: str = "") -> list[Any]:
        return self._call(
            lambda: self.client.search_runs(
                [self.experiment_id], filter_string=filter_string, max_results=50_000
            )
        )

    def open_lines(self) -> list[str]:
        """How to open this experiment's training-runs table (see :mod:`.links`)."""
        return open_lines(self.tracking_uri, self.experiment_id)


def _param_value(value: Any) -> str:
    text = f"{value:.10g}" if isinstance(value, float) else str(value)
    return text[:MAX_PARAM_LENGTH]


def _lost_the_dataset_race(exc: Exception) -> bool:
    """The tracking store refused a data set that another run inserted concurrently."""
    text = str(exc)
    return "UNIQUE constraint failed: datasets." in text or (
        "duplicate key value" in text and "datasets" in text
    )
