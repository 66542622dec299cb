"""What a student costs and what the machine could do: FLOPs per training sample (forward and
backward, counted by torch's ``FlopCounterMode``) and a measured matrix-multiply peak, so a
benchmark's achieved rate can be read against the limit.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
>>> training_flops_per_sample(model, (1, 8, 8), 10)  # forward 2·64·10, weight gradient 2·64·10
2560.0
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def training_flops_per_sample(
    model: nn.Module, input_shape: Sequence[int], num_classes: int, batch: int = 8
) -> float:
    """FLOPs of one forward and backward pass per sample (the input needs no gradient, as in
    training), counted on a batch of ``batch`` random inputs."""
    device = next(model.parameters()).device
    x = torch.randn(batch, *input_shape, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    was_training = model.training
    model.train()
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / batch


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """The best FLOP/s of an ``n × n`` float32 matrix product on ``device``: the rate a dense
    kernel reaches here, the ceiling for a model made of them."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = 0.0
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - started))
    return best
