"""``models``: list the built-in models with parameter counts (or timm / torchvision names)."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ._common import Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'fmnist_*'")


def run(args: argparse.Namespace) -> int:
    from ..models import count_parameters, create_model, list_models, model_family

    names = list_models(args.pattern)
    if not names:
        raise UserError(f"no model matches {args.pattern!r} (try 'timm:*' or 'torchvision:*')")
    if ":" in (args.pattern or ""):  # timm / torchvision: names only (building each is slow)
        print("\n".join(names))
        return 0
    for name in names:
        classes = 100 if model_family(name) == "cifar" else 10
        params = count_parameters(create_model(name, num_classes=classes))
        print(f"{name:<22} {params / 1e6:8.3f} M params  ({model_family(name)}, {classes} classes)")
    print("also: timm:<name> and torchvision:<name> for any model of those libraries")
    return 0


COMMAND = Command("models", "list the built-in models with parameter counts", add_arguments, run)
