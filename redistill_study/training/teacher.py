"""Teachers: loaded from a checkpoint, or trained by the study and cached by a hash of their
config. A file lock makes sure two workers never train the same teacher at once (the second
waits, then reuses); files are written atomically."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._patience import Patience
from .._util import file_lock, write_text_atomic
from ..config import TrainConfig
from ..data import DataBundle
from ..losses import create_method
from ..metrics import classification_metrics
from ..models import create_model, model_revision
from ..models.checkpoint import load_checkpoint, read_state_dict, save_atomic
from ..noise import flip_labels, undertrained_epochs
from .members import Outcome, make_member, predict
from .runtime import Runtime
from .trainer import train_cohort

CACHE_FORMAT = 1


@dataclass(frozen=True)
class TeacherSpec:
    model: str
    num_classes: int
    data_fingerprint: str
    seed: int
    recipe: TrainConfig | None = None
    checkpoint: str | None = None
    checkpoint_prefix: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    variant: dict[str, Any] = field(default_factory=dict)  # label noise / under-training

    def key(self) -> str:
        payload = asdict(self)
        payload["recipe"] = self.recipe.model_dump() if self.recipe else None
        payload["format"] = CACHE_FORMAT
        if self.checkpoint_prefix is None:  # absent: keys from before prefixes stay the same
            del payload["checkpoint_prefix"]
        revision = model_revision(self.model)
        if revision > 1:  # absent at 1: the keys of teachers cached before revisions stay
            payload["revision"] = revision
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:20]


def obtain_teacher(
    spec: TeacherSpec,
    bundle: DataBundle,
    cache_dir: Path,
    runtime: Runtime,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The teacher in eval mode on the runtime's device, and its metadata."""
    model = create_model(spec.model, num_classes=spec.num_classes, **spec.args)
    if spec.checkpoint is not None:
        load_checkpoint(model, spec.checkpoint, spec.checkpoint_prefix)
        meta: dict[str, Any] = {"source": "checkpoint", "checkpoint": spec.checkpoint}
        return _ready(model, runtime), meta
    key = spec.key()
    weights = cache_dir / "teachers" / f"{key}.pt"
    meta_path = weights.with_suffix(".json")
    with file_lock(cache_dir / "teachers" / f"{key}.lock"):
        if weights.is_file() and meta_path.is_file():
            model.load_state_dict(read_state_dict(weights))
            meta = json.loads(meta_path.read_text())
            meta["source"] = "cache"
            return _ready(model, runtime), meta
        log(f"training teacher {spec.model} ({key})")
        started = time.perf_counter()
        trained, meta = _train(spec, bundle, runtime)
        meta["train_seconds"] = round(time.perf_counter() - started, 2)
        # A full disk under the cache is waited for (with one line), not a lost teacher.
        disk = Patience(f"teacher cache {cache_dir}")
        disk.call(lambda: save_atomic(trained.state_dict(), weights))
        disk.call(lambda: write_text_atomic(meta_path, json.dumps(meta, indent=2, default=str)))
        meta["source"] = "trained"
        return _ready(trained, runtime), meta


def _train(
    spec: TeacherSpec, bundle: DataBundle, runtime: Runtime
) -> tuple[nn.Module, dict[str, Any]]:
    recipe = spec.recipe or TrainConfig()
    labels = None
    stop_after = None
    label_noise = spec.variant.get("label_noise")
    if label_noise:
        labels = flip_labels(
            bundle.train.y,
            label_noise["rate"],
            bundle.num_classes,
            label_noise["mode"],
            label_noise["seed"],
        )
    undertrained = spec.variant.get("undertrained")
    if undertrained:
        stop_after = undertrained_epochs(recipe.epochs, undertrained["fraction_removed"])
    member = make_member(
        "teacher",
        model_name=spec.model,
        model_args=spec.args,
        num_classes=spec.num_classes,
        seed=spec.seed,
        method=create_method("ce"),
        recipe=recipe,
        runtime=runtime,
    )
    train_cohort(
        [member],
        bundle,
        recipe,
        data_seed=spec.seed,
        runtime=runtime,
        train_labels=labels,
        stop_after=stop_after,
        evaluate_val=False,
    )
    if member.outcome != Outcome.COMPLETE:
        raise RuntimeError(f"teacher {spec.model} training failed: {member.reason}")
    logits, y = predict(member.model, bundle, bundle.val, runtime)
    meta = {
        "spec": asdict(spec) | {"recipe": recipe.model_dump()},
        "val_top1": classification_metrics(logits, y)["top1"],
        "epochs_trained": member.epochs_done,
    }
    return member.model, meta


def _ready(model: nn.Module, runtime: Runtime) -> nn.Module:
    model = runtime.prepare_model(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def teacher_logits_all(
    model: nn.Module, bundle: DataBundle, runtime: Runtime
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Un-augmented logits and labels on every split, computed once per teacher."""
    return {
        name: predict(model, bundle, bundle.split(name), runtime)
        for name in ("train", "val", "test")
    }
