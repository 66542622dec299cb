"""``validate``: check a study config without running it."""

from __future__ import annotations

import argparse

from ._common import Command, study_parent, study_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-files",
        action="store_true",
        help="do not check that data folders and checkpoints exist (e.g. on a laptop)",
    )


def run(args: argparse.Namespace) -> int:
    from ..config import load_study
    from ..study import build_plan

    path = study_path(args.study)
    config = load_study(path, check_files=not args.skip_files, read_data=not args.skip_files)
    plan = build_plan(config)
    slots = sum(len(plan.slots(u)) for u in plan.all_units())
    print(
        f"{path}: ok — {len(config.pairs)} pair(s) ({plan.units_of_generalisation()} "
        f"teachers × {plan.distinct_students()} students), {len(plan.cells)} cell(s), "
        f"{len(config.methods)} method(s), {len(plan.recipes)} recipe(s), up to {slots} trials"
    )
    return 0


COMMAND = Command(
    "validate",
    "check a study config without running it",
    add_arguments,
    run,
    parents=(study_parent,),
)
