"""The fused soft-target loss (K members in one pass, closed-form backward) against the numpy
references of every method it serves, finite differences and the members' own terms."""

from __future__ import annotations

import pytest
import torch
from test_methods import CASES, LABELS, STUDENT, TEACHER

from redistill_study.losses import Context, create_method, list_methods
from redistill_study.losses.ckd import ConditionalKD
from redistill_study.losses.fused import SlotConstants, soft_target_terms, soft_target_terms_of
from redistill_study.losses.kd import KD

FUSED_CASES = [c for c in CASES if create_method(c[0], **c[1]).soft_target_form() is not None]
# The edges of the λ axis: both limits, the side switch at −1/2 and points just beside them.
LAMBDAS = [0.0, 1e-9, -1e-9, 2 / 3, -0.5, -0.5 - 1e-9, -1.0, -1.0 + 1e-7, -5 / 3, 1.5, -2.0]


def _rows(cases, s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    methods = [create_method(name, **hp) for name, hp, _ in cases]
    return soft_target_terms_of(methods, s, [t] * len(methods), y)


def test_every_method_of_the_shared_shape_takes_part() -> None:
    # lskd standardises the student's logits and dkd splits the classes: their own terms.
    assert {c[0] for c in FUSED_CASES} == set(list_methods()) - {"dkd", "lskd"}

    class Reshaped(KD):  # a subclass that changes terms() keeps its own terms
        name = "test_reshaped"

        def terms(self, student_logits, teacher_logits, labels, context):
            return super().terms(student_logits, teacher_logits, labels, context)

    class ReshapedCKD(ConditionalKD):
        name = "test_reshaped_ckd"

        def terms(self, student_logits, teacher_logits, labels, context):
            return super().terms(student_logits, teacher_logits, labels, context)

    assert Reshaped().soft_target_form() is None and ReshapedCKD().soft_target_form() is None


def test_one_cohort_of_every_method_matches_the_numpy_references() -> None:
    k = len(FUSED_CASES)
    s = torch.tensor(STUDENT).expand(k, -1, -1)
    out = _rows(FUSED_CASES, s, torch.tensor(TEACHER), torch.tensor(LABELS))
    for row, (name, hp, reference) in zip(out, FUSED_CASES):
        expected = reference(STUDENT, TEACHER, LABELS)
        assert row[0].item() == pytest.approx(float(expected["ce"]), rel=1e-9), name
        kd = float(expected.get("kd", 0.0))
        assert row[1].item() == pytest.approx(kd, rel=1e-9, abs=1e-12), (name, hp)


def _mixed_cohort(scale: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    methods = [create_method("redistill_tuned", lam=lam, T=2.0) for lam in LAMBDAS] + [
        create_method(name, **hp) for name, hp, _ in FUSED_CASES
    ]
    k, b, c = len(methods), 6, 7
    s = (torch.randn(k, b, c, generator=gen, dtype=torch.float64) * scale).requires_grad_()
    t = torch.randn(b, c, generator=gen, dtype=torch.float64) * scale
    y = torch.randint(0, c, (b,), generator=gen)
    y[:3] = t[:3].argmax(-1)  # the teacher right on some samples, wrong on others
    return methods, s, t, y


@pytest.mark.parametrize("scale", [1.0, 6.0])
def test_values_and_gradients_equal_each_members_own_terms(scale: float) -> None:
    methods, s, t, y = _mixed_cohort(scale)
    out = soft_target_terms_of(methods, s, [t] * len(methods), y)
    (grad,) = torch.autograd.grad(out.sum(), s)
    for k, m in enumerate(methods):
        own_s = s[k].detach().clone().requires_grad_()
        terms = m(own_s, t, y, Context())
        (own_grad,) = torch.autograd.grad(sum(terms.values()), own_s)
        expected = torch.stack([terms["ce"], terms.get("kd", torch.zeros((), dtype=s.dtype))])
        assert torch.allclose(out[k], expected, rtol=1e-9, atol=1e-12), m
        assert torch.allclose(grad[k], own_grad, rtol=1e-7, atol=1e-12), m


@pytest.mark.parametrize("flip", ["none", "all", "mixed"])
def test_gradcheck_float64(flip: str) -> None:
    lams = {"none": [0.0, 2 / 3, -0.4], "all": [-5 / 3, -1.0, -0.7], "mixed": [0.0, -5 / 3, 1.0]}
    methods = [create_method("redistill_tuned", lam=lam, T=3.0) for lam in lams[flip]]
    methods.append(create_method("ckd", lam=lams[flip][0]))  # per-sample weights and CE share
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(len(methods), 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 6, generator=gen, dtype=torch.float64) * 2
    y = torch.tensor([0, 1, 2, 3, 4])
    y[0] = int(t[0].argmax())
    weights = torch.randn(len(methods), 2, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda z: soft_target_terms_of(methods, z, [t] * len(methods), y) * weights, (s,)
    )


def test_a_slot_never_depends_on_the_others() -> None:
    # Bit for bit: slot 0 alone (the others blank) and slot 0 among other methods, including a
    # slot whose logits are not finite.
    gen = torch.Generator().manual_seed(3)
    s = torch.randn(4, 8, 10, generator=gen)
    t, y = torch.randn(8, 10, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    s[3, 2, 1] = float("nan")
    kd = create_method("kd")
    full = [kd, create_method("redistill_student_first"), create_method("ckd"), kd]
    from redistill_study.losses.fused import stack_batches

    def slot0(methods):
        forms = [m.soft_target_form() if m is not None else None for m in methods]
        batches = [
            m.soft_target_batch(z, t, y, Context()) if m is not None else None
            for m, z in zip(methods, s.unbind(0))
        ]
        z = s.clone().requires_grad_()
        out = soft_target_terms(
            z, labels=y, constants=SlotConstants.of(forms), **stack_batches(batches, z)
        )
        (grad,) = torch.autograd.grad(out.sum(), z)
        return out[0], grad[0]

    alone, among = slot0([kd, None, None, None]), slot0(full)
    assert torch.equal(alone[0], among[0]) and torch.equal(alone[1], among[1])
    assert torch.isfinite(among[1]).all()


@pytest.mark.parametrize("lam", [0.0, 2 / 3, -5 / 3, -1.0])
def test_huge_logits_and_a_teacher_with_zero_mass_stay_finite(lam: float) -> None:
    # Logits of magnitude 1e4 that agree on the ranking, in float32, against float64.
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(1, 4, 10, generator=gen, dtype=torch.float64)
    s64 = base * 1e4 + torch.randn(1, 4, 10, generator=gen, dtype=torch.float64)
    t64 = base[0] * 1e4
    y = torch.zeros(4, dtype=torch.long)
    m = [create_method("redistill_tuned", lam=lam)]
    value = soft_target_terms_of(m, s64.float(), [t64.float()], y)
    reference = soft_target_terms_of(m, s64, [t64], y)
    assert torch.isfinite(value).all()
    assert torch.allclose(value.double(), reference, rtol=1e-3, atol=1e-4)
    # A teacher that puts exactly no mass on some classes (ka's smoothed label at 1.0).
    if lam > -1:
        ka = create_method("ka", variant="smooth", smoothing=1.0, lam=lam)
        s = torch.randn(1, 4, 10, generator=gen, requires_grad=True)
        t = torch.randn(4, 10, generator=gen)
        y = t.argmax(-1).roll(1)
        out = soft_target_terms_of([ka], s, [t], y)
        (grad,) = torch.autograd.grad(out.sum(), s)
        assert torch.isfinite(out).all() and torch.isfinite(grad).all()
        own = ka(s[0].detach(), t, y)
        assert torch.allclose(out[0], torch.stack([own["ce"], own["kd"]]), rtol=1e-5)


def test_under_bf16_autocast_the_loss_is_float32() -> None:
    gen = torch.Generator().manual_seed(4)
    s = torch.randn(2, 8, 10, generator=gen).bfloat16().requires_grad_()
    t, y = torch.randn(8, 10, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    methods = [create_method("kd"), create_method("redistill")]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = soft_target_terms_of(methods, s, [t, t], y)
    out.sum().backward()
    assert out.dtype == torch.float32 and s.grad.dtype == torch.bfloat16
    reference = soft_target_terms_of(methods, s.detach().float(), [t, t], y)
    assert torch.allclose(out, reference)
