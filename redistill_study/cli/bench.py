"""``bench``: benchmarks that print figures (losses, throughput, a study's engines, claims)."""

from __future__ import annotations

import argparse

from ._common import Command
from ._types import at_least, counts, positive_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", choices=["losses", "throughput", "study", "claims"], help="what to measure"
    )
    parser.add_argument(
        "study",
        nargs="?",
        help="for `bench study` and `bench claims`: the study YAML (default: the embedded "
        "default study; cifar100_classic for claims)",
    )
    parser.add_argument(
        "--workers-list",
        type=counts,
        help="for `bench claims`: simulated worker counts (default 1,8,32)",
    )
    parser.add_argument(
        "--seconds", type=positive_float, help="for `bench claims`: seconds per figure"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="for `bench claims`: also on a throwaway local PostgreSQL server",
    )
    parser.add_argument(
        "--epochs",
        type=at_least(1),
        help="for `bench study`: train this many epochs (default: the recipe's)",
    )
    parser.add_argument(
        "--rounds",
        type=at_least(1),
        default=3,
        help="for `bench study`: interleaved rounds per engine, the best one reported (default 3)",
    )
    parser.add_argument("--repeats", type=at_least(1), default=20, help="timed rounds per figure")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")


def run(args: argparse.Namespace) -> int:
    from ..bench import run_benchmark

    return run_benchmark(args.what, args)


COMMAND = Command("bench", "benchmarks that print figures", add_arguments, run)
