"""The model zoo: every CIFAR model builds and runs; parameter counts match the published ones;
checkpoints load in every published shape, safely."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from redistill_study.errors import UserError
from redistill_study.models import count_parameters, create_model, list_models, model_family
from redistill_study.models.checkpoint import load_checkpoint, save_atomic

CIFAR = [n for n in list_models() if model_family(n) == "cifar"]
PUBLISHED_MILLIONS = {
    "resnet20": 0.28,
    "resnet56": 0.86,
    "resnet110": 1.74,
    "resnet8x4": 1.23,
    "resnet32x4": 7.43,
    "wrn_16_2": 0.70,
    "wrn_40_2": 2.26,
}


def test_the_literature_family_is_registered() -> None:
    expected = {f"resnet{d}" for d in (8, 14, 20, 32, 44, 56, 110)} | {
        "resnet8x4",
        "resnet32x4",
        "wrn_16_1",
        "wrn_16_2",
        "wrn_40_1",
        "wrn_40_2",
        "vgg8",
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
        "MobileNetV2",
        "ShuffleV1",
        "ShuffleV2",
    }
    assert expected <= set(CIFAR)


@pytest.mark.parametrize("name", CIFAR)
def test_forward_pass(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=100).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100) and torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "millions"), sorted(PUBLISHED_MILLIONS.items()))
def test_parameter_counts_match_published(name: str, millions: float) -> None:
    assert count_parameters(create_model(name, num_classes=100)) / 1e6 == pytest.approx(
        millions, rel=0.05
    )


def test_external_libraries_and_unknown_names() -> None:
    timm_model = create_model("timm:test_resnet", num_classes=7)
    tv_model = create_model("torchvision:resnet18", num_classes=7)
    x = torch.randn(2, 3, 32, 32)
    assert timm_model(x).shape == (2, 7) and tv_model.eval()(x).shape == (2, 7)
    with pytest.raises(KeyError, match="did you mean 'resnet56'"):
        create_model("resnet65", num_classes=10)
    with pytest.raises(KeyError, match="timm:resnet18"):
        create_model("timm:resnet81", num_classes=10)
    with pytest.raises(KeyError, match="unknown torchvision model"):
        create_model("torchvision:no_such_net", num_classes=10)


@pytest.mark.parametrize("shape", ["plain", "model", "state_dict", "module_prefix", "nested"])
def test_checkpoint_round_trip_in_published_shapes(tmp_path: Path, shape: str) -> None:
    torch.manual_seed(1)
    source = create_model("resnet8", num_classes=10)
    state = source.state_dict()
    if shape == "model":
        obj = {"model": state, "epoch": 240, "best_acc": 71.2}
    elif shape == "state_dict":
        obj = {"state_dict": state, "optimizer": {"lr": 0.05}}
    elif shape == "module_prefix":
        obj = {"model": {f"module.{k}": v for k, v in state.items()}}
    elif shape == "nested":
        obj = {"state_dict": {"model": state}}
    else:
        obj = state
    path = tmp_path / "ckpt.pth"
    save_atomic(obj, path)
    target = load_checkpoint(create_model("resnet8", num_classes=10), path)
    for key, value in target.state_dict().items():
        assert torch.equal(value, state[key])


def test_checkpoint_mismatches_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "resnet8_c10.pth"
    save_atomic(create_model("resnet8", num_classes=10).state_dict(), path)
    with pytest.raises(UserError, match=r"shape mismatch at 'fc.weight'.*class count"):
        load_checkpoint(create_model("resnet8", num_classes=100), path)
    with pytest.raises(UserError, match="does not fit the architecture"):
        load_checkpoint(create_model("resnet14", num_classes=10), path)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"checkpoint \(truncated or damaged"):
        load_checkpoint(create_model("resnet8", num_classes=10), truncated)
    foreign = tmp_path / "foreign.pth"
    foreign.write_text("hello")
    with pytest.raises(UserError, match=r"checkpoint \(not a torch\.save file"):
        load_checkpoint(create_model("resnet8", num_classes=10), foreign)


class Payload:
    """An arbitrary object: unpickling it would run code of the file's choosing."""


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    # weights_only=True: a checkpoint carrying arbitrary objects does not load.
    path = tmp_path / "evil.pth"
    torch.save(
        {"model": create_model("resnet8", num_classes=10).state_dict(), "x": Payload()}, path
    )
    with pytest.raises(UserError, match="not a readable") as info:
        load_checkpoint(create_model("resnet8", num_classes=10), path)
    message = str(info.value)
    assert "could run code" in message and "weights_only" not in message
