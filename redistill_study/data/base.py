"""Data splits and the batch stream every trainer reads.

A :class:`Split` is either held in memory as tensors (the fast path: batches are gathered,
augmented and normalised as batched tensor ops on the training device) or backed by a torch
``Dataset`` read through a ``DataLoader`` (data sets that do not fit, e.g. ImageNet). Every batch
carries the *sample indices* within its split, which the noise models key on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from .augment import augment_batch
from .splits import stratified_subset


class DataOptions(Protocol):
    """What a data source reads of the study config's ``dataset`` section (read-only)."""

    @property
    def name(self) -> str: ...
    @property
    def root(self) -> str | None: ...
    @property
    def download(self) -> bool: ...
    @property
    def val_fraction(self) -> float: ...
    @property
    def test_fraction(self) -> float: ...
    @property
    def split_seed(self) -> int: ...
    @property
    def augment(self) -> str: ...
    @property
    def train_subset(self) -> int | None: ...
    @property
    def image_size(self) -> int: ...


OPTION_KEYS = (
    "name",
    "root",
    "download",
    "val_fraction",
    "test_fraction",
    "split_seed",
    "augment",
    "train_subset",
    "image_size",
)


def options_spec(options: DataOptions, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options as a plain dict (what a bundle's fingerprint hashes)."""
    return {k: getattr(options, k) for k in OPTION_KEYS if k not in exclude}


@dataclass
class Split:
    y: torch.Tensor  # (N,) int64 labels
    x: torch.Tensor | None = None  # (N, C, H, W): float in [0, 1] or uint8 in [0, 255]
    dataset: Any = None  # a torch Dataset yielding (image tensor in [0, 1], label), if x is None
    eval_dataset: Any = None  # the same samples without augmentation

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def in_memory(self) -> bool:
        return self.x is not None


@dataclass
class DataBundle:
    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str  # "none" | "cifar" | "imagenet"
    train: Split
    val: Split
    test: Split
    spec: dict[str, Any] = field(default_factory=dict)  # what the fingerprint hashes

    @property
    def fingerprint(self) -> str:
        """Identifies the data and its split: part of every teacher-cache key."""
        blob = json.dumps(self.spec, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def train_subset(self, size: int | None) -> torch.Tensor | None:
        """Indices of a seeded, stratified subset of ``size`` training samples (None: all)."""
        if size is None or size >= len(self.train):
            return None
        labels = self.train.y.numpy()
        seed = int(self.spec.get("split_seed", 0))
        chosen = stratified_subset(np.arange(len(labels)), labels, size, seed + 7)
        return torch.from_numpy(chosen)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The one RNG of an epoch's data order and augmentation: the same for every cohort member."""
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1))
    return gen


def iterate_batches(
    bundle: DataBundle,
    split: Split,
    *,
    batch_size: int,
    device: torch.device,
    seed: int | None = None,
    epoch: int = 0,
    augment: bool = False,
    drop_last: bool = False,
    num_workers: int = 0,
    subset: torch.Tensor | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(indices, normalised inputs, labels)``; shuffled when ``seed`` is given; only
    the samples ``subset`` (indices into the split) when it is given.

    In-memory splits never touch per-sample Python code. The order and the augmentation are a
    function of (seed, epoch) alone, so K students trained together see exactly the batches
    each would see alone.
    """
    pool = torch.arange(len(split)) if subset is None else subset
    n = len(pool)
    if seed is None:
        order = pool
    else:
        order = pool[torch.randperm(n, generator=epoch_generator(seed, epoch))]
    augment = augment and bundle.augment != "none"
    x_held = split.x  # in memory (``split.in_memory``) when not None
    if x_held is not None:
        x_all = x_held.to(device, non_blocking=True) if x_held.device != device else x_held
        y_all = split.y.to(device) if split.y.device != device else split.y
        aug_gen = epoch_generator(seed if seed is not None else 0, epoch + 1_000_000, device)
        order_dev = order.to(device)
        stop = n - (n % batch_size) if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order_dev[start : start + batch_size]
            x = x_all.index_select(0, idx)
            if augment:
                x = augment_batch(x, bundle.augment, aug_gen)
            yield idx, normalize(x, bundle.mean, bundle.std), y_all.index_select(0, idx)
        return
    yield from _iterate_dataset(
        bundle, split, order, batch_size, device, seed, epoch, augment, drop_last, num_workers
    )


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, dataset: Any, order: torch.Tensor, seed: int, epoch: int) -> None:
        self.dataset, self.order, self.seed, self.epoch = dataset, order, seed, epoch

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, int]:
        index = int(self.order[i])
        # Seed the per-sample transform by (seed, epoch, index): the same crop whichever
        # worker process loads it, without touching the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch * 7919 + index) % (2**63 - 1))
            x, y = self.dataset[index]
        return index, x, y


def _iterate_dataset(
    bundle: DataBundle,
    split: Split,
    order: torch.Tensor,
    batch_size: int,
    device: torch.device,
    seed: int | None,
    epoch: int,
    augment: bool,
    drop_last: bool,
    num_workers: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    dataset = split.dataset if augment else (split.eval_dataset or split.dataset)
    loader = torch.utils.data.DataLoader(
        _Indexed(dataset, order, seed or 0, epoch),
        batch_size=batch_size,
        shuffle=False,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    for idx, x, y in loader:
        x = x.to(device, non_blocking=True)
        yield idx.to(device), normalize(x, bundle.mean, bundle.std), y.to(device)
