"""What a cell's students are taught: the (noisy) teacher, its cached logits and its severity."""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config import resolve_path
from ..data import DataBundle
from ..errors import UserError
from ..metrics import classification_metrics
from ..models.checkpoint import save_atomic
from ..models.wrappers import Renormalize
from ..noise import NoiseSetting, measure_severity
from ..training import Runtime, TeacherSpec, obtain_teacher, teacher_logits_all
from ..training.members import TeacherFn
from .plan import Cell, Plan


class TeacherPass:
    """One teacher forward per batch for every cell whose teacher is this model: cells that
    differ only in logit noise (clean, confidently wrong …) apply their noise to the same
    forward. It keeps the batch it last saw (a reference, so the identity cannot be reused) and
    its version counter (a buffer refilled in place is a new batch)."""

    def __init__(self, model: nn.Module, runtime: Runtime) -> None:
        self.model, self.runtime = model, runtime
        self._x: torch.Tensor | None = None
        self._version = -1
        self._logits: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._x is not x or x._version != self._version or self._logits is None:
            with torch.inference_mode(), self.runtime.autocast():
                self._logits = self.model(x).float()
            self._x, self._version = x, x._version
        return self._logits


# One pass per teacher model, however many cells (and members) it teaches.
_PASSES: weakref.WeakKeyDictionary[nn.Module, TeacherPass] = weakref.WeakKeyDictionary()


def teacher_pass(model: nn.Module, runtime: Runtime) -> TeacherPass:
    if model not in _PASSES:
        _PASSES[model] = TeacherPass(model, runtime)
    return _PASSES[model]


@dataclass
class CellTeacher:
    """The teacher of one cell, ready to feed a cohort."""

    cell: Cell
    model: nn.Module
    noisy_train_logits: torch.Tensor | None  # cached when the data has no augmentation
    metrics: dict[str, float]
    meta: dict[str, Any]
    runtime: Runtime
    bundle: DataBundle
    _fn: TeacherFn | None = field(default=None, init=False, repr=False)

    def teacher_fn(self) -> TeacherFn:
        """The cell's teacher logits for a batch: one function per cell (members of the cell
        share its result), its cached table moved to the device once."""
        if self._fn is None:
            self._fn = self._make_fn()
        return self._fn

    def _make_fn(self) -> TeacherFn:
        noise, n = self.cell.noise, len(self.bundle.train)
        if self.noisy_train_logits is not None:
            table = self.noisy_train_logits.to(self.runtime.device)
            return lambda idx, x, y: table.index_select(0, idx)
        shared = teacher_pass(self.model, self.runtime)

        def forward(idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            # A copy outside inference mode: an ordinary tensor the noise and the loss can use.
            return noise.apply(shared(x).clone(), idx, y, "train", n)

        return forward


def teacher_spec(
    plan: Plan, cell: Cell, bundle: DataBundle, base_dir: Path, noisy: bool
) -> TeacherSpec:
    t = cell.pair.teacher
    checkpoint = str(resolve_path(t.checkpoint, base_dir)) if t.checkpoint else None
    return TeacherSpec(
        model=t.model,
        num_classes=bundle.num_classes,
        data_fingerprint=bundle.fingerprint,
        seed=plan.teacher_seed(cell.pair),
        recipe=None if checkpoint else plan.teacher_recipe(cell.pair),
        checkpoint=checkpoint,
        checkpoint_prefix=t.checkpoint_prefix,
        args=dict(t.args),
        variant=cell.noise.teacher_variant() if noisy else {},
    )


def noisy_logits(
    noise: NoiseSetting, logits: torch.Tensor, labels: torch.Tensor, split: str
) -> torch.Tensor:
    n = logits.shape[0]
    return noise.apply(logits, torch.arange(n), labels, split, n)


def logits_cache_key(spec: TeacherSpec, cell: Cell) -> str:
    """What the teacher's logits depend on: its weights' identity (spec, and for a checkpoint the
    file's size and time), the data and its split (in the spec), and the input normalisation."""
    parts: dict[str, Any] = {"teacher": spec.key(), "normalization": None}
    norm = cell.pair.teacher.normalization
    if norm is not None:
        parts["normalization"] = norm.model_dump()
    if spec.checkpoint:
        stat = Path(spec.checkpoint).stat()
        parts["checkpoint"] = [stat.st_size, stat.st_mtime_ns]
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cached_logits(
    model: nn.Module,
    spec: TeacherSpec,
    cell: Cell,
    bundle: DataBundle,
    runtime: Runtime,
    cache_dir: Path,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The teacher's un-augmented logits on every split, computed once and kept on disk."""
    path = cache_dir / "logits" / f"{logits_cache_key(spec, cell)}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            return {k: (v["logits"], v["labels"]) for k, v in stored.items()}
        except Exception:  # a damaged cache file is recomputed, never trusted
            path.unlink(missing_ok=True)
    logits = teacher_logits_all(model, bundle, runtime)
    save_atomic({k: {"logits": v[0], "labels": v[1]} for k, v in logits.items()}, path)
    return logits


def _adapted(model: nn.Module, cell: Cell, bundle: DataBundle, runtime: Runtime) -> nn.Module:
    norm = cell.pair.teacher.normalization
    if norm is None:
        return model
    if len(norm.mean) != len(bundle.mean):
        raise UserError(
            f"pair {cell.pair.label}: teacher normalization has {len(norm.mean)} channel(s), "
            f"the data has {len(bundle.mean)}"
        )
    wrapped = Renormalize(model, bundle.mean, bundle.std, norm.mean, norm.std)
    return wrapped.to(runtime.device).eval()


def prepare_cell(
    plan: Plan,
    cell: Cell,
    bundle: DataBundle,
    runtime: Runtime,
    cache_dir: Path,
    base_dir: Path,
    log: Callable[[str], None],
) -> CellTeacher:
    clean_model, clean_meta = obtain_teacher(
        teacher_spec(plan, cell, bundle, base_dir, noisy=False), bundle, cache_dir, runtime, log
    )
    clean_model = _adapted(clean_model, cell, bundle, runtime)
    clean_spec = teacher_spec(plan, cell, bundle, base_dir, noisy=False)
    clean = cached_logits(clean_model, clean_spec, cell, bundle, runtime, cache_dir)
    if cell.noise.changes_teacher:
        noisy_spec = teacher_spec(plan, cell, bundle, base_dir, noisy=True)
        model, meta = obtain_teacher(noisy_spec, bundle, cache_dir, runtime, log)
        model = _adapted(model, cell, bundle, runtime)
        raw = cached_logits(model, noisy_spec, cell, bundle, runtime, cache_dir)
    else:
        model, meta, raw = clean_model, clean_meta, clean
    metrics: dict[str, float] = {
        "teacher/clean_top1": classification_metrics(*clean["test"])["top1"],
    }
    noisy_by_split = {}
    for split, (logits, labels) in raw.items():
        noisy = noisy_logits(cell.noise, logits, labels, split)
        noisy_by_split[split] = noisy
        severity = measure_severity(clean[split][0], noisy, labels)
        if split == "test":
            metrics["teacher/noisy_top1"] = severity["top1"]
        metrics[f"teacher/noisy_top1_{split}"] = severity["top1"]
        if split == "train":
            metrics["teacher/ece"] = severity["ece"]
            metrics["teacher/kl_noisy_clean"] = severity["kl_noisy_clean"]
            metrics["teacher/wrong_fraction"] = severity["wrong_fraction"]
    cached = noisy_by_split["train"] if bundle.augment == "none" else None
    return CellTeacher(cell, model, cached, metrics, meta, runtime, bundle)
