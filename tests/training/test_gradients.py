"""Gradient norms and clipping, per member: one by one against a hand-written loop with
``torch.nn.utils.clip_grad_norm_``, the wide model against the members one by one, and where a
member that blew up did so."""

from __future__ import annotations

import pytest
import torch

from redistill_study.config import DatasetConfig, TrainConfig
from redistill_study.data import build_dataset, iterate_batches
from redistill_study.losses import Context, create_method
from redistill_study.losses.kd import KD
from redistill_study.training import make_member, make_runtime, train_cohort
from redistill_study.training.gradients import slot_norms, total_norm
from redistill_study.training.stacked import stack_models

RECIPE = TrainConfig(epochs=2, batch_size=64, lr=0.05, grad_clip=0.5)


@pytest.fixture(scope="module")
def digits():
    return build_dataset(DatasetConfig())


@pytest.fixture(scope="module")
def runtime():
    return make_runtime("cpu", "fp32", "off", False)


@pytest.fixture(scope="module")
def table(digits):
    return torch.randn(len(digits.train), 10, generator=torch.Generator().manual_seed(0)) * 3


def _members(runtime, methods, model="digits_mlp_small", recipe=RECIPE):
    return [
        make_member(
            i,
            model_name=model,
            model_args={},
            num_classes=10,
            seed=3,
            method=m,
            recipe=recipe,
            runtime=runtime,
        )
        for i, m in enumerate(methods)
    ]


def _train(members, digits, runtime, table, recipe, **options) -> str:
    """Train on digits with a fixed random teacher table and data seed 7."""
    teacher = lambda i, x, y: table[i]  # noqa: E731
    return train_cohort(
        members, digits, recipe, data_seed=7, runtime=runtime, teacher=teacher, **options
    )


def test_one_by_one_clips_as_clip_grad_norm_would_in_a_plain_loop(digits, runtime, table):
    (member,) = _members(runtime, [create_method("kd")])
    (reference,) = _members(runtime, [create_method("kd")])
    _train([member], digits, runtime, table, RECIPE, vectorize=False, evaluate_val=False)
    # The same training written out by hand, clipping with torch's own function.
    norms = []
    for epoch in range(RECIPE.epochs):
        for group in reference.optimizer.param_groups:
            group["lr"] = RECIPE.lr * 0.1 ** sum(epoch >= m for m in RECIPE.milestones)
        context = Context(epoch=epoch, total_epochs=RECIPE.epochs, num_classes=10)
        for idx, x, y in iterate_batches(
            digits, digits.train, batch_size=64, device="cpu", seed=7, epoch=epoch, augment=True
        ):
            terms = reference.method(reference.model(x), table[idx], y, context)
            reference.optimizer.zero_grad(set_to_none=True)
            sum(terms.values()).backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(reference.model.parameters(), 0.5)))
            reference.optimizer.step()
    for key, value in member.model.state_dict().items():
        assert torch.equal(value, reference.model.state_dict()[key]), key
    assert max(norms) > 0.5  # the clip was binding
    last = member.history[-1]
    assert last["train/grad_norm_last"] == pytest.approx(norms[-1], rel=1e-6)
    steps = len(norms) // RECIPE.epochs
    assert last["train/grad_norm_max"] == pytest.approx(max(norms[-steps:]), rel=1e-6)


def test_clipping_changes_training_and_none_leaves_it_alone(digits, runtime, table):
    def final(grad_clip):
        recipe = RECIPE.model_copy(update={"grad_clip": grad_clip})
        (m,) = _members(runtime, [create_method("kd")], recipe=recipe)
        _train([m], digits, runtime, table, recipe, vectorize=False, evaluate_val=False)
        return torch.cat([p.detach().flatten() for p in m.model.parameters()]), m.history

    clipped, _ = final(0.5)
    free, history = final(None)
    huge, _ = final(1e6)
    assert not torch.equal(clipped, free)
    assert torch.equal(free, huge)  # a clip that never binds changes nothing
    assert max(h["train/grad_norm_max"] for h in history) > 0.5  # measured unclipped too


def test_each_slot_norm_is_that_members_own(runtime, digits):
    members = _members(runtime, [create_method("kd")] * 3, model="digits_cnn_small")
    for k, m in enumerate(members):
        with torch.no_grad():
            for p in m.model.parameters():
                p.mul_(1 + 0.1 * k)  # three different members
    wide = stack_models([m.model for m in members], digits.input_shape)
    assert wide is not None
    x = torch.randn(16, *digits.input_shape)
    wide(x).pow(2).sum().backward()
    for m in members:
        m.model(x).pow(2).sum().backward()
    norms = slot_norms(list(wide.body.parameters()), 3)
    expected = torch.stack([total_norm(list(m.model.parameters())) for m in members])
    assert torch.allclose(norms, expected, rtol=1e-5)


