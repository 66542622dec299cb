"""Every method against a separate numpy implementation of its formula, plus its defining property.

The numpy references below are written from the formulas in docs/method.md §3 and the papers, not
from the torch code: plain probabilities, explicit loops where that is clearer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from redistill_study.losses import Context, create_method, get_method, list_methods

# --- hand-built cases: 4 samples, 5 classes; the teacher is wrong on samples 1 and 3 ---------
STUDENT = np.array(
    [
        [1.0, 0.2, -0.5, 0.3, 0.0],
        [0.1, 0.4, 0.9, -1.0, 0.5],
        [-0.3, 2.0, 0.0, 0.7, -0.2],
        [0.6, -0.1, 0.3, 0.2, 1.2],
    ]
)
TEACHER = np.array(
    [
        [3.0, 0.5, -1.0, 0.0, 0.2],  # right (label 0)
        [0.2, 2.5, 0.1, -0.5, 1.0],  # wrong (label 2, argmax 1)
        [-1.0, 4.0, 0.5, 0.0, 0.3],  # right (label 1)
        [0.0, 0.4, 1.5, 0.1, 0.9],  # wrong (label 4, argmax 2)
    ]
)
LABELS = np.array([0, 2, 1, 4])


def softmax(z: np.ndarray, T: float = 1.0) -> np.ndarray:
    e = np.exp((z - z.max(-1, keepdims=True)) / T)
    return e / e.sum(-1, keepdims=True)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.sum(p * np.log(p / q), -1)


def pd(p: np.ndarray, q: np.ndarray, lam: float) -> np.ndarray:
    if lam == 0:
        return kl(p, q)
    return np.sum(p * ((p / q) ** lam - 1), -1) / (lam * (lam + 1))


def ce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(softmax(z)[np.arange(len(y)), y])


def ref_kd(s, t, y, T=4.0, w_ce=0.1, w_kd=0.9, lam=0.0):
    return {
        "ce": w_ce * ce(s, y).mean(),
        "kd": w_kd * T**2 * pd(softmax(t, T), softmax(s, T), lam).mean(),
    }


def ref_student_first(s, t, y, T=4.0, w_ce=0.1, w_kd=0.9):
    """D_{2/3} with the *student* distribution first: D_{2/3}(q‖p), straight from the formula."""
    q, p = softmax(s, T), softmax(t, T)
    return {
        "ce": w_ce * ce(s, y).mean(),
        "kd": w_kd * T**2 * pd(q, p, 2 / 3).mean(),
    }


def ref_dkd(s, t, y, alpha=1.0, beta=8.0, T=4.0, warmup=20, w_ce=1.0, lam=0.0, epoch=1):
    """``epoch`` is mdistiller's 1-based epoch number (its training loop starts at 1)."""
    ps, pt = softmax(s, T), softmax(t, T)
    tckd, nckd = [], []
    for i, label in enumerate(y):
        bs = np.array([ps[i, label], 1 - ps[i, label]])
        bt = np.array([pt[i, label], 1 - pt[i, label]])
        tckd.append(pd(bt[None], bs[None], lam)[0])
        keep = [c for c in range(s.shape[1]) if c != label]
        ns, nt = ps[i, keep] / ps[i, keep].sum(), pt[i, keep] / pt[i, keep].sum()
        nckd.append(pd(nt[None], ns[None], lam)[0])
    ramp = min(epoch / warmup, 1.0)
    return {
        "ce": w_ce * ce(s, y).mean(),
        "tckd": ramp * alpha * T**2 * np.mean(tckd),
        "nckd": ramp * beta * T**2 * np.mean(nckd),
    }


def zscore(z):
    return (z - z.mean(-1, keepdims=True)) / (z.std(-1, ddof=1, keepdims=True) + 1e-7)


def ref_lskd(s, t, y, T=2.0, w_ce=0.1, w_kd=9.0, lam=0.0):
    return ref_kd(zscore(s), zscore(t), y, T, 0.0, w_kd, lam) | {"ce": w_ce * ce(s, y).mean()}


def ref_wsl(s, t, y, T=4.0, alpha=2.5, w_ce=1.0, lam=0.0):
    weight = 1 - np.exp(-ce(s, y) / (ce(t, y) + 1e-7))
    soft = weight * pd(softmax(t, T), softmax(s, T), lam)
    return {"ce": w_ce * ce(s, y).mean(), "kd": alpha * T**2 * soft.mean()}


