"""The CIFAR zoo is the field's: every classic teacher file of mdistiller and RepDistiller loads
as they publish it and computes the peers' logits (fixtures in ``../shared/peers/cifar-zoo``:
the peers' keys, a fill rule, an input and the peers' float64 logits); distiller checkpoints
load with a declared prefix; a missing batch-norm counter loads as torch's strict load allows;
this project's earlier names load where the function is the same and are refused where it is
not; a teacher cached under an earlier revision is never reused."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from helpers import REPO

from redistill_study.errors import UserError
from redistill_study.models import count_parameters, create_model
from redistill_study.models.checkpoint import load_checkpoint, save_atomic
from redistill_study.training.teacher import CACHE_FORMAT, TeacherSpec

FIXTURES = REPO.parent / "shared" / "peers" / "cifar-zoo"
ARCHITECTURES = sorted(p.stem for p in FIXTURES.glob("*.json"))
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _fixture(arch: str) -> dict:
    return json.loads((FIXTURES / f"{arch}.json").read_text())


def _filled(keys: list, seed: int) -> dict[str, torch.Tensor]:
    """The fixtures' fill rule (their ``fill_rule`` text), from the key list alone."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape, _ in keys:
        s = tuple(shape)
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros(s, dtype=torch.int64)
        elif name.endswith("running_mean"):
            state[name] = torch.randn(s, generator=g, dtype=torch.float64) * 0.1
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(s, generator=g, dtype=torch.float64)
        elif len(s) >= 2:
            scale = 1 / math.sqrt(math.prod(s[1:]))
            state[name] = torch.randn(s, generator=g, dtype=torch.float64) * scale
        elif name.endswith("weight"):
            state[name] = 1 + torch.randn(s, generator=g, dtype=torch.float64) * 0.1
        else:
            state[name] = torch.randn(s, generator=g, dtype=torch.float64) * 0.1
    return state


def _published(tmp_path: Path, arch: str, state: dict) -> Path:
    """Saved the way the peers save a teacher."""
    path = tmp_path / f"{arch}_vanilla" / "ckpt_epoch_240.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "epoch": 240, "best_acc": 75.0}, path)
    return path


@pytest.fixture(scope="module", autouse=True)
def _fixtures_present() -> None:
    if len(ARCHITECTURES) != 15:
        pytest.skip(f"the peers' fixtures are not at {FIXTURES} (CI has them beside the clone)")


