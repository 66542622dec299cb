"""Faults of the shared infrastructure, with the real servers: a PostgreSQL server stopped and
restarted under two workers, an MLflow tracking server stopped and restarted mid-study, a
SQLite store locked by another process for longer than the busy timeout, and a worker killed
with SIGKILL. Each time the study completes with every slot ended exactly once and every
search with exactly its budget; the workers say what they waited for in one line each way.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from helpers import start_worker, started, tiny_study, write_yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from redistill_study.cli import main

pytestmark = pytest.mark.slow

OUTAGE = 20  # seconds a server is away: longer than the grace period below
# Heartbeats every second and a grace of 10 s: an outage of 20 s leaves every live trial's
# heartbeat older than the grace, so only the order of liveness keeps them from looking dead.
ENV = {"REDISTILL_HEARTBEAT_INTERVAL": "1", "REDISTILL_HEARTBEAT_GRACE": "10"}


def _config(tmp_path: Path, name: str) -> Path:
    data = tiny_study(
        name=name,
        seeds=2,
        cohort_size=2,
        train={"epochs": 8, "batch_size": 32, "lr": 0.05},
    )
    return write_yaml(tmp_path / f"{name}.yaml", data)


def _worker(
    config: Path, out: Path, storage: str, tracking: str, label: str, **env: str
) -> subprocess.Popen:
    return start_worker(config, out, storage, tracking, label, {**ENV, **env})


def _finish(workers: list[subprocess.Popen]) -> list[str]:
    errors = []
    for w in workers:
        # A hang detector, not a speed check: generous enough for a machine several times busier.
        _, err = w.communicate(timeout=1200)
        assert w.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[:3000]
        errors.append(err)
    return errors


def _wait_until_running(storage_url: str, workers: int = 1, timeout: float = 240) -> None:
    """Until a trial is running and each of the ``workers`` has claimed one (so each has opened
    both stores: a store that has never answered a worker is a wrong address, not an outage)."""
    storage = optuna.storages.RDBStorage(storage_url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        running, seen = False, set()
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            for t in study.get_trials(deepcopy=False):
                running |= t.state is TrialState.RUNNING
                seen.add(t.user_attrs.get("worker"))
        if running and len(seen - {None}) >= workers:
            storage.engine.dispose()
            return
        time.sleep(0.2)
    raise AssertionError("the workers did not start")


def _exactly_once(storage_url: str) -> dict[str, int]:
    """Every slot of every unit ended exactly once (a copy replaces what it retries), every
    search ended with exactly its budget; the ended trials per state."""
    storage = optuna.storages.RDBStorage(storage_url)
    states: Counter = Counter()
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        if "planned" not in study.user_attrs:
            continue  # the study's locked protocol, not a unit
        trials = [t for t in study.get_trials() if not t.system_attrs.get("withdrawn")]
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
        latest = [t for t in trials if t.number not in retried]
        per_slot = Counter(t.user_attrs["slot"] for t in latest)
        planned = study.user_attrs["planned"]
        assert sorted(per_slot) == list(range(planned)), (summary.study_name, per_slot)
        assert set(per_slot.values()) == {1}, (summary.study_name, per_slot)
        outcomes = Counter(t.user_attrs["slot"] for t in trials if t.state != TrialState.FAIL)
        assert all(n == 1 for n in outcomes.values()), (summary.study_name, outcomes)
        if summary.study_name.endswith("/search"):
            ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            assert len(ended) == planned, (summary.study_name, len(ended), planned)
        states.update(t.state.name for t in latest)
    storage.engine.dispose()
    return dict(states)


def _no_run_left_running(tracking: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri=tracking)
    exp = client.get_experiment_by_name(experiment)
    deadline = time.time() + 60  # a survivor closes what a dead worker left
    while True:
        runs = client.search_runs([exp.experiment_id], max_results=5000)
        running = [r.info.run_name for r in runs if r.info.status == "RUNNING"]
        if not running or time.time() > deadline:
            break
        time.sleep(1)
    assert not running, running
    names = [r.info.run_name for r in runs if r.data.tags.get("redistill.role") == "trial"]
    assert len(names) == len(set(names)), sorted(names)  # no run created twice
    return runs


def _init(config: Path, out: Path, storage: str, tracking: str) -> None:
    argv = ["init", str(config), "--output", str(out), "--storage", storage]
    assert main([*argv, "--tracking-uri", tracking]) == 0


def test_postgresql_stopped_and_restarted_under_two_workers(tmp_path: Path) -> None:
    from postgres import PostgresCluster, server_binary

    if server_binary("initdb") is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    with started(PostgresCluster, "redistill-pg-outage-") as cluster:
        cluster.create_database("optuna")
        cluster.create_database("mlflow")
        storage, tracking = cluster.url("optuna"), cluster.url("mlflow")
        config, out = _config(tmp_path, "pgout"), tmp_path / "out"
        _init(config, out, storage, tracking)
        workers = [_worker(config, out, storage, tracking, f"w{i}") for i in range(2)]
        _wait_until_running(storage, workers=2)
        cluster.stop()  # SIGINT to the postmaster: `pg_ctl stop -m fast`
        time.sleep(OUTAGE)
        cluster.serve()  # the same data folder and port
        errors = _finish(workers)
        states = _exactly_once(storage)
        _no_run_left_running(tracking, "pgout")
    assert states.get("FAIL", 0) == 0, states  # no live trial was taken for dead
    assert any("Optuna storage" in e and "unreachable since" in e for e in errors), errors
    assert any("back after" in e for e in errors)
    assert "postgres@127.0.0.1" in "".join(errors)  # the server named, without a password


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _mlflow_server(store: str, port: int) -> Iterator[subprocess.Popen]:
    import urllib.request

    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "server did not start"
                time.sleep(0.5)
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def test_mlflow_server_stopped_and_restarted_mid_study(tmp_path: Path) -> None:
    port = _free_port()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = f"http://127.0.0.1:{port}"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    config, out = _config(tmp_path, "mlout"), tmp_path / "out"
    with _mlflow_server(store, port):
        _init(config, out, storage, tracking)
        workers = [_worker(config, out, storage, tracking, f"w{i}") for i in range(2)]
        _wait_until_running(storage, workers=2)
    time.sleep(OUTAGE)  # the server is gone (stopped by the block above)
    with _mlflow_server(store, port):
        errors = _finish(workers)
        states = _exactly_once(storage)
        runs = _no_run_left_running(tracking, "mlout")
    trial_runs = [r for r in runs if r.data.tags.get("redistill.role") == "trial"]
    # Every run closed with its trial's outcome written (none lost in the outage) …
    ended = {"complete": "FINISHED", "diverged": "FAILED", "pruned": "KILLED"}
    assert all(ended[r.data.tags["status"]] == r.info.status for r in trial_runs)
    assert len(trial_runs) == sum(states.values())  # … one run per ended trial, none twice
    assert any("MLflow tracking store" in e and "unreachable since" in e for e in errors)


def test_sqlite_locked_by_another_process_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config, out = _config(tmp_path, "locked"), tmp_path / "out"
    _init(config, out, storage, tracking)
    worker = _worker(config, out, storage, tracking, "w0", REDISTILL_SQLITE_BUSY_TIMEOUT="1")
    _wait_until_running(storage)
    holder = sqlite3.connect(tmp_path / "optuna.db", timeout=60)
    holder.execute("BEGIN EXCLUSIVE")  # no other writer until it ends
    time.sleep(8)
    holder.rollback()
    holder.close()
    (err,) = _finish([worker])
    _exactly_once(storage)
    assert "unreachable since" in err and "database is locked" in err, err[-2000:]
    assert "back after" in err


def test_a_killed_worker_never_changes_a_search_budget(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config, out = _config(tmp_path, "killed"), tmp_path / "out"
    _init(config, out, storage, tracking)
    workers = [_worker(config, out, storage, tracking, f"w{i}") for i in range(2)]
    poll = optuna.storages.RDBStorage(storage)
    deadline, killed = time.time() + 180, False
    while not killed and time.time() < deadline:
        for summary in optuna.get_all_study_summaries(poll):
            if not summary.study_name.endswith("/search"):
                continue
            study = optuna.load_study(study_name=summary.study_name, storage=poll)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if any(t.user_attrs.get("worker") == "w0" for t in running):
                workers[0].send_signal(signal.SIGKILL)
                killed = True
                break
        time.sleep(0.1)
    assert killed, "w0 never ran a search trial"
    workers[0].wait()
    resumed = _worker(config, out, storage, tracking, "w2")
    _finish([workers[1], resumed])
    states = _exactly_once(storage)
    _no_run_left_running(tracking, "killed")
    assert states.get("FAIL", 0) == 0, states
    # The summary has the shape of an undisturbed run's: the same records, row for row.
    reference = tmp_path / "reference"
    assert main(["run", str(config), "--output", str(reference), "--quiet"]) == 0
    assert _shape(reference / "summary.csv") == _shape(_summary(config, out, storage))


def _summary(config: Path, out: Path, storage: str) -> Path:
    assert main(["report", str(config), "--output", str(out), "--storage", storage]) == 0
    return out / "summary.csv"


def _shape(summary: Path) -> list[tuple[str, ...]]:
    """The summary's rows by their keys and counts (the values, and so what diverged, follow
    the order in which two workers fed the search)."""
    import csv

    with summary.open() as f:
        rows = list(csv.DictReader(f))
    keep = ("noise", "method", "pair", "n", "failed")
    return sorted(tuple(r.get(k, "") for k in keep) for r in rows)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_a_full_disk_under_the_output_folder_is_waited_for(tmp_path: Path) -> None:
    mount = Path(tempfile.mkdtemp(prefix="redistill-full-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)]).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        out = mount / "out"
        config = _config(tmp_path, "full")
        storage, tracking = f"sqlite:///{out / 'optuna.db'}", f"sqlite:///{out / 'mlflow.db'}"
        _init(config, out, storage, tracking)
        worker = _worker(config, out, storage, tracking, "w0")
        _wait_until_running(storage)
        filler = mount / "filler"
        with filler.open("wb") as f:  # fill every free byte
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        freed = threading.Timer(10, filler.unlink)
        freed.start()
        (err,) = _finish([worker])
        freed.join()
        _exactly_once(storage)
        assert "unreachable since" in err and "full" in err, err[-2000:]
    finally:
        subprocess.run(["umount", "-l", str(mount)])
        os.rmdir(mount)


def test_a_store_away_past_the_patience_stops_the_worker_with_code_75(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    import redistill_study.study.storage as storage_module

    monkeypatch.setattr(storage_module, "SQLITE_BUSY_TIMEOUT", 0.2)
    config, out = _config(tmp_path, "patience"), tmp_path / "out"
    assert main(["init", str(config), "--output", str(out)]) == 0
    capsys.readouterr()
    holder = sqlite3.connect(out / "optuna.db", timeout=60)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code = main(["run", str(config), "--output", str(out), "--quiet", "--store-patience", "2"])
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert code == 75, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("Optuna storage sqlite:///") and "unreachable since" in lines[0]
    assert lines[-1].startswith("error: Optuna storage") and "exit" not in lines[-1]
    assert "its trials are retried by any worker" in lines[-1]
    assert len(lines) == 2, lines
