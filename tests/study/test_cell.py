"""What a cell's students are taught: one teacher forward per teacher model and batch for the
whole cohort, however many cells and members it teaches, each cell's noise applied to that one
result; cells that differ in their teacher model get their own pass."""

from __future__ import annotations

import torch

from redistill_study.config import DatasetConfig, PairConfig, RecipeConfig, TrainConfig
from redistill_study.data import build_dataset
from redistill_study.losses import create_method
from redistill_study.models import create_model
from redistill_study.noise import NoiseSetting
from redistill_study.study.cell import CellTeacher
from redistill_study.study.plan import Cell
from redistill_study.training import make_member, make_runtime, train_cohort

RECIPE = TrainConfig(epochs=1, batch_size=64, lr=0.05)


def _teachers(bundle, runtime, model, pair: PairConfig) -> list[CellTeacher]:
    cells = [
        Cell(pair, NoiseSetting("none"), RecipeConfig(name="plain")),
        Cell(pair, NoiseSetting("confident_wrong", 0.3, seed=1), RecipeConfig(name="plain")),
    ]
    # No cached table: the teacher runs on every batch, as it does with augmentation.
    return [CellTeacher(c, model, None, {}, {}, runtime, bundle) for c in cells]


def _cohort(bundle, runtime, teachers: list[CellTeacher], per_cell: int) -> list:
    return [
        make_member(
            (i, k),
            model_name="digits_mlp_small",
            model_args={},
            num_classes=10,
            seed=k,
            method=create_method("kd"),
            recipe=RECIPE,
            runtime=runtime,
            teacher=t.teacher_fn(),
        )
        for i, t in enumerate(teachers)
        for k in range(per_cell)
    ]


def test_one_teacher_forward_per_batch_for_a_cohort_of_two_cells() -> None:
    bundle = build_dataset(DatasetConfig())
    runtime = make_runtime("cpu", "fp32", "off", False)
    pair = PairConfig(teacher={"model": "digits_mlp"}, student={"model": "digits_mlp_small"})
    model = create_model("digits_mlp", num_classes=10).eval()
    forwards = []
    model.register_forward_hook(lambda m, i, o: forwards.append(i[0].shape[0]))
    teachers = _teachers(bundle, runtime, model, pair)
    assert teachers[0].teacher_fn() is teachers[0].teacher_fn()  # one function per cell
    members = _cohort(bundle, runtime, teachers, per_cell=4)  # 8 members, 2 cells
    train_cohort(members, bundle, RECIPE, data_seed=0, runtime=runtime, evaluate_val=False)
    batches = -(-len(bundle.train) // RECIPE.batch_size)
    assert len(forwards) == batches  # not 8 × batches, nor 2 × batches

    # The shared forward changes nothing: the confidently-wrong cell's logits for a batch are
    # its noise applied to the clean cell's forward, exactly.
    idx = torch.arange(32)
    assert bundle.train.x is not None
    x, y = bundle.train.x[:32].float(), bundle.train.y[:32]
    clean, wrong = (t.teacher_fn()(idx, x, y) for t in teachers)
    with torch.no_grad():
        direct = model(x).float()
    assert torch.equal(clean, direct)
    expected = teachers[1].cell.noise.apply(direct.clone(), idx, y, "train", len(bundle.train))
    assert torch.equal(wrong, expected) and not torch.equal(wrong, clean)


def test_another_teacher_model_gets_its_own_pass() -> None:
    bundle = build_dataset(DatasetConfig())
    runtime = make_runtime("cpu", "fp32", "off", False)
    pair = PairConfig(teacher={"model": "digits_mlp"}, student={"model": "digits_mlp_small"})
    counts = []
    teachers = []
    for _ in range(2):
        model = create_model("digits_mlp", num_classes=10).eval()
        model.register_forward_hook(lambda m, i, o: counts.append(1))
        teachers += _teachers(bundle, runtime, model, pair)[:1]
    members = _cohort(bundle, runtime, teachers, per_cell=2)
    train_cohort(members, bundle, RECIPE, data_seed=0, runtime=runtime, evaluate_val=False)
    batches = -(-len(bundle.train) // RECIPE.batch_size)
    assert len(counts) == 2 * batches
