"""Data sources: each returns a DataBundle of train / validation / test splits."""

from __future__ import annotations

from pathlib import Path

from ..config import DatasetConfig, resolve_path
from .base import DataBundle, Split, iterate_batches, normalize

_DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")


def dataset_names() -> list[str]:
    return list(_DATASETS)


def build_dataset(config: DatasetConfig, base_dir: Path | None = None) -> DataBundle:
    """Load the configured data set and its fixed, seeded splits."""
    if config.name == "digits":
        from .digits import build_digits

        return build_digits(config)
    root = resolve_path(config.root or ".", base_dir or Path.cwd())
    if config.name in ("cifar10", "cifar100"):
        from .cifar import build_cifar

        return build_cifar(config, root)
    if config.name == "imagefolder":
        from .imagefolder import build_imagefolder

        return build_imagefolder(config, root)
    raise KeyError(config.name)


__all__ = ["DataBundle", "Split", "build_dataset", "dataset_names", "iterate_batches", "normalize"]
