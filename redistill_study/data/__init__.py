"""Data sources: each returns a DataBundle of train / validation / test splits."""

from __future__ import annotations

from pathlib import Path

from .._util import resolve_path
from ..errors import UserError
from .base import DataBundle, DataOptions, Split, iterate_batches, normalize
from .registry import (
    DatasetInfo,
    builder,
    dataset_info,
    dataset_names,
    read_files,
    register_dataset,
)


def data_root(config: DataOptions, base_dir: Path | None = None) -> Path | None:
    """Where the data set's files are: ``root`` (relative to the config) or its default."""
    info = dataset_info(config.name)
    if config.root is not None:
        return resolve_path(config.root, base_dir or Path.cwd())
    if info.default_root is not None:
        return Path(info.default_root)
    return None


def build_dataset(config: DataOptions, base_dir: Path | None = None) -> DataBundle:
    """Load the configured data set and its fixed, seeded splits."""
    info = dataset_info(config.name)
    build = builder(config.name)
    if not info.needs_root:
        return build(config)
    root = data_root(config, base_dir)
    if root is None:
        raise UserError(f"dataset {config.name!r} needs a 'root' folder: {info.files}")
    return build(config, root)


__all__ = [
    "DataBundle",
    "DataOptions",
    "DatasetInfo",
    "Split",
    "build_dataset",
    "data_root",
    "dataset_info",
    "dataset_names",
    "iterate_batches",
    "normalize",
    "read_files",
    "register_dataset",
]
