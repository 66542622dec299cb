"""The MLflow UI and optuna-dashboard as views of a finished study, served for real on
127.0.0.1 and read the way a person's browser reads them."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import CHROMIUM_FLAGS, tiny_study, write_yaml

from redistill_study.cli import main

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _post(url: str, body: dict) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def _serve(cmd: list[str], probe: str, timeout: float = 120) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-2000:])
        try:
            _get(probe)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise TimeoutError(f"{cmd[0]} did not answer {probe}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ui")
    config = write_yaml(
        base / "ui.yaml",
        tiny_study(
            name="ui",
            seeds=2,
            noise=[{"kind": "none"}],
            methods=[
                {"name": "kd"},
                {"name": "redistill"},
                {"name": "redistill_tuned", "trials": 2},
            ],
            train={"epochs": 1, "batch_size": 64, "lr": 0.05},
        ),
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", str(config), "--output", str(base / "out"), "--quiet"]) == 0
    (base / "out" / "printed.txt").write_text(printed.getvalue())
    return base / "out"


def _printed_runs_url(finished: Path) -> str:
    """The address `run` told the user to open."""
    found = re.search(
        r"then open (http://127\.0\.0\.1:5000/\S+)", (finished / "printed.txt").read_text()
    )
    assert found, (finished / "printed.txt").read_text()
    return found[1]


def test_optuna_dashboard_lists_the_studies_with_the_named_objective(finished: Path) -> None:
    port = _free_port()
    url = f"sqlite:///{finished / 'optuna.db'}"
    proc = _serve(
        [
            str(Path(sys.executable).parent / "optuna-dashboard"),
            url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        f"http://127.0.0.1:{port}/api/studies",
    )
    try:
        studies = json.loads(_get(f"http://127.0.0.1:{port}/api/studies"))["study_summaries"]
        names = {s["study_name"]: s["study_id"] for s in studies}
        unit = next(n for n in names if n.endswith("/redistill/seeds"))
        detail = json.loads(_get(f"http://127.0.0.1:{port}/api/studies/{names[unit]}"))
        assert detail["objective_names"] == ["val/top1"]
        attrs = [{a["key"]: a["value"] for a in t["user_attrs"]} for t in detail["trials"]]
        assert attrs and all("test/top1" in a for a in attrs)  # visible beside the objective
    finally:
        _stop(proc)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_mlflow_ui_opens_on_the_training_runs_with_test_top1(finished: Path) -> None:
    from mlflow import MlflowClient

    store = f"sqlite:///{finished / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("ui")
    children = client.search_runs(
        [experiment.experiment_id], "tags.`redistill.role` = 'trial'", max_results=500
    )
    port = _free_port()
    proc = _serve(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        f"http://127.0.0.1:{port}/health",
    )
    try:
        api = json.loads(
            _get(
                f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id="
                f"{experiment.experiment_id}"
            )
        )
        tags = {t["key"]: t["value"] for t in api["experiment"]["tags"]}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        # The address `run` printed, on this server's port (`mlflow ui` defaults to 5000).
        page = _printed_runs_url(finished).replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        assert page.endswith(f"/#/experiments/{experiment.experiment_id}/runs")
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(
                [
                    CHROMIUM,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "--window-size=1600,1200",
                    "--virtual-time-budget=20000",
                    "--dump-dom",
                    page,
                ],
                capture_output=True,
                text=True,
                timeout=180,
            ).stdout
        # The training-runs table (not the GenAI traces overview), counting every run of the
        # study: the invocation and, nested under it, each trial's run.
        assert "Training runs" in dom
        assert f"<strong>{len(children) + 1}</strong> matching runs" in dom
        # Each evaluation run carries test/top1 for the table's metric columns.
        listed = json.loads(
            _post(
                f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
                {
                    "experiment_ids": [experiment.experiment_id],
                    "filter": "params.phase = 'seeds'",
                    "max_results": 500,
                },
            )
        )["runs"]
        assert listed and all(
            any(m["key"] == "test/top1" for m in r["data"]["metrics"]) for r in listed
        )
    finally:
        _stop(proc)
