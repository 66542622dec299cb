"""CIFAR-10/100 through torchvision's own classes, held in memory as uint8 tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision

from ..config import DatasetConfig
from ..errors import UserError
from .base import DataBundle, Split
from .splits import stratified_split, stratified_subset

NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _load(name: str, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, np.ndarray]:
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        ds = cls(root=str(root), train=train, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted."
        raise UserError(f"{name}: {exc} (root: {root}; set `download: true` to fetch it)") from None
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return x, np.asarray(ds.targets, dtype=np.int64)


def build_cifar(config: DatasetConfig, root: Path) -> DataBundle:
    name = config.name
    x_full, y_full = _load(name, root, True, config.download)
    x_test, y_test = _load(name, root, False, False)
    train, val = stratified_split(y_full, config.val_fraction, config.split_seed)
    if config.train_subset is not None:
        train = stratified_subset(train, y_full, config.train_subset, config.split_seed)
    mean, std = NORMALIZATION[name]
    augment = "cifar" if config.augment == "auto" else config.augment
    y_all = torch.from_numpy(y_full)
    return DataBundle(
        name=name,
        num_classes=10 if name == "cifar10" else 100,
        input_shape=(3, 32, 32),
        mean=mean,
        std=std,
        augment=augment,
        train=Split(x=x_full[train], y=y_all[train]),
        val=Split(x=x_full[val], y=y_all[val]),
        test=Split(x=x_test, y=torch.from_numpy(y_test)),
        spec={**config.model_dump(exclude={"root", "download"}), "n_train": len(y_full)},
    )