@pytest.mark.parametrize("arch", ARCHITECTURES or ["none"])
def test_a_published_teacher_file_loads_and_computes_the_peers_logits(
    tmp_path: Path, arch: str
) -> None:
    fx = _fixture(arch)
    path = _published(tmp_path, arch, _filled(fx["keys"], int(fx["seed"])))
    model = create_model(arch, num_classes=100).double()
    load_checkpoint(model, path).eval()
    g = torch.Generator().manual_seed(int(fx["input"]["seed"]))
    x = torch.randn(tuple(fx["input"]["shape"]), generator=g, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
    want = torch.tensor(fx["logits"], dtype=torch.float64)
    assert logits.shape == want.shape
    assert float((logits - want).abs().max()) <= 1e-9
    # The same network, not merely the same names: as many parameters as the peer's.
    peer = sum(math.prod(s) for name, s, _ in fx["keys"] if not name.endswith(BUFFERS))
    assert count_parameters(model) == peer


@pytest.mark.parametrize("arch", ARCHITECTURES or ["none"])
def test_a_loaded_teacher_trains_every_parameter(tmp_path: Path, arch: str) -> None:
    # What the fixtures (eval mode) cannot show: in training mode batch norm uses the batch and
    # updates its statistics, and every parameter takes part in the output.
    fx = _fixture(arch)
    path = _published(tmp_path, arch, _filled(fx["keys"], int(fx["seed"])))
    model = load_checkpoint(create_model(arch, num_classes=100), path).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("running_mean")}
    out = model(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    out.logsumexp(1).sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, dead[:3]
    after = model.state_dict()
    assert all(not torch.equal(after[k], v) for k, v in before.items())
    assert all(int(v) == 1 for k, v in after.items() if k.endswith("num_batches_tracked"))


def _teacher_and_student() -> tuple[dict, dict]:
    torch.manual_seed(0)
    teacher = create_model("wrn_40_2", num_classes=100).state_dict()
    student = create_model("wrn_16_2", num_classes=100).state_dict()
    return teacher, student


@pytest.mark.parametrize("wrapper", ["", "module."])
def test_a_distiller_checkpoint_loads_with_its_prefix_and_names_it_without(
    tmp_path: Path, wrapper: str
) -> None:
    # mdistiller's latest / best / epoch_N: the whole distiller, student.* and teacher.*
    teacher, student = _teacher_and_student()
    whole = {f"{wrapper}teacher.{k}": v for k, v in teacher.items()}
    whole |= {f"{wrapper}student.{k}": v for k, v in student.items()}
    path = tmp_path / "latest"
    torch.save({"epoch": 240, "model": whole, "best_acc": 75.0}, path)
    with pytest.raises(UserError) as info:
        load_checkpoint(create_model("wrn_40_2", num_classes=100), path)
    message = str(info.value)
    assert "'teacher.'" in message and "'student.'" in message and "checkpoint_prefix" in message
    assert "\n" not in message
    loaded = load_checkpoint(create_model("wrn_40_2", num_classes=100), path, prefix="teacher.")
    assert all(torch.equal(v, teacher[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(UserError, match=r"no parameter is named under 'tutor\.'.*'student\.'"):
        load_checkpoint(create_model("wrn_40_2", num_classes=100), path, prefix="tutor.")


def test_missing_batch_norm_counters_load_as_torch_strict_load_allows(tmp_path: Path) -> None:
    teacher, _ = _teacher_and_student()
    trimmed = {k: v for k, v in teacher.items() if not k.endswith("num_batches_tracked")}
    create_model("wrn_40_2", num_classes=100).load_state_dict(dict(trimmed))  # torch: strict
    path = tmp_path / "trimmed.pth"
    save_atomic(trimmed, path)
    loaded = load_checkpoint(create_model("wrn_40_2", num_classes=100), path)
    assert all(torch.equal(v, trimmed[k]) for k, v in loaded.state_dict().items() if k in trimmed)
    # Any other missing key is still refused.
    trimmed.pop("fc.bias")
    save_atomic(trimmed, path)
    with pytest.raises(UserError, match=r"1 missing \(e\.g\. 'fc\.bias'\)"):
        load_checkpoint(create_model("wrn_40_2", num_classes=100), path)


def test_another_architectures_file_names_the_naming_it_follows(tmp_path: Path) -> None:
    teacher, _ = _teacher_and_student()
    path = _published(tmp_path, "wrn_40_2", teacher)
    with pytest.raises(UserError, match="these keys follow wrn_40_2's names"):
        load_checkpoint(create_model("resnet32x4", num_classes=100), path)


def _earlier_wrn_names(state: dict, per_stage: int) -> dict:
    """wrn keys as this project named them before revision 2: one flat ``blocks`` list, a
    ``shortcut`` and a final ``bn``."""
    out = {}
    for key, value in state.items():
        if key.startswith("block"):
            stage, _, index, rest = key.split(".", 3)
            flat = (int(stage[len("block") :]) - 1) * per_stage + int(index)
            key = f"blocks.{flat}.{rest.replace('convShortcut.', 'shortcut.')}"
        elif key.startswith("bn1."):
            key = "bn." + key[len("bn1.") :]
        out[key] = value
    return out


def test_a_checkpoint_of_the_earlier_names_loads_where_the_function_is_the_same(
    tmp_path: Path,
) -> None:
    teacher, _ = _teacher_and_student()
    path = tmp_path / "earlier.pth"
    save_atomic(_earlier_wrn_names(teacher, per_stage=6), path)
    loaded = load_checkpoint(create_model("wrn_40_2", num_classes=100), path)
    assert all(torch.equal(v, teacher[k]) for k, v in loaded.state_dict().items())
    # vgg's and MobileNetV2's earlier names too
    for arch, rename in (
        ("vgg13", lambda k: k.replace("block", "blocks.", 1) if k.startswith("block") else k),
        ("MobileNetV2", None),
    ):
        state = create_model(arch, num_classes=100).state_dict()
        earlier = {rename(k): v for k, v in state.items()} if rename else _earlier_mbv2(state)
        save_atomic(earlier, path)
        loaded = load_checkpoint(create_model(arch, num_classes=100), path)
        assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())


def _earlier_mbv2(state: dict) -> dict:
    """MobileNetV2 as one ``features`` sequence and a bare ``classifier`` linear layer."""
    sizes = (1, 2, 3, 4, 3, 3, 1)
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head == "conv1":
            key = f"features.0.{rest}"
        elif head == "conv2":
            key = f"features.{1 + sum(sizes)}.{rest}"
        elif head == "blocks":
            stage, index, inner = rest.split(".", 2)
            key = f"features.{1 + sum(sizes[: int(stage)]) + int(index)}.{inner}"
        elif head == "classifier":
            key = "classifier." + rest.partition(".")[2]
        out[key] = value
    return out


@pytest.mark.parametrize("arch", ["ShuffleV1", "ShuffleV2"])
def test_a_checkpoint_of_an_earlier_shufflenet_is_refused_in_one_line(
    tmp_path: Path, arch: str
) -> None:
    state = create_model(arch, num_classes=100).state_dict()
    earlier = {k.replace("layer1.", "stages.0.", 1): v for k, v in state.items()}
    path = tmp_path / "earlier.pth"
    save_atomic(earlier, path)
    with pytest.raises(UserError, match=r"computes another function.*train the teacher again"):
        load_checkpoint(create_model(arch, num_classes=100), path)


def test_a_teacher_cached_under_an_earlier_revision_is_never_reused() -> None:
    def earlier_key(spec: TeacherSpec) -> str:  # the key as it was computed before revisions
        payload = asdict(spec)
        payload.pop("checkpoint_prefix")
        payload["recipe"] = None
        payload["format"] = CACHE_FORMAT
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:20]

    changed = TeacherSpec(model="ShuffleV1", num_classes=100, data_fingerprint="f", seed=0)
    unchanged = TeacherSpec(model="resnet32x4", num_classes=100, data_fingerprint="f", seed=0)
    assert changed.key() != earlier_key(changed)
    assert unchanged.key() == earlier_key(unchanged)  # other teachers' caches stay valid
