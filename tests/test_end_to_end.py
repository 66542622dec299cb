"""The whole pipeline on a tiny study, against the real Optuna and MLflow stores."""

from __future__ import annotations

import contextlib
import csv
import gc
import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest
from helpers import tiny_study, write_yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from redistill_study.cli import main
from redistill_study.errors import UserError
from redistill_study.study.attrs import TrialRecord
from redistill_study.study.storage import open_storage_readonly, sqlite_url, use_write_ahead_log
from redistill_study.tracking import PARAM_KEYS

pytestmark = pytest.mark.slow


def _studies(storage: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    out = {}
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        out[summary.study_name] = study.get_trials(deepcopy=False)
    return out


def test_tiny_study_end_to_end_then_resume(tiny_config: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["run", str(tiny_config), "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "mlflow ui --backend-store-uri sqlite:///" in printed
    assert "then open http://127.0.0.1:5000/#/experiments/1/runs" in printed  # the runs table
    assert "redistill − kd" in printed

    storage = f"sqlite:///{out / 'optuna.db'}"
    studies = _studies(storage)
    # 2 pairs × 2 noise cells × (kd, redistill + tuned search, final and transfer) = 20 units,
    # ce once per pair (it ignores the teacher) = 2, and the study's locked protocol.
    assert len(studies) == 23 and "tiny/_protocol" in studies
    seeds_units = [n for n in studies if n.endswith("/seeds")]
    search_units = [n for n in studies if n.endswith("/search")]
    final_units = [n for n in studies if n.endswith("/final")]
    transfer_units = [n for n in studies if n.endswith("/transfer")]
    assert (len(seeds_units), len(search_units), len(final_units), len(transfer_units)) == (
        10,
        4,
        4,
        4,
    )
    for name in seeds_units + final_units + transfer_units:
        trials = studies[name]
        assert sorted(t.user_attrs["seed"] for t in trials) == [0, 1]
        assert all(t.state == TrialState.COMPLETE for t in trials)
        for t in trials:  # a diverged run is complete at chance, with its reason
            if t.user_attrs["status"] == "complete":
                assert "test/top1" in t.user_attrs
            else:
                assert t.user_attrs["status"] == "diverged" and t.value == 0.1
                assert "non-finite" in t.user_attrs["fail_reason"]
    for name in search_units:
        trials = studies[name]
        assert len(trials) == 3
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        # Search seeds are disjoint from the evaluation seeds.
        assert {t.user_attrs["seed"] for t in trials} == {10_000}
        # Large λ can genuinely blow up training: such a trial scores chance, reason recorded.
        assert all(
            "non-finite" in t.user_attrs["fail_reason"] and t.value == 0.1
            for t in trials
            if t.user_attrs.get("status") == "diverged"
        )
        # Tuning never touches the test split.
        assert not any(k.startswith("test/") for t in trials for k in t.user_attrs)
        assert all(-2.0 <= t.params["lam"] <= 1.5 for t in trials)

    # Phase ordering: a final or transfer trial starts only after the searches it depends on
    # ended; transfer uses only the other pair's search.
    for name in final_units + transfer_units:
        _, pair, noise, recipe, method, phase = name.split("/")
        other = "mlp-b" if pair == "mlp-a" else "mlp-a"
        source_pair = other if phase == "transfer" else pair
        source = studies[f"tiny/{source_pair}/{noise}/{recipe}/{method}/search"]
        last_search = max(t.datetime_complete for t in source)
        for t in studies[name]:
            assert t.user_attrs["source_pair"] == source_pair
            assert t.datetime_start >= last_search
            if phase == "final":
                chosen = next(s for s in source if s.number == t.user_attrs["source_trial"])
                assert t.user_attrs["hparams"] == chosen.user_attrs["hparams"]
                done = [s for s in source if s.state == TrialState.COMPLETE]
                assert chosen.value == max(s.value for s in done)
            else:  # the smoothed choice over the other pair: inside the searched range
                assert -2.0 <= t.user_attrs["hparams"]["lam"] <= 1.5
    # The test split is read only by evaluation phases, and only after training.
    assert (out / "dashboard" / "index.html").is_file()
    assert "verdict:" in printed

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("redistill.role") == "invocation"]
    children = [r for r in runs if r.data.tags.get("redistill.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    n_trials = sum(len(v) for v in studies.values())
    assert len(children) == n_trials
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    names = [r.info.run_name for r in children]
    assert len(set(names)) == len(names)  # unique, readable run names
    # MLflow 3's UI opens the experiment on its training-runs table, with the data set attached.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert all(r.inputs.dataset_inputs[0].dataset.name == "digits" for r in children)
    assert parents[0].data.params["threads"] and parents[0].data.params["verdict.margin"]
    # The verdict itself, per fixed arm, is a metric of the invocation's run.
    assert parents[0].data.params["verdict.failure_margin"] and "verdict.min_students" in (
        parents[0].data.params
    )
    assert parents[0].data.metrics["verdict/redistill/outcome"] in (0, 1, 2)
    assert "verdict/redistill/failing_pairs" in parents[0].data.metrics
    for run in children:
        assert set(PARAM_KEYS) <= set(run.data.params)
        # The teacher's training seed is a param of its own (the tiny study's teachers use
        # the study seed), the same number as in the teacher's identity.
        assert run.data.params["teacher.seed"] == "0"
        assert run.data.params["teacher.id"].endswith("#0")
        if run.data.params["method"] != "ce":
            assert "lam" in run.data.params
        assert " / " in run.info.run_name
        if run.data.tags.get("status") == "complete":
            assert {
                "val/top1",
                "teacher/clean_top1",
                "teacher/noisy_top1",
                "teacher/ece",
                "teacher/kl_noisy_clean",
                "teacher/wrong_fraction",
            } <= set(run.data.metrics)
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert len(history) >= 1
    evaluated = [
        r
        for r in children
        if r.data.params["phase"] != "search" and r.data.tags.get("status") == "complete"
    ]
    assert all({"test/top1", "test/nll", "test/ece"} <= set(r.data.metrics) for r in evaluated)
    artifacts = [a.path for a in client.list_artifacts(parents[0].info.run_id)]
    assert "summary.csv" in artifacts and "dashboard" in artifacts
    dashboard_files = [a.path for a in client.list_artifacts(parents[0].info.run_id, "dashboard")]
    assert "dashboard/index.html" in dashboard_files

    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {
        "ce",
        "kd",
        "redistill",
        "redistill_tuned",
        "redistill_tuned (transferred)",
    }
    assert {r["noise"] for r in rows} == {"none", "confident_wrong=0.3"}
    assert all(r["n"] == "2" for r in rows)
    noisy = [r for r in rows if r["noise"] != "none"]
    assert all(float(r["teacher_kl_noisy_clean"]) > 0 for r in noisy)
    assert all(float(r["teacher_wrong_fraction"]) >= 0.29 for r in noisy)
    kd_rows = [r for r in rows if r["method"] == "kd"]
    assert all(float(r["delta_vs_reference"]) == 0.0 for r in kd_rows)

    # A second invocation resumes: nothing is trained again.
    assert main(["run", str(tiny_config), "--output", str(out), "--quiet"]) == 0
    assert "trained 0 trial(s)" in capsys.readouterr().out
    assert sum(len(v) for v in _studies(storage).values()) == n_trials

    # `report` reads the stores and redraws the same verdict without writing to them. The
    # write-ahead log is folded into the files first: otherwise a checkpoint run when the last
    # invocation's connections are collected (a matter of timing) would change their bytes.
    def settled() -> dict[str, str]:
        gc.collect()
        for db in out.glob("*.db"):
            with contextlib.closing(sqlite3.connect(db)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("*.db")}

    before = settled()
    assert main(["report", "--output", str(out)]) == 0
    reported = capsys.readouterr().out
    verdict_line = next(line for line in printed.splitlines() if line.startswith("verdict:"))
    assert verdict_line in reported
    assert "then open http://127.0.0.1:5000/#/experiments/1/runs" in reported
    assert before == settled()  # the experiment's id was read without writing

    # The stores keep SQLite's write-ahead log (one sync per commit, readers never block the
    # writer), and a copy of the results in a folder nobody may write to still reports.
    for db in ("optuna.db", "mlflow.db"):
        with contextlib.closing(sqlite3.connect(out / db)) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    shutil.copy(out / "study.yaml", frozen / "study.yaml")
    for name in ("optuna.db", "mlflow.db"):  # copied as SQLite copies a live database
        with (
            contextlib.closing(sqlite3.connect(out / name)) as source,
            contextlib.closing(sqlite3.connect(frozen / name)) as copy,
        ):
            source.backup(copy)
    with _unwritable(frozen):
        assert main(["report", "--output", str(frozen)]) == 0
    reported = capsys.readouterr().out
    assert (
        verdict_line in reported and "not writable: summary and dashboard not written" in reported
    )


@contextlib.contextmanager
def _unwritable(folder: Path):
    """A folder no process may write to: immutable for root (chattr), read-only otherwise."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("this file system has no immutable attribute")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        assert not os.access(folder, os.W_OK)
        yield
    finally:
        subprocess.run(undo, check=True)


def _one_seed_two_methods() -> dict:
    """The tiny study cut to one seed, one noise setting, kd and redistill, one epoch."""
    return tiny_study(
        seeds=1,
        methods=[{"name": "kd"}, {"name": "redistill"}],
        noise=[{"kind": "none"}],
        train={"epochs": 1, "batch_size": 64, "lr": 0.05},
    )


def test_the_declared_question_cannot_change_on_resume(tmp_path: Path, capsys) -> None:
    data = _one_seed_two_methods()
    config = write_yaml(tmp_path / "q.yaml", data)
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    write_yaml(config, {**data, "verdict": {"margin": 0.02}})
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "verdict.margin: 0.02 differs from 0.01" in err and len(err.strip().splitlines()) == 1


def test_workers_flag_forwards_the_arguments_and_summarises_from_the_stores(
    tmp_path: Path, capsys
) -> None:
    data = _one_seed_two_methods()
    config = write_yaml(tmp_path / "w.yaml", data)
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--workers", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "verdict:" in printed and (out / "summary.csv").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    workers = {
        r.data.tags.get("redistill.host")
        for r in runs
        if r.data.tags.get("redistill.role") == "invocation"
    }
    invocations = [r for r in runs if r.data.tags.get("redistill.role") == "invocation"]
    assert len(invocations) == 2 and workers  # the two workers; the summary wrote nothing there


def test_a_store_whose_last_commits_are_in_its_log_is_not_read_as_immutable(tmp_path: Path):
    # A live store copied with `cp` (its -wal, not its -shm) into a folder nobody may write
    # to: read as an immutable file it would silently miss the commits still in the log.
    live = tmp_path / "live.db"
    writer = sqlite3.connect(live)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (1)")
    writer.commit()
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    shutil.copy(live, frozen / "optuna.db")
    shutil.copy(tmp_path / "live.db-wal", frozen / "optuna.db-wal")
    writer.close()
    assert (frozen / "optuna.db-wal").stat().st_size > 0
    with _unwritable(frozen), pytest.raises(UserError, match=r"\.backup"):
        open_storage_readonly(sqlite_url(frozen / "optuna.db"))


def test_a_store_busy_at_start_keeps_its_journal_until_a_later_start(tmp_path: Path):
    path = tmp_path / "optuna.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")  # another worker in the middle of a write
    other.execute("INSERT INTO t VALUES (1)")
    use_write_ahead_log(sqlite_url(path), wait=0.1)  # no error: the switch waits for later
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    other.execute("COMMIT")
    other.close()
    use_write_ahead_log(sqlite_url(path), wait=0.1)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_study_with_two_claims_decides_and_records_each(tmp_path: Path, capsys) -> None:
    data = tiny_study()
    data["methods"] = [
        {"name": "ce"},
        {"name": "kd"},
        {"name": "kd_tuned", "method": "kd", "tune": True, "search": ["T"], "trials": 3},
        {"name": "redistill"},
        {"name": "redistill_tuned", "trials": 3},
    ]
    data["verdict"] = {
        "margin": 0.02,
        "claims": [
            {
                "name": "lambda",
                "fixed": "redistill",
                "searched": "redistill_tuned",
                "reference": "kd",
            },
            {"name": "kd_T4", "fixed": "kd", "searched": "kd_tuned", "reference": "ce"},
        ],
    }
    config = write_yaml(tmp_path / "claims.yaml", data)
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "claims: 2, Bonferroni across them" in printed
    assert "claim lambda (redistill vs redistill_tuned, reference kd; α = " in printed
    assert "claim kd_T4 (kd vs kd_tuned, reference ce; α = " in printed
    # kd_tuned's searches sampled T alone; its final runs evaluate the best T with the rest at
    # KD's defaults.
    storage = f"sqlite:///{out / 'optuna.db'}"
    studies = _studies(storage)
    searches = [t for n, ts in studies.items() if "/kd_tuned/search" in n for t in ts]
    assert searches and all(set(t.params) == {"T"} for t in searches)
    tried = {t.params["T"] for t in searches}
    for name in (n for n in studies if "/kd_tuned/final" in n or "/kd_tuned/transfer" in n):
        for t in studies[name]:
            setting = TrialRecord.from_trial(t).hparams
            assert setting["w_kd"] == 0.9 and setting["w_ce"] == 0.1 and setting["lam"] == 0.0
            if name.endswith("/final"):
                assert setting["T"] in tried  # its own pair's best
            else:
                assert 1.0 <= setting["T"] <= 8.0  # chosen from the other pair's curve
    # The invocation's run carries every claim's arms and outcome.
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("redistill.role") == "invocation"]
    assert parent.data.params["verdict.claim.kd_T4"] == "kd vs kd_tuned, ref ce"
    assert {"verdict/lambda/redistill/outcome", "verdict/kd_T4/kd/outcome"} <= set(
        parent.data.metrics
    )
    # The report, read back from the stores, decides the same; design sizes every claim.
    assert main(["report", "--output", str(out)]) == 0
    reported = capsys.readouterr().out
    assert reported.count("claim kd_T4 (") == 1 and reported.count("claim lambda (") == 1
    assert main(["design", str(config), "--from-output", str(out), "--sims", "50"]) == 0
    designed = capsys.readouterr().out
    assert "2 claims, Bonferroni across them: each is simulated at α/2 = 0.025" in designed
    assert "claim kd_T4 (kd vs kd_tuned):" in designed and designed.count("estimated from") == 2
