"""The cluster path, run for real: the shipped Slurm array script on a one-node Slurm cluster
with a throwaway PostgreSQL, and the Kubernetes manifest and Dockerfile checked."""

from __future__ import annotations

import os
import posixpath
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import REPO, started, tiny_study, write_yaml
from optuna.trial import TrialState
from slurm import SlurmCluster, slurm_installed

from redistill_study.cli import build_parser, main

pytestmark = pytest.mark.slow


@pytest.fixture
def slurm():
    if not slurm_installed():
        pytest.skip("Slurm (slurm-wlm, munge) is not installed, or not root (.ci/run installs it)")
    with started(SlurmCluster, "redistill-slurm-") as cluster:
        yield cluster


def test_slurm_array_shares_one_study_through_postgresql(slurm, postgres, tmp_path: Path) -> None:
    name = f"slurm_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    postgres.create_database(f"{name}_optuna")
    postgres.create_database(f"{name}_mlflow")
    storage, tracking = postgres.url(f"{name}_optuna"), postgres.url(f"{name}_mlflow")
    data = tiny_study(
        name="slurm",
        seeds=3,
        cohort_size=1,
        noise=[{"kind": "none"}],
        methods=[{"name": "kd"}, {"name": "redistill"}, {"name": "ckd", "tune": False}],
        train={"epochs": 2, "batch_size": 64, "lr": 0.05},
    )
    config = write_yaml(tmp_path / "slurm.yaml", data)
    out = tmp_path / "out"
    # Step 1 of the script's instructions, then step 2: sbatch the script, unchanged.
    assert (
        main(
            [
                "init",
                str(config),
                "--storage",
                storage,
                "--tracking-uri",
                tracking,
                "--output",
                str(out),
            ]
        )
        == 0
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    job = slurm.sbatch(
        "--array=0-1",
        "--gres=none",
        "--cpus-per-task=1",
        "--mem=2000",
        "--time=10",
        f"--output={logs}/redistill-%A_%a.out",
        str(REPO / "deploy" / "slurm_array.sh"),
        cwd=REPO,
        env={"OPTUNA_URL": storage, "MLFLOW_URI": tracking, "OUT": str(out), "STUDY": str(config)},
    )
    slurm.wait(job, timeout=600)
    outputs = "".join(p.read_text() for p in logs.glob("*.out"))
    trials = []
    for summary in optuna.get_all_study_summaries(storage):
        trials += optuna.load_study(study_name=summary.study_name, storage=storage).trials
    complete = Counter(
        (t.user_attrs["cell"], t.user_attrs["method"], t.user_attrs["slot"])
        for t in trials
        if t.state == TrialState.COMPLETE
    )
    # ce would train once per pair; here: 2 pairs × 3 methods × 3 seeds, each exactly once.
    assert len(complete) == 18 and set(complete.values()) == {1}, outputs[-3000:]
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    workers = {t.user_attrs.get("worker") for t in trials if t.state == TrialState.COMPLETE}
    # Every trial was claimed by a task of the array (which of the two got work is a race).
    assert workers and workers <= {f"slurm-{job}-0", f"slurm-{job}-1"}, workers


def test_kubernetes_job_manifest_is_valid_and_runs_the_cli() -> None:
    import kubernetes_validate

    manifest = yaml.safe_load((REPO / "deploy" / "kubernetes_job.yaml").read_text())
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[0] == "redistill-study"
    args = build_parser().parse_args(command[1:])  # the CLI accepts the manifest's command
    assert args.command == "run" and args.study.endswith("studies/cifar100_classic.yaml")
    # The study it names is in the image (the Dockerfile copies studies/ there).
    assert (
        args.study.startswith("/opt/redistill-study/")
        and "COPY studies" in (REPO / "Dockerfile").read_text()
    )
    assert manifest["spec"]["parallelism"] >= 1
    # The study's data folder, resolved as the CLI resolves it (next to the config), is a
    # mounted volume, and the shared output is writable by the image's user.
    study = yaml.safe_load((REPO / "studies" / Path(args.study).name).read_text())
    root = posixpath.normpath(
        posixpath.join(posixpath.dirname(args.study), study["dataset"]["root"])
    )
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert root in mounts, (root, mounts)
    assert any(args.output.startswith(m) for m in mounts)
    assert manifest["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 1000
    assert "--uid 1000" in (REPO / "Dockerfile").read_text()


def test_dockerfile_builds_the_worker_image_the_manifest_names() -> None:
    text = (REPO / "Dockerfile").read_text()
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    instructions = [line.split()[0] for line in lines if line.split()[0].isupper()]
    assert instructions[0] == "FROM" and "cuda" in lines[0].lower()
    assert "USER" in instructions and any(
        line.startswith("USER") and "root" not in line for line in lines
    )
    assert any("[postgres]" in line for line in lines)
    entry = next(line for line in lines if line.startswith("ENTRYPOINT"))
    assert '"redistill-study"' in entry
