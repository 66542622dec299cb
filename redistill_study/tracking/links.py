"""Where to look at a study's runs: the URL of the experiment's training-runs table.

MLflow 3 opens an experiment on a tab its browser profile last used (a fresh profile: the GenAI
overview, whatever the experiment's kind); the ``/runs`` route opens the training-runs table
directly.

>>> runs_url("http://127.0.0.1:5000/", "7")
'http://127.0.0.1:5000/#/experiments/7/runs'
>>> open_lines("sqlite:///out/mlflow.db", "7")[1]
'then open http://127.0.0.1:5000/#/experiments/7/runs'
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from ..errors import redact_url

LOCAL_PORT = 5000  # `mlflow ui`'s own default


def runs_url(server: str, experiment_id: str) -> str:
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs"


def open_lines(tracking_uri: str, experiment_id: str | None) -> list[str]:
    """What to run and open to see the runs: the URL for a server, the `mlflow ui` command and
    then the URL for a local store."""
    if tracking_uri.startswith(("http://", "https://")):
        server = redact_url(tracking_uri)
        return [runs_url(server, experiment_id) if experiment_id else server]
    command = (
        f"mlflow ui --backend-store-uri {redact_url(tracking_uri)} --host 127.0.0.1 "
        f"--port {LOCAL_PORT}"
    )
    server = f"http://127.0.0.1:{LOCAL_PORT}"
    return [command, f"then open {runs_url(server, experiment_id) if experiment_id else server}"]


def experiment_id(tracking_uri: str, name: str) -> str | None:
    """The study's experiment id, read without writing: a local SQLite store through a
    read-only connection, anything else through the client's read API; None if absent."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():
            return None
        try:
            uri = f"file:{path.resolve()}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                row = conn.execute(
                    "SELECT experiment_id FROM experiments WHERE name = ?", (name,)
                ).fetchone()
        except sqlite3.Error:
            return None
        return str(row[0]) if row else None
    try:
        from mlflow import MlflowClient

        found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    except Exception:  # an unreachable server: the link is a convenience, not the result
        return None
    return found.experiment_id if found is not None else None
