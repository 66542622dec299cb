"""`bench losses`: forward+backward time of every method relative to `kd`, side by side.

All timings of one table come from one process, interleaved round-robin so that drift in the
machine's speed hits every method alike; each figure is the median over repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from ..losses import Context, create_method, list_methods
from ..losses.base import sum_terms


def _once(fn: Callable[[], None], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loss_step(name: str, batch: int, classes: int, device: torch.device, compiled: bool = False):
    gen = torch.Generator().manual_seed(0)
    s = (torch.randn(batch, classes, generator=gen) * 3).to(device).requires_grad_(True)
    t = (torch.randn(batch, classes, generator=gen) * 3).to(device)
    y = torch.randint(0, classes, (batch,), generator=gen).to(device)
    method = create_method(name)
    ctx = Context(epoch=30, total_epochs=100)

    def loss(s, t, y):
        return sum(method(s, t, y, ctx).values())

    fn = torch.compile(loss) if compiled else loss

    def step() -> None:
        s.grad = None
        fn(s, t, y).backward()
        _sync(device)

    return step


def training_step(name: str, device: torch.device, batch: int = 64):
    from ..models import create_model

    torch.manual_seed(0)
    student = create_model("resnet8x4", num_classes=100).to(device)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device)
    t = torch.randn(batch, 100, device=device) * 3
    y = torch.randint(0, 100, (batch,), device=device)
    method = create_method(name)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        sum_terms(method(student(x), t, y).values()).backward()
        opt.step()
        _sync(device)

    return step


def _ratio_table(
    steps: dict[str, Callable[[], None]], repeats: int, inner: int, base: str = "kd"
) -> tuple[dict[str, float], dict[str, float]]:
    """Median time of each step, and the median over rounds of its time / the base's time.

    Each round times every step back to back, so a ratio compares like with like even when
    the machine's speed drifts between rounds.
    """
    for fn in steps.values():  # warm-up (and compilation)
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for key, fn in steps.items():
            samples[key].append(_once(fn, inner))
    times = {k: statistics.median(v) for k, v in samples.items()}
    ratios = {
        k: statistics.median(a / b for a, b in zip(v, samples[base])) for k, v in samples.items()
    }
    return times, ratios


def run(repeats: int = 20, device_name: str = "cpu") -> int:
    devices = [torch.device(device_name)]
    if device_name == "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for device in devices:
        for classes in (100, 1000):
            steps = {name: loss_step(name, 256, classes, device) for name in list_methods()}
            times, ratios = _ratio_table(steps, repeats, inner=20)
            print(f"\nloss forward+backward, B=256, C={classes}, {device} (median of {repeats})")
            for name, sec in sorted(times.items(), key=lambda kv: ratios[kv[0]]):
                print(f"  {name:<16} {sec * 1e6:9.1f} µs   ×{ratios[name]:5.2f} vs kd")
        print(f"\ntorch.compile, B=256, C=100, {device}")
        try:
            compiled = {
                n: loss_step(n, 256, 100, device, compiled=True) for n in ("kd", "redistill")
            }
            times, ratios = _ratio_table(compiled, repeats, inner=20)
            print(
                f"  kd {times['kd'] * 1e6:.1f} µs, redistill {times['redistill'] * 1e6:.1f} µs, "
                f"redistill/kd ×{ratios['redistill']:.3f}"
            )
        except Exception as exc:  # no C++ toolchain, unsupported platform…
            print(f"  skipped: torch.compile unavailable here ({type(exc).__name__}: {exc})"[:300])
        steps = {n: training_step(n, device) for n in ("kd", "redistill")}
        times, ratios = _ratio_table(steps, max(5, repeats // 2), inner=2)
        print(f"\ntraining step, resnet8x4 student, batch 64, {device}")
        print(
            f"  kd {times['kd'] * 1e3:.2f} ms, redistill {times['redistill'] * 1e3:.2f} ms, "
            f"redistill/kd ×{ratios['redistill']:.3f}"
        )
    return 0
