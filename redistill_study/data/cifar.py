"""CIFAR-10/100 from the standard "python version" folders, held in memory as uint8 tensors.

``root`` is the folder that *contains* ``cifar-10-batches-py/`` (or ``cifar-100-python/``), as
torchvision lays it out. The files are read here rather than through torchvision's classes,
which insist on the official checksums: a user's own copy in the same format (re-packed,
sub-sampled) is read after its format is verified — shapes, types, label ranges — with one
warning when its checksums are not the official ones. The pickles are read by an unpickler that
only rebuilds numpy arrays and plain containers, never arbitrary objects.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

from .._util import first_line
from ..errors import UserError
from .base import DataBundle, DataOptions, Split, options_spec
from .registry import dataset_info
from .splits import stratified_split, stratified_subset

NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_CLASSES = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}
_LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}
_warned: set[str] = set()


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays, lists, dicts, strings and numbers; refuses anything else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path, label_key: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = path.read_bytes()
        batch = _ArraysOnly(io.BytesIO(raw), encoding="latin1").load()
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except Exception as exc:
        raise UserError(f"{path}: not a CIFAR batch file ({first_line(exc)[:200]})") from None
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        raise UserError(f"{path}: expected a pickled dict with 'data' and '{label_key}'")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise UserError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise UserError(f"{path}: labels outside 0–{classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def _download(name: str, root: Path) -> None:
    try:
        _CLASSES[name](root=str(root), train=True, download=True)
    except Exception as exc:  # no network, a proxy, a full disk: one line, not a traceback
        raise UserError(
            f"{name}: download into {root} failed ({first_line(exc)[:200]}); without a network, "
            f"put the files in {root / _CLASSES[name].base_folder} and set download: false"
        ) from None


def _load(name: str, root: Path, download: bool) -> tuple[np.ndarray, ...]:
    cls = _CLASSES[name]
    folder = root / cls.base_folder
    if not folder.is_dir() and download:
        _download(name, root)
    if not folder.is_dir():
        raise UserError(
            f"{name}: {folder} not found (root is the folder that contains "
            f"{cls.base_folder}/; set download: true to fetch it)"
        )
    classes = dataset_info(name).known_classes()
    parts = {}
    official = True
    for split, files in (("train", cls.train_list), ("test", cls.test_list)):
        xs, ys = [], []
        for filename, md5 in files:
            path = folder / filename
            x, y = _read_batch(path, _LABEL_KEY[name], classes)
            official &= hashlib.md5(path.read_bytes()).hexdigest() == md5
            xs.append(x)
            ys.append(y)
        parts[split] = (np.concatenate(xs), np.concatenate(ys))
    if not official and str(folder) not in _warned:
        _warned.add(str(folder))
        print(
            f"warning: {folder}: not the official {name} files (checksums differ); read as "
            f"{len(parts['train'][1])} training and {len(parts['test'][1])} test images",
            file=sys.stderr,
        )
    return (*parts["train"], *parts["test"])


def read_cifar_files(name: str, root: Path) -> None:
    """Every batch file of the data set read and checked (``validate``)."""
    _load(name, root, download=False)


def build_cifar(config: DataOptions, root: Path) -> DataBundle:
    name = config.name
    x_full, y_full, x_test, y_test = _load(name, root, config.download)
    train, val = stratified_split(y_full, config.val_fraction, config.split_seed)
    if config.train_subset is not None:
        train = stratified_subset(train, y_full, config.train_subset, config.split_seed)
    mean, std = NORMALIZATION[name]
    augment = "cifar" if config.augment == "auto" else config.augment
    x_all = torch.from_numpy(np.ascontiguousarray(x_full))
    y_all = torch.from_numpy(y_full)
    return DataBundle(
        name=name,
        num_classes=dataset_info(name).known_classes(),
        input_shape=(3, 32, 32),
        mean=mean,
        std=std,
        augment=augment,
        train=Split(x=x_all[train], y=y_all[train]),
        val=Split(x=x_all[val], y=y_all[val]),
        test=Split(x=torch.from_numpy(np.ascontiguousarray(x_test)), y=torch.from_numpy(y_test)),
        spec={**options_spec(config, exclude=("root", "download")), "n_train": len(y_full)},
    )