def ref_ka(s, t, y, T=4.0, w_ce=0.1, w_kd=0.9, lam=0.0, variant="shift", smoothing=0.9):
    pt = softmax(t, T)
    for i, label in enumerate(y):
        top = int(np.argmax(t[i]))
        if top == label:
            continue
        if variant == "shift":
            pt[i, label], pt[i, top] = pt[i, top], pt[i, label]
        else:
            pt[i] = (1 - smoothing) / (t.shape[1] - 1)
            pt[i, label] = smoothing
    return {"ce": w_ce * ce(s, y).mean(), "kd": w_kd * T**2 * pd(pt, softmax(s, T), lam).mean()}


def ref_lr(s, t, y, T=4.0, w_ce=0.1, w_kd=0.9, lam=0.0, eta=0.8):
    pt = softmax(t, T)
    onehot = np.eye(t.shape[1])[y]
    beta = eta / (pt.max(-1) - pt[np.arange(len(y)), y] + 1)
    target = beta[:, None] * pt + (1 - beta[:, None]) * onehot
    return {"ce": w_ce * ce(s, y).mean(), "kd": w_kd * T**2 * pd(target, softmax(s, T), lam).mean()}


def ref_ckd(s, t, y, T=4.0, w_ce=0.1, w_kd=0.9, lam=0.0):
    right = np.argmax(t, -1) == y
    soft = np.where(right, T**2 * pd(softmax(t, T), softmax(s, T), lam), ce(s, y))
    return {"ce": w_ce * ce(s, y).mean(), "kd": w_kd * soft.mean()}


def ref_ttm(s, t, y, gamma=0.3, w_kd=15.0, w_ce=1.0, lam=0.0, weighted=False):
    p = softmax(t)
    transformed = p**gamma / (p**gamma).sum(-1, keepdims=True)
    soft = pd(transformed, softmax(s), lam)
    if weighted:
        soft = soft * (p**gamma).sum(-1)
    return {"ce": w_ce * ce(s, y).mean(), "kd": w_kd * soft.mean()}


def ref_ats(s, t, y, tau_true=4.0, tau_rest=2.0, tau_student=1.0, w_ce=0.1, w_kd=0.9, lam=0.0):
    temps = np.full_like(t, tau_rest)
    temps[np.arange(len(y)), y] = tau_true
    pt = softmax(t / temps)
    return {
        "ce": w_ce * ce(s, y).mean(),
        "kd": w_kd * tau_student**2 * pd(pt, softmax(s, tau_student), lam).mean(),
    }


def test_ats_matches_the_authors_formula() -> None:
    # lxcnju/ATS-LargeKD, distill.py: kd = s_tau² · mean_i Σ_c −p_t,c · log softmax(z_s/s_tau)_c
    # with p_t = softmax(z_t / taus), taus = t_tau except tp_tau on the label; s_tau = 1.0.
    # Their cross-entropy equals our KL plus the teacher's entropy (no student dependence).
    t_tau, tp_tau, s_tau = 2.0, 4.0, 1.0
    taus = np.full_like(TEACHER, t_tau)
    taus[np.arange(len(LABELS)), LABELS] = tp_tau
    p_t = softmax(TEACHER / taus)
    log_q = np.log(softmax(STUDENT, s_tau))
    authors = s_tau**2 * np.mean(np.sum(-p_t * log_q, -1))
    entropy = s_tau**2 * np.mean(np.sum(-p_t * np.log(p_t), -1))
    method = create_method("ats", tau_true=tp_tau, tau_rest=t_tau, w_kd=1.0)
    s = torch.tensor(STUDENT, requires_grad=True)
    kd = method(s, torch.tensor(TEACHER), torch.tensor(LABELS))["kd"]
    assert kd.item() == pytest.approx(authors - entropy, rel=1e-12)
    # Gradient against the authors' closed form: s_tau · (q − p_t) / B for s_tau = 1.
    kd.backward()
    expected = (softmax(STUDENT, s_tau) - p_t) * s_tau / len(LABELS)
    np.testing.assert_allclose(s.grad.numpy(), expected, rtol=1e-10, atol=1e-14)


