"""``methods``: list the distillation methods, their defaults and search spaces."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ._common import Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", help="shell-style filter, e.g. '*kd*'")


def run(args: argparse.Namespace) -> int:
    from ..losses import get_method, list_methods

    names = list_methods(args.pattern)
    if not names:
        raise UserError(f"no method matches {args.pattern!r} (see `redistill-study methods`)")
    for name in names:
        cls = get_method(name)
        mode = "tuned" if cls.tuned_by_default else "fixed"
        print(f"{name:<24} [{mode}] {cls.summary}")
        defaults = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in cls.defaults.items()
        )
        print(f"    defaults: {defaults or '—'}")
        space = ", ".join(f"{k} ∈ {dim}" for k, dim in cls.search_space.items())
        print(f"    search:   {space or '—'}")
    return 0


COMMAND = Command("methods", "list the distillation methods", add_arguments, run)
