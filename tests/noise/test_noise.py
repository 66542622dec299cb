"""Teacher noise: reproducible per (seed, sample index), level 0 is clean, severity is monotone."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from redistill_study.config import DatasetConfig, TrainConfig
from redistill_study.data import build_dataset
from redistill_study.noise import NoiseSetting, flip_labels, measure_severity
from redistill_study.training import TeacherSpec, make_runtime, obtain_teacher, teacher_logits_all

N, C = 500, 10
LOGIT_KINDS = {
    "logit_gaussian": [0.5, 1.0, 2.0, 4.0],
    "confident_wrong": [0.1, 0.3, 0.5],
    "overconfident": [0.5, 1.0, 3.0],
}


def _clean(n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, C, (n,), generator=gen)
    logits = torch.randn(n, C, generator=gen)
    logits[torch.arange(n), labels] += 8.0  # a good, confident teacher: right everywhere
    return logits, labels


def _apply(setting: NoiseSetting, logits, labels, order=None, batch=None):
    n = logits.shape[0]
    order = torch.arange(n) if order is None else order
    batch = batch or n
    out = torch.empty_like(logits)
    for start in range(0, n, batch):
        idx = order[start : start + batch]
        out[idx] = setting.apply(logits[idx], idx, labels[idx], "train", n)
    return out


@pytest.mark.parametrize("kind", sorted(LOGIT_KINDS))
def test_same_corruption_whatever_the_batching(kind: str) -> None:
    logits, labels = _clean()
    setting = NoiseSetting(kind=kind, level=LOGIT_KINDS[kind][1], seed=3)
    whole = _apply(setting, logits, labels)
    shuffled = _apply(
        NoiseSetting(kind=kind, level=LOGIT_KINDS[kind][1], seed=3),
        logits,
        labels,
        order=torch.randperm(N, generator=torch.Generator().manual_seed(9)),
        batch=37,
    )
    assert torch.equal(whole, shuffled)
    other_seed = _apply(NoiseSetting(kind=kind, level=LOGIT_KINDS[kind][1], seed=4), logits, labels)
    if kind != "overconfident":  # deterministic by design
        assert not torch.equal(whole, other_seed)


def test_same_corruption_in_another_process(tmp_path: Path) -> None:
    script = (
        "import torch, sys\n"
        "from redistill_study.noise import NoiseSetting\n"
        "g = torch.Generator().manual_seed(0)\n"
        "y = torch.randint(0, 10, (500,), generator=g); x = torch.randn(500, 10, generator=g)\n"
        "idx = torch.arange(500)\n"
        "a = NoiseSetting('logit_gaussian', 1.0, 3).apply(x, idx, y, 'train', 500)\n"
        "b = NoiseSetting('confident_wrong', 0.3, 3).apply(x, idx, y, 'train', 500)\n"
        "torch.save({'a': a, 'b': b}, sys.argv[1])\n"
    )
    out = tmp_path / "noise.pt"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True)
    theirs = torch.load(out, weights_only=True)
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (500,), generator=gen)
    x = torch.randn(500, 10, generator=gen)
    idx = torch.arange(500)
    assert torch.equal(
        theirs["a"], NoiseSetting("logit_gaussian", 1.0, 3).apply(x, idx, y, "train", 500)
    )
    assert torch.equal(
        theirs["b"], NoiseSetting("confident_wrong", 0.3, 3).apply(x, idx, y, "train", 500)
    )


@pytest.mark.parametrize(
    "kind", [*sorted(LOGIT_KINDS), "label_noise_teacher", "undertrained", "none"]
)
def test_level_zero_is_the_clean_teacher_bit_for_bit(kind: str) -> None:
    logits, labels = _clean()
    setting = NoiseSetting(kind=kind, level=0.0, seed=1)
    assert torch.equal(_apply(setting, logits, labels), logits)
    assert setting.teacher_variant() == {} and setting.is_clean


@pytest.mark.parametrize("rho", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_confident_wrong_corrupts_exactly_round_rho_n(rho: float) -> None:
    logits, labels = _clean()
    assert (logits.argmax(-1) == labels).all()
    noisy = _apply(NoiseSetting("confident_wrong", rho, seed=2), logits, labels)
    wrong = noisy.argmax(-1) != labels
    assert int(wrong.sum()) == round(rho * N)
    # The mass moved onto a wrong class with its confidence kept.
    clean_conf = torch.softmax(logits, -1).max(-1).values
    noisy_conf = torch.softmax(noisy, -1).max(-1).values
    torch.testing.assert_close(noisy_conf, clean_conf)
    # The sets are nested across levels (one seed per kind).
    if 0 < rho < 1:
        bigger = _apply(NoiseSetting("confident_wrong", 1.0, seed=2), logits, labels)
        assert (bigger.argmax(-1) != labels)[wrong].all()


@pytest.mark.parametrize("kind", sorted(LOGIT_KINDS))
def test_severity_grows_with_the_level(kind: str) -> None:
    logits, labels = _clean()
    kls, wrongs, confidences = [], [], []
    for level in [0.0, *LOGIT_KINDS[kind]]:
        noisy = _apply(NoiseSetting(kind, level, seed=5), logits, labels)
        sev = measure_severity(logits, noisy, labels)
        kls.append(sev["kl_noisy_clean"])
        wrongs.append(sev["wrong_fraction"])
        confidences.append(float(torch.softmax(noisy, -1).max(-1).values.mean()))
    assert kls[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(kls)), kls
    if kind != "overconfident":  # over-confidence keeps the ranking, hence the accuracy
        assert wrongs == sorted(wrongs) and wrongs[-1] > wrongs[0], wrongs
    else:
        assert len(set(wrongs)) == 1
        assert all(a < b for a, b in itertools.pairwise(confidences)), confidences


@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.45])
def test_flip_labels_exact_rate(mode: str, rate: float) -> None:
    labels = torch.arange(1000) % 10
    original = labels.clone()
    flipped = flip_labels(labels, rate, 10, mode, seed=11)
    assert torch.equal(labels, original)  # the input (what students see) is never altered
    changed = flipped != labels
    assert int(changed.sum()) == round(rate * 1000)
    if mode == "asymmetric":
        assert torch.equal(flipped[changed], (labels[changed] + 1) % 10)
    assert torch.equal(flipped, flip_labels(labels, rate, 10, mode, seed=11))


@pytest.mark.slow
def test_teacher_noise_kinds_get_worse_with_level(tmp_path: Path) -> None:
    bundle = build_dataset(DatasetConfig())
    labels_before = bundle.train.y.clone()
    runtime = make_runtime("cpu", "fp32", "off", False)
    recipe = TrainConfig(epochs=8, batch_size=64, lr=0.05)

    def teacher_logits(setting: NoiseSetting) -> torch.Tensor:
        spec = TeacherSpec(
            model="digits_mlp",
            num_classes=10,
            data_fingerprint=bundle.fingerprint,
            seed=0,
            recipe=recipe,
            variant=setting.teacher_variant(),
        )
        model, _ = obtain_teacher(spec, bundle, tmp_path, runtime)
        return teacher_logits_all(model, bundle, runtime)["train"][0]

    clean = teacher_logits(NoiseSetting("none"))
    for kind, levels in (
        ("label_noise_teacher", [0.0, 0.3, 0.6]),
        ("undertrained", [0.0, 0.5, 0.875]),
    ):
        severities = [
            measure_severity(clean, teacher_logits(NoiseSetting(kind, lv, seed=0)), bundle.train.y)
            for lv in levels
        ]
        wrong = [s["wrong_fraction"] for s in severities]
        kl = [s["kl_noisy_clean"] for s in severities]
        assert wrong == sorted(wrong) and wrong[0] < wrong[-1], (kind, wrong)
        assert kl[0] == pytest.approx(0.0, abs=1e-9) and kl == sorted(kl), (kind, kl)
    assert torch.equal(bundle.train.y, labels_before)  # students' labels untouched


def test_kinds_are_a_registry_and_seeds_follow_the_name() -> None:
    import torch

    from redistill_study.noise import (
        NoiseKind,
        noise_kind,
        noise_kind_names,
        noise_seed,
        register_noise_kind,
    )
    from redistill_study.noise.kinds import _KINDS

    before = {k: noise_seed(0, k) for k in noise_kind_names()}
    setting = NoiseSetting(kind="confident_wrong", level=0.3, seed=noise_seed(0, "confident_wrong"))
    logits = torch.randn(50, 10, generator=torch.Generator().manual_seed(0))
    labels = logits.argmax(-1)
    reference = setting.apply(logits, torch.arange(50), labels, "train", 50)

    @register_noise_kind
    class Flipped(NoiseKind):  # a third party's kind
        name = "test_sign_flip"

        def corrupt(self, s, logits, indices, labels, split, split_size):
            return -logits

    try:
        assert {k: noise_seed(0, k) for k in before} == before  # nothing that exists moved
        again = NoiseSetting(
            kind="confident_wrong", level=0.3, seed=noise_seed(0, "confident_wrong")
        )
        assert torch.equal(again.apply(logits, torch.arange(50), labels, "train", 50), reference)
        flipped = NoiseSetting(kind="test_sign_flip", level=1.0)
        assert torch.equal(flipped.apply(logits, torch.arange(50), labels), -logits)
        with pytest.raises(KeyError, match="did you mean 'confident_wrong'"):
            noise_kind("confident_wrng")
    finally:
        _KINDS.pop("test_sign_flip", None)
