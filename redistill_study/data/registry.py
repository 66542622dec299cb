"""Data sets by name, with what the rest of the study needs to know without loading them.

>>> dataset_info("fashion_mnist").num_classes
10
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from .._util import did_you_mean


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int | None  # None: read from the files (ImageFolder)
    default_margin: float  # the verdict's margin δ when the study declares none
    builder: str  # "module:function" in this package, imported on first use
    files: str  # where the files go, for the README and error messages
    needs_root: bool = True
    default_root: str | None = None
    package: str | None = None  # the Debian package that installs the files, if any
    required: tuple[str, ...] = ()  # files under root (each also accepted with ".gz")
    reader: str | None = None  # "module:function(name, root)" that reads and checks the files

    def known_classes(self) -> int:
        """The number of classes of a data set that fixes it (not read from the files)."""
        if self.num_classes is None:
            raise ValueError(f"data set {self.name!r} reads its number of classes from its files")
        return self.num_classes

    def missing(self, root: Path) -> str | None:
        """The first required file that is not under ``root``, as a path; None if all are."""
        for name in self.required:
            if not ((root / name).is_file() or (root / f"{name}.gz").is_file()):
                return str(root / name)
        return None


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    if info.name in _DATASETS and _DATASETS[info.name] != info:
        raise ValueError(f"data set {info.name!r} is already registered")
    _DATASETS[info.name] = info
    return info


def dataset_names() -> list[str]:
    return list(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    try:
        return _DATASETS[name]
    except KeyError:
        hint = did_you_mean(name, _DATASETS)
        raise KeyError(f"unknown dataset {name!r}{hint} (known: {', '.join(_DATASETS)})") from None


def builder(name: str):
    return _function(dataset_info(name).builder)


def read_files(name: str, root: Path) -> None:
    """Read the data set's files under ``root`` as a run would, without building tensors;
    a UserError names the first file that is not what it should be."""
    info = dataset_info(name)
    if info.reader is not None:
        _function(info.reader)(name, root)


def _function(spec: str):
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)


FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

for _info in (
    DatasetInfo(
        "digits",
        10,
        0.01,
        "digits:build_digits",
        "bundled with scikit-learn (no files)",
        needs_root=False,
    ),
    DatasetInfo(
        "fashion_mnist",
        10,
        0.005,
        "idx:build_idx",
        "the four idx files (train-images-idx3-ubyte.gz, …) in `root`",
        default_root=FASHION_MNIST_ROOT,
        package="dataset-fashion-mnist",
        required=IDX_FILES,
        reader="idx:read_idx_files",
    ),
    DatasetInfo(
        "mnist",
        10,
        0.003,
        "idx:build_idx",
        "the four idx files (train-images-idx3-ubyte.gz, …) in `root`",
        required=IDX_FILES,
        reader="idx:read_idx_files",
    ),
    DatasetInfo(
        "cifar10",
        10,
        0.005,
        "cifar:build_cifar",
        "`root/cifar-10-batches-py/` (the python version of the data set)",
        required=("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"),
        reader="cifar:read_cifar_files",
    ),
    DatasetInfo(
        "cifar100",
        100,
        0.01,
        "cifar:build_cifar",
        "`root/cifar-100-python/` (the python version of the data set)",
        required=("cifar-100-python/train", "cifar-100-python/test"),
        reader="cifar:read_cifar_files",
    ),
    DatasetInfo(
        "imagefolder",
        None,
        0.005,
        "imagefolder:build_imagefolder",
        "`root/train/<class>/*` and `root/val/<class>/*` (the ImageNet layout)",
    ),
):
    register_dataset(_info)
