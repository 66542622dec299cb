"""The vectorised cohort: one wide model for K students, checked against the same students
trained one by one, on real data with batch norm and on-device augmentation."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from redistill_study.config import DatasetConfig, TrainConfig
from redistill_study.data import build_dataset, dataset_info
from redistill_study.losses import Context, create_method
from redistill_study.losses.kd import KD
from redistill_study.models import create_model
from redistill_study.training import make_member, make_runtime, train_cohort
from redistill_study.training.stacked import stack_models

FASHION = dataset_info("fashion_mnist")
needs_fashion = pytest.mark.skipif(
    FASHION.missing(__import__("pathlib").Path(FASHION.default_root)) is not None,
    reason="Fashion-MNIST is not installed (Debian's dataset-fashion-mnist; .ci/run installs it)",
)
RECIPE = TrainConfig(epochs=2, batch_size=64, lr=0.05)
SPECS = [
    ("kd", {}),
    ("redistill", {}),
    ("redistill", {"lam": -0.5}),
    ("dkd", {"warmup": 2}),
    ("ckd", {}),
]


@contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fashion():
    return build_dataset(DatasetConfig(name="fashion_mnist", train_subset=600, val_fraction=0.05))


@pytest.fixture(scope="module")
def runtime():
    return make_runtime("cpu", "fp32", "off", False)


@pytest.fixture(scope="module")
def teacher(fashion, runtime):
    t = make_member(
        "teacher",
        model_name="fm_mlp_m",
        model_args={},
        num_classes=10,
        seed=1,
        method=create_method("ce"),
        recipe=RECIPE,
        runtime=runtime,
    )
    train_cohort([t], fashion, RECIPE, data_seed=1, runtime=runtime, evaluate_val=False)
    t.model.eval()
    return lambda idx, x, y: t.model(x).detach()  # a forward per (augmented) batch


def _cohort(runtime, specs=SPECS, model="fm_cnn_xs", methods=None):
    methods = methods or [create_method(n, **hp) for n, hp in specs]
    return [
        make_member(
            i,
            model_name=model,
            model_args={},
            num_classes=10,
            seed=5,
            method=m,
            recipe=RECIPE,
            runtime=runtime,
        )
        for i, m in enumerate(methods)
    ]


def _flat(member) -> torch.Tensor:
    return torch.cat(
        [
            p.detach().flatten()
            for p in member.model.state_dict().values()
            if p.dtype.is_floating_point
        ]
    )


@needs_fashion
def test_vectorised_matches_one_by_one_within_round_off(fashion, runtime, teacher) -> None:
    # Tolerance: the spread that changing the thread count alone causes in the one-by-one
    # engine (summation order), measured in the same run: the wide model may differ from the
    # one-by-one reference by at most three times that, and never in how well it learns.
    assert fashion.augment == "crop_flip"
    runs = {}
    for label, n_threads, vectorize in (
        ("ref", 2, False),
        ("threads", 1, False),
        ("wide", 2, True),
    ):
        with threads(n_threads):
            members = _cohort(runtime)
            engine = train_cohort(
                members,
                fashion,
                RECIPE,
                data_seed=5,
                runtime=runtime,
                teacher=teacher,
                vectorize=vectorize,
            )
        runs[label] = (engine, members)
    assert runs["wide"][0] == "vectorised" and runs["ref"][0] == "sequential"
    for i, (name, _) in enumerate(SPECS):
        ref = _flat(runs["ref"][1][i])
        spread = ((_flat(runs["threads"][1][i]) - ref).norm() / ref.norm()).item()
        gap = ((_flat(runs["wide"][1][i]) - ref).norm() / ref.norm()).item()
        # The floor: on a processor where a change of threads moves nothing, round-off between
        # the engines still grows over epochs (1 % of the weights' norm is far from a bug's).
        assert gap <= 3 * max(spread, 1e-2), (name, gap, spread)
        accuracy = [runs[k][1][i].history[-1]["val/top1"] for k in ("ref", "wide")]
        assert abs(accuracy[0] - accuracy[1]) <= 0.02, (name, accuracy)
        # Batch norm kept each member's own running statistics.
        bn = "features.1.running_mean"
        wide_bn = runs["wide"][1][i].model.state_dict()[bn]
        assert torch.allclose(wide_bn, runs["ref"][1][i].model.state_dict()[bn], atol=0.05)


@needs_fashion
def test_one_optimiser_step_agrees_to_float_precision(fashion, runtime, teacher) -> None:
    one_step = TrainConfig(epochs=1, batch_size=600, lr=0.05, val_every=1)
    out = {}
    for vectorize in (False, True):
        members = _cohort(runtime)
        for m in members:
            m.optimizer.param_groups[0]["lr"] = one_step.lr
        train_cohort(
            members,
            fashion,
            one_step,
            data_seed=5,
            runtime=runtime,
            teacher=teacher,
            vectorize=vectorize,
            evaluate_val=False,
        )
        out[vectorize] = members
    for a, b in zip(out[False], out[True]):
        ref = _flat(a)
        assert ((_flat(b) - ref).norm() / ref.norm()).item() < 1e-6


class _Explodes(KD):
    name = "test_explodes"

    def terms(self, student_logits, teacher_logits, labels, context: Context):
        terms = super().terms(student_logits, teacher_logits, labels, context)
        if context.epoch >= 1:
            terms["kd"] = terms["kd"] * float("nan")
        return terms


@pytest.mark.parametrize("model", ["digits_cnn_small", "digits_mlp_small"])
def test_a_member_that_leaves_disturbs_no_other(runtime, model) -> None:
    # Slot 1 is pruned after its first epoch and slot 3 diverges; the control cohort keeps
    # both healthy. The members that stay end bit for bit as in the control, and so does
    # slot 0 of a cohort that never had the others (the spare slots compute, unused).
    digits = build_dataset(DatasetConfig())
    table = torch.randn(len(digits.train), 10, generator=torch.Generator().manual_seed(0))

    def run(methods, prune: bool):
        members = _cohort(runtime, model=model, methods=methods)
        engine = train_cohort(
            members,
            digits,
            RECIPE.model_copy(update={"epochs": 3}),
            data_seed=5,
            runtime=runtime,
            teacher=lambda i, x, y: table[i],
            width=4,
            on_epoch_end=lambda member, epoch, stats: not (prune and member.key == 1),
        )
        assert engine == "vectorised"
        return members

    kd, ckd, rd = create_method("kd"), create_method("ckd"), create_method("redistill")
    departures = run([kd, ckd, rd, _Explodes()], prune=True)
    assert [m.outcome for m in departures] == ["complete", "pruned", "complete", "diverged"]
    control = run([kd, ckd, rd, create_method("lr")], prune=False)
    alone = run([kd], prune=False)
    for a, b in [
        (departures[0], control[0]),
        (departures[2], control[2]),
        (departures[0], alone[0]),
    ]:
        for key, value in a.model.state_dict().items():
            assert torch.equal(value, b.model.state_dict()[key]), key
        assert a.history == b.history


def test_fallback_to_one_by_one(runtime) -> None:
    digits = build_dataset(DatasetConfig())
    table = torch.randn(len(digits.train), 10, generator=torch.Generator().manual_seed(0))
    # Different architectures in one cohort: one by one.
    members = [
        make_member(
            i,
            model_name=name,
            model_args={},
            num_classes=10,
            seed=0,
            method=create_method("kd"),
            recipe=RECIPE,
            runtime=runtime,
        )
        for i, name in enumerate(["digits_mlp_small", "digits_cnn_small"])
    ]
    engine = train_cohort(
        members, digits, RECIPE, data_seed=0, runtime=runtime, teacher=lambda i, x, y: table[i]
    )
    assert engine == "sequential" and all(m.outcome == "complete" for m in members)
    # A layer that draws random numbers, or one that mixes channels, cannot be stacked.
    dropout = [
        torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(64, 8),
            torch.nn.Dropout(0.3),
            torch.nn.Linear(8, 10),
        )
        for _ in range(2)
    ]
    assert stack_models(dropout, (1, 8, 8)) is None
    shuffle = [create_model("ShuffleV2", num_classes=10) for _ in range(2)]
    assert stack_models(shuffle, (3, 32, 32)) is None
    assert (
        stack_models([create_model("resnet8x4", num_classes=10) for _ in range(2)], (3, 32, 32))
        is not None
    )


class _InputTwice(torch.nn.Module):
    """Reads its input in two places: the first layer cannot take the shared input alone."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)
        self.head = torch.nn.Linear(2 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.conv(x) + x, 1))


