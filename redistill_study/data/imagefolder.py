"""An ImageNet-layout folder (``root/train/<class>/*.jpg``, ``root/val/<class>/*.jpg``) read
through torchvision's ``ImageFolder``; the validation split is carved from ``train``, and
``root/val`` is the test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision import transforms as T

from ..errors import UserError
from .base import DataBundle, DataOptions, Split, options_spec
from .splits import stratified_split, stratified_subset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_transforms(size: int) -> tuple[T.Compose, T.Compose]:
    """Train: random-resized crop + flip; eval: resize to size/0.875 and centre crop."""
    train = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor()])
    evaluate = T.Compose([T.Resize(round(size / 0.875)), T.CenterCrop(size), T.ToTensor()])
    return train, evaluate


def build_imagefolder(config: DataOptions, root: Path) -> DataBundle:
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise UserError(
                f"imagefolder: {root / sub} is not a folder (expected root/train and root/val)"
            )
    size = config.image_size
    augment = "imagenet" if config.augment == "auto" else config.augment
    train_tf, eval_tf = imagenet_transforms(size)
    if augment == "none":
        train_tf = eval_tf
    full_train = torchvision.datasets.ImageFolder(str(root / "train"), transform=train_tf)
    full_eval = torchvision.datasets.ImageFolder(str(root / "train"), transform=eval_tf)
    test = torchvision.datasets.ImageFolder(str(root / "val"), transform=eval_tf)
    if test.classes != full_train.classes:
        raise UserError(
            f"imagefolder: class folders of {root / 'val'} differ from {root / 'train'}"
        )
    targets = np.asarray(full_train.targets, dtype=np.int64)
    train_idx, val_idx = stratified_split(targets, config.val_fraction, config.split_seed)
    if config.train_subset is not None:
        train_idx = stratified_subset(train_idx, targets, config.train_subset, config.split_seed)
    subset = torch.utils.data.Subset

    def split(idx: np.ndarray, augmented: bool) -> Split:
        return Split(
            y=torch.from_numpy(targets[idx]),
            dataset=subset(full_train if augmented else full_eval, idx.tolist()),
            eval_dataset=subset(full_eval, idx.tolist()),
        )

    return DataBundle(
        name="imagefolder",
        num_classes=len(full_train.classes),
        input_shape=(3, size, size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment=augment,
        train=split(train_idx, True),
        val=split(val_idx, False),
        test=Split(
            y=torch.tensor(test.targets, dtype=torch.int64), dataset=test, eval_dataset=test
        ),
        spec={**options_spec(config, exclude=("download",)), "n_train": len(targets)},
    )
