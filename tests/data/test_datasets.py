"""Real on-disk formats, written small by the tests, read through torchvision's own classes."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_yaml
from PIL import Image

from redistill_study.cli import main
from redistill_study.config import DatasetConfig
from redistill_study.data import build_dataset, iterate_batches
from redistill_study.errors import UserError


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar100(root: Path, per_class_train: int = 6, per_class_test: int = 2) -> dict[str, str]:
    """CIFAR-100's python format: pickled dicts with uint8 rows of 3072 bytes (R, G, B planes)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(per_class: int) -> dict:
        labels = np.repeat(np.arange(100), per_class)
        # Class-dependent mean colour, so a model can learn something.
        base = (labels[:, None] * 2.5).astype(np.float64)
        data = np.clip(base + rng.normal(0, 20, size=(len(labels), 3072)), 0, 255).astype(np.uint8)
        return {
            "data": data,
            "fine_labels": labels.tolist(),
            "coarse_labels": (labels // 5).tolist(),
            "filenames": [f"img{i}.png" for i in range(len(labels))],
            "batch_label": "fixture",
        }

    for name, per_class in (("train", per_class_train), ("test", per_class_test)):
        with open(folder / name, "wb") as f:
            pickle.dump(batch(per_class), f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump(
            {
                "fine_label_names": [f"c{i}" for i in range(100)],
                "coarse_label_names": [f"s{i}" for i in range(20)],
            },
            f,
            protocol=2,
        )
    return {name: _md5(folder / name) for name in ("train", "test", "meta")}


@pytest.fixture
def cifar100_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_cifar100(root)  # a user's own copy: the official format, not the official checksums
    return root


def test_a_users_own_cifar100_copy(cifar100_root: Path, capsys) -> None:
    bundle = build_dataset(
        DatasetConfig(name="cifar100", root=str(cifar100_root), val_fraction=0.2)
    )
    assert "checksums differ" in capsys.readouterr().err  # said once, not an error
    assert bundle.num_classes == 100 and bundle.input_shape == (3, 32, 32)
    assert len(bundle.train) == 480 and len(bundle.val) == 120 and len(bundle.test) == 200
    assert bundle.train.x.dtype == torch.uint8 and bundle.train.x.shape[1:] == (3, 32, 32)
    assert bundle.augment == "cifar"
    # Every class appears in the validation split (stratified), and the test split is the file's.
    assert len(torch.unique(bundle.val.y)) == 100
    _idx, x, y = next(
        iterate_batches(
            bundle, bundle.train, batch_size=16, device=torch.device("cpu"), seed=0, augment=True
        )
    )
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (16,)


def test_cifar_format_is_verified_and_pickles_cannot_run_code(
    cifar100_root: Path, tmp_path: Path
) -> None:
    folder = cifar100_root / "cifar-100-python"
    with open(folder / "test", "rb") as f:
        batch = pickle.load(f)
    batch["fine_labels"] = [150] * len(batch["fine_labels"])  # out of range
    with open(folder / "test", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(UserError, match="labels outside 0–99"):
        build_dataset(DatasetConfig(name="cifar100", root=str(cifar100_root)))

    class Payload:
        def __reduce__(self):
            return (Path("/nonexistent").touch, ())

    with open(folder / "test", "wb") as f:
        pickle.dump({"data": Payload(), "fine_labels": []}, f, protocol=2)
    with pytest.raises(UserError, match="refusing to load"):
        build_dataset(DatasetConfig(name="cifar100", root=str(cifar100_root)))


def test_download_without_network_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    # Whatever stops the download (here a refused connection), the user gets one line.
    import urllib.request

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse)
    config = write_yaml(
        tmp_path / "d.yaml",
        {
            "name": "d",
            "dataset": {"name": "cifar10", "root": str(tmp_path / "data"), "download": True},
            "pairs": [{"teacher": {"model": "resnet8"}, "student": {"model": "resnet8"}}],
            "methods": [{"name": "kd"}],
        },
    )
    assert main(["run", str(config), "--output", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "download" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "optuna.db").exists()  # no stores for unreadable data


def test_missing_cifar_is_one_line(tmp_path: Path, capsys) -> None:
    config = write_yaml(
        tmp_path / "c.yaml",
        {
            "name": "c",
            "dataset": {"name": "cifar100", "root": str(tmp_path / "nowhere")},
            "pairs": [{"teacher": {"model": "resnet8"}, "student": {"model": "resnet8"}}],
            "methods": [{"name": "kd"}],
        },
    )
    assert main(["validate", str(config)]) == 2
    assert "dataset.root: folder not found" in capsys.readouterr().err


def write_imagefolder(root: Path, classes=("cat", "dog", "emu"), per_class=(10, 3)) -> None:
    rng = np.random.default_rng(1)
    for split, n in zip(("train", "val"), per_class):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(80 * c, 30, size=(40, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_imagefolder_layout_through_torchvision(tmp_path: Path) -> None:
    write_imagefolder(tmp_path / "imgs")
    config = DatasetConfig(
        name="imagefolder", root=str(tmp_path / "imgs"), image_size=32, val_fraction=0.2
    )
    bundle = build_dataset(config)
    assert bundle.num_classes == 3 and bundle.input_shape == (3, 32, 32)
    assert len(bundle.train) == 24 and len(bundle.val) == 6 and len(bundle.test) == 9
    assert not bundle.train.in_memory and bundle.augment == "imagenet"
    dev = torch.device("cpu")
    batches = list(
        iterate_batches(bundle, bundle.train, batch_size=8, device=dev, seed=0, augment=True)
    )
    assert sum(len(y) for _, _, y in batches) == 24
    assert all(x.shape[1:] == (3, 32, 32) for _, x, _ in batches)
    # Evaluation reads the centre crop, deterministically.
    a = torch.cat([x for _, x, _ in iterate_batches(bundle, bundle.test, batch_size=4, device=dev)])
    b = torch.cat([x for _, x, _ in iterate_batches(bundle, bundle.test, batch_size=5, device=dev)])
    assert torch.equal(a, b)
    # The same (seed, epoch) gives the same augmented crops.
    again = list(
        iterate_batches(bundle, bundle.train, batch_size=8, device=dev, seed=0, augment=True)
    )
    assert all(torch.equal(p[1], q[1]) for p, q in zip(batches, again))


@pytest.mark.slow
def test_tiny_cifar_study_with_zoo_teacher_and_timm_student(
    cifar100_root: Path, tmp_path: Path, capsys
) -> None:
    import optuna

    config = write_yaml(
        tmp_path / "cifar.yaml",
        {
            "name": "tiny-cifar",
            "seeds": 1,
            "device": "cpu",
            "dataset": {"name": "cifar100", "root": str(cifar100_root), "val_fraction": 0.2},
            "teacher_train": {"epochs": 1, "batch_size": 64},
            "train": {"epochs": 1, "batch_size": 64},
            "pairs": [
                {
                    "name": "resnet8-timm",
                    "teacher": {"model": "resnet8"},
                    "student": {"model": "timm:test_resnet"},
                    "train": {"lr": 0.01},
                }
            ],
            "methods": [{"name": "kd"}, {"name": "redistill"}],
        },
    )
    out = tmp_path / "out"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    assert "resnet8-timm" in capsys.readouterr().out
    storage = f"sqlite:///{out / 'optuna.db'}"
    names = [
        s.study_name
        for s in optuna.get_all_study_summaries(storage)
        if not s.study_name.endswith("/_protocol")
    ]
    assert len(names) == 2
    for name in names:
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert [t.state.name for t in trials] == ["COMPLETE"]
        assert 0.0 <= trials[0].user_attrs["test/top1"] <= 1.0


def test_validate_reads_the_files_not_only_their_names(cifar100_root: Path, capsys) -> None:
    config = write_yaml(
        cifar100_root.parent / "c.yaml",
        {
            "name": "c",
            "dataset": {"name": "cifar100", "root": str(cifar100_root)},
            "pairs": [{"teacher": {"model": "resnet8"}, "student": {"model": "resnet8"}}],
            "methods": [{"name": "kd"}],
        },
    )
    assert main(["validate", str(config)]) == 0
    capsys.readouterr()
    (cifar100_root / "cifar-100-python" / "test").write_bytes(b"not a pickle at all")
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset.root" in err and "not a CIFAR batch file" in err
    assert "cifar-100-python/test" in err
    # --skip-files skips the reading too (a laptop without the data).
    assert main(["validate", "--skip-files", str(config)]) == 0
