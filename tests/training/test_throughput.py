"""The fast data path: on-device augmentation matches torchvision's, and the teacher-logit cache
follows the teacher, the data and the noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from torchvision.transforms import v2

from redistill_study.config import DatasetConfig, PairConfig, RecipeConfig, TrainConfig
from redistill_study.data import build_dataset
from redistill_study.data.augment import random_crop_flip
from redistill_study.noise import NoiseSetting
from redistill_study.study.cell import cached_logits, logits_cache_key
from redistill_study.study.plan import Cell
from redistill_study.training import TeacherSpec, make_runtime, seeded_model

PLAIN = RecipeConfig(name="plain", primary=True)

N = 3000


def _position_images(n: int) -> torch.Tensor:
    """Channel 0 holds 1 + row, channel 1 holds 1 + column: a crop reveals its offset."""
    rows = torch.arange(32).view(32, 1).expand(32, 32) + 1
    cols = torch.arange(32).view(1, 32).expand(32, 32) + 1
    img = torch.stack([rows, cols, rows]).to(torch.uint8)
    return img.unsqueeze(0).expand(n, 3, 32, 32).contiguous()


def _offsets_and_flips(out: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centre_row = out[:, 0, 16, 16].long()
    oy = centre_row - 1 - 16 + 4
    flipped = out[:, 1, 16, 17].long() < out[:, 1, 16, 16].long()
    centre_col = out[:, 1, 16, 16].long()
    ox = torch.where(flipped, centre_col - 1 - 15 + 4, centre_col - 1 - 16 + 4)
    return oy.numpy(), ox.numpy(), flipped.numpy()


def test_on_device_augmentation_matches_torchvision_distribution() -> None:
    images = _position_images(N)
    ours = random_crop_flip(images, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    tv = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    theirs = torch.stack([tv(img) for img in images])
    oy_a, ox_a, flip_a = _offsets_and_flips(ours)
    oy_b, ox_b, flip_b = _offsets_and_flips(theirs)
    for a, b in ((oy_a, oy_b), (ox_a, ox_b)):
        assert a.min() == b.min() == 0 and a.max() == b.max() == 8
        counts = np.stack([np.bincount(a, minlength=9), np.bincount(b, minlength=9)])
        assert scipy.stats.chi2_contingency(counts).pvalue > 1e-3
        assert scipy.stats.chisquare(np.bincount(a, minlength=9)).pvalue > 1e-3  # uniform
    assert abs(flip_a.mean() - 0.5) < 0.04 and abs(flip_b.mean() - 0.5) < 0.04
    assert torch.equal(ours, random_crop_flip(images, torch.Generator().manual_seed(0)))
    assert not torch.equal(ours, random_crop_flip(images, torch.Generator().manual_seed(1)))


def test_teacher_logit_cache_follows_teacher_data_and_noise(tmp_path: Path) -> None:
    bundle = build_dataset(DatasetConfig())
    other_data = build_dataset(DatasetConfig(split_seed=1))
    runtime = make_runtime("cpu", "fp32", "off", False)
    pair = PairConfig.model_validate(
        {"name": "p", "teacher": {"model": "digits_mlp"}, "student": {"model": "digits_mlp_small"}}
    )
    recipe = TrainConfig(epochs=1)

    def spec(bundle, seed=0, model="digits_mlp"):
        return TeacherSpec(
            model=model,
            num_classes=10,
            data_fingerprint=bundle.fingerprint,
            seed=seed,
            recipe=recipe,
        )

    cell = Cell(pair, NoiseSetting(), PLAIN)
    base = logits_cache_key(spec(bundle), cell)
    assert logits_cache_key(spec(bundle), cell) == base
    assert logits_cache_key(spec(other_data), cell) != base  # data / split changed
    assert logits_cache_key(spec(bundle, seed=1), cell) != base  # another teacher
    assert logits_cache_key(spec(bundle, model="digits_cnn"), cell) != base
    renorm = PairConfig.model_validate(
        {
            **pair.model_dump(),
            "teacher": {"model": "digits_mlp", "normalization": {"mean": [0.5], "std": [0.2]}},
        }
    )
    assert logits_cache_key(spec(bundle), Cell(renorm, NoiseSetting(), PLAIN)) != base

    model = seeded_model("digits_mlp", 10, 0).eval()
    first = cached_logits(model, spec(bundle), cell, bundle, runtime, tmp_path)
    files = list((tmp_path / "logits").glob("*.pt"))
    assert len(files) == 1
    # A second call reads the file (a changed model would not be consulted).
    changed = seeded_model("digits_mlp", 10, 1).eval()
    again = cached_logits(changed, spec(bundle), cell, bundle, runtime, tmp_path)
    assert torch.equal(first["train"][0], again["train"][0])
    # The noisy table is derived per noise setting: a new noise gives new teacher outputs.
    logits, labels = first["train"]
    idx = torch.arange(len(labels))
    a = NoiseSetting("logit_gaussian", 1.0, seed=0).apply(logits, idx, labels, "train", len(labels))
    b = NoiseSetting("logit_gaussian", 2.0, seed=0).apply(logits, idx, labels, "train", len(labels))
    assert not torch.equal(a, b) and not torch.equal(a, logits)


def test_channels_last_and_compile_paths() -> None:
    runtime = make_runtime("cpu", "fp32", "on", False)
    model = runtime.prepare_model(seeded_model("resnet8", 10, 0))
    x = runtime.prepare_input(torch.randn(2, 3, 32, 32))
    assert x.is_contiguous(memory_format=torch.channels_last)
    reference = seeded_model("resnet8", 10, 0).eval()
    torch.testing.assert_close(model.eval()(x), reference(x.contiguous()), rtol=1e-4, atol=1e-5)
    pytest.importorskip("torch._dynamo")
    compiled_rt = make_runtime("cpu", "fp32", "off", True)
    small = seeded_model("digits_mlp", 10, 0)
    try:
        compiled = compiled_rt.maybe_compile(small)
        out = compiled(torch.randn(4, 1, 8, 8))
    except Exception as exc:  # no working C++ toolchain for inductor on this machine
        pytest.skip(f"torch.compile unavailable here: {type(exc).__name__}")
    assert out.shape == (4, 10)
