"""Fashion-MNIST from the real idx files (Debian's dataset-fashion-mnist), the idx format on
small files the test writes, the 28×28 grey-scale model zoo, and teachers of their own seed."""

from __future__ import annotations

import gzip
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_yaml

from redistill_study.cli import main
from redistill_study.config import DatasetConfig, TrainConfig
from redistill_study.data import build_dataset, dataset_info
from redistill_study.data.idx import load_idx
from redistill_study.errors import UserError
from redistill_study.models import count_parameters, create_model, list_models, model_family
from redistill_study.training import TeacherSpec

ROOT = Path(dataset_info("fashion_mnist").default_root)
installed = pytest.mark.skipif(
    dataset_info("fashion_mnist").missing(ROOT) is not None,
    reason="Fashion-MNIST is not installed (Debian's dataset-fashion-mnist; .ci/run installs it)",
)


@installed
def test_the_real_files_shapes_label_counts_and_disjoint_splits() -> None:
    a = build_dataset(DatasetConfig(name="fashion_mnist", val_fraction=0.1, split_seed=3))
    assert a.num_classes == 10 and a.input_shape == (1, 28, 28) and a.augment == "crop_flip"
    assert len(a.train) + len(a.val) == 60_000 and len(a.test) == 10_000
    assert a.train.x.dtype == torch.uint8 and a.train.x.shape[1:] == (1, 28, 28)
    # The official test set: 1,000 images of each class; train and val stratified 9:1.
    assert torch.bincount(a.test.y, minlength=10).tolist() == [1000] * 10
    assert torch.bincount(a.val.y, minlength=10).tolist() == [600] * 10
    assert torch.bincount(a.train.y, minlength=10).tolist() == [5400] * 10
    # Validation carved from train: train and val together are the original training file,
    # each image exactly once (a multiset, since the file holds a few identical images).
    raw_x, raw_y = load_idx(ROOT, "fashion_mnist", "train")

    def rows(x: np.ndarray, y: np.ndarray) -> Counter:
        return Counter(zip((r.tobytes() for r in x.reshape(len(x), -1)), y.tolist()))

    split = rows(a.train.x.numpy(), a.train.y.numpy()) + rows(a.val.x.numpy(), a.val.y.numpy())
    assert split == rows(raw_x, raw_y)
    b = build_dataset(DatasetConfig(name="fashion_mnist", val_fraction=0.1, split_seed=3))
    c = build_dataset(DatasetConfig(name="fashion_mnist", val_fraction=0.1, split_seed=4))
    assert torch.equal(a.val.y, b.val.y) and torch.equal(a.train.x[:100], b.train.x[:100])
    assert not torch.equal(a.val.x[:100], c.val.x[:100])
    # A stratified subset, the same every time.
    sub = build_dataset(DatasetConfig(name="fashion_mnist", train_subset=2000, val_fraction=0.1))
    assert torch.bincount(sub.train.y, minlength=10).tolist() == [200] * 10
    assert torch.equal(sub.train_subset(500), sub.train_subset(500))


@installed
def test_a_recipe_subset_is_a_seeded_stratified_part_of_the_split() -> None:
    bundle = build_dataset(DatasetConfig(name="fashion_mnist", train_subset=3000))
    chosen = bundle.train_subset(TrainConfig(subset=600).subset)
    assert len(chosen) == 600 and len(set(chosen.tolist())) == 600
    assert torch.bincount(bundle.train.y[chosen], minlength=10).tolist() == [60] * 10


def _write_idx(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        for kind, array, magic in (("images-idx3", images, 0x803), ("labels-idx1", labels, 0x801)):
            header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
            data = header + array.tobytes()
            name = folder / f"{prefix}-{kind}-ubyte"
            if gz:
                name.with_name(name.name + ".gz").write_bytes(gzip.compress(data))
            else:
                name.write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_files_written_here(tmp_path: Path, gz: bool) -> None:
    _write_idx(tmp_path / "mnist", gz=gz)
    bundle = build_dataset(
        DatasetConfig(name="mnist", root=str(tmp_path / "mnist"), val_fraction=0.2)
    )
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (48, 12, 20)
    assert bundle.augment == "crop"  # digits are not mirror images


def test_broken_or_missing_idx_files_are_one_line(tmp_path: Path, capsys) -> None:
    _write_idx(tmp_path / "m")
    # An images header (magic 0x803, three dimensions) where the labels belong.
    header = b"\x00\x00\x08\x03" + (1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(header + bytes(28 * 28))
    )
    with pytest.raises(UserError, match="not an idx labels file"):
        build_dataset(DatasetConfig(name="mnist", root=str(tmp_path / "m")))
    config = write_yaml(
        tmp_path / "f.yaml",
        {
            "name": "f",
            "dataset": {"name": "fashion_mnist", "root": str(tmp_path / "nowhere")},
            "pairs": [{"teacher": {"model": "fm_cnn_s"}, "student": {"model": "fm_mlp_s"}}],
            "methods": [{"name": "kd"}],
        },
    )
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset-fashion-mnist" in err and "dataset.root" in err


GREY = [n for n in list_models() if model_family(n) == "grey28"]


def test_four_families_from_20k_to_2m_parameters() -> None:
    counts = {n: count_parameters(create_model(n, num_classes=10)) for n in GREY}
    families = {n.split("_")[1] for n in GREY}
    assert {"cnn", "resnet8", "resnet14", "mobilenet", "mlp"} <= families | {
        n.split("_", 1)[1] for n in GREY
    }
    assert {"fm_cnn_s", "fm_resnet8", "fm_mobilenet_s", "fm_mlp_m"} <= set(counts)
    assert min(counts.values()) < 25_000 and max(counts.values()) > 1_500_000
    # Counted by hand: 3 × 3 convs without bias, batch norm (weight + bias) after each, and a
    # linear classifier on the 3 × 3 pooled grid.
    convs = 9 * (1 * 16 + 16 * 32 + 32 * 64) + 2 * (16 + 32 + 64)
    assert counts["fm_cnn_s"] == convs + 64 * 9 * 10 + 10
    assert counts["fm_mlp_l"] == 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10


@pytest.mark.parametrize("name", GREY)
def test_grey_forward_pass(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    colour = create_model(name, num_classes=7, in_chans=3).eval()
    with torch.no_grad():
        assert colour(torch.randn(2, 3, 28, 28)).shape == (2, 7)


def test_timm_and_torchvision_models_take_grey_input() -> None:
    model = create_model("timm:resnet10t", num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_a_teachers_seed_is_part_of_its_cache_key() -> None:
    base = dict(model="fm_cnn_s", num_classes=10, data_fingerprint="x", recipe=TrainConfig())
    assert TeacherSpec(seed=0, **base).key() != TeacherSpec(seed=1, **base).key()
    assert TeacherSpec(seed=1, **base).key() == TeacherSpec(seed=1, **base).key()
