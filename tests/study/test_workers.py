"""Many workers, one study, over every storage backend: SQLite and a real PostgreSQL server.

Three worker processes share a tiny study; one is killed with SIGKILL mid-trial. The study still
completes, every trial key is COMPLETE exactly once, nothing is left RUNNING in Optuna or MLflow,
and the results equal an undisturbed single-worker run with the same seeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from helpers import start_worker, tiny_study, write_yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from redistill_study.cli import main

pytestmark = pytest.mark.slow

# A grace of 15 heartbeats: a live worker on a loaded machine (three workers and the watcher
# queueing on one SQLite write lock) must not look dead; the killed one is found well in time.
ENV = {"REDISTILL_HEARTBEAT_INTERVAL": "1", "REDISTILL_HEARTBEAT_GRACE": "15"}


def _study(tmp_path: Path) -> Path:
    data = tiny_study(
        name="coop",
        seeds=2,
        cohort_size=1,
        methods=[{"name": "ce"}, {"name": "kd"}, {"name": "redistill"}],
        train={"epochs": 4, "batch_size": 32, "lr": 0.05},
    )
    data["pairs"] = data["pairs"][:1]
    return write_yaml(tmp_path / "coop.yaml", data)


def _results(url: str) -> tuple[dict, Counter, list]:
    results, complete, leftovers = {}, Counter(), []
    storage = optuna.storages.RDBStorage(url)
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            key = (summary.study_name, t.user_attrs["slot"])
            if t.state == TrialState.COMPLETE:
                complete[key] += 1
                results[key] = t.user_attrs["test/top1"]
            elif t.state in (TrialState.RUNNING, TrialState.WAITING):
                leftovers.append(key)
    return results, complete, leftovers


def _worker(config: Path, out: Path, storage: str, tracking: str, label: str) -> subprocess.Popen:
    return start_worker(config, out, storage, tracking, label, ENV)


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path: Path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    cluster = request.getfixturevalue("postgres")
    name = f"coop_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    cluster.create_database(f"{name}_optuna")
    cluster.create_database(f"{name}_mlflow")
    return cluster.url(f"{name}_optuna"), cluster.url(f"{name}_mlflow")


def test_workers_cooperate_and_survive_a_killed_worker(stores, tmp_path: Path) -> None:
    storage, tracking = stores
    config = _study(tmp_path)

    # The undisturbed reference: one worker, its own SQLite stores.
    ref_out = tmp_path / "reference"
    assert main(["run", str(config), "--output", str(ref_out), "--quiet"]) == 0
    reference, _, _ = _results(f"sqlite:///{ref_out / 'optuna.db'}")
    assert len(reference) == 10  # ce once (it ignores the teacher), kd and redistill per cell

    out = tmp_path / "shared"
    # Create the stores once (as `run --workers` does), then start three workers.
    assert (
        main(
            [
                "init",
                str(config),
                "--output",
                str(out),
                "--storage",
                storage,
                "--tracking-uri",
                tracking,
            ]
        )
        == 0
    )
    workers = [_worker(config, out, storage, tracking, f"worker-{i}") for i in range(3)]
    victim = workers[0]
    deadline = time.time() + 120
    killed = False
    poll = optuna.storages.RDBStorage(storage)  # one connection pool for the whole watch
    while time.time() < deadline and not killed:
        for summary in optuna.get_all_study_summaries(poll):
            study = optuna.load_study(study_name=summary.study_name, storage=poll)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if any(t.user_attrs.get("worker") == "worker-0" for t in running):
                victim.send_signal(signal.SIGKILL)
                killed = True
                break
        time.sleep(0.2)
    assert killed, "worker-0 never ran a trial"
    for w in workers[1:]:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-2000:]
    victim.wait()

    results, complete, leftovers = _results(storage)
    assert not leftovers
    assert set(complete) == set(results) and len(complete) == 10
    assert all(n == 1 for n in complete.values())  # lost 0, duplicated 0
    assert {k[0].split("/", 1)[1] for k in results} == {k[0].split("/", 1)[1] for k in reference}
    for (name, slot), value in results.items():
        assert value == reference[(name, slot)]

    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("coop")
    # The killed worker's runs are closed by the survivors' heartbeat checks.
    deadline = time.time() + 90
    while True:
        runs = client.search_runs([experiment.experiment_id], max_results=5000)
        running = [r for r in runs if r.info.status == "RUNNING"]
        if not running or time.time() > deadline:
            break
        time.sleep(1)
    assert not running, [(r.info.run_name, r.data.tags.get("redistill.role")) for r in running]
    killed_runs = [r for r in runs if r.info.status == "KILLED"]
    assert any(r.data.tags.get("fail_reason") == "worker stopped heartbeating" for r in killed_runs)
    # A retried trial's run says whose retry it is: every trial run keeps a name of its own.
    names = [r.info.run_name for r in runs if r.data.tags.get("redistill.role") == "trial"]
    assert len(names) == len(set(names)), sorted(names)
