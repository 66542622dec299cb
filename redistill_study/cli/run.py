"""``run``: work on a study in this process, or in ``--workers N`` local processes, then print
its summary."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import Command, output_folder, store_options, stores_parent, study_parent, study_path
from ._types import at_least
from .report import open_the_runs, print_report, print_written, write_summary

if TYPE_CHECKING:
    from ..config import StudyConfig
    from ..study import RunOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", help="teacher cache folder (default: <output>/cache)")
    parser.add_argument(
        "--cohort-size", type=at_least(1), help="students trained together per teacher pass"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the config)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument(
        "--threads",
        type=at_least(1),
        help="CPU threads for torch (results reproduce per thread count)",
    )
    parser.add_argument(
        "--workers",
        type=at_least(1),
        default=1,
        help="local worker processes sharing the study (one per GPU when present)",
    )
    parser.add_argument("--worker-label", help=argparse.SUPPRESS)
    parser.add_argument(
        "--store-patience",
        type=at_least(1),
        help="seconds an unreachable database or tracking server is waited for before the "
        "worker stops with exit code 75 (default 300, or $REDISTILL_STORE_PATIENCE)",
    )
    parser.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from ..config import load_study

    path = study_path(args.study)
    config = load_study(path)
    output = output_folder(args, config)
    if args.workers > 1:
        return _run_workers(args, config, path, output)
    return _run_here(args, config, path, output)


def _run_options(args: argparse.Namespace, path: Path, output: Path, **extra: Any) -> RunOptions:
    """The store options plus ``--cache-dir`` and ``--store-patience`` (when given)."""
    if args.store_patience:
        extra["patience"] = args.store_patience
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    return store_options(args, path, output, cache_dir=cache_dir, **extra)


def _run_here(args: argparse.Namespace, config: StudyConfig, path: Path, output: Path) -> int:
    """Work on the study in this process until no trial is left; print its summary."""
    from ..analysis.summary import report_text, verdict_metrics
    from ..study import Interrupted, StudyRunner

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options = _run_options(
        args,
        path,
        output,
        cohort_size=args.cohort_size,
        device=args.device,
        quiet=args.quiet,
        worker_label=args.worker_label or "",
    )
    runner = StudyRunner(config, options)
    if not args.quiet:
        print(f"study {config.name!r} from {path} → {output}")
    runner.load_data()  # before the stores: a study that cannot read its data creates none
    try:
        with runner.session() as session:
            session.work()
            if args.no_summary:
                return 0
            elapsed = time.perf_counter() - session.started
            report, written = write_summary(session.results(), output, config)
            metrics = {"elapsed_seconds": elapsed, "trials_trained": session.trained}
            session.attach(
                {**metrics, **verdict_metrics(report)},
                [written["csv"]],
                written["dashboard"].parent,
            )
    except (KeyboardInterrupt, Interrupted):
        print(
            "interrupted: in-flight trials were re-queued; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(f"\n{report_text(report)}")
    print_written(written)
    print(f"trained {session.trained} trial(s) in {elapsed:.1f} s")
    print(open_the_runs(session.stores.tracker.open_lines()))
    return 0


def _run_workers(args: argparse.Namespace, config: StudyConfig, path: Path, output: Path) -> int:
    """Create the stores, start ``--workers`` processes with the user's own arguments, wait,
    then print the report."""
    from ..study import StudyRunner
    from ..study.workers import launch_workers

    # Create the stores once, before the workers race to.
    StudyRunner(config, _run_options(args, path, output, quiet=True)).init()
    forwarded = _without_workers(args.argv)
    if "--output" not in forwarded:
        forwarded += ["--output", str(output)]
    print(f"study {config.name!r}: {args.workers} workers → {output}")
    code = launch_workers(args.workers, forwarded, args.device)
    if code != 0:
        print(
            f"a worker exited with code {code}; rerun the same command to resume", file=sys.stderr
        )
        return code
    return print_report(args, config, output)


def _without_workers(argv: list[str]) -> list[str]:
    """The user's own ``run`` arguments, minus ``--workers N``."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--workers":
            skip = True
            continue
        if item.startswith("--workers="):
            continue
        out.append(item)
    return out


COMMAND = Command(
    "run",
    "run a study (default: the embedded CPU-quick study)",
    add_arguments,
    run,
    parents=(study_parent, stores_parent),
)
