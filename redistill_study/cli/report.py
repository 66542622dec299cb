"""``report``: the verdict, table and dashboard of a study, read from its stores (read-only).

``run`` ends the same way: :func:`write_summary` and :func:`print_report` are shared."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ._common import Command, output_folder, stores_parent, study_parent, study_path

if TYPE_CHECKING:
    from ..analysis.summary import StudyReport
    from ..config import StudyConfig
    from ..study import Results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--markdown", action="store_true", help="print the README block (table and verdict)"
    )


def run(args: argparse.Namespace) -> int:
    from ..config import load_study

    if args.study:
        path = Path(args.study)
    elif args.output:
        path = Path(args.output) / "study.yaml"
    else:
        path = study_path(None)
    config = load_study(path, check_files=False)
    output = output_folder(args, config)
    if not (args.storage or (output / "optuna.db").is_file()):
        raise UserError(f"{output}: no study results here (no optuna.db); run the study first")
    return print_report(args, config, output, markdown=args.markdown)


def print_report(
    args: argparse.Namespace, config: StudyConfig, output: Path, *, markdown: bool = False
) -> int:
    """Read the study's results from its stores (``--storage``, or the output folder's) and
    print the verdict; write the summary and dashboard when ``output`` is writable."""
    from ..analysis.summary import build_report, markdown_summary, report_text
    from ..study import build_plan, read_results
    from ..study.storage import open_storage_readonly, sqlite_url

    url = args.storage or sqlite_url(output / "optuna.db")
    results = read_results(open_storage_readonly(url), build_plan(config))
    written: dict[str, Any] | None = None
    if os.access(output if output.exists() else output.parent, os.W_OK):
        report, written = write_summary(results, output, config)
    else:  # results copied somewhere read-only: report them, write nothing
        report = build_report(results)
    if markdown:
        print(markdown_summary(report))
        return 0
    print(report_text(report))
    if written is None:
        print(f"\n{output} is not writable: summary and dashboard not written")
        return 0
    print_written(written)
    print(open_the_runs(_tracking_lines(args, config, output)))
    return 0


def write_summary(
    results: Results, output: Path, config: StudyConfig
) -> tuple[StudyReport, dict[str, Any]]:
    """The report of ``results`` and the paths of the summary and dashboard written for it."""
    from .._patience import Patience
    from ..analysis.report import write_outputs
    from ..analysis.summary import build_report

    report = build_report(results)
    meta = (
        f"study {config.name} · {config.dataset.name} · {report.decision.unit_kind} · "
        f"{config.seeds} seeds"
    )
    # A full disk is waited for (one line each way) rather than lose the summary of a study.
    return report, Patience(f"output folder {output}").call(
        lambda: write_outputs(report, output, meta)
    )


def print_written(written: dict[str, Any]) -> None:
    print(f"\nsummary: {written['csv']}")
    print(f"dashboard: {written['dashboard']}")


def open_the_runs(lines: list[str]) -> str:
    return "open the runs: " + "\n               ".join(lines)


def _tracking_lines(args: argparse.Namespace, config: StudyConfig, output: Path) -> list[str]:
    from ..study.storage import sqlite_url
    from ..tracking import experiment_id, open_lines

    tracking = args.tracking_uri or sqlite_url(output / "mlflow.db")
    return open_lines(tracking, experiment_id(tracking, config.name))


COMMAND = Command(
    "report",
    "the verdict, table and dashboard of a study, read from its stores (read-only)",
    add_arguments,
    run,
    parents=(study_parent, stores_parent),
)