CASES = [
    ("ce", {}, lambda s, t, y: {"ce": ce(s, y).mean()}),
    ("kd", {}, ref_kd),
    (
        "kd",
        {"T": 2.0, "w_kd": 3.0, "lam": 0.5},
        lambda s, t, y: ref_kd(s, t, y, T=2.0, w_kd=3.0, lam=0.5),
    ),
    ("redistill", {}, lambda s, t, y: ref_kd(s, t, y, lam=2 / 3)),
    ("redistill_tuned", {"lam": -1.5}, lambda s, t, y: ref_kd(s, t, y, lam=-1.5)),
    ("redistill_student_first", {}, lambda s, t, y: ref_student_first(s, t, y)),
    ("dkd", {}, ref_dkd),
    ("lskd", {}, ref_lskd),
    ("wsl", {}, ref_wsl),
    ("ka", {}, ref_ka),
    (
        "ka",
        {"variant": "smooth", "smoothing": 0.8},
        lambda s, t, y: ref_ka(s, t, y, variant="smooth", smoothing=0.8),
    ),
    ("lr", {}, ref_lr),
    ("ckd", {}, ref_ckd),
    ("ttm", {}, ref_ttm),
    ("wttm", {}, lambda s, t, y: ref_ttm(s, t, y, weighted=True)),
    ("ats", {}, ref_ats),
    (
        "ats",
        {"tau_student": 3.0},
        lambda s, t, y: ref_ats(s, t, y, tau_student=3.0),
    ),
]


def _torch_terms(name: str, hp: dict, epoch: int = 0, total: int = 100) -> dict[str, float]:
    method = create_method(name, **hp)
    terms = method(
        torch.tensor(STUDENT),
        torch.tensor(TEACHER),
        torch.tensor(LABELS),
        Context(epoch=epoch, total_epochs=total),
    )
    return {k: v.item() for k, v in terms.items()}


