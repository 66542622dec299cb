"""``init``: create a study's stores and queue its trials once, before many workers start."""

from __future__ import annotations

import argparse

from ..errors import redact_url
from ._common import Command, output_folder, store_options, stores_parent, study_parent, study_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: the study and the store options."""


def run(args: argparse.Namespace) -> int:
    from ..config import load_study
    from ..study import StudyRunner

    path = study_path(args.study)
    config = load_study(path, check_files=False)
    options = store_options(args, path, output_folder(args, config), quiet=True)
    StudyRunner(config, options).init()
    print(
        f"stores ready for study {config.name!r}: {redact_url(options.resolved_storage())}, "
        f"{redact_url(options.resolved_tracking())}"
    )
    return 0


COMMAND = Command(
    "init",
    "create a study's stores and queue its trials once, before many workers start",
    add_arguments,
    run,
    parents=(study_parent, stores_parent),
)
