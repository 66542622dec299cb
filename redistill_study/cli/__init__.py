"""Command line: ``redistill-study run|init|report|design|validate|methods|models|bench``.

One module per command, each with its options (``add_arguments``) next to what it does
(``run``, an exit code) and described by its ``COMMAND``; the options several commands share
are parent parsers in :mod:`._common`. Bad input is one line on stderr and exit code 2, never
a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import StoreUnreachable, UserError
from . import bench, design, init, methods, models, report, run, validate
from ._common import CliParser, Command

# In the order of ``--help``.
COMMANDS: tuple[Command, ...] = (
    run.COMMAND,
    report.COMMAND,
    init.COMMAND,
    design.COMMAND,
    validate.COMMAND,
    methods.COMMAND,
    models.COMMAND,
    bench.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="redistill-study",
        description="Does one fixed power-divergence λ generalise across distillation pairs?",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name, parents=[make() for make in command.parents], help=command.help
        )
        command.add_arguments(sub)
        sub.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    # The command's own arguments (``run --workers`` hands them on to its workers).
    args.argv = argv[1:] if argv and argv[0] == args.command else argv
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except StoreUnreachable as exc:
        print(
            f"error: {exc}; this worker stopped, its trials are retried by any worker "
            "(rerun the same command to resume)",
            file=sys.stderr,
        )
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `redistill-study methods | head`
        sys.stderr.close()
        return 0


__all__ = ["COMMANDS", "Command", "build_parser", "main"]
