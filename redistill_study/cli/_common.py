"""What several commands share: the parser that fails in one line, a command's description,
the study argument and the store options (as parent parsers), and what those resolve to."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ..config import StudyConfig
    from ..study import RunOptions


class CliParser(argparse.ArgumentParser):
    """Bad arguments end in one line naming the command and what was expected, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, its line in ``--help``, the shared options it takes (parent
    parsers, in order, before its own), its own options and what it does (an exit code)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    parents: tuple[Callable[[], CliParser], ...] = ()


# --- the study YAML ------------------------------------------------------------------------


def study_parent() -> CliParser:
    """The optional ``study`` positional of every command that reads one study."""
    parent = CliParser(add_help=False)
    parent.add_argument(
        "study", nargs="?", help="study YAML (default: the embedded studies/default.yaml)"
    )
    return parent


def study_path(value: str | None) -> Path:
    """The ``study`` argument as a path, or the embedded default study."""
    from ..config import default_study_path

    return Path(value) if value else default_study_path()


# --- the stores: output folder, Optuna storage, MLflow tracking ----------------------------


def stores_parent() -> CliParser:
    """``--output``, ``--storage`` and ``--tracking-uri`` of every command that opens the
    stores."""
    parent = CliParser(add_help=False)
    parent.add_argument("--output", help="the study's output folder (default: ./<study name>)")
    parent.add_argument(
        "--storage", help="Optuna storage URL (default: sqlite:///<output>/optuna.db)"
    )
    parent.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: sqlite:///<output>/mlflow.db)"
    )
    return parent


def output_folder(args: argparse.Namespace, config: StudyConfig) -> Path:
    """``--output``, or ``./<study name>``."""
    return Path(args.output) if args.output else Path.cwd() / config.name


def store_options(args: argparse.Namespace, path: Path, output: Path, **extra: Any) -> RunOptions:
    """RunOptions from the store options (and ``extra``, a command's own)."""
    from ..study import RunOptions

    return RunOptions(
        output=output,
        config_path=path.resolve(),
        storage_url=args.storage,
        tracking_uri=args.tracking_uri,
        **extra,
    )
