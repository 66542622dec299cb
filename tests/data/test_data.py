"""Splits are fixed, seeded, stratified and disjoint; the batch stream is deterministic."""

from __future__ import annotations

import numpy as np
import torch

from redistill_study.config import DatasetConfig
from redistill_study.data import build_dataset, iterate_batches


def _ids(split) -> set[bytes]:
    return {x.numpy().tobytes() for x in split.x}


def test_digits_split_is_stratified_disjoint_and_reproducible() -> None:
    a = build_dataset(DatasetConfig(val_fraction=0.2, test_fraction=0.2, split_seed=3))
    b = build_dataset(DatasetConfig(val_fraction=0.2, test_fraction=0.2, split_seed=3))
    c = build_dataset(DatasetConfig(val_fraction=0.2, test_fraction=0.2, split_seed=4))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.y, c.train.y)
    n = len(a.train) + len(a.val) + len(a.test)
    assert n == 1797
    assert abs(len(a.test) - 0.2 * n) <= 10 and abs(len(a.val) - 0.2 * n) <= 10
    # Disjoint (digits has a handful of duplicate images, so compare index-free by counting).
    assert len(_ids(a.train) & _ids(a.test)) <= 5
    # Stratified: every class's share within 1.5 points of the overall share.
    for split in (a.train, a.val, a.test):
        share = np.bincount(split.y.numpy(), minlength=10) / len(split)
        assert np.all(np.abs(share - 0.1) < 0.015)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_batch_stream_depends_on_seed_and_epoch_only() -> None:
    bundle = build_dataset(DatasetConfig())
    dev = torch.device("cpu")

    def order(seed: int, epoch: int, batch: int) -> torch.Tensor:
        return torch.cat(
            [
                i
                for i, _, _ in iterate_batches(
                    bundle, bundle.train, batch_size=batch, device=dev, seed=seed, epoch=epoch
                )
            ]
        )

    assert torch.equal(order(1, 2, 64), order(1, 2, 64))
    assert torch.equal(order(1, 2, 64), order(1, 2, 100))  # batch size does not change order
    assert not torch.equal(order(1, 2, 64), order(1, 3, 64))
    assert sorted(order(1, 2, 64).tolist()) == list(range(len(bundle.train)))
