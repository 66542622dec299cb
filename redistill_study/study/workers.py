"""`run --workers N`: N local worker processes sharing one study through its storage.

Each worker is the ordinary `run` command; they cooperate because every trial is claimed
atomically from the Optuna storage. With GPUs, worker i sees one GPU through
CUDA_VISIBLE_DEVICES (round-robin); `--device` overrides that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import torch


def worker_environments(n: int, device_override: str | None) -> list[dict[str, str]]:
    base = dict(os.environ)
    if device_override and device_override != "auto":
        if device_override == "cpu":
            threads = str(max(1, (os.cpu_count() or 1) // n))
            return [{"OMP_NUM_THREADS": threads, **base} for _ in range(n)]
        return [dict(base) for _ in range(n)]
    if not torch.cuda.is_available():
        # CPU workers share the cores: without a cap each would start one thread per core.
        threads = str(max(1, (os.cpu_count() or 1) // n))
        return [{"OMP_NUM_THREADS": threads, **base} for _ in range(n)]
    visible = base.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    return [{**base, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(n)]


def launch_workers(n: int, forwarded: list[str], device: str | None) -> int:
    """Start N workers with the user's own ``run`` arguments (``forwarded``), forward
    SIGINT/SIGTERM to them, wait; return the worst exit code."""
    procs: list[subprocess.Popen[Any]] = []
    for i, env in enumerate(worker_environments(n, device)):
        cmd = [
            sys.executable,
            "-m",
            "redistill_study",
            "run",
            *forwarded,
            "--worker-label",
            f"worker-{i}",
            "--no-summary",
        ]
        procs.append(subprocess.Popen(cmd, env=env))

    def forward(signum: int, frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max(codes, key=lambda c: c != 0) if codes else 0