@pytest.mark.parametrize(
    "name, shape", [("digits_mlp_small", (1, 8, 8)), ("fm_cnn_xs", (1, 28, 28))]
)
def test_the_first_layer_reads_the_common_input_once(name: str, shape) -> None:
    models = []
    for k in range(3):
        torch.manual_seed(k)
        models.append(create_model(name, num_classes=10).eval())
    wide = stack_models(models, shape).eval()
    assert wide.first is not None and wide.first.shared_input
    assert not [k for k in wide.state_dict() if not k.startswith("body.")]  # weights once
    x = torch.randn(5, *shape)
    with torch.no_grad():
        out = wide(x)
        for k, m in enumerate(models):
            torch.testing.assert_close(out[k], m(x), rtol=1e-5, atol=1e-5)
    # A model that reads its input twice keeps the input repeated K times, and stays exact.
    twice = []
    for k in range(3):
        torch.manual_seed(k)
        twice.append(_InputTwice().eval())
    wide = stack_models(twice, (2, 8, 8)).eval()
    assert wide is not None and not wide.first.shared_input
    x = torch.randn(5, 2, 8, 8)
    with torch.no_grad():
        out = wide(x)
        for k, m in enumerate(twice):
            torch.testing.assert_close(out[k], m(x), rtol=1e-5, atol=1e-5)
