"""Shared test helpers: a tiny study, YAML writing, throwaway servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from redistill_study.study.phases import Phase, Status
from redistill_study.study.records import Evaluation

REPO = Path(__file__).resolve().parent.parent


def tiny_study(**overrides: Any) -> dict[str, Any]:
    """A study that trains in seconds: two digits pairs, clean + noisy teacher, four methods."""
    study: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "seeds": 2,
        "device": "cpu",
        "cohort_size": 4,
        "dataset": {"name": "digits"},
        "teacher_train": {"epochs": 4, "batch_size": 64, "lr": 0.05},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.05},
        "pairs": [
            {
                "name": "mlp-a",
                "teacher": {"model": "digits_mlp"},
                "student": {"model": "digits_mlp_small"},
            },
            {
                "name": "mlp-b",
                "teacher": {"model": "digits_mlp", "args": {"hidden": 48}},
                "student": {"model": "digits_mlp_small", "args": {"hidden": 8}},
            },
        ],
        "noise": [{"kind": "none"}, {"kind": "confident_wrong", "levels": [0.3]}],
        "methods": [
            {"name": "ce"},
            {"name": "kd"},
            {"name": "redistill"},
            {"name": "redistill_tuned", "trials": 3},
        ],
        "tuning": {"trials": 3, "startup_trials": 2, "warmup_epochs": 1},
    }
    study.update(overrides)
    return study


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def validation_error(folder: Path, data: Any, capsys: Any) -> str:
    """``validate`` on ``data`` written as ``folder/bad.yaml``: exit 2 and exactly one line
    (no traceback), which is returned."""
    from redistill_study.cli import main

    path = write_yaml(folder / "bad.yaml", data)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def study_records(
    rng: np.random.Generator,
    *,
    pairs: int | None = None,
    teachers: int = 10,
    students: int = 1,
    noises: tuple[str, ...] = ("none", "noisy"),
    seeds: int = 3,
    regret: dict[str, float] | float = 0.0,
    deficit: dict[str, float] | float = 0.0,
    run_sd: float = 0.005,
    pair_sd: float = 0.005,
    teacher_sd: float = 0.0,
    student_sd: float = 0.0,
    spread: str = "normal",
    diverge: float = 0.0,
    fixed_arms: tuple[str, ...] = ("redistill",),
    failing: dict | None = None,
    reference_diverges: tuple[int, ...] = (),
    cells: list[tuple[int, int]] | None = None,
) -> list[dict]:
    """Evaluation records of a whole study with a known truth, written for the tests (not the
    power calculator's model). Pairs are the first ``pairs`` cells of a teachers × students grid
    taken diagonal by diagonal (``pairs=None``: the whole grid; ``students=1``: every pair its
    own teacher and the one student). A pair's runs share a per-seed effect (same initialisation and
    batches for every arm), each run adds its own noise ``run_sd``; the regret and deficit of a
    pair are its mean plus a teacher effect, a student effect (both shared by every pair and noise
    setting of that teacher or student) and a pair effect, each normal with its sd — or, with
    ``spread="gamma"``, the pair effect is a centred exponential (skewed: a long tail of bad
    pairs). ``diverge``: each fixed-arm run diverges with this probability. ``failing``:
    ``{"pairs": [i…], "noises": [...], "size": points or "diverge", "arms": [...]}`` — those pairs'
    fixed arms are worse by ``size`` (or diverge in every seed) under those settings.
    ``reference_diverges``: KD diverges in every seed of these pairs. ``cells``: the pairs as
    (teacher, student) indices, instead of the grid."""
    grid = sorted(
        ((t, s) for t in range(teachers) for s in range(students)),
        key=lambda c: ((c[1] - c[0]) % students, c[0]),
    )  # diagonal by diagonal: a part of the grid still spreads over teachers and students
    grid = grid[: pairs if pairs is not None else len(grid)] if cells is None else list(cells)
    effects = ("redistill_tuned", "kd")
    by_teacher = {
        t: {a: teacher_sd * rng.standard_normal() for a in effects} for t in range(teachers)
    }
    by_student = {
        s: {a: student_sd * rng.standard_normal() for a in effects} for s in range(students)
    }
    failing = failing or {}
    records = []
    for i, (t, st) in enumerate(grid):
        name = f"p{i}"
        if spread == "gamma":
            own = {a: pair_sd * (rng.exponential() - 1.0) for a in effects}
        else:
            own = {a: pair_sd * rng.standard_normal() for a in effects}
        for noise in noises:
            mean = {
                "redistill_tuned": regret[noise] if isinstance(regret, dict) else regret,
                "kd": deficit[noise] if isinstance(deficit, dict) else deficit,
            }
            pair_effect = {
                a: mean[a] + by_teacher[t][a] + by_student[st][a] + own[a] for a in effects
            }
            fails_here = i in failing.get("pairs", ()) and noise in failing.get("noises", noises)
            base = 0.85 + 0.03 * rng.standard_normal()
            for s in range(seeds):
                shared = 0.01 * rng.standard_normal()  # the same for every arm of this seed
                runs = {arm: base + shared for arm in fixed_arms}
                runs.update({a: base + shared + pair_effect[a] for a in effects})
                for arm, acc in runs.items():
                    status = "complete"
                    acc = acc + run_sd * rng.standard_normal()
                    if arm in fixed_arms:
                        if rng.random() < diverge:
                            status = "diverged"
                        if fails_here and arm in failing.get("arms", fixed_arms[:1]):
                            if failing.get("size") == "diverge":
                                status = "diverged"
                            else:
                                acc -= float(failing["size"])
                    if arm == "kd" and i in reference_diverges:
                        status = "diverged"
                    records.append(
                        Evaluation(
                            pair=name,
                            teacher=f"t{t}",
                            student=f"s{st}",
                            noise=noise,
                            noise_kind="none" if noise == "none" else "confident_wrong",
                            noise_level=0.0 if noise == "none" else 0.3,
                            method=arm,
                            phase=Phase.FINAL if arm == "redistill_tuned" else Phase.SEEDS,
                            seed=s,
                            status=Status(status),
                            test_top1=acc,
                            classes=10,
                        ).row()
                    )
    return records


def one_pair_plan(**overrides: Any) -> Any:
    """The tiny study with one pair and the clean teacher only."""
    from redistill_study.config import StudyConfig
    from redistill_study.study.plan import build_plan

    data = tiny_study(noise=[{"kind": "none"}], seeds=2, **overrides)
    data["pairs"] = data["pairs"][:1]
    return build_plan(StudyConfig.model_validate(data))


def finish_trial(c: Any, value: float, status: Any = None) -> None:
    """End a claimed trial with what the recorder writes (without MLflow or training)."""
    from redistill_study.study.attrs import Attempt, Ending

    status = status or Status.COMPLETE
    for key, v in Attempt(f"run-{c.number}", c.hparams, "t", 10).to_user_attrs().items():
        c.trial.set_user_attr(key, v)
    metrics = {"val/top1": value, "test/top1": value - 0.01} if status is Status.COMPLETE else {}
    ending = Ending(status, "sequential", "w", 0.1, chance=0.1, metrics=metrics)
    for key, v in ending.to_user_attrs().items():
        c.trial.set_user_attr(key, v)
    c.study.tell(c.trial, value)


def claim_all(queue: Any, unit: Any) -> list[Any]:
    """Claim every waiting trial (a cohort spans units) for one worker; those of ``unit``."""
    out: list[Any] = []
    while batch := [c for c in queue.claim_cohort(64, "w") if c.unit.name == unit.name]:
        out += batch
    return out


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


@contextmanager
def started(make: Callable[[Path], Any], prefix: str) -> Iterator[Any]:
    """A throwaway server (``make(folder)`` with ``start``/``stop``) in a fresh temporary folder
    outside pytest's (which is private to root; the servers run as other users)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    server = make(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def start_worker(
    config: Path, out: Path, storage: str, tracking: str, label: str, env: dict[str, str]
) -> subprocess.Popen:
    """One ``run`` worker process on shared stores, quiet, its stderr kept for the checks."""
    cmd = [sys.executable, "-m", "redistill_study", "run", str(config), "--output", str(out)]
    cmd += ["--storage", storage, "--tracking-uri", tracking, "--worker-label", label]
    cmd += ["--no-summary", "--quiet"]
    return subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
