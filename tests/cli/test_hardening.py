"""Bad input never produces a traceback or touches recorded results; NaN ends one trial, not the
study; Ctrl-C loses nothing."""

from __future__ import annotations

import copy
import csv
import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from helpers import REPO, tiny_study, write_yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from redistill_study.cli import main
from redistill_study.losses import Context, register_method
from redistill_study.losses.kd import KD
from redistill_study.losses.registry import unregister_method

SHIPPED = sorted((REPO / "studies").glob("*.yaml"))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutations(data: dict) -> list[tuple[str, dict]]:
    out = []
    for path in _paths(data):
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        for label, value in (
            ("wrong type", {"a": [1]}),
            ("negative", -7),
            ("huge", 10**12),
            ("null", None),
            ("text", "???"),
        ):
            mutated = copy.deepcopy(data)
            target = mutated
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value
            out.append((f"{path} → {label}", mutated))
        if isinstance(parent, dict):
            mutated = copy.deepcopy(data)
            target = mutated
            for part in path[:-1]:
                target = target[part]
            del target[path[-1]]
            out.append((f"{path} deleted", mutated))
            sibling = copy.deepcopy(data)
            target = sibling
            for part in path[:-1]:
                target = target[part]
            target["surprise_key"] = 1
            out.append((f"{path[:-1]} + unknown key", sibling))
    return out


@pytest.mark.parametrize("config", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_mutation_is_ok_or_one_line_exit_2(config: Path, tmp_path: Path, capsys) -> None:
    data = yaml.safe_load(config.read_text())
    rejected = 0
    scalar_labels = set()
    for path in _paths(data):
        value = data
        for part in path:
            value = value[part]
        if isinstance(value, (int, float, str)) and path[-1] not in ("args", "params", "train"):
            scalar_labels.add(f"{path} → wrong type")
    for label, mutated in _mutations(data):
        path = write_yaml(tmp_path / config.name, mutated)
        try:
            code = main(["validate", "--skip-files", str(path)])
        except BaseException as exc:
            pytest.fail(f"{config.name}: {label}: {type(exc).__name__}: {exc}")
        captured = capsys.readouterr()
        assert code in (0, 2), label
        if code == 2:
            rejected += 1
            assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), label
            assert str(path) in captured.err, label
        if label.endswith("+ unknown key"):
            assert code == 2, label  # unknown keys are always rejected
        if label.endswith("→ wrong type") and label in scalar_labels:
            assert code == 2, label  # a mapping where a number or a name belongs
    assert rejected > 0


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.db"))}


@pytest.mark.slow
def test_rejected_commands_change_nothing_recorded(tmp_path: Path, capsys) -> None:
    config = write_yaml(
        tmp_path / "t.yaml",
        tiny_study(name="guard", seeds=1, methods=[{"name": "kd"}], noise=[{"kind": "none"}]),
    )
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    before = _digest(out)
    assert set(before) == {"optuna.db", "mlflow.db"}
    bad = write_yaml(tmp_path / "bad.yaml", {**tiny_study(name="guard"), "seeds": "three"})
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    commands = [
        ["run", str(bad), "--output", str(out)],
        ["run", str(empty), "--output", str(out)],
        ["run", str(tmp_path / "missing.yaml"), "--output", str(out)],
        ["validate", str(bad)],
        ["run", str(config), "--output", str(out), "--device", "cuda:7"]
        if not torch.cuda.is_available()
        else ["validate", str(bad)],
        [
            "run",
            str(config),
            "--output",
            str(out),
            "--storage",
            "postgresql+psycopg2://u:hunter2@127.0.0.1:9/x",
        ],
    ]
    for cmd in commands:
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert "hunter2" not in err
    assert _digest(out) == before


class _ExplodingKD(KD):
    """Test-only method: NaN loss from the second epoch on."""

    name = "test_nan_kd"

    def terms(self, student_logits, teacher_logits, labels, context: Context):
        terms = super().terms(student_logits, teacher_logits, labels, context)
        if context.epoch >= 1:
            terms["kd"] = terms["kd"] * float("nan")
        return terms


@pytest.fixture
def exploding_method():
    register_method(_ExplodingKD)
    yield _ExplodingKD.name
    unregister_method(_ExplodingKD.name)


