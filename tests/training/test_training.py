"""The cohort trainer and the teacher cache, on real data and real models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from redistill_study.config import DatasetConfig, TrainConfig
from redistill_study.data import build_dataset
from redistill_study.losses import create_method
from redistill_study.training import (
    TeacherSpec,
    make_member,
    make_runtime,
    obtain_teacher,
    train_cohort,
)

RECIPE = TrainConfig(epochs=2, batch_size=64, lr=0.05)


@pytest.fixture(scope="module")
def bundle():
    return build_dataset(DatasetConfig())


@pytest.fixture(scope="module")
def runtime():
    return make_runtime("cpu", "fp32", "off", False)


def _teacher_table(bundle) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(len(bundle.train), 10, generator=gen) * 3


def _member(key, method: str, seed: int, runtime, **hp):
    return make_member(
        key,
        model_name="digits_mlp_small",
        model_args={},
        num_classes=10,
        seed=seed,
        method=create_method(method, **hp),
        recipe=RECIPE,
        runtime=runtime,
    )


def _state(member) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in member.model.state_dict().items()}


def test_cohort_equals_solo_runs_exactly(bundle, runtime) -> None:
    # The one-by-one engine: every member ends with exactly the weights it has alone.
    table = _teacher_table(bundle)
    teacher = lambda idx, x, y: table[idx]  # noqa: E731
    specs = [("kd", {}), ("redistill", {}), ("redistill", {"lam": -0.5}), ("ce", {})]
    cohort = [_member(i, m, seed=7, runtime=runtime, **hp) for i, (m, hp) in enumerate(specs)]
    engine = train_cohort(
        cohort, bundle, RECIPE, data_seed=7, runtime=runtime, teacher=teacher, vectorize=False
    )
    assert engine == "sequential"
    for i, (m, hp) in enumerate(specs):
        solo = _member(i, m, seed=7, runtime=runtime, **hp)
        train_cohort([solo], bundle, RECIPE, data_seed=7, runtime=runtime, teacher=teacher)
        for key, value in _state(solo).items():
            assert torch.equal(value, _state(cohort[i])[key]), (m, key)
        assert solo.history == cohort[i].history


def test_stopping_one_member_leaves_the_others_running(bundle, runtime) -> None:
    table = _teacher_table(bundle)
    members = [_member(i, "kd", seed=i, runtime=runtime) for i in range(3)]
    seen: list[tuple[int, int]] = []

    def on_epoch_end(member, epoch, stats) -> bool:
        seen.append((member.key, epoch))
        return member.key != 1  # "prune" member 1 after its first epoch

    train_cohort(
        members,
        bundle,
        RECIPE,
        data_seed=0,
        runtime=runtime,
        teacher=lambda idx, x, y: table[idx],
        on_epoch_end=on_epoch_end,
    )
    assert [m.outcome for m in members] == ["complete", "pruned", "complete"]
    assert (1, 1) not in seen and (0, 1) in seen and (2, 1) in seen


def test_same_seed_same_numbers(bundle, runtime) -> None:
    table = _teacher_table(bundle)
    runs = []
    for _ in range(2):
        m = _member(0, "redistill", seed=3, runtime=runtime)
        train_cohort(
            [m], bundle, RECIPE, data_seed=3, runtime=runtime, teacher=lambda i, x, y: table[i]
        )
        runs.append(m.history)
    assert runs[0] == runs[1]


def test_nan_loss_ends_only_that_member(bundle, runtime) -> None:
    table = _teacher_table(bundle)
    table_nan = table.clone()
    table_nan[5] = float("nan")
    good = _member(0, "kd", seed=0, runtime=runtime)
    bad = _member(1, "kd", seed=0, runtime=runtime)
    train_cohort(
        [good], bundle, RECIPE, data_seed=0, runtime=runtime, teacher=lambda i, x, y: table[i]
    )
    train_cohort(
        [bad], bundle, RECIPE, data_seed=0, runtime=runtime, teacher=lambda i, x, y: table_nan[i]
    )
    assert good.outcome == "complete"
    assert bad.outcome == "diverged" and "non-finite" in bad.reason


def test_bf16_autocast_path_runs_on_cpu(bundle) -> None:
    rt = make_runtime("cpu", "bf16", "on", False)
    assert rt.autocast_dtype == torch.bfloat16 and rt.channels_last
    table = _teacher_table(bundle)
    recipe = RECIPE.model_copy(update={"epochs": 4})
    ms = [
        make_member(
            i,
            model_name="digits_cnn",
            model_args={"width": 8},
            num_classes=10,
            seed=0,
            method=create_method(name),
            recipe=recipe,
            runtime=rt,
        )
        for i, name in enumerate(["ce", "redistill"])
    ]
    train_cohort(ms, bundle, recipe, data_seed=0, runtime=rt, teacher=lambda i, x, y: table[i])
    assert all(m.outcome == "complete" for m in ms)
    assert ms[0].history[-1]["val/top1"] > 0.5  # it learns under bf16 autocast


def test_teacher_is_trained_once_then_read_from_cache(bundle, runtime, tmp_path: Path) -> None:
    spec = TeacherSpec(
        model="digits_mlp",
        num_classes=10,
        data_fingerprint=bundle.fingerprint,
        seed=0,
        recipe=RECIPE,
    )
    first, meta1 = obtain_teacher(spec, bundle, tmp_path, runtime)
    second, meta2 = obtain_teacher(spec, bundle, tmp_path, runtime)
    assert meta1["source"] == "trained" and meta2["source"] == "cache"
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    other = TeacherSpec(
        model="digits_mlp",
        num_classes=10,
        data_fingerprint=bundle.fingerprint,
        seed=0,
        recipe=RECIPE.model_copy(update={"lr": 0.01}),
    )
    assert other.key() != spec.key()
    assert len(list((tmp_path / "teachers").glob("*.pt"))) == 1
