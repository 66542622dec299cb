"""Shared test helpers: a tiny study and YAML writing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
