"""Fixed, seeded, stratified splits: the validation set is carved from the training data, so
tuning never sees the test split."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out) with ``fraction`` of each class held out, in a seeded order."""
    index = np.arange(len(labels))
    kept, held = train_test_split(
        index, test_size=fraction, random_state=seed, stratify=labels, shuffle=True
    )
    return np.sort(kept), np.sort(held)


def stratified_subset(indices: np.ndarray, labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` of ``indices``, every class in proportion, chosen by ``seed`` (sorted)."""
    if size >= len(indices):
        return indices
    kept, _ = train_test_split(
        indices, train_size=size, random_state=seed + 2, stratify=labels[indices], shuffle=True
    )
    return np.sort(kept)
