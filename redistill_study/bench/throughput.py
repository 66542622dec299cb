"""`bench throughput`: student-samples per second, naive loop vs the fast path and cohorts.

One run, CIFAR-shaped synthetic data, resnet32x4 teacher → resnet8x4 students, batch 64:
(a) naive: torchvision DataLoader with per-sample transforms, one trial at a time, a teacher
    forward per trial;
(b) the fast path with K = 1: tensors on the device, batched on-device augmentation;
(c) cohorts of K = 4 and K = 8 students sharing each batch and each teacher forward, stepped one
    after another;
(d) the same cohorts vectorised: one wide model, one forward and one backward for all K.
"""

from __future__ import annotations

import argparse
import time

import torch
from torchvision.transforms import v2

from ..config import TrainConfig
from ..data import DataBundle, Split
from ..data.cifar import NORMALIZATION
from ..losses import create_method
from ..losses.base import sum_terms
from ..models import create_model
from ..training import make_member, make_runtime, train_cohort

BATCH = 64


def _synthetic(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, 100, (n,), generator=gen)
    return x, y


def _naive(teacher, x, y, device: torch.device, batches: int) -> float:
    """Samples per second of the textbook loop (one student, DataLoader, teacher per step)."""
    mean, std = NORMALIZATION["cifar100"]
    transform = v2.Compose(
        [
            v2.RandomCrop(32, padding=4),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )

    class Dataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, i: int):
            return transform(x[i]), y[i]

    loader = torch.utils.data.DataLoader(Dataset(), batch_size=BATCH, shuffle=True, drop_last=True)
    torch.manual_seed(0)
    student = create_model("resnet8x4", num_classes=100).to(device)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = create_method("redistill")
    done, start = 0, None
    for step, (xb, yb) in enumerate(loader):
        if step == 1:  # the first batch warms up allocators and kernels
            _sync(device)
            start = time.perf_counter()
        xb, yb = xb.to(device), yb.to(device)
        with torch.no_grad():
            t = teacher(xb)
        opt.zero_grad(set_to_none=True)
        sum_terms(loss_fn(student(xb), t, yb).values()).backward()
        opt.step()
        if step >= 1:
            done += len(yb)
        if step == batches:
            break
    _sync(device)
    assert start is not None, "fewer than two batches"
    return done / (time.perf_counter() - start)


def _cohort(teacher, x, y, runtime, k: int, batches: int, vectorize: bool = False) -> float:
    mean, std = NORMALIZATION["cifar100"]
    n = BATCH * (batches + 1)
    bundle = DataBundle(
        name="synthetic",
        num_classes=100,
        input_shape=(3, 32, 32),
        mean=mean,
        std=std,
        augment="cifar",
        train=Split(x=x[:n].to(runtime.device), y=y[:n].to(runtime.device)),
        val=Split(x=x[:BATCH], y=y[:BATCH]),
        test=Split(x=x[:BATCH], y=y[:BATCH]),
    )
    recipe = TrainConfig(epochs=1, batch_size=BATCH, lr=0.05, milestones=[])
    methods = ["redistill", "kd"]
    members = [
        make_member(
            i,
            model_name="resnet8x4",
            model_args={},
            num_classes=100,
            seed=i,
            method=create_method(methods[i % 2]),
            recipe=recipe,
            runtime=runtime,
        )
        for i in range(k)
    ]
    timer: dict[str, float | None] = {"start": None, "batches": 0}

    def teacher_fn(idx, xb, yb):
        if timer["batches"] == 1:  # skip the warm-up batch
            _sync(runtime.device)
            timer["start"] = time.perf_counter()
        timer["batches"] += 1
        with torch.inference_mode(), runtime.autocast():
            return teacher(xb).float().clone()

    train_cohort(
        members,
        bundle,
        recipe,
        data_seed=0,
        runtime=runtime,
        teacher=teacher_fn,
        evaluate_val=False,
        vectorize=vectorize,
    )
    _sync(runtime.device)
    start = timer["start"]
    assert start is not None, "fewer than two batches"
    return k * BATCH * batches / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args: argparse.Namespace) -> int:
    runtime = make_runtime(args.device, "auto", "auto", False)
    device = runtime.device
    batches = 3 if device.type == "cpu" else 30
    x, y = _synthetic(BATCH * (batches + 2))
    torch.manual_seed(0)
    teacher = runtime.prepare_model(create_model("resnet32x4", num_classes=100)).eval()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"throughput on {name} ({torch.get_num_threads()} threads), resnet32x4 → resnet8x4, "
        f"batch {BATCH}, {batches} timed batches each; student-samples per second"
    )
    naive = _naive(teacher, x, y, device, batches)
    print(f"  (a) naive DataLoader loop, K=1   {naive:8.1f}/s   ×1.00")
    for label, k, vectorize in (
        ("(b) fast path, K=1", 1, False),
        ("(c) cohort one by one, K=4", 4, False),
        ("(c) cohort one by one, K=8", 8, False),
        ("(d) cohort vectorised, K=4", 4, True),
        ("(d) cohort vectorised, K=8", 8, True),
    ):
        rate = _cohort(teacher, x, y, runtime, k, batches, vectorize)
        print(f"  {label:<32} {rate:8.1f}/s   ×{rate / naive:.2f}")
    return 0
