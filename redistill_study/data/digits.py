"""scikit-learn's bundled handwritten digits: 1,797 8×8 images, 10 classes, no download."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from .base import DataBundle, DataOptions, Split, options_spec
from .splits import stratified_split, stratified_subset


def build_digits(config: DataOptions) -> DataBundle:
    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    rest, test = stratified_split(digits.target, config.test_fraction, config.split_seed)
    val_share = config.val_fraction / (1.0 - config.test_fraction)
    train_in_rest, val_in_rest = stratified_split(
        digits.target[rest], val_share, config.split_seed + 1
    )
    train, val = rest[train_in_rest], rest[val_in_rest]
    if config.train_subset is not None:
        train = stratified_subset(train, digits.target, config.train_subset, config.split_seed)
    x_train = x[train]
    mean = round(float(x_train.mean()), 4)
    std = round(float(x_train.std()), 4)
    return DataBundle(
        name="digits",
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=(mean,),
        std=(std,),
        augment="none",
        train=Split(x=x_train, y=y[train]),
        val=Split(x=x[val], y=y[val]),
        test=Split(x=x[test], y=y[test]),
        spec={
            **options_spec(config, exclude=("root", "download")),
            "source": "sklearn.load_digits",
        },
    )
