"""Benchmarks that print figures: ratios measured side by side in one run."""

from __future__ import annotations

import argparse


def run_benchmark(what: str, args: argparse.Namespace) -> int:
    if what == "losses":
        from .losses import run

        return run(repeats=args.repeats, device_name=args.device)
    if what == "claims":
        from .claims import run as run_claims

        return run_claims(args)
    if what == "study":
        from .study import run as run_study

        return run_study(args)
    from .throughput import run as run_throughput

    return run_throughput(args)
