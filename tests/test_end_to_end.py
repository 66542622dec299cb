"""The whole pipeline on a tiny study, against the real Optuna and MLflow stores."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from redistill_study.cli import main
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
    assert "redistill − kd" in printed

    storage = f"sqlite:///{out / 'optuna.db'}"
    studies = _studies(storage)
    # 2 pairs × 2 noise cells × (3 fixed methods + tuned search, final and transfer) = 24 units.
    assert len(studies) == 24
    seeds_units = [n for n in studies if n.endswith("/seeds")]
    search_units = [n for n in studies if n.endswith("/search")]
    final_units = [n for n in studies if n.endswith("/final")]
    transfer_units = [n for n in studies if n.endswith("/transfer")]
    assert (len(seeds_units), len(search_units), len(final_units), len(transfer_units)) == (
        12,
        4,
        4,
        4,
    )
    for name in seeds_units + final_units + transfer_units:
        trials = studies[name]
        assert sorted(t.user_attrs["seed"] for t in trials) == [0, 1]
        assert all(t.state == TrialState.COMPLETE for t in trials)
        assert all("test/top1" in t.user_attrs for t in trials)
    for name in search_units:
        trials = studies[name]
        assert len(trials) == 3
        assert all(
            t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in trials
        )
        # Large λ can genuinely blow up training: such a trial fails with its reason recorded.
        assert all(
            "non-finite" in t.user_attrs["fail_reason"]
            for t in trials
            if t.state == TrialState.FAIL
        )
        # Tuning never touches the test split.
        assert not any(k.startswith("test/") for t in trials for k in t.user_attrs)
        assert all(-2.0 <= t.params["lam"] <= 1.5 for t in trials)

    # Phase ordering: a final or transfer trial starts only after the searches it depends on
    # ended; transfer uses only the other pair's search.
    for name in final_units + transfer_units:
        _, pair, noise, method, phase = name.split("/")
        other = "mlp-b" if pair == "mlp-a" else "mlp-a"
        source_pair = other if phase == "transfer" else pair
        source = studies[f"tiny/{source_pair}/{noise}/{method}/search"]
        last_search = max(t.datetime_complete for t in source)
        for t in studies[name]:
            assert t.user_attrs["source_pair"] == source_pair
            assert t.datetime_start >= last_search
            chosen = next(s for s in source if s.number == t.user_attrs["source_trial"])
            assert t.user_attrs["hparams"] == chosen.user_attrs["hparams"]
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
    for run in children:
        assert set(PARAM_KEYS) <= set(run.data.params)
        if run.data.params["method"] != "ce":
            assert "lam" in run.data.params
        assert " / " in run.info.run_name
        if run.data.tags.get("optuna.state") == "COMPLETE":
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
    evaluated = [r for r in children if r.data.params["phase"] in ("seeds", "final")]
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
    assert all(float(r["delta_vs_kd"]) == 0.0 for r in kd_rows)

    # A second invocation resumes: nothing is trained again.
    assert main(["run", str(tiny_config), "--output", str(out), "--quiet"]) == 0
    assert "trained 0 trial(s)" in capsys.readouterr().out
    assert sum(len(v) for v in _studies(storage).values()) == n_trials