@pytest.mark.parametrize("model", ["digits_mlp_small", "digits_cnn_small"])
def test_clipped_members_in_a_wide_model_equal_clipped_solo_training(digits, runtime, table, model):
    methods = [create_method("kd"), create_method("redistill"), create_method("ckd")]
    recipe = RECIPE.model_copy(update={"epochs": 4, "grad_clip": 0.1})
    runs = {}
    for vectorize in (False, True):
        members = _members(runtime, methods, model=model, recipe=recipe)
        engine = _train(members, digits, runtime, table, recipe, vectorize=vectorize)
        runs[engine] = members
    for solo, wide in zip(runs["sequential"], runs["vectorised"]):
        ref = torch.cat([p.detach().flatten() for p in solo.model.parameters()])
        got = torch.cat([p.detach().flatten() for p in wide.model.parameters()])
        # Round-off only: the engines sum in other orders (the vectorised tests' floor).
        assert ((got - ref).norm() / ref.norm()).item() < 1e-2
        for key in ("train/grad_norm_max", "train/grad_norm_last"):
            assert wide.history[-1][key] == pytest.approx(solo.history[-1][key], rel=2e-2)
        assert max(h["train/grad_norm_max"] for h in solo.history) > 0.1  # binding


@pytest.mark.parametrize(
    ("model", "channels_last"), [("digits_mlp_small", "off"), ("digits_cnn_small", "on")]
)
def test_members_with_their_own_clips_share_a_wide_model(digits, table, model, channels_last):
    # A recipe's clip travels with each member: clipped and unclipped students train together,
    # each as it would alone with its own clip (channels-last gradients included).
    runtime = make_runtime("cpu", "fp32", channels_last, False)
    clips = [0.1, None, 0.4]
    recipes = [RECIPE.model_copy(update={"epochs": 3, "grad_clip": c}) for c in clips]
    solo = []
    for recipe in recipes:
        (m,) = _members(runtime, [create_method("redistill")], model=model, recipe=recipe)
        _train([m], digits, runtime, table, recipe, vectorize=False, evaluate_val=False)
        solo.append(m)
    together = [
        _members(runtime, [create_method("redistill")], model=model, recipe=r)[0] for r in recipes
    ]
    engine = _train(together, digits, runtime, table, recipes[1], evaluate_val=False)
    assert engine == "vectorised"
    finals = []
    for alone, wide in zip(solo, together):
        ref = torch.cat([p.detach().flatten() for p in alone.model.parameters()])
        got = torch.cat([p.detach().flatten() for p in wide.model.parameters()])
        assert ((got - ref).norm() / ref.norm()).item() < 1e-2  # round-off only
        finals.append(got)
    # The clips bind differently, so the three really trained differently.
    for clipped in (finals[0], finals[2]):
        assert (clipped - finals[1]).norm() / finals[1].norm() > 0.01
    assert max(h["train/grad_norm_max"] for h in solo[1].history) > 0.4


class _Overflows(KD):
    """Test-only method: its KD term becomes infinite from the second epoch's third step."""

    name = "test_overflows"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def terms(self, student_logits, teacher_logits, labels, context: Context):
        terms = super().terms(student_logits, teacher_logits, labels, context)
        if context.epoch >= 1:
            self.calls += 1
            if self.calls >= 3:
                terms["kd"] = terms["kd"] * float("inf")
        return terms


@pytest.mark.parametrize("vectorize", [False, True])
def test_a_diverged_member_says_where_it_blew_up(digits, runtime, table, vectorize):
    members = _members(runtime, [create_method("kd"), _Overflows()], recipe=RECIPE)
    _train(members, digits, runtime, table, RECIPE, vectorize=vectorize)
    healthy, blown = members
    assert healthy.outcome == "complete" and not healthy.divergence
    assert blown.outcome == "diverged"
    steps = -(-len(digits.train) // RECIPE.batch_size)  # optimiser steps per epoch
    where = blown.divergence
    assert where["epoch"] == 2 and where["step"] == steps + 3, where
    assert where["overflowed"] == "kd"  # the term that blew up first, not all that followed
    last = float(where["last_finite_grad_norm"])
    assert 0 < last < float("inf")