@pytest.mark.parametrize(
    ("name", "hp", "reference"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_golden_values(name: str, hp: dict, reference) -> None:
    ours = _torch_terms(name, hp, epoch=0)
    expected = reference(STUDENT, TEACHER, LABELS)
    if name == "dkd":  # the trainer's 0-based epoch 10 is mdistiller's epoch 11
        ours = _torch_terms(name, hp, epoch=10)
        expected = ref_dkd(STUDENT, TEACHER, LABELS, epoch=11)
    assert set(ours) == set(expected)
    for key in expected:
        assert ours[key] == pytest.approx(float(expected[key]), rel=1e-9, abs=1e-12), key


def test_every_registered_method_has_a_golden_case() -> None:
    assert {c[0] for c in CASES} == set(list_methods())


def test_dkd_decomposition_of_kd() -> None:
    # KL(p‖q) = TCKD + (1 − p_target^teacher)·NCKD, per sample (α = β = 1, no warm-up).
    T = 3.0
    for i in range(len(LABELS)):
        s, t, y = STUDENT[i : i + 1], TEACHER[i : i + 1], LABELS[i : i + 1]
        terms = create_method("dkd", alpha=1.0, beta=1.0, T=T, warmup=0)(
            torch.tensor(s), torch.tensor(t), torch.tensor(y)
        )
        kd_term = create_method("kd", T=T, w_kd=1.0)(
            torch.tensor(s), torch.tensor(t), torch.tensor(y)
        )["kd"]
        p_target = softmax(t, T)[0, y[0]]
        rhs = terms["tckd"].item() + (1 - p_target) * terms["nckd"].item()
        assert kd_term.item() == pytest.approx(rhs, rel=1e-10)


@pytest.mark.parametrize("scale", [1.0, 12.0])  # 12: a near-certain teacher and student
def test_dkd_gradient_matches_finite_differences(scale: float) -> None:
    # DKD's KL parts have a hand-written backward; central differences in float64 check it.
    method = create_method("dkd", alpha=0.7, beta=3.0, T=2.0, warmup=0)
    t, y = torch.tensor(TEACHER * scale), torch.tensor(LABELS)
    s = torch.tensor(STUDENT * scale, requires_grad=True)

    def loss(s: torch.Tensor) -> torch.Tensor:
        terms = method(s, t, y)
        return terms["tckd"] + 0.3 * terms["nckd"]

    assert torch.autograd.gradcheck(loss, (s,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_ka_changes_only_samples_the_teacher_gets_wrong() -> None:
    right = np.argmax(TEACHER, -1) == LABELS
    for variant in ("shift", "smooth"):
        ka = create_method("ka", variant=variant)
        kd = create_method("kd")
        s, t = torch.tensor(STUDENT), torch.tensor(TEACHER)
        a = ka.teacher_log_probs(t, torch.tensor(LABELS), Context())
        b = kd.teacher_log_probs(t, torch.tensor(LABELS), Context())
        same = torch.isclose(a, b).all(-1).numpy()
        assert np.array_equal(same, right), variant
        assert s.shape == a.shape


def test_ckd_and_ka_equal_kd_when_the_teacher_is_always_right() -> None:
    labels = torch.tensor(np.argmax(TEACHER, -1))
    s, t = torch.tensor(STUDENT), torch.tensor(TEACHER)
    kd = create_method("kd")(s, t, labels)
    for name in ("ckd", "ka"):
        other = create_method(name)(s, t, labels)
        for key in kd:
            assert other[key].item() == pytest.approx(kd[key].item(), rel=1e-12)


def test_lskd_is_invariant_to_shift_and_scale_of_logits() -> None:
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    base = create_method("lskd")(s, t, y)["kd"].item()
    moved = create_method("lskd")(s * 3.0 + 7.0, t * 0.5 - 2.0, y)["kd"].item()
    assert moved == pytest.approx(base, rel=1e-6)


def test_lr_target_is_a_distribution_leaning_on_the_label() -> None:
    method = create_method("lr")
    log_target = method.teacher_log_probs(torch.tensor(TEACHER), torch.tensor(LABELS), Context())
    target = log_target.exp()
    torch.testing.assert_close(target.sum(-1), torch.ones(4, dtype=torch.float64))
    teacher = torch.softmax(torch.tensor(TEACHER) / 4.0, -1)
    rows = torch.arange(4)
    assert (target[rows, LABELS] >= teacher[rows, LABELS]).all()


def test_dkd_warmup_follows_mdistillers_schedule_epoch_for_epoch() -> None:
    # mdistiller: weight = min(epoch / warmup, 1) with epoch = 1, 2, ... — written out by hand
    # for warmup = 4: the first epoch already distils at 1/4.
    expected = [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    full = _torch_terms("dkd", {"warmup": 0})
    for trainer_epoch, weight in enumerate(expected):  # the trainer counts from 0
        terms = _torch_terms("dkd", {"warmup": 4}, epoch=trainer_epoch)
        assert terms["tckd"] == pytest.approx(weight * full["tckd"], rel=1e-12)
        assert terms["nckd"] == pytest.approx(weight * full["nckd"], rel=1e-12)
        assert terms["ce"] == pytest.approx(full["ce"], rel=1e-12)


def test_power_divergence_combines_with_dkd() -> None:
    terms = _torch_terms("dkd", {"lam": 2 / 3, "warmup": 0})
    expected = ref_dkd(STUDENT, TEACHER, LABELS, lam=2 / 3, warmup=1, epoch=1)
    for key in expected:
        assert terms[key] == pytest.approx(float(expected[key]), rel=1e-9)


@pytest.mark.parametrize("name", list_methods())
def test_gradients_flow_only_to_the_student(name: str) -> None:
    s = torch.tensor(STUDENT, requires_grad=True)
    t = torch.tensor(TEACHER, requires_grad=True)
    terms = create_method(name)(s, t, torch.tensor(LABELS), Context(epoch=50, total_epochs=100))
    sum(terms.values()).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize("name", list_methods())
def test_search_space_inside_domain_and_defaults_valid(name: str) -> None:
    import optuna

    cls = get_method(name)
    cls()  # defaults pass their own domain checks
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        cls(**cls.suggest(trial))


def test_unknown_hyperparameter_and_out_of_domain_rejected() -> None:
    with pytest.raises(ValueError, match="no hyper-parameter 'tau'"):
        create_method("kd", tau=2.0)
    with pytest.raises(ValueError, match="outside its domain"):
        create_method("kd", T=-1.0)
    with pytest.raises(KeyError, match="did you mean"):
        create_method("redistil")
