"""Shared test helpers: a tiny study, YAML writing, throwaway servers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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


def study_records(
    rng: np.random.Generator,
    *,
    pairs: int = 10,
    noises: tuple[str, ...] = ("none", "noisy"),
    seeds: int = 3,
    regret: dict[str, float] | float = 0.0,
    deficit: dict[str, float] | float = 0.0,
    run_sd: float = 0.005,
    pair_sd: float = 0.005,
    diverge: float = 0.0,
    fixed_arms: tuple[str, ...] = ("redistill",),
    pairs_per_teacher: int = 1,
    teacher_sd: float = 0.0,
) -> list[dict]:
    """Evaluation records of a whole study with a known truth: a pair's runs share a per-seed
    effect (same initialisation and batches for every arm), each run adds its own noise
    ``run_sd``, and the regret and deficit vary between pairs with sd ``pair_sd`` and between
    teachers with sd ``teacher_sd`` (shared by every pair and noise setting of a teacher)."""
    records = []
    by_teacher = {
        f"t{t}": {arm: teacher_sd * rng.standard_normal() for arm in ("redistill_tuned", "kd")}
        for t in range(-(-pairs // pairs_per_teacher))
    }
    for i in range(pairs):
        teacher = f"t{i // pairs_per_teacher}"
        for noise in noises:
            r = regret[noise] if isinstance(regret, dict) else regret
            d = deficit[noise] if isinstance(deficit, dict) else deficit
            base = 0.85 + 0.03 * rng.standard_normal()
            effects = {"redistill_tuned": r, "kd": d}
            pair_effect = {
                arm: effects[arm] + by_teacher[teacher][arm] + pair_sd * rng.standard_normal()
                for arm in effects
            }
            for s in range(seeds):
                shared = 0.01 * rng.standard_normal()  # the same for every arm of this seed
                runs = {arm: base + shared for arm in fixed_arms}
                runs.update({arm: base + shared + pair_effect[arm] for arm in effects})
                for arm, acc in runs.items():
                    status = "complete"
                    if arm in fixed_arms and rng.random() < diverge:
                        status = "diverged"
                    records.append(
                        {
                            "pair": f"p{i}",
                            "teacher": teacher,
                            "noise": noise,
                            "method": arm,
                            "phase": "final" if arm == "redistill_tuned" else "seeds",
                            "seed": s,
                            "test/top1": acc + run_sd * rng.standard_normal(),
                            "status": status,
                            "classes": 10,
                        }
                    )
    return records


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