@pytest.mark.slow
def test_nan_fails_that_trial_and_the_study_completes(tmp_path: Path, exploding_method) -> None:
    config = write_yaml(
        tmp_path / "nan.yaml",
        tiny_study(
            name="nan",
            seeds=1,
            noise=[{"kind": "none"}],
            methods=[{"name": "kd"}, {"name": "test_nan_kd"}],
        ),
    )
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    storage = f"sqlite:///{out / 'optuna.db'}"
    states = {}
    for s in optuna.get_all_study_summaries(storage):
        trials = optuna.load_study(study_name=s.study_name, storage=storage).trials
        states[s.study_name.split("/")[-2]] = trials
    assert all(t.state == TrialState.COMPLETE for t in states["kd"])
    # The run ends with its reason, scores chance (1/10) and is counted, never dropped.
    failed = states["test_nan_kd"]
    assert failed and all(t.state == TrialState.COMPLETE and t.value == 0.1 for t in failed)
    assert all(t.user_attrs["status"] == "diverged" for t in failed)
    assert all("epoch 2: non-finite loss" in t.user_attrs["fail_reason"] for t in failed)
    # Where it blew up: the first step of epoch 2, in its KD term (the loss is NaN from then
    # on), in both stores.
    steps = failed[0].user_attrs["divergence.step"]
    assert all(t.user_attrs["divergence.epoch"] == 2 for t in failed)
    assert all(t.user_attrs["divergence.overflowed"] == "kd" for t in failed)
    assert steps > 1 and all(t.user_attrs["divergence.step"] == steps for t in failed)
    assert all(0 < t.user_attrs["divergence.last_finite_grad_norm"] for t in failed)
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    run = client.get_run(failed[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and "non-finite" in run.data.tags["fail_reason"]
    assert run.data.tags["divergence.step"] == str(steps)
    assert "train/grad_norm_max" in run.data.metrics
    with open(out / "summary.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert (
        rows["test_nan_kd"]["diverged"] == "1"
        and float(rows["test_nan_kd"]["test_top1_mean"]) == 0.1
    )
    assert "non-finite" in rows["test_nan_kd"]["first_reason"]


@pytest.mark.slow
def test_ctrl_c_then_rerun_completes_every_trial_once(tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "int.yaml",
        tiny_study(
            name="int",
            seeds=2,
            cohort_size=1,
            noise=[{"kind": "none"}],
            methods=[{"name": "ce"}, {"name": "kd"}, {"name": "redistill"}],
            train={"epochs": 4, "batch_size": 32, "lr": 0.05},
        ),
    )
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "redistill_study",
        "run",
        str(config),
        "--output",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    storage = f"sqlite:///{out / 'optuna.db'}"
    deadline = time.time() + 600  # generous: a loaded machine trains slowly
    while time.time() < deadline:
        if (out / "optuna.db").exists() and _count(storage, TrialState.COMPLETE) >= 2:
            break
        if proc.poll() is not None:  # ended on its own: say how, at once
            pytest.fail(
                f"the run ended before it was interrupted ({proc.returncode}): "
                f"{proc.communicate()[1][-2000:]}"
            )
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the study completed no two trials in time to be interrupted")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1000:]
    assert "Traceback" not in err
    assert _count(storage, TrialState.RUNNING) == 0
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    keys: dict[tuple, int] = {}
    for s in optuna.get_all_study_summaries(storage):
        for t in optuna.load_study(study_name=s.study_name, storage=storage).trials:
            assert t.state in (TrialState.COMPLETE, TrialState.FAIL)
            if t.state == TrialState.COMPLETE:
                keys[(s.study_name, t.user_attrs["slot"])] = (
                    keys.get((s.study_name, t.user_attrs["slot"]), 0) + 1
                )
    assert len(keys) == 12 and set(keys.values()) == {1}
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("int").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]


def _count(storage: str, state: TrialState) -> int:
    try:
        return sum(
            len(
                optuna.load_study(study_name=s.study_name, storage=storage).get_trials(
                    states=(state,)
                )
            )
            for s in optuna.get_all_study_summaries(storage)
        )
    except Exception:
        return 0
