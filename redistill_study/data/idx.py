"""MNIST-format data sets (Fashion-MNIST, MNIST) read from the original idx files.

The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, gzipped or not) sit in ``root``; Debian's
``dataset-fashion-mnist`` installs them in /usr/share/datasets/fashion-mnist. The validation split
is carved from train (seeded, stratified), the official test set is the test split, and the
images stay in memory as uint8 tensors, augmented on the training device.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .base import DataBundle, DataOptions, Split, options_spec
from .registry import dataset_info
from .splits import stratified_split, stratified_subset

FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # unsigned bytes, 3 or 1 dimensions
# Per-channel statistics of the training images (the same for every split seed: a fixed
# normalisation keeps teacher-cache keys stable).
NORMALIZATION = {"fashion_mnist": ((0.2860,), (0.3530,)), "mnist": ((0.1307,), (0.3081,))}


def _locate(root: Path, name: str, dataset: str) -> Path:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    info = dataset_info(dataset)
    how = f" (Debian's package {info.package} installs them)" if info.package else ""
    raise UserError(f"{dataset}: {root / (name + '.gz')} not found{how}; set dataset.root")


def read_idx(path: Path, kind: str) -> np.ndarray:
    """One idx file as a numpy array: (N, 28, 28) uint8 images or (N,) uint8 labels."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    if len(data) < 8:
        raise UserError(f"{path}: not an idx file (too short)")
    magic = int.from_bytes(data[0:4], "big")
    if magic != MAGIC[kind]:
        raise UserError(f"{path}: not an idx {kind} file (magic {magic:#010x})")
    dims = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    offset = 4 + 4 * dims
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise UserError(
            f"{path}: idx header says {shape} ({expected} bytes), the file holds "
            f"{len(data) - offset}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_idx(root: Path, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(_locate(root, FILES[(split, "images")], dataset), "images")
    labels = read_idx(_locate(root, FILES[(split, "labels")], dataset), "labels")
    if len(images) != len(labels):
        raise UserError(f"{dataset}: {len(images)} {split} images but {len(labels)} labels")
    classes = dataset_info(dataset).known_classes()
    if labels.max(initial=0) >= classes:
        raise UserError(f"{dataset}: {split} labels outside 0–{classes - 1}")
    return images, labels.astype(np.int64)


def read_idx_files(name: str, root: Path) -> None:
    """All four idx files read and checked (``validate``)."""
    for split in ("train", "test"):
        load_idx(root, name, split)


def build_idx(config: DataOptions, root: Path) -> DataBundle:
    name = config.name
    x_full, y_full = load_idx(root, name, "train")
    x_test, y_test = load_idx(root, name, "test")
    train, val = stratified_split(y_full, config.val_fraction, config.split_seed)
    if config.train_subset is not None:
        train = stratified_subset(train, y_full, config.train_subset, config.split_seed)
    default = "crop_flip" if name == "fashion_mnist" else "crop"
    augment = default if config.augment == "auto" else config.augment
    x_all = torch.from_numpy(x_full.copy()).unsqueeze(1)
    y_all = torch.from_numpy(y_full)
    mean, std = NORMALIZATION[name]
    return DataBundle(
        name=name,
        num_classes=dataset_info(name).known_classes(),
        input_shape=(1, 28, 28),
        mean=mean,
        std=std,
        augment=augment,
        train=Split(x=x_all[train], y=y_all[train]),
        val=Split(x=x_all[val], y=y_all[val]),
        test=Split(x=torch.from_numpy(x_test.copy()).unsqueeze(1), y=torch.from_numpy(y_test)),
        spec={**options_spec(config, exclude=("root", "download")), "n_train": len(y_full)},
    )
